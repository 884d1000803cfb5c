package sandbox

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The request fixture is a message the gateway built (a copy of a mapping
// golden file, synthetic data), addressed to DoS service 2000010003.
const fixtureTarget = `{"system":"https://fhir.nhs.uk/Id/dos-service-id","value":"2000010003"}`

func fixture(t testing.TB) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "request.json"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// editJSON decodes doc, lets edit change it and encodes it again.
func editJSON(t testing.TB, doc []byte, edit func(b map[string]any)) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(doc, &m); err != nil {
		t.Fatal(err)
	}
	edit(m)
	out, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// resource returns entry i's resource of a decoded bundle.
func resource(b map[string]any, i int) map[string]any {
	return b["entry"].([]any)[i].(map[string]any)["resource"].(map[string]any)
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// setGood sets the headers of a valid post with the given request id.
func setGood(h http.Header, reqID string) {
	h.Set("Content-Type", "application/fhir+json")
	h.Set("Accept", "application/fhir+json; version=1.4.0")
	h.Set("X-Request-Id", reqID)
	h.Set("X-Correlation-Id", "2b9f3c4e-0b1a-4c1e-9a7e-2f1d3c4b5a60")
	h.Set("NHSD-Target-Identifier", b64(fixtureTarget))
	h.Set("NHSD-End-User-Organisation", b64(`{"resourceType":"Organization","identifier":[{"system":"https://student-mh-referrals.github.io/gateway/fhir/Id/ukprn","value":"10007798"}],"name":"The University of Manchester"}`))
	h.Set("NHSD-Requesting-Software", b64(`{"resourceType":"Device","deviceName":[{"name":"student-mh-referral-gateway","type":"manufacturer-name"}],"version":[{"value":"1.0.0"}]}`))
}

// outcomeCode returns the status of an OperationOutcome answer and its
// BaRS error code ("" for none), failing when the body is not one.
func outcomeCode(t *testing.T, body []byte) (issueCode, barsCode string) {
	t.Helper()
	var oo struct {
		ResourceType string `json:"resourceType"`
		Issue        []struct {
			Code    string `json:"code"`
			Details struct {
				Coding []struct{ System, Code string }
			}
		}
	}
	if err := json.Unmarshal(body, &oo); err != nil || oo.ResourceType != "OperationOutcome" || len(oo.Issue) != 1 {
		t.Fatalf("body is not an OperationOutcome with one issue: %s", body)
	}
	is := oo.Issue[0]
	if len(is.Details.Coding) == 0 {
		return is.Code, ""
	}
	if len(is.Details.Coding) != 1 || is.Details.Coding[0].System != ErrorCodeSystem {
		t.Fatalf("details %+v: want one BaRS error code", is.Details.Coding)
	}
	return is.Code, is.Details.Coding[0].Code
}

func TestProcessMessage(t *testing.T) {
	const reqID = "1b9f3c4e-0b1a-4c1e-9a7e-2f1d3c4b5a60"
	good := fixture(t)
	body := func(edit func(b map[string]any)) []byte { return editJSON(t, good, edit) }
	tests := []struct {
		name     string
		reqID    string // "" is a fresh one
		header   func(h http.Header)
		body     []byte
		status   int
		barsCode string
	}{
		{"accepted", reqID, nil, good, 200, ""},
		{"duplicate request id", reqID, nil, good, 409, "REC_CONFLICT"},
		{"wrong media type", "", func(h http.Header) { h.Set("Content-Type", "application/json") }, good, 415, "REC_BAD_REQUEST"},
		{"accept excludes FHIR JSON", "", func(h http.Header) { h.Set("Accept", "application/xml") }, good, 406, "REC_NOT_ACCEPTABLE"},
		{"accept wildcard", "", func(h http.Header) { h.Set("Accept", "*/*") }, good, 200, ""},
		{"missing request id", "", func(h http.Header) { h.Del("X-Request-Id") }, good, 400, "REC_BAD_REQUEST"},
		{"request id not a uuid", "", func(h http.Header) { h.Set("X-Request-Id", "abc") }, good, 400, "REC_BAD_REQUEST"},
		{"missing correlation id", "", func(h http.Header) { h.Del("X-Correlation-Id") }, good, 400, "REC_BAD_REQUEST"},
		{"bad target", "", func(h http.Header) { h.Set("NHSD-Target-Identifier", "not base64!") }, good, 400, "REC_BAD_REQUEST"},
		{"target without value", "", func(h http.Header) { h.Set("NHSD-Target-Identifier", b64(`{"system":"s"}`)) }, good, 400, "REC_BAD_REQUEST"},
		{"missing end-user organisation", "", func(h http.Header) { h.Del("NHSD-End-User-Organisation") }, good, 400, "REC_BAD_REQUEST"},
		{"end-user organisation not an Organization", "", func(h http.Header) { h.Set("NHSD-End-User-Organisation", b64(`{"resourceType":"Patient","name":"x"}`)) }, good, 400, "REC_BAD_REQUEST"},
		{"missing requesting software", "", func(h http.Header) { h.Del("NHSD-Requesting-Software") }, good, 400, "REC_BAD_REQUEST"},
		{"requesting software without a name", "", func(h http.Header) { h.Set("NHSD-Requesting-Software", b64(`{"resourceType":"Device"}`)) }, good, 400, "REC_BAD_REQUEST"},
		{"not json", "", nil, []byte(`{"resourceType":`), 400, "REC_BAD_REQUEST"},
		{"not a message", "", nil, []byte(`{"resourceType":"Bundle","type":"collection"}`), 400, "REC_BAD_REQUEST"},
		{"first entry not a MessageHeader", "", nil, body(func(b map[string]any) {
			e := b["entry"].([]any)
			e[0], e[1] = e[1], e[0]
		}), 400, "REC_BAD_REQUEST"},
		{"no bundle id", "", nil, body(func(b map[string]any) { delete(b, "id") }), 400, "REC_BAD_REQUEST"},
		{"entry without fullUrl", "", nil, body(func(b map[string]any) {
			delete(b["entry"].([]any)[3].(map[string]any), "fullUrl")
		}), 400, "REC_BAD_REQUEST"},
		{"unsupported event", "", nil, body(func(b map[string]any) {
			resource(b, 0)["eventCoding"].(map[string]any)["code"] = "booking-request"
		}), 422, "REC_UNPROCESSABLE_ENTITY"},
		{"destination is another service", "", nil, body(func(b map[string]any) {
			resource(b, 0)["destination"].([]any)[0].(map[string]any)["endpoint"] = "https://fhir.nhs.uk/Id/dos-service-id|2000010001"
		}), 400, "REC_BAD_REQUEST"},
		{"focus does not resolve", "", nil, body(func(b map[string]any) {
			resource(b, 0)["focus"] = []any{map[string]any{"reference": "urn:uuid:00000000-0000-0000-0000-000000000000"}}
		}), 400, "REC_BAD_REQUEST"},
		{"focus is not a ServiceRequest", "", nil, body(func(b map[string]any) {
			resource(b, 0)["focus"] = []any{map[string]any{"reference": b["entry"].([]any)[2].(map[string]any)["fullUrl"]}}
		}), 400, "REC_BAD_REQUEST"},
		{"service request without status", "", nil, body(func(b map[string]any) { delete(resource(b, 1), "status") }), 400, "REC_BAD_REQUEST"},
		{"cancellation", "", nil, body(func(b map[string]any) { resource(b, 1)["status"] = "revoked" }), 200, ""},
	}
	rc := NewReceiver(Options{})
	h := rc.Handler()
	fresh := 0
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := tt.reqID
			if id == "" {
				fresh++
				id = fmt.Sprintf("00000000-0000-4000-8000-%012x", fresh)
			}
			req := httptest.NewRequest(http.MethodPost, "/fhir/$process-message", bytes.NewReader(tt.body))
			setGood(req.Header, id)
			if tt.header != nil {
				tt.header(req.Header)
			}
			rr := httptest.NewRecorder()
			h.ServeHTTP(rr, req)
			if rr.Code != tt.status {
				t.Fatalf("status %d, want %d: %s", rr.Code, tt.status, rr.Body)
			}
			if got := rr.Header().Get("Content-Type"); !strings.HasPrefix(got, "application/fhir+json") {
				t.Errorf("Content-Type %q", got)
			}
			if mirrored := rr.Header().Get("X-Request-Id"); uuidPattern.MatchString(req.Header.Get("X-Request-Id")) && mirrored != req.Header.Get("X-Request-Id") {
				t.Errorf("X-Request-Id mirrored as %q", mirrored)
			}
			issue, code := outcomeCode(t, rr.Body.Bytes())
			if code != tt.barsCode {
				t.Errorf("BaRS code %q, want %q", code, tt.barsCode)
			}
			if tt.status == 409 && issue != "duplicate" {
				t.Errorf("issue code %q, want duplicate", issue)
			}
		})
	}
	got := rc.Received()
	if len(got) != 3 {
		t.Fatalf("received %d messages, want the 3 accepted: %+v", len(got), got)
	}
	first := got[0]
	if first.RequestID != reqID || first.Target != "https://fhir.nhs.uk/Id/dos-service-id|2000010003" ||
		first.Event != "servicerequest-request" || first.Reason != "new" || first.Status != "active" {
		t.Errorf("first received %+v", first)
	}
	if got[2].Status != "revoked" {
		t.Errorf("the cancellation was received as %+v", got[2])
	}
	if n := first.Posts; n != 2 {
		t.Errorf("posts of %s: %d, want 2 (the message and its duplicate)", reqID, n)
	}
}
