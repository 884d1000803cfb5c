package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/student-mh-referrals/gateway/gateway"
	"github.com/student-mh-referrals/gateway/gateway/config"
)

// brokenMapper wraps the real mapping and drops ServiceRequest.status from
// what it builds: a mapping bug the output gate must stop.
type brokenMapper struct{ real gateway.Mapper }

func (b brokenMapper) Message(ctx context.Context, in gateway.MessageInput) ([]byte, error) {
	out, err := b.real.Message(ctx, in)
	if err != nil {
		return nil, err
	}
	var bundle map[string]any
	if err := json.Unmarshal(out, &bundle); err != nil {
		return nil, err
	}
	for _, e := range bundle["entry"].([]any) {
		res := e.(map[string]any)["resource"].(map[string]any)
		if res["resourceType"] == "ServiceRequest" {
			delete(res, "status")
		}
	}
	return json.Marshal(bundle)
}

// TestOutputGate: a message that fails validation is never stored or sent;
// the client gets an internal-error OperationOutcome with a reference id, and
// the metric counts it.
func TestOutputGate(t *testing.T) {
	ctx := context.Background()
	a, err := newApp(ctx, "", io.Discard, "error")
	if err != nil {
		t.Fatal(err)
	}
	a.evaluator.Mapper = brokenMapper{a.evaluator.Mapper}
	store, err := openStore(ctx, config.Store{Driver: "sqlite", Path: filepath.Join(t.TempDir(), "gateway.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	key, _ := a.cfg.PseudonymKey()
	api, metrics := a.server(store, key)
	srv := httptest.NewServer(api.Handler())
	defer srv.Close()

	for _, path := range []string{"/v1/referrals/$evaluate", "/v1/referrals"} {
		t.Run(path, func(t *testing.T) {
			ans := call(t, srv, apiCall{method: "POST", path: path, token: liverpool, body: readCase(t, "allow-liverpool-u-cope")})
			if ans.status != http.StatusInternalServerError {
				t.Fatalf("status %d, want 500: %s", ans.status, ans.body)
			}
			if !strings.Contains(string(ans.body), "reference "+ans.header.Get("X-Request-Id")) || strings.Contains(string(ans.body), "status") && strings.Contains(string(ans.body), "ServiceRequest") {
				t.Errorf("the answer should name only the reference: %s", ans.body)
			}
		})
	}
	if _, err := store.LatestReferral(ctx, "10006842", "UOL-SS-2026-04417"); gateway.ErrorCode(err) != gateway.ENOTFOUND {
		t.Fatalf("the referral was stored despite the gate: %v", err)
	}
	st, err := store.QueueStats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for state, n := range st.Counts {
		if n != 0 {
			t.Fatalf("%d %s messages queued despite the gate", n, state)
		}
	}
	rr := httptest.NewRecorder()
	metrics.Handler().ServeHTTP(rr, httptest.NewRequest("GET", "/metrics", nil))
	if !strings.Contains(rr.Body.String(), "gateway_output_gate_rejections_total 2") {
		t.Errorf("the gate metric did not count both rejections")
	}
}
