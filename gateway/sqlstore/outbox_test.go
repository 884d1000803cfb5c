package sqlstore_test

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/student-mh-referrals/gateway/gateway"
)

const lease = 5 * time.Minute

func claim(t *testing.T, s gateway.Store, owner string, max int, now time.Time) []gateway.OutboxMessage {
	t.Helper()
	ms, err := s.Claim(context.Background(), owner, max, now, lease)
	if err != nil {
		t.Fatalf("claim: %v", err)
	}
	return ms
}

func claimOne(t *testing.T, s gateway.Store, now time.Time) gateway.OutboxMessage {
	t.Helper()
	ms := claim(t, s, "worker-1", 10, now)
	if len(ms) != 1 {
		t.Fatalf("claimed %d messages, want 1", len(ms))
	}
	return ms[0]
}

func attempt(t *testing.T, s gateway.Store, m gateway.OutboxMessage, a gateway.Attempt) {
	t.Helper()
	if err := s.RecordAttempt(context.Background(), m.ID, m.LeaseID, a); err != nil {
		t.Fatalf("record attempt %s: %v", a.Result, err)
	}
}

func status(t *testing.T, s gateway.Store, inst, id string) gateway.ReferralStatus {
	t.Helper()
	return must[gateway.StoredReferral](t)(s.Referral(context.Background(), inst, id)).Status
}

func message(t *testing.T, s gateway.Store, id string) gateway.OutboxMessage {
	t.Helper()
	return must[gateway.OutboxMessage](t)(s.Message(context.Background(), id))
}

var operator = gateway.OperatorAction{By: "ops@example.ac.uk", Reason: "receiver fixed its endpoint"}

func at(op gateway.OperatorAction, when time.Time) gateway.OperatorAction {
	op.At = when
	return op
}

