package sandbox

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"
)

// post sends the fixture with request id reqID to the server, to the
// fixture's target or to another value of the same system.
func post(t *testing.T, c *http.Client, base, reqID, targetValue string, body []byte) (*http.Response, []byte, error) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, base+"/fhir/$process-message", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	setGood(req.Header, reqID)
	if targetValue != "" {
		req.Header.Set("NHSD-Target-Identifier", b64(`{"system":"https://fhir.nhs.uk/Id/dos-service-id","value":"`+targetValue+`"}`))
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b, nil
}

// retarget points the fixture's destination at another service value.
func retarget(t *testing.T, body []byte, value string) []byte {
	return editJSON(t, body, func(b map[string]any) {
		resource(b, 0)["destination"].([]any)[0].(map[string]any)["endpoint"] = "https://fhir.nhs.uk/Id/dos-service-id|" + value
	})
}

func TestFaults(t *testing.T) {
	// A post is one step of a scenario: which request id (by number) goes
	// to which target, and what comes back: a status, or "reset"/"timeout".
	type step struct {
		id     int
		target string // "" is the fixture's target
		want   string // "200", "409", "500 Retry-After=3", "reset", "timeout"
	}
	// The sender waits 5 s for an answer, except where it is meant to give
	// up first: then 200 ms, against a receiver scripted to take 600 ms.
	const slow = 600 * time.Millisecond
	tests := []struct {
		name   string
		faults []Fault
		steps  []step
		// received is how many distinct messages the receiver kept.
		received int
	}{
		{"status 500 three times", []Fault{{Mode: ModeStatus, Status: 500, Count: 3}},
			[]step{{1, "", "500"}, {1, "", "500"}, {1, "", "500"}, {1, "", "200"}, {1, "", "409"}}, 1},
		{"429 with Retry-After", []Fault{{Mode: ModeStatus, Status: 429, RetryAfter: "3", Count: 1}},
			[]step{{1, "", "429 Retry-After=3"}, {1, "", "200"}}, 1},
		{"503 with an HTTP date", []Fault{{Mode: ModeStatus, Status: 503, RetryAfter: "Wed, 21 Oct 2026 07:28:00 GMT", Count: 1}},
			[]step{{1, "", "503 Retry-After=Wed, 21 Oct 2026 07:28:00 GMT"}, {1, "", "200"}}, 1},
		{"status after accepting", []Fault{{Mode: ModeStatus, Status: 500, After: true, Count: 1}},
			[]step{{1, "", "500"}, {1, "", "409"}}, 1},
		{"reset before accepting", []Fault{{Mode: ModeReset, Count: 1}},
			[]step{{1, "", "reset"}, {1, "", "200"}}, 1},
		{"reset after accepting", []Fault{{Mode: ModeReset, After: true, Count: 1}},
			[]step{{1, "", "reset"}, {1, "", "409"}}, 1},
		{"slow beyond the sender's patience", []Fault{{Mode: ModeSlow, Delay: slow.String(), Count: 1}},
			[]step{{1, "", "timeout"}, {1, "", "409"}}, 1},
		{"slow within it", []Fault{{Mode: ModeSlow, Delay: "20ms", Count: 1}},
			[]step{{1, "", "200"}}, 1},
		{"scoped to another target", []Fault{{Mode: ModeStatus, Status: 500, Target: "2000010001"}},
			[]step{{1, "", "200"}, {2, "2000010001", "500"}, {2, "2000010001", "500"}}, 1},
		{"scoped by system|value", []Fault{{Mode: ModeStatus, Status: 502, Target: "https://fhir.nhs.uk/Id/dos-service-id|2000010003", Count: 1}},
			[]step{{1, "2000010001", "200"}, {2, "", "502"}, {2, "", "200"}}, 2},
		{"faults apply in order", []Fault{{Mode: ModeStatus, Status: 503, Count: 1}, {Mode: ModeStatus, Status: 400, Count: 1}},
			[]step{{1, "", "503"}, {1, "", "400"}, {1, "", "200"}}, 1},
		{"until cleared", []Fault{{Mode: ModeStatus, Status: 500}},
			[]step{{1, "", "500"}, {1, "", "500"}, {1, "", "500"}}, 0},
		{"reject still accepts", []Fault{{Mode: ModeReject, Reason: "outside our catchment", Count: 1}},
			[]step{{1, "", "200"}, {2, "", "200"}}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rc := NewReceiver(Options{})
			defer rc.Close()
			srv := httptest.NewServer(rc.Handler())
			defer srv.Close()
			for _, f := range tt.faults {
				if err := rc.AddFault(f); err != nil {
					t.Fatal(err)
				}
			}
			for i, s := range tt.steps {
				client := &http.Client{Timeout: 5 * time.Second}
				if s.want == "timeout" {
					client.Timeout = slow / 3
				}
				reqID := fmt.Sprintf("00000000-0000-4000-8000-%012d", s.id)
				body := fixture(t)
				if s.target != "" {
					body = retarget(t, body, s.target)
				}
				resp, b, err := post(t, client, srv.URL, reqID, s.target, body)
				got := ""
				var ne net.Error
				switch {
				case err != nil && errors.As(err, &ne) && ne.Timeout():
					got = "timeout"
					// Wait for the slow receiver to finish with it.
					for deadline := time.Now().Add(5 * time.Second); len(rc.Received()) == 0 && time.Now().Before(deadline); {
						time.Sleep(10 * time.Millisecond)
					}
				case err != nil && (errors.Is(err, syscall.ECONNRESET) || errors.Is(err, io.EOF) || strings.Contains(err.Error(), "connection reset")):
					got = "reset"
				case err != nil:
					t.Fatalf("step %d: %v", i, err)
				default:
					got = fmt.Sprint(resp.StatusCode)
					if ra := resp.Header.Get("Retry-After"); ra != "" {
						got += " Retry-After=" + ra
					}
					if resp.StatusCode >= 400 {
						_, code := outcomeCode(t, b)
						if code == "" {
							t.Errorf("step %d: a %d without a BaRS error code", i, resp.StatusCode)
						}
					}
				}
				if got != s.want {
					t.Fatalf("step %d: got %s, want %s", i, got, s.want)
				}
			}
			if n := len(rc.Received()); n != tt.received {
				t.Errorf("received %d messages, want %d", n, tt.received)
			}
		})
	}
}

