package opa

import (
	"context"
	"os"
	"runtime/debug"
	"slices"
	"testing"
	"time"
)

// benchRecord is the record the benchmark decides: an allowed consent-route
// referral that every rule checks and that carries every kind of obligation.
const benchRecord = "bristol-trusted-contact-not-consented"

// BenchmarkDecide is one whole decision on the full rule set: input
// conversion, evaluation and result extraction. Besides ns/op it reports the
// median and 99th percentile of the single decisions (p50-ns, p99-ns), which
// a busy machine disturbs less than the mean; run it on one core:
//
//	go test ./gateway/opa -run '^$' -bench Decide -benchmem -cpu 1
//
// Like `gateway serve`, it runs the garbage collector at GOGC 400 unless
// GOGC is set in the environment; GOGC=100 go test ... gives Go's default.
func BenchmarkDecide(b *testing.B) {
	if os.Getenv("GOGC") == "" {
		// serveGCPercent of cmd/gateway: a benchmark holds far less live
		// memory than a serving gateway, so Go's default would collect
		// several times more often per decision than the gateway does.
		old := debug.SetGCPercent(400)
		b.Cleanup(func() { debug.SetGCPercent(old) })
	}
	in := inputFor(b, benchRecord, decisionTime)
	d := decider(b)
	ctx := context.Background()
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
	slices.Sort(times)
	b.ReportMetric(float64(times[len(times)/2].Nanoseconds()), "p50-ns")
	b.ReportMetric(float64(times[len(times)*99/100].Nanoseconds()), "p99-ns")
}