func testOutbox(t *testing.T, open func(testing.TB) *store) {
	ctx := context.Background()
	outcome := json.RawMessage(`{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"invalid","details":{"coding":[{"code":"INVALID_RESOURCE"}]}}]}`)
	tests := []struct {
		name string
		run  func(t *testing.T, s gateway.Store, res gateway.AcceptResult)
	}{
		{"claim leases a due message once, with its body", func(t *testing.T, s gateway.Store, res gateway.AcceptResult) {
			if ms := claim(t, s, "w", 10, t0.Add(-time.Second)); len(ms) != 0 {
				t.Fatalf("claimed %d messages before they were due", len(ms))
			}
			m := claimOne(t, s, t0)
			if m.ID != res.Message.ID || m.State != gateway.MessageLeased || m.LeaseOwner != "worker-1" || m.LeaseID == "" ||
				m.Attempts != 1 || !m.DueAt.Equal(t0.Add(lease)) || !jsonEqual(m.Body, res.Referral.Bundle) {
				t.Fatalf("claimed %+v", m)
			}
			if ms := claim(t, s, "worker-2", 10, t0.Add(lease-time.Second)); len(ms) != 0 {
				t.Fatalf("a leased message was claimed again before its lease ran out")
			}
			if got := status(t, s, instA, res.Referral.ID); got != gateway.StatusDelivering {
				t.Fatalf("status %s after claim, want delivering", got)
			}
		}},
		{"an expired lease makes the message claimable, with the same headers", func(t *testing.T, s gateway.Store, res gateway.AcceptResult) {
			first := claimOne(t, s, t0)
			again := claim(t, s, "worker-2", 10, t0.Add(lease))
			if len(again) != 1 {
				t.Fatalf("claimed %d after the lease expired, want 1", len(again))
			}
			m := again[0]
			if m.Attempts != 2 || m.LeaseOwner != "worker-2" || m.LeaseID == first.LeaseID ||
				m.RequestID != res.Message.RequestID || m.CorrelationID != res.Message.CorrelationID {
				t.Fatalf("reclaimed %+v", m)
			}
			// The crashed worker comes back: its lease is gone.
			err := s.RecordAttempt(ctx, first.ID, first.LeaseID, gateway.Attempt{Result: gateway.AttemptDelivered, At: t0.Add(lease)})
			wantCode(t, err, gateway.ECONFLICT)
			attempt(t, s, m, gateway.Attempt{Result: gateway.AttemptDelivered, At: t0.Add(lease + time.Second)})
		}},
		{"retry waits until its time and keeps the headers", func(t *testing.T, s gateway.Store, res gateway.AcceptResult) {
			m := claimOne(t, s, t0)
			retryAt := t0.Add(10 * time.Minute)
			attempt(t, s, m, gateway.Attempt{Result: gateway.AttemptRetry, At: t0.Add(time.Second), RetryAt: retryAt, Error: "503 from receiver"})
			got := message(t, s, m.ID)
			if got.State != gateway.MessagePending || !got.DueAt.Equal(retryAt) || got.LastError != "503 from receiver" {
				t.Fatalf("after retry %+v", got)
			}
			if ms := claim(t, s, "w", 10, retryAt.Add(-time.Microsecond)); len(ms) != 0 {
				t.Fatal("claimed before the retry time")
			}
			m2 := claimOne(t, s, retryAt)
			if m2.Attempts != 2 || m2.RequestID != m.RequestID || m2.CorrelationID != m.CorrelationID {
				t.Fatalf("retried %+v", m2)
			}
			if got := status(t, s, instA, res.Referral.ID); got != gateway.StatusDelivering {
				t.Fatalf("status %s while retrying", got)
			}
		}},
		{"delivered is final", func(t *testing.T, s gateway.Store, res gateway.AcceptResult) {
			m := claimOne(t, s, t0)
			attempt(t, s, m, gateway.Attempt{Result: gateway.AttemptDelivered, At: t0.Add(time.Second)})
			if got := message(t, s, m.ID); got.State != gateway.MessageDelivered || !got.LastAttemptAt.Equal(t0) {
				t.Fatalf("message %+v", got)
			}
			if got := status(t, s, instA, res.Referral.ID); got != gateway.StatusDelivered {
				t.Fatalf("status %s", got)
			}
			err := s.RecordAttempt(ctx, m.ID, m.LeaseID, gateway.Attempt{Result: gateway.AttemptFailed, At: t0.Add(2 * time.Second)})
			wantCode(t, err, gateway.ECONFLICT)
			wantCode(t, s.Retry(ctx, m.ID, at(operator, t0.Add(time.Hour))), gateway.ECONFLICT)
			wantCode(t, s.Drop(ctx, m.ID, at(operator, t0.Add(time.Hour))), gateway.ECONFLICT)
			if ms := claim(t, s, "w", 10, t0.Add(24*time.Hour)); len(ms) != 0 {
				t.Fatal("a delivered message was claimed")
			}
		}},
		{"failed keeps the receiver's OperationOutcome; retry puts it back", func(t *testing.T, s gateway.Store, res gateway.AcceptResult) {
			m := claimOne(t, s, t0)
			attempt(t, s, m, gateway.Attempt{Result: gateway.AttemptFailed, At: t0.Add(time.Second), Error: "422 from receiver", Response: outcome})
			got := message(t, s, m.ID)
			if got.State != gateway.MessageFailed || !jsonEqual(got.Response, outcome) || got.LastError != "422 from receiver" {
				t.Fatalf("failed message %+v", got)
			}
			if st := status(t, s, instA, res.Referral.ID); st != gateway.StatusFailed {
				t.Fatalf("status %s", st)
			}
			failed := must[[]gateway.OutboxMessage](t)(s.Messages(ctx, gateway.MessageFailed, 10))
			if len(failed) != 1 || failed[0].ID != m.ID || failed[0].Body != nil {
				t.Fatalf("failed list %+v (bodies must be left out)", failed)
			}
			now := t0.Add(time.Hour)
			if err := s.Retry(ctx, m.ID, at(operator, now)); err != nil {
				t.Fatal(err)
			}
			got = message(t, s, m.ID)
			if got.State != gateway.MessagePending || !got.DueAt.Equal(now) || got.Attempts != 0 ||
				got.OperatorBy != operator.By || got.OperatorReason != operator.Reason || !got.OperatorAt.Equal(now) {
				t.Fatalf("retried message %+v", got)
			}
			if st := status(t, s, instA, res.Referral.ID); st != gateway.StatusDelivering {
				t.Fatalf("status %s after operator retry", st)
			}
			if m2 := claimOne(t, s, now); m2.RequestID != m.RequestID {
				t.Fatalf("request id changed on retry: %s, was %s", m2.RequestID, m.RequestID)
			}
		}},
		{"dead-lettered waits for an operator", func(t *testing.T, s gateway.Store, res gateway.AcceptResult) {
			m := claimOne(t, s, t0)
			attempt(t, s, m, gateway.Attempt{Result: gateway.AttemptDeadLettered, At: t0.Add(time.Second), Error: "timeout after 8 attempts"})
			if st := status(t, s, instA, res.Referral.ID); st != gateway.StatusDeadLettered {
				t.Fatalf("status %s", st)
			}
			if ms := claim(t, s, "w", 10, t0.Add(24*time.Hour)); len(ms) != 0 {
				t.Fatal("a dead message was claimed")
			}
			dead := must[[]gateway.OutboxMessage](t)(s.Messages(ctx, gateway.MessageDead, 10))
			if len(dead) != 1 || dead[0].ID != m.ID {
				t.Fatalf("dead list %+v", dead)
			}
			if err := s.Retry(ctx, m.ID, at(operator, t0.Add(time.Hour))); err != nil {
				t.Fatal(err)
			}
			claimOne(t, s, t0.Add(time.Hour))
		}},
		{"drop records who and why", func(t *testing.T, s gateway.Store, res gateway.AcceptResult) {
			wantCode(t, s.Retry(ctx, res.Message.ID, at(operator, t0)), gateway.ECONFLICT) // pending
			wantCode(t, s.Drop(ctx, res.Message.ID, gateway.OperatorAction{At: t0}), gateway.EINVALID)
			now := t0.Add(time.Minute)
			if err := s.Drop(ctx, res.Message.ID, at(operator, now)); err != nil {
				t.Fatal(err)
			}
			got := message(t, s, res.Message.ID)
			if got.State != gateway.MessageDropped || got.OperatorBy != operator.By || got.OperatorReason != operator.Reason || !got.OperatorAt.Equal(now) {
				t.Fatalf("dropped %+v", got)
			}
			if st := status(t, s, instA, res.Referral.ID); st != gateway.StatusDeadLettered {
				t.Fatalf("status %s after drop", st)
			}
			if ms := claim(t, s, "w", 10, t0.Add(24*time.Hour)); len(ms) != 0 {
				t.Fatal("a dropped message was claimed")
			}
			wantCode(t, s.Drop(ctx, res.Message.ID, at(operator, now)), gateway.ECONFLICT)
			wantCode(t, s.Retry(ctx, res.Message.ID, at(operator, now)), gateway.ECONFLICT)
		}},
		{"a leased message is dropped only once its lease ran out", func(t *testing.T, s gateway.Store, res gateway.AcceptResult) {
			m := claimOne(t, s, t0)
			wantCode(t, s.Drop(ctx, m.ID, at(operator, t0.Add(time.Minute))), gateway.ECONFLICT)
			if err := s.Drop(ctx, m.ID, at(operator, t0.Add(lease))); err != nil {
				t.Fatal(err)
			}
			err := s.RecordAttempt(ctx, m.ID, m.LeaseID, gateway.Attempt{Result: gateway.AttemptDelivered, At: t0.Add(lease)})
			wantCode(t, err, gateway.ECONFLICT)
		}},
		{"a case's messages go out in order", func(t *testing.T, s gateway.Store, res gateway.AcceptResult) {
			v2 := accept(t, s, newAcceptRequest(instA, "C1", "b", res.Referral.ID, t0.Add(time.Second)))
			other := accept(t, s, newAcceptRequest(instA, "C2", "a", "", t0.Add(2*time.Second)))
			now := t0.Add(time.Minute)
			ms := claim(t, s, "w", 10, now)
			if ids := messageIDs(ms); len(ms) != 2 || !ids[res.Message.ID] || !ids[other.Message.ID] {
				t.Fatalf("claimed %v, want version 1 of C1 and C2 but not version 2 of C1", ids)
			}
			if ms := claim(t, s, "w", 10, now); len(ms) != 0 {
				t.Fatalf("claimed version 2 while version 1 was leased")
			}
			// A retry of version 1 still holds version 2 back.
			for _, m := range ms {
				if m.ID == res.Message.ID {
					attempt(t, s, m, gateway.Attempt{Result: gateway.AttemptRetry, At: now, RetryAt: now.Add(time.Minute)})
				}
			}
			if ms := claim(t, s, "w", 10, now.Add(30*time.Second)); len(ms) != 0 {
				t.Fatalf("claimed version 2 while version 1 waited to be retried")
			}
			m1 := claimOne(t, s, now.Add(time.Minute))
			attempt(t, s, m1, gateway.Attempt{Result: gateway.AttemptDelivered, At: now.Add(time.Minute)})
			m2 := claimOne(t, s, now.Add(time.Minute))
			if m2.ID != v2.Message.ID || m2.Kind != gateway.KindUpdate {
				t.Fatalf("claimed %+v, want the update", m2)
			}
		}},
		{"queue stats count states and age the oldest queued message", func(t *testing.T, s gateway.Store, res gateway.AcceptResult) {
			accept(t, s, newAcceptRequest(instA, "C2", "a", "", t0.Add(time.Minute)))
			accept(t, s, newAcceptRequest(instB, "C3", "a", "", t0.Add(2*time.Minute)))
			ms := claim(t, s, "w", 2, t0.Add(time.Hour))
			attempt(t, s, ms[1], gateway.Attempt{Result: gateway.AttemptDelivered, At: t0.Add(time.Hour)})
			st := must[gateway.QueueStats](t)(s.QueueStats(ctx))
			want := map[gateway.MessageState]int{
				gateway.MessagePending: 1, gateway.MessageLeased: 1, gateway.MessageFailed: 0, gateway.MessageDead: 0,
			}
			if fmt.Sprint(st.Counts) != fmt.Sprint(want) || !st.OldestPending.Equal(t0) {
				t.Fatalf("stats %+v, want %v oldest %v", st, want, t0)
			}
		}},
		{"bad calls", func(t *testing.T, s gateway.Store, res gateway.AcceptResult) {
			_, err := s.Message(ctx, "no-such-message")
			wantCode(t, err, gateway.ENOTFOUND)
			wantCode(t, s.RecordAttempt(ctx, "no-such-message", "x", gateway.Attempt{Result: gateway.AttemptDelivered, At: t0}), gateway.ENOTFOUND)
			wantCode(t, s.Retry(ctx, "no-such-message", at(operator, t0)), gateway.ENOTFOUND)
			m := claimOne(t, s, t0)
			wantCode(t, s.RecordAttempt(ctx, m.ID, "not-the-lease", gateway.Attempt{Result: gateway.AttemptDelivered, At: t0}), gateway.ECONFLICT)
			wantCode(t, s.RecordAttempt(ctx, m.ID, m.LeaseID, gateway.Attempt{Result: gateway.AttemptRetry, At: t0}), gateway.EINVALID)
			wantCode(t, s.RecordAttempt(ctx, m.ID, m.LeaseID, gateway.Attempt{Result: "maybe", At: t0}), gateway.EINVALID)
			_, err = s.Claim(ctx, "", 1, t0, lease)
			wantCode(t, err, gateway.EINVALID)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := open(t)
			tt.run(t, s, accept(t, s, newAcceptRequest(instA, "C1", "a", "", t0)))
		})
	}
}

