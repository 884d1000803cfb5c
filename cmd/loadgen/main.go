// Command loadgen measures the gateway against its performance budget
// (docs/performance.md), as an operator would before trusting it with a
// region's referrals: it posts the example cases of testdata/cases to
// POST /v1/referrals at a fixed rate or flat out, posts a backlog at once and
// times how fast it drains, times how soon a started gateway is ready, and
// reports latency percentiles, accepted referrals per second, errors and the
// gateway's peak memory.
//
// It starts the gateway and the sandbox receiver itself (without --target,
// and always in the suite), with SQLite, so that `make bench` is one command. Load goes
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
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
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
	LoadAvg   [2]float64  `json:"loadAvg"`
	Budget    []BudgetRow `json:"budget,omitempty"` // the budget with today's figures (suite only)
	Scenarios []Scenario  `json:"scenarios"`
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o := &options{}
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "loadgen: load and timing measurements of the referral gateway (docs/performance.md); make bench runs --scenario suite.")
		fs.PrintDefaults()
	}
	fs.StringVar(&o.scenario, "scenario", "load", "`what` to measure: load (at --rate), backlog (posted at once with the receiver down, then drained), ready (start to ready) or suite (all, with the budget)")
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
	case o.duration <= 0 || o.duration > time.Hour || o.rate < 0 || o.concurrency <= 0 || o.backlog <= 0:
		return errors.New("--duration must be positive and at most 1h, --rate not negative, --concurrency and --backlog positive")
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

// The performance budget (docs/performance.md): on a 2-core machine, with
// SQLite.
const (
	budgetP99Ms          = 25   // at 50 requests/s
	budgetRate           = 50   // requests/s of the latency measure
	budgetAcceptedPerSec = 1000 // flat out
	budgetDrainPerSec    = 300
	budgetDecideMs       = 1 // p50, one core
	budgetReadyMs        = 1000
	budgetPeakRSSMB      = 150
)

// BudgetRow is one line of the budget: what is measured, the budget,
// today's figure and whether it is within the budget (absent: not
// measured by this run).
type BudgetRow struct {
	Measure string `json:"measure"`
	Budget  string `json:"budget"`
	Today   string `json:"today"`
	Met     *bool  `json:"met,omitempty"`
}

// budget compares the suite's scenarios (a load run at budgetRate, one flat
// out, the backlog, the starts; any may be missing) and the decision
// benchmark in goBench with the budget.
func budget(scs []Scenario, goBench string) []BudgetRow {
	row := func(measure, budget string, args ...any) BudgetRow {
		return BudgetRow{Measure: measure, Budget: fmt.Sprintf(budget, args...), Today: "not measured"}
	}
	rows := []BudgetRow{
		row(fmt.Sprintf("intake over HTTP, SQLite, 2 cores, at %d requests/s", budgetRate), "p99 ≤ %d ms", budgetP99Ms),
		row("durable accepts at saturation, SQLite, 2 cores", "≥ %d/s, no errors", budgetAcceptedPerSec),
		row("a backlog posted at once, receiver down", "all accepted or refused (429/503), none lost, drained ≥ %d/s", budgetDrainPerSec),
		row("one decision, full rule set, one core", "p50 ≤ %d ms", budgetDecideMs),
		row("start to ready", "≤ %d s", budgetReadyMs/1000),
		row("peak RSS under load", "≤ %d MB", budgetPeakRSSMB),
	}
	set := func(i int, ok bool, format string, args ...any) {
		rows[i].Today, rows[i].Met = fmt.Sprintf(format, args...), &ok
	}
	var peak float64
	var each []string
	for _, sc := range scs {
		switch l, d, r := sc.Load, sc.Drain, sc.Ready; {
		case d != nil:
			rows[2].Measure = fmt.Sprintf("a backlog of %d referrals posted at once, receiver down", l.Requests)
			set(2, l.Errors == 0 && d.Lost == 0 && l.Accepted+l.Refused == l.Requests && d.PerSec >= budgetDrainPerSec,
				"%d accepted (%d posts refused with 503 and retried), %d refused, %d failed, %d lost; drained %.0f/s", l.Accepted, l.Retries, l.Refused, l.Errors, d.Lost, d.PerSec)
		case l != nil && l.Rate > 0:
			set(0, l.Latency.P99 <= budgetP99Ms && l.Errors+l.Refused == 0, "p99 %.1f ms (p50 %.1f ms), %d requests, %d errors",
				l.Latency.P99, l.Latency.P50, l.Requests, l.Errors+l.Refused)
		case l != nil:
			set(1, l.AcceptedPerSec >= budgetAcceptedPerSec && l.Errors+l.Refused == 0, "%.0f/s, %d errors, %d refused",
				l.AcceptedPerSec, l.Errors, l.Refused)
		case r != nil:
			set(4, r.MaxMs <= budgetReadyMs, "max %.0f ms (first start %.0f ms, restarts median %.0f ms)", r.MaxMs, r.FirstMs, r.MedianMs)
		}
		if sc.PeakRSSMB > 0 && sc.Ready == nil {
			peak = max(peak, sc.PeakRSSMB)
			each = append(each, fmt.Sprintf("%s %.0f", sc.Name, sc.PeakRSSMB))
		}
	}
	if peak > 0 {
		set(5, peak <= budgetPeakRSSMB, "%.0f MB (%s)", peak, strings.Join(each, ", "))
	}
	if name, p50, err := decideP50(goBench); err == nil {
		set(3, p50 <= budgetDecideMs, "p50 %.3f ms (%s)", p50, name)
	} else if goBench != "" {
		rows[3].Today = "not measured: " + err.Error()
	}
	return rows
}

