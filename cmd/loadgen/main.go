// Command loadgen measures the gateway against its performance budget
// (docs/performance.md), as an operator would before trusting it with a
// region's referrals: it posts the example cases of testdata/cases to
// POST /v1/referrals at a fixed rate or flat out, posts a backlog at once and
// times how fast it drains, times how soon a started gateway is ready, and
// reports latency percentiles, accepted referrals per second, errors and the
// gateway's peak memory.
//
// It starts the gateway and the sandbox receiver itself (--spawn, and always
// in the suite), with SQLite, so that `make bench` is one command. Load goes
// only to loopback addresses, and every run is bounded in time and count.
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

const usage = `loadgen: load and timing measurements of the referral gateway (docs/performance.md).

  loadgen --rate 50 [--target http://127.0.0.1:8080]  post referrals (to a gateway of its own without --target)
  loadgen --scenario backlog|ready                   a backlog posted at once, or the time to ready
  loadgen --scenario suite --go-bench FILE           everything make bench reports, with the budget

`

// options are the command's flags.
type options struct {
	scenario, target, cases, out, gateway, goBench string
	rate                                           float64
	duration                                       time.Duration
	concurrency, backlog                           int
}

// Bounds of every run that need no flag.
const (
	warmup             = 2 * time.Second // load sent before measuring starts, not counted
	maxRequests        = 200_000         // a load run stops after this many requests in any case
	backlogConcurrency = 128             // requests in flight while the backlog is posted
	readyRestarts      = 5               // restarts timed after the first start
)

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
	o := &options{}
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage); fs.PrintDefaults() }
	fs.StringVar(&o.scenario, "scenario", "load", "`what` to measure: load, backlog, ready or suite")
	fs.StringVar(&o.target, "target", "", "the gateway's base `URL` (loopback only, demo tokens) to load; empty: start a gateway (SQLite) and a sandbox receiver of its own (--gateway)")
	fs.Float64Var(&o.rate, "rate", 0, "offered requests per second; 0 is flat out")
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "how long to measure")
	fs.IntVar(&o.concurrency, "concurrency", 64, "requests in flight at most (flat out: always this many, each sent when the last is answered)")
	fs.StringVar(&o.cases, "cases", "testdata/cases", "`directory` of the example cases to post")
	fs.StringVar(&o.out, "out", "", "write the results as JSON to this `file`")
	fs.StringVar(&o.gateway, "gateway", "build/bin/gateway", "the gateway `binary` to start")
	fs.IntVar(&o.backlog, "backlog", 10000, "referrals the backlog scenario posts at once")
	fs.StringVar(&o.goBench, "go-bench", "", "with the suite, the `file` of go test -bench output to take the decision time from")
	switch err := fs.Parse(args); {
	case errors.Is(err, flag.ErrHelp):
		return nil
	case err != nil:
		return err
	case fs.NArg() > 0:
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	case o.duration <= 0 || o.duration > time.Hour:
		return errors.New("--duration must be between 0 and 1h")
	case o.rate < 0 || o.rate > 100000:
		return errors.New("--rate must be between 0 and 100000")
	case o.concurrency <= 0 || o.backlog <= 0:
		return errors.New("--concurrency and --backlog must be positive")
	}
	rep := &Report{Started: time.Now().UTC().Truncate(time.Second), CPUs: runtime.NumCPU(), GoVersion: runtime.Version()}
	rep.LoadAvg[0] = loadAvg()
	err := runScenarios(ctx, o, rep, stderr)
	rep.LoadAvg[1] = loadAvg()
	printReport(stdout, rep)
	if o.out != "" {
		b, jerr := json.MarshalIndent(rep, "", "  ")
		if jerr == nil {
			jerr = os.WriteFile(o.out, append(b, '\n'), 0o644)
		}
		err = errors.Join(err, jerr)
	}
	return err
}

func loadAvg() float64 {
	var f float64
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		_, _ = fmt.Sscan(string(b), &f)
	}
	return f
}