func messageIDs(ms []gateway.OutboxMessage) map[string]bool {
	out := map[string]bool{}
	for _, m := range ms {
		out[m.ID] = true
	}
	return out
}

// testConcurrentClaimers: claimers on two handles with their own connections
// (two on each) drain one queue; every message is claimed exactly once, and a
// case's update is never claimed before its first version was delivered.
func testConcurrentClaimers(t *testing.T, open func(testing.TB) *store) {
	a := open(t)
	b := a.another(t)
	ctx := context.Background()
	const cases = 120
	want := map[string]bool{}
	first := map[string]string{} // update message id -> first version's message id
	for i := 0; i < cases; i++ {
		caseID := fmt.Sprintf("C%03d", i)
		r1 := accept(t, a, newAcceptRequest(instA, caseID, "a", "", t0.Add(time.Duration(i)*time.Millisecond)))
		want[r1.Message.ID] = true
		if i%4 == 0 {
			r2 := accept(t, a, newAcceptRequest(instA, caseID, "b", r1.Referral.ID, t0.Add(time.Second+time.Duration(i)*time.Millisecond)))
			want[r2.Message.ID] = true
			first[r2.Message.ID] = r1.Message.ID
		}
	}
	var (
		mu       sync.Mutex
		claims   = map[string][]string{} // message -> claimers
		failures []error
	)
	now := t0.Add(time.Hour)
	var wg sync.WaitGroup
	for _, w := range []struct {
		name string
		s    gateway.Store
	}{{"a1", a}, {"b1", b}, {"a2", a}, {"b2", b}} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			idle := 0
			for idle < 5 {
				ms, err := w.s.Claim(ctx, "claimer-"+w.name, 7, now, time.Hour)
				if err != nil {
					mu.Lock()
					failures = append(failures, err)
					mu.Unlock()
					return
				}
				if len(ms) == 0 {
					idle++
					time.Sleep(5 * time.Millisecond)
					continue
				}
				idle = 0
				mu.Lock()
				for _, m := range ms {
					claims[m.ID] = append(claims[m.ID], w.name)
				}
				mu.Unlock()
				for _, m := range ms {
					// Delivered stays delivered, so this check has no false alarms.
					if f, ok := first[m.ID]; ok {
						if fm, err := w.s.Message(ctx, f); err != nil || fm.State != gateway.MessageDelivered {
							mu.Lock()
							failures = append(failures, fmt.Errorf("update %s claimed while its first version was %s (%v)", m.ID, fm.State, err))
							mu.Unlock()
						}
					}
				}
				time.Sleep(5 * time.Millisecond) // posting to the receiver
				for _, m := range ms {
					if err := w.s.RecordAttempt(ctx, m.ID, m.LeaseID, gateway.Attempt{Result: gateway.AttemptDelivered, At: now}); err != nil {
						mu.Lock()
						failures = append(failures, err)
						mu.Unlock()
					}
				}
			}
		}()
	}
	wg.Wait()
	for _, err := range failures {
		t.Error(err)
	}
	byClaimer, byHandle := map[string]int{}, map[byte]int{}
	for id := range want {
		if len(claims[id]) != 1 {
			t.Errorf("message %s claimed %d times (%v), want once", id, len(claims[id]), claims[id])
			continue
		}
		byClaimer[claims[id][0]]++
		byHandle[claims[id][0][0]]++
	}
	if len(claims) != len(want) {
		t.Errorf("claimed %d distinct messages, want %d", len(claims), len(want))
	}
	// The test proves nothing unless claimers ran side by side; across
	// handles only where the database has more than one writer.
	if len(byClaimer) < 2 {
		t.Errorf("claims per claimer %v: the claimers did not run side by side", byClaimer)
	}
	if !a.singleWriter && (byHandle['a'] == 0 || byHandle['b'] == 0) {
		t.Errorf("claims per claimer %v: the two handles did not claim side by side", byClaimer)
	}
	st := must[gateway.QueueStats](t)(a.QueueStats(ctx))
	if st.Counts[gateway.MessagePending]+st.Counts[gateway.MessageLeased] != 0 || !st.OldestPending.IsZero() {
		t.Errorf("queue not drained: %+v", st)
	}
	if got := must[[]gateway.OutboxMessage](t)(a.Messages(ctx, gateway.MessageDelivered, 10*cases)); len(got) != len(want) {
		t.Errorf("%d delivered, want %d", len(got), len(want))
	}
}

