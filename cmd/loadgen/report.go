package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// printTable writes the results as an aligned table: one row per scenario,
// the figure its target is about, and whether it met it.
func printTable(w io.Writer, rep *Report) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "scenario\taccepted/s\treq/s\tp50 ms\tp95 ms\tp99 ms\terrors\tdenied\tpeak RSS MB\tCPU ms/req\tload avg\ttarget\tmet\n")
	for _, sc := range rep.Scenarios {
		la := fmt.Sprintf("%.1f→%.1f", sc.LoadAvg[0], sc.LoadAvg[1])
		verdict := "-"
		if sc.Met != nil {
			verdict = map[bool]string{true: "yes", false: "NO"}[*sc.Met]
		}
		rss := "-"
		if sc.PeakRSSMB > 0 {
			rss = fmt.Sprintf("%.1f", sc.PeakRSSMB)
		}
		switch {
		case sc.Load != nil:
			l := sc.Load
			cpu := "-"
			if sc.CPUMsPerRequest > 0 {
				cpu = fmt.Sprintf("%.2f", sc.CPUMsPerRequest)
			}
			fmt.Fprintf(tw, "%s\t%.0f\t%.0f\t%.1f\t%.1f\t%.1f\t%d\t%d\t%s\t%s\t%s\t%s\t%s\n",
				sc.Name, l.AcceptedPerSec, l.RequestsPerSec, l.Latency.P50, l.Latency.P95, l.Latency.P99,
				l.Errors, l.Denied, rss, cpu, la, sc.Target, verdict)
		case sc.Drain != nil:
			d := sc.Drain
			fmt.Fprintf(tw, "%s\t%.0f msg/s\t\t\t\t\t%d\t\t%s\t\t%s\t%s\t%s\n",
				sc.Name, d.PerSec, d.QueueErrors, rss, la, sc.Target, verdict)
		case sc.Ready != nil:
			r := sc.Ready
			fmt.Fprintf(tw, "%s\tfirst %.0f ms, median %.0f ms, max %.0f ms\t\t\t\t\t\t\t%s\t\t%s\t%s\t%s\n",
				sc.Name, r.FirstMs, r.MedianMs, r.MaxMs, rss, la, sc.Target, verdict)
		default:
			fmt.Fprintf(tw, "%s\tnot measured\t\t\t\t\t\t\t\t\t%s\t%s\t%s\n", sc.Name, la, sc.Target, verdict)
		}
	}
	tw.Flush()
	for _, sc := range rep.Scenarios {
		var notes []string
		if sc.Note != "" {
			notes = append(notes, sc.Note)
		}
		if sc.Drain != nil {
			notes = append(notes, fmt.Sprintf("%d queued in %.1f s, drained in %.2f s, %d received by the sandbox; CPU per message: gateway %.2f ms, sandbox %.2f ms",
				sc.Drain.Queued, sc.Drain.QueueSecs, sc.Drain.Seconds, sc.Drain.Delivered, sc.Drain.GatewayCPUMs, sc.Drain.SandboxCPUMs))
		}
		if sc.Load != nil && (sc.SandboxCPUMsPerRequest > 0 || sc.LoadgenCPUMsPerRequest > 0) {
			notes = append(notes, fmt.Sprintf("CPU per request on the same CPUs: sandbox %.2f ms, load generator %.2f ms",
				sc.SandboxCPUMsPerRequest, sc.LoadgenCPUMsPerRequest))
		}
		if sc.Load != nil && sc.Load.Late > 0 {
			notes = append(notes, fmt.Sprintf("%d requests started over 10 ms late", sc.Load.Late))
		}
		if len(notes) > 0 {
			fmt.Fprintf(w, "%s: %s\n", sc.Name, strings.Join(notes, "; "))
		}
	}
}
