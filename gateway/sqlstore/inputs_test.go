package sqlstore_test

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/student-mh-referrals/gateway/gateway"
	"github.com/student-mh-referrals/gateway/gateway/sqlstore"
)

func TestDecisionInputs(t *testing.T) {
	forEachDialect(t, func(t *testing.T, open func(testing.TB) *store) { testDecisionInputs(t, open) })
}

// retained is a decision input whose registry entry is svc.
func retained(at time.Time, dryRun bool, svc string) *gateway.RetainedInput {
	snap := json.RawMessage(`{"id":"` + svc + `","name":"Service ` + svc + `"}`)
	return &gateway.RetainedInput{
		DecidedAt: at, DryRun: dryRun, Record: json.RawMessage(`{"caseId":"C-` + at.Format("150405") + `"}`),
		Service: gateway.ServiceSnapshot{Hash: "sha-" + svc, JSON: snap},
	}
}

// replayed reads every record the replay selects, by decision id.
func replayed(t *testing.T, s *store, f gateway.ReplayFilter) map[string]gateway.DecisionRecord {
	t.Helper()
	out := map[string]gateway.DecisionRecord{}
	err := s.db.ReplayDecisions(context.Background(), f, func(r gateway.DecisionRecord) error {
		out[r.DecisionID] = r
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func count(t *testing.T, s *store, table string) int {
	t.Helper()
	n, err := sqlstore.Count(context.Background(), s.db, table)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// testDecisionInputs: every decision keeps its input with its record (an
// accept, a refusal, a dry run), registry entries are stored once, the
// replay reads records with their inputs in a window, and the retention
// purge takes an input with its content.
func testDecisionInputs(t *testing.T, open func(testing.TB) *store) {
	s := open(t)
	ctx := context.Background()
	decision := func(inst, id string, at time.Time, in *gateway.RetainedInput) {
		t.Helper()
		must[gateway.DecisionRecord](t)(s.AppendDecision(ctx, gateway.DecisionRecord{
			Institution: inst, DecisionID: id, At: at, Body: json.RawMessage(`{"decisionId":"` + id + `"}`), Input: in}))
	}
	req := newAcceptRequest(instA, "C-allowed", "a", "", t0)
	req.Decision.Input = retained(t0, false, "u-cope")
	req.Decision.Input.Record = req.Record // as the intake does: the referral's record is the input's
	req.Decision.Input.Definition = &gateway.MessageDefinition{URL: "https://u-cope.example/MessageDefinition/pinned"}
	allowed := accept(t, s, req)
	refused := retained(t0.Add(time.Second), false, "u-cope")
	refused.Definition = &gateway.MessageDefinition{URL: "https://u-cope.example/MessageDefinition/r", Focus: []gateway.DefinitionFocus{
		{Code: "Observation", Min: 3, Max: "*"}, {Code: "Flag", Min: 0, Max: "1"}}}
	decision(instA, "refused", t0.Add(time.Second), refused)
	decision(instA, "dry-run", t0.Add(2*time.Second), retained(t0.Add(2*time.Second), true, "bristol-awp"))
	decision(instB, "other", t0.Add(48*time.Hour), retained(t0.Add(48*time.Hour), false, "u-cope"))
	decision(instA, "no-input", t0.Add(3*time.Second), nil)
	must[gateway.DecisionRecord](t)(gateway.AppendAction(ctx, s, gateway.ActionEntry{Action: gateway.ActionPolicyReload, By: "op", Institution: gateway.GatewayChain}, t0))

	if _, err := s.AppendDecision(ctx, gateway.DecisionRecord{Institution: instA, DecisionID: "bad", At: t0, Body: json.RawMessage(`{}`),
		Input: &gateway.RetainedInput{DecidedAt: t0, Record: json.RawMessage(`{`), Service: gateway.ServiceSnapshot{Hash: "h", JSON: json.RawMessage(`{}`)}}}); gateway.ErrorCode(err) != gateway.EINVALID {
		t.Fatalf("an input whose record is not JSON: %v", err)
	}
	if n := count(t, s, "registry_snapshots"); n != 2 {
		t.Fatalf("%d registry snapshots, want 2 (one per distinct entry)", n)
	}
	all := replayed(t, s, gateway.ReplayFilter{})
	if len(all) != 5 {
		t.Fatalf("replay read %d records, want the 5 of the institutions' chains", len(all))
	}
	got := all[req.Decision.DecisionID].Input
	if got == nil || got.ReferralID != allowed.Referral.ID || !got.DecidedAt.Equal(t0) || got.DryRun ||
		!jsonEqual(got.Record, req.Decision.Input.Record) || got.Service.Hash != "sha-u-cope" || !jsonEqual(got.Service.JSON, req.Decision.Input.Service.JSON) {
		t.Fatalf("accepted decision's input %+v", got)
	}
	// Each input keeps the MessageDefinition its decision was made with,
	// focus entries in order; one made without has none.
	for id, want := range map[string]*gateway.MessageDefinition{
		req.Decision.DecisionID: req.Decision.Input.Definition, "refused": refused.Definition, "dry-run": nil,
	} {
		if got := all[id].Input.Definition; !reflect.DeepEqual(got, want) {
			t.Errorf("%s: definition %+v, want %+v", id, got, want)
		}
	}
	if in := all["dry-run"].Input; in == nil || !in.DryRun || in.ReferralID != "" || in.Service.Hash != "sha-bristol-awp" {
		t.Fatalf("dry run's input %+v", in)
	}
	if all["no-input"].Input != nil {
		t.Fatal("a record without an input has one")
	}
	window := replayed(t, s, gateway.ReplayFilter{From: t0.Add(time.Second), To: t0.Add(3 * time.Second), Institution: instA})
	if ids := slices.Sorted(func(yield func(string) bool) {
		for id := range window {
			if !yield(id) {
				return
			}
		}
	}); !slices.Equal(ids, []string{"dry-run", "refused"}) {
		t.Fatalf("window read %v", ids)
	}

	// A day later: the refusal and the dry run go; the accepted referral
	// is still queued and keeps its content and its input; B's is recent.
	must[int](t)(s.PurgeContent(ctx, t0.Add(24*time.Hour), t0.Add(72*time.Hour)))
	after := replayed(t, s, gateway.ReplayFilter{})
	for id, want := range map[string]bool{req.Decision.DecisionID: true, "refused": false, "dry-run": false, "other": true} {
		if (after[id].Input != nil) != want {
			t.Errorf("%s: input kept %v after the purge, want %v", id, after[id].Input != nil, want)
		}
	}
	if n := count(t, s, "registry_snapshots"); n != 1 {
		t.Fatalf("%d registry snapshots after the purge, want 1 (bristol-awp's is unused)", n)
	}
	// Delivered, the referral loses its content, and its input with it.
	for _, m := range claim(t, s, "w", 10, t0.Add(time.Hour)) {
		attempt(t, s, m, gateway.Attempt{Result: gateway.AttemptDelivered, At: t0.Add(time.Hour)})
	}
	if n := must[int](t)(s.PurgeContent(ctx, t0.Add(24*time.Hour), t0.Add(72*time.Hour))); n != 1 {
		t.Fatalf("purged %d referrals", n)
	}
	if replayed(t, s, gateway.ReplayFilter{})[req.Decision.DecisionID].Input != nil {
		t.Fatal("the purged referral's input is kept")
	}
	if n := count(t, s, "decision_inputs"); n != 1 {
		t.Fatalf("%d inputs left, want B's", n)
	}
}

// benchInputs is how many refusals BenchmarkReplayDecisions reads.
const benchInputs = 2000

// BenchmarkReplayDecisions is the store's part of a replay: reading
// decision records with their retained inputs (a 4 KB record each), as
// `gateway policy replay` streams them. It reports s/100k, the time
// 100,000 such rows take to read.
func BenchmarkReplayDecisions(b *testing.B) {
	forEachDialect(b, func(b *testing.B, open func(testing.TB) *store) {
		s := open(b)
		ctx := context.Background()
		record := json.RawMessage(`{"padding":"` + strings.Repeat("x", 4<<10) + `"}`)
		for i := range benchInputs {
			in := retained(t0.Add(time.Duration(i)*time.Second), false, "u-cope")
			in.Record = record
			if _, err := s.AppendDecision(ctx, gateway.DecisionRecord{Institution: instA, DecisionID: fmt.Sprintf("d-%d", i),
				At: in.DecidedAt, Body: json.RawMessage(`{"outcome":"deny"}`), Input: in}); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportAllocs()
		b.ResetTimer()
		for b.Loop() {
			n := 0
			if err := s.db.ReplayDecisions(ctx, gateway.ReplayFilter{}, func(r gateway.DecisionRecord) error {
				if r.Input != nil {
					n++
				}
				return nil
			}); err != nil || n != benchInputs {
				b.Fatalf("%v: read %d inputs", err, n)
			}
		}
		b.ReportMetric(b.Elapsed().Seconds()/float64(b.N)/benchInputs*1e5, "s/100k")
	})
}

// benchDefinition is a MessageDefinition of the size a BaRS receiver
// publishes: its URL and a focus entry per resource of a referral.
var benchDefinition = &gateway.MessageDefinition{URL: "https://receiver.example.nhs.uk/MessageDefinition/bars-message-servicerequest-request-referral", Focus: []gateway.DefinitionFocus{
	{Code: "Bundle", Min: 1, Max: "1"}, {Code: "MessageHeader", Min: 1, Max: "1"}, {Code: "ServiceRequest", Min: 1, Max: "1"},
	{Code: "Patient", Min: 1, Max: "1"}, {Code: "Organization", Min: 1, Max: "*"}, {Code: "PractitionerRole", Min: 1, Max: "1"},
}}

// BenchmarkAcceptInput is the accept path's write with the decision's
// retained input, as the intake makes it (its record the referral's),
// without a MessageDefinition and with one, on each database: what keeping
// the definition costs an accept.
func BenchmarkAcceptInput(b *testing.B) {
	forEachDialect(b, func(b *testing.B, open func(testing.TB) *store) {
		for _, c := range []struct {
			name string
			def  *gateway.MessageDefinition
		}{{"no-definition", nil}, {"definition", benchDefinition}} {
			b.Run(c.name, func(b *testing.B) {
				s := open(b)
				ctx := context.Background()
				b.ReportAllocs()
				for i := 0; b.Loop(); i++ {
					req := paddedAcceptRequest(instA, fmt.Sprintf("B%09d", i), "a", "", t0, benchPadding)
					req.Decision.Input = retained(t0, false, "u-cope")
					req.Decision.Input.Record, req.Decision.Input.Definition = req.Record, c.def
					if _, err := s.Accept(ctx, req); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "accepts/s")
			})
		}
	})
}
