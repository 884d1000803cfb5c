package sqlstore_test

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/student-mh-referrals/gateway/gateway"
)

// TestWebhooks is the webhook queue's behaviour on every database: a call
// per subscribed client in the transaction of each status change, leases,
// retries, the dead letter and an operator's requeue.
func TestWebhooks(t *testing.T) {
	forEachDialect(t, func(t *testing.T, open func(testing.TB) *store) {
		t.Run("Enqueue", func(t *testing.T) { testWebhookEnqueue(t, open) })
		t.Run("Queue", func(t *testing.T) { testWebhookQueue(t, open) })
	})
}

// webhookStore opens a store where instA has two clients with a webhook,
// one of which takes only return-path steps.
func webhookStore(t *testing.T, open func(testing.TB) *store) *store {
	s := open(t)
	s.db.SetWebhookClients(map[string][]gateway.WebhookSubscriber{
		instA: {{ClientID: "uni-a"}, {ClientID: "uni-a-steps", Events: []string{gateway.WebhookEventStep}}},
	})
	return s
}

// claimWebhooks claims every call due at now, leased for a minute.
func claimWebhooks(t *testing.T, s *store, now time.Time) []gateway.WebhookCall {
	t.Helper()
	return must[[]gateway.WebhookCall](t)(s.db.ClaimWebhooks(context.Background(), 50, now, time.Minute))
}

func testWebhookEnqueue(t *testing.T, open func(testing.TB) *store) {
	ctx := context.Background()
	s := webhookStore(t, open)
	a := accept(t, s, newAcceptRequest(instA, "C1", "a", "", t0))
	accept(t, s, newAcceptRequest(instB, "C1", "b", "", t0)) // no subscriber
	if got := claimWebhooks(t, s, t0.Add(time.Hour)); len(got) != 0 {
		t.Fatalf("accepting queued %d webhook calls; accepted is the caller's own answer", len(got))
	}
	// Delivery: the claim (delivering) queues nothing, the delivery does.
	now := t0.Add(time.Minute)
	for _, m := range claim(t, s, "w", 10, now) {
		if err := s.RecordAttempt(ctx, m.ID, m.LeaseID, gateway.Attempt{Result: gateway.AttemptDelivered, At: now}); err != nil {
			t.Fatal(err)
		}
	}
	// The service accepts: a step and a change of status. The same response
	// again is refused as a duplicate and calls nothing.
	for i := range 2 {
		if _, _, err := recordStep(s, a.Message, gateway.StepAccepted, now.Add(time.Minute), "resp-1"); (err != nil) != (i == 1) {
			t.Fatalf("response %d: %v", i, err)
		}
	}
	must[gateway.StoredReferral](t)(s.Cancel(ctx, gateway.CancelRequest{Institution: instA, ReferralID: a.Referral.ID,
		Bundle: json.RawMessage(`{}`), At: now.Add(2 * time.Minute)}))
	step := gateway.WebhookEvent{Institution: instA, ReferralID: a.Referral.ID, CaseID: "C1",
		Event: gateway.WebhookEventStep, Status: "triaged", At: now.Add(3 * time.Minute)}
	if err := s.db.EnqueueWebhooks(ctx, step); err != nil {
		t.Fatal(err)
	}
	if err := s.db.EnqueueWebhooks(ctx, step); err != nil { // the same event again: the same call
		t.Fatal(err)
	}
	wantCode(t, s.db.EnqueueWebhooks(ctx, gateway.WebhookEvent{Institution: instA}), gateway.EINVALID)
	type call struct{ client, event, status string }
	var got []call
	for _, c := range claimWebhooks(t, s, now.Add(time.Hour)) {
		if c.Institution != instA || c.ReferralID != a.Referral.ID || c.CaseID != "C1" || c.Attempts != 1 || c.State != gateway.WebhookPending {
			t.Errorf("call %+v", c)
		}
		got = append(got, call{c.ClientID, c.Event, c.Status})
	}
	want := []call{
		{"uni-a", gateway.WebhookEventStatus, "delivered"},
		{"uni-a", gateway.WebhookEventStep, "accepted"},
		{"uni-a-steps", gateway.WebhookEventStep, "accepted"},
		{"uni-a", gateway.WebhookEventStatus, "accepted"},
		{"uni-a", gateway.WebhookEventStatus, "cancelled"},
		{"uni-a", gateway.WebhookEventStep, "triaged"},
		{"uni-a-steps", gateway.WebhookEventStep, "triaged"},
	}
	// A claim leases due calls without promising their order (PostgreSQL's
	// UPDATE … RETURNING has none); each payload carries its own time.
	byKey := func(a, b call) int {
		return strings.Compare(a.client+" "+a.event+" "+a.status, b.client+" "+b.event+" "+b.status)
	}
	slices.SortFunc(got, byKey)
	slices.SortFunc(want, byKey)
	if !slices.Equal(got, want) {
		t.Fatalf("calls %v, want %v", got, want)
	}
}

