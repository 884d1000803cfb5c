// Package delivery drains the outbox: it posts each queued message to its
// receiving service's BaRS $process-message and records how the attempt
// ended, so that a referral accepted by the gateway reaches the NHS service
// exactly once as far as the receiver can tell.
//
// At least once is what the worker guarantees; exactly once is what the
// receiver sees, because every retry of a message carries the X-Request-Id
// fixed when it was queued and a BaRS receiver drops a duplicate (answering
// 409 REC_CONFLICT, which the worker counts as delivered). Any number of
// gateway processes may run workers on one store: the store's Claim leases
// each message to one worker at a time, and a worker posts only within its
// lease.
//
// Retries back off exponentially with jitter and honour Retry-After. A
// message that keeps failing is dead lettered after a number of attempts or
// an age, for an operator to retry or drop. The worker logs only ids,
// service ids, status codes and attempt numbers, never a message's content.
package delivery

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"go.uber.org/zap"

	"github.com/student-mh-referrals/gateway/gateway"
)

// Metrics is told of each recorded attempt; *prometheus.Metrics implements
// it. result is an AttemptResult: delivered, retry, failed, dead-lettered.
type Metrics interface {
	ObserveDelivery(service, result string)
}

// Options are what a Worker needs.
type Options struct {
	// Outbox is the queue (the gateway's Store).
	Outbox gateway.Outbox
	// Services are the receiving services with their transports.
	Services []Service
	// Settings tune the worker.
	Settings Settings
	// Source names the gateway in NHSD-Requesting-Software (the same
	// gateway.Source the mapping puts in MessageHeader.source).
	Source gateway.Source
	// Owner prefixes the lease owner of each of the worker's goroutines;
	// empty gives host-pid-random, unique per process.
	Owner   string
	Logger  *zap.Logger
	Metrics Metrics
	// Now and Rand replace the clock and the jitter source in tests.
	Now  func() time.Time
	Rand func() float64
}

// Service is one receiving service as the worker posts to it: the
// registry's entry and how to reach it.
type Service struct {
	gateway.Service
	Transport Transport
}

// Settings tune the worker. cmd/gateway fills them from the configuration,
// which gives each its default and checks them; New refuses settings with
// which a worker would never post, or could post one message twice at once.
type Settings struct {
	// Workers is how many messages one process posts at once.
	Workers int
	// MaxAttempts and MaxAge bound the tries of one message: then it is
	// dead lettered.
	MaxAttempts int
	MaxAge      time.Duration
	// BaseBackoff and MaxBackoff bound the exponential backoff between
	// attempts; a receiver's Retry-After wins when it asks for longer.
	BaseBackoff, MaxBackoff time.Duration
	// Timeout bounds one attempt; Lease, how long a claimed message stays
	// with its worker, must exceed it.
	Timeout, Lease time.Duration
	// PollInterval is how often an idle worker looks for due messages.
	PollInterval time.Duration
}

// Worker delivers outbox messages. Build it with New; Run it, or call
// DeliverOnce from tests.
type Worker struct {
	outbox    gateway.Outbox
	set       Settings
	source    gateway.Source
	owner     string
	log       *zap.Logger
	metrics   Metrics
	now       func() time.Time
	rand      func() float64
	receivers map[string]*receiver
	wake      chan struct{}
}

// receiver is one service as the worker posts to it.
type receiver struct {
	svc    gateway.Service
	url    string
	client *Client
}

// maxAnswer bounds how much of a receiver's answer is read: enough for any
// OperationOutcome.
const maxAnswer = 1 << 20

// recordTimeout bounds recording an attempt, which is not cancelled with
// the worker's context: an answered post must be recorded.
const recordTimeout = 15 * time.Second

// recordRetryMin and recordRetryMax bound the wait between tries at
// recording an attempt while the store is unavailable.
const (
	recordRetryMin = 50 * time.Millisecond
	recordRetryMax = 2 * time.Second
)

// New builds a worker and an HTTP client per service. It fails on a
// transport whose files cannot be read or settings that do not hold.
func New(o Options) (*Worker, error) {
	if o.Outbox == nil {
		return nil, errors.New("delivery: an outbox is required")
	}
	set := o.Settings
	switch {
	case set.Workers < 1 || set.MaxAttempts < 1 || set.MaxAge <= 0 || set.PollInterval <= 0 || set.BaseBackoff > set.MaxBackoff:
		return nil, fmt.Errorf("delivery: settings out of range: %+v", set)
	case set.Lease <= set.Timeout || set.Timeout <= 0:
		return nil, fmt.Errorf("delivery: the lease %s must exceed the timeout %s, or a message could be claimed again while its post is in flight", set.Lease, set.Timeout)
	}
	w := &Worker{
		outbox: o.Outbox, set: set, source: o.Source, owner: o.Owner, log: o.Logger, metrics: o.Metrics,
		now: o.Now, rand: o.Rand, receivers: map[string]*receiver{}, wake: make(chan struct{}, 1),
	}
	if w.owner == "" {
		host, _ := os.Hostname()
		w.owner = fmt.Sprintf("%s-%d-%s", host, os.Getpid(), uuid.NewString()[:8])
	}
	if w.log == nil {
		w.log = zap.NewNop()
	}
	if w.metrics == nil {
		w.metrics = nopMetrics{}
	}
	if w.now == nil {
		w.now = time.Now
	}
	if w.rand == nil {
		w.rand = rand.Float64
	}
	for _, s := range o.Services {
		c, err := NewClient(s.Transport, set.Timeout)
		if err != nil {
			return nil, fmt.Errorf("services (%s): %w", s.ID, err)
		}
		w.receivers[s.ID] = &receiver{svc: s.Service, url: strings.TrimRight(s.Endpoint, "/") + "/$process-message", client: c}
	}
	return w, nil
}

