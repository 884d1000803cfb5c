package http

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/student-mh-referrals/gateway/gateway"
)

// fakeDecider allows everything, or panics, or fails, as a test needs.
type fakeDecider struct {
	panic bool
	err   error
}

func (f fakeDecider) Decide(ctx context.Context, in gateway.DecisionInput) (*gateway.Decision, error) {
	if f.panic {
		panic("boom")
	}
	if f.err != nil {
		return nil, f.err
	}
	return &gateway.Decision{Allow: true, Route: "consent", Recipient: gateway.Recipient{Service: in.Service.ID}}, nil
}

func (fakeDecider) Revision() string { return "sha256:test" }

type fakeMapper struct{}

func (fakeMapper) Message(ctx context.Context, in gateway.MessageInput) ([]byte, error) {
	return []byte(`{"resourceType":"Bundle","type":"message"}`), nil
}

func newTestServer(t *testing.T, d gateway.Decider) http.Handler {
	t.Helper()
	reg, err := gateway.NewRegistry([]gateway.Service{{ID: "u-cope", Name: "U-COPE", Organization: gateway.Organization{Name: "Mersey Care", ODSCode: "RW4"}}})
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{
		Evaluator:    &gateway.Evaluator{Registry: reg, Decider: d, Mapper: fakeMapper{}},
		MaxBodyBytes: 4096,
		Schema:       []byte(`{"$id":"x"}`),
		Rules:        func() []gateway.PolicyRule { return []gateway.PolicyRule{{ID: "C-01"}} },
		Now:          func() time.Time { return time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC) },
	}
	return s.Handler()
}

func exampleCase(t *testing.T) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "testdata", "cases", "allow-liverpool-u-cope.json"))
	if err != nil {
		t.Skip("testdata/cases not present yet: ", err)
	}
	return b
}

type outcome struct {
	ResourceType string `json:"resourceType"`
	Issue        []struct {
		Severity    string   `json:"severity"`
		Code        string   `json:"code"`
		Diagnostics string   `json:"diagnostics"`
		Expression  []string `json:"expression"`
	} `json:"issue"`
}

