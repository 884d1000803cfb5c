// Package webhook calls the universities' webhooks: it drains the store's
// webhook queue (gateway.Webhooks), posting each call to its client's
// configured URL, signed with the client's secret, so that a university's
// system hears of a referral's changes without polling.
//
// The calls are written by the store in the transaction of the change they
// tell of, so none is lost to a crash; the dispatcher delivers each at
// least once (the Webhook-Id header is the same on every retry, for the
// receiver to drop duplicates). Failed calls back off exponentially with
// jitter and are dead lettered after the client's maxAttempts, for an
// operator to see and requeue.
//
// The URLs are the operator's configuration, never a client's: clients
// cannot make the gateway call an address of their choosing (server-side
// request forgery). Redirects are never followed, for the same reason. The
// dispatcher logs call ids, client ids, attempt numbers and error classes,
// never the URL (whose query may hold a token), the secret or a response
// body.
package webhook

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/student-mh-referrals/gateway/gateway"
)

// Headers of a webhook call (the Standard Webhooks scheme).
const (
	HeaderID        = "Webhook-Id"
	HeaderTimestamp = "Webhook-Timestamp"
	HeaderSignature = "Webhook-Signature"
)

// Sign is the Webhook-Signature of a call: "v1," and the base64 HMAC-SHA256
// under secret of id, the Unix timestamp and the body joined by dots.
func Sign(secret []byte, id string, timestamp int64, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(id + "." + strconv.FormatInt(timestamp, 10) + "."))
	m.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// Verify reports whether header (a Webhook-Signature, which may list
// several space-separated signatures) holds a valid signature of the call
// under secret, and its timestamp is within tolerance of now: what a
// receiver written in Go checks.
func Verify(secret []byte, id, timestamp string, body []byte, header string, now time.Time, tolerance time.Duration) bool {
	ts, err := strconv.ParseInt(timestamp, 10, 64)
	if err != nil || now.Sub(time.Unix(ts, 0)).Abs() > tolerance {
		return false
	}
	want := []byte(Sign(secret, id, ts, body))
	for _, sig := range strings.Fields(header) {
		if hmac.Equal([]byte(sig), want) {
			return true
		}
	}
	return false
}

// Endpoint is one client's webhook as configured.
type Endpoint struct {
	ClientID string
	URL      string
	// Secret is the HMAC key the calls are signed with.
	Secret []byte
	// MaxAttempts is how many times a call is tried before it is dead
	// lettered.
	MaxAttempts int
}

// Settings tune the dispatcher; DefaultSettings gives the values
// `gateway serve` runs with.
type Settings struct {
	// Workers is how many calls one process posts at once.
	Workers int
	// Timeout bounds one call; Lease, how long a claimed call stays with
	// its worker, must exceed it.
	Timeout, Lease time.Duration
	// BaseBackoff and MaxBackoff bound the exponential backoff.
	BaseBackoff, MaxBackoff time.Duration
	// PollInterval is how often an idle worker looks for due calls.
	PollInterval time.Duration
}

// DefaultSettings: 10 s per call, backoff from 10 s doubling up to an hour
// (8 attempts span about 20 minutes).
func DefaultSettings() Settings {
	return Settings{Workers: 2, Timeout: 10 * time.Second, Lease: time.Minute,
		BaseBackoff: 10 * time.Second, MaxBackoff: time.Hour, PollInterval: 2 * time.Second}
}

// defaultMaxAttempts bounds the tries of a call whose client's webhook is
// no longer configured.
const defaultMaxAttempts = 8

// Metrics is told how each attempt ended (delivered, retry, dead);
// *prometheus.Metrics implements it.
type Metrics interface {
	ObserveWebhook(result string)
}

