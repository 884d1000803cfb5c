package sqlstore_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/student-mh-referrals/gateway/gateway"
)

// bundleID is the id of the Bundle that newAcceptRequest queues for a
// referral.
func bundleID(referralID string) string { return "bundle-" + referralID }

// recordStep records a step about message m at the given time, as the
// receiver's response responseID.
func recordStep(s gateway.Store, m gateway.OutboxMessage, step gateway.Step, at time.Time, responseID string) (gateway.StoredReferral, gateway.TimelineEntry, error) {
	return bookStep(s, m, step, at, responseID, "", time.Time{})
}

func bookStep(s gateway.Store, m gateway.OutboxMessage, step gateway.Step, at time.Time, responseID, appt string, start time.Time) (gateway.StoredReferral, gateway.TimelineEntry, error) {
	return s.RecordStep(context.Background(), gateway.StepRequest{
		Message: m, Response: json.RawMessage(`{"resourceType":"Bundle","id":"` + responseID + `"}`), At: at.Add(time.Minute),
		Entry: gateway.TimelineEntry{
			Step: step, At: at, ResponseID: responseID, RequestBundleID: bundleID(m.ReferralID),
			AppointmentID: appt, AppointmentStart: start,
			Codes: []gateway.StepCode{{Element: "ServiceRequest.status", System: "http://hl7.org/fhir/request-status", Code: "active"}},
		},
	})
}

// delivered accepts a case and delivers its message, as the receiver's
// response finds it.
func delivered(t *testing.T, s gateway.Store, caseID, content, previousID string, at time.Time) (gateway.AcceptResult, gateway.OutboxMessage) {
	t.Helper()
	res := accept(t, s, newAcceptRequest(instA, caseID, content, previousID, at))
	for _, m := range claim(t, s, "w", 10, at) {
		attempt(t, s, m, gateway.Attempt{Result: gateway.AttemptDelivered, At: at})
	}
	m := must[gateway.OutboxMessage](t)(s.SentMessage(context.Background(), bundleID(res.Referral.ID)))
	if m.ID != res.Message.ID || m.State != gateway.MessageDelivered || m.ServiceID != "u-cope" || m.Body != nil {
		t.Fatalf("sent message %+v", m)
	}
	return res, m
}

func refusal(t *testing.T, err error, reason string) {
	t.Helper()
	wantCode(t, err, gateway.ECONFLICT)
	if e := gateway.AsError(err); len(e.Issues) != 1 || e.Issues[0].DetailsCode != reason {
		t.Fatalf("refusal %+v, want reason %s", e, reason)
	}
}

// testSteps plays a whole journey, out of order in places, and checks the
// status, the timeline, the evaluation times and the feed.
func testSteps(t *testing.T, open func(testing.TB) *store) {
	ctx := context.Background()
	s := open(t)
	wantCode(t, func() error { _, err := s.SentMessage(ctx, "no-such-bundle"); return err }(), gateway.ENOTFOUND)
	res, m := delivered(t, s, "C1", "a", "", t0)
	day := func(n int) time.Time { return t0.Add(time.Duration(n) * 24 * time.Hour) }
	steps := []struct {
		step        gateway.Step
		at          time.Time
		appt        string
		start       time.Time
		wantStep    gateway.Step
		wantStatus  gateway.ReferralStatus
		description string
	}{
		{gateway.StepAccepted, day(1), "", time.Time{}, gateway.StepAccepted, gateway.StatusServiceAccepted, "accepted"},
		{gateway.StepBooked, day(2), "A1", day(9), gateway.StepBooked, gateway.StatusBooked, "booked"},
		{gateway.StepDidNotAttend, day(9), "A1", time.Time{}, gateway.StepDidNotAttend, gateway.StatusDidNotAttend, "missed, not rejected"},
		{gateway.StepBooked, day(10), "A2", day(16), gateway.StepRebooked, gateway.StatusRebooked, "a second booking is a rebooking"},
		{gateway.StepSeen, day(16), "", time.Time{}, gateway.StepSeen, gateway.StatusSeen, "seen"},
		{gateway.StepBooked, day(3), "A0", day(4), gateway.StepRebooked, gateway.StatusSeen, "a late booking does not rewind the status"},
		{gateway.StepDischarged, day(30), "", time.Time{}, gateway.StepDischarged, gateway.StatusDischarged, "discharged"},
	}
	for i, st := range steps {
		ref, e, err := bookStep(s, m, st.step, st.at, fmt.Sprint("r", i), st.appt, st.start)
		if err != nil {
			t.Fatalf("%s: %v", st.description, err)
		}
		if e.Step != st.wantStep || ref.Status != st.wantStatus || e.Seq == 0 || e.ReferralID != res.Referral.ID || !e.At.Equal(st.at) {
			t.Fatalf("%s: entry %+v, status %s; want %s, %s", st.description, e, ref.Status, st.wantStep, st.wantStatus)
		}
		if got := status(t, s, instA, res.Referral.ID); got != st.wantStatus {
			t.Fatalf("%s: stored status %s", st.description, got)
		}
	}
	got := must[gateway.StoredReferral](t)(s.Referral(ctx, instA, res.Referral.ID))
	if !got.AcknowledgedAt.Equal(day(1)) || !got.FirstAppointmentAt.Equal(day(4)) {
		t.Fatalf("acknowledged %v, first appointment %v; want %v, %v", got.AcknowledgedAt, got.FirstAppointmentAt, day(1), day(4))
	}
	// A duplicate changes nothing.
	_, _, err := recordStep(s, m, gateway.StepRejected, day(31), "r1")
	refusal(t, err, gateway.RefusedDuplicate)
	if st := status(t, s, instA, res.Referral.ID); st != gateway.StatusDischarged {
		t.Fatalf("a duplicate changed the status to %s", st)
	}
	timeline := must[[]gateway.TimelineEntry](t)(s.Steps(ctx, instA, "C1"))
	if len(timeline) != len(steps) {
		t.Fatalf("timeline has %d entries, want %d", len(timeline), len(steps))
	}
	for i := 1; i < len(timeline); i++ {
		if timeline[i].At.Before(timeline[i-1].At) {
			t.Fatalf("timeline out of time order: %+v", timeline)
		}
	}
	if e := timeline[1]; e.Step != gateway.StepBooked || e.AppointmentID != "A1" || !e.AppointmentStart.Equal(day(9)) ||
		len(e.Codes) != 1 || e.Codes[0].Code != "active" || e.ServiceID != "u-cope" || e.RequestBundleID != bundleID(res.Referral.ID) {
		t.Fatalf("booked entry %+v", e)
	}
	// The feed: in seq order, resumable, one institution's only.
	var feed []gateway.TimelineEntry
	for after := int64(0); ; {
		page := must[[]gateway.TimelineEntry](t)(s.StepsAfter(ctx, instA, after, 3))
		if len(page) == 0 {
			break
		}
		feed = append(feed, page...)
		after = page[len(page)-1].Seq
	}
	if len(feed) != len(steps) || feed[5].ResponseID != "r5" {
		t.Fatalf("feed %+v", feed)
	}
	if other := must[[]gateway.TimelineEntry](t)(s.StepsAfter(ctx, instB, 0, 10)); len(other) != 0 {
		t.Fatalf("another institution's feed has %+v", other)
	}
	if other := must[[]gateway.TimelineEntry](t)(s.Steps(ctx, instB, "C1")); len(other) != 0 {
		t.Fatalf("another institution's timeline has %+v", other)
	}
	_, err = s.StepsAfter(ctx, instA, 0, 0)
	wantCode(t, err, gateway.EINVALID)
	_, _, err = recordStep(s, m, "lost", day(1), "r-bad")
	wantCode(t, err, gateway.EINVALID)
}