func testCancel(t *testing.T, open func(testing.TB) *store) {
	ctx := context.Background()
	s := open(t)
	v1 := accept(t, s, newAcceptRequest(instA, "C1", "a", "", t0))
	v2 := accept(t, s, newAcceptRequest(instA, "C1", "b", v1.Referral.ID, t0.Add(time.Minute)))
	revoke := json.RawMessage(`{"resourceType":"Bundle","type":"message","status":"revoked"}`)
	req := gateway.CancelRequest{Institution: instA, ReferralID: v1.Referral.ID, Bundle: revoke, CorrelationID: "corr-1", At: t0.Add(time.Hour),
		Sender: gateway.Sender{Name: "withdrawing university"}}
	_, err := s.Cancel(ctx, req)
	wantCode(t, err, gateway.ECONFLICT) // not the latest version
	req.ReferralID = v2.Referral.ID
	got := must[gateway.StoredReferral](t)(s.Cancel(ctx, req))
	if got.Status != gateway.StatusCancelled {
		t.Fatalf("status %s", got.Status)
	}
	again := must[gateway.StoredReferral](t)(s.Cancel(ctx, req))
	if again.Status != gateway.StatusCancelled {
		t.Fatalf("second cancel gave %s", again.Status)
	}
	// Version 1, version 2, then the revoke, in that order, once each.
	var kinds []string
	for now := t0.Add(2 * time.Hour); ; now = now.Add(time.Second) {
		ms := claim(t, s, "w", 10, now)
		if len(ms) == 0 {
			break
		}
		for _, m := range ms {
			kinds = append(kinds, string(m.Kind))
			if m.Kind == gateway.KindCancel && (!jsonEqual(m.Body, revoke) || m.CorrelationID != "corr-1" || m.ReferralID != v2.Referral.ID ||
				!reflect.DeepEqual(m.Sender, req.Sender)) {
				t.Fatalf("cancel message %+v", m)
			}
			attempt(t, s, m, gateway.Attempt{Result: gateway.AttemptDelivered, At: now})
		}
	}
	if fmt.Sprint(kinds) != "[new update cancel]" {
		t.Fatalf("sent %v, want [new update cancel]", kinds)
	}
	if st := status(t, s, instA, v2.Referral.ID); st != gateway.StatusCancelled {
		t.Fatalf("delivery changed a cancelled referral to %s", st)
	}
	// The service's acceptance of the withdrawal is not an acceptance of
	// the referral; a later step is kept, and the referral stays cancelled.
	_, _, err = recordStep(s, must[gateway.OutboxMessage](t)(s.SentMessage(ctx, bundleID(v2.Referral.ID))), gateway.StepAccepted, t0.Add(3*time.Hour), "r-late")
	if err != nil {
		t.Fatalf("an acceptance of the version the university withdrew, reported late: %v", err)
	}
	if st := status(t, s, instA, v2.Referral.ID); st != gateway.StatusCancelled {
		t.Fatalf("a step changed a cancelled referral to %s", st)
	}
}
