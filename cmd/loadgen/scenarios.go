package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
)

// Scenario is one measurement: a load run, a backlog or a series of starts.
type Scenario struct {
	Name string `json:"name"`
	// LoadAvg is the machine's 1-minute load average before and after:
	// the machine may be shared.
	LoadAvg [2]float64     `json:"loadAvg"`
	Load    *LoadResult    `json:"load,omitempty"`
	Backlog *BacklogResult `json:"backlog,omitempty"`
	Ready   *ReadyResult   `json:"ready,omitempty"`
	// PeakRSSMB is the gateway process's VmHWM at the end.
	PeakRSSMB float64 `json:"peakRSSMB,omitempty"`
	Note      string  `json:"note,omitempty"`
}

func runID() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// startEnv starts a gateway and a sandbox receiver.
func (o *options) startEnv(ctx context.Context) (*Env, error) {
	env, err := NewEnv(o.gateway)
	if err != nil {
		return nil, err
	}
	if err := env.StartSandbox(ctx); err != nil {
		env.Close()
		return nil, err
	}
	if _, err := env.StartGateway(ctx); err != nil {
		env.Close()
		return nil, err
	}
	return env, nil
}

func (o *options) generate(mix Mix) ([]*Variant, error) {
	return Generate(o.cases, o.institutions(), o.variants, mix, time.Now(), o.seed)
}

// loadScenario posts referrals at rate (0: flat out) to a spawned gateway,
// delivering to its sandbox meanwhile, or to --target.
func loadScenario(ctx context.Context, o *options, name string, rate float64, spawn bool) (*Scenario, error) {
	vs, err := o.generate(DefaultMix)
	if err != nil {
		return nil, err
	}
	lo := LoadOptions{
		Target: o.target, Rate: rate, Duration: o.duration, Warmup: o.warmup, Concurrency: o.concurrency,
		MaxRequests: o.maxRequests, Tokens: o.tokens, Variants: vs, Run: runID(),
	}
	sc := &Scenario{Name: name}
	sc.LoadAvg[0] = loadAvg()
	var env *Env
	if spawn {
		if env, err = o.startEnv(ctx); err != nil {
			return nil, err
		}
		defer env.Close()
		lo.Target = env.API
	}
	if sc.Load, err = RunLoad(ctx, lo); err != nil {
		return nil, err
	}
	if env != nil {
		if sc.PeakRSSMB, err = env.PeakRSSMB(); err != nil {
			return nil, err
		}
	}
	sc.LoadAvg[1] = loadAvg()
	return sc, nil
}

// BacklogResult is what became of a backlog posted at once while the
// receiver was down, and how fast it drained once the receiver was back.
type BacklogResult struct {
	Posted      int     `json:"posted"`
	Concurrency int     `json:"concurrency"`
	Accepted    int     `json:"accepted"`
	Refused     int     `json:"refused"` // 429 or 503
	Failed      int     `json:"failed"`  // any other answer, or none
	PostSecs    float64 `json:"postSeconds"`
	PostLat     Latency `json:"postLatencyMs"`
	Queued      int     `json:"queued"` // gateway_outbox_depth when the receiver came back
	DrainSecs   float64 `json:"drainSeconds"`
	PerSec      float64 `json:"drainedPerSec"`
	// Lost counts accepted referrals that were not delivered (or
	// acknowledged) once the outbox was empty.
	Lost int `json:"lost"`
}

