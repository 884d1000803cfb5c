package gateway_test

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/student-mh-referrals/gateway/gateway"
)

// fakeComparison decides by service: what the set in force and the
// candidate allow and send, or an error.
type fakeComparison struct {
	inForce, candidate map[string]*gateway.Decision
	fail               string
}

func (fakeComparison) Revisions() (string, string) { return "sha256:in-force", "sha256:candidate" }
func (fakeComparison) Tests() int                  { return 1 }

func (c fakeComparison) DecideBoth(ctx context.Context, in gateway.ReplayInput) (*gateway.Decision, *gateway.Decision, error) {
	b, err := c.DecideCandidate(ctx, in)
	return c.inForce[in.ServiceID], b, err
}

func (c fakeComparison) DecideCandidate(_ context.Context, in gateway.ReplayInput) (*gateway.Decision, error) {
	if in.ServiceID == c.fail {
		return nil, errors.New("the candidate cannot decide")
	}
	return c.candidate[in.ServiceID], nil
}

// memSource serves one decision per service, recorded under revision rev.
type memSource struct {
	services []string
	rev      string
}

func (s memSource) ReplayDecisions(ctx context.Context, _ gateway.ReplayFilter, fn func(gateway.DecisionRecord) error) error {
	for i, svc := range s.services {
		body, _ := json.Marshal(gateway.DecisionEntry{DecisionID: "d-" + svc, Allow: true, Outcome: "allow", Route: "consent",
			DataCategories: []string{"needs"}, PolicyRevision: s.rev})
		if err := fn(gateway.DecisionRecord{Institution: instA, Seq: int64(i + 1), DecisionID: "d-" + svc, At: t0, Body: body,
			Input: &gateway.RetainedInput{DecidedAt: t0, Record: json.RawMessage(`{}`), Service: gateway.ServiceSnapshot{JSON: json.RawMessage(`{"id":"` + svc + `"}`)}}}); err != nil {
			return err
		}
	}
	return ctx.Err()
}

func allowing(categories ...string) *gateway.Decision {
	rules := []gateway.RuleResult{{ID: "M-01", Effect: gateway.EffectAllow, Message: "sends " + strings.Join(categories, ", ")}}
	return &gateway.Decision{Allow: true, Route: "consent", DataCategories: categories, Rules: rules}
}

// TestReplayChanges: each kind of change is counted once, under the rules
// behind it; an error of either set fails the replay and records nothing,
// and so does a caller who gives up.
func TestReplayChanges(t *testing.T) {
	refusing := &gateway.Decision{Route: "consent", Rules: []gateway.RuleResult{{ID: "C-02", Effect: gateway.EffectDeny}}}
	cmp := fakeComparison{
		inForce:   map[string]*gateway.Decision{"same": allowing("needs"), "tighter": allowing("needs"), "looser": refusing, "fewer": allowing("needs", "risk")},
		candidate: map[string]*gateway.Decision{"same": allowing("needs"), "tighter": refusing, "looser": allowing("needs"), "fewer": allowing("needs")},
	}
	log := &memLog{}
	r := &gateway.Replayer{Source: memSource{services: []string{"same", "tighter", "looser", "fewer"}, rev: "sha256:older"}, Log: log}
	rep, err := r.Replay(context.Background(), cmp, gateway.ReplayQuery{}, "lead")
	if err != nil {
		t.Fatal(err)
	}
	want := gateway.ReplayTotals{Replayed: 4, ReplayChanges: gateway.ReplayChanges{AllowToDeny: 1, DenyToAllow: 1, CategoriesChanged: 1}}
	if rep.ReplayTotals != want || len(rep.Changed) != 3 {
		t.Fatalf("%+v, want %+v", rep.ReplayTotals, want)
	}
	rules := map[string][]string{}
	for _, c := range rep.Changed {
		rules[c.Service] = c.Rules
	}
	if !slices.Equal(rules["tighter"], []string{"C-02"}) || !slices.Equal(rules["looser"], []string{"C-02"}) || !slices.Equal(rules["fewer"], []string{"M-01"}) {
		t.Fatalf("rules behind the changes: %v", rules)
	}
	if rep.ByRule["C-02"] != (gateway.ReplayChanges{AllowToDeny: 1, DenyToAllow: 1}) || rep.ByRoute["consent"] != want.ReplayChanges {
		t.Fatalf("byRule %v, byRoute %v", rep.ByRule, rep.ByRoute)
	}
	if len(log.recs) != 1 {
		t.Fatalf("%d action records", len(log.recs))
	}

	// Recorded under the revision in force: the record stands for that
	// set (it allowed every one), and only the candidate decides.
	r.Source = memSource{services: []string{"same", "looser"}, rev: "sha256:in-force"}
	rep, err = r.Replay(context.Background(), cmp, gateway.ReplayQuery{}, "lead")
	if err != nil || rep.InForceAsRecorded != 2 || rep.AllowToDeny+rep.DenyToAllow+rep.CategoriesChanged != 0 {
		t.Fatalf("%v: %+v", err, rep.ReplayTotals)
	}

	cmp.fail = "looser"
	r.Source = memSource{services: []string{"same", "tighter", "looser", "fewer"}, rev: "sha256:older"}
	if _, err := r.Replay(context.Background(), cmp, gateway.ReplayQuery{}, "lead"); err == nil {
		t.Fatal("a candidate that cannot decide gave a report")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	cmp.fail = ""
	if _, err := r.Replay(ctx, cmp, gateway.ReplayQuery{}, "lead"); gateway.ErrorCode(err) != gateway.EUNAVAILABLE {
		t.Fatalf("cancelled: %v", err)
	}
	if len(log.recs) != 2 {
		t.Fatalf("%d action records; a failed replay must record none", len(log.recs))
	}
}

// memLog keeps appended records.
type memLog struct {
	gateway.AuditTrail
	recs []gateway.DecisionRecord
}

func (l *memLog) AppendDecision(_ context.Context, r gateway.DecisionRecord) (gateway.DecisionRecord, error) {
	l.recs = append(l.recs, r)
	return r, nil
}
