package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/student-mh-referrals/gateway/gateway"
	"github.com/student-mh-referrals/gateway/gateway/config"
	"github.com/student-mh-referrals/gateway/gateway/postgres/pgtest"
)

// drivers are the stores the end-to-end tests run on; PostgreSQL skips
// without GATEWAY_TEST_POSTGRES_DSN (and fails under CI=true).
var drivers = []string{"sqlite", "postgres"}

// testStore is a fresh store configuration of the given driver.
func testStore(t *testing.T, driver string) config.Store {
	t.Helper()
	if driver == "postgres" {
		return config.Store{Driver: "postgres", DSN: pgtest.FreshSchema(t)}
	}
	return config.Store{Driver: "sqlite", Path: filepath.Join(t.TempDir(), "gateway.db")}
}

// apiServerOn serves the fully wired API over a fresh store of the given
// driver, as `gateway serve` does with the example configuration.
func apiServerOn(t *testing.T, driver string) *httptest.Server {
	t.Helper()
	srv, _ := apiServerWith(t, driver, nil)
	return srv
}

// apiServerWith is apiServerOn with the app edited first (nil: as it is),
// and the store, for tests that play the delivery worker.
func apiServerWith(t *testing.T, driver string, edit func(*app)) (*httptest.Server, gateway.Store) {
	t.Helper()
	ctx := context.Background()
	a, err := newApp(ctx, "", io.Discard, "error")
	if err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		edit(a)
	}
	store, err := openStore(ctx, testStore(t, driver))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	key, err := a.cfg.PseudonymKey()
	if err != nil {
		t.Fatal(err)
	}
	api, _ := a.server(store, key)
	srv := httptest.NewServer(api.Handler())
	t.Cleanup(srv.Close)
	return srv, store
}

type apiCall struct {
	method, path, token, ctype string
	body                       []byte
	// accept is the Accept header; none when empty.
	accept string
}

type apiAnswer struct {
	status int
	header http.Header
	body   []byte
}

func (a apiAnswer) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(a.body, &m); err != nil {
		t.Fatalf("answer is not JSON: %s", a.body)
	}
	return m
}

