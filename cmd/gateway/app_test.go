package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/student-mh-referrals/gateway/gateway/config"
)

// TestIgnoredEngineWarns: a configuration that still sets policies.engine
// loads, and the gateway logs one warning at start that the setting is
// ignored.
func TestIgnoredEngineWarns(t *testing.T) {
	cfg := strings.Replace(string(config.Example), "  dir: \"\"\n", "  dir: \"\"\n  engine: plan\n", 1)
	path := filepath.Join(t.TempDir(), "gateway.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	a, err := newApp(context.Background(), path, &logs, "warn")
	if err != nil {
		t.Fatalf("a configuration with policies.engine does not load: %v", err)
	}
	startWarnings(a.log, a.cfg) // as gateway serve does at start
	var warned int
	for _, line := range bytes.Split(bytes.TrimSpace(logs.Bytes()), []byte("\n")) {
		var entry struct{ Level, Msg string }
		if err := json.Unmarshal(line, &entry); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if entry.Level == "warn" && strings.Contains(entry.Msg, "policies.engine is ignored") {
			warned++
		}
	}
	if warned != 1 {
		t.Errorf("%d warnings about policies.engine; want 1. Log:\n%s", warned, logs.Bytes())
	}
}
