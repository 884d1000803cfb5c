package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Targets the suite checks, from the performance issue: on a 2-core
// machine, with SQLite.
const (
	targetAcceptedPerSec = 2000
	targetP99Ms          = 25
	targetPeakRSSMB      = 150
	targetDrainPerSec    = 1000
	targetReadyMs        = 1000
)

func met(ok bool) *bool { return &ok }

func (o *options) spawnFor(name, driver string) SpawnOptions {
	so := o.spawnOptions(driver)
	if so.Dir != "" {
		so.Dir = filepath.Join(so.Dir, strings.NewReplacer(" ", "-", "/", "-").Replace(name))
	}
	return so
}

func (o *options) generate(mix Mix) ([]*Variant, error) {
	return Generate(o.cases, o.institutions(), o.variants, mix, time.Now(), o.seed)
}

// loadScenario posts referrals at rate (0: flat out) to a spawned gateway
// or to --target. With paused, the spawned sandbox receiver is frozen for
// the whole run: the gateway accepts and queues, its delivery workers wait
// on unanswered posts, and the run measures intake alone.
func loadScenario(ctx context.Context, o *options, name, driver string, rate float64, spawn, paused bool, target string) (*Scenario, error) {
	if paused && !spawn {
		return nil, errors.New("--receiver-paused needs --spawn: only a spawned sandbox can be frozen")
	}
	vs, err := o.generate(DefaultMix)
	if err != nil {
		return nil, err
	}
	conc := o.concurrency
	if conc == 0 {
		conc = 16
		if rate > 0 {
			conc = 64
		}
	}
	lo := LoadOptions{
		Target: o.target, Rate: rate, Duration: o.duration, Warmup: o.warmup, Concurrency: conc,
		MaxRequests: o.maxRequests, Tokens: o.tokens, Variants: vs, Run: runID(),
	}
	sc := &Scenario{Name: name, Target: target}
	sc.LoadAvg[0] = loadAvg()
	var env *Env
	if spawn {
		sc.Driver = driver
		env, err = NewEnv(ctx, o.spawnFor(name, driver))
		if err != nil {
			return nil, err
		}
		defer env.Close()
		if err := env.StartSandbox(ctx); err != nil {
			return nil, err
		}
		if _, err := env.StartGateway(ctx); err != nil {
			return nil, err
		}
		lo.Target = env.API
		if paused {
			if err := env.FreezeSandbox(true); err != nil {
				return nil, err
			}
			// Thawed before Close stops it.
			defer func() { _ = env.FreezeSandbox(false) }()
		}
	}
	var before, sbBefore ProcStats
	var selfBefore time.Duration
	var warm chan struct{}
	if env != nil {
		// CPU is counted from the end of the warm-up.
		warm = make(chan struct{})
		go func() {
			defer close(warm)
			select {
			case <-time.After(o.warmup):
				before, _ = env.GatewayStats()
				sbBefore, _ = env.SandboxStats()
				selfBefore = selfCPU()
			case <-ctx.Done():
			}
		}()
	}
	res, err := RunLoad(ctx, lo)
	if err != nil {
		return nil, err
	}
	sc.Load = res
	if env != nil {
		<-warm
		after, err := env.GatewayStats()
		if err != nil {
			return nil, err
		}
		sbAfter, _ := env.SandboxStats()
		self := selfCPU()
		sc.PeakRSSMB = after.PeakRSSMB
		if n := res.Requests; n > 0 {
			perReq := func(d time.Duration) float64 { return round3(float64(d) / float64(time.Millisecond) / float64(n)) }
			sc.CPUMsPerRequest = perReq(after.CPU - before.CPU)
			sc.SandboxCPUMsPerRequest = perReq(sbAfter.CPU - sbBefore.CPU)
			sc.LoadgenCPUMsPerRequest = perReq(self - selfBefore)
		}
	}
	sc.LoadAvg[1] = loadAvg()
	switch {
	case rate == 0 && driver == "sqlite" && spawn:
		sc.Met = met(res.AcceptedPerSec >= targetAcceptedPerSec && res.Errors == 0)
	case rate == 500 && driver == "sqlite" && spawn:
		sc.Met = met(res.Latency.P99 <= targetP99Ms && res.Errors == 0)
	}
	if sc.PeakRSSMB > targetPeakRSSMB {
		sc.Met = met(false)
		sc.Note = fmt.Sprintf("peak RSS over %d MB", targetPeakRSSMB)
	}
	return sc, nil
}

func round3(f float64) float64 { return float64(int64(f*1000+0.5)) / 1000 }

// DrainResult is how fast the outbox emptied once the receiver answered.
type DrainResult struct {
	Queued      int     `json:"queued"`
	Seconds     float64 `json:"seconds"`
	PerSec      float64 `json:"perSec"`
	Delivered   int     `json:"delivered"`
	QueueSecs   float64 `json:"queueSeconds"`
	QueueErrors int     `json:"queueErrors"`
	// GatewayCPUMs and SandboxCPUMs are each process's CPU time per
	// message while the outbox drained (the sandbox's includes its response
	// messages, which the gateway then records).
	GatewayCPUMs float64 `json:"gatewayCpuMsPerMessage"`
	SandboxCPUMs float64 `json:"sandboxCpuMsPerMessage"`
}

