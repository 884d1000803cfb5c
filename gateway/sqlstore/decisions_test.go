package sqlstore_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/student-mh-referrals/gateway/gateway"
)

// newDecision is a deny or dry-run decision record to append.
func newDecision(inst string, i int) gateway.DecisionRecord {
	id := gateway.DeriveID("decision", inst, fmt.Sprint(i))
	return gateway.DecisionRecord{
		Institution: inst, DecisionID: id, At: t0.Add(time.Duration(i) * time.Second),
		Body: json.RawMessage(fmt.Sprintf(`{"allow":false,"route":"consent","rules":["C-02"],"n":%d}`, i)),
	}
}

func testDecisionChain(t *testing.T, open func(testing.TB) *store) {
	s := open(t)
	ctx := context.Background()
	// Interleave two institutions, and an accepted referral, so that each
	// chain is per institution.
	var want []gateway.DecisionRecord
	for i := 1; i <= 6; i++ {
		want = append(want, must[gateway.DecisionRecord](t)(s.AppendDecision(ctx, newDecision(instA, i))))
		must[gateway.DecisionRecord](t)(s.AppendDecision(ctx, newDecision(instB, i)))
		if i == 3 {
			want = append(want, accept(t, s, newAcceptRequest(instA, "C1", "a", "", t0.Add(time.Minute))).Decision)
		}
	}
	prev := gateway.GenesisHash
	for i, r := range want {
		if r.Seq != int64(i+1) || r.PrevHash != prev || r.Hash != gateway.DecisionHash(r) || r.Institution != instA {
			t.Fatalf("record %d: %+v", i+1, r)
		}
		prev = r.Hash
	}
	got := must[[]gateway.DecisionRecord](t)(s.Decisions(ctx, instA, 0, 100))
	if len(got) != len(want) {
		t.Fatalf("read %d records, want %d", len(got), len(want))
	}
	for i := range got {
		if got[i].Hash != want[i].Hash || !got[i].At.Equal(want[i].At) || string(got[i].Body) != string(want[i].Body) {
			t.Fatalf("record %d read back as %+v, want %+v", i+1, got[i], want[i])
		}
	}
	if r := must[gateway.DecisionRecord](t)(s.Decision(ctx, instA, want[4].DecisionID)); r.Hash != want[4].Hash {
		t.Fatalf("decision %s by id: %+v, want %+v", want[4].DecisionID, r, want[4])
	}
	_, err := s.Decision(ctx, instB, want[3].DecisionID) // the accepted referral's: instA's
	wantCode(t, err, gateway.ENOTFOUND)
	page := must[[]gateway.DecisionRecord](t)(s.Decisions(ctx, instA, 2, 3))
	if len(page) != 3 || page[0].Seq != 3 || page[2].Seq != 5 {
		t.Fatalf("page after 2: %+v", page)
	}
	for _, inst := range []string{instA, instB} {
		v := must[gateway.ChainVerification](t)(s.Verify(ctx, inst))
		if !v.OK || v.Records != v.HeadSeq || v.HeadSeq == 0 {
			t.Fatalf("verify %s: %+v", inst, v)
		}
	}
	if v := must[gateway.ChainVerification](t)(s.Verify(ctx, "10009999")); !v.OK || v.Records != 0 {
		t.Fatalf("empty chain: %+v", v)
	}
	_, err = s.AppendDecision(ctx, gateway.DecisionRecord{Institution: instA, At: t0, Body: []byte(`{}`)})
	wantCode(t, err, gateway.EINVALID)
	// The store itself refuses to rewrite history.
	for _, q := range []string{
		`UPDATE decision_records SET body = '{}' WHERE seq = 1`,
		`DELETE FROM decision_records WHERE seq = 1`,
	} {
		if err := s.Exec(ctx, q); err == nil {
			t.Fatalf("%q succeeded; decision_records must be append-only", q)
		}
	}
}

