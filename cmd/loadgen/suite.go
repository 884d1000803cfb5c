package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

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

// suite runs what make bench reports: SQLite at 50 requests/s and flat out
// (delivering to the sandbox meanwhile), the backlog and the time to ready;
// then it fills in the budget. A scenario that cannot run is reported, with
// why, and the others still run.
func suite(ctx context.Context, o *options, rep *Report, stderr io.Writer) error {
	var failed []string
	step := func(name string, run func() (*Scenario, error)) *Scenario {
		if ctx.Err() != nil {
			return nil
		}
		fmt.Fprintf(stderr, "loadgen: %s\n", name)
		sc, err := run()
		if err != nil {
			sc = &Scenario{Name: name, Note: "not measured: " + err.Error()}
			failed = append(failed, name)
		}
		rep.Scenarios = append(rep.Scenarios, *sc)
		return sc
	}
	rated := step(fmt.Sprintf("sqlite %d req/s", budgetRate), func() (*Scenario, error) {
		return loadScenario(ctx, o, fmt.Sprintf("sqlite %d req/s", budgetRate), budgetRate, true)
	})
	flat := step("sqlite flat out", func() (*Scenario, error) {
		return loadScenario(ctx, o, "sqlite flat out", 0, true)
	})
	backlog := step(fmt.Sprintf("backlog of %d", o.backlog), func() (*Scenario, error) { return backlogScenario(ctx, o) })
	ready := step("time to ready", func() (*Scenario, error) { return readyScenario(ctx, o) })
	if err := ctx.Err(); err != nil {
		return err
	}
	rep.Budget = budget(rated, flat, backlog, ready, o.goBench)
	if len(failed) > 0 {
		return fmt.Errorf("not measured: %s", strings.Join(failed, ", "))
	}
	return nil
}

// budget compares the suite's scenarios (any may be nil) and the decision
// benchmark in goBench with the budget.
func budget(rated, flat, backlog, ready *Scenario, goBench string) []BudgetRow {
	met := func(ok bool) *bool { return &ok }
	notMeasured := "not measured"
	rows := []BudgetRow{
		{Measure: fmt.Sprintf("intake over HTTP, SQLite, 2 cores, at %d requests/s", budgetRate), Budget: fmt.Sprintf("p99 ≤ %d ms", budgetP99Ms), Today: notMeasured},
		{Measure: "durable accepts at saturation, SQLite, 2 cores", Budget: fmt.Sprintf("≥ %d/s, no errors", budgetAcceptedPerSec), Today: notMeasured},
		{Measure: "a backlog posted at once, receiver down", Budget: fmt.Sprintf("all accepted or refused (429/503), none lost, drained ≥ %d/s", budgetDrainPerSec), Today: notMeasured},
		{Measure: "one decision, full rule set, one core", Budget: fmt.Sprintf("p50 ≤ %d ms", budgetDecideMs), Today: notMeasured},
		{Measure: "start to ready", Budget: fmt.Sprintf("≤ %d s", budgetReadyMs/1000), Today: notMeasured},
		{Measure: "peak RSS under load", Budget: fmt.Sprintf("≤ %d MB", budgetPeakRSSMB), Today: notMeasured},
	}
	if rated != nil && rated.Load != nil {
		l := rated.Load
		rows[0].Today = fmt.Sprintf("p99 %.1f ms (p50 %.1f ms), %d requests, %d errors", l.Latency.P99, l.Latency.P50, l.Requests, l.Errors+l.Refused)
		rows[0].Met = met(l.Latency.P99 <= budgetP99Ms && l.Errors+l.Refused == 0)
	}
	if flat != nil && flat.Load != nil {
		l := flat.Load
		rows[1].Today = fmt.Sprintf("%.0f/s, %d errors, %d refused", l.AcceptedPerSec, l.Errors, l.Refused)
		rows[1].Met = met(l.AcceptedPerSec >= budgetAcceptedPerSec && l.Errors+l.Refused == 0)
	}
	if backlog != nil && backlog.Backlog != nil {
		b := backlog.Backlog
		rows[2].Measure = fmt.Sprintf("a backlog of %d referrals posted at once, receiver down", b.Posted)
		rows[2].Today = fmt.Sprintf("%d accepted, %d refused, %d failed, %d lost; drained %.0f/s", b.Accepted, b.Refused, b.Failed, b.Lost, b.PerSec)
		rows[2].Met = met(b.Failed == 0 && b.Lost == 0 && b.Accepted+b.Refused == b.Posted && b.PerSec >= budgetDrainPerSec && backlog.Note == "")
	}
	if name, p50, err := decideP50(goBench); err == nil {
		rows[3].Today = fmt.Sprintf("p50 %.3f ms (%s)", p50, name)
		rows[3].Met = met(p50 <= budgetDecideMs)
	} else if goBench != "" {
		rows[3].Today = notMeasured + ": " + err.Error()
	}
	if ready != nil && ready.Ready != nil {
		r := ready.Ready
		rows[4].Today = fmt.Sprintf("max %.0f ms (first start %.0f ms, restarts median %.0f ms)", r.MaxMs, r.FirstMs, r.MedianMs)
		rows[4].Met = met(r.MaxMs <= budgetReadyMs)
	}
	var peak float64
	var each []string
	for _, sc := range []*Scenario{rated, flat, backlog} {
		if sc != nil && sc.PeakRSSMB > 0 {
			peak = max(peak, sc.PeakRSSMB)
			each = append(each, fmt.Sprintf("%s %.0f", sc.Name, sc.PeakRSSMB))
		}
	}
	if peak > 0 {
		rows[5].Today = fmt.Sprintf("%.0f MB (%s)", peak, strings.Join(each, ", "))
		rows[5].Met = met(peak <= budgetPeakRSSMB)
	}
	return rows
}

// decideP50 reads the median decision time in milliseconds from the output
// of go test -bench: the first BenchmarkDecide line (or sub-benchmark), its
// p50-ns metric, else its ns/op.
func decideP50(file string) (string, float64, error) {
	if file == "" {
		return "", 0, fmt.Errorf("no --go-bench file")
	}
	f, err := os.Open(file)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) < 4 || !isDecide(fs[0]) {
			continue
		}
		var nsPerOp, p50 float64
		for i := 2; i+1 < len(fs); i += 2 {
			v, err := strconv.ParseFloat(fs[i], 64)
			if err != nil {
				continue
			}
			switch fs[i+1] {
			case "ns/op":
				nsPerOp = v
			case "p50-ns":
				p50 = v
			}
		}
		if p50 == 0 {
			p50 = nsPerOp
		}
		if p50 > 0 {
			return fs[0], p50 / 1e6, nil
		}
	}
	if err := sc.Err(); err != nil {
		return "", 0, err
	}
	return "", 0, fmt.Errorf("%s has no BenchmarkDecide result", file)
}

// isDecide says whether a benchmark's name (with its sub-benchmark and
// -GOMAXPROCS suffix) is BenchmarkDecide.
func isDecide(name string) bool {
	rest, ok := strings.CutPrefix(name, "BenchmarkDecide")
	return ok && (rest == "" || rest[0] == '/' || rest[0] == '-')
}
