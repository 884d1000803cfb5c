package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"
)

const usage = `loadgen: load and timing measurements of the referral gateway.

Usage:
  loadgen [flags]                      post referrals to --target (or a spawned gateway)
  loadgen --scenario drain [flags]     time how fast the outbox drains (needs --spawn)
  loadgen --scenario ready [flags]     time from process start to the first 200 from /readyz (needs --spawn)
  loadgen --scenario suite [flags]     everything make bench reports, with a table

Examples:
  loadgen --target http://127.0.0.1:8080 --rate 500 --duration 10s
  loadgen --spawn --gateway build/bin/gateway --driver sqlite --rate 0 --concurrency 16
  loadgen --scenario suite --gateway build/bin/gateway --dsn postgres://postgres@127.0.0.1:5432/test?sslmode=disable

Flags:
`

// options are the command's flags.
type options struct {
	scenario    string
	target      string
	rate        float64
	duration    time.Duration
	warmup      time.Duration
	concurrency int
	maxRequests int
	tokens      map[string]string
	cases       string
	variants    int
	seed        uint64
	out         string
	spawn       bool
	driver      string
	gateway     string
	dsn         string
	dir         string
	pprof       string
	drainN      int
	readyRuns   int
	drainDrv    string
	workers     int
	paused      bool
}

func parseOptions(args []string, stderr io.Writer) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage); fs.PrintDefaults() }
	fs.StringVar(&o.scenario, "scenario", "load", "`what` to measure: load, drain, ready or suite")
	fs.StringVar(&o.target, "target", "http://127.0.0.1:8080", "the gateway's base `URL` (loopback only); ignored with --spawn")
	fs.Float64Var(&o.rate, "rate", 0, "offered requests per second; 0 is flat out")
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "how long to measure")
	fs.DurationVar(&o.warmup, "warmup", 2*time.Second, "load sent before measuring starts (not counted)")
	fs.IntVar(&o.concurrency, "concurrency", 0, "concurrent clients (default 16 flat out, 64 at a fixed rate)")
	fs.IntVar(&o.maxRequests, "max-requests", 200000, "stop after this many requests in any case")
	tokens := fs.String("tokens", "10007164=demo-uwe-submitter,10006842=demo-liverpool-submitter", "comma-separated `UKPRN=token` pairs: the institutions to post for")
	fs.StringVar(&o.cases, "cases", "testdata/cases", "`directory` of the example cases the generator starts from")
	fs.IntVar(&o.variants, "variants", 1000, "distinct generated case records (each post gets its own case id)")
	fs.Uint64Var(&o.seed, "seed", 1, "seed of the case generator")
	fs.StringVar(&o.out, "out", "", "write the results as JSON to this `file`")
	fs.BoolVar(&o.spawn, "spawn", false, "start a gateway and a sandbox receiver of our own (see --gateway, --driver)")
	fs.StringVar(&o.driver, "driver", "sqlite", "store of a spawned gateway: sqlite or postgres")
	fs.StringVar(&o.gateway, "gateway", "build/bin/gateway", "the gateway `binary` to spawn")
	fs.StringVar(&o.dsn, "dsn", os.Getenv("GATEWAY_TEST_POSTGRES_DSN"), "PostgreSQL `DSN` in which a fresh schema is made per spawned gateway (default $GATEWAY_TEST_POSTGRES_DSN); empty skips postgres in the suite")
	fs.StringVar(&o.dir, "dir", "", "keep the spawned gateway's configuration, store and logs in this `directory` (default: a temporary one, removed)")
	fs.StringVar(&o.pprof, "pprof", "", "with --spawn, serve pprof on this loopback `address` (debug.pprofListen)")
	fs.IntVar(&o.drainN, "drain-n", 3000, "referrals queued before the outbox drain is timed")
	fs.IntVar(&o.readyRuns, "ready-runs", 5, "starts timed by the ready scenario")
	fs.StringVar(&o.drainDrv, "suite-drain", "sqlite", "comma-separated stores whose drain the suite times")
	fs.BoolVar(&o.paused, "receiver-paused", false, "with --spawn, freeze the sandbox receiver (SIGSTOP) for the whole load run, so that the run measures intake alone and the outbox fills")
	fs.IntVar(&o.workers, "delivery-workers", 0, "with --spawn, set delivery.workers (default: the example configuration's 4)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	o.tokens = map[string]string{}
	for _, p := range strings.Split(*tokens, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(p), "=")
		if !ok || k == "" || v == "" {
			return nil, fmt.Errorf("--tokens: %q is not UKPRN=token", p)
		}
		o.tokens[k] = v
	}
	if o.duration <= 0 || o.duration > time.Hour || o.warmup < 0 {
		return nil, errors.New("--duration must be between 0 and 1h, --warmup not negative")
	}
	if o.rate < 0 || o.rate > 100000 {
		return nil, errors.New("--rate must be between 0 and 100000")
	}
	if o.maxRequests <= 0 || o.drainN <= 0 || o.readyRuns <= 0 || o.variants <= 0 {
		return nil, errors.New("--max-requests, --drain-n, --ready-runs and --variants must be positive")
	}
	return o, nil
}

