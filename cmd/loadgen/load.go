package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
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
	Target string // the gateway's base URL, a loopback address
	// Rate is the offered load in requests per second; 0 is flat out (each
	// of Concurrency clients posts its next request as soon as it has the
	// answer to the last).
	Rate                     float64
	Duration, Warmup         time.Duration
	Concurrency, MaxRequests int
	Cases                    []*Case // posted in turn, each under a new case id
	Run                      string  // in every case id, so that runs never collide
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
	// IDs maps each accepted referral to the token of the institution
	// that may read it, so that a caller can check later what became of it.
	IDs map[string]string `json:"-"`
}

// Latency summarises request latencies in milliseconds. In a fixed-rate
// run a latency is measured from the time the request was due, not sent, so
// that a stalled server cannot hide its queue (coordinated omission).
type Latency struct {
	P50 float64 `json:"p50"`
	P95 float64 `json:"p95"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
}

// summarise computes the latency summary; it sorts ds.
func summarise(ds []time.Duration) Latency {
	if len(ds) == 0 {
		return Latency{}
	}
	slices.Sort(ds)
	q := func(p float64) float64 { return ms(ds[int(math.Ceil(p*float64(len(ds))))-1]) }
	return Latency{P50: q(0.50), P95: q(0.95), P99: q(0.99), Max: ms(ds[len(ds)-1])}
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
	if ip := net.ParseIP(u.Hostname()); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("--target %q: load is only sent to a loopback address (127.0.0.1)", target)
	}
	return nil
}

// newClient is a client whose Transport keeps a connection alive for each
// of conc concurrent requests, so that a run measures requests, not TCP
// handshakes.
func newClient(conc int) *http.Client {
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		MaxIdleConns: conc + 8, MaxIdleConnsPerHost: conc + 8, IdleConnTimeout: 90 * time.Second,
	}}
}

// do sends a request (with token as bearer, unless empty) and reads the
// answer.
func do(ctx context.Context, hc *http.Client, method, url, token string, body []byte) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// get fetches url and wants a 200.
func get(ctx context.Context, hc *http.Client, url, token string) ([]byte, error) {
	s, b, err := do(ctx, hc, http.MethodGet, url, token, nil)
	if err == nil && s != http.StatusOK {
		err = fmt.Errorf("GET %s: status %d", url, s)
	}
	return b, err
}

// post sends c under caseID and classifies the answer: accepted (with the
// referral's id), denied, refused or error (with what went wrong).
func post(ctx context.Context, hc *http.Client, target string, c *Case, caseID string) (outcome, detail string) {
	s, body, err := do(ctx, hc, http.MethodPost, target+"/v1/referrals", c.Institution.token, c.Body(caseID))
	var ref struct{ ID string }
	switch {
	case err != nil:
		return "error", err.Error()
	case (s == http.StatusAccepted || s == http.StatusOK) && c.Expect == "allow" && json.Unmarshal(body, &ref) == nil && ref.ID != "":
		return "accepted", ref.ID
	case s == http.StatusForbidden && c.Expect == "deny":
		return "denied", ""
	case s == http.StatusTooManyRequests || s == http.StatusServiceUnavailable:
		return "refused", ""
	}
	return "error", fmt.Sprintf("%s: status %d: %.300s", c.Name, s, body)
}

// RunLoad posts referrals as the options say and measures the answers.
func RunLoad(ctx context.Context, o LoadOptions) (*LoadResult, error) {
	if err := checkLoopback(o.Target); err != nil {
		return nil, err
	}
	if len(o.Cases) == 0 || o.Concurrency <= 0 || o.MaxRequests <= 0 {
		return nil, errors.New("no cases to post, no concurrency or no requests")
	}
	ctx, cancel := context.WithTimeout(ctx, o.Warmup+o.Duration+30*time.Second)
	defer cancel()
	hc := newClient(o.Concurrency)
	defer hc.CloseIdleConnections()
	res := &LoadResult{Rate: o.Rate, Concurrency: o.Concurrency, IDs: map[string]string{}}
	count := map[string]*int{"accepted": &res.Accepted, "denied": &res.Denied, "refused": &res.Refused, "error": &res.Errors}
	var mu sync.Mutex
	var lat []time.Duration
	start := time.Now()
	measureFrom := start.Add(o.Warmup)
	end := measureFrom.Add(o.Duration)
	var interval time.Duration // between requests at a fixed rate; 0 flat out
	if o.Rate > 0 {
		interval = time.Duration(float64(time.Second) / o.Rate)
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range o.Concurrency {
		wg.Go(func() {
			for {
				// Request n is due at start + n/Rate (flat out: now).
				n := int(next.Add(1) - 1)
				due := start.Add(time.Duration(n) * interval)
				if interval == 0 {
					due = time.Now()
				}
				if n >= o.MaxRequests || !due.Before(end) {
					return
				}
				select {
				case <-time.After(time.Until(due)):
				case <-ctx.Done():
					return
				}
				c := o.Cases[n%len(o.Cases)]
				outcome, detail := post(ctx, hc, o.Target, c, fmt.Sprintf("LG-%s-%010d", o.Run, n))
				if due.Before(measureFrom) {
					continue
				}
				mu.Lock()
				lat = append(lat, time.Since(due))
				*count[outcome]++
				if outcome == "accepted" {
					res.IDs[detail] = c.Institution.token
				} else if outcome == "error" && len(res.ErrorSamples) < 5 {
					res.ErrorSamples = append(res.ErrorSamples, detail)
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil && err != context.DeadlineExceeded {
		return nil, err
	}
	// Over the measured window and the answers still due at its end: a
	// server that falls behind a fixed rate shows a lower rate achieved.
	secs := time.Since(measureFrom).Seconds()
	res.Seconds, res.Requests, res.Latency = round2(secs), len(lat), summarise(lat)
	res.AcceptedPerSec = round2(float64(res.Accepted) / secs)
	res.RequestsPerSec = round2(float64(len(lat)) / secs)
	return res, nil
}