type nopMetrics struct{}

func (nopMetrics) ObserveDelivery(string, string) {}

// Notify wakes an idle worker goroutine at once, e.g. after a referral is
// accepted, instead of at its next poll. It never blocks.
func (w *Worker) Notify() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// Run delivers until ctx is cancelled, with Settings.Workers goroutines
// each claiming one message at a time. On cancellation no new message is
// claimed; posts in flight run to their end (bounded by the timeout and the
// lease) and are recorded, and Run returns once they are.
func (w *Worker) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	for i := range w.set.Workers {
		owner := fmt.Sprintf("%s/%d", w.owner, i)
		wg.Go(func() { w.loop(ctx, owner) })
	}
	wg.Wait()
	for _, r := range w.receivers {
		r.client.CloseIdleConnections()
	}
	return nil
}

func (w *Worker) loop(ctx context.Context, owner string) {
	poll := w.set.PollInterval
	for ctx.Err() == nil {
		n, err := w.deliverBatch(ctx, owner, 1)
		if err != nil && ctx.Err() == nil {
			w.log.Warn("outbox claim failed", zap.String("owner", owner), zap.String("error_code", gateway.ErrorCode(err)), zap.Error(err))
		}
		if n > 0 {
			continue // more may be due
		}
		// Sleep a jittered poll interval, so that the goroutines of many
		// processes do not claim in step.
		t := time.NewTimer(poll/2 + time.Duration(float64(poll)*w.rand()))
		select {
		case <-ctx.Done():
		case <-w.wake:
		case <-t.C:
		}
		t.Stop()
	}
}

// DeliverOnce claims the messages due now (up to Settings.Workers), posts
// them concurrently and records each attempt. It returns how many it
// handled. Tests drive the worker with it, step by step.
func (w *Worker) DeliverOnce(ctx context.Context) (int, error) {
	return w.deliverBatch(ctx, w.owner+"/once", w.set.Workers)
}

func (w *Worker) deliverBatch(ctx context.Context, owner string, max int) (int, error) {
	msgs, err := w.outbox.Claim(ctx, owner, max, w.now(), w.set.Lease)
	if err != nil {
		return 0, err
	}
	var wg sync.WaitGroup
	for _, m := range msgs {
		wg.Go(func() { w.deliver(ctx, m) })
	}
	wg.Wait()
	return len(msgs), nil
}

// deliver makes one attempt at a claimed message and records it.
func (w *Worker) deliver(ctx context.Context, m gateway.OutboxMessage) {
	a, status := w.attempt(ctx, m)
	log := w.log.With(zap.String("message_id", m.ID), zap.String("request_id", m.RequestID),
		zap.String("service", m.ServiceID), zap.Int("attempt", m.Attempts))
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), recordTimeout)
	defer cancel()
	if err := w.record(rctx, log, m, a); err != nil {
		if gateway.ErrorCode(err) == gateway.ECONFLICT {
			log.Warn("delivery lease lost; the attempt is not recorded", zap.String("result", string(a.Result)), zap.Int("status", status))
			return
		}
		log.Error("recording a delivery attempt failed", zap.String("result", string(a.Result)), zap.Int("status", status), zap.Error(err))
		return
	}
	w.metrics.ObserveDelivery(m.ServiceID, string(a.Result))
	fields := []zap.Field{zap.String("result", string(a.Result)), zap.Int("status", status)}
	switch a.Result {
	case gateway.AttemptDelivered:
		log.Info("message delivered", fields...)
	case gateway.AttemptRetry:
		log.Info("message delivery will be retried", append(fields, zap.Time("retry_at", a.RetryAt), zap.String("reason", a.Error))...)
	default:
		log.Warn("message not delivered", append(fields, zap.String("reason", a.Error))...)
	}
}