func TestErrors(t *testing.T) {
	h := newTestServer(t, fakeDecider{})
	big := append([]byte(`{"caseId":"`), bytes.Repeat([]byte("x"), 5000)...)
	tests := []struct {
		name, method, path, ctype string
		body                      []byte
		status                    int
		code                      string
		want                      string
	}{
		{"wrong media type", "POST", "/v1/referrals/$evaluate", "text/plain", []byte(`{}`), 415, "not-supported", "application/json"},
		{"no media type", "POST", "/v1/referrals/$evaluate", "", []byte(`{}`), 415, "not-supported", "application/json"},
		{"fhir media type is not a case record", "POST", "/v1/referrals/$evaluate", "application/fhir+json", []byte(`{}`), 415, "not-supported", "application/json"},
		{"too large", "POST", "/v1/referrals/$evaluate", "application/json", big, 413, "too-long", "4 KiB"},
		{"bad at", "POST", "/v1/referrals/$evaluate?at=tomorrow", "application/json", []byte(`{}`), 400, "value", "RFC 3339"},
		{"unknown path", "GET", "/v1/nothing-here", "", nil, 404, "not-found", "no such endpoint"},
		{"wrong method", "GET", "/v1/referrals/$evaluate", "", nil, 405, "not-supported", "not allowed"},
		{"OPTIONS", "OPTIONS", "/v1/referrals/$evaluate", "", nil, 405, "not-supported", "not allowed"},
		{"double slash is not cleaned into a redirect", "POST", "//v1/referrals/$evaluate", "application/json", []byte(`{}`), 404, "not-found", "no such endpoint"},
		{"dot segment is not cleaned into a redirect", "POST", "/v1/./referrals/$evaluate", "application/json", []byte(`{}`), 404, "not-found", "no such endpoint"},
		{"encoded slash stays in its segment", "POST", "/v1/referrals%2F$evaluate", "application/json", []byte(`{}`), 404, "not-found", "no such endpoint"},
		{"charset other than UTF-8", "POST", "/v1/referrals/$evaluate", "application/json; charset=utf-16", []byte(`{}`), 415, "not-supported", "UTF-8"},
		{"charset UTF-8 is fine", "POST", "/v1/referrals/$evaluate?at=x", "application/json; charset=UTF-8", []byte(`{}`), 400, "value", "RFC 3339"},
		{"at twice", "POST", "/v1/referrals/$evaluate?at=2026-11-23T12:00:00Z&at=2020-01-01T00:00:00Z", "application/json", []byte(`{}`), 400, "value", "more than once"},
		{"at empty", "POST", "/v1/referrals/$evaluate?at=", "application/json", []byte(`{}`), 400, "value", "RFC 3339"},
		{"at without a zone", "POST", "/v1/referrals/$evaluate?at=2026-11-23T12:00:00", "application/json", []byte(`{}`), 400, "value", "RFC 3339"},
		{"at in year 0", "POST", "/v1/referrals/$evaluate?at=0000-01-01T00:00:00Z", "application/json", []byte(`{}`), 400, "value", "between the years"},
		{"at whose UTC falls before year 1000", "POST", "/v1/referrals/$evaluate?at=1000-01-01T00:00:00%2B01:00", "application/json", []byte(`{}`), 400, "value", "between the years"},
		{"query with a semicolon", "POST", "/v1/referrals/$evaluate?at=2026-11-23T12:00:00Z;x=1", "application/json", []byte(`{}`), 400, "value", "malformed"},
		{"query with a bad escape", "POST", "/v1/referrals/$evaluate?at=%zz", "application/json", []byte(`{}`), 400, "value", "malformed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest(tt.method, tt.path, bytes.NewReader(tt.body))
			if tt.ctype != "" {
				req.Header.Set("Content-Type", tt.ctype)
			}
			rr := httptest.NewRecorder()
			h.ServeHTTP(rr, req)
			if rr.Code != tt.status {
				t.Fatalf("status %d, want %d: %s", rr.Code, tt.status, rr.Body)
			}
			if ct := rr.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/fhir+json") {
				t.Errorf("Content-Type %q", ct)
			}
			var oo outcome
			if err := json.Unmarshal(rr.Body.Bytes(), &oo); err != nil || oo.ResourceType != "OperationOutcome" || len(oo.Issue) == 0 {
				t.Fatalf("not an OperationOutcome: %s", rr.Body)
			}
			if oo.Issue[0].Code != tt.code || !strings.Contains(oo.Issue[0].Diagnostics, tt.want) {
				t.Errorf("issue %+v, want code %s and text with %q", oo.Issue[0], tt.code, tt.want)
			}
		})
	}
}

// Bodies are refused on their headers when they cannot be read as sent or
// would exceed the limit: before any of the body is read.
func TestBodyHeaders(t *testing.T) {
	h := newTestServer(t, fakeDecider{})
	tests := []struct {
		name   string
		header map[string][]string
		length int64
		status int
		want   string
	}{
		{"gzip", map[string][]string{"Content-Encoding": {"gzip"}}, -1, 415, "Content-Encoding"},
		{"two encodings", map[string][]string{"Content-Encoding": {"identity", "identity"}}, -1, 415, "Content-Encoding"},
		{"identity is fine", map[string][]string{"Content-Encoding": {"identity"}}, -1, 422, ""},
		{"two Content-Types", map[string][]string{"Content-Type": {"application/json", "text/plain"}}, -1, 415, "application/json"},
		{"declared length over the limit", nil, 1 << 30, 413, "4 KiB"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest("POST", "/v1/referrals/$evaluate", strings.NewReader(`{}`))
			req.Header.Set("Content-Type", "application/json")
			for k, v := range tt.header {
				req.Header[k] = v
			}
			if tt.length >= 0 {
				req.ContentLength = tt.length
			}
			rr := httptest.NewRecorder()
			h.ServeHTTP(rr, req)
			if rr.Code != tt.status || !strings.Contains(rr.Body.String(), tt.want) {
				t.Fatalf("status %d, want %d with %q: %s", rr.Code, tt.status, tt.want, rr.Body)
			}
		})
	}
}

