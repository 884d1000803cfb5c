package main

import (
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
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

// budget compares the suite's scenarios (a load run at budgetRate, one flat
// out, the backlog, the starts; any may be missing) and the decision
// benchmark in goBench with the budget.
func budget(scs []Scenario, goBench string) []BudgetRow {
	rows := []BudgetRow{
		{Measure: fmt.Sprintf("intake over HTTP, SQLite, 2 cores, at %d requests/s", budgetRate), Budget: fmt.Sprintf("p99 ≤ %d ms", budgetP99Ms)},
		{Measure: "durable accepts at saturation, SQLite, 2 cores", Budget: fmt.Sprintf("≥ %d/s, no errors", budgetAcceptedPerSec)},
		{Measure: "a backlog posted at once, receiver down", Budget: fmt.Sprintf("all accepted or refused (429/503), none lost, drained ≥ %d/s", budgetDrainPerSec)},
		{Measure: "one decision, full rule set, one core", Budget: fmt.Sprintf("p50 ≤ %d ms", budgetDecideMs)},
		{Measure: "start to ready", Budget: fmt.Sprintf("≤ %d s", budgetReadyMs/1000)},
		{Measure: "peak RSS under load", Budget: fmt.Sprintf("≤ %d MB", budgetPeakRSSMB)},
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
				"%d accepted, %d refused, %d failed, %d lost; drained %.0f/s", l.Accepted, l.Refused, l.Errors, d.Lost, d.PerSec)
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
	for i := range rows {
		if rows[i].Today == "" {
			rows[i].Today = "not measured"
		}
	}
	return rows
}

// decideP50 reads the median decision time in milliseconds from the output
// of go test -bench: the first BenchmarkDecide line (or sub-benchmark), its
// p50-ns metric, else its ns/op.
func decideP50(file string) (string, float64, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return "", 0, err
	}
	for line := range strings.Lines(string(b)) {
		fs := strings.Fields(line)
		if len(fs) < 4 || (fs[0] != "BenchmarkDecide" && !strings.HasPrefix(fs[0], "BenchmarkDecide/") && !strings.HasPrefix(fs[0], "BenchmarkDecide-")) {
			continue
		}
		var p50 float64
		for i := 2; i+1 < len(fs); i += 2 {
			// ns/op comes first on the line: a p50-ns after it wins.
			if v, err := strconv.ParseFloat(fs[i], 64); err == nil && (fs[i+1] == "p50-ns" || (fs[i+1] == "ns/op" && p50 == 0)) {
				p50 = v
			}
		}
		if p50 > 0 {
			return fs[0], p50 / 1e6, nil
		}
	}
	return "", 0, fmt.Errorf("%s has no BenchmarkDecide result", file)
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