// Options are what New needs.
type Options struct {
	Store     gateway.Webhooks
	Endpoints []Endpoint
	Settings  Settings
	Logger    *zap.Logger
	Metrics   Metrics
	// Transport replaces the HTTP transport (tests); nil is a transport
	// with TLS 1.2 at least and the system's roots.
	Transport http.RoundTripper
	// Now and Rand replace the clock and the jitter source in tests.
	Now  func() time.Time
	Rand func() float64
}

// Dispatcher posts queued webhook calls. Build it with New; Run it, or call
// DispatchOnce from tests.
type Dispatcher struct {
	store     gateway.Webhooks
	endpoints map[string]Endpoint
	set       Settings
	http      *http.Client
	log       *zap.Logger
	metrics   Metrics
	now       func() time.Time
	rand      func() float64
	wake      chan struct{}
}

// New builds a dispatcher; it refuses settings under which a call could be
// posted twice at once.
func New(o Options) (*Dispatcher, error) {
	set := o.Settings
	switch {
	case o.Store == nil:
		return nil, errors.New("webhook: a store is required")
	case set.Workers < 1 || set.PollInterval <= 0 || set.BaseBackoff <= 0 || set.BaseBackoff > set.MaxBackoff:
		return nil, fmt.Errorf("webhook: settings out of range: %+v", set)
	case set.Timeout <= 0 || set.Lease <= set.Timeout:
		return nil, fmt.Errorf("webhook: the lease %s must exceed the timeout %s", set.Lease, set.Timeout)
	}
	d := &Dispatcher{store: o.Store, endpoints: map[string]Endpoint{}, set: set, log: o.Logger, metrics: o.Metrics,
		now: o.Now, rand: o.Rand, wake: make(chan struct{}, 1)}
	for _, e := range o.Endpoints {
		if e.MaxAttempts < 1 {
			e.MaxAttempts = defaultMaxAttempts
		}
		d.endpoints[e.ClientID] = e
	}
	rt := o.Transport
	if rt == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
		rt = t
	}
	d.http = &http.Client{
		Transport: rt,
		Timeout:   set.Timeout,
		// Never follow a redirect: the operator chose the URL, and a
		// redirect would let the receiving host choose another (SSRF).
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	if d.log == nil {
		d.log = zap.NewNop()
	}
	if d.metrics == nil {
		d.metrics = nopMetrics{}
	}
	if d.now == nil {
		d.now = time.Now
	}
	if d.rand == nil {
		d.rand = rand.Float64
	}
	return d, nil
}

type nopMetrics struct{}

func (nopMetrics) ObserveWebhook(string) {}

// Notify wakes an idle worker at once instead of at its next poll; it
// never blocks.
func (d *Dispatcher) Notify() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// Run dispatches until ctx is cancelled; posts in flight run to their end
// (bounded by the timeout) and are recorded.
func (d *Dispatcher) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	for range d.set.Workers {
		wg.Go(func() { d.loop(ctx) })
	}
	wg.Wait()
	d.http.CloseIdleConnections()
	return nil
}

func (d *Dispatcher) loop(ctx context.Context) {
	poll := d.set.PollInterval
	for ctx.Err() == nil {
		n, err := d.dispatch(ctx, 1)
		if err != nil && ctx.Err() == nil {
			d.log.Warn("webhook claim failed", zap.String("error_code", gateway.ErrorCode(err)), zap.Error(err))
		}
		if n > 0 {
			continue
		}
		t := time.NewTimer(poll/2 + time.Duration(float64(poll)*d.rand()))
		select {
		case <-ctx.Done():
		case <-d.wake:
		case <-t.C:
		}
		t.Stop()
	}
}

// DispatchOnce claims the calls due now (up to Settings.Workers), posts them
// and records each attempt; it returns how many it handled.
func (d *Dispatcher) DispatchOnce(ctx context.Context) (int, error) {
	return d.dispatch(ctx, d.set.Workers)
}