// A 405 says which methods the path takes.
func TestMethodNotAllowedAllow(t *testing.T) {
	h := newTestServer(t, fakeDecider{})
	rr := httptest.NewRecorder()
	h.ServeHTTP(rr, httptest.NewRequest("DELETE", "/v1/referrals/$evaluate", nil))
	if rr.Code != 405 || rr.Header().Get("Allow") != "POST" {
		t.Fatalf("status %d, Allow %q", rr.Code, rr.Header().Get("Allow"))
	}
}

// An internal failure shows the client only a reference, never the cause.
func TestInternalErrorIsNotEchoed(t *testing.T) {
	body := exampleCase(t)
	for name, d := range map[string]fakeDecider{
		"error": {err: errors.New("database password is hunter2")},
		"panic": {panic: true},
	} {
		t.Run(name, func(t *testing.T) {
			h := newTestServer(t, d)
			req := httptest.NewRequest("POST", "/v1/referrals/$evaluate", bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("X-Request-Id", "req-123")
			rr := httptest.NewRecorder()
			h.ServeHTTP(rr, req)
			if rr.Code != 500 {
				t.Fatalf("status %d, want 500", rr.Code)
			}
			if strings.Contains(rr.Body.String(), "hunter2") || strings.Contains(rr.Body.String(), "boom") {
				t.Fatalf("the cause leaked: %s", rr.Body)
			}
			if !strings.Contains(rr.Body.String(), "reference req-123") {
				t.Errorf("no reference to the request id: %s", rr.Body)
			}
		})
	}
}

func TestRequestID(t *testing.T) {
	h := newTestServer(t, fakeDecider{})
	tests := []struct{ name, sent, want string }{
		{"kept when sane", "abc-123", "abc-123"},
		{"replaced when absent", "", ""},
		{"replaced when hostile", "x\r\nSet-Cookie: a=b", ""},
		{"replaced when too long", strings.Repeat("a", 65), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest("GET", "/healthz", nil)
			if tt.sent != "" {
				req.Header["X-Request-Id"] = []string{tt.sent}
			}
			rr := httptest.NewRecorder()
			h.ServeHTTP(rr, req)
			got := rr.Header().Get("X-Request-Id")
			if tt.want != "" && got != tt.want {
				t.Errorf("X-Request-Id %q, want %q", got, tt.want)
			}
			if tt.want == "" && (got == "" || got == tt.sent || len(got) != 36) {
				t.Errorf("X-Request-Id %q, want a fresh UUID", got)
			}
		})
	}
}

func TestSchemaAndRules(t *testing.T) {
	h := newTestServer(t, fakeDecider{})
	for path, want := range map[string]string{
		"/v1/schema/case-record.json": `{"$id":"x"}`,
		"/v1/policy/rules":            `"id": "C-01"`,
	} {
		t.Run(path, func(t *testing.T) {
			rr := httptest.NewRecorder()
			h.ServeHTTP(rr, httptest.NewRequest("GET", path, nil))
			body, _ := io.ReadAll(rr.Body)
			if rr.Code != 200 || !strings.Contains(string(body), want) {
				t.Fatalf("status %d body %s", rr.Code, body)
			}
		})
	}
}

// The access log and the metrics name the matched route template, never the
// raw path (which could hold ids) and never an unbounded set of values.
func TestRouteIsRecorded(t *testing.T) {
	var seen []string
	s := &Server{Observer: recordingObserver{&seen}, Schema: []byte("{}")}
	h := s.Handler()
	for _, p := range []string{"/v1/schema/case-record.json", "/no/such/path"} {
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", p, nil))
	}
	if strings.Join(seen, ",") != "/v1/schema/case-record.json,unmatched" {
		t.Fatalf("routes observed %v", seen)
	}
}

type recordingObserver struct{ routes *[]string }

func (o recordingObserver) ObserveRequest(route, _ string, _ int, _ time.Duration) {
	*o.routes = append(*o.routes, route)
}
func (recordingObserver) ObserveEvaluation(*gateway.Evaluation, bool) {}
