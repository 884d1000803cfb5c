package fhirvalidator

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
)

// The agreement test runs our validator and fhircheck (an independent
// harness of third-party validators) over the same example sets and
// requires the same verdict per file, except for the differences listed in
// testdata/validator/agreement.json, each with its reason; the same list is
// published in docs/conformance.md. A difference that disappears fails the
// test too, so that the list stays true.

// agreementSet is one example set and the profiles both validators apply.
type agreementSet struct {
	name     string
	dir      string // under ../shared
	recurse  bool
	profiles string // "", "ukcore" or "uscore"
}

var agreementSets = []agreementSet{
	{"r4-examples", "fhir/r4-examples", false, ""},
	{"ukcore-examples", "fhir/ukcore/examples", false, "ukcore"},
	{"bars", "fhir/bars", true, "ukcore"},
	{"broken", "fhircheck/examples/broken", false, ""},
	{"broken-ukcore", "fhircheck/examples/broken-ukcore", false, "ukcore"},
	{"broken-uscore", "fhircheck/examples/broken-uscore", false, "uscore"},
}

// knownDifference is one entry of testdata/validator/agreement.json.
type knownDifference struct {
	// File is the path under ../shared.
	File      string `json:"file"`
	Ours      string `json:"ours"`
	FHIRCheck string `json:"fhircheck"`
	// Rules are the rules of our errors in the file (when we are stricter).
	Rules  []string `json:"rules,omitempty"`
	Reason string   `json:"reason"`
}

type agreementData struct {
	Differences []knownDifference `json:"differences"`
}

// fhircheckLine is one line of `validate.mjs --json`.
type fhircheckLine struct {
	File   string   `json:"file"`
	Result string   `json:"result"`
	Errors []string `json:"errors"`
}

// fhircheckHarness returns the node binary and validate.mjs, or skips
// (fails under CI=true) when they are not installed.
func fhircheckHarness(t testing.TB) (nodeBin, script string) {
	t.Helper()
	script = filepath.Join(moduleDir(t), "build", "fhircheck", "validate.mjs")
	skip := func(msg string) {
		msg += ": install fhircheck with cp -r ../shared/fhircheck build/fhircheck && (cd build/fhircheck && npm ci)"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(script), "node_modules")); err != nil {
		skip("build/fhircheck/node_modules is missing")
	}
	nodeBin, err := exec.LookPath("node")
	if err != nil {
		skip("node is not on PATH")
	}
	return nodeBin, script
}

// profileFiles returns the StructureDefinition files of a profile group.
func profileFiles(t testing.TB, shared, group string) []string {
	t.Helper()
	var pattern string
	switch group {
	case "":
		return nil
	case "ukcore":
		pattern = filepath.Join(shared, "fhir", "ukcore", "UKCore-*.json")
	case "uscore":
		pattern = filepath.Join(shared, "fhircheck", "profiles", "uscore", "*.json")
	default:
		t.Fatalf("unknown profile group %q", group)
	}
	files, err := filepath.Glob(pattern)
	if err != nil || len(files) == 0 {
		t.Fatalf("no profiles in %s (%v)", pattern, err)
	}
	return files
}

// profileURLs reads the canonical URL of each profile file.
func profileURLs(t testing.TB, files []string) []string {
	t.Helper()
	var urls []string
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		n, _, err := parseJSON(data)
		if err != nil || n.str("url") == "" {
			t.Fatalf("%s: no canonical url (%v)", f, err)
		}
		urls = append(urls, n.str("url"))
	}
	return urls
}

func setFiles(t testing.TB, shared string, s agreementSet) []string {
	t.Helper()
	root := filepath.Join(shared, s.dir)
	var files []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && path != root && !s.recurse {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.HasSuffix(path, ".json") {
			files = append(files, path)
		}
		return nil
	})
	if err != nil || len(files) == 0 {
		t.Fatalf("no files in %s (%v)", root, err)
	}
	sort.Strings(files)
	return files
}

// runFHIRCheck returns fhircheck's verdict per file. It may run in a
// goroutine of its own, so it returns errors rather than failing the test.
func runFHIRCheck(nodeBin, script, shared string, profiles, files []string, extra ...string) (map[string]fhircheckLine, error) {
	args := append([]string{script, "--json"}, extra...)
	for _, p := range profiles {
		args = append(args, "--profile", p)
	}
	cmd := exec.Command(nodeBin, append(args, files...)...)
	cmd.Env = append(os.Environ(), "FHIRCHECK_FHIR_DIR="+filepath.Join(shared, "fhir"))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); err != nil && (!ok || ee.ExitCode() > 1) {
		return nil, fmt.Errorf("fhircheck did not run: %v\n%s", err, stderr.String())
	}
	out := map[string]fhircheckLine{}
	sc := bufio.NewScanner(&stdout)
	sc.Buffer(make([]byte, 1<<20), 1<<26)
	for sc.Scan() {
		var l fhircheckLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			return nil, fmt.Errorf("fhircheck printed %q: %v", sc.Text(), err)
		}
		out[l.File] = l
	}
	if len(out) != len(files) {
		return nil, fmt.Errorf("fhircheck gave %d verdicts for %d files\n%s", len(out), len(files), stderr.String())
	}
	return out, nil
}

