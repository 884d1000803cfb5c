package http

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/student-mh-referrals/gateway/gateway"
)

// fakeDefinitions answers every service with def, or fails with err.
type fakeDefinitions struct {
	def *gateway.MessageDefinition
	err error
}

func (f fakeDefinitions) Definition(context.Context, *gateway.Service) (*gateway.MessageDefinition, error) {
	return f.def, f.err
}

// definitionMapper records the definition it was given and builds a Bundle
// of a MessageHeader, a ServiceRequest and a Patient.
type definitionMapper struct{ got *string }

func (m definitionMapper) Message(ctx context.Context, in gateway.MessageInput) ([]byte, error) {
	*m.got = in.Definition
	return []byte(`{"resourceType":"Bundle","type":"message","entry":[{"resource":{"resourceType":"MessageHeader"}},` +
		`{"resource":{"resourceType":"ServiceRequest"}},{"resource":{"resourceType":"Patient"}}]}`), nil
}

// definitionDecider allows every case, as fakeDecider does, and records the
// definition the policies were given.
type definitionDecider struct {
	fakeDecider
	got **gateway.MessageDefinition
}

func (d definitionDecider) Decide(ctx context.Context, in gateway.DecisionInput) (*gateway.Decision, error) {
	*d.got = in.Definition
	return d.fakeDecider.Decide(ctx, in)
}

// TestDefinitionAtIntake: the receiver's MessageDefinition is resolved
// before the decision: the policies are given it (they refuse what they
// would not send to meet it, M-01) and it becomes MessageHeader.definition.
// A message the policies allowed that still misses it is a bug, an internal
// error (500), never a silent refusal; a definition that cannot be had is 503
// with Retry-After, and nothing is decided or built.
func TestDefinitionAtIntake(t *testing.T) {
	const url = "https://receiver.example.org/MessageDefinition/referral"
	focus := func(code string, min int, max string) []gateway.DefinitionFocus {
		return []gateway.DefinitionFocus{{Code: "Bundle", Min: 1, Max: "1"}, {Code: "Patient", Min: 1, Max: "1"}, {Code: code, Min: min, Max: max}}
	}
	tests := []struct {
		name       string
		defs       fakeDefinitions
		status     int
		outcome    string
		wantInDoc  string
		retryAfter string
	}{
		{"met", fakeDefinitions{def: &gateway.MessageDefinition{URL: url, Focus: focus("ServiceRequest", 1, "1")}}, 200, "allow", `"outcome": "allow"`, ""},
		{"only a URL", fakeDefinitions{def: &gateway.MessageDefinition{URL: url}}, 200, "allow", `"outcome": "allow"`, ""},
		{"allowed yet missing a resource", fakeDefinitions{def: &gateway.MessageDefinition{URL: url, Focus: focus("Encounter", 1, "1")}}, 500, "", "internal error", ""},
		{"allowed yet carrying too many", fakeDefinitions{def: &gateway.MessageDefinition{URL: url, Focus: focus("ServiceRequest", 0, "0")}}, 500, "", "internal error", ""},
		{"unavailable", fakeDefinitions{err: &gateway.Error{Code: gateway.EUNAVAILABLE, Err: errors.New("connection refused")}}, 503, "", "MessageDefinition", "30"},
	}
	body := exampleCase(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reg, err := gateway.NewRegistry([]gateway.Service{{ID: "u-cope", Name: "U-COPE", Organization: gateway.Organization{Name: "Mersey Care", ODSCode: "RW4"}}})
			if err != nil {
				t.Fatal(err)
			}
			var built string
			var decided *gateway.MessageDefinition
			s := &Server{
				Evaluator:    &gateway.Evaluator{Registry: reg, Decider: definitionDecider{got: &decided}, Mapper: definitionMapper{&built}, Definitions: tt.defs},
				MaxBodyBytes: 1 << 20, Schema: []byte(`{"$id":"x"}`),
				Now: func() time.Time { return time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC) },
			}
			req := httptest.NewRequest(http.MethodPost, "/v1/referrals/$evaluate", bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			rr := httptest.NewRecorder()
			s.Handler().ServeHTTP(rr, req)
			if rr.Code != tt.status || rr.Header().Get("Retry-After") != tt.retryAfter || !strings.Contains(rr.Body.String(), tt.wantInDoc) {
				t.Fatalf("status %d, Retry-After %q: %s\nwant %d, %q, mentioning %q", rr.Code, rr.Header().Get("Retry-After"), rr.Body, tt.status, tt.retryAfter, tt.wantInDoc)
			}
			if tt.defs.err != nil {
				if decided != nil || built != "" {
					t.Error("a referral was decided or a message built without its definition")
				}
				return
			}
			if decided != tt.defs.def || built != url {
				t.Errorf("the policies were given %+v, the mapping %q: want the receiver's definition in both", decided, built)
			}
			if tt.outcome == "" {
				return
			}
			var doc struct {
				Outcome  string
				Decision struct{ Allow bool }
			}
			if err := json.Unmarshal(rr.Body.Bytes(), &doc); err != nil {
				t.Fatal(err)
			}
			if doc.Outcome != tt.outcome || !doc.Decision.Allow {
				t.Errorf("outcome %s (allow %v)", doc.Outcome, doc.Decision.Allow)
			}
		})
	}
}
