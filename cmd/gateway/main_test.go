package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/student-mh-referrals/gateway/gateway"
	gwhttp "github.com/student-mh-referrals/gateway/gateway/http"
)

var update = flag.Bool("update", false, "rewrite the golden evaluation documents in testdata/evaluate")

// goldenAt is the decision time of every golden document, so that they are
// byte-stable.
const goldenAt = "2026-11-23T12:00:00Z"

// exitOf returns the exit status run's error calls for.
func exitOf(err error) int {
	var es *exitStatus
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &es):
		return es.code
	default:
		return exitFailure
	}
}

// evaluateCase is one input of the end-to-end tests and what it must give.
type evaluateCase struct {
	name, file string
	exit       int
	status     int
}

// cases lists the shared example case records (testdata/cases, named by their
// expected outcome) and the invalid inputs (testdata/invalid).
func cases(t *testing.T) []evaluateCase {
	t.Helper()
	var out []evaluateCase
	files, _ := filepath.Glob(filepath.Join("..", "..", "testdata", "cases", "*.json"))
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".json")
		c := evaluateCase{name: name, file: f, exit: exitOK, status: 200}
		if strings.HasPrefix(name, "deny-") {
			c.exit = exitDenied
		}
		out = append(out, c)
	}
	invalid, _ := filepath.Glob(filepath.Join("..", "..", "testdata", "invalid", "*.json"))
	for _, f := range invalid {
		name := strings.TrimSuffix(filepath.Base(f), ".json")
		c := evaluateCase{name: "invalid-" + name, file: f, exit: exitInvalid, status: 422}
		if strings.HasPrefix(name, "malformed") {
			c.status = 400
		}
		out = append(out, c)
	}
	if len(files) < 8 || len(invalid) < 3 {
		t.Fatalf("found %d example cases and %d invalid inputs; expected at least 8 and 3", len(files), len(invalid))
	}
	return out
}

// TestEvaluate runs `gateway evaluate` on every example and compares the
// document with its golden file; the exit status follows the outcome.
func TestEvaluate(t *testing.T) {
	for _, c := range cases(t) {
		t.Run(c.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := run(context.Background(), []string{"evaluate", "--at", goldenAt, c.file}, nil, &stdout, &stderr)
			if got := exitOf(err); got != c.exit {
				t.Fatalf("exit %d, want %d (err %v)\nstderr: %s\nstdout: %s", got, c.exit, err, stderr.String(), stdout.String())
			}
			golden(t, filepath.Join("..", "..", "testdata", "evaluate", c.name+".json"), stdout.Bytes())
		})
	}
}

// TestEvaluateStdinAndFlagsAfterFile covers `-` and flags given after the file.
func TestEvaluateStdinAndFlagsAfterFile(t *testing.T) {
	f := filepath.Join("..", "..", "testdata", "cases", "allow-liverpool-u-cope.json")
	body, err := os.ReadFile(f)
	if err != nil {
		t.Fatal(err)
	}
	var a, b bytes.Buffer
	if err := run(context.Background(), []string{"evaluate", "-", "--at", goldenAt}, bytes.NewReader(body), &a, io.Discard); err != nil {
		t.Fatal(err)
	}
	if err := run(context.Background(), []string{"evaluate", "--config", filepath.Join("..", "..", "gateway.example.yaml"), "--at", goldenAt, f}, nil, &b, io.Discard); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Fatal("stdin with the embedded configuration and a file with the root configuration give different documents")
	}
}

func TestUsageErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
	}{
		{"no command", nil},
		{"unknown command", []string{"frobnicate"}},
		{"no file", []string{"evaluate"}},
		{"two files", []string{"evaluate", "a.json", "b.json"}},
		{"bad at", []string{"evaluate", "--at", "yesterday", "-"}},
		{"unknown flag", []string{"evaluate", "--colour", "-"}},
		{"missing file", []string{"evaluate", "does-not-exist.json"}},
		{"bad config", []string{"evaluate", "--config", "does-not-exist.yaml", "-"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout bytes.Buffer
			err := run(context.Background(), tt.args, strings.NewReader("{}"), &stdout, io.Discard)
			if got := exitOf(err); got != exitFailure {
				t.Fatalf("exit %d, want %d", got, exitFailure)
			}
			if stdout.Len() != 0 {
				t.Errorf("stdout must stay empty on a usage error, got %q", stdout.String())
			}
		})
	}
}

// TestHTTPMatchesCLI proves that POST /v1/referrals/$evaluate answers with
// the very bytes `gateway evaluate` prints, and the status the outcome calls
// for.
func TestHTTPMatchesCLI(t *testing.T) {
	a, err := newApp(context.Background(), "", io.Discard, "error")
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer((&gwhttp.Server{Evaluator: a.evaluator, Logger: a.log, MaxBodyBytes: a.cfg.Limits.MaxBodyBytes, Schema: gateway.CaseRecordSchema}).Handler())
	defer srv.Close()
	for _, c := range cases(t) {
		t.Run(c.name, func(t *testing.T) {
			body, err := os.ReadFile(c.file)
			if err != nil {
				t.Fatal(err)
			}
			var cli bytes.Buffer
			_ = run(context.Background(), []string{"evaluate", "--at", goldenAt, c.file}, nil, &cli, io.Discard)
			resp, err := http.Post(srv.URL+"/v1/referrals/$evaluate?at="+goldenAt, "application/json", bytes.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != c.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, c.status, got)
			}
			if !bytes.Equal(got, cli.Bytes()) {
				t.Fatalf("HTTP body differs from the CLI document\nHTTP: %s\nCLI: %s", got, cli.Bytes())
			}
		})
	}
}

// golden compares got with the file at path, or rewrites it with -update.
func golden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./cmd/gateway -run %s -update to create it)", err, t.Name())
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("document differs from %s (run with -update after checking the change):\n%s", path, diffLines(want, got))
	}
}

// diffLines shows the first lines where two documents differ.
func diffLines(want, got []byte) string {
	w, g := strings.Split(string(want), "\n"), strings.Split(string(got), "\n")
	var b strings.Builder
	shown := 0
	for i := 0; i < len(w) || i < len(g); i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			b.WriteString("line " + strconv.Itoa(i+1) + "\n  want: " + wl + "\n  got:  " + gl + "\n")
			if shown++; shown == 5 {
				break
			}
		}
	}
	return b.String()
}