// testConcurrentAppends: appends for one institution from many goroutines and
// two handles never fork the chain.
func testConcurrentAppends(t *testing.T, open func(testing.TB) *store) {
	s := open(t)
	other := s.another(t)
	ctx := context.Background()
	const workers, each = 16, 8
	var wg sync.WaitGroup
	errs := make(chan error, workers*each)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var st gateway.Store = s
			if w%2 == 1 {
				st = other
			}
			for i := 0; i < each; i++ {
				inst := instA
				if i%4 == 3 {
					inst = instB
				}
				if _, err := st.AppendDecision(ctx, newDecision(inst, w*each+i)); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	total := int64(0)
	for _, inst := range []string{instA, instB} {
		v := must[gateway.ChainVerification](t)(s.Verify(ctx, inst))
		if !v.OK {
			t.Fatalf("chain %s forked or broke: %+v", inst, v)
		}
		total += v.Records
	}
	if total != workers*each {
		t.Fatalf("chains hold %d records, want %d", total, workers*each)
	}
}

// testTampering alters the chain behind the store's back and expects Verify
// to name the first record at fault and how.
func testTampering(t *testing.T, open func(testing.TB) *store) {
	inst := sqlQuote(instA)
	where := func(seq int) string { return fmt.Sprintf("institution = %s AND seq = %d", inst, seq) }
	tests := []struct {
		name    string
		queries []string
		seq     int64
		problem gateway.ChainProblem
	}{
		{"alter a body", []string{`UPDATE decision_records SET body = '{"allow":true}' WHERE ` + where(3)}, 3, gateway.ChainAltered},
		{"alter a decision id", []string{`UPDATE decision_records SET decision_id = 'x' WHERE ` + where(2)}, 2, gateway.ChainAltered},
		{"alter a body and its hash", []string{`UPDATE decision_records SET body = '{}', hash = '` + gateway.GenesisHash + `' WHERE ` + where(4)}, 4, gateway.ChainAltered},
		{"delete a record", []string{`DELETE FROM decision_records WHERE ` + where(3)}, 3, gateway.ChainRemoved},
		{"delete the first record", []string{`DELETE FROM decision_records WHERE ` + where(1)}, 1, gateway.ChainRemoved},
		{"delete the last record", []string{`DELETE FROM decision_records WHERE ` + where(5)}, 5, gateway.ChainRemoved},
		{"delete a record and renumber the rest", []string{
			`DELETE FROM decision_records WHERE ` + where(3),
			`UPDATE decision_records SET seq = 3 WHERE ` + where(4),
			`UPDATE decision_records SET seq = 4 WHERE ` + where(5),
			`UPDATE decision_chains SET seq = 4 WHERE institution = ` + inst,
		}, 3, gateway.ChainRemoved},
		{"swap two records", []string{
			`UPDATE decision_records SET seq = -1 WHERE ` + where(2),
			`UPDATE decision_records SET seq = 2 WHERE ` + where(4),
			`UPDATE decision_records SET seq = 4 WHERE ` + where(-1),
		}, 2, gateway.ChainReordered},
		{"swap two neighbours", []string{
			`UPDATE decision_records SET seq = -1 WHERE ` + where(1),
			`UPDATE decision_records SET seq = 1 WHERE ` + where(2),
			`UPDATE decision_records SET seq = 2 WHERE ` + where(-1),
		}, 1, gateway.ChainReordered},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := open(t)
			ctx := context.Background()
			for i := 1; i <= 5; i++ {
				must[gateway.DecisionRecord](t)(s.AppendDecision(ctx, newDecision(instA, i)))
				must[gateway.DecisionRecord](t)(s.AppendDecision(ctx, newDecision(instB, i)))
			}
			if v := must[gateway.ChainVerification](t)(s.Verify(ctx, instA)); !v.OK || v.Records != 5 {
				t.Fatalf("before tampering: %+v", v)
			}
			if err := s.Tamper(ctx, tt.queries...); err != nil {
				t.Fatal(err)
			}
			v := must[gateway.ChainVerification](t)(s.Verify(ctx, instA))
			if v.OK || v.BadSeq != tt.seq || v.Problem != tt.problem {
				t.Fatalf("verify = ok %v, seq %d, %s (%s); want seq %d, %s", v.OK, v.BadSeq, v.Problem, v.Detail, tt.seq, tt.problem)
			}
			if v := must[gateway.ChainVerification](t)(s.Verify(ctx, instB)); !v.OK {
				t.Fatalf("the other institution's chain: %+v", v)
			}
		})
	}
}

