package delivery

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/student-mh-referrals/gateway/gateway"
)

// hijackReset answers by resetting the connection.
func hijackReset(w http.ResponseWriter) {
	conn, _, err := w.(http.Hijacker).Hijack()
	if err != nil {
		panic(err)
	}
	_ = conn.(*net.TCPConn).SetLinger(0)
	_ = conn.Close()
}

func answer(status int, header map[string]string, body string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		for k, v := range header {
			w.Header().Set(k, v)
		}
		w.Header().Set("Content-Type", "application/fhir+json")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}
}

func TestDeliveryOutcomes(t *testing.T) {
	// retryDate is a Retry-After date ten minutes after the fake clock.
	retryDate := t0.Add(10 * time.Minute).Format(http.TimeFormat)
	oo400 := outcomeJSON("value", "REC_BAD_REQUEST")
	tests := []struct {
		name     string
		handler  http.HandlerFunc
		service  string // the message's service; "" is the configured one
		state    gateway.MessageState
		referral gateway.ReferralStatus
		due      time.Duration // pending: due this long after t0
		errHas   string
		response string // kept OperationOutcome
	}{
		{"200", answer(200, nil, `{"resourceType":"OperationOutcome","issue":[]}`), "", gateway.MessageDelivered, gateway.StatusDelivered, 0, "", ""},
		{"409 duplicate", answer(409, nil, outcomeJSON("duplicate", "REC_CONFLICT")), "", gateway.MessageDelivered, gateway.StatusDelivered, 0, "", ""},
		{"400 with OperationOutcome", answer(400, nil, oo400), "", gateway.MessageFailed, gateway.StatusFailed, 0, "400 REC_BAD_REQUEST", oo400},
		{"409 conflict", answer(409, nil, outcomeJSON("conflict", "REC_CONFLICT")), "", gateway.MessageFailed, gateway.StatusFailed, 0, "409 REC_CONFLICT (conflict)", outcomeJSON("conflict", "REC_CONFLICT")},
		{"500", answer(500, nil, outcomeJSON("exception", "REC_SERVER_ERROR")), "", gateway.MessagePending, gateway.StatusDelivering, 5 * time.Second, "500 REC_SERVER_ERROR", ""},
		{"408", answer(408, nil, ""), "", gateway.MessagePending, gateway.StatusDelivering, 5 * time.Second, "408", ""},
		{"429 with Retry-After seconds", answer(429, map[string]string{"Retry-After": "120"}, ""), "", gateway.MessagePending, gateway.StatusDelivering, 2 * time.Minute, "429", ""},
		{"503 with Retry-After date", answer(503, map[string]string{"Retry-After": retryDate}, ""), "", gateway.MessagePending, gateway.StatusDelivering, 10 * time.Minute, "503", ""},
		{"Retry-After shorter than the backoff", answer(503, map[string]string{"Retry-After": "1"}, ""), "", gateway.MessagePending, gateway.StatusDelivering, 5 * time.Second, "503", ""},
		{"connection reset", func(w http.ResponseWriter, r *http.Request) { hijackReset(w) }, "", gateway.MessagePending, gateway.StatusDelivering, 5 * time.Second, "connection reset", ""},
		{"slow beyond the timeout", func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-r.Context().Done():
			case <-time.After(10 * time.Second):
			}
		}, "", gateway.MessagePending, gateway.StatusDelivering, 5 * time.Second, "timeout", ""},
		{"redirect not followed", func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/elsewhere" {
				panic("the redirect was followed")
			}
			http.Redirect(w, r, "/elsewhere", http.StatusTemporaryRedirect)
		}, "", gateway.MessagePending, gateway.StatusDelivering, 5 * time.Second, "unexpected status 307", ""},
		{"service not configured", answer(200, nil, ""), "retired-service", gateway.MessagePending, gateway.StatusDelivering, 5 * time.Second, "not configured", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got struct {
				sync.Mutex
				method, path string
				body         []byte
			}
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				b, _ := io.ReadAll(r.Body)
				got.Lock()
				if got.path == "" {
					got.method, got.path, got.body = r.Method, r.URL.Path, b
				}
				got.Unlock()
				tt.handler(w, r)
			}))
			defer srv.Close()
			set := settings()
			set.Timeout = 300 * time.Millisecond
			h := newHarness(t, set, svc("u-cope", srv.URL+"/fhir/", "2000010001", Transport{}))
			service := tt.service
			if service == "" {
				service = "u-cope"
			}
			m := queue(t, h.store, "CASE-1", service, target("2000010001"), t0)
			if n := h.once(t); n != 1 {
				t.Fatalf("handled %d messages, want 1", n)
			}
			after := h.message(t, m.ID)
			if after.State != tt.state || after.Attempts != 1 {
				t.Fatalf("state %s after %d attempts (%s), want %s after 1", after.State, after.Attempts, after.LastError, tt.state)
			}
			if tt.state == gateway.MessagePending && !after.DueAt.Equal(t0.Add(tt.due)) {
				t.Errorf("due %s, want t0+%s", after.DueAt, tt.due)
			}
			if !strings.Contains(after.LastError, tt.errHas) {
				t.Errorf("last error %q, want it to mention %q", after.LastError, tt.errHas)
			}
			if string(after.Response) != tt.response {
				t.Errorf("response %s, want %s", after.Response, tt.response)
			}
			ref, err := h.store.Referral(context.Background(), institution, m.ReferralID)
			if err != nil {
				t.Fatal(err)
			}
			if ref.Status != tt.referral {
				t.Errorf("referral %s, want %s", ref.Status, tt.referral)
			}
			result := map[gateway.MessageState]string{gateway.MessageDelivered: "delivered", gateway.MessageFailed: "failed", gateway.MessagePending: "retry"}[tt.state]
			if n := h.metrics.count(service + " " + result); n != 1 {
				t.Errorf("metric %s %s = %d, want 1", service, result, n)
			}
			got.Lock()
			defer got.Unlock()
			if tt.service == "" && (got.method != http.MethodPost || got.path != "/fhir/$process-message" || !bytes.Equal(got.body, m.Body)) {
				t.Errorf("receiver got %s %s with %d bytes, want POST /fhir/$process-message with the message", got.method, got.path, len(got.body))
			}
		})
	}
}

