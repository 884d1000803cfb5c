package gateway_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/student-mh-referrals/gateway/gateway"
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
// force).
func TestReplayDecidesAsRecorded(t *testing.T) {
	ctx := context.Background()
	at := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	dec, cases := exampleDecisions(t, at, time.Minute)
	for _, c := range []struct {
		name     string
		revision string // the revision the records name
		inForce  bool   // whether the set in force decides again
	}{
		{"made under another revision", "sha256:older", true},
		{"made under the revision in force", dec.Revision(), false},
	} {
		t.Run(c.name, func(t *testing.T) {
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
				e["policyRevision"] = c.revision
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
				// The evaluator stamps the id and time on a decision
				// after the policies made it.
				want.ID, want.Time = "", ""
				sets := map[string]map[time.Time]*gateway.Decision{"candidate": spy.candidate}
				if c.inForce {
					sets["set in force"] = spy.inForce
				}
				for set, got := range sets {
					d := got[at.Add(time.Duration(i)*time.Minute)]
					if d == nil || !reflect.DeepEqual(*d, want) {
						t.Errorf("%s: the %s decides\n%+v\nrecorded\n%+v", ex.name, set, d, want)
					}
				}
			}
		})
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
