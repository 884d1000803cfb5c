package main

import (
	"fmt"
	"io"
	"text/tabwriter"
)

// printReport writes the budget (suite only), then one row per scenario
// with its figures and the machine's load average, then any notes.
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
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "scenario\taccepted/s\treq/s\tp50 ms\tp99 ms\tmax ms\terrors\trefused\tdenied\tpeak RSS MB\tload avg\n")
	for _, sc := range rep.Scenarios {
		la := fmt.Sprintf("%.1f→%.1f", sc.LoadAvg[0], sc.LoadAvg[1])
		switch {
		case sc.Load != nil:
			l := sc.Load
			fmt.Fprintf(tw, "%s\t%.0f\t%.0f\t%.1f\t%.1f\t%.1f\t%d\t%d\t%d\t%.0f\t%s\n", sc.Name, l.AcceptedPerSec, l.RequestsPerSec,
				l.Latency.P50, l.Latency.P99, l.Latency.Max, l.Errors, l.Refused, l.Denied, sc.PeakRSSMB, la)
		case sc.Backlog != nil:
			b := sc.Backlog
			fmt.Fprintf(tw, "%s\t%.0f\t%.0f\t%.1f\t%.1f\t%.1f\t%d\t%d\t\t%.0f\t%s\n", sc.Name, float64(b.Accepted)/b.PostSecs, float64(b.Posted)/b.PostSecs,
				b.PostLat.P50, b.PostLat.P99, b.PostLat.Max, b.Failed, b.Refused, sc.PeakRSSMB, la)
		case sc.Ready != nil:
			fmt.Fprintf(tw, "%s\t\t\t%.0f\t\t%.0f\t\t\t\t%.0f\t%s\n", sc.Name, sc.Ready.MedianMs, sc.Ready.MaxMs, sc.PeakRSSMB, la)
		default:
			fmt.Fprintf(tw, "%s\t\t\t\t\t\t\t\t\t\t%s\n", sc.Name, la)
		}
	}
	tw.Flush()
	for _, sc := range rep.Scenarios {
		if b := sc.Backlog; b != nil {
			fmt.Fprintf(w, "%s: %d posted in %.1f s (%d in flight at most): %d accepted, %d refused, %d failed; %d queued drained in %.1f s (%.0f/s); %d accepted but not delivered\n",
				sc.Name, b.Posted, b.PostSecs, b.Concurrency, b.Accepted, b.Refused, b.Failed, b.Queued, b.DrainSecs, b.PerSec, b.Lost)
		}
		if sc.Note != "" {
			fmt.Fprintf(w, "%s: %s\n", sc.Name, sc.Note)
		}
	}
	fmt.Fprintf(w, "%d CPUs, load average %.1f at the start, %.1f at the end\n", rep.CPUs, rep.LoadAvg[0], rep.LoadAvg[1])
}
