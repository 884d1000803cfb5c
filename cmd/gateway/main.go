// Command gateway is the student mental-health referral gateway: it serves the
// API (`gateway serve`), evaluates case records offline (`gateway evaluate`)
// and lists the policy rules in force (`gateway policy rules`).
//
// main only wires the process: signals, standard streams and the exit code.
// Everything else starts in run, so tests drive the command in-process.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	os.Exit(exitCode(err, os.Stderr))
}

// exitStatus is an error that carries the process exit status it calls for,
// e.g. 3 for a policy deny, with no message of its own to print.
type exitStatus struct {
	code int
	err  error
}

func (e *exitStatus) Error() string {
	if e.err != nil {
		return e.err.Error()
	}
	return fmt.Sprintf("exit status %d", e.code)
}

func (e *exitStatus) Unwrap() error { return e.err }

// Exit statuses of the CLI.
const (
	exitOK      = 0
	exitFailure = 1 // usage or internal error
	exitInvalid = 2 // the input is invalid or malformed
	exitDenied  = 3 // the policies refused the share
)

// exitCode reports err on stderr (when it has something to say) and returns
// the status to exit with.
func exitCode(err error, stderr *os.File) int {
	if err == nil {
		return exitOK
	}
	var es *exitStatus
	if errors.As(err, &es) {
		if es.err != nil {
			fmt.Fprintln(stderr, "gateway:", es.err)
		}
		return es.code
	}
	fmt.Fprintln(stderr, "gateway:", err)
	return exitFailure
}
