package main

import (
	"context"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// LoadOptions drive POST /v1/referrals. Every run is bounded twice: by
// Warmup+Duration and by MaxRequests, whichever comes first.
type LoadOptions struct {
	// Target is the gateway's base URL; it must be a loopback address.
	Target string
	// Rate is the offered load in requests per second; 0 is flat out (each
	// of Concurrency clients posts its next request as soon as it has the
	// answer to the last).
	Rate        float64
	Duration    time.Duration
	Warmup      time.Duration
	Concurrency int
	MaxRequests int
	// Tokens maps an institution's UKPRN to the bearer token that posts
	// its referrals.
	Tokens   map[string]string
	Variants []*Variant
	// Run is the run id in every case id, so that runs never collide.
	Run string
}

// LoadResult is what one load run measured. Requests sent during the
// warm-up are not in it.
type LoadResult struct {
	Rate         float64  `json:"offeredRate"` // 0: flat out
	Concurrency  int      `json:"concurrency"`
	Seconds      float64  `json:"seconds"`
	Requests     int      `json:"requests"`
	Accepted     int      `json:"accepted"`
	Denied       int      `json:"denied"`
	Errors       int      `json:"errors"`
	ErrorSamples []string `json:"errorSamples,omitempty"`
	// AcceptedPerSec counts only 202s with a new referral.
	AcceptedPerSec float64 `json:"acceptedPerSec"`
	RequestsPerSec float64 `json:"requestsPerSec"`
	Latency        Latency `json:"latencyMs"`
	// Late counts requests of a fixed-rate run that started more than 10 ms
	// after their scheduled time (the clients could not keep up).
	Late int `json:"late,omitempty"`
}

// Latency summarises request latencies in milliseconds. In a fixed-rate
// run a latency is measured from the time the request was due, not sent, so
// that a stalled server cannot hide its queue (coordinated omission).
type Latency struct {
	P50  float64 `json:"p50"`
	P95  float64 `json:"p95"`
	P99  float64 `json:"p99"`
	Max  float64 `json:"max"`
	Mean float64 `json:"mean"`
}

// summarise computes the latency summary; it sorts ds.
func summarise(ds []time.Duration) Latency {
	if len(ds) == 0 {
		return Latency{}
	}
	slices.Sort(ds)
	q := func(p float64) float64 {
		i := int(math.Ceil(p*float64(len(ds)))) - 1
		i = max(0, min(i, len(ds)-1))
		return ms(ds[i])
	}
	var sum time.Duration
	for _, d := range ds {
		sum += d
	}
	return Latency{P50: q(0.50), P95: q(0.95), P99: q(0.99), Max: ms(ds[len(ds)-1]), Mean: ms(sum / time.Duration(len(ds)))}
}

func ms(d time.Duration) float64 { return math.Round(float64(d)/1e4) / 100 }

// checkLoopback refuses a target that is not on this machine: load
// traffic stays on 127.0.0.1.
func checkLoopback(target string) error {
	u, err := url.Parse(target)
	if err != nil || u.Host == "" {
		return fmt.Errorf("--target %q: want a URL such as http://127.0.0.1:8080", target)
	}
	ip := net.ParseIP(u.Hostname())
	if ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("--target %q: load is only sent to a loopback address (127.0.0.1)", target)
	}
	return nil
}

// newClient is a net/http client for the load generator's own reads of the
// gateway and the sandbox (/metrics, /sandbox/messages), keeping conc
// connections alive; the load itself goes over conns (conn.go).
func newClient(conc int) *http.Client {
	return &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			Proxy:               nil,
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
			MaxIdleConns:        conc + 8,
			MaxIdleConnsPerHost: conc + 8,
			IdleConnTimeout:     90 * time.Second,
			DisableCompression:  true,
		},
	}
}

// recorder collects outcomes from the clients.
type recorder struct {
	mu       sync.Mutex
	lat      []time.Duration
	accepted int
	denied   int
	errors   int
	samples  []string
	late     int
}

func (r *recorder) add(d time.Duration, outcome string, sample string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lat = append(r.lat, d)
	switch outcome {
	case "accepted":
		r.accepted++
	case "denied":
		r.denied++
	default:
		r.errors++
		if len(r.samples) < 5 {
			r.samples = append(r.samples, sample)
		}
	}
}