func TestSameRequestIDOnEveryRetry(t *testing.T) {
	var mu sync.Mutex
	var requestIDs, correlationIDs []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		requestIDs = append(requestIDs, r.Header.Get("X-Request-Id"))
		correlationIDs = append(correlationIDs, r.Header.Get("X-Correlation-Id"))
		n := len(requestIDs)
		mu.Unlock()
		if n < 3 {
			answer(500, nil, "")(w, r)
			return
		}
		answer(200, nil, "")(w, r)
	}))
	defer srv.Close()
	h := newHarness(t, settings(), svc("u-cope", srv.URL, "2000010001", Transport{}))
	m := queue(t, h.store, "CASE-1", "u-cope", target("2000010001"), t0)
	for attempt := 1; attempt <= 3; attempt++ {
		if n := h.once(t); n != 1 {
			t.Fatalf("attempt %d: handled %d", attempt, n)
		}
		if n := h.once(t); n != 0 {
			t.Fatalf("attempt %d: a message was claimed again before it was due", attempt)
		}
		h.clock.Advance(time.Hour)
	}
	if got := h.message(t, m.ID); got.State != gateway.MessageDelivered || got.Attempts != 3 {
		t.Fatalf("state %s after %d attempts", got.State, got.Attempts)
	}
	for i := range requestIDs {
		if requestIDs[i] != m.RequestID || correlationIDs[i] != m.CorrelationID {
			t.Errorf("attempt %d: X-Request-Id %s X-Correlation-Id %s, want %s %s", i+1, requestIDs[i], correlationIDs[i], m.RequestID, m.CorrelationID)
		}
	}
	if h.metrics.count("u-cope retry") != 2 || h.metrics.count("u-cope delivered") != 1 {
		t.Errorf("metrics %v", h.metrics.n)
	}
}