func testPurge(t *testing.T, open func(testing.TB) *store) {
	s := open(t)
	ctx := context.Background()
	// Old and delivered, old and failed: purged; old but still queued,
	// recent: kept.
	old := accept(t, s, newAcceptRequest(instA, "C-old", "a", "", t0))
	failed := accept(t, s, newAcceptRequest(instA, "C-failed", "a", "", t0.Add(time.Second)))
	queued := accept(t, s, newAcceptRequest(instA, "C-queued", "a", "", t0.Add(2*time.Second)))
	ms := claim(t, s, "w", 2, t0.Add(time.Minute))
	if len(ms) != 2 || ms[0].ID != old.Message.ID || ms[1].ID != failed.Message.ID {
		t.Fatalf("claimed %+v, want the two oldest", ms)
	}
	attempt(t, s, ms[0], gateway.Attempt{Result: gateway.AttemptDelivered, At: t0.Add(time.Minute)})
	attempt(t, s, ms[1], gateway.Attempt{Result: gateway.AttemptFailed, At: t0.Add(time.Minute), Response: []byte(`{"resourceType":"OperationOutcome"}`)})
	if _, _, err := recordStep(s, ms[0], gateway.StepAccepted, t0.Add(2*time.Minute), "r-old"); err != nil {
		t.Fatal(err)
	}
	recent := accept(t, s, newAcceptRequest(instA, "C-recent", "a", "", t0.Add(48*time.Hour)))
	for _, m := range claim(t, s, "w", 10, t0.Add(48*time.Hour)) {
		if m.ID == recent.Message.ID {
			attempt(t, s, m, gateway.Attempt{Result: gateway.AttemptDelivered, At: t0.Add(48 * time.Hour)})
		}
	}
	before := t0.Add(24 * time.Hour)
	now := t0.Add(72 * time.Hour)
	n := must[int](t)(s.PurgeContent(ctx, before, now))
	if n != 2 {
		t.Fatalf("purged %d referrals, want 2", n)
	}
	got := must[gateway.StoredReferral](t)(s.Referral(ctx, instA, old.Referral.ID))
	if got.Record != nil || got.Bundle != nil || got.Response != nil || !got.PurgedAt.Equal(now) ||
		got.Status != gateway.StatusServiceAccepted || !got.AcknowledgedAt.Equal(t0.Add(2*time.Minute)) || got.DecisionID != old.Referral.DecisionID || got.ContentHash != old.Referral.ContentHash {
		t.Fatalf("purged referral %+v", got)
	}
	if msg := message(t, s, old.Message.ID); msg.Body != nil || msg.State != gateway.MessageDelivered || msg.RequestID != old.Message.RequestID {
		t.Fatalf("purged message %+v", msg)
	}
	if msg := message(t, s, failed.Message.ID); msg.Body != nil || msg.Response != nil || msg.State != gateway.MessageFailed {
		t.Fatalf("purged failed message %+v", msg)
	}
	// Nothing is left to send, so an operator cannot put it back.
	wantCode(t, s.Retry(ctx, failed.Message.ID, at(operator, now)), gateway.ECONFLICT)
	for _, keep := range []gateway.AcceptResult{queued, recent} {
		got := must[gateway.StoredReferral](t)(s.Referral(ctx, instA, keep.Referral.ID))
		if got.Record == nil || got.Bundle == nil || !got.PurgedAt.IsZero() {
			t.Fatalf("referral %s lost its content: %+v", keep.Referral.CaseID, got)
		}
	}
	if v := must[gateway.ChainVerification](t)(s.Verify(ctx, instA)); !v.OK || v.Records != 4 {
		t.Fatalf("decision chain after purge: %+v", v)
	}
	if n := must[int](t)(s.PurgeContent(ctx, before, now)); n != 0 {
		t.Fatalf("second purge purged %d", n)
	}
	// The timeline is status, not content: it outlives the purge, and a
	// step reported after it is recorded without storing the message again.
	if _, _, err := recordStep(s, ms[0], gateway.StepSeen, now.Add(time.Hour), "r-after-purge"); err != nil {
		t.Fatal(err)
	}
	steps := must[[]gateway.TimelineEntry](t)(s.Steps(ctx, instA, "C-old"))
	if len(steps) != 2 || steps[0].Step != gateway.StepAccepted || steps[1].Step != gateway.StepSeen {
		t.Fatalf("timeline after purge %+v", steps)
	}
	if got := must[gateway.StoredReferral](t)(s.Referral(ctx, instA, old.Referral.ID)); got.Response != nil || got.Status != gateway.StatusSeen {
		t.Fatalf("a step after purge stored %+v", got)
	}
	// The idempotency key outlives the content: a replay is still the same referral.
	res := accept(t, s, newAcceptRequest(instA, "C-old", "a", "", t0.Add(96*time.Hour)))
	if res.Created || res.Referral.ID != old.Referral.ID {
		t.Fatalf("replay after purge: created %v id %s", res.Created, res.Referral.ID)
	}
}