func verdict(ok bool) string {
	if ok {
		return "PASS"
	}
	return "FAIL"
}

func readAgreementData(t testing.TB) agreementData {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "validator", "agreement.json"))
	if err != nil {
		t.Fatal(err)
	}
	var a agreementData
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&a); err != nil {
		t.Fatalf("agreement.json: %v", err)
	}
	return a
}

// observedDifference is a file where the verdicts differ.
type observedDifference struct {
	knownDifference
	fhircheckErrors []string
	ourErrors       []Issue
}

// TestAgreement compares the verdicts per file with fhircheck's.
func TestAgreement(t *testing.T) {
	shared := sharedDir(t)
	nodeBin, script := fhircheckHarness(t)
	v := fullValidator(t)
	want := map[string]knownDifference{}
	for _, d := range readAgreementData(t).Differences {
		if _, dup := want[d.File]; dup {
			t.Errorf("agreement.json lists %s twice", d.File)
		}
		want[d.File] = d
	}
	type setResult struct {
		files []string
		opts  Options
		fc    map[string]fhircheckLine
		err   error
		diffs []observedDifference
	}
	results := make([]setResult, len(agreementSets))
	var wg sync.WaitGroup
	for i, s := range agreementSets {
		pfiles := profileFiles(t, shared, s.profiles)
		results[i].files = setFiles(t, shared, s)
		results[i].opts = Options{Profiles: profileURLs(t, pfiles)}
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i].fc, results[i].err = runFHIRCheck(nodeBin, script, shared, pfiles, results[i].files)
		}()
	}
	wg.Wait()
	for i := range results {
		res := &results[i]
		if res.err != nil {
			t.Fatalf("%s: %v", agreementSets[i].name, res.err)
		}
		for _, f := range res.files {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			r := v.ValidateWith(data, res.opts)
			ours, fc := verdict(r.OK()), res.fc[f].Result
			if ours == fc {
				continue
			}
			rel, _ := filepath.Rel(shared, f)
			d := observedDifference{knownDifference: knownDifference{File: filepath.ToSlash(rel), Ours: ours, FHIRCheck: fc},
				fhircheckErrors: res.fc[f].Errors, ourErrors: r.Errors()}
			seen := map[string]bool{}
			for _, is := range r.Errors() {
				if !seen[is.Rule] {
					seen[is.Rule] = true
					d.Rules = append(d.Rules, is.Rule)
				}
			}
			sort.Strings(d.Rules)
			res.diffs = append(res.diffs, d)
		}
	}
	total, ndiff := 0, 0
	for i, s := range agreementSets {
		total += len(results[i].files)
		for _, d := range results[i].diffs {
			ndiff++
			k, ok := want[d.File]
			delete(want, d.File)
			switch {
			case !ok:
				t.Errorf("%s: %s: we say %s, fhircheck says %s; not a documented difference.\n  our errors: %s\n  fhircheck: %s",
					s.name, d.File, d.Ours, d.FHIRCheck, issuesText(d.ourErrors), strings.Join(d.fhircheckErrors, "; "))
			case k.Ours != d.Ours || k.FHIRCheck != d.FHIRCheck || strings.Join(k.Rules, ",") != strings.Join(d.Rules, ","):
				t.Errorf("%s: %s: documented as ours %s (rules %v) vs fhircheck %s; now ours %s (rules %v) vs fhircheck %s.\n  our errors: %s",
					s.name, d.File, k.Ours, k.Rules, k.FHIRCheck, d.Ours, d.Rules, d.FHIRCheck, issuesText(d.ourErrors))
			}
		}
	}
	for f := range want {
		t.Errorf("%s is listed in agreement.json but the verdicts now agree: remove it (and from docs/conformance.md)", f)
	}
	t.Logf("agreement: %d files, %d documented differences", total, ndiff)
}

func issuesText(is []Issue) string {
	var b strings.Builder
	for i, x := range is {
		if i > 0 {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "[%s] %s: %s", x.Rule, x.Location, x.Message)
	}
	return b.String()
}

// TestAgreementDoc checks that docs/conformance.md lists every documented
// difference with its rules, so that the published list and the test's
// table stay in step.
func TestAgreementDoc(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join(moduleDir(t), "docs", "conformance.md"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(doc), "\n")
	for _, d := range readAgreementData(t).Differences {
		if d.Reason == "" {
			t.Errorf("%s: no reason given", d.File)
		}
		if d.Ours == "FAIL" && len(d.Rules) == 0 {
			t.Errorf("%s: we are stricter but name no rule", d.File)
		}
		found := false
		for _, l := range lines {
			if !strings.Contains(l, "`"+d.File+"`") {
				continue
			}
			found = true
			for _, r := range d.Rules {
				if !strings.Contains(l, "`"+r+"`") {
					t.Errorf("docs/conformance.md: the line for %s does not name rule %s", d.File, r)
				}
			}
		}
		if !found {
			t.Errorf("docs/conformance.md does not list %s", d.File)
		}
	}
}
