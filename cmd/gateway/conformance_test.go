package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/student-mh-referrals/gateway/conformance"
	"github.com/student-mh-referrals/gateway/sandbox"
)

// runCLI runs the command in-process and returns its output and exit status.
func runCLI(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), args, strings.NewReader(""), &stdout, &stderr)
	code := exitOK
	if err != nil {
		code = exitFailure
		var es *exitStatus
		if errors.As(err, &es) {
			code = es.code
			if es.err != nil {
				stderr.WriteString(es.err.Error())
			}
		} else {
			stderr.WriteString(err.Error())
		}
	}
	return stdout.String(), stderr.String(), code
}

func TestConformanceRunInProcess(t *testing.T) {
	scenarios, err := conformance.Builtin()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	junit, report := filepath.Join(dir, "junit.xml"), filepath.Join(dir, "testreport.json")
	out, errOut, code := runCLI(t, "conformance", "run", "--junit", junit, "--testreport", report)
	if code != exitOK {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
	for _, s := range scenarios {
		if !strings.Contains(out, "PASS "+s.Name+" (") {
			t.Errorf("no PASS line for %s", s.Name)
		}
	}
	if want := fmt.Sprintf("%d scenarios against in-process: %d passed, 0 failed", len(scenarios), len(scenarios)); !strings.Contains(out, want) {
		t.Errorf("no summary %q in\n%s", want, out)
	}
	var j struct {
		Tests    int `xml:"tests,attr"`
		Failures int `xml:"failures,attr"`
	}
	b, err := os.ReadFile(junit)
	if err != nil {
		t.Fatal(err)
	}
	if err := xml.Unmarshal(b, &j); err != nil || j.Tests != len(scenarios) || j.Failures != 0 {
		t.Errorf("JUnit: %+v, %v", j, err)
	}
	var tr struct{ ResourceType, Result string }
	b, err = os.ReadFile(report)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &tr); err != nil || tr.ResourceType != "TestReport" || tr.Result != "pass" {
		t.Errorf("TestReport: %+v, %v", tr, err)
	}
}

// TestConformanceRunFails: a scenario the gateway does not meet fails the
// run, with exit status 1 and the check named.
func TestConformanceRunFails(t *testing.T) {
	dir := t.TempDir()
	scenario := fmt.Sprintf(`{
  "name": "expects-a-deny",
  "description": "Expects the allowed U-COPE referral to be denied.",
  "caseRecord": %s,
  "at": "2026-11-23T12:00:00Z",
  "expect": {"outcome": "deny", "rules": {"deny": ["E-01"]}}
}
`, readCase(t, "allow-liverpool-u-cope"))
	if err := os.WriteFile(filepath.Join(dir, "expects-a-deny.json"), []byte(scenario), 0o600); err != nil {
		t.Fatal(err)
	}
	out, _, code := runCLI(t, "conformance", "run", "--scenarios", dir)
	if code != exitFailure {
		t.Fatalf("exit %d, want %d\n%s", code, exitFailure, out)
	}
	for _, want := range []string{"FAIL expects-a-deny", "outcome deny: got \"allow\"", "denied by exactly [E-01]: denied by []", "1 scenarios against in-process: 0 passed, 1 failed"} {
		if !strings.Contains(out, want) {
			t.Errorf("no %q in\n%s", want, out)
		}
	}
}

func TestConformanceUsage(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no subcommand", []string{"conformance"}, "usage:"},
		{"an unknown subcommand", []string{"conformance", "walk"}, "usage:"},
		{"a target without a token", []string{"conformance", "run", "--target", "http://127.0.0.1:1"}, "--target needs --token"},
		{"a token without a target", []string{"conformance", "run", "--token", "t"}, "--token goes with --target"},
		{"a bare token for several institutions", []string{"conformance", "run", "--target", "http://127.0.0.1:1", "--token", "t"},
			"give --token UKPRN=TOKEN for each institution"},
		{"a bare token for the institutions left without one", []string{"conformance", "run", "--target", "http://127.0.0.1:1",
			"--token", "10006842=t", "--token", "t", "--run", "^allow-(u-cope|bristol-awp|sheffield.*)$"}, "of 2 institutions (10007157, 10007164)"},
		{"a filter that matches nothing", []string{"conformance", "run", "--run", "^nothing$"}, "matches no scenario"},
		{"an unknown service", []string{"conformance", "receiver", "--service", "nope"}, "u-cope, liverpool-liaison"},
		{"a scenario directory that is not there", []string{"conformance", "run", "--scenarios", "no/such/dir"}, "no scenario files"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, errOut, code := runCLI(t, tt.args...)
			if code != exitFailure || !strings.Contains(errOut, tt.want) {
				t.Errorf("exit %d, stderr %q (stdout %q); want 1 and %q", code, errOut, out, tt.want)
			}
		})
	}
}

// TestConformanceBareToken: a bare --token serves the scenarios of one
// institution (here they reach no gateway, so they fail rather than being
// refused as a usage error).
func TestConformanceBareToken(t *testing.T) {
	for _, args := range [][]string{
		{"--token", "t", "--run", "^allow-u-cope$"},
		{"--token", "t", "--token", "10007164=t2", "--run", "^allow-(u-cope|bristol-awp)$"},
	} {
		out, errOut, code := runCLI(t, append([]string{"conformance", "run", "--target", "http://127.0.0.1:1", "--timeout", "2s"}, args...)...)
		if code != exitFailure || !strings.Contains(out, "FAIL allow-u-cope") || strings.Contains(errOut, "UKPRN=TOKEN") {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want the scenarios run", args, code, out, errOut)
		}
	}
}

