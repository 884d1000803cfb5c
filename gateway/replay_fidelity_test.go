package gateway_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/student-mh-referrals/gateway/gateway"
	"github.com/student-mh-referrals/gateway/gateway/opa"
)

// spyComparison passes every replayed input to a real comparison and keeps
// what each set decided, by decision time.
type spyComparison struct {
	gateway.PolicyComparison
	mu                 sync.Mutex
	inForce, candidate map[time.Time]*gateway.Decision
}

func (s *spyComparison) DecideBoth(ctx context.Context, in gateway.ReplayInput) (*gateway.Decision, *gateway.Decision, error) {
	a, b, err := s.PolicyComparison.DecideBoth(ctx, in)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.inForce[in.At], s.candidate[in.At] = a, b
	return a, b, err
}

func (s *spyComparison) DecideCandidate(ctx context.Context, in gateway.ReplayInput) (*gateway.Decision, error) {
	b, err := s.PolicyComparison.DecideCandidate(ctx, in)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.candidate[in.At] = b
	return b, err
}

// TestReplayDecidesAsRecorded: a replay decides each example case on the
// very input its decision was made on. Replayed through the whole path
// (the retained input as the store returns it, the workers, the OPA
// comparison) under the set that made it, every example case is decided
// exactly as it was recorded, by the set in force (both sets decide a
// decision made under another revision) and by a candidate that is the
// same set (only the candidate decides one made under the revision in
// force). So it is when the cases were decided with a receiver's
// MessageDefinition (input.definition): one the messages meet (M-01 says
// so), and one that M-01 refuses, demanding a resource the policies never
// send: the replay decides with the definition each decision saw.
func TestReplayDecidesAsRecorded(t *testing.T) {
	at := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	for _, d := range []struct {
		name string
		def  *gateway.MessageDefinition
		// check is what the definition must have done to the recorded
		// decisions, so that the case tests what it says.
		check func(t *testing.T, cases []exampleDecision)
	}{
		{"without a definition", nil, func(*testing.T, []exampleDecision) {}},
		{"with a definition the messages meet", &gateway.MessageDefinition{
			URL: "https://receiver.example/MessageDefinition/met",
			Focus: []gateway.DefinitionFocus{
				{Code: "Bundle", Min: 1, Max: "1"}, {Code: "MessageHeader", Min: 1, Max: "1"},
				{Code: "ServiceRequest", Min: 1, Max: "1"}, {Code: "Patient", Min: 1, Max: "1"},
			},
		}, func(t *testing.T, cases []exampleDecision) { wantDefinitionRule(t, cases, false, "/met") }},
		{"with a definition that M-01 refuses", &gateway.MessageDefinition{
			URL:   "https://receiver.example/MessageDefinition/refused",
			Focus: []gateway.DefinitionFocus{{Code: "DocumentReference", Min: 1, Max: "*"}},
		}, func(t *testing.T, cases []exampleDecision) {
			wantDefinitionRule(t, cases, true, "/refused")
			for _, ex := range cases {
				if ex.decision.Allow {
					t.Fatalf("%s: allowed under a definition that demands what no message carries", ex.name)
				}
			}
		}},
	} {
		t.Run(d.name, func(t *testing.T) {
			dec, cases := exampleDecisions(t, at, time.Minute, d.def)
			d.check(t, cases)
			for _, c := range []struct {
				name     string
				revision string // the revision the records name
				inForce  bool   // whether the set in force decides again
			}{
				{"made under another revision", "sha256:older", true},
				{"made under the revision in force", dec.Revision(), false},
			} {
				t.Run(c.name, func(t *testing.T) { replayAsRecorded(t, dec, cases, at, c.revision, c.inForce) })
			}
		})
	}
}

// wantDefinitionRule fails unless some recorded decision has an M-01
// result that names the definition (by its URL's end) and refuses (deny)
// or not.
func wantDefinitionRule(t *testing.T, cases []exampleDecision, deny bool, url string) {
	t.Helper()
	for _, ex := range cases {
		for _, r := range ex.decision.Rules {
			if r.ID == "M-01" && (r.Effect == gateway.EffectDeny) == deny && strings.Contains(r.Message, url) {
				return
			}
		}
	}
	t.Fatalf("no decision has an M-01 result (deny %v) naming the definition %s", deny, url)
}

// replayAsRecorded replays cases, their records naming revision, under the
// set that made them and checks that each set that decides again (the set
// in force when inForce, always the candidate) decides as recorded.
func replayAsRecorded(t *testing.T, dec *opa.Decider, cases []exampleDecision, at time.Time, revision string, inForce bool) {
	ctx := context.Background()
	cmp, err := dec.Compare(ctx, os.DirFS(filepath.Join("..", "policies")))
	if err != nil {
		t.Fatal(err)
	}
	spy := &spyComparison{PolicyComparison: cmp, inForce: map[time.Time]*gateway.Decision{}, candidate: map[time.Time]*gateway.Decision{}}
	src := &recordSource{}
	for _, ex := range cases {
		var e map[string]any
		if err := json.Unmarshal(ex.record.Body, &e); err != nil {
			t.Fatal(err)
		}
		e["policyRevision"] = revision
		rec := ex.record
		rec.Body, _ = json.Marshal(e)
		src.records = append(src.records, rec)
	}
	rep, err := (&gateway.Replayer{Source: src, Log: nopLog{}}).Replay(ctx, spy, gateway.ReplayQuery{}, "test")
	if err != nil {
		t.Fatal(err)
	}
	if rep.Replayed != len(cases) || len(rep.Changed) != 0 {
		t.Fatalf("replayed %d of %d, %d changed", rep.Replayed, len(cases), len(rep.Changed))
	}
	for i, ex := range cases {
		want := *ex.decision
		// The evaluator stamps the id and time on a decision after the
		// policies made it.
		want.ID, want.Time = "", ""
		sets := map[string]map[time.Time]*gateway.Decision{"candidate": spy.candidate}
		if inForce {
			sets["set in force"] = spy.inForce
		}
		for set, got := range sets {
			d := got[at.Add(time.Duration(i)*time.Minute)]
			if d == nil || !reflect.DeepEqual(*d, want) {
				t.Errorf("%s: the %s decides\n%+v\nrecorded\n%+v", ex.name, set, d, want)
			}
		}
	}
}

// recordSource serves the records it holds.
type recordSource struct{ records []gateway.DecisionRecord }

func (s *recordSource) ReplayDecisions(_ context.Context, _ gateway.ReplayFilter, fn func(gateway.DecisionRecord) error) error {
	for _, r := range s.records {
		if err := fn(r); err != nil {
			return err
		}
	}
	return nil
}