func TestDeadLetter(t *testing.T) {
	tests := []struct {
		name string
		// edit changes the settings; handler answers; advance is how far
		// the clock moves between attempts; start is how long after
		// queueing the first attempt comes.
		edit    func(*Settings)
		handler http.HandlerFunc
		start   time.Duration
		advance time.Duration
		posts   int // posts the receiver gets in all
		errHas  string
	}{
		{"after max attempts", func(s *Settings) { s.MaxAttempts = 3 }, answer(500, nil, ""), 0, time.Hour, 3, "gave up after 3 attempts: receiver answered 500"},
		{"after max age in the queue", nil, answer(200, nil, ""), 25 * time.Hour, 0, 0, "queued for longer than 24h0m0s"},
		{"when the next try would be too old", func(s *Settings) { s.MaxAge = time.Hour },
			answer(429, map[string]string{"Retry-After": "7200"}, ""), 0, 0, 1, "the next attempt would come after 1h0m0s"},
		{"after backoff reaches max age", func(s *Settings) {
			s.MaxAge = time.Minute
			s.BaseBackoff = 40 * time.Second
		}, answer(503, nil, ""), 0, 30 * time.Second, 2, "the next attempt would come after 1m0s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var posts atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				posts.Add(1)
				tt.handler(w, r)
			}))
			defer srv.Close()
			set := settings()
			if tt.edit != nil {
				tt.edit(&set)
			}
			h := newHarness(t, set, svc("u-cope", srv.URL, "2000010001", Transport{}))
			m := queue(t, h.store, "CASE-1", "u-cope", target("2000010001"), t0)
			h.clock.Advance(tt.start)
			for range 10 {
				if h.once(t) == 0 {
					break
				}
				h.clock.Advance(tt.advance)
			}
			got := h.message(t, m.ID)
			if got.State != gateway.MessageDead || !strings.Contains(got.LastError, tt.errHas) {
				t.Fatalf("state %s, error %q; want dead with %q", got.State, got.LastError, tt.errHas)
			}
			if n := int(posts.Load()); n != tt.posts {
				t.Errorf("%d posts, want %d", n, tt.posts)
			}
			ref, _ := h.store.Referral(context.Background(), institution, m.ReferralID)
			if ref.Status != gateway.StatusDeadLettered {
				t.Errorf("referral %s", ref.Status)
			}
			if h.metrics.count("u-cope dead-lettered") != 1 {
				t.Errorf("metrics %v", h.metrics.n)
			}
			h.clock.Advance(48 * time.Hour)
			if h.once(t) != 0 {
				t.Error("a dead message was claimed again")
			}
		})
	}
}

// A worker that dies mid-post still uses up an attempt: claims count.
func TestDeadLetterWhenWorkersKeepDying(t *testing.T) {
	var posts atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { posts.Add(1) }))
	defer srv.Close()
	set := settings()
	set.MaxAttempts = 2
	h := newHarness(t, set, svc("u-cope", srv.URL, "2000010001", Transport{}))
	m := queue(t, h.store, "CASE-1", "u-cope", target("2000010001"), t0)
	for range 2 { // two workers claim it and die
		if ms, err := h.store.Claim(context.Background(), "doomed", 1, h.clock.Now(), time.Minute); err != nil || len(ms) != 1 {
			t.Fatalf("claim: %v %d", err, len(ms))
		}
		h.clock.Advance(2 * time.Minute)
	}
	if h.once(t) != 1 {
		t.Fatal("the expired lease was not claimed")
	}
	got := h.message(t, m.ID)
	if got.State != gateway.MessageDead || got.Attempts != 3 || !strings.Contains(got.LastError, "claimed 3 times") {
		t.Errorf("state %s after %d attempts: %q", got.State, got.Attempts, got.LastError)
	}
	if posts.Load() != 0 {
		t.Errorf("posted %d times; a message out of attempts must not be sent", posts.Load())
	}
}

