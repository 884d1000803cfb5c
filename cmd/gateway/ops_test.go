package main

import (
	"strings"
	"testing"
)

// TestOutboxListUnknownState: a state that no message can be in is a usage
// error naming the states, not an empty listing.
func TestOutboxListUnknownState(t *testing.T) {
	out, errOut, code := runCLI(t, "outbox", "list", "--state", "bogus", "--config", "no/such/file.yaml")
	if code != exitFailure || out != "" || !strings.Contains(errOut, `--state "bogus": use one of pending, leased, delivered, failed, dead, dropped`) {
		t.Errorf("exit %d, stdout %q, stderr %q; want 1 and the valid states", code, out, errOut)
	}
}