// post sends request n on k and classifies the answer: accepted (202 for an
// allowed case), denied (403 for a case the rules refuse), or an error.
func post(ctx context.Context, k *conn, o *LoadOptions, n uint64) (outcome, sample string) {
	v := o.Variants[n%uint64(len(o.Variants))]
	status, body, err := k.post(ctx, "/v1/referrals", "Bearer "+o.Tokens[v.Institution], v.Body(newCaseID(o.Run, n)), 64<<10)
	if err != nil {
		return "error", err.Error()
	}
	switch {
	case status == http.StatusAccepted && v.Expect == expectAllow:
		return "accepted", ""
	case status == http.StatusForbidden && v.Expect == expectDeny:
		return "denied", ""
	}
	if len(body) > 300 {
		body = body[:300]
	}
	return "error", fmt.Sprintf("%s case (%s, %s): status %d: %s", v.Kind, v.Institution, v.Service, status, body)
}

// RunLoad posts referrals as the options say and measures the answers.
func RunLoad(ctx context.Context, o LoadOptions) (*LoadResult, error) {
	if err := checkLoopback(o.Target); err != nil {
		return nil, err
	}
	if len(o.Variants) == 0 {
		return nil, fmt.Errorf("no cases to send")
	}
	for _, v := range o.Variants {
		if o.Tokens[v.Institution] == "" {
			return nil, fmt.Errorf("no token for institution %s", v.Institution)
		}
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 16
	}
	if o.MaxRequests <= 0 {
		o.MaxRequests = 1_000_000
	}
	ctx, cancel := context.WithTimeout(ctx, o.Warmup+o.Duration+30*time.Second)
	defer cancel()
	// A connection per client, each used by its goroutine alone.
	conns := make([]*conn, o.Concurrency)
	for i := range conns {
		k, err := newConn(o.Target, 30*time.Second)
		if err != nil {
			return nil, err
		}
		conns[i] = k
		defer k.close()
	}
	rec := &recorder{}
	start := time.Now()
	measureFrom := start.Add(o.Warmup)
	end := measureFrom.Add(o.Duration)
	var wg sync.WaitGroup
	if o.Rate <= 0 {
		var next atomic.Uint64
		for _, k := range conns {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for ctx.Err() == nil {
					n := next.Add(1)
					t0 := time.Now()
					if n > uint64(o.MaxRequests) || !t0.Before(end) {
						return
					}
					outcome, sample := post(ctx, k, &o, n)
					if !t0.Before(measureFrom) {
						rec.add(time.Since(t0), outcome, sample)
					}
				}
			}()
		}
	} else {
		interval := time.Duration(float64(time.Second) / o.Rate)
		total := min(int((o.Warmup+o.Duration)/interval), o.MaxRequests)
		due := make(chan uint64, total)
		for _, k := range conns {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for n := range due {
					at := start.Add(time.Duration(n) * interval)
					if late := time.Since(at); late > 10*time.Millisecond && !at.Before(measureFrom) {
						rec.mu.Lock()
						rec.late++
						rec.mu.Unlock()
					}
					outcome, sample := post(ctx, k, &o, n)
					if !at.Before(measureFrom) {
						rec.add(time.Since(at), outcome, sample)
					}
				}
			}()
		}
	schedule:
		for n := 0; n < total; n++ {
			at := start.Add(time.Duration(n) * interval)
			if d := time.Until(at); d > 0 {
				select {
				case <-time.After(d):
				case <-ctx.Done():
					break schedule
				}
			}
			due <- uint64(n)
		}
		close(due)
	}
	wg.Wait()
	if err := ctx.Err(); err != nil && ctx.Err() != context.DeadlineExceeded {
		return nil, err
	}
	// Over the measured window and the answers still due at its end: a
	// server that falls behind a fixed rate shows a lower rate achieved.
	secs := time.Since(measureFrom).Seconds()
	res := &LoadResult{
		Rate: o.Rate, Concurrency: o.Concurrency, Seconds: round2(secs),
		Requests: len(rec.lat), Accepted: rec.accepted, Denied: rec.denied, Errors: rec.errors,
		ErrorSamples: rec.samples, Late: rec.late,
		AcceptedPerSec: round2(float64(rec.accepted) / secs),
		RequestsPerSec: round2(float64(len(rec.lat)) / secs),
		Latency:        summarise(rec.lat),
	}
	return res, nil
}

func round2(f float64) float64 { return math.Round(f*100) / 100 }
