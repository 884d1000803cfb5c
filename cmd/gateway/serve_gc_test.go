package main

import (
	"runtime/debug"
	"testing"
)

func TestTuneGC(t *testing.T) {
	old := debug.SetGCPercent(100)
	defer debug.SetGCPercent(old)
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
