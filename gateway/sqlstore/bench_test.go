package sqlstore_test

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// benchPadding makes a benchmark bundle about as large as a real BaRS
// message (6–10 KB).
var benchPadding = strings.Repeat("x", 8<<10)

// BenchmarkAccept measures durable accepts of distinct referrals, one at a
// time and from concurrent requests (GOMAXPROCS×parallelism goroutines
// across 16 institutions), on each database, and reports accepts/s.
func BenchmarkAccept(b *testing.B) { forEachDialect(b, benchAccept) }

func benchAccept(b *testing.B, open func(testing.TB) *store) {
	b.Run("sequential", func(b *testing.B) {
		s := open(b)
		ctx := context.Background()
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			req := paddedAcceptRequest(instA, fmt.Sprintf("B%09d", i), "a", "", t0, benchPadding)
			if _, err := s.Accept(ctx, req); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "accepts/s")
	})
	for _, par := range []int{4, 16} {
		b.Run(fmt.Sprintf("parallel-%d", par), func(b *testing.B) {
			s := open(b)
			ctx := context.Background()
			var n atomic.Int64
			b.SetParallelism(par)
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					i := n.Add(1)
					inst := fmt.Sprintf("1%07d", i%16)
					req := paddedAcceptRequest(inst, fmt.Sprintf("B%09d", i), "a", "", t0.Add(time.Duration(i)), benchPadding)
					if _, err := s.Accept(ctx, req); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "accepts/s")
		})
	}
}
