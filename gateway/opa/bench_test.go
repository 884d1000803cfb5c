package opa

import (
	"context"
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
func BenchmarkDecide(b *testing.B) {
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
