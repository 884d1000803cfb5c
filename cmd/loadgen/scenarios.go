package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"syscall"
	"time"
)

// Scenario is one measurement: a load run, a backlog or a series of starts.
type Scenario struct {
	Name      string       `json:"name"`
	LoadAvg   [2]float64   `json:"loadAvg"`        // the machine's 1-minute load average before and after
	Load      *LoadResult  `json:"load,omitempty"` // a load run, or the posting of a backlog
	Drain     *DrainResult `json:"drain,omitempty"`
	Ready     *ReadyResult `json:"ready,omitempty"`
	PeakRSSMB float64      `json:"peakRSSMB,omitempty"` // the gateway's VmHWM at the end
	Note      string       `json:"note,omitempty"`
}

// DrainResult is how fast a backlog posted while the receiver was down
// drained once it was back, and how many accepted referrals were lost: not
// delivered (nor further along: accepted by the service, …) once the outbox
// was empty.
type DrainResult struct {
	Queued  int     `json:"queued"` // gateway_outbox_depth when the receiver came back
	Seconds float64 `json:"seconds"`
	PerSec  float64 `json:"perSec"`
	Lost    int     `json:"lost"`
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
// the others still run. The error names every scenario not measured, every
// request that failed (an answer neither the expected one nor a clean
// refusal) and every accepted referral not delivered; a figure over its
// budget is not an error, since a shared machine can cause it.
func runScenarios(ctx context.Context, o *options, rep *Report, stderr io.Writer) error {
	var errs []error
	measure := func(name string, run func(*Scenario) error) {
		if ctx.Err() != nil {
			return
		}
		fmt.Fprintf(stderr, "loadgen: %s\n", name)
		sc := Scenario{Name: name}
		sc.LoadAvg[0] = loadAvg()
		if err := run(&sc); err != nil {
			sc = Scenario{Name: name, Note: "not measured: " + err.Error(), LoadAvg: sc.LoadAvg}
			errs = append(errs, fmt.Errorf("%s not measured: %w", name, err))
		}
		sc.LoadAvg[1] = loadAvg()
		if l := sc.Load; l != nil && l.Errors > 0 {
			errs = append(errs, fmt.Errorf("%s: %d errors, e.g. %s", name, l.Errors, l.ErrorSamples[0]))
		}
		if d := sc.Drain; d != nil && d.Lost > 0 {
			errs = append(errs, fmt.Errorf("%s: %d accepted but not delivered", name, d.Lost))
		}
		rep.Scenarios = append(rep.Scenarios, sc)
	}
	load := func(rate float64, spawn, backlog bool) func(*Scenario) error {
		return func(sc *Scenario) error { return o.load(ctx, sc, rate, spawn, backlog) }
	}
	ready := func(sc *Scenario) error { return o.ready(ctx, sc) }
	backlog := fmt.Sprintf("backlog of %d", o.backlog)
	switch o.scenario {
	case "load":
		measure("load", load(o.rate, o.target == "", false))
	case "backlog":
		measure(backlog, load(0, true, true))
	case "ready":
		measure("time to ready", ready)
	case "suite":
		measure(fmt.Sprintf("sqlite %d req/s", budgetRate), load(budgetRate, true, false))
		measure("sqlite flat out", load(0, true, false))
		measure(backlog, load(0, true, true))
		measure("time to ready", ready)
		rep.Budget = budget(rep.Scenarios, o.goBench)
	default:
		return fmt.Errorf("--scenario %q: use load, backlog, ready or suite", o.scenario)
	}
	return errors.Join(append(errs, ctx.Err())...)
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
		MaxRequests: maxRequests, Cases: cases}
	if backlog {
		lo.Cases = slices.DeleteFunc(cases, func(c *Case) bool { return c.Expect != "allow" })
		lo.Duration, lo.Warmup, lo.Concurrency, lo.MaxRequests = 10*time.Minute, 0, backlogConcurrency, o.backlog
		lo.Retry = true
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
	if sc.Load, err = RunLoad(ctx, lo); err != nil {
		return err
	}
	if backlog {
		return drain(ctx, env, sc)
	}
	sc.PeakRSSMB, err = env.PeakRSSMB()
	return err
}

// drain thaws the frozen receiver and times until the outbox is empty, takes
// the gateway's peak RSS, then reads every referral accepted in sc.Load
// back and counts those not delivered.
func drain(ctx context.Context, env *Env, sc *Scenario) error {
	hc := newClient(1)
	defer hc.CloseIdleConnections()
	depth, err := metric(ctx, hc, env.Metrics, "gateway_outbox_depth")
	if err != nil {
		return err
	}
	start := time.Now()
	if err := env.sbx.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		return err
	}
	left := depth
	for left > 0 && time.Since(start) < 5*time.Minute {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if left, err = metric(ctx, hc, env.Metrics, "gateway_outbox_depth"); err != nil {
			return err
		}
	}
	if left > 0 {
		return fmt.Errorf("%v of %v messages still queued after 5 min", left, depth)
	}
	el := time.Since(start).Seconds()
	d := &DrainResult{Queued: int(depth), Seconds: round2(el), PerSec: round2(depth / el)}
	if sc.PeakRSSMB, err = env.PeakRSSMB(); err != nil {
		return err
	}
	for id, token := range sc.Load.IDs {
		body, err := get(ctx, hc, env.API+"/v1/referrals/"+id, token)
		var v struct{ Status string }
		if err == nil {
			err = json.Unmarshal(body, &v)
		}
		if err != nil {
			return fmt.Errorf("reading accepted referral %s back: %w", id, err)
		} else if slices.Contains([]string{"queued", "delivering", "failed", "dead-lettered"}, v.Status) {
			d.Lost++
		}
	}
	sc.Drain = d
	return nil
}

// metric reads one unlabelled gauge or counter from /metrics on the
// gateway's metrics listener.
func metric(ctx context.Context, hc *http.Client, metrics, name string) (float64, error) {
	b, err := get(ctx, hc, metrics+"/metrics", "")
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
