package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// institution is a university that a demo token posts for.
type institution struct {
	Name  string `json:"name"`
	UKPRN string `json:"ukprn"`
	token string
}

var (
	uwe       = institution{"University of the West of England", "10007164", "demo-uwe-submitter"}
	liverpool = institution{"University of Liverpool", "10006842", "demo-liverpool-submitter"}
)

// postedBy is, for each service of the example registry that the demo
// institutions may refer to, the institution that posts its example cases.
// The examples for other services are not posted.
var postedBy = map[string]institution{
	"u-cope": liverpool, "liverpool-liaison": liverpool, "bristol-awp": uwe, "icope-camden": uwe,
}

// examplesAsOf is the day the example cases are written as of: every date in
// them is moved by the days from it to today, so that a consent stays current,
// an expired one expired, and a student's age what it was.
var examplesAsOf = time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)

var dateRE = regexp.MustCompile(`\d{4}-\d{2}-\d{2}`)

// caseIDPlaceholder stands for the case id in a Case's body; each post
// writes a new id in its place.
const caseIDPlaceholder = "LOADGEN-CASE-ID"

// Case is one example case record, ready to post under any case id.
type Case struct {
	Name        string      // its file name in testdata/cases, without .json
	Institution institution // who posts it
	Expect      string      // the outcome the policies give it: allow or deny (from its name)
	body        []byte
}

// Body is the record with caseID in place of the placeholder.
func (c *Case) Body(caseID string) []byte {
	return bytes.Replace(c.body, []byte(caseIDPlaceholder), []byte(caseID), 1)
}

// loadCases reads the example cases in dir as of now, in the order a load
// run cycles through them: each allowed case on the consent route ten
// times, the safeguarding override twice and each refused case once (about
// 85 % consent, 4 % overrides and 11 % refused by a rule), shuffled.
func loadCases(dir string, now time.Time) ([]*Case, error) {
	files, _ := filepath.Glob(filepath.Join(dir, "*.json"))
	days := int(now.Sub(examplesAsOf) / (24 * time.Hour))
	var out []*Case
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		b = dateRE.ReplaceAllFunc(b, func(d []byte) []byte {
			t, err := time.Parse(time.DateOnly, string(d))
			if err != nil {
				return d
			}
			return t.AddDate(0, 0, days).AppendFormat(nil, time.DateOnly)
		})
		var rec map[string]any
		if err := json.Unmarshal(b, &rec); err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		ref, _ := rec["referral"].(map[string]any)
		inst, ok := postedBy[fmt.Sprint(ref["service"])]
		if !ok {
			continue
		}
		rec["institution"], rec["caseId"] = inst, caseIDPlaceholder
		c := &Case{Name: strings.TrimSuffix(filepath.Base(f), ".json"), Institution: inst, Expect: "allow"}
		if c.body, err = json.Marshal(rec); err != nil {
			return nil, err
		}
		n := 10
		switch {
		case strings.HasPrefix(c.Name, "deny-"):
			c.Expect, n = "deny", 1
		case rec["override"] != nil:
			n = 2
		}
		for range n {
			out = append(out, c)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no example case in %s for the demo institutions' services", dir)
	}
	rand.New(rand.NewPCG(1, 2)).Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out, nil
}

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
	// Retry posts a referral refused with 429 or 503 again after a second
	// (the gateway's Retry-After), as a university's system does, up to
	// maxRetries times.
	Retry bool
}

// maxRetries bounds how often one refused referral is posted again.
const maxRetries = 120

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
	Accepted int `json:"accepted"`
	Denied   int `json:"denied"`
	Refused  int `json:"refused"`
	Errors   int `json:"errors"`
	// Retries counts the refusals that were posted again (LoadOptions.Retry).
	Retries        int      `json:"retries"`
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
	run := fmt.Sprintf("%08x", rand.Uint32()) // in every case id, so that runs never collide
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
				outcome, detail := post(ctx, hc, o.Target, c, fmt.Sprintf("LG-%s-%010d", run, n))
				for retries := 0; outcome == "refused" && o.Retry && retries < maxRetries; retries++ {
					mu.Lock()
					res.Retries++
					mu.Unlock()
					select {
					case <-time.After(time.Second):
					case <-ctx.Done():
						return
					}
					outcome, detail = post(ctx, hc, o.Target, c, fmt.Sprintf("LG-%s-%010d", run, n))
				}
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
