package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"slices"
	"sync"
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
	// KeepIDs keeps the id of every accepted referral (LoadResult.IDs), so
	// that the caller can check later what became of each.
	KeepIDs bool
}

// LoadResult is what one load run measured. Requests sent during the
// warm-up are not in it.
type LoadResult struct {
	Rate        float64 `json:"offeredRate"` // 0: flat out
	Concurrency int     `json:"concurrency"`
	Seconds     float64 `json:"seconds"`
	Requests    int     `json:"requests"`
	// Accepted counts allowed cases answered 202 (or 200, the same
	// referral again); Denied refused cases answered 403; Refused 429 and
	// 503, the answers of a gateway that sheds load; Errors anything else.
	Accepted       int      `json:"accepted"`
	Denied         int      `json:"denied"`
	Refused        int      `json:"refused"`
	Errors         int      `json:"errors"`
	ErrorSamples   []string `json:"errorSamples,omitempty"`
	AcceptedPerSec float64  `json:"acceptedPerSec"`
	RequestsPerSec float64  `json:"requestsPerSec"`
	Latency        Latency  `json:"latencyMs"`
	// IDs are the accepted referrals, with KeepIDs.
	IDs []Accepted `json:"-"`
}

// Accepted is one accepted referral and the institution that may read it.
type Accepted struct{ ID, Institution string }

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
		return ms(ds[max(0, min(i, len(ds)-1))])
	}
	var sum time.Duration
	for _, d := range ds {
		sum += d
	}
	return Latency{P50: q(0.50), P95: q(0.95), P99: q(0.99), Max: ms(ds[len(ds)-1]), Mean: ms(sum / time.Duration(len(ds)))}
}

func ms(d time.Duration) float64 { return math.Round(float64(d)/1e4) / 100 }

func round2(f float64) float64 { return math.Round(f*100) / 100 }

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

// newClient is a client whose Transport keeps a connection alive for each
// of conc concurrent requests, so that a run measures requests, not TCP
// handshakes.
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
	mu      sync.Mutex
	lat     []time.Duration
	counts  map[string]int
	samples []string
	ids     []Accepted
}

func (r *recorder) add(d time.Duration, a answer) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lat = append(r.lat, d)
	r.counts[a.outcome]++
	if a.outcome == "error" && len(r.samples) < 5 {
		r.samples = append(r.samples, a.sample)
	}
	if a.id != "" {
		r.ids = append(r.ids, Accepted{a.id, a.institution})
	}
}

// answer is one post's outcome: accepted, denied, refused or error.
type answer struct {
	outcome, sample, id, institution string
}

// post sends request n and classifies the answer.
func post(ctx context.Context, hc *http.Client, o *LoadOptions, n uint64) answer {
	v := o.Variants[n%uint64(len(o.Variants))]
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, o.Target+"/v1/referrals", bytes.NewReader(v.Body(newCaseID(o.Run, n))))
	if err != nil {
		return answer{outcome: "error", sample: err.Error()}
	}
	req.Header.Set("Authorization", "Bearer "+o.Tokens[v.Institution])
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return answer{outcome: "error", sample: err.Error()}
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	_, _ = io.Copy(io.Discard, resp.Body) // so that the connection is kept
	resp.Body.Close()
	if err != nil {
		return answer{outcome: "error", sample: err.Error()}
	}
	switch s := resp.StatusCode; {
	case (s == http.StatusAccepted || s == http.StatusOK) && v.Expect == expectAllow:
		a := answer{outcome: "accepted"}
		if o.KeepIDs {
			var ref struct{ ID string }
			if json.Unmarshal(body, &ref) != nil || ref.ID == "" {
				return answer{outcome: "error", sample: fmt.Sprintf("status %d without a referral id", s)}
			}
			a.id, a.institution = ref.ID, v.Institution
		}
		return a
	case s == http.StatusForbidden && v.Expect == expectDeny:
		return answer{outcome: "denied"}
	case s == http.StatusTooManyRequests || s == http.StatusServiceUnavailable:
		return answer{outcome: "refused"}
	}
	return answer{outcome: "error", sample: fmt.Sprintf("%s case (%s, %s): status %d: %.300s", v.Kind, v.Institution, v.Service, resp.StatusCode, body)}
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
	o.Concurrency = max(o.Concurrency, 1)
	if o.MaxRequests <= 0 {
		o.MaxRequests = 1_000_000
	}
	ctx, cancel := context.WithTimeout(ctx, o.Warmup+o.Duration+30*time.Second)
	defer cancel()
	hc := newClient(o.Concurrency)
	defer hc.CloseIdleConnections()
	rec := &recorder{counts: map[string]int{}}
	start := time.Now()
	measureFrom := start.Add(o.Warmup)
	end := measureFrom.Add(o.Duration)
	// due hands out request numbers: as fast as they are taken (flat out)
	// or one every 1/Rate s (the time each was due is start + n/Rate).
	due := make(chan uint64, o.Concurrency)
	var interval time.Duration
	if o.Rate > 0 {
		interval = time.Duration(float64(time.Second) / o.Rate)
	}
	var wg sync.WaitGroup
	for range o.Concurrency {
		wg.Go(func() {
			for n := range due {
				t0 := time.Now()
				if interval > 0 {
					t0 = start.Add(time.Duration(n) * interval)
				}
				a := post(ctx, hc, &o, n)
				if !t0.Before(measureFrom) {
					rec.add(time.Since(t0), a)
				}
			}
		})
	}
schedule:
	for n := range uint64(o.MaxRequests) {
		if interval > 0 {
			if d := time.Until(start.Add(time.Duration(n) * interval)); d > 0 {
				select {
				case <-time.After(d):
				case <-ctx.Done():
					break schedule
				}
			}
		}
		if !time.Now().Before(end) {
			break
		}
		select {
		case due <- n:
		case <-ctx.Done():
			break schedule
		}
	}
	close(due)
	wg.Wait()
	if err := ctx.Err(); err != nil && err != context.DeadlineExceeded {
		return nil, err
	}
	// Over the measured window and the answers still due at its end: a
	// server that falls behind a fixed rate shows a lower rate achieved.
	secs := time.Since(measureFrom).Seconds()
	return &LoadResult{
		Rate: o.Rate, Concurrency: o.Concurrency, Seconds: round2(secs), Requests: len(rec.lat),
		Accepted: rec.counts["accepted"], Denied: rec.counts["denied"], Refused: rec.counts["refused"],
		Errors: rec.counts["error"], ErrorSamples: rec.samples, IDs: rec.ids,
		AcceptedPerSec: round2(float64(rec.counts["accepted"]) / secs),
		RequestsPerSec: round2(float64(len(rec.lat)) / secs),
		Latency:        summarise(rec.lat),
	}, nil
}
