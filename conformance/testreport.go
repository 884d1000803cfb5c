package conformance

import (
	"encoding/json"
	"io"
	"math"
	"time"

	"github.com/student-mh-referrals/gateway/gateway"
)

// The FHIR R4 TestReport: what a trust's or a university's assurance
// process can file as evidence of the run. Each case is a test whose first
// action is the operation (the request, with its outcome: answered, skipped,
// or no answer) and whose further actions are the checks as asserts.
type testReport struct {
	ResourceType string          `json:"resourceType"`
	ID           string          `json:"id"`
	Identifier   *identifier     `json:"identifier,omitempty"`
	Name         string          `json:"name"`
	Status       string          `json:"status"`
	TestScript   reference       `json:"testScript"`
	Result       string          `json:"result"`
	Score        float64         `json:"score"`
	Tester       string          `json:"tester"`
	Issued       string          `json:"issued"`
	Participant  []participant   `json:"participant"`
	Test         []testReportRun `json:"test,omitempty"`
}

type identifier struct {
	System string `json:"system"`
	Value  string `json:"value"`
}

type reference struct {
	Identifier *identifier `json:"identifier,omitempty"`
	Display    string      `json:"display,omitempty"`
}

type participant struct {
	Type    string `json:"type"`
	URI     string `json:"uri"`
	Display string `json:"display,omitempty"`
}

type testReportRun struct {
	Name        string             `json:"name"`
	Description string             `json:"description,omitempty"`
	Action      []testReportAction `json:"action"`
}

type testReportAction struct {
	Operation *actionResult `json:"operation,omitempty"`
	Assert    *actionResult `json:"assert,omitempty"`
}

type actionResult struct {
	Result  string `json:"result"`
	Message string `json:"message,omitempty"`
}

// TestScriptSystem names the suite's scenario sets as the TestReport's
// testScript: the scenarios are the script; there is no TestScript resource.
const TestScriptSystem = gateway.FHIRBase + "/conformance-suite"

// TestReport renders the report as a FHIR R4 TestReport (JSON, 2-space
// indented).
func (r *Report) TestReport() ([]byte, error) {
	uri := r.Target // the in-process gateway has no URL of its own
	if uri == "in-process" {
		uri = "urn:student-mh-referral-gateway:in-process"
	}
	tr := testReport{
		ResourceType: "TestReport",
		ID:           r.ID,
		Identifier:   &identifier{System: "urn:ietf:rfc:3986", Value: "urn:uuid:" + r.ID},
		Name:         r.Title(),
		Status:       "completed",
		TestScript: reference{
			Identifier: &identifier{System: TestScriptSystem, Value: r.Kind},
			Display:    map[bool]string{true: "BaRS receiver checks of the student mental-health referral gateway", false: "conformance scenarios of the student mental-health referral gateway"}[r.Kind == "receiver"],
		},
		Result: "pass",
		Tester: "student-mh-referral-gateway conformance suite",
		Issued: r.Started.UTC().Format(time.RFC3339),
		Participant: []participant{
			{Type: "test-engine", URI: TestScriptSystem, Display: r.Title()},
			{Type: "server", URI: uri, Display: r.Target},
		},
	}
	if !r.OK() {
		tr.Result = "fail"
	}
	if tried := len(r.Cases) - r.Count(Skip); tried > 0 {
		tr.Score = math.Round(float64(r.Count(Pass))/float64(tried)*10000) / 100
	}
	for _, c := range r.Cases {
		t := testReportRun{Name: c.Name, Description: c.Description}
		op := &actionResult{Result: "pass", Message: "answered"}
		switch {
		case c.Status == Skip:
			op = &actionResult{Result: "skip", Message: c.Reason}
		case c.Reason != "":
			op = &actionResult{Result: "error", Message: c.Reason}
		}
		t.Action = append(t.Action, testReportAction{Operation: op})
		for _, ch := range c.Checks {
			a := &actionResult{Result: "pass", Message: ch.Name}
			if !ch.OK {
				a = &actionResult{Result: "fail", Message: ch.String()}
			}
			t.Action = append(t.Action, testReportAction{Assert: a})
		}
		tr.Test = append(tr.Test, t)
	}
	b, err := json.MarshalIndent(tr, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// WriteTestReport writes the FHIR TestReport.
func (r *Report) WriteTestReport(w io.Writer) error {
	b, err := r.TestReport()
	if err != nil {
		return err
	}
	_, err = w.Write(b)
	return err
}