func testWebhookQueue(t *testing.T, open func(testing.TB) *store) {
	ctx := context.Background()
	s := webhookStore(t, open)
	ev := func(ref string) gateway.WebhookEvent {
		return gateway.WebhookEvent{Institution: instA, ReferralID: ref, CaseID: "C1", Event: gateway.WebhookEventStatus, Status: "rejected", At: t0}
	}
	for _, ref := range []string{"r1", "r2"} {
		if err := s.db.EnqueueWebhooks(ctx, ev(ref)); err != nil {
			t.Fatal(err)
		}
	}
	if p, d := must2(t)(s.db.WebhookCounts(ctx)); p != 2 || d != 0 {
		t.Fatalf("counts pending %d dead %d, want 2 0", p, d)
	}
	calls := claimWebhooks(t, s, t0)
	if len(calls) != 2 {
		t.Fatalf("claimed %d, want 2", len(calls))
	}
	if again := claimWebhooks(t, s, t0.Add(30*time.Second)); len(again) != 0 {
		t.Fatalf("leased calls claimed again: %+v", again)
	}
	done, failing := calls[0], calls[1]
	wantCode(t, s.db.CompleteWebhook(ctx, done.ID, "not-the-lease", t0), gateway.ECONFLICT)
	wantCode(t, s.db.CompleteWebhook(ctx, "no-such-call", done.LeaseID, t0), gateway.ENOTFOUND)
	if err := s.db.CompleteWebhook(ctx, done.ID, done.LeaseID, t0.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	wantCode(t, s.db.CompleteWebhook(ctx, done.ID, done.LeaseID, t0), gateway.ECONFLICT) // once
	next := t0.Add(10 * time.Minute)
	if err := s.db.RetryWebhook(ctx, failing.ID, failing.LeaseID, next, "http-503"); err != nil {
		t.Fatal(err)
	}
	if early := claimWebhooks(t, s, next.Add(-time.Second)); len(early) != 0 {
		t.Fatalf("a call claimed before its backoff ended: %+v", early)
	}
	retried := claimWebhooks(t, s, next)
	if len(retried) != 1 || retried[0].ID != failing.ID || retried[0].Attempts != 2 || retried[0].LastErrorClass != "http-503" {
		t.Fatalf("retried %+v", retried)
	}
	if err := s.db.DeadLetterWebhook(ctx, failing.ID, retried[0].LeaseID, next, "timeout"); err != nil {
		t.Fatal(err)
	}
	dead := must[[]gateway.WebhookCall](t)(s.db.DeadWebhooks(ctx, instA, 10))
	if len(dead) != 1 || dead[0].ID != failing.ID || dead[0].State != gateway.WebhookDead || dead[0].LastErrorClass != "timeout" {
		t.Fatalf("dead letter %+v", dead)
	}
	if all := must[[]gateway.WebhookCall](t)(s.db.DeadWebhooks(ctx, "", 10)); len(all) != 1 {
		t.Fatalf("all dead %+v", all)
	}
	if other := must[[]gateway.WebhookCall](t)(s.db.DeadWebhooks(ctx, instB, 10)); len(other) != 0 {
		t.Fatalf("another institution sees %+v", other)
	}
	if p, d := must2(t)(s.db.WebhookCounts(ctx)); p != 0 || d != 1 {
		t.Fatalf("counts pending %d dead %d, want 0 1", p, d)
	}
	wantCode(t, s.db.RequeueWebhook(ctx, done.ID, next), gateway.ECONFLICT) // delivered
	wantCode(t, s.db.RequeueWebhook(ctx, "no-such-call", next), gateway.ENOTFOUND)
	if err := s.db.RequeueWebhook(ctx, failing.ID, next.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	back := claimWebhooks(t, s, next.Add(time.Hour))
	if len(back) != 1 || back[0].ID != failing.ID || back[0].Attempts != 1 {
		t.Fatalf("requeued call %+v, want attempts counted afresh", back)
	}
	// A dispatcher that dies mid-post loses its lease when it runs out:
	// the call is claimed again, the attempt counted, the old lease void.
	late := claimWebhooks(t, s, next.Add(time.Hour+time.Minute))
	if len(late) != 1 || late[0].ID != failing.ID || late[0].Attempts != 2 || late[0].LeaseID == back[0].LeaseID {
		t.Fatalf("after the lease ran out: %+v", late)
	}
	wantCode(t, s.db.CompleteWebhook(ctx, failing.ID, back[0].LeaseID, next), gateway.ECONFLICT)
	// Retention deletes the delivered call, not the one still queued.
	must[int](t)(s.PurgeContent(ctx, t0.Add(time.Minute), t0.Add(48*time.Hour)))
	wantCode(t, s.db.RequeueWebhook(ctx, done.ID, next), gateway.ENOTFOUND)
	wantCode(t, s.db.RequeueWebhook(ctx, failing.ID, next), gateway.ECONFLICT) // pending, still there
}

func must2(t *testing.T) func(a, b int, err error) (int, int) {
	return func(a, b int, err error) (int, int) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return a, b
	}
}