// brokenReceiver processes every post as a new referral: it checks no
// header, drops no duplicate, and fails with a bare 500 on what it cannot
// parse.
func brokenReceiver() http.Handler {
	var n atomic.Int64
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var b struct {
			ResourceType string `json:"resourceType"`
		}
		if json.NewDecoder(r.Body).Decode(&b) != nil || b.ResourceType != "Bundle" {
			http.Error(w, "internal error", http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/fhir+json")
		fmt.Fprintf(w, `{"resourceType":"OperationOutcome","id":"referral-%d","issue":[{"severity":"information","code":"informational"}]}`, n.Add(1))
	})
}

func TestConformanceReceiver(t *testing.T) {
	all := conformance.ReceiverCheckNames(false)
	tests := []struct {
		name    string
		handler http.Handler
		failed  []string
	}{
		{"the sandbox receiver", sandbox.NewReceiver(sandbox.Options{}).Handler(), nil},
		{"a broken receiver", brokenReceiver(), all[1:]}, // it accepts the valid message, and nothing else is right
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(tt.handler)
			defer srv.Close()
			report := filepath.Join(t.TempDir(), "testreport.json")
			out, errOut, code := runCLI(t, "conformance", "receiver", "--endpoint", srv.URL+"/fhir", "--service", "gm-student-mhs", "--token", "test-token", "--testreport", report)
			want := exitOK
			if len(tt.failed) > 0 {
				want = exitFailure
			}
			if code != want {
				t.Fatalf("exit %d, want %d\n%s\n%s", code, want, out, errOut)
			}
			if !strings.Contains(out, "addressed to gm-student-mhs (https://fhir.nhs.uk/Id/dos-service-id|2000010003)") {
				t.Errorf("the output does not say which message was sent:\n%s", out)
			}
			for _, name := range all {
				mark := "PASS "
				for _, f := range tt.failed {
					if f == name {
						mark = "FAIL "
					}
				}
				if !strings.Contains(out, mark+name+" (") {
					t.Errorf("no %q line in\n%s", mark+name, out)
				}
			}
			if _, err := os.Stat(report); err != nil {
				t.Errorf("no TestReport: %v", err)
			}
		})
	}
}

// TestConformanceAgainstProcesses runs the built binary as an integrator
// would: `gateway serve` and `gateway sandbox-receiver` as processes, the
// suite against them over HTTP with a token per institution.
func TestConformanceAgainstProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes; skipped with -short")
	}
	scenarios, err := conformance.Builtin()
	if err != nil {
		t.Fatal(err)
	}
	bin := buildBinary(t)
	dir := t.TempDir()
	cfg, api, sbx := processConfig(t, dir, testStore(t, "sqlite"))
	y, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var clients strings.Builder
	var tokens []string
	seen := map[string]bool{}
	for _, s := range scenarios {
		if seen[s.Institution] {
			continue
		}
		seen[s.Institution] = true
		tok := "conformance-" + s.Institution
		sum := sha256.Sum256([]byte(tok))
		fmt.Fprintf(&clients, "  - id: conformance-%s\n    institution: %q\n    roles: [submitter]\n    tokenSHA256: %s\n", s.Institution, s.Institution, hex.EncodeToString(sum[:]))
		tokens = append(tokens, "--token", s.Institution+"="+tok)
	}
	if !bytes.Contains(y, []byte("\nclients:\n")) {
		t.Fatal("the example configuration has no clients list")
	}
	y = bytes.Replace(y, []byte("\nclients:\n"), []byte("\nclients:\n"+clients.String()), 1)
	if err := os.WriteFile(cfg, y, 0o600); err != nil {
		t.Fatal(err)
	}
	startProcess(t, bin, sbx, "sandbox-receiver", "--config", cfg)
	startProcess(t, bin, api, "serve", "--config", cfg)

	t.Run("run with a token per institution", func(t *testing.T) {
		args := append([]string{"conformance", "run", "--target", "http://" + api}, tokens...)
		out, err := exec.Command(bin, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		if want := fmt.Sprintf("%d passed, 0 failed", len(scenarios)); !strings.Contains(string(out), want) {
			t.Errorf("no %q in\n%s", want, out)
		}
	})
	t.Run("run with the Liverpool token only", func(t *testing.T) {
		out, err := exec.Command(bin, "conformance", "run", "--target", "http://"+api, "--token", "10006842=conformance-10006842").CombinedOutput()
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		if !strings.Contains(string(out), "SKIP allow-bristol-awp (no token for institution 10007164)") || !strings.Contains(string(out), "PASS allow-u-cope") {
			t.Errorf("other institutions' scenarios are not skipped:\n%s", out)
		}
	})
	t.Run("receiver at the configured endpoint", func(t *testing.T) {
		out, err := exec.Command(bin, "conformance", "receiver", "--config", cfg, "--service", "sheffield-shsc").CombinedOutput()
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		if want := fmt.Sprintf("%d checks against http://%s/fhir/$process-message: %d passed, 0 failed", len(conformance.ReceiverCheckNames(false)), sbx, len(conformance.ReceiverCheckNames(false))); !strings.Contains(string(out), want) {
			t.Errorf("no %q in\n%s", want, out)
		}
	})
	t.Run("a failing run exits 1", func(t *testing.T) {
		cmd := exec.Command(bin, "conformance", "run", "--target", "http://"+api, "--token", "wrong-token", "--run", "^allow-u-cope$")
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != exitFailure {
			t.Fatalf("%v\n%s", err, out)
		}
		if !strings.Contains(string(out), "FAIL allow-u-cope") || !strings.Contains(string(out), "status 200: got 401") {
			t.Errorf("the failure is not named:\n%s", out)
		}
	})
}
