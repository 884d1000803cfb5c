package delivery

import (
	"context"
	"fmt"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/student-mh-referrals/gateway/gateway"
	"github.com/student-mh-referrals/gateway/sandbox"
)

// TestExactlyOnceThroughFaults runs workers (one process, or two processes
// on one database) against the sandbox receiver while it fails in every
// scripted way, and checks that every message arrives, and arrives once per
// X-Request-Id: retries after a lost answer become 409 duplicates, which
// count as delivered.
func TestExactlyOnceThroughFaults(t *testing.T) {
	faults := []sandbox.Fault{
		{Mode: sandbox.ModeStatus, Status: 500, Count: 3},
		{Mode: sandbox.ModeStatus, Status: 429, RetryAfter: "1", Count: 1},
		{Mode: sandbox.ModeReset, Count: 2},
		{Mode: sandbox.ModeReset, After: true, Count: 2},
		{Mode: sandbox.ModeStatus, Status: 503, After: true, Count: 2},
		{Mode: sandbox.ModeSlow, Delay: "500ms", Count: 2, Target: "2000010002"},
		{Mode: sandbox.ModeStatus, Status: 408, Count: 1, Target: "2000010001"},
	}
	tests := []struct {
		name      string
		processes int
		messages  int
	}{
		{"one process", 1, 24},
		{"two processes on one database", 2, 24},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rc := sandbox.NewReceiver(sandbox.Options{})
			defer rc.Close()
			srv := httptest.NewServer(rc.Handler())
			defer srv.Close()
			for _, f := range faults {
				if err := rc.AddFault(f); err != nil {
					t.Fatal(err)
				}
			}
			services := []Service{
				svc("u-cope", srv.URL+"/fhir", "2000010001", Transport{}),
				svc("gm-student-mhs", srv.URL+"/fhir", "2000010002", Transport{}),
			}
			set := Settings{
				Workers: 4, MaxAttempts: 30, MaxAge: time.Hour,
				BaseBackoff: 10 * time.Millisecond, MaxBackoff: 80 * time.Millisecond,
				Timeout: 250 * time.Millisecond, Lease: 3 * time.Second,
				PollInterval: 10 * time.Millisecond,
			}
			path := filepath.Join(t.TempDir(), "gateway.db")
			first := openStoreAt(t, path)
			var want []string
			for i := range tt.messages {
				id, value := "u-cope", "2000010001"
				if i%2 == 1 {
					id, value = "gm-student-mhs", "2000010002"
				}
				m := queue(t, first, uniqueCase(i), id, target(value), time.Now())
				want = append(want, m.RequestID)
			}
			core, logs := observer.New(zap.DebugLevel)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			done := make(chan error, tt.processes)
			for p := range tt.processes {
				store := first
				if p > 0 {
					store = openStoreAt(t, path) // another process's handle
				}
				w, err := New(Options{
					Outbox: store, Services: services, Settings: set, Owner: fmt.Sprintf("process-%d", p),
					Source: gateway.Source{Software: "student-mh-referral-gateway", Version: "test"}, Logger: zap.New(core),
				})
				if err != nil {
					t.Fatal(err)
				}
				go func() { done <- w.Run(ctx) }()
			}
			deadline := time.Now().Add(60 * time.Second)
			for {
				stats, err := first.QueueStats(context.Background())
				if err != nil {
					t.Fatal(err)
				}
				delivered, err := first.Messages(context.Background(), gateway.MessageDelivered, 1000)
				if err != nil {
					t.Fatal(err)
				}
				if len(delivered) == tt.messages {
					break
				}
				if time.Now().After(deadline) || stats.Counts[gateway.MessageDead]+stats.Counts[gateway.MessageFailed] > 0 {
					t.Fatalf("not all delivered: %v", stats.Counts)
				}
				time.Sleep(20 * time.Millisecond)
			}
			cancel()
			for range tt.processes {
				if err := <-done; err != nil {
					t.Fatal(err)
				}
			}

			var got []string
			dups := 0
			for _, r := range rc.Received() {
				got = append(got, r.RequestID)
				dups += r.Posts - 1
			}
			slices.Sort(got)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Fatalf("the receiver kept %d messages, want each of the %d once:\n got %v\nwant %v", len(got), len(want), got, want)
			}
			if dups < 4 {
				t.Errorf("%d duplicate posts; the after-accept faults alone make 4", dups)
			}
			for _, f := range rc.Faults() {
				if f.Used != f.Count {
					t.Errorf("fault %+v used %d times, want %d", f, f.Used, f.Count)
				}
			}
			for _, e := range logs.All() {
				line := fmt.Sprint(e.Message, e.ContextMap())
				for _, secret := range []string{patientName, "9990000018", "CASE-"} {
					if strings.Contains(line, secret) {
						t.Errorf("a log line carries %q: %s", secret, line)
					}
				}
			}
		})
	}
}
