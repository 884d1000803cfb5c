package sqlstore_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/student-mh-referrals/gateway/gateway"
)

// decisionBody is a decision record body as the intake writes it.
func decisionBody(caseID, student, service string, allow, dryRun bool, denied ...string) json.RawMessage {
	e := gateway.DecisionEntry{
		DecisionID: gateway.DeriveID("decision", caseID, student, fmt.Sprint(allow, dryRun, denied)),
		CaseID:     caseID, Student: student, Allow: allow, DryRun: dryRun, Route: "consent",
		Outcome: map[bool]string{true: gateway.OutcomeAllow, false: gateway.OutcomeDeny}[allow],
		Rules:   []gateway.RuleResult{{ID: "K-01", Effect: gateway.EffectAllow}},
	}
	if allow {
		e.DataCategories = []string{"demographics", "risk-formulation"}
	}
	for _, id := range denied {
		e.Rules = append(e.Rules, gateway.RuleResult{ID: id, Effect: gateway.EffectDeny})
	}
	e.Recipient.Service = service
	b, _ := json.Marshal(e)
	return b
}

// allowVersion accepts a version of a case whose decision names it.
func allowVersion(t *testing.T, s gateway.Store, inst, caseID, content, previous, student string, at time.Time) gateway.AcceptResult {
	req := newAcceptRequest(inst, caseID, content, previous, at)
	req.Decision.Body = decisionBody(caseID, student, "u-cope", true, false)
	return accept(t, s, req)
}

func deny(t *testing.T, s gateway.Store, inst, caseID, student string, dryRun bool, at time.Time, denied ...string) {
	body := decisionBody(caseID, student, "u-cope", false, dryRun, denied...)
	if _, err := s.AppendDecision(context.Background(), gateway.DecisionRecord{Institution: inst, DecisionID: gateway.DeriveID("d", caseID, at.String()), At: at, Body: body}); err != nil {
		t.Fatal(err)
	}
}

// TestEvaluationFacts checks the facts the figures are computed from: one
// per case (its latest version and decision), never a dry run or an
// action, with the status the referral has today.
func TestEvaluationFacts(t *testing.T) {
	forEachDialect(t, func(t *testing.T, open func(testing.TB) *store) {
		ctx := context.Background()
		s := open(t)
		day := func(n int) time.Time { return t0.AddDate(0, 0, n) }
		// C1: refused, then allowed and acknowledged.
		deny(t, s, instA, "C1", "p1", false, day(0), "C-01")
		c1 := allowVersion(t, s, instA, "C1", "a", "", "p1", day(1))
		if _, _, err := recordStep(s, c1.Message, gateway.StepAccepted, day(3), "r1"); err != nil {
			t.Fatal(err)
		}
		// C2: two versions, the second rejected.
		v1 := allowVersion(t, s, instA, "C2", "a", "", "p2", day(2))
		v2 := allowVersion(t, s, instA, "C2", "b", v1.Referral.ID, "p2", day(5))
		if _, _, err := recordStep(s, v2.Message, gateway.StepRejected, day(6), "r2"); err != nil {
			t.Fatal(err)
		}
		// C3: refused only; C4: a dry run only; an action record.
		deny(t, s, instA, "C3", "p1", false, day(4), "C-02", "E-01")
		deny(t, s, instA, "C4", "p4", true, day(4), "C-02")
		if _, err := gateway.AppendAction(ctx, s, gateway.ActionEntry{Action: gateway.ActionReferralCancel, Institution: instA, CaseID: "C1", By: "test"}, day(4)); err != nil {
			t.Fatal(err)
		}
		// C5: allowed then cancelled; C6: after the window; B's case.
		c5 := allowVersion(t, s, instA, "C5", "a", "", "p5", day(7))
		must[gateway.StoredReferral](t)(s.Cancel(ctx, gateway.CancelRequest{Institution: instA, ReferralID: c5.Referral.ID, Bundle: json.RawMessage(`{}`), At: day(8)}))
		allowVersion(t, s, instA, "C6", "a", "", "p6", day(40))
		allowVersion(t, s, instB, "C1", "a", "", "p1", day(1))

		src := s.Store.(gateway.EvaluationSource)
		got := must[gateway.EvaluationFacts](t)(src.EvaluationFacts(ctx, []string{instA}, day(0), day(30)))
		cats := []string{"demographics", "risk-formulation"}
		want := []gateway.CaseFacts{
			{Institution: instA, Service: "u-cope", Student: "p1", ReferredAt: day(1), Allowed: true, Route: "consent", Categories: cats, AcknowledgedAt: day(3), AcceptedAt: day(3), Outcome: gateway.OutcomeAccepted},
			{Institution: instA, Service: "u-cope", Student: "p2", ReferredAt: day(2), Allowed: true, Route: "consent", Categories: cats, AcknowledgedAt: day(6), RejectedAt: day(6), Outcome: gateway.OutcomeRejected},
			{Institution: instA, Service: "u-cope", Student: "p1", ReferredAt: day(4), Route: "consent", RefusedBy: []string{"C-02", "E-01"}, Outcome: gateway.OutcomeRefused},
			{Institution: instA, Service: "u-cope", Student: "p5", ReferredAt: day(7), Allowed: true, Route: "consent", Categories: cats, Outcome: gateway.OutcomeCancelled},
		}
		if fmt.Sprintf("%+v", got.Cases) != fmt.Sprintf("%+v", want) {
			t.Errorf("facts\n got %+v\nwant %+v", got.Cases, want)
		}
		if !got.ReturnPath {
			t.Error("ReturnPath not set: the store keeps the timeline")
		}
		both := must[gateway.EvaluationFacts](t)(src.EvaluationFacts(ctx, []string{instA, instB}, day(0), day(30)))
		if len(both.Cases) != 5 || both.Cases[4].Institution != instB {
			t.Errorf("two institutions: %+v", both.Cases)
		}
		// From after C1's first decision but before it was allowed: C1 is
		// counted when it was referred (allowed).
		late := must[gateway.EvaluationFacts](t)(src.EvaluationFacts(ctx, []string{instA}, day(1), day(2)))
		if len(late.Cases) != 1 || late.Cases[0].Student != "p1" {
			t.Errorf("window [day 1, day 2): %+v", late.Cases)
		}
	})
}

