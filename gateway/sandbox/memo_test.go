package sandbox

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
)

// TestMemo: a value is decoded once while remembered, and the memo never
// holds more than memoSize values.
func TestMemo(t *testing.T) {
	var m memo[string]
	calls := 0
	decode := func(h string) string { calls++; return "<" + h + ">" }
	for range 3 {
		if got := m.get("a", decode); got != "<a>" {
			t.Fatalf("get = %q", got)
		}
	}
	if calls != 1 {
		t.Fatalf("decoded %d times, want once", calls)
	}
	for i := range 3 * memoSize {
		if got, want := m.get(fmt.Sprint(i), decode), fmt.Sprintf("<%d>", i); got != want {
			t.Fatalf("get = %q, want %q", got, want)
		}
		if len(m.m) > memoSize {
			t.Fatalf("the memo holds %d values", len(m.m))
		}
	}
}

// TestHeadersRemembered: a header value gets the same answer every time it
// comes, good or bad, as it did when each post decoded it.
func TestHeadersRemembered(t *testing.T) {
	headers := []struct {
		name, value string
		status      int
	}{
		{"NHSD-Target-Identifier", b64(fixtureTarget), 200},
		{"NHSD-Target-Identifier", b64(`{"system":"https://fhir.nhs.uk/Id/dos-service-id","value":"2000010001"}`), 400},
		{"NHSD-Target-Identifier", "not base64!", 400},
		{"NHSD-Target-Identifier", b64(`{"system":"s"}`), 400},
		{"NHSD-End-User-Organisation", b64(`{"resourceType":"Organization","name":"x"}`), 200},
		{"NHSD-End-User-Organisation", b64(`{"resourceType":"Patient","name":"x"}`), 400},
		{"NHSD-End-User-Organisation", b64(`{"resourceType":"Organization"}`), 400},
		{"NHSD-Requesting-Software", b64(`{"resourceType":"Device","deviceName":[{"name":"x"}]}`), 200},
		{"NHSD-Requesting-Software", b64(`{"resourceType":"Device"}`), 400},
		{"NHSD-Requesting-Software", b64(`{"resourceType":"Organization","name":"x"}`), 400},
	}
	rc := New(nil)
	body := fixture(t)
	n := 0
	for round := range 3 {
		for _, h := range headers {
			n++
			req := httptest.NewRequest(http.MethodPost, "/fhir/$process-message", bytes.NewReader(body))
			setGood(req.Header, fmt.Sprintf("00000000-0000-4000-8000-%012x", n))
			req.Header.Set(h.name, h.value)
			rr := httptest.NewRecorder()
			rc.Handler().ServeHTTP(rr, req)
			if rr.Code != h.status {
				t.Errorf("round %d: %s %s: status %d, want %d", round, h.name, h.value, rr.Code, h.status)
			}
		}
	}
}
