package mappings

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/student-mh-referrals/gateway/fhirvalidator"
	"github.com/student-mh-referrals/gateway/gateway"
)

var auditExport = AuditExport{
	Source: gateway.Source{Software: "student-mh-referral-gateway", Version: "test"},
	At:     time.Date(2026, 11, 23, 13, 0, 0, 0, time.UTC),
}

// auditRecords are the records of testdata/audit/records.json: a consent
// share, an override share, a refusal, a refused dry run of an override
// without an approver, a cancellation, an outbox drop and a policy reload.
func auditRecords(t *testing.T) []gateway.AuditRecord {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "audit", "records.json"))
	if err != nil {
		t.Fatal(err)
	}
	var recs []gateway.AuditRecord
	if err := json.Unmarshal(b, &recs); err != nil {
		t.Fatal(err)
	}
	if len(recs) != 7 {
		t.Fatalf("%d records in testdata/audit/records.json, want 7", len(recs))
	}
	return recs
}

// indent renders canonical JSON: two-space indented, trailing newline.
func indent(t *testing.T, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := json.Indent(&buf, b, "", "  "); err != nil {
		t.Fatal(err)
	}
	return append(buf.Bytes(), '\n')
}

// auditBundleOf builds the Bundle of the test records.
func auditBundleOf(t *testing.T) []byte {
	t.Helper()
	b, err := AuditEventBundle(auditRecords(t), auditExport)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestAuditEventBundle compares the export of the test records with the
// golden Bundle (go test ./mappings -run TestAuditEventBundle -update after
// review) and checks what an IG lead relies on in it.
func TestAuditEventBundle(t *testing.T) {
	got := indent(t, auditBundleOf(t))
	path := filepath.Join("testdata", "audit", "auditevents.golden.json")
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./mappings -run TestAuditEventBundle -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("the Bundle differs from %s (go test ./mappings -run TestAuditEventBundle -update after review)", path)
	}

	var b struct {
		ResourceType, Type string
		Entry              []struct {
			FullURL  string `json:"fullUrl"`
			Resource struct {
				ResourceType, ID, Action, Outcome, OutcomeDesc string
				Type                                           struct{ System, Code string }
				Agent                                          []struct {
					Type struct{ Coding []struct{ Code string } }
					Who  struct {
						Identifier struct{ System, Value string }
					}
					Requestor bool
					Policy    []string
				}
				Entity []struct {
					What struct {
						Identifier struct{ System, Value string }
					}
					Role   struct{ Code string }
					Detail []struct{ Type, ValueString string }
				}
			}
		}
	}
	if err := json.Unmarshal(got, &b); err != nil {
		t.Fatal(err)
	}
	if b.ResourceType != "Bundle" || b.Type != "collection" || len(b.Entry) != 7 {
		t.Fatalf("Bundle %s/%s with %d entries", b.ResourceType, b.Type, len(b.Entry))
	}
	seen := map[string]bool{}
	for _, e := range b.Entry {
		if seen[e.FullURL] || e.FullURL != "urn:uuid:"+e.Resource.ID {
			t.Errorf("entry %s: fullUrl repeated or not the id", e.FullURL)
		}
		seen[e.FullURL] = true
	}
	tests := []struct {
		name                 string
		entry                int
		typ, action, outcome string
		agents               []string // agent type codes, in order
		details              []string // "type=value" that must be present
	}{
		{"a consent share", 0, "110113", "E", "0", []string{"110153", "CST", "110152", "authserver"},
			[]string{"route=consent", "lawful-basis-article9=9(2)(a)", "data-category=needs", "policy-revision=sha256:ac99cc843b4f656d", "chain-seq=1"}},
		{"an override share", 1, "110113", "E", "0", []string{"110153", "CST", "110152", "authserver", "AUT", "VRF"},
			[]string{"route=safeguarding", "override-ground=safeguarding", "student-informed=informed", "lawful-basis-dpa-schedule1=para-18"}},
		{"a refusal", 2, "110113", "E", "8", []string{"110153", "CST", "110152", "authserver"},
			[]string{"outcome=deny", "dry-run=false"}},
		{"a refused dry run", 3, "110113", "E", "8", []string{"110153", "CST", "110152", "authserver", "AUT"},
			[]string{"dry-run=true", "student-informed=will-inform"}},
		{"a cancellation", 4, "110100", "U", "0", []string{"110150"}, []string{"action=referral-cancel", "reason=requested"}},
		{"an outbox drop", 5, "110100", "U", "0", []string{"humanuser"}, []string{"action=outbox-drop", "message-id=6b0c2a51-0d1e-4f3a-9b8c-7d6e5f4a3b2c"}},
		{"a policy reload", 6, "110100", "E", "0", []string{"humanuser"}, []string{"policy-revision=sha256:ffff", "previous-policy-revision=sha256:ac99cc843b4f656d"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := b.Entry[tt.entry].Resource
			if ev.ResourceType != "AuditEvent" || ev.Type.Code != tt.typ || ev.Action != tt.action || ev.Outcome != tt.outcome {
				t.Errorf("type %s action %s outcome %s", ev.Type.Code, ev.Action, ev.Outcome)
			}
			var agents []string
			requestors := 0
			for _, a := range ev.Agent {
				agents = append(agents, a.Type.Coding[0].Code)
				if a.Requestor {
					requestors++
				}
			}
			if strings.Join(agents, ",") != strings.Join(tt.agents, ",") || requestors != 1 {
				t.Errorf("agents %v (%d requestors), want %v (1)", agents, requestors, tt.agents)
			}
			have := map[string]bool{}
			for _, en := range ev.Entity {
				for _, d := range en.Detail {
					have[d.Type+"="+d.ValueString] = true
				}
			}
			for _, d := range tt.details {
				if !have[d] {
					t.Errorf("no entity detail %s", d)
				}
			}
		})
	}
	t.Run("the student is a pseudonym, never an identifier", func(t *testing.T) {
		ev := b.Entry[0].Resource
		var student string
		for _, en := range ev.Entity {
			if en.Role.Code == "1" {
				student = en.What.Identifier.System + "|" + en.What.Identifier.Value
			}
		}
		if student != SystemStudentPseudonym+"|aee9a4981d2521232cbcb0c870e2f74c2e80ac11c984735a33fcad53edae8caa" {
			t.Fatalf("student entity %q", student)
		}
	})
}