// TestEvaluationTimelineFacts checks what the return path's timeline gives
// the figures: acknowledgement at the service's first answer of any kind,
// acceptance and rejection at their first report, the first appointment
// (booked, or a walk-in seen), whether the student ever missed one, and the
// outcome the latest step leaves.
func TestEvaluationTimelineFacts(t *testing.T) {
	forEachDialect(t, func(t *testing.T, open func(testing.TB) *store) {
		s := open(t)
		day := func(n int) time.Time { return t0.AddDate(0, 0, n) }
		type step struct {
			step       gateway.Step
			at         time.Time
			appt       string
			apptAt     time.Time
			responseID string
		}
		journeys := []struct {
			caseID string
			steps  []step
			want   gateway.CaseFacts
		}{
			{"J1", []step{
				{gateway.StepAccepted, day(1), "", time.Time{}, "j1-1"},
				{gateway.StepBooked, day(2), "A1", day(9), "j1-2"},
				{gateway.StepDidNotAttend, day(9), "A1", time.Time{}, "j1-3"},
				{gateway.StepBooked, day(10), "A2", day(16), "j1-4"}, // recorded as rebooked
				{gateway.StepSeen, day(16), "A2", time.Time{}, "j1-5"},
				{gateway.StepDischarged, day(40), "", time.Time{}, "j1-6"},
			}, gateway.CaseFacts{AcknowledgedAt: day(1), AcceptedAt: day(1), FirstAppointmentAt: day(9), DNA: true, Outcome: gateway.OutcomeDischarged}},
			{"J2", []step{
				{gateway.StepRejected, day(3), "", time.Time{}, "j2-1"},
			}, gateway.CaseFacts{AcknowledgedAt: day(3), RejectedAt: day(3), Outcome: gateway.OutcomeRejected}},
			{"J3", []step{ // a walk-in: seen with no booking and no acceptance first
				{gateway.StepSeen, day(5), "", time.Time{}, "j3-1"},
			}, gateway.CaseFacts{AcknowledgedAt: day(5), FirstAppointmentAt: day(5), Outcome: gateway.OutcomeSeen}},
		}
		for _, j := range journeys {
			res := allowVersion(t, s, instA, j.caseID, "a", "", "p-"+j.caseID, day(0))
			for _, st := range j.steps {
				if _, _, err := bookStep(s, res.Message, st.step, st.at, st.responseID, st.appt, st.apptAt); err != nil {
					t.Fatalf("%s %s: %v", j.caseID, st.step, err)
				}
			}
		}
		got := must[gateway.EvaluationFacts](t)(s.Store.(gateway.EvaluationSource).EvaluationFacts(context.Background(), []string{instA}, day(0), day(60)))
		if len(got.Cases) != len(journeys) {
			t.Fatalf("%d cases, want %d: %+v", len(got.Cases), len(journeys), got.Cases)
		}
		for i, j := range journeys {
			c := got.Cases[i]
			timeline := gateway.CaseFacts{AcknowledgedAt: c.AcknowledgedAt, AcceptedAt: c.AcceptedAt, RejectedAt: c.RejectedAt, FirstAppointmentAt: c.FirstAppointmentAt, DNA: c.DNA, Outcome: c.Outcome}
			if c.Student != "p-"+j.caseID || fmt.Sprintf("%+v", timeline) != fmt.Sprintf("%+v", j.want) {
				t.Errorf("%s: %s\n got %+v\nwant %+v", j.caseID, c.Student, timeline, j.want)
			}
		}
	})
}
