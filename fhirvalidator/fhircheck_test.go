package fhirvalidator

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// ukCoreProfiles are the UK Core profiles the messages claim. fhircheck
// applies each to every resource of its type, Bundle entries included.
// UKCore-Bundle is passed too: the Bundle claims it in meta.profile, and a
// claim that is not checked is worth nothing. It only adds mustSupport flags
// today, so it costs nothing and will catch a future tightening.
var ukCoreProfiles = []string{
	"UKCore-Bundle",
	"UKCore-MessageHeader",
	"UKCore-ServiceRequest",
	"UKCore-Patient",
	"UKCore-Consent",
	"UKCore-Organization",
	"UKCore-Practitioner",
	"UKCore-PractitionerRole",
	"UKCore-CarePlan",
	"UKCore-Flag",
}

var summaryLine = regexp.MustCompile(`^(\d+) passed, (\d+) failed$`)

// harness locates fhircheck and the shared FHIR definitions, or skips (fails
// under CI=true) with a message saying what to prepare.
func harness(t *testing.T) (node, validate, fhirDir, root string) {
	t.Helper()
	root = moduleDir(t)
	fhirDir = filepath.Join(root, "..", "shared", "fhir")
	validate = filepath.Join(root, "build", "fhircheck", "validate.mjs")
	missing := func(what string) {
		msg := what + ": the fhircheck cross-check needs ../shared/fhir and build/fhircheck " +
			"(cp -r ../shared/fhircheck build/fhircheck && (cd build/fhircheck && npm ci))"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	if _, err := os.Stat(filepath.Join(fhirDir, "ukcore")); err != nil {
		missing(fhirDir + " is missing")
	}
	if _, err := os.Stat(filepath.Join(root, "build", "fhircheck", "node_modules")); err != nil {
		missing("build/fhircheck/node_modules is missing")
	}
	node, err := exec.LookPath("node")
	if err != nil {
		missing("node is not on PATH")
	}
	return node, validate, fhirDir, root
}

// run validates files and returns the FAIL lines and the summary line.
func run(t *testing.T, node, validate, fhirDir string, files []string) (fails []string, summary string, passed, failed int) {
	t.Helper()
	args := []string{validate, "--summary"}
	for _, p := range ukCoreProfiles {
		args = append(args, "--profile", filepath.Join(fhirDir, "ukcore", p+".json"))
	}
	cmd := exec.Command(node, append(args, files...)...)
	cmd.Env = append(os.Environ(), "FHIRCHECK_FHIR_DIR="+fhirDir)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); err != nil && (!ok || ee.ExitCode() > 1) {
		t.Fatalf("fhircheck did not run: %v\n%s", err, stderr.String())
	}
	sc := bufio.NewScanner(&stdout)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "FAIL ") {
			fails = append(fails, line)
		}
		if m := summaryLine.FindStringSubmatch(line); m != nil {
			summary = line
			passed, _ = strconv.Atoi(m[1])
			failed, _ = strconv.Atoi(m[2])
		}
	}
	if summary == "" {
		t.Fatalf("fhircheck printed no summary:\n%s\n%s", stdout.String(), stderr.String())
	}
	return fails, summary, passed, failed
}

// TestFHIRCheck runs every golden Bundle, the Bundle of every allowed golden
// evaluation document (the real policies end to end, testdata/evaluate) and
// every published definition through fhircheck against R4 and the UK Core
// profiles: zero failures.
func TestFHIRCheck(t *testing.T) {
	node, validate, fhirDir, root := harness(t)
	var sources []string
	for _, pattern := range []string{
		filepath.Join(root, "mappings", "testdata", "golden", "*.bundle.json"),
		filepath.Join(root, "docs", "fhir", "*.json"),
	} {
		m, err := filepath.Glob(pattern)
		if err != nil {
			t.Fatal(err)
		}
		sources = append(sources, m...)
	}
	if len(sources) < 3 {
		t.Fatalf("only %d files to check: are the golden Bundles and docs/fhir there?", len(sources))
	}
	dir := t.TempDir()
	var files []string
	docs, err := filepath.Glob(filepath.Join(root, "testdata", "evaluate", "allow-*.json"))
	if err != nil || len(docs) < 5 {
		t.Fatalf("only %d allowed evaluation documents (%v)", len(docs), err)
	}
	for _, src := range docs {
		data, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		var doc struct {
			Bundle json.RawMessage `json:"bundle"`
		}
		if err := json.Unmarshal(data, &doc); err != nil || len(doc.Bundle) == 0 {
			t.Fatalf("%s: no bundle in an allowed evaluation (%v)", src, err)
		}
		dst := filepath.Join(dir, "evaluate-"+filepath.Base(src))
		if err := os.WriteFile(dst, doc.Bundle, 0o644); err != nil {
			t.Fatal(err)
		}
		files = append(files, dst)
	}
	for _, src := range sources {
		data, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		dst := filepath.Join(dir, filepath.Base(src))
		if err := os.WriteFile(dst, data, 0o644); err != nil {
			t.Fatal(err)
		}
		files = append(files, dst)
	}
	fails, summary, passed, failed := run(t, node, validate, fhirDir, files)
	t.Log("fhircheck: " + summary)
	if failed > 0 || len(fails) > 0 || passed != len(files) {
		t.Errorf("fhircheck: %s (%d files):\n%s", summary, len(files), strings.Join(fails, "\n"))
	}
}

// TestFHIRCheckCatches is the negative control: a Bundle broken in the ways
// the samply models invite (an empty eventUri beside eventCoding) and in a way
// only the UK Core profile forbids (two NHS numbers) must FAIL, or the
// cross-check above proves nothing.
func TestFHIRCheckCatches(t *testing.T) {
	node, validate, fhirDir, root := harness(t)
	golden, err := filepath.Glob(filepath.Join(root, "mappings", "testdata", "golden", "*.bundle.json"))
	if err != nil || len(golden) == 0 {
		t.Fatalf("no golden Bundles (%v)", err)
	}
	data, err := os.ReadFile(golden[0])
	if err != nil {
		t.Fatal(err)
	}
	var b map[string]any
	if err := json.Unmarshal(data, &b); err != nil {
		t.Fatal(err)
	}
	broke := map[string]bool{}
	for _, e := range b["entry"].([]any) {
		r := e.(map[string]any)["resource"].(map[string]any)
		switch r["resourceType"] {
		case "MessageHeader":
			r["eventUri"] = ""
			broke["eventUri"] = true
		case "Patient":
			if ids, ok := r["identifier"].([]any); ok {
				r["identifier"] = append(ids, ids[0])
				broke["nhsNumber"] = true
			}
		}
	}
	if !broke["eventUri"] || !broke["nhsNumber"] {
		t.Fatalf("%s has no MessageHeader or no Patient identifier to break", golden[0])
	}
	out, err := json.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "broken.json")
	if err := os.WriteFile(file, out, 0o644); err != nil {
		t.Fatal(err)
	}
	fails, summary, _, failed := run(t, node, validate, fhirDir, []string{file})
	if failed != 1 || len(fails) != 1 {
		t.Fatalf("the broken Bundle was not caught: %s", summary)
	}
	for _, want := range []string{"eventUri", "nhsNumber"} {
		if !strings.Contains(fails[0], want) {
			t.Errorf("fhircheck did not report %s: %s", want, fails[0])
		}
	}
}
