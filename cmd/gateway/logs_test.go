package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/student-mh-referrals/gateway/gateway"
	"github.com/student-mh-referrals/gateway/gateway/config"
	gwhttp "github.com/student-mh-referrals/gateway/gateway/http"
	"github.com/student-mh-referrals/gateway/gateway/logging"
)

// personalPaths are the case-record fields whose values are personal data or
// free text and must never reach a log line. A path ending in ".*" covers
// every string beneath it.
var personalPaths = []string{
	"caseId",
	"student.*",
	"referrer.name", "referrer.email", "referrer.phone", "referrer.registration.number",
	"referral.presentingNeeds.text", "referral.summary", "referral.riskFormulation",
	"referral.safetyPlan.summary", "referral.studentWishes", "referral.riskAssessment.reference",
	"consent.recordedBy", "consent.capacity.assessedBy",
	"override.grounds", "override.decidedBy.name", "override.approvedBy.name",
	"override.studentInformed.reasonDelayed",
}

// personalValues collects the personal strings of a case record.
func personalValues(t *testing.T, body []byte) []string {
	t.Helper()
	var doc any
	if err := json.Unmarshal(body, &doc); err != nil {
		return nil // malformed input: nothing parsed, nothing to leak
	}
	var out []string
	var walk func(path string, v any)
	walk = func(path string, v any) {
		switch x := v.(type) {
		case map[string]any:
			for k, c := range x {
				p := k
				if path != "" {
					p = path + "." + k
				}
				walk(p, c)
			}
		case []any:
			for _, c := range x {
				walk(path, c)
			}
		case string:
			if isPersonal(path) && len(x) >= 3 && path != "student.gender" && path != "student.safeContact.avoid" { // vocabulary codes
				out = append(out, x)
			}
		}
	}
	walk("", doc)
	return out
}

func isPersonal(path string) bool {
	for _, p := range personalPaths {
		if p == path || (strings.HasSuffix(p, ".*") && strings.HasPrefix(path, strings.TrimSuffix(p, "*"))) {
			return true
		}
	}
	return false
}

// syncBuffer is a log sink safe for the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestLogsHoldNoPersonalData serves every example case through the API and
// the CLI with debug logging, then searches the logs for every name, NHS
// number, date of birth, contact detail and free text in the cases. It also
// checks that every line of a request names the request id.
func TestLogsHoldNoPersonalData(t *testing.T) {
	var logs syncBuffer
	a, err := newApp(context.Background(), "", io.Discard, "debug")
	if err != nil {
		t.Fatal(err)
	}
	a.log, err = logging.New(&logs, "debug")
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer((&gwhttp.Server{Evaluator: a.evaluator, Logger: a.log, MaxBodyBytes: a.cfg.Limits.MaxBodyBytes, Schema: gateway.CaseRecordSchema}).Handler())
	defer srv.Close()
	// The full API over a store, for submissions with the demo tokens.
	store, err := openStore(context.Background(), config.Store{Driver: "sqlite", Path: filepath.Join(t.TempDir(), "gateway.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	key, _ := a.cfg.PseudonymKey()
	api, _ := a.server(store, key)
	full := httptest.NewServer(api.Handler())
	defer full.Close()
	tokens := map[string]string{"10006842": liverpool, "10007164": uwe}
	submitted := 0

	var secrets []string
	for _, c := range cases(t) {
		body, err := os.ReadFile(c.file)
		if err != nil {
			t.Fatal(err)
		}
		secrets = append(secrets, personalValues(t, body)...)
		resp, err := http.Post(srv.URL+"/v1/referrals/$evaluate", "application/json", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		var rec struct {
			Institution struct{ UKPRN string } `json:"institution"`
		}
		_ = json.Unmarshal(body, &rec)
		if tok, ok := tokens[rec.Institution.UKPRN]; ok {
			for _, path := range []string{"/v1/referrals/$evaluate", "/v1/referrals"} {
				a := call(t, full, apiCall{method: "POST", path: path, token: tok, body: body})
				if a.status >= 500 {
					t.Fatalf("%s %s: status %d", c.name, path, a.status)
				}
			}
			submitted++
		}
		var stderr bytes.Buffer
		_ = run(context.Background(), []string{"evaluate", c.file}, nil, io.Discard, &stderr)
		_, _ = logs.Write(stderr.Bytes())
	}
	if submitted < 5 {
		t.Fatalf("only %d cases went through the full API", submitted)
	}
	// A client's unknown key names are its own text, and may be personal
	// data: the logs name only the defined path above them.
	unknownKeys := []string{"Jordan Okafor NHS 9000000009", "Okafor_9000000009", "jordan.okafor@student.example"}
	secrets = append(secrets, unknownKeys...)
	var rec map[string]any
	if err := json.Unmarshal(readCase(t, "allow-liverpool-u-cope"), &rec); err != nil {
		t.Fatal(err)
	}
	rec[unknownKeys[0]] = true
	rec["student"].(map[string]any)[unknownKeys[1]] = "x"
	rec["referral"].(map[string]any)["safetyPlan"].(map[string]any)[unknownKeys[2]] = map[string]any{"a": 1}
	hostile, err := json.Marshal(rec)
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/v1/referrals/$evaluate", "/v1/referrals"} {
		if a := call(t, full, apiCall{method: "POST", path: path, token: liverpool, body: hostile}); a.status != http.StatusUnprocessableEntity {
			t.Fatalf("%s with unknown keys: status %d, want 422", path, a.status)
		}
	}
	before := len(logs.String())
	if resp, err := http.Post(srv.URL+"/v1/referrals/$evaluate", "application/json", bytes.NewReader(hostile)); err != nil {
		t.Fatal(err)
	} else {
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	if got, want := logs.String()[before:], `"unknown_fields":{"":1,"referral.safetyPlan":1,"student":1}`; !strings.Contains(got, want) {
		t.Errorf("the unknown keys are not counted under their defined parents (%s):\n%s", want, got)
	}
	if len(secrets) < 50 {
		t.Fatalf("only %d personal values collected from the examples; the test would prove little", len(secrets))
	}
	out := logs.String()
	if !strings.Contains(out, `"msg":"evaluated"`) {
		t.Fatalf("no evaluation was logged; the test would prove nothing:\n%s", out)
	}
	for _, s := range secrets {
		if strings.Contains(out, s) {
			t.Errorf("the log holds personal data %q", s)
		}
	}
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		var line map[string]any
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			t.Fatalf("log line is not JSON: %s", sc.Text())
		}
		if m := line["msg"]; (m == "request" || m == "evaluated") && line["request_id"] == nil {
			t.Errorf("request log line without request_id: %s", sc.Text())
		}
	}
}
