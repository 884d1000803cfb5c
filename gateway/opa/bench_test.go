package opa

import (
	"context"
	"os"
	"runtime/debug"
	"slices"
	"testing"
	"time"
)

// benchRecord is the record the benchmarks decide: an allowed consent-route
// referral that every rule checks and that carries every kind of obligation.
const benchRecord = "bristol-trusted-contact-not-consented"

// BenchmarkDecide is one whole decision: input conversion, evaluation of the
// full rule set, and result extraction. Besides ns/op it reports the median
// and 99th percentile of the single decisions (p50-ns, p99-ns), which a busy
// machine disturbs less than the mean; run it on one core:
//
//	go test ./gateway/opa -run '^$' -bench Decide -benchmem -cpu 1
//
// It runs once per engine: engine=plan is what the gateway uses,
// engine=topdown is OPA's own evaluator for comparison.
//
// Like `gateway serve`, it runs the garbage collector at GOGC 400 unless
// GOGC is set in the environment (gcAsServe); GOGC=100 go test ... gives
// Go's default.
func BenchmarkDecide(b *testing.B) {
	gcAsServe(b)
	in := inputFor(b, benchRecord, decisionTime)
	ctx := context.Background()
	for _, engine := range []string{EnginePlan, EngineTopdown} {
		b.Run("engine="+engine, func(b *testing.B) {
			d := deciderWith(b, engine)
			b.ReportAllocs()
			times := make([]time.Duration, 0, 1<<16)
			for b.Loop() {
				start := time.Now()
				dec, err := d.Decide(ctx, in)
				times = append(times, time.Since(start))
				if err != nil || !dec.Allow {
					b.Fatalf("Decide: %v, %+v", err, dec)
				}
			}
			reportPercentiles(b, times)
		})
	}
}

// serveGCPercent is the GOGC that `gateway serve` sets unless the operator
// sets GOGC (cmd/gateway, tuneGC): decisions are measured as the gateway
// makes them. A benchmark process holds far less live memory than a serving
// gateway, so Go's default would collect several times more often per
// decision than the gateway does.
const serveGCPercent = 400

// gcAsServe sets GOGC as `gateway serve` does for the rest of the benchmark.
func gcAsServe(b *testing.B) {
	if os.Getenv("GOGC") != "" {
		return
	}
	old := debug.SetGCPercent(serveGCPercent)
	b.Cleanup(func() { debug.SetGCPercent(old) })
}

// reportPercentiles adds the median and 99th percentile of per-operation
// times to a benchmark's results.
func reportPercentiles(b *testing.B, times []time.Duration) {
	if len(times) == 0 {
		return
	}
	slices.Sort(times)
	b.ReportMetric(float64(times[len(times)/2].Nanoseconds()), "p50-ns")
	b.ReportMetric(float64(times[len(times)*99/100].Nanoseconds()), "p99-ns")
}

// BenchmarkInput compares the two ways to build the input: walking the Go
// types into an OPA value directly, or one JSON round trip.
func BenchmarkInput(b *testing.B) {
	in := inputFor(b, benchRecord, decisionTime)
	for _, bc := range []struct {
		name string
		conv func() error
	}{
		{"direct", func() error { _, err := inputValue(in); return err }},
		{"json", func() error { _, err := inputValueJSON(in); return err }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := bc.conv(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkEval is the policy evaluation alone, on a ready input, per
// engine.
func BenchmarkEval(b *testing.B) {
	v, err := inputValue(inputFor(b, benchRecord, decisionTime))
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	for _, engine := range []string{EnginePlan, EngineTopdown} {
		b.Run("engine="+engine, func(b *testing.B) {
			set := deciderWith(b, engine).cur.Load()
			b.ReportAllocs()
			times := make([]time.Duration, 0, 1<<16)
			for b.Loop() {
				start := time.Now()
				_, err := set.decide(ctx, v)
				times = append(times, time.Since(start))
				if err != nil {
					b.Fatal(err)
				}
			}
			reportPercentiles(b, times)
		})
	}
}

// BenchmarkResult is the extraction of the decision from a ready result.
func BenchmarkResult(b *testing.B) {
	v, err := inputValue(inputFor(b, benchRecord, decisionTime))
	if err != nil {
		b.Fatal(err)
	}
	rs, err := decider(b).cur.Load().decide(context.Background(), v)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := decisionOf(rs); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEngines alternates decisions between the two engines in one
// process, so that both see the same machine, and reports each engine's
// median and their ratio (plan/topdown): the figure to compare on a shared,
// noisy machine, where a plain BenchmarkDecide moves with the load.
//
//	go test ./gateway/opa -run '^$' -bench Engines -cpu 1
func BenchmarkEngines(b *testing.B) {
	gcAsServe(b)
	in := inputFor(b, benchRecord, decisionTime)
	ctx := context.Background()
	plan, topdown := deciderWith(b, EnginePlan), deciderWith(b, EngineTopdown)
	var tp, tt []time.Duration
	for b.Loop() {
		for _, d := range []*Decider{plan, topdown} {
			start := time.Now()
			dec, err := d.Decide(ctx, in)
			took := time.Since(start)
			if err != nil || !dec.Allow {
				b.Fatalf("Decide: %v, %+v", err, dec)
			}
			if d == plan {
				tp = append(tp, took)
			} else {
				tt = append(tt, took)
			}
		}
	}
	slices.Sort(tp)
	slices.Sort(tt)
	if len(tp) == 0 {
		return
	}
	p, t := tp[len(tp)/2], tt[len(tt)/2]
	b.ReportMetric(float64(p.Nanoseconds()), "plan-p50-ns")
	b.ReportMetric(float64(t.Nanoseconds()), "topdown-p50-ns")
	b.ReportMetric(float64(p)/float64(t), "plan/topdown")
}
