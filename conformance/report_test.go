package conformance

import (
	"bytes"
	"context"
	"encoding/xml"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/student-mh-referrals/gateway/fhirvalidator"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// fixedReport is a report with one case of each status, fixed in time so
// that its renderings are golden files.
func fixedReport(kind, target string) *Report {
	return &Report{
		ID: "8f0e4a52-6c1d-4b7e-9a3f-2d5c7e9b1a04", Kind: kind, Target: target,
		Started:  time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC),
		Duration: 1500 * time.Millisecond,
		Cases: []Case{
			{Name: "allow-u-cope", Description: "An allowed referral.", Status: Pass, Duration: 12 * time.Millisecond,
				Checks: []Check{{Name: "status 200", OK: true}, {Name: "Bundle: ServiceRequest.status == active", OK: true}}},
			{Name: "deny-e01-emergency", Description: "An emergency is refused.", Status: Fail, Duration: 8 * time.Millisecond,
				Checks: []Check{{Name: "status 200", OK: true}, {Name: "denied by exactly [E-01]", Message: "denied by [C-02, E-01]"}}},
			{Name: "allow-gm-student-mhs", Description: "A Manchester referral.", Status: Skip, Reason: "no token for institution 10007798"},
			{Name: "deny-c02-consent-expired", Description: "An expired consent.", Status: Fail, Reason: "no answer: connection refused"},
		},
	}
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", "golden", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file (run with -update after a deliberate change):\n%s", name, got)
	}
}

func TestWriteJUnit(t *testing.T) {
	var b bytes.Buffer
	if err := fixedReport("run", "http://127.0.0.1:8080").WriteJUnit(&b); err != nil {
		t.Fatal(err)
	}
	golden(t, "junit.xml", b.Bytes())
	var doc junitSuites
	if err := xml.Unmarshal(b.Bytes(), &doc); err != nil {
		t.Fatalf("not XML: %v", err)
	}
	s := doc.Suites[0]
	if doc.Tests != 4 || doc.Failures != 2 || doc.Skipped != 1 || len(s.Cases) != 4 {
		t.Errorf("tests %d, failures %d, skipped %d, cases %d", doc.Tests, doc.Failures, doc.Skipped, len(s.Cases))
	}
	if f := s.Cases[1].Failure; f == nil || !strings.Contains(f.Text, "denied by [C-02, E-01]") {
		t.Errorf("the failure does not say what was found: %+v", f)
	}
	if s.Cases[2].Skipped == nil || s.Cases[3].Failure == nil {
		t.Error("a skipped or unanswered case is not reported as such")
	}
}

func TestTestReport(t *testing.T) {
	tests := []struct{ name, kind, target, file string }{
		{"a run", "run", "in-process", "testreport-run.json"},
		{"a receiver check", "receiver", "http://127.0.0.1:8081/fhir/$process-message", "testreport-receiver.json"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := fixedReport(tt.kind, tt.target).TestReport()
			if err != nil {
				t.Fatal(err)
			}
			golden(t, tt.file, b)
			validateTestReport(t, b)
		})
	}
	t.Run("a real run", func(t *testing.T) {
		ss := builtinScenarios(t)
		h, tokens := testAPI(t, ss)
		b, err := Run(context.Background(), ss, Target{Handler: h, Token: tokens}, Options{}).TestReport()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(b, []byte(`"result": "pass",`+"\n  \"score\": 100,")) {
			t.Errorf("a passing run is not a TestReport with result pass and score 100:\n%.600s", b)
		}
		validateTestReport(t, b)
	})
}

// r4 is the FHIR R4 definitions in ../shared: the built-in rules cover only
// what the gateway emits, not TestReport.
func r4(t *testing.T) *fhirvalidator.Validator {
	t.Helper()
	dir := filepath.Join("..", "..", "shared", "fhir", "r4")
	if _, err := os.Stat(dir); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("the R4 definitions are missing (%v); CI needs ../shared", err)
		}
		t.Skipf("the R4 definitions are not here (%v); TestReport validation skipped", err)
	}
	v, err := r4Validator(dir)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

var r4Cache = map[string]*fhirvalidator.Validator{}

func r4Validator(dir string) (*fhirvalidator.Validator, error) {
	if v, ok := r4Cache[dir]; ok {
		return v, nil
	}
	v, err := fhirvalidator.Load(dir)
	if err == nil {
		r4Cache[dir] = v
	}
	return v, err
}

func validateTestReport(t *testing.T, b []byte) {
	t.Helper()
	res := r4(t).Validate(b)
	for _, is := range res.Issues {
		t.Errorf("the TestReport is not valid FHIR R4: %s", is)
	}
}

func TestPrinter(t *testing.T) {
	r := fixedReport("run", "in-process")
	tests := []struct {
		name string
		tty  bool
		want []string
	}{
		{"plain", false, []string{
			"PASS allow-u-cope (12ms)",
			"FAIL deny-e01-emergency (8ms)",
			"    denied by exactly [E-01]: denied by [C-02, E-01]",
			"SKIP allow-gm-student-mhs (no token for institution 10007798)",
			"FAIL deny-c02-consent-expired (0s)",
			"    no answer: connection refused",
		}},
		{"terminal", true, []string{
			"✓ allow-u-cope (12ms)",
			"✗ deny-e01-emergency (8ms)",
			"    denied by exactly [E-01]: denied by [C-02, E-01]",
			"- allow-gm-student-mhs (no token for institution 10007798)",
			"✗ deny-c02-consent-expired (0s)",
			"    no answer: connection refused",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			p := Printer{W: &b, TTY: tt.tty}
			for _, c := range r.Cases {
				p.Case(c)
			}
			if got := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n"); strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
	want := "gateway conformance run: 4 scenarios against in-process: 1 passed, 2 failed, 1 skipped (1.5s)"
	if got := r.Summary(); got != want {
		t.Errorf("Summary() = %q, want %q", got, want)
	}
}