// testStepsOfVersions: acceptance and rejection are for the current version
// only; other steps about an older version's message go on the case's
// current version; a response that overtakes the worker is kept.
func testStepsOfVersions(t *testing.T, open func(testing.TB) *store) {
	ctx := context.Background()
	s := open(t)
	v1, m1 := delivered(t, s, "C1", "a", "", t0)
	v2 := accept(t, s, newAcceptRequest(instA, "C1", "b", v1.Referral.ID, t0.Add(time.Hour)))
	_, _, err := recordStep(s, m1, gateway.StepAccepted, t0.Add(2*time.Hour), "r1")
	refusal(t, err, gateway.RefusedSuperseded)
	_, _, err = recordStep(s, m1, gateway.StepRejected, t0.Add(2*time.Hour), "r2")
	refusal(t, err, gateway.RefusedSuperseded)
	ref, e, err := recordStep(s, m1, gateway.StepSeen, t0.Add(3*time.Hour), "r3")
	if err != nil || ref.ID != v2.Referral.ID || e.ReferralID != v2.Referral.ID || ref.Status != gateway.StatusSeen {
		t.Fatalf("a walk-in reported on the older version's message: %+v %+v %v", ref, e, err)
	}
	if st := status(t, s, instA, v1.Referral.ID); st != gateway.StatusDelivered {
		t.Fatalf("the older version moved to %s", st)
	}
	// v2's message: the service accepts before the worker records its
	// delivery, which then does not overwrite the acceptance.
	m2 := claimOne(t, s, t0.Add(4*time.Hour))
	if _, _, err := recordStep(s, m2, gateway.StepAccepted, t0.Add(4*time.Hour), "r4"); err != nil {
		t.Fatal(err)
	}
	attempt(t, s, m2, gateway.Attempt{Result: gateway.AttemptDelivered, At: t0.Add(5 * time.Hour)})
	if st := status(t, s, instA, v2.Referral.ID); st != gateway.StatusServiceAccepted {
		t.Fatalf("status %s, want accepted (the latest step by its time; delivery does not overwrite it)", st)
	}
	if got := must[gateway.StoredReferral](t)(s.Referral(ctx, instA, v2.Referral.ID)); !got.AcknowledgedAt.Equal(t0.Add(4*time.Hour)) ||
		!got.FirstAppointmentAt.Equal(t0.Add(3*time.Hour)) {
		t.Fatalf("times %+v", got)
	}
	ms := must[[]gateway.OutboxMessage](t)(s.ReferralMessages(ctx, v2.Referral.ID))
	if len(ms) != 1 || ms[0].ID != m2.ID || ms[0].State != gateway.MessageDelivered || ms[0].Body != nil {
		t.Fatalf("messages of v2 %+v", ms)
	}
}