// decideRE matches the name of BenchmarkDecide, of its sub-benchmarks and
// with a -GOMAXPROCS suffix.
var decideRE = regexp.MustCompile(`^BenchmarkDecide([/-]|$)`)

// decideP50 reads the median decision time in milliseconds from the output
// of go test -bench: the p50-ns metric of the first BenchmarkDecide line
// (or sub-benchmark).
func decideP50(file string) (string, float64, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return "", 0, err
	}
	for line := range strings.Lines(string(b)) {
		fs := strings.Fields(line)
		if i := slices.Index(fs, "p50-ns"); i > 1 && decideRE.MatchString(fs[0]) {
			p50, err := strconv.ParseFloat(fs[i-1], 64)
			return fs[0], p50 / 1e6, err
		}
	}
	return "", 0, fmt.Errorf("%s has no BenchmarkDecide result with p50-ns", file)
}

// printReport writes the budget (suite only), then a line per scenario
// with its figures and the machine's load average.
func printReport(w io.Writer, rep *Report) {
	if len(rep.Budget) > 0 {
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintf(tw, "measure\tbudget\ttoday\tmet\n")
		for _, b := range rep.Budget {
			verdict := "-"
			if b.Met != nil {
				verdict = map[bool]string{true: "yes", false: "NO"}[*b.Met]
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", b.Measure, b.Budget, b.Today, verdict)
		}
		tw.Flush()
		fmt.Fprintln(w)
	}
	for _, sc := range rep.Scenarios {
		fmt.Fprintf(w, "%s (load average %.1f→%.1f):", sc.Name, sc.LoadAvg[0], sc.LoadAvg[1])
		if l := sc.Load; l != nil {
			fmt.Fprintf(w, " %d requests in %.1f s, %d accepted (%.0f/s), %d denied, %d refused, %d errors; p50 %.1f ms, p99 %.1f ms, max %.1f ms;",
				l.Requests, l.Seconds, l.Accepted, l.AcceptedPerSec, l.Denied, l.Refused, l.Errors, l.Latency.P50, l.Latency.P99, l.Latency.Max)
		}
		if d := sc.Drain; d != nil {
			fmt.Fprintf(w, " %d queued drained in %.1f s (%.0f/s), %d accepted but not delivered;", d.Queued, d.Seconds, d.PerSec, d.Lost)
		}
		if r := sc.Ready; r != nil {
			fmt.Fprintf(w, " ready in %.0f ms at the first start, %.0f ms (median) to %.0f ms on restarts;", r.FirstMs, r.MedianMs, slices.Max(r.RestartsMs))
		}
		if sc.PeakRSSMB > 0 {
			fmt.Fprintf(w, " peak RSS %.0f MB", sc.PeakRSSMB)
		}
		if sc.Note != "" {
			fmt.Fprintf(w, " %s", sc.Note)
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "%d CPUs, load average %.1f at the start, %.1f at the end\n", rep.CPUs, rep.LoadAvg[0], rep.LoadAvg[1])
}
