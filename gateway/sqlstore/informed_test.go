package sqlstore_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/student-mh-referrals/gateway/gateway"
)

// TestNotices is the behaviour suite of what the store keeps for telling
// students (T-01), on every database: which shares were delivered, which
// students were told, and the confirmation's place in the audit trail.
func TestNotices(t *testing.T) {
	forEachDialect(t, func(t *testing.T, open func(testing.TB) *store) { testNotices(t, open(t)) })
}

// shareRequest is an accept request whose decision record is a real
// decision entry, as the intake writes it.
func shareRequest(t *testing.T, inst, caseID string, at time.Time, informed string) gateway.AcceptRequest {
	req := newAcceptRequest(inst, caseID, caseID, "", at)
	e := gateway.DecisionEntry{DecisionID: req.Decision.DecisionID, Institution: inst, CaseID: caseID, Allow: true, Route: "consent",
		DataCategories: []string{"demographics", "needs"}, Recipient: gateway.Recipient{Service: "u-cope", ODSCode: "RW4", Name: "U-COPE"}}
	if informed != "" {
		e.Route = "safeguarding"
		e.Override = &gateway.OverrideEntry{Ground: "safeguarding", StudentInformed: informed}
		e.Obligations = []gateway.Obligation{{Type: gateway.ObligationNotifyStudent, Rule: "T-01", Message: "as soon as it is safe"}}
	}
	req.Decision.Body = must[[]byte](t)(json.Marshal(e))
	return req
}

func informedRequest(t *testing.T, inst, id, method string, at time.Time) gateway.InformedRequest {
	rec := must[gateway.DecisionRecord](t)(gateway.NewActionRecord(gateway.ActionEntry{
		Action: gateway.ActionStudentInformed, By: "cms", Institution: inst, ReferralID: id, Reason: method,
	}, at))
	return gateway.InformedRequest{Institution: inst, ReferralID: id, Informed: gateway.StudentInformedRecord{At: at, Method: method}, Action: rec}
}

