package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"
)

// Scenario is one measurement: a load run, a backlog or a series of starts.
type Scenario struct {
	Name string `json:"name"`
	// LoadAvg is the machine's 1-minute load average before and after:
	// the machine may be shared.
	LoadAvg [2]float64   `json:"loadAvg"`
	Load    *LoadResult  `json:"load,omitempty"` // a load run, or the posting of a backlog
	Drain   *DrainResult `json:"drain,omitempty"`
	Ready   *ReadyResult `json:"ready,omitempty"`
	// PeakRSSMB is the gateway process's VmHWM at the end.
	PeakRSSMB float64 `json:"peakRSSMB,omitempty"`
	Note      string  `json:"note,omitempty"`
}

// DrainResult is how fast a backlog posted while the receiver was down
// drained once it was back, and whether any referral was lost.
type DrainResult struct {
	Queued  int     `json:"queued"` // gateway_outbox_depth when the receiver came back
	Seconds float64 `json:"seconds"`
	PerSec  float64 `json:"perSec"`
	// Lost counts accepted referrals that were not delivered (or
	// acknowledged) once the outbox was empty.
	Lost int `json:"lost"`
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

// runScenarios runs what --scenario names (the suite: SQLite at 50
// requests/s and flat out, the backlog and the time to ready, then the
// budget) into rep. A scenario that cannot run is reported, with why, and
// the others still run.
func runScenarios(ctx context.Context, o *options, rep *Report, stderr io.Writer) error {
	type step struct {
		name string
		run  func(*Scenario) error
	}
	load := func(name string, rate float64, spawn, backlog bool) step {
		return step{name, func(sc *Scenario) error { return o.load(ctx, sc, rate, spawn, backlog) }}
	}
	backlog := load(fmt.Sprintf("backlog of %d", o.backlog), 0, true, true)
	ready := step{"time to ready", func(sc *Scenario) error { return o.ready(ctx, sc) }}
	steps := map[string][]step{
		"load":    {load("load", o.rate, o.spawn, false)},
		"backlog": {backlog},
		"ready":   {ready},
		"suite":   {load(fmt.Sprintf("sqlite %d req/s", budgetRate), budgetRate, true, false), load("sqlite flat out", 0, true, false), backlog, ready},
	}[o.scenario]
	if steps == nil {
		return fmt.Errorf("--scenario %q: use load, backlog, ready or suite", o.scenario)
	}
	var failed []string
	for _, s := range steps {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		fmt.Fprintf(stderr, "loadgen: %s\n", s.name)
		sc := Scenario{Name: s.name}
		sc.LoadAvg[0] = loadAvg()
		if err := s.run(&sc); err != nil {
			sc = Scenario{Name: s.name, Note: "not measured: " + err.Error(), LoadAvg: sc.LoadAvg}
			failed = append(failed, s.name)
		}
		sc.LoadAvg[1] = loadAvg()
		rep.Scenarios = append(rep.Scenarios, sc)
	}
	if o.scenario == "suite" {
		rep.Budget = budget(rep.Scenarios, o.goBench)
	}
	if len(failed) > 0 {
		return fmt.Errorf("not measured: %s", strings.Join(failed, ", "))
	}
	return nil
}

// load posts referrals at rate (0: flat out) to a spawned gateway,
// delivering to its sandbox meanwhile, or to --target. A backlog is
// --backlog distinct allowed referrals, posted as fast as
// backlogConcurrency requests in flight allow while the receiver is
// frozen, then drained.
func (o *options) load(ctx context.Context, sc *Scenario, rate float64, spawn, backlog bool) error {
	cases, err := loadCases(o.cases, time.Now())
	if err != nil {
		return err
	}
	lo := LoadOptions{Target: o.target, Rate: rate, Duration: o.duration, Warmup: warmup, Concurrency: o.concurrency,
		MaxRequests: maxRequests, Cases: cases, Run: rand.Text()[:8]}
	if backlog {
		lo.Cases = slices.DeleteFunc(cases, func(c *Case) bool { return c.Expect != "allow" })
		lo.Duration, lo.Warmup, lo.Concurrency, lo.MaxRequests = 10*time.Minute, 0, backlogConcurrency, o.backlog
	}
	if !spawn {
		sc.Load, err = RunLoad(ctx, lo)
		return err
	}
	env, err := NewEnv(ctx, o.gateway, true)
	if err != nil {
		return err
	}
	defer env.Close()
	lo.Target = env.API
	// SIGSTOP: the receiver's connections are accepted and nothing is
	// answered, so the delivery workers wait and the outbox fills.
	if backlog {
		if err := env.sbx.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
			return err
		}
	}
	if sc.Load, err = RunLoad(ctx, lo); err == nil && backlog {
		sc.Drain, err = drain(ctx, env, sc.Load.IDs)
	}
	if err != nil {
		return err
	}
	sc.PeakRSSMB, err = env.PeakRSSMB()
	return err
}

// drain thaws the frozen receiver and times until the outbox is empty; then
// it reads every accepted referral back and counts those not delivered.
func drain(ctx context.Context, env *Env, ids []Accepted) (*DrainResult, error) {
	hc := newClient(16)
	defer hc.CloseIdleConnections()
	depth, err := metric(ctx, hc, env.API, "gateway_outbox_depth")
	if err != nil {
		return nil, err
	}
	start := time.Now()
	if err := env.sbx.cmd.Process.Signal(syscall.SIGCONT); err != nil {
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
	if left > 0 {
		return nil, fmt.Errorf("%v of %v messages still queued after 5 min", left, depth)
	}
	el := time.Since(start).Seconds()
	d := &DrainResult{Queued: int(depth), Seconds: round2(el), PerSec: round2(depth / el)}
	var g errgroup.Group
	g.SetLimit(16)
	var lost atomic.Int64
	for _, a := range ids {
		g.Go(func() error {
			body, err := get(ctx, hc, env.API+"/v1/referrals/"+a.ID, a.Institution.token)
			var v struct{ Status string }
			if err == nil {
				err = json.Unmarshal(body, &v)
			}
			if err == nil && v.Status != "delivered" && v.Status != "acknowledged" {
				lost.Add(1)
			}
			return err
		})
	}
	err = g.Wait()
	d.Lost = int(lost.Load())
	if err != nil {
		return nil, fmt.Errorf("reading the accepted referrals back: %w", err)
	}
	return d, nil
}

// metric reads one unlabelled gauge or counter from the gateway's /metrics.
func metric(ctx context.Context, hc *http.Client, api, name string) (float64, error) {
	b, err := get(ctx, hc, api+"/metrics", "")
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

// ready starts `gateway serve` on a new store, then restarts it
// readyRestarts times, timing each until it is ready.
func (o *options) ready(ctx context.Context, sc *Scenario) error {
	env, err := NewEnv(ctx, o.gateway, false)
	if err != nil {
		return err
	}
	defer env.Close()
	var all []float64
	for range readyRestarts + 1 {
		d, err := env.StartGateway(ctx)
		if err != nil {
			return err
		}
		all = append(all, ms(d))
		if rss, err := env.PeakRSSMB(); err == nil {
			sc.PeakRSSMB = max(sc.PeakRSSMB, rss)
		}
		if err := env.gw.stop(); err != nil {
			return err
		}
	}
	rs := slices.Sorted(slices.Values(all[1:]))
	sc.Ready = &ReadyResult{FirstMs: all[0], RestartsMs: all[1:], MedianMs: rs[len(rs)/2], MaxMs: slices.Max(all)}
	return nil
}