// backlogScenario freezes the sandbox receiver (SIGSTOP: connections are
// accepted, nothing is answered, so the delivery workers wait and the
// outbox fills), posts --backlog distinct allowed referrals as fast as
// --backlog-concurrency requests in flight allow, thaws the receiver and
// times until the outbox is empty; then it reads every accepted referral
// back and counts those not delivered.
func backlogScenario(ctx context.Context, o *options) (*Scenario, error) {
	vs, err := o.generate(Mix{Override: DefaultMix.Override})
	if err != nil {
		return nil, err
	}
	sc := &Scenario{Name: fmt.Sprintf("backlog of %d", o.backlog)}
	sc.LoadAvg[0] = loadAvg()
	env, err := o.startEnv(ctx)
	if err != nil {
		return nil, err
	}
	defer env.Close()
	if err := env.FreezeSandbox(true); err != nil {
		return nil, err
	}
	res, err := RunLoad(ctx, LoadOptions{
		Target: env.API, Duration: 10 * time.Minute, Concurrency: o.backlogConc, MaxRequests: o.backlog,
		Tokens: o.tokens, Variants: vs, Run: runID(), KeepIDs: true,
	})
	if err != nil {
		return nil, err
	}
	b := &BacklogResult{Posted: res.Requests, Concurrency: o.backlogConc, Accepted: res.Accepted, Refused: res.Refused, Failed: res.Errors,
		PostSecs: res.Seconds, PostLat: res.Latency}
	sc.Backlog = b
	hc := newClient(16)
	defer hc.CloseIdleConnections()
	depth, err := metric(ctx, hc, env.API, "gateway_outbox_depth")
	if err != nil {
		return nil, err
	}
	b.Queued = int(depth)
	start := time.Now()
	if err := env.FreezeSandbox(false); err != nil {
		return nil, err
	}
	left := depth
	for left > 0 && time.Since(start) < 5*time.Minute {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if left, err = metric(ctx, hc, env.API, "gateway_outbox_depth"); err != nil {
			return nil, err
		}
	}
	el := time.Since(start).Seconds()
	b.DrainSecs, b.PerSec = round2(el), round2((depth-left)/el)
	if left > 0 {
		sc.Note = fmt.Sprintf("gave up after 5 min with %v messages still queued", left)
	}
	if sc.PeakRSSMB, err = env.PeakRSSMB(); err != nil {
		return nil, err
	}
	if b.Lost, err = undelivered(ctx, hc, env.API, o.tokens, res.IDs); err != nil {
		return nil, err
	}
	sc.LoadAvg[1] = loadAvg()
	return sc, nil
}

// undelivered reads back each accepted referral (GET /v1/referrals/{id})
// and counts those neither delivered nor acknowledged.
func undelivered(ctx context.Context, hc *http.Client, api string, tokens map[string]string, ids []Accepted) (int, error) {
	var mu sync.Mutex
	var lost int
	var errs []error
	work := make(chan Accepted)
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for a := range work {
				st, err := referralStatus(ctx, hc, api, tokens[a.Institution], a.ID)
				mu.Lock()
				if err != nil {
					errs = append(errs, err)
				} else if st != "delivered" && st != "acknowledged" {
					lost++
				}
				mu.Unlock()
			}
		})
	}
	for _, a := range ids {
		work <- a
	}
	close(work)
	wg.Wait()
	if len(errs) > 0 {
		return lost, fmt.Errorf("reading %d accepted referrals back: %w", len(errs), errs[0])
	}
	return lost, nil
}

func referralStatus(ctx context.Context, hc *http.Client, api, token, id string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, api+"/v1/referrals/"+id, nil)
	if err != nil {
		return "", err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := hc.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET /v1/referrals/%s: status %d", id, resp.StatusCode)
	}
	var v struct{ Status string }
	err = json.NewDecoder(resp.Body).Decode(&v)
	return v.Status, err
}

// metric reads one unlabelled gauge or counter from the gateway's /metrics.
func metric(ctx context.Context, hc *http.Client, api, name string) (float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, api+"/metrics", nil)
	if err != nil {
		return 0, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			var f float64
			_, err := fmt.Sscan(v, &f)
			return f, err
		}
	}
	return 0, fmt.Errorf("/metrics has no %s", name)
}

// ReadyResult is the time from starting `gateway serve` to its first 200
// from /readyz: the first start on a new store (migrations run), then
// restarts on the existing one.
type ReadyResult struct {
	FirstMs    float64   `json:"firstMs"`
	MedianMs   float64   `json:"medianMs"`
	MaxMs      float64   `json:"maxMs"`
	RestartsMs []float64 `json:"restartsMs"`
}

func readyScenario(ctx context.Context, o *options) (*Scenario, error) {
	sc := &Scenario{Name: "time to ready"}
	sc.LoadAvg[0] = loadAvg()
	env, err := NewEnv(o.gateway)
	if err != nil {
		return nil, err
	}
	defer env.Close()
	var all []float64
	for range o.readyRuns + 1 {
		d, err := env.StartGateway(ctx)
		if err != nil {
			return nil, err
		}
		all = append(all, ms(d))
		if rss, err := env.PeakRSSMB(); err == nil {
			sc.PeakRSSMB = max(sc.PeakRSSMB, rss)
		}
		if err := env.StopGateway(); err != nil {
			return nil, errors.Join(err, errors.New(env.logTail("gateway")))
		}
	}
	rs := slices.Sorted(slices.Values(all[1:]))
	sc.Ready = &ReadyResult{FirstMs: all[0], RestartsMs: all[1:], MedianMs: rs[len(rs)/2], MaxMs: slices.Max(all)}
	sc.LoadAvg[1] = loadAvg()
	return sc, nil
}
