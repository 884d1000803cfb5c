package main

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/student-mh-referrals/gateway/gateway"
)

// stubDefinitions answers every service with def, or fails with err.
type stubDefinitions struct {
	def *gateway.MessageDefinition
	err error
}

func (s stubDefinitions) Definition(context.Context, *gateway.Service) (*gateway.MessageDefinition, error) {
	return s.def, s.err
}

// TestDefinitionAtAcceptance: a submission whose receiver's
// MessageDefinition cannot be had is 503 with Retry-After and nothing is
// stored; one whose definition demands what the policies withhold is a
// refusal (403) naming the definition, recorded as a decision, and nothing
// is queued; one whose definition is met is accepted with it in the queued
// Bundle.
func TestDefinitionAtAcceptance(t *testing.T) {
	const url = "https://receiver.example.org/MessageDefinition/urgent-care"
	st, err := openStore(context.Background(), testStore(t, "sqlite"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	srv, a, _ := faultAPI(t, st)

	a.evaluator.Definitions = stubDefinitions{err: &gateway.Error{Code: gateway.EUNAVAILABLE, Err: errors.New("connection refused")}}
	ans := postCase(t, srv, "DEF-DOWN")
	if ans.status != http.StatusServiceUnavailable || ans.header.Get("Retry-After") != "30" || !strings.Contains(string(ans.body), "MessageDefinition") {
		t.Fatalf("receiver's definition unavailable: %d, Retry-After %q: %s", ans.status, ans.header.Get("Retry-After"), ans.body)
	}
	assertHolding(t, st, "DEF-DOWN", heldNothing)

	a.evaluator.Definitions = stubDefinitions{def: &gateway.MessageDefinition{URL: url, Focus: []gateway.DefinitionFocus{
		{Code: "Patient", Min: 1, Max: "1"}, {Code: "Encounter", Min: 1, Max: "1"}, {Code: "AllergyIntolerance", Min: 1, Max: "1"},
	}}}
	ans = postCase(t, srv, "DEF-DEMANDS")
	if body := string(ans.body); ans.status != http.StatusForbidden || !strings.Contains(body, url) || !strings.Contains(body, "M-01") ||
		!strings.Contains(body, "at least 1 Encounter") {
		t.Fatalf("a definition demanding what is not sent: %d %s", ans.status, ans.body)
	}
	assertHolding(t, st, "DEF-DEMANDS", holding{decisions: 1})

	a.evaluator.Definitions = stubDefinitions{def: &gateway.MessageDefinition{URL: url, Focus: []gateway.DefinitionFocus{{Code: "Patient", Min: 1, Max: "1"}}}}
	if ans = postCase(t, srv, "DEF-MET"); ans.status != http.StatusAccepted {
		t.Fatalf("a definition that is met: %d %s", ans.status, ans.body)
	}
	assertHolding(t, st, "DEF-MET", heldOnce)
	found := false
	for _, m := range allMessages(t, st) {
		if m.CaseID != "DEF-MET" {
			continue
		}
		found = true
		full, err := st.Message(context.Background(), m.ID)
		if err != nil || !strings.Contains(string(full.Body), `"definition":"`+url+`"`) {
			t.Errorf("the queued Bundle does not name the definition (%v)", err)
		}
	}
	if !found {
		t.Error("no queued message of DEF-MET")
	}

	// The receiver's definition cannot be had now: a withdrawal still
	// goes, under the definition the referral was sent under.
	var ref struct{ ID string }
	if err := json.Unmarshal(ans.body, &ref); err != nil || ref.ID == "" {
		t.Fatalf("no referral id in %s", ans.body)
	}
	a.evaluator.Definitions = stubDefinitions{err: &gateway.Error{Code: gateway.EUNAVAILABLE, Err: errors.New("connection refused")}}
	if c := boundedCall(t, srv, "POST", "/v1/referrals/"+ref.ID+"/$cancel", nil); c.status != http.StatusOK {
		t.Fatalf("a withdrawal while the definition is unavailable: %d %s", c.status, c.body)
	}
	withdrawn := false
	for _, m := range allMessages(t, st) {
		if m.CaseID == "DEF-MET" && m.Kind == gateway.KindCancel {
			full, err := st.Message(context.Background(), m.ID)
			withdrawn = err == nil && strings.Contains(string(full.Body), `"definition":"`+url+`"`)
		}
	}
	if !withdrawn {
		t.Error("no withdrawal queued under the definition the referral was sent under")
	}
}