// Report is the JSON document --out writes.
type Report struct {
	Started   time.Time  `json:"started"`
	CPUs      int        `json:"cpus"`
	GoVersion string     `json:"goVersion"`
	Scenarios []Scenario `json:"scenarios"`
}

// Scenario is one measurement: a load run, a drain or a series of starts,
// with what it says about its target.
type Scenario struct {
	Name   string `json:"name"`
	Driver string `json:"driver,omitempty"`
	// LoadAvg is the machine's 1-minute load average before and after:
	// the machine may be shared.
	LoadAvg [2]float64   `json:"loadAvg"`
	Load    *LoadResult  `json:"load,omitempty"`
	Drain   *DrainResult `json:"drain,omitempty"`
	Ready   *ReadyResult `json:"ready,omitempty"`
	// PeakRSSMB is the gateway process's VmHWM at the end; CPUPerRequest
	// its user+system CPU time per request in the measured window.
	PeakRSSMB       float64 `json:"peakRSSMB,omitempty"`
	CPUMsPerRequest float64 `json:"cpuMsPerRequest,omitempty"`
	// SandboxCPUMsPerRequest and LoadgenCPUMsPerRequest are what the
	// sandbox receiver and the load generator itself spent per request in
	// the same window, on the same CPUs as the gateway.
	SandboxCPUMsPerRequest float64 `json:"sandboxCpuMsPerRequest,omitempty"`
	LoadgenCPUMsPerRequest float64 `json:"loadgenCpuMsPerRequest,omitempty"`
	Target                 string  `json:"target,omitempty"`
	Met                    *bool   `json:"met,omitempty"`
	Note                   string  `json:"note,omitempty"`
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parseOptions(args, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	rep := &Report{Started: time.Now().UTC().Truncate(time.Second), CPUs: runtime.NumCPU(), GoVersion: runtime.Version()}
	switch o.scenario {
	case "load":
		sc, err := loadScenario(ctx, o, "load", o.driver, o.rate, o.spawn, o.paused, "")
		if err != nil {
			return err
		}
		rep.Scenarios = append(rep.Scenarios, *sc)
	case "drain":
		sc, err := drainScenario(ctx, o, o.driver)
		if err != nil {
			return err
		}
		rep.Scenarios = append(rep.Scenarios, *sc)
	case "ready":
		sc, err := readyScenario(ctx, o, o.driver)
		if err != nil {
			return err
		}
		rep.Scenarios = append(rep.Scenarios, *sc)
	case "suite":
		if err := suite(ctx, o, rep, stderr); err != nil {
			printTable(stdout, rep)
			return err
		}
	default:
		return fmt.Errorf("--scenario %q: use load, drain, ready or suite", o.scenario)
	}
	printTable(stdout, rep)
	if o.out != "" {
		b, err := json.MarshalIndent(rep, "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(o.out, append(b, '\n'), 0o644); err != nil {
			return err
		}
	}
	for _, sc := range rep.Scenarios {
		if sc.Load != nil && sc.Load.Errors > 0 {
			return fmt.Errorf("%s: %d errors, e.g. %s", sc.Name, sc.Load.Errors, sc.Load.ErrorSamples[0])
		}
	}
	return nil
}

// suite runs what make bench reports: SQLite flat out (intake alone, then
// delivering meanwhile) and at 500 req/s,
// PostgreSQL flat out, the outbox drain and the time to ready. A scenario
// that fails is reported as not met, with why, and the others still run.
func suite(ctx context.Context, o *options, rep *Report, stderr io.Writer) error {
	pg := o.dsn != ""
	if pg {
		if err := pgReachable(ctx, o.dsn); err != nil {
			fmt.Fprintf(stderr, "loadgen: PostgreSQL scenarios skipped: %v\n", err)
			pg = false
		}
	} else {
		fmt.Fprintln(stderr, "loadgen: no --dsn (GATEWAY_TEST_POSTGRES_DSN): PostgreSQL scenarios skipped")
	}
	var failed []string
	step := func(name, driver string, run func() (*Scenario, error)) {
		if ctx.Err() != nil {
			return
		}
		sc, err := run()
		if err != nil {
			sc = &Scenario{Name: name, Driver: driver, Met: met(false), Note: err.Error()}
			failed = append(failed, name)
		}
		rep.Scenarios = append(rep.Scenarios, *sc)
		fmt.Fprintf(stderr, "loadgen: %s done\n", name)
	}
	// Flat out twice: intake alone, with the receiver frozen so that the
	// outbox fills (what the gateway can accept), and with the gateway
	// delivering to the sandbox meanwhile on the same two CPUs (what the
	// whole loop sustains; the drain target, 1000 messages/s, is half the
	// intake target, so the issue asks for the two apart).
	step("sqlite flat out, intake", "sqlite", func() (*Scenario, error) {
		return loadScenario(ctx, o, "sqlite flat out, intake", "sqlite", 0, true, true, "≥ 2000 accepted/s")
	})
	step("sqlite flat out, delivering", "sqlite", func() (*Scenario, error) {
		return loadScenario(ctx, o, "sqlite flat out, delivering", "sqlite", 0, true, false, "≥ 2000 accepted/s")
	})
	step("sqlite 500 req/s", "sqlite", func() (*Scenario, error) {
		return loadScenario(ctx, o, "sqlite 500 req/s", "sqlite", 500, true, false, "p99 ≤ 25 ms")
	})
	if pg {
		step("postgres flat out", "postgres", func() (*Scenario, error) {
			return loadScenario(ctx, o, "postgres flat out", "postgres", 0, true, false, "")
		})
	}
	for _, d := range strings.Split(o.drainDrv, ",") {
		d = strings.TrimSpace(d)
		if d == "" || (d == "postgres" && !pg) {
			continue
		}
		step(d+" outbox drain", d, func() (*Scenario, error) { return drainScenario(ctx, o, d) })
	}
	drivers := []string{"sqlite"}
	if pg {
		drivers = append(drivers, "postgres")
	}
	for _, d := range drivers {
		step(d+" time to ready", d, func() (*Scenario, error) { return readyScenario(ctx, o, d) })
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if len(failed) > 0 {
		return fmt.Errorf("scenarios that could not be measured: %s", strings.Join(failed, ", "))
	}
	return nil
}

func loadAvg() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	var f float64
	_, _ = fmt.Sscan(string(b), &f)
	return f
}

func runID() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// institutions are the UKPRNs the tokens cover, sorted.
func (o *options) institutions() []string {
	var out []string
	for k := range o.tokens {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func (o *options) spawnOptions(driver string) SpawnOptions {
	so := SpawnOptions{Gateway: o.gateway, Driver: driver, DSN: o.dsn, Dir: o.dir, PprofListen: o.pprof}
	if o.workers > 0 {
		so.Config = func(y string) string {
			return strings.Replace(y, "\n  workers: 4\n", fmt.Sprintf("\n  workers: %d\n", o.workers), 1)
		}
	}
	return so
}