// drainScenario queues referrals while the sandbox receiver is frozen
// (SIGSTOP: connections are accepted, nothing is answered, so at most one
// message per delivery worker is in flight and the rest wait in the outbox),
// then thaws it and times until the outbox is empty.
func drainScenario(ctx context.Context, o *options, driver string) (*Scenario, error) {
	vs, err := o.generate(Mix{Override: DefaultMix.Override})
	if err != nil {
		return nil, err
	}
	name := driver + " outbox drain"
	sc := &Scenario{Name: name, Driver: driver, Target: "≥ 1000 messages/s"}
	sc.LoadAvg[0] = loadAvg()
	env, err := NewEnv(ctx, o.spawnFor(name, driver))
	if err != nil {
		return nil, err
	}
	defer env.Close()
	if err := env.StartSandbox(ctx); err != nil {
		return nil, err
	}
	if _, err := env.StartGateway(ctx); err != nil {
		return nil, err
	}
	if err := env.FreezeSandbox(true); err != nil {
		return nil, err
	}
	conc := o.concurrency
	if conc == 0 {
		conc = 16
	}
	t0 := time.Now()
	res, err := RunLoad(ctx, LoadOptions{
		Target: env.API, Duration: 60 * time.Second, Concurrency: conc, MaxRequests: o.drainN,
		Tokens: o.tokens, Variants: vs, Run: runID(),
	})
	if err != nil {
		return nil, err
	}
	dr := &DrainResult{Queued: res.Accepted, QueueSecs: round2(time.Since(t0).Seconds()), QueueErrors: res.Errors}
	sc.Drain = dr
	hc := newClient(1)
	defer hc.CloseIdleConnections()
	depth, err := metric(ctx, hc, env.Metrics, "gateway_outbox_depth")
	if err != nil {
		return nil, err
	}
	if int(depth) < res.Accepted {
		sc.Note = fmt.Sprintf("only %d of %d queued messages were waiting when the receiver was thawed", int(depth), res.Accepted)
	}
	gw0, _ := env.GatewayStats()
	sb0, _ := env.SandboxStats()
	start := time.Now()
	if err := env.FreezeSandbox(false); err != nil {
		return nil, err
	}
	deadline := start.Add(120 * time.Second)
	left := 0.0
	for {
		d, err := metric(ctx, hc, env.Metrics, "gateway_outbox_depth")
		if err != nil {
			return nil, err
		}
		if d == 0 {
			break
		}
		if time.Now().After(deadline) {
			left = d
			sc.Note = fmt.Sprintf("gave up after 120 s with %v messages still queued", d)
			break
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(drainPoll(d, depth, time.Since(start))):
		}
	}
	el := time.Since(start)
	if n := int(depth); n > 0 {
		gw1, _ := env.GatewayStats()
		sb1, _ := env.SandboxStats()
		dr.GatewayCPUMs = round3(float64(gw1.CPU-gw0.CPU) / float64(time.Millisecond) / float64(n))
		dr.SandboxCPUMs = round3(float64(sb1.CPU-sb0.CPU) / float64(time.Millisecond) / float64(n))
	}
	dr.Seconds = round2(el.Seconds())
	dr.PerSec = round2((depth - left) / el.Seconds())
	if n, err := sandboxReceived(ctx, hc, env.Sandbox); err == nil {
		dr.Delivered = n
	}
	st, err := env.GatewayStats()
	if err == nil {
		sc.PeakRSSMB = st.PeakRSSMB
	}
	sc.LoadAvg[1] = loadAvg()
	sc.Met = met(left == 0 && dr.PerSec >= targetDrainPerSec && dr.Delivered >= dr.Queued && sc.PeakRSSMB <= targetPeakRSSMB)
	return sc, nil
}

// drainPoll is how long to wait before reading the depth again. Each read
// is a scrape of /metrics, which costs the gateway CPU that the drain's CPU
// per message then counts (every 25 ms it was 6 % of the gateway's CPU): so
// every 100 ms while much is left, and every 10 ms once what is left would
// drain in a quarter of a second at the rate so far, to keep the timing
// within 10 ms.
func drainPoll(left, queued float64, since time.Duration) time.Duration {
	done := queued - left
	if done > 0 && since > 0 {
		if rate := done / since.Seconds(); left/rate < 0.25 {
			return 10 * time.Millisecond
		}
	}
	return 100 * time.Millisecond
}

// sandboxReceived counts the distinct messages the sandbox accepted.
func sandboxReceived(ctx context.Context, hc *http.Client, sandbox string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, sandbox+"/sandbox/messages", nil)
	if err != nil {
		return 0, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var v struct {
		Messages []json.RawMessage `json:"messages"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		return 0, err
	}
	return len(v.Messages), nil
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

func readyScenario(ctx context.Context, o *options, driver string) (*Scenario, error) {
	name := driver + " time to ready"
	sc := &Scenario{Name: name, Driver: driver, Target: "≤ 1 s"}
	sc.LoadAvg[0] = loadAvg()
	env, err := NewEnv(ctx, o.spawnFor(name, driver))
	if err != nil {
		return nil, err
	}
	defer env.Close()
	var all []float64
	for i := 0; i < o.readyRuns+1; i++ {
		d, err := env.StartGateway(ctx)
		if err != nil {
			return nil, err
		}
		all = append(all, ms(d))
		if st, err := env.GatewayStats(); err == nil {
			sc.PeakRSSMB = max(sc.PeakRSSMB, st.PeakRSSMB)
		}
		if err := env.StopGateway(); err != nil {
			return nil, errors.Join(err, errors.New(env.logTail("gateway")))
		}
	}
	r := &ReadyResult{FirstMs: all[0], RestartsMs: all[1:]}
	rs := slices.Clone(all[1:])
	slices.Sort(rs)
	r.MedianMs = rs[len(rs)/2]
	r.MaxMs = slices.Max(all)
	sc.Ready = r
	sc.LoadAvg[1] = loadAvg()
	sc.Met = met(r.MaxMs <= targetReadyMs)
	return sc, nil
}
