// Command loadgen measures the gateway against its performance budget
// (docs/performance.md), as an operator would before trusting it with a
// region's referrals: it posts varied, realistic case records (generated
// from testdata/cases) to POST /v1/referrals at a fixed rate or flat out,
// posts a backlog at once and times how fast it drains, times how soon a
// started gateway is ready, and reports latency percentiles, accepted
// referrals per second, errors and the gateway's peak memory.
//
// It starts the gateway and the sandbox receiver itself (--spawn, and always
// in the suite), with SQLite, so that `make bench` is one
// command. Load goes only to loopback addresses, and every run is bounded in
// time and count.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
}

const usage = `loadgen: load and timing measurements of the referral gateway.

Usage:
  loadgen [flags]                      post referrals to --target (or a spawned gateway)
  loadgen --scenario backlog [flags]   post --backlog referrals at once with the receiver down, then time the drain
  loadgen --scenario ready [flags]     time from process start to the first 200 from /readyz
  loadgen --scenario suite [flags]     everything make bench reports, with the budget table

Examples:
  loadgen --target http://127.0.0.1:8080 --rate 50 --duration 30s
  loadgen --spawn --gateway build/bin/gateway --rate 0 --concurrency 32
  loadgen --scenario suite --gateway build/bin/gateway --go-bench build/bench-go.txt

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
	gateway     string
	backlog     int
	backlogConc int
	readyRuns   int
	goBench     string
}

func parseOptions(args []string, stderr io.Writer) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage); fs.PrintDefaults() }
	fs.StringVar(&o.scenario, "scenario", "load", "`what` to measure: load, backlog, ready or suite")
	fs.StringVar(&o.target, "target", "http://127.0.0.1:8080", "the gateway's base `URL` (loopback only); ignored with --spawn")
	fs.Float64Var(&o.rate, "rate", 0, "offered requests per second; 0 is flat out")
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "how long to measure")
	fs.DurationVar(&o.warmup, "warmup", 2*time.Second, "load sent before measuring starts (not counted)")
	fs.IntVar(&o.concurrency, "concurrency", 64, "requests in flight at most (flat out: always this many, each sent when the last is answered)")
	fs.IntVar(&o.maxRequests, "max-requests", 200000, "stop after this many requests in any case")
	tokens := fs.String("tokens", "10007164=demo-uwe-submitter,10006842=demo-liverpool-submitter", "comma-separated `UKPRN=token` pairs: the institutions to post for")
	fs.StringVar(&o.cases, "cases", "testdata/cases", "`directory` of the example cases the generator starts from")
	fs.IntVar(&o.variants, "variants", 1000, "distinct generated case records (each post gets its own case id)")
	fs.Uint64Var(&o.seed, "seed", 1, "seed of the case generator")
	fs.StringVar(&o.out, "out", "", "write the results as JSON to this `file`")
	fs.BoolVar(&o.spawn, "spawn", false, "start a gateway (SQLite) and a sandbox receiver of our own (see --gateway)")
	fs.StringVar(&o.gateway, "gateway", "build/bin/gateway", "the gateway `binary` to spawn")
	fs.IntVar(&o.backlog, "backlog", 10000, "referrals the backlog scenario posts at once")
	fs.IntVar(&o.backlogConc, "backlog-concurrency", 128, "requests in flight while the backlog is posted")
	fs.IntVar(&o.readyRuns, "ready-runs", 5, "restarts timed by the ready scenario, after the first start")
	fs.StringVar(&o.goBench, "go-bench", "", "with the suite, the `file` of go test -bench output to take the decision time from")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	o.tokens = map[string]string{}
	for p := range strings.SplitSeq(*tokens, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(p), "=")
		if !ok || k == "" || v == "" {
			return nil, fmt.Errorf("--tokens: %q is not UKPRN=token", p)
		}
		o.tokens[k] = v
	}
	switch {
	case o.duration <= 0 || o.duration > time.Hour || o.warmup < 0:
		return nil, errors.New("--duration must be between 0 and 1h, --warmup not negative")
	case o.rate < 0 || o.rate > 100000:
		return nil, errors.New("--rate must be between 0 and 100000")
	case o.concurrency <= 0 || o.maxRequests <= 0 || o.backlog <= 0 || o.backlogConc <= 0 || o.readyRuns <= 0 || o.variants <= 0:
		return nil, errors.New("--concurrency, --max-requests, --backlog, --backlog-concurrency, --ready-runs and --variants must be positive")
	}
	return o, nil
}

// Report is the JSON document --out writes.
type Report struct {
	Started   time.Time `json:"started"`
	CPUs      int       `json:"cpus"`
	GoVersion string    `json:"goVersion"`
	// LoadAvg is the machine's 1-minute load average at the start and at
	// the end: the figures of a shared machine are the machine's too.
	LoadAvg [2]float64 `json:"loadAvg"`
	// Budget is the performance budget with today's figures (suite only).
	Budget    []BudgetRow `json:"budget,omitempty"`
	Scenarios []Scenario  `json:"scenarios"`
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
	rep.LoadAvg[0] = loadAvg()
	var sc *Scenario
	switch o.scenario {
	case "load":
		sc, err = loadScenario(ctx, o, "load", o.rate, o.spawn)
	case "backlog":
		sc, err = backlogScenario(ctx, o)
	case "ready":
		sc, err = readyScenario(ctx, o)
	case "suite":
		err = suite(ctx, o, rep, stderr)
	default:
		return fmt.Errorf("--scenario %q: use load, backlog, ready or suite", o.scenario)
	}
	if sc != nil {
		rep.Scenarios = append(rep.Scenarios, *sc)
	}
	rep.LoadAvg[1] = loadAvg()
	printReport(stdout, rep)
	if o.out != "" {
		b, jerr := json.MarshalIndent(rep, "", "  ")
		if jerr == nil {
			jerr = os.WriteFile(o.out, append(b, '\n'), 0o644)
		}
		err = errors.Join(err, jerr)
	}
	if err != nil {
		return err
	}
	return failures(rep)
}

// failures are the requests that went wrong: an answer that was neither
// the expected outcome nor a clean refusal, or an accepted referral never
// delivered. A figure over its budget is reported, not an error: on a
// shared machine it may be the machine's.
func failures(rep *Report) error {
	var errs []error
	for _, sc := range rep.Scenarios {
		if sc.Load != nil && sc.Load.Errors > 0 {
			errs = append(errs, fmt.Errorf("%s: %d errors, e.g. %s", sc.Name, sc.Load.Errors, sc.Load.ErrorSamples[0]))
		}
		if b := sc.Backlog; b != nil && (b.Failed > 0 || b.Lost > 0) {
			errs = append(errs, fmt.Errorf("%s: %d failed, %d accepted but not delivered", sc.Name, b.Failed, b.Lost))
		}
	}
	return errors.Join(errs...)
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

// institutions are the UKPRNs the tokens cover, sorted.
func (o *options) institutions() []string {
	var out []string
	for k := range o.tokens {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