// When the lease runs out mid-post and another worker claims the message,
// the first worker's outcome is not recorded: the other's counts.
func TestLeaseLost(t *testing.T) {
	var h *harness
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.clock.Advance(2 * time.Minute)
		if ms, err := h.store.Claim(context.Background(), "other-process", 1, h.clock.Now(), time.Minute); err != nil || len(ms) != 1 {
			panic("the other process could not claim the message")
		}
		answer(200, nil, "")(w, r)
	}))
	defer srv.Close()
	h = newHarness(t, settings(), svc("u-cope", srv.URL, "2000010001", Transport{}))
	m := queue(t, h.store, "CASE-1", "u-cope", target("2000010001"), t0)
	if h.once(t) != 1 {
		t.Fatal("not claimed")
	}
	got := h.message(t, m.ID)
	if got.State != gateway.MessageLeased || got.LeaseOwner != "other-process" {
		t.Errorf("state %s owner %s: want the other process's lease untouched", got.State, got.LeaseOwner)
	}
	if len(h.metrics.n) != 0 {
		t.Errorf("metrics %v: an unrecorded attempt must not count", h.metrics.n)
	}
	if h.logs.FilterMessage("delivery lease lost; the attempt is not recorded").Len() != 1 {
		t.Errorf("logs %v", h.logs.All())
	}
}

// Run stops claiming when its context ends, but a post in flight runs to
// its end and is recorded.
func TestRunStopsCleanly(t *testing.T) {
	entered := make(chan struct{})
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-release
		answer(200, nil, "")(w, r)
	}))
	defer srv.Close()
	store := openStore(t)
	m := queue(t, store, "CASE-1", "u-cope", target("2000010001"), time.Now())
	w, err := New(Options{Outbox: store, Services: []Service{svc("u-cope", srv.URL, "2000010001", Transport{})}, Settings: settings()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	<-entered
	cancel()
	select {
	case <-done:
		t.Fatal("Run returned with a post in flight")
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	got, _ := store.Message(context.Background(), m.ID)
	if got.State != gateway.MessageDelivered {
		t.Errorf("state %s: the in-flight post was not recorded", got.State)
	}
}

func TestNewRefuses(t *testing.T) {
	store := openStore(t)
	lease := settings()
	lease.Lease = lease.Timeout
	tests := []struct {
		name string
		opt  Options
		want string
	}{
		{"no outbox", Options{}, "outbox"},
		{"lease not above timeout", Options{Outbox: store, Settings: lease}, "lease"},
		{"no settings", Options{Outbox: store}, "settings out of range"},
		{"missing CA file", Options{Outbox: store, Settings: settings(), Services: []Service{svc("x", "https://127.0.0.1", "1", Transport{CAFile: "/nonexistent/ca.pem"})}}, "caFile"},
		{"missing client key", Options{Outbox: store, Settings: settings(), Services: []Service{svc("x", "https://127.0.0.1", "1", Transport{CertFile: "/nonexistent/c.pem", KeyFile: "/nonexistent/k.pem"})}}, "certFile"},
		{"missing secret", Options{Outbox: store, Settings: settings(), Services: []Service{svc("x", "https://127.0.0.1", "1", Transport{OAuth2: &OAuth2{TokenURL: "https://127.0.0.1/token", ClientID: "c", ClientSecretFile: "/nonexistent/secret"}})}}, "clientSecretFile"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.opt)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want one mentioning %q", err, tt.want)
			}
		})
	}
}