func (d *Dispatcher) dispatch(ctx context.Context, max int) (int, error) {
	calls, err := d.store.ClaimWebhooks(ctx, max, d.now(), d.set.Lease)
	if err != nil {
		return 0, err
	}
	var wg sync.WaitGroup
	for _, c := range calls {
		wg.Go(func() { d.call(ctx, c) })
	}
	wg.Wait()
	return len(calls), nil
}

// call makes one attempt at a claimed call and records how it ended.
func (d *Dispatcher) call(ctx context.Context, c gateway.WebhookCall) {
	log := d.log.With(zap.String("webhook_id", c.ID), zap.String("client", c.ClientID), zap.Int("attempt", c.Attempts))
	ep, ok := d.endpoints[c.ClientID]
	class := "not-configured"
	if ok && c.Attempts <= ep.MaxAttempts {
		class = d.post(context.WithoutCancel(ctx), ep, c)
	} else if ok {
		class = "attempts-exhausted" // claims count attempts: dispatchers died mid-post
	}
	maxAttempts := defaultMaxAttempts
	if ok {
		maxAttempts = ep.MaxAttempts
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
	defer cancel()
	at := d.now()
	var result string
	var err error
	switch {
	case class == "":
		result, err = "delivered", d.store.CompleteWebhook(rctx, c.ID, c.LeaseID, at)
	case c.Attempts >= maxAttempts:
		result, err = "dead", d.store.DeadLetterWebhook(rctx, c.ID, c.LeaseID, at, class)
	default:
		next := at.Add(Backoff(c.Attempts, d.set.BaseBackoff, d.set.MaxBackoff, d.rand()))
		result, err = "retry", d.store.RetryWebhook(rctx, c.ID, c.LeaseID, next, class)
		log = log.With(zap.Time("retry_at", next))
	}
	if err != nil {
		log.Warn("recording a webhook call failed", zap.String("result", result), zap.String("error_code", gateway.ErrorCode(err)))
		return
	}
	d.metrics.ObserveWebhook(result)
	switch result {
	case "delivered":
		log.Info("webhook delivered")
	case "retry":
		log.Info("webhook call will be retried", zap.String("error_class", class))
	default:
		log.Warn("webhook call dead lettered", zap.String("error_class", class))
	}
}

// post sends the call's payload, signed, and returns "" for a 2xx answer or
// the class of the failure.
func (d *Dispatcher) post(ctx context.Context, ep Endpoint, c gateway.WebhookCall) string {
	body := c.Body(c.Attempts)
	ts := d.now().Unix()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, ep.URL, bytes.NewReader(body))
	if err != nil {
		return "bad-url"
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(HeaderID, c.ID)
	req.Header.Set(HeaderTimestamp, strconv.FormatInt(ts, 10))
	req.Header.Set(HeaderSignature, Sign(ep.Secret, c.ID, ts, body))
	resp, err := d.http.Do(req)
	if err != nil {
		return classify(err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return ""
	case resp.StatusCode >= 300 && resp.StatusCode < 400:
		return "redirect"
	}
	return "http-" + strconv.Itoa(resp.StatusCode)
}

// classify names a transport failure without its text, which carries the
// URL.
func classify(err error) string {
	var ne net.Error
	var ce *tls.CertificateVerificationError
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "refused"
	case errors.As(err, &ce):
		return "tls"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "reset"
	}
	var de *net.DNSError
	if errors.As(err, &de) {
		return "dns"
	}
	return "transport"
}

// Backoff is the wait after the n-th failed attempt: base doubled n-1
// times, at most limit, of which a random half (r in [0,1)) is jitter, so
// that calls that failed together do not retry together.
func Backoff(n int, base, limit time.Duration, r float64) time.Duration {
	wait := limit
	if shift := max(n-1, 0); shift < 32 && base<<shift > 0 && base<<shift < limit {
		wait = base << shift
	}
	half := wait / 2
	return half + time.Duration(float64(half)*min(max(r, 0), 1))
}