// r4Validator loads the R4 core definitions from ../shared/fhir/r4, or
// skips (fails under CI=true).
func r4Validator(t *testing.T) *fhirvalidator.Validator {
	t.Helper()
	dir := filepath.Join("..", "..", "shared", "fhir", "r4")
	if _, err := os.Stat(dir); err != nil {
		msg := dir + " is missing: validating AuditEvents needs the R4 core definitions in ../shared/fhir/r4"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	v, err := fhirvalidator.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestAuditEventsConformToR4 validates the export against the R4 core
// definitions with the project's validator (the built-in rule set covers
// only the resources of the referral message), and proves with a broken
// copy that the validator does check AuditEvents.
func TestAuditEventsConformToR4(t *testing.T) {
	v := r4Validator(t)
	res := v.Validate(auditBundleOf(t))
	for _, is := range res.Issues {
		t.Log(is)
	}
	if !res.OK() {
		t.Fatalf("the audit Bundle is not valid R4: %v", res.Errors())
	}
	t.Run("a broken AuditEvent is caught", func(t *testing.T) {
		var b map[string]any
		if err := json.Unmarshal(auditBundleOf(t), &b); err != nil {
			t.Fatal(err)
		}
		ev := b["entry"].([]any)[0].(map[string]any)["resource"].(map[string]any)
		delete(ev["source"].(map[string]any), "observer")
		ev["outcome"] = "3"
		broken, _ := json.Marshal(b)
		res := v.Validate(broken)
		if res.OK() || len(res.Errors()) < 2 {
			t.Fatalf("a missing source.observer and an outcome outside its code list were not both caught: %v", res.Issues)
		}
	})
}

var fhircheckSummary = regexp.MustCompile(`(?m)^(\d+) passed, (\d+) failed$`)

// TestAuditEventsFHIRCheck runs the export through the independent
// validator (fhircheck, Node.js) against R4.
func TestAuditEventsFHIRCheck(t *testing.T) {
	root, err := filepath.Abs(filepath.Join(".."))
	if err != nil {
		t.Fatal(err)
	}
	fhirDir := filepath.Join(root, "..", "shared", "fhir")
	validate := filepath.Join(root, "build", "fhircheck", "validate.mjs")
	node, nodeErr := exec.LookPath("node")
	_, dirErr := os.Stat(filepath.Join(fhirDir, "r4"))
	_, modErr := os.Stat(filepath.Join(root, "build", "fhircheck", "node_modules"))
	if nodeErr != nil || dirErr != nil || modErr != nil {
		msg := "the fhircheck cross-check needs node, ../shared/fhir and build/fhircheck (cp -r ../shared/fhircheck build/fhircheck && (cd build/fhircheck && npm ci))"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	file := filepath.Join(t.TempDir(), "auditevents.json")
	if err := os.WriteFile(file, auditBundleOf(t), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(node, validate, "--summary", file)
	cmd.Env = append(os.Environ(), "FHIRCHECK_FHIR_DIR="+fhirDir)
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); err != nil && (!ok || ee.ExitCode() > 1) {
		t.Fatalf("fhircheck did not run: %v\n%s", err, out)
	}
	m := fhircheckSummary.FindSubmatch(out)
	if m == nil || string(m[1]) != "1" || string(m[2]) != "0" {
		t.Fatalf("fhircheck:\n%s", out)
	}
}