func TestStatusFaultCodes(t *testing.T) {
	tests := []struct {
		status int
		code   string
		issue  string
	}{
		{400, "REC_BAD_REQUEST", "invalid"},
		{401, "REC_UNAUTHORIZED", "forbidden"},
		{403, "REC_FORBIDDEN", "forbidden"},
		{404, "REC_NOT_FOUND", "not-found"},
		{408, "REC_TIMEOUT", "timeout"},
		{409, "REC_CONFLICT", "conflict"},
		{422, "REC_UNPROCESSABLE_ENTITY", "business-rule"},
		{429, "REC_TOO_MANY_REQUESTS", "throttled"},
		{500, "REC_SERVER_ERROR", "transient"},
		{501, "REC_NOT_IMPLEMENTED", "not-supported"},
		{503, "REC_SERVICE_UNAVAILABLE", "transient"},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.status), func(t *testing.T) {
			rc := NewReceiver(Options{})
			if err := rc.AddFault(Fault{Mode: ModeStatus, Status: tt.status}); err != nil {
				t.Fatal(err)
			}
			req := httptest.NewRequest(http.MethodPost, "/fhir/$process-message", bytes.NewReader(fixture(t)))
			setGood(req.Header, "00000000-0000-4000-8000-000000000001")
			rr := httptest.NewRecorder()
			rc.Handler().ServeHTTP(rr, req)
			if rr.Code != tt.status {
				t.Fatalf("status %d", rr.Code)
			}
			issue, code := outcomeCode(t, rr.Body.Bytes())
			if code != tt.code || issue != tt.issue {
				t.Errorf("got %s (%s), want %s (%s)", code, issue, tt.code, tt.issue)
			}
		})
	}
}

func TestFaultsEndpoint(t *testing.T) {
	rc := NewReceiver(Options{})
	h := rc.Handler()
	do := func(method, body string) (int, string) {
		req := httptest.NewRequest(method, "/sandbox/faults", strings.NewReader(body))
		rr := httptest.NewRecorder()
		h.ServeHTTP(rr, req)
		return rr.Code, rr.Body.String()
	}
	tests := []struct {
		name, method, body string
		status             int
		faults             int // faults in the script afterwards
	}{
		{"one fault", "POST", `{"mode":"status","status":500,"count":3}`, 201, 1},
		{"a list", "POST", `[{"mode":"reset","count":1},{"mode":"slow","delay":"2s","target":"2000010001"}]`, 201, 3},
		{"reject", "POST", `{"mode":"reject","reason":"outside our catchment"}`, 201, 4},
		{"unknown mode", "POST", `{"mode":"explode"}`, 400, 4},
		{"unknown field", "POST", `{"mode":"reset","colour":"red"}`, 400, 4},
		{"status out of range", "POST", `{"mode":"status","status":200}`, 400, 4},
		{"slow without delay", "POST", `{"mode":"slow"}`, 400, 4},
		{"bad delay", "POST", `{"mode":"slow","delay":"soon"}`, 400, 4},
		{"retryAfter on a reset", "POST", `{"mode":"reset","retryAfter":"2"}`, 400, 4},
		{"after on a slow", "POST", `{"mode":"slow","delay":"1s","after":true}`, 400, 4},
		{"negative count", "POST", `{"mode":"reset","count":-1}`, 400, 4},
		{"a bad fault spoils the list", "POST", `[{"mode":"reset"},{"mode":"nope"}]`, 400, 4},
		{"not json", "POST", `{`, 400, 4},
		{"list", "GET", "", 200, 4},
		{"clear", "DELETE", "", 204, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := do(tt.method, tt.body)
			if status != tt.status {
				t.Fatalf("status %d, want %d: %s", status, tt.status, body)
			}
			if n := len(rc.Faults()); n != tt.faults {
				t.Errorf("%d faults, want %d", n, tt.faults)
			}
		})
	}
	// The listing round-trips: delay as a duration, used counts.
	if err := rc.AddFault(Fault{Mode: ModeSlow, Delay: "1.5s", Count: 2}); err != nil {
		t.Fatal(err)
	}
	_, body := do("GET", "")
	var got struct {
		Faults []map[string]any `json:"faults"`
	}
	if err := json.Unmarshal([]byte(body), &got); err != nil || len(got.Faults) != 1 ||
		got.Faults[0]["delay"] != "1.5s" || got.Faults[0]["used"] != float64(0) || got.Faults[0]["count"] != float64(2) {
		t.Errorf("listing %s", body)
	}
}