// record records an attempt, again and again while the store is
// unavailable (a database restarting, a full disk being cleared) until ctx
// ends: the post has happened, and an unrecorded attempt is posted again
// once its lease runs out. Only when the outage outlasts recordTimeout does
// the receiver see the message twice (and drop it by its X-Request-Id).
func (w *Worker) record(ctx context.Context, log *zap.Logger, m gateway.OutboxMessage, a gateway.Attempt) error {
	wait := recordRetryMin
	for {
		err := w.outbox.RecordAttempt(ctx, m.ID, m.LeaseID, a)
		if gateway.ErrorCode(err) != gateway.EUNAVAILABLE || ctx.Err() != nil {
			return err
		}
		log.Warn("the store is unavailable; recording the attempt again shortly", zap.Duration("wait", wait), zap.Error(err))
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
		wait = min(2*wait, recordRetryMax)
	}
}

// attempt posts m unless it is out of attempts or too old, and turns the
// answer into the Attempt to record. status is the receiver's HTTP status
// (0 when there was none).
func (w *Worker) attempt(ctx context.Context, m gateway.OutboxMessage) (gateway.Attempt, int) {
	now := w.now()
	maxAttempts, maxAge := w.set.MaxAttempts, w.set.MaxAge
	dead := func(reason string) gateway.Attempt {
		return gateway.Attempt{Result: gateway.AttemptDeadLettered, At: now, Error: reason}
	}
	switch {
	case m.Attempts > maxAttempts:
		// Claims count attempts, so workers that died mid-post use them up.
		return dead(fmt.Sprintf("gave up: claimed %d times, the limit is %d", m.Attempts, maxAttempts)), 0
	case !m.CreatedAt.IsZero() && now.Sub(m.CreatedAt) >= maxAge:
		return dead(fmt.Sprintf("gave up: queued for longer than %s", maxAge)), 0
	case len(m.Body) == 0:
		return dead("the message has no body to send"), 0
	}
	rc, ok := w.receivers[m.ServiceID]
	if !ok {
		// Configuration may bring the service back; until the retries run
		// out, wait for it.
		return w.retryOrDead(m, now, Verdict{Result: gateway.AttemptRetry, Error: fmt.Sprintf("service %q is not configured", m.ServiceID)}), 0
	}
	// Post only within the lease, with a margin for recording the outcome,
	// so that no other worker can claim the message while it is in flight.
	budget := w.set.Timeout
	if !m.DueAt.IsZero() {
		budget = min(budget, m.DueAt.Sub(now)-min(w.set.Lease/10, 5*time.Second))
	}
	if budget <= 0 {
		return w.retryOrDead(m, now, Verdict{Result: gateway.AttemptRetry, Error: "the lease ran out before the post"}), 0
	}
	// In-flight posts are not cut short when the worker stops: they end
	// within the budget at the latest. (The budget is a duration, so that
	// the deadline is on the real clock whatever Now says.)
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), budget)
	defer cancel()
	v := w.post(pctx, rc, m)
	at := w.now()
	switch v.Result {
	case gateway.AttemptDelivered:
		return gateway.Attempt{Result: gateway.AttemptDelivered, At: at}, v.Status
	case gateway.AttemptFailed:
		return gateway.Attempt{Result: gateway.AttemptFailed, At: at, Error: v.Error, Response: v.Response}, v.Status
	}
	return w.retryOrDead(m, at, v), v.Status
}

// retryOrDead schedules the next attempt, or dead letters the message when
// this was its last attempt or the next would come after its maximum age.
func (w *Worker) retryOrDead(m gateway.OutboxMessage, at time.Time, v Verdict) gateway.Attempt {
	wait := max(Backoff(m.Attempts, w.set.BaseBackoff, w.set.MaxBackoff, w.rand()), v.RetryAfter)
	next := at.Add(wait)
	switch {
	case m.Attempts >= w.set.MaxAttempts:
		return gateway.Attempt{Result: gateway.AttemptDeadLettered, At: at,
			Error: fmt.Sprintf("gave up after %d attempts: %s", m.Attempts, v.Error)}
	case !m.CreatedAt.IsZero() && next.Sub(m.CreatedAt) >= w.set.MaxAge:
		return gateway.Attempt{Result: gateway.AttemptDeadLettered, At: at,
			Error: fmt.Sprintf("gave up: the next attempt would come after %s in the queue: %s", w.set.MaxAge, v.Error)}
	}
	return gateway.Attempt{Result: gateway.AttemptRetry, At: at, RetryAt: next, Error: v.Error}
}

// post sends the message and classifies the answer.
func (w *Worker) post(ctx context.Context, rc *receiver, m gateway.OutboxMessage) Verdict {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, rc.url, bytes.NewReader(m.Body))
	if err != nil {
		return ClassifyError(err)
	}
	for k, vs := range gateway.Headers(m, rc.svc, w.source) {
		req.Header[k] = vs
	}
	resp, err := rc.client.Do(req)
	if err != nil {
		return ClassifyError(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil && resp.StatusCode >= 200 && resp.StatusCode < 300 {
		// The receiver said 2xx before the connection broke: it has the
		// message.
		err = nil
	}
	if err != nil {
		body = nil
	}
	return Classify(resp.StatusCode, resp.Header, body, w.now(), rc.client.OAuth2())
}