func testNotices(t *testing.T, s *store) {
	ctx := context.Background()
	t0 := time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)
	first := accept(t, s, shareRequest(t, instA, "case-1", t0, "")).Referral
	held := accept(t, s, shareRequest(t, instA, "case-2", t0.Add(time.Minute), "not-informed")).Referral
	dead := accept(t, s, shareRequest(t, instA, "case-3", t0.Add(2*time.Minute), "")).Referral
	other := accept(t, s, shareRequest(t, instB, "case-1", t0.Add(3*time.Minute), "")).Referral

	sh := must[gateway.Share](t)(s.Share(ctx, instA, first.ID))
	if !sh.DeliveredAt.IsZero() || sh.Informed != nil || sh.Decision.Route != "consent" || sh.Referral.Status != gateway.StatusQueued {
		t.Fatalf("a share not yet sent: %+v", sh)
	}
	if got := must[[]gateway.Share](t)(s.Untold(ctx, instA, 10)); len(got) != 0 {
		t.Fatalf("untold before any delivery: %d shares", len(got))
	}
	_, err := s.RecordInformed(ctx, informedRequest(t, instA, first.ID, "email", t0.Add(time.Hour)))
	wantCode(t, err, gateway.ECONFLICT) // not delivered

	// Deliver all four, oldest last, except the dead-lettered one.
	t1 := t0.Add(10 * time.Minute)
	for i, m := range claim(t, s, "worker-1", 10, t1) {
		a := gateway.Attempt{Result: gateway.AttemptDelivered, At: t1.Add(time.Duration(10-i) * time.Second)}
		if m.ReferralID == dead.ID {
			a.Result = gateway.AttemptDeadLettered
		}
		attempt(t, s, m, a)
	}
	sh = must[gateway.Share](t)(s.Share(ctx, instA, first.ID))
	if sh.DeliveredAt.IsZero() || sh.Referral.Status != gateway.StatusDelivered {
		t.Fatalf("a delivered share: %+v", sh)
	}
	if h := must[gateway.Share](t)(s.Share(ctx, instA, held.ID)).HeldBack(); h == nil || h.Status != "not-informed" || h.Rule != "T-01" {
		t.Fatalf("held back: %+v", h)
	}
	untold := must[[]gateway.Share](t)(s.Untold(ctx, instA, 10))
	if len(untold) != 2 || untold[0].Referral.ID != first.ID || untold[1].Referral.ID != held.ID {
		t.Fatalf("untold shares of A, oldest first, without the dead-lettered one: %+v", untold)
	}
	if got := must[[]gateway.Share](t)(s.Untold(ctx, instA, 1)); len(got) != 1 {
		t.Fatalf("the limit: %d shares", len(got))
	}

	// Tenancy: B's share is not A's.
	_, err = s.Share(ctx, instA, other.ID)
	wantCode(t, err, gateway.ENOTFOUND)
	_, err = s.RecordInformed(ctx, informedRequest(t, instA, other.ID, "email", t1))
	wantCode(t, err, gateway.ENOTFOUND)

	// Told: recorded on the referral and in the chain, in one go.
	head := must[[]gateway.DecisionRecord](t)(s.Decisions(ctx, instA, 0, 100))
	told := t1.Add(time.Hour)
	sh = must[gateway.Share](t)(s.RecordInformed(ctx, informedRequest(t, instA, first.ID, "letter", told)))
	if sh.Informed == nil || !sh.Informed.At.Equal(told) || sh.Informed.Method != "letter" {
		t.Fatalf("recorded: %+v", sh.Informed)
	}
	if got := must[gateway.Share](t)(s.Share(ctx, instA, first.ID)).Informed; got == nil || !got.At.Equal(told) || got.Method != "letter" {
		t.Fatalf("read back: %+v", got)
	}
	recs := must[[]gateway.DecisionRecord](t)(s.Decisions(ctx, instA, 0, 100))
	if len(recs) != len(head)+1 {
		t.Fatalf("%d records after the confirmation, want %d", len(recs), len(head)+1)
	}
	a := must[gateway.AuditRecord](t)(gateway.ParseAuditRecord(recs[len(recs)-1]))
	if a.Action == nil || a.Action.Action != gateway.ActionStudentInformed || a.Action.ReferralID != first.ID || a.Action.Reason != "letter" {
		t.Fatalf("the action record: %+v", a.Action)
	}
	if v := must[gateway.ChainVerification](t)(s.Verify(ctx, instA)); !v.OK {
		t.Fatalf("the chain after a confirmation: %+v", v)
	}
	untold = must[[]gateway.Share](t)(s.Untold(ctx, instA, 10))
	if len(untold) != 1 || untold[0].Referral.ID != held.ID {
		t.Fatalf("untold after telling one: %+v", untold)
	}

	// A second confirmation is refused and nothing more is recorded; the
	// answer carries what is on record.
	sh, err = s.RecordInformed(ctx, informedRequest(t, instA, first.ID, "email", told.Add(time.Hour)))
	wantCode(t, err, gateway.ECONFLICT)
	if sh.Informed == nil || sh.Informed.Method != "letter" {
		t.Fatalf("the conflict's share: %+v", sh.Informed)
	}
	if n := len(must[[]gateway.DecisionRecord](t)(s.Decisions(ctx, instA, 0, 100))); n != len(recs) {
		t.Fatalf("a refused confirmation appended: %d records, want %d", n, len(recs))
	}
	_, err = s.RecordInformed(ctx, gateway.InformedRequest{Institution: instA, ReferralID: held.ID})
	wantCode(t, err, gateway.EINVALID)

	// A later version of the held-back case, which lets the student be
	// told, replaces it in the list once it is delivered, not before.
	v2req := shareRequest(t, instA, "case-2", t1.Add(2*time.Hour), "")
	v2req = newAcceptRequestLike(v2req, "case-2 v2", held.ID)
	v2 := accept(t, s, v2req).Referral
	if got := must[[]gateway.Share](t)(s.Untold(ctx, instA, 10)); len(got) != 1 || got[0].Referral.ID != held.ID {
		t.Fatalf("before the new version is delivered: %+v", got)
	}
	t2 := t1.Add(3 * time.Hour)
	for _, m := range claim(t, s, "worker-1", 10, t2) {
		attempt(t, s, m, gateway.Attempt{Result: gateway.AttemptDelivered, At: t2})
	}
	if got := must[[]gateway.Share](t)(s.Untold(ctx, instA, 10)); len(got) != 1 || got[0].Referral.ID != v2.ID || got[0].HeldBack() != nil {
		t.Fatalf("after the new version is delivered, the case's untold share is it, not held back: %+v", got)
	}
}

// newAcceptRequestLike is req as a new version of its case with other
// content, after previousID.
func newAcceptRequestLike(req gateway.AcceptRequest, content, previousID string) gateway.AcceptRequest {
	next := newAcceptRequest(req.Institution, req.CaseID, content, previousID, req.At)
	next.Decision.Body = req.Decision.Body
	return next
}
