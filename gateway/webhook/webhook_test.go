package webhook_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/student-mh-referrals/gateway/gateway"
	"github.com/student-mh-referrals/gateway/gateway/sqlite"
	"github.com/student-mh-referrals/gateway/gateway/webhook"
)

// TestSignKnownVector checks Sign against the Standard Webhooks
// specification's example, so that any receiver library of that scheme
// verifies the gateway's calls.
func TestSignKnownVector(t *testing.T) {
	secret, _ := base64.StdEncoding.DecodeString("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	got := webhook.Sign(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, []byte(`{"test": 2432232314}`))
	if want := "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="; got != want {
		t.Fatalf("Sign = %s, want %s", got, want)
	}
}

func TestVerify(t *testing.T) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	now := time.Unix(1_800_000_000, 0)
	body := []byte(`{"id":"w1"}`)
	sig := webhook.Sign(secret, "w1", now.Unix(), body)
	for _, tt := range []struct {
		name, id, ts, header string
		body                 []byte
		want                 bool
	}{
		{"valid", "w1", "1800000000", sig, body, true},
		{"one of several", "w1", "1800000000", "v1,bm90LWl0 " + sig, body, true},
		{"body changed", "w1", "1800000000", sig, []byte(`{"id":"w2"}`), false},
		{"id changed", "w2", "1800000000", sig, body, false},
		{"replayed late", "w1", "1799999000", webhook.Sign(secret, "w1", 1799999000, body), body, false},
		{"no signature", "w1", "1800000000", "", body, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := webhook.Verify(secret, tt.id, tt.ts, tt.body, tt.header, now, 5*time.Minute); got != tt.want {
				t.Fatalf("Verify = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestBackoff(t *testing.T) {
	base, limit := 10*time.Second, time.Hour
	for _, tt := range []struct {
		n    int
		r    float64
		want time.Duration
	}{
		{1, 0, 5 * time.Second}, {1, 1, 10 * time.Second}, {2, 0, 10 * time.Second},
		{4, 0.5, 60 * time.Second}, {20, 0, 30 * time.Minute}, {200, 1, time.Hour},
	} {
		if got := webhook.Backoff(tt.n, base, limit, tt.r); got != tt.want {
			t.Errorf("Backoff(%d, r=%v) = %s, want %s", tt.n, tt.r, got, tt.want)
		}
	}
}

// receiver is a webhook endpoint that answers each call with the next
// status of its script (200 once the script runs out) and keeps what it got.
type receiver struct {
	mu     sync.Mutex
	script []int
	got    []*http.Request
	bodies [][]byte
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	b, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got, r.bodies = append(r.got, req), append(r.bodies, b)
	status := http.StatusOK
	if len(r.script) > 0 {
		status, r.script = r.script[0], r.script[1:]
	}
	w.WriteHeader(status)
}

func (r *receiver) calls() int { r.mu.Lock(); defer r.mu.Unlock(); return len(r.got) }

type counter struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *counter) ObserveWebhook(result string) { c.mu.Lock(); c.n[result]++; c.mu.Unlock() }

// fixture is a store with one queued call for client uni-a and a
// dispatcher on a clock the test moves.
type fixture struct {
	store   *sqlite.DB
	d       *webhook.Dispatcher
	now     time.Time
	logs    *observer.ObservedLogs
	metrics *counter
}

var secret = []byte("a webhook secret of 32 bytes or more!")

func newFixture(t *testing.T, url string, maxAttempts int) *fixture {
	t.Helper()
	ctx := context.Background()
	db, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "gateway.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	db.SetWebhookClients(map[string][]gateway.WebhookSubscriber{"10000001": {{ClientID: "uni-a"}}})
	f := &fixture{store: db, now: time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC), metrics: &counter{n: map[string]int{}}}
	if err := db.EnqueueWebhooks(ctx, gateway.WebhookEvent{Institution: "10000001", ReferralID: "ref-1", CaseID: "case-1",
		Event: gateway.WebhookEventStatus, Status: "accepted", At: f.now}); err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zap.DebugLevel)
	f.logs = logs
	f.d, err = webhook.New(webhook.Options{
		Store:     db,
		Endpoints: []webhook.Endpoint{{ClientID: "uni-a", URL: url, Secret: secret, MaxAttempts: maxAttempts}},
		Settings:  webhook.DefaultSettings(),
		Logger:    zap.New(core),
		Metrics:   f.metrics,
		Now:       func() time.Time { return f.now },
		Rand:      func() float64 { return 0 },
	})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// dispatchUntil dispatches, moving the clock an hour (past any backoff)
// each round, until done holds; it fails after 50 rounds.
func (f *fixture) dispatchUntil(t *testing.T, done func() bool) {
	t.Helper()
	for range 50 {
		if done() {
			return
		}
		if _, err := f.d.DispatchOnce(context.Background()); err != nil {
			t.Fatal(err)
		}
		f.now = f.now.Add(time.Hour)
	}
	t.Fatal("condition not reached after 50 rounds")
}

func (f *fixture) dead(t *testing.T) []gateway.WebhookCall {
	t.Helper()
	dead, err := f.store.DeadWebhooks(context.Background(), "", 10)
	if err != nil {
		t.Fatal(err)
	}
	return dead
}

// TestRetriedUntilDelivered: a receiver that fails twice gets the call a
// third time, signed, with the same id and the attempt counted; the payload
// holds exactly the allowed keys and the logs hold neither URL nor secret.
func TestRetriedUntilDelivered(t *testing.T) {
	rc := &receiver{script: []int{503, 500}}
	srv := httptest.NewServer(rc)
	defer srv.Close()
	f := newFixture(t, srv.URL+"/hook?token=url-secret-token", 8)
	f.dispatchUntil(t, func() bool { return rc.calls() == 3 })
	if n, _ := f.d.DispatchOnce(context.Background()); n != 0 {
		t.Fatalf("a delivered call was claimed again")
	}
	allowed := []string{"at", "attempt", "caseId", "event", "id", "institution", "referralId", "status"}
	for i, req := range rc.got {
		var p map[string]any
		if err := json.Unmarshal(rc.bodies[i], &p); err != nil {
			t.Fatal(err)
		}
		keys := slices.Sorted(func(yield func(string) bool) {
			for k := range p {
				if !yield(k) {
					return
				}
			}
		})
		if !slices.Equal(keys, allowed) {
			t.Fatalf("payload keys %v, want exactly %v", keys, allowed)
		}
		if p["attempt"] != float64(i+1) || p["status"] != "accepted" || p["referralId"] != "ref-1" || p["id"] != req.Header.Get(webhook.HeaderID) {
			t.Fatalf("attempt %d payload %v", i+1, p)
		}
		if req.Header.Get(webhook.HeaderID) != rc.got[0].Header.Get(webhook.HeaderID) {
			t.Fatal("the Webhook-Id changed between retries")
		}
		if !webhook.Verify(secret, req.Header.Get(webhook.HeaderID), req.Header.Get(webhook.HeaderTimestamp), rc.bodies[i],
			req.Header.Get(webhook.HeaderSignature), f.now, 365*24*time.Hour) {
			t.Fatalf("attempt %d: the signature does not verify", i+1)
		}
	}
	if f.metrics.n["retry"] != 2 || f.metrics.n["delivered"] != 1 {
		t.Fatalf("metrics %v", f.metrics.n)
	}
	for _, e := range f.logs.All() {
		line, _ := json.Marshal(e.ContextMap())
		for _, leak := range []string{"url-secret-token", string(secret), "/hook"} {
			if strings.Contains(e.Message+string(line), leak) {
				t.Fatalf("log %q %s holds %q", e.Message, line, leak)
			}
		}
	}
}

// TestDeadLetter: a receiver that always fails gets maxAttempts calls, then
// the call is dead with its error class, and is tried again once requeued.
func TestDeadLetter(t *testing.T) {
	rc := &receiver{script: []int{500, 500, 500, 500, 500, 500}}
	srv := httptest.NewServer(rc)
	defer srv.Close()
	f := newFixture(t, srv.URL, 3)
	f.dispatchUntil(t, func() bool { return len(f.dead(t)) == 1 })
	if rc.calls() != 3 || f.dead(t)[0].LastErrorClass != "http-500" || f.metrics.n["dead"] != 1 {
		t.Fatalf("calls %d, dead %+v, metrics %v", rc.calls(), f.dead(t), f.metrics.n)
	}
	if err := f.store.RequeueWebhook(context.Background(), f.dead(t)[0].ID, f.now); err != nil {
		t.Fatal(err)
	}
	f.dispatchUntil(t, func() bool { return len(f.dead(t)) == 1 && rc.calls() == 6 })
}

// TestRedirectNotFollowed: a receiver that redirects elsewhere does not get
// the gateway to call the other address (SSRF); the call fails as a
// redirect.
func TestRedirectNotFollowed(t *testing.T) {
	elsewhere := &receiver{}
	target := httptest.NewServer(elsewhere)
	defer target.Close()
	srv := httptest.NewServer(http.RedirectHandler(target.URL+"/internal", http.StatusTemporaryRedirect))
	defer srv.Close()
	f := newFixture(t, srv.URL, 1)
	f.dispatchUntil(t, func() bool { return len(f.dead(t)) == 1 })
	if elsewhere.calls() != 0 || f.dead(t)[0].LastErrorClass != "redirect" {
		t.Fatalf("redirect target called %d times; class %q", elsewhere.calls(), f.dead(t)[0].LastErrorClass)
	}
}

// TestUnreachable: a refused connection is retried as "refused".
func TestUnreachable(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	f := newFixture(t, url, 2)
	f.dispatchUntil(t, func() bool { return len(f.dead(t)) == 1 })
	if c := f.dead(t)[0]; c.LastErrorClass != "refused" || c.Attempts != 2 {
		t.Fatalf("dead call %+v", c)
	}
}

// TestNotConfigured: a call whose client has no webhook any more is tried
// until its attempts run out, then dead as not-configured, posting nothing.
func TestNotConfigured(t *testing.T) {
	rc := &receiver{}
	srv := httptest.NewServer(rc)
	defer srv.Close()
	f := newFixture(t, srv.URL, 3)
	var err error
	f.d, err = webhook.New(webhook.Options{Store: f.store, Settings: webhook.DefaultSettings(),
		Endpoints: []webhook.Endpoint{{ClientID: "another-client", URL: srv.URL, Secret: secret}},
		Now:       func() time.Time { return f.now }})
	if err != nil {
		t.Fatal(err)
	}
	f.dispatchUntil(t, func() bool { return len(f.dead(t)) == 1 })
	if c := f.dead(t)[0]; c.LastErrorClass != "not-configured" || c.Attempts != 8 || rc.calls() != 0 {
		t.Fatalf("dead call %+v after %d posts", c, rc.calls())
	}
}