func call(t *testing.T, srv *httptest.Server, c apiCall) apiAnswer {
	t.Helper()
	req, err := http.NewRequest(c.method, srv.URL+c.path, bytes.NewReader(c.body))
	if err != nil {
		t.Fatal(err)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	if c.ctype == "" && c.body != nil {
		c.ctype = "application/json"
	}
	if c.ctype != "" {
		req.Header.Set("Content-Type", c.ctype)
	}
	if c.accept != "" {
		req.Header.Set("Accept", c.accept)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return apiAnswer{resp.StatusCode, resp.Header, b}
}

func readCase(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "testdata", "cases", name+".json"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// issueCodes returns the details codes of an OperationOutcome's issues.
func issueCodes(t *testing.T, body []byte) []string {
	t.Helper()
	var oo struct {
		ResourceType string
		Issue        []struct {
			Code    string
			Details struct{ Coding []struct{ Code string } }
		}
	}
	if err := json.Unmarshal(body, &oo); err != nil || oo.ResourceType != "OperationOutcome" {
		t.Fatalf("not an OperationOutcome: %s", body)
	}
	var out []string
	for _, is := range oo.Issue {
		for _, c := range is.Details.Coding {
			out = append(out, c.Code)
		}
		if len(is.Details.Coding) == 0 {
			out = append(out, is.Code)
		}
	}
	return out
}

const (
	liverpool = "demo-liverpool-submitter"
	uwe       = "demo-uwe-submitter"
	auditor   = "demo-uwe-auditor"
	receiver  = "demo-sandbox-receiver"
)

func TestReferralLifecycle(t *testing.T) {
	for _, driver := range drivers {
		t.Run(driver, func(t *testing.T) { testReferralLifecycle(t, apiServerOn(t, driver)) })
	}
}

func testReferralLifecycle(t *testing.T, srv *httptest.Server) {
	body := readCase(t, "allow-liverpool-u-cope")

	first := call(t, srv, apiCall{method: "POST", path: "/v1/referrals", token: liverpool, body: body})
	if first.status != http.StatusAccepted {
		t.Fatalf("submit: status %d: %s", first.status, first.body)
	}
	ans := first.json(t)
	id, _ := ans["id"].(string)
	if id == "" || first.header.Get("Location") != "/v1/referrals/"+id || first.header.Get("X-Decision-Id") == "" {
		t.Fatalf("submit answer %s, Location %q", first.body, first.header.Get("Location"))
	}
	if ans["status"] != "queued" || ans["decision"].(map[string]any)["allow"] != true {
		t.Fatalf("submit answer %s", first.body)
	}

	t.Run("the same record again is the same referral", func(t *testing.T) {
		again := call(t, srv, apiCall{method: "POST", path: "/v1/referrals", token: liverpool, body: body})
		if again.status != http.StatusOK || again.json(t)["id"] != id {
			t.Fatalf("status %d: %s", again.status, again.body)
		}
	})

	t.Run("another institution cannot read it", func(t *testing.T) {
		other := call(t, srv, apiCall{method: "GET", path: "/v1/referrals/" + id, token: uwe})
		if other.status != http.StatusNotFound {
			t.Fatalf("status %d: %s", other.status, other.body)
		}
	})

	t.Run("an auditor cannot submit or read referrals", func(t *testing.T) {
		if a := call(t, srv, apiCall{method: "POST", path: "/v1/referrals", token: auditor, body: body}); a.status != http.StatusForbidden {
			t.Fatalf("submit: status %d", a.status)
		}
		if a := call(t, srv, apiCall{method: "GET", path: "/v1/referrals/" + id, token: auditor}); a.status != http.StatusForbidden {
			t.Fatalf("read: status %d", a.status)
		}
	})

	t.Run("a receiver cannot submit", func(t *testing.T) {
		if a := call(t, srv, apiCall{method: "POST", path: "/v1/referrals", token: receiver, body: body}); a.status != http.StatusForbidden {
			t.Fatalf("status %d", a.status)
		}
	})

	var v2 string
	t.Run("changed content is a new version", func(t *testing.T) {
		changed := bytes.Replace(body, []byte("most recently last weekend"), []byte("most recently on Thursday"), 1)
		if bytes.Equal(changed, body) {
			t.Fatal("fixture text not found")
		}
		a := call(t, srv, apiCall{method: "POST", path: "/v1/referrals", token: liverpool, body: changed})
		if a.status != http.StatusAccepted {
			t.Fatalf("status %d: %s", a.status, a.body)
		}
		v2, _ = a.json(t)["id"].(string)
		got := call(t, srv, apiCall{method: "GET", path: "/v1/referrals/" + v2, token: liverpool}).json(t)
		if got["version"] != float64(2) || got["previousId"] != id {
			t.Fatalf("version 2 is %v", got)
		}
	})

	t.Run("a response to a message the gateway did not deliver is refused", func(t *testing.T) {
		msg := stepMessage(t, "resp-1", "6f1c3a52-2d0e-4b7a-9c44-8a1e0f3b7d22", "ok", "active", "2026-03-02T10:00:00Z")
		a := call(t, srv, apiCall{method: "POST", path: "/fhir/$process-message", token: receiver, ctype: "application/fhir+json", body: msg})
		if a.status != http.StatusNotFound {
			t.Fatalf("status %d: %s", a.status, a.body)
		}
		got := call(t, srv, apiCall{method: "GET", path: "/v1/referrals/" + v2, token: liverpool}).json(t)
		if got["status"] != "queued" {
			t.Fatalf("status %v", got["status"])
		}
	})

	t.Run("a submitter cannot post a receiver's response", func(t *testing.T) {
		msg := stepMessage(t, "resp-1", "6f1c3a52-2d0e-4b7a-9c44-8a1e0f3b7d22", "ok", "active", "2026-03-02T10:00:00Z")
		if a := call(t, srv, apiCall{method: "POST", path: "/fhir/$process-message", token: liverpool, ctype: "application/fhir+json", body: msg}); a.status != http.StatusForbidden {
			t.Fatalf("status %d", a.status)
		}
	})

	t.Run("cancel", func(t *testing.T) {
		if a := call(t, srv, apiCall{method: "POST", path: "/v1/referrals/" + v2 + "/$cancel", token: uwe}); a.status != http.StatusNotFound {
			t.Fatalf("another institution's cancel: status %d", a.status)
		}
		a := call(t, srv, apiCall{method: "POST", path: "/v1/referrals/" + v2 + "/$cancel", token: liverpool})
		if a.status != http.StatusOK || a.json(t)["status"] != "cancelled" {
			t.Fatalf("status %d: %s", a.status, a.body)
		}
	})
}

func TestSubmitRefusals(t *testing.T) {
	for _, driver := range drivers {
		t.Run(driver, func(t *testing.T) { testSubmitRefusals(t, apiServerOn(t, driver)) })
	}
}

func testSubmitRefusals(t *testing.T, srv *httptest.Server) {
	tests := []struct {
		name, token, ctype string
		body               []byte
		status             int
		codes              []string // issue details codes (rule ids) or issue codes
	}{
		{"denied by policy", liverpool, "", readCase(t, "deny-consent-expired"), 403, []string{"C-02"}},
		{"another institution's record", uwe, "", readCase(t, "allow-liverpool-u-cope"), 403, []string{"security"}},
		{"unauthenticated", "", "", readCase(t, "allow-liverpool-u-cope"), 401, []string{"login"}},
		{"unknown token", "nope", "", readCase(t, "allow-liverpool-u-cope"), 401, []string{"login"}},
		{"invalid", liverpool, "", []byte(`{"schemaVersion":"1"}`), 422, nil},
		{"malformed", liverpool, "", []byte(`{"schemaVersion":`), 400, []string{"structure"}},
		{"wrong media type", liverpool, "text/plain", readCase(t, "allow-liverpool-u-cope"), 415, []string{"not-supported"}},
		{"too large", liverpool, "", append([]byte(`{"caseId":"`), bytes.Repeat([]byte("x"), 300<<10)...), 413, []string{"too-long"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := call(t, srv, apiCall{method: "POST", path: "/v1/referrals", token: tt.token, ctype: tt.ctype, body: tt.body})
			if a.status != tt.status {
				t.Fatalf("status %d, want %d: %s", a.status, tt.status, a.body)
			}
			codes := issueCodes(t, a.body)
			for _, want := range tt.codes {
				if !strings.Contains(strings.Join(codes, " "), want) {
					t.Errorf("issues %v lack %s", codes, want)
				}
			}
			if tt.status == 403 && tt.codes[0] != "security" && a.header.Get("X-Decision-Id") == "" {
				t.Error("a deny without X-Decision-Id")
			}
		})
	}
}
