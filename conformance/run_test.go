package conformance

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
)

// TestBuiltinScenariosPass runs every shipped scenario against the
// gateway's API in-process: the scenarios state what the gateway does.
func TestBuiltinScenariosPass(t *testing.T) {
	ss := builtinScenarios(t)
	h, tokens := testAPI(t, ss)
	r := Run(context.Background(), ss, Target{Handler: h, Token: tokens}, Options{})
	if len(r.Cases) != len(ss) {
		t.Fatalf("%d cases for %d scenarios", len(r.Cases), len(ss))
	}
	for _, c := range r.Cases {
		t.Run(c.Name, func(t *testing.T) {
			if c.Status != Pass {
				t.Errorf("%s:\n  %s", c.Status, strings.Join(c.Failures(), "\n  "))
			}
			if len(c.Checks) < 3 {
				t.Errorf("only %d checks", len(c.Checks))
			}
		})
	}
}

// TestRunReportsFailures: a gateway that answers otherwise than a scenario
// expects fails it, naming each check.
func TestRunReportsFailures(t *testing.T) {
	ss := builtinScenarios(t)
	h, tokens := testAPI(t, ss)
	pick := func(name string) Scenario {
		for _, s := range ss {
			if s.Name == name {
				return s
			}
		}
		t.Fatalf("no scenario %s", name)
		return Scenario{}
	}
	wrong := pick("allow-u-cope")
	wrong.Expect.Rules.Deny = []string{"E-01"}
	wrong.Expect.DataCategories = []string{"demographics"}
	wrong.Expect.Messages = map[string]string{"C-04": "no such text"}
	wrong.Expect.Oblige = append(wrong.Expect.Oblige, Obligated{Type: "strip-fields", Rule: "X-01"})
	a, err := parseAssertion("no text 'Okafor'")
	if err != nil {
		t.Fatal(err)
	}
	wrong.assertions = append(wrong.assertions, a)

	// tamper breaks the FHIR of every answer it passes on.
	tamper := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		w.Header().Set("Content-Type", rec.Header().Get("Content-Type"))
		w.WriteHeader(rec.Code)
		_, _ = w.Write(bytes.ReplaceAll(rec.Body.Bytes(), []byte(`"status": "active"`), []byte(`"status": "bogus"`)))
	})
	closed := httptest.NewServer(h)
	closed.Close()

	tests := []struct {
		name     string
		scenario Scenario
		target   Target
		status   Status
		failed   []string
	}{
		{"wrong expectations", wrong, Target{Handler: h, Token: tokens}, Fail, []string{
			"denied by exactly [E-01]",
			"obligation strip-fields (X-01)",
			"data categories [demographics]",
			`C-04 message mentions "no such text"`,
			"Bundle: no text 'Okafor'",
		}},
		{"a gateway that emits invalid FHIR", pick("allow-u-cope"), Target{Handler: tamper, Token: tokens}, Fail, []string{
			"the Bundle is valid FHIR R4 (built-in rules)",
			"Bundle: ServiceRequest.status == active",
			"Bundle: Consent.status == active",
		}},
		{"no token for the institution", pick("allow-u-cope"), Target{Handler: h, Token: func(string) (string, bool) { return "", false }}, Skip, nil},
		{"a wrong token", pick("allow-u-cope"), Target{Handler: h, Token: func(string) (string, bool) { return "nope", true }}, Fail, []string{
			"status 200", "the answer has a decision",
		}},
		{"no answer", pick("allow-u-cope"), Target{URL: closed.URL, Token: tokens}, Fail, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := Run(context.Background(), []Scenario{tt.scenario}, tt.target, Options{})
			c := r.Cases[0]
			if c.Status != tt.status {
				t.Fatalf("status %s, want %s: %v", c.Status, tt.status, c.Failures())
			}
			var failed []string
			for _, ch := range c.Checks {
				if !ch.OK {
					failed = append(failed, ch.Name)
				}
			}
			for _, f := range tt.failed {
				if !slices.Contains(failed, f) {
					t.Errorf("%q did not fail; failed: %v", f, failed)
				}
			}
			if tt.status == Fail && len(c.Failures()) == 0 {
				t.Error("a failed case with nothing to say")
			}
			if r.OK() == (tt.status == Fail) {
				t.Errorf("OK() is %t", r.OK())
			}
		})
	}
}
