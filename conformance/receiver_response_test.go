package conformance

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/student-mh-referrals/gateway/sandbox"
)

// spoilResponse changes a response message (decoded) and its headers on
// its way from the sandbox to the callback address.
type spoilResponse func(msg map[string]any, h http.Header)

// header is the response's MessageHeader, decoded.
func header(msg map[string]any) map[string]any {
	return msg["entry"].([]any)[0].(map[string]any)["resource"].(map[string]any)
}

// TestResponseMessage runs the receiver checks with the response-message
// check against the sandbox, whose responses are right, and against a
// receiver whose responses are wrong in one way each.
func TestResponseMessage(t *testing.T) {
	msg, err := ExampleMessage(context.Background(), evaluator(t), builtinScenarios(t), "u-cope")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		spoil  spoilResponse
		silent bool   // the receiver never answers
		fail   string // the failing check of response-message; "" for none
	}{
		{name: "the sandbox receiver"},
		{name: "no response at all", silent: true, fail: "a response message was posted back"},
		{name: "not a message Bundle", spoil: func(m map[string]any, _ http.Header) { m["type"] = "collection" }, fail: "a Bundle of type message"},
		{name: "another event", spoil: func(m map[string]any, _ http.Header) {
			header(m)["eventCoding"] = map[string]any{"system": BaRSEventSystem, "code": "servicerequest-request"}
		}, fail: "MessageHeader.eventCoding"},
		{name: "an event outside BaRS", spoil: func(m map[string]any, _ http.Header) {
			header(m)["eventCoding"] = map[string]any{"system": "http://example.org/events", "code": EventResponse}
		}, fail: "MessageHeader.eventCoding"},
		{name: "a response to another message", spoil: func(m map[string]any, _ http.Header) {
			header(m)["response"].(map[string]any)["identifier"] = "0c4a1b5e-0000-4000-8000-000000000000"
		}, fail: "MessageHeader.response.identifier"},
		{name: "addressed to someone else", spoil: func(m map[string]any, _ http.Header) {
			header(m)["destination"] = []any{map[string]any{"endpoint": "https://fhir.nhs.uk/Id/dos-service-id|999"}}
		}, fail: "MessageHeader.destination.endpoint"},
		{name: "a response code outside FHIR's", spoil: func(m map[string]any, _ http.Header) {
			header(m)["response"].(map[string]any)["code"] = "accepted"
		}, fail: "MessageHeader.response.code"},
		{name: "a focus that resolves to nothing", spoil: func(m map[string]any, _ http.Header) {
			header(m)["focus"] = []any{map[string]any{"reference": "urn:uuid:00000000-0000-4000-8000-000000000000"}}
		}, fail: "MessageHeader.focus"},
		{name: "the referral's identifiers dropped", spoil: func(m map[string]any, _ http.Header) {
			for _, e := range m["entry"].([]any) {
				if r := e.(map[string]any)["resource"].(map[string]any); r["resourceType"] == "ServiceRequest" {
					delete(r, "identifier")
				}
			}
		}, fail: "the ServiceRequest keeps the referral's identifiers"},
		{name: "no X-Request-Id", spoil: func(_ map[string]any, h http.Header) { h.Del("X-Request-Id") }, fail: "the post carries"},
		{name: "another correlation id", spoil: func(_ map[string]any, h http.Header) { h.Set("X-Correlation-Id", "not-the-referrals") }, fail: "X-Correlation-Id is the referral's"},
		{name: "plain JSON", spoil: func(_ map[string]any, h http.Header) { h.Set("Content-Type", "application/json") }, fail: "posted as application/fhir+json"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cbs := NewCallbacks()
			cbSrv := httptest.NewServer(cbs.Handler())
			defer cbSrv.Close()
			// The receiver's way back: the sandbox posts here; the proxy
			// spoils the message and passes it on to the callback address.
			proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if tt.silent {
					return
				}
				body, _ := io.ReadAll(r.Body)
				h := r.Header.Clone()
				if tt.spoil != nil {
					var m map[string]any
					if err := json.Unmarshal(body, &m); err != nil {
						t.Error(err)
						return
					}
					tt.spoil(m, h)
					body, _ = json.Marshal(m)
				}
				req, _ := http.NewRequest(http.MethodPost, cbSrv.URL+r.URL.Path, bytes.NewReader(body))
				req.Header = h
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				resp.Body.Close()
				w.WriteHeader(resp.StatusCode)
			}))
			defer proxy.Close()
			rc := sandbox.NewReceiver(sandbox.Options{CallbackURL: proxy.URL + "/fhir", CallbackToken: "t"})
			defer rc.Close()
			srv := httptest.NewServer(rc.Handler())
			defer srv.Close()
			wait := 30 * time.Second
			if tt.silent {
				wait = time.Second // nothing will come: the check waits this long, then fails
			}
			r := CheckReceiver(context.Background(), Receiver{Endpoint: srv.URL + "/fhir", Message: msg, Callbacks: cbs, CallbackWait: wait}, Options{})
			var names []string
			var resp Case
			for _, c := range r.Cases {
				names = append(names, c.Name)
				if c.Name == "response-message" {
					resp = c
				} else if c.Status != Pass {
					t.Errorf("%s: %s %v", c.Name, c.Status, c.Failures())
				}
			}
			if !slices.Equal(names, ReceiverCheckNames(true)) {
				t.Fatalf("checks %v, want %v", names, ReceiverCheckNames(true))
			}
			failures := resp.Failures()
			if tt.fail == "" {
				if resp.Status != Pass {
					t.Fatalf("response-message: %s %v", resp.Status, failures)
				}
				return
			}
			if resp.Status != Fail || len(failures) == 0 || !strings.HasPrefix(failures[0], tt.fail) {
				t.Fatalf("response-message: %s %q, want a failure of %q first", resp.Status, failures, tt.fail)
			}
		})
	}
}
