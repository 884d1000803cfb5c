package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/student-mh-referrals/gateway/gateway"
	gwhttp "github.com/student-mh-referrals/gateway/gateway/http"
)

// TestEarlierExamplesStillPost posts every example case record of the first
// release of contract v1 (gateway/testdata/earlier-cases, as they were
// before the optional additions) to $evaluate: each is still a valid record
// (200 with a decision, never 400 or 422), since schemaVersion "1" stays.
func TestEarlierExamplesStillPost(t *testing.T) {
	a, err := newApp(context.Background(), "", io.Discard, "error")
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer((&gwhttp.Server{Evaluator: a.evaluator, Logger: a.log, MaxBodyBytes: a.cfg.Limits.MaxBodyBytes, Schema: gateway.CaseRecordSchema}).Handler())
	defer srv.Close()
	files, _ := filepath.Glob(filepath.Join("..", "..", "gateway", "testdata", "earlier-cases", "*.json"))
	if len(files) < 12 {
		t.Fatalf("found %d earlier examples, want 12", len(files))
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			body, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := http.Post(srv.URL+"/v1/referrals/$evaluate?at="+goldenAt, "application/json", bytes.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Errorf("status %d, want 200 (a valid record): %s", resp.StatusCode, got)
			}
		})
	}
}
