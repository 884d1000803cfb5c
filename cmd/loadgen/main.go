// Command loadgen measures the gateway as an operator would before trusting
// it with a region's referrals: it posts varied, realistic case records
// (generated from testdata/cases) to POST /v1/referrals at a fixed rate or
// flat out and reports accepted referrals per second, latency percentiles,
// errors and the gateway's peak memory; it also times how fast the outbox
// drains to the sandbox receiver and how soon a started gateway is ready.
//
// It can start the gateway and the sandbox receiver itself (--spawn), with
// SQLite or PostgreSQL, so that `make bench` is one command. Load goes only
// to loopback addresses, and every run is bounded in time and count.
//
// main only wires the process; everything else starts in run.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
}
