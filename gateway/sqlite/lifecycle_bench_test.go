package sqlite

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/student-mh-referrals/gateway/gateway"
)

// BenchmarkLifecycle takes b.N referrals of the load generator's typical
// sizes (record 1.9 KB, Bundle 9.2 KB, response 3.3 KB) through the store
// as the gateway does: accepted by 16 concurrent clients, then claimed four
// at a time by two claimers, each message's attempt and the receiver's
// response recorded concurrently. It reports the process's CPU time and the
// bytes it wrote (WAL, checkpoints) per referral for each half: the figures
// by which a change to the schema or the writes is judged against the
// durable accepts line of the budget (docs/performance.md, "The budget"),
// and the accepts per second, with and without group commit:
//
//	go test ./gateway/sqlite -run '^$' -bench Lifecycle -benchtime 3000x
//
// The bytes written hardly vary between runs; the CPU time varies with the
// machine.
func BenchmarkLifecycle(b *testing.B) {
	for _, v := range commitModes {
		b.Run(v.name, func(b *testing.B) { benchLifecycle(b, v.opt) })
	}
}

func benchLifecycle(b *testing.B, opt Options) {
	ctx := context.Background()
	db := openAt(b, filepath.Join(b.TempDir(), "gateway.db"), opt)
	n := b.N
	reqs := make([]gateway.AcceptRequest, n)
	for i := range reqs {
		r := acceptRequest(fmt.Sprint("case-", i), "a")
		r.Record = []byte(fmt.Sprintf(`{"caseId":"case-%d","text":"%s"}`, i, strings.Repeat("r", 1850)))
		r.Bundle = []byte(fmt.Sprintf(`{"resourceType":"Bundle","id":"%d","text":"%s"}`, i, strings.Repeat("b", 9150)))
		reqs[i] = r
	}
	resp := []byte(`{"resourceType":"Bundle","text":"` + strings.Repeat("s", 3250) + `"}`)
	b.ResetTimer()

	cpu0, w0, t0 := processCPU(), processWritten(b), time.Now()
	var wg sync.WaitGroup
	for g := 0; g < 16; g++ {
		wg.Go(func() {
			for i := g; i < n; i += 16 {
				if _, err := db.Accept(ctx, reqs[i]); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	cpu1, w1, t1 := processCPU(), processWritten(b), time.Now()

	now := t0.Add(time.Minute)
	for g := 0; g < 2; g++ {
		wg.Go(func() {
			for {
				ms, err := db.Claim(ctx, fmt.Sprint("claimer-", g), 4, now, time.Minute)
				if err != nil || len(ms) == 0 {
					if err != nil {
						b.Error(err)
					}
					return
				}
				var each sync.WaitGroup
				for _, m := range ms {
					each.Go(func() {
						if err := db.RecordAttempt(ctx, m.ID, m.LeaseID, gateway.Attempt{Result: gateway.AttemptDelivered, At: now}); err != nil {
							b.Error(err)
						}
						if _, _, err := db.RecordStep(ctx, gateway.StepRequest{Message: m, Response: resp, At: now,
							Entry: gateway.TimelineEntry{Step: gateway.StepAccepted, At: now, ResponseID: m.ID}}); err != nil {
							b.Error(err)
						}
					})
				}
				each.Wait()
			}
		})
	}
	wg.Wait()
	cpu2, w2 := processCPU(), processWritten(b)
	b.StopTimer()

	per := func(d time.Duration) float64 { return float64(d) / 1e6 / float64(n) }
	kb := func(w int64) float64 { return float64(w) / 1024 / float64(n) }
	b.ReportMetric(float64(n)/t1.Sub(t0).Seconds(), "accepts/s")
	b.ReportMetric(per(cpu1-cpu0), "accept-cpu-ms/ref")
	b.ReportMetric(kb(w1-w0), "accept-KB/ref")
	b.ReportMetric(per(cpu2-cpu1), "deliver-cpu-ms/ref")
	b.ReportMetric(kb(w2-w1), "deliver-KB/ref")
}

// processCPU is the user and system CPU time of this process so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// processWritten is the bytes this process has passed to write calls so far
// (wchar in /proc/self/io: Linux only).
func processWritten(b *testing.B) int64 {
	raw, err := os.ReadFile("/proc/self/io")
	if err != nil {
		b.Skipf("no /proc/self/io: %v", err)
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, "wchar: "); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				b.Fatal(err)
			}
			return n
		}
	}
	b.Skip("no wchar in /proc/self/io")
	return 0
}
