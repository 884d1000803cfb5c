package main

import (
	"math"
	"runtime/debug"
	"testing"
)

func TestTuneGC(t *testing.T) {
	old := debug.SetGCPercent(100)
	defer debug.SetGCPercent(old)
	oldLimit := debug.SetMemoryLimit(-1)
	defer debug.SetMemoryLimit(oldLimit)
	tests := []struct {
		name string
		gogc string
		want int
	}{
		{"default", "", serveGCPercent},
		{"operator's GOGC wins", "50", 100}, // the runtime read GOGC itself; tuneGC leaves it
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			debug.SetGCPercent(100)
			tuneGC(func(k string) string {
				if k == "GOGC" {
					return tc.gogc
				}
				return ""
			})
			if got := debug.SetGCPercent(100); got != tc.want {
				t.Errorf("GC percent %d; want %d", got, tc.want)
			}
		})
	}
}

// TestTuneMemoryLimit: serve sets its soft memory limit unless the operator
// set GOMEMLIMIT.
func TestTuneMemoryLimit(t *testing.T) {
	oldGC, oldLimit := debug.SetGCPercent(100), debug.SetMemoryLimit(-1)
	defer func() { debug.SetGCPercent(oldGC); debug.SetMemoryLimit(oldLimit) }()
	for _, tc := range []struct {
		env  string
		want int64
	}{{"", serveMemoryLimit}, {"200MiB", math.MaxInt64}} {
		debug.SetMemoryLimit(math.MaxInt64)
		tuneGC(func(k string) string {
			if k == "GOMEMLIMIT" {
				return tc.env
			}
			return ""
		})
		if got := debug.SetMemoryLimit(-1); got != tc.want {
			t.Errorf("GOMEMLIMIT=%q: memory limit %d, want %d", tc.env, got, tc.want)
		}
	}
}
