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
	"sync"
	"testing"

	"github.com/google/uuid"

	"github.com/student-mh-referrals/gateway/sandbox"
)

// faults are the ways the test receiver misbehaves.
type faults struct {
	processTwice  bool // a repeated X-Request-Id is processed again, with a new answer
	replay        bool // a repeated X-Request-Id gets the first answer again (correct)
	malformed500  bool // a malformed body gets a 500 without an OperationOutcome
	ignoreHeaders bool // missing BaRS headers are not noticed
	refuseAll     bool // everything gets a 400 REC_BAD_REQUEST
}

// testReceiver is the sandbox receiver behind the given faults. valid holds
// the headers of a valid message, which ignoreHeaders fills in.
func testReceiver(f faults, valid http.Header) http.Handler {
	rc := sandbox.NewReceiver(sandbox.Options{})
	inner := rc.Handler()
	var mu sync.Mutex
	answers := map[string][]byte{}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if f.refuseAll {
			w.Header().Set("Content-Type", "application/fhir+json")
			w.WriteHeader(http.StatusBadRequest)
			_, _ = w.Write([]byte(`{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"invalid","details":{"coding":[{"system":"` + ErrorCodeSystem + `","code":"REC_BAD_REQUEST"}]}}]}`))
			return
		}
		if f.malformed500 {
			var b struct {
				ResourceType string `json:"resourceType"`
				Entry        []struct {
					Resource struct {
						ResourceType string `json:"resourceType"`
					} `json:"resource"`
				} `json:"entry"`
			}
			if json.Unmarshal(body, &b) != nil || b.ResourceType != "Bundle" || len(b.Entry) == 0 || b.Entry[0].Resource.ResourceType != "MessageHeader" {
				http.Error(w, "NullPointerException", http.StatusInternalServerError)
				return
			}
		}
		if f.ignoreHeaders {
			for _, h := range BaRSHeaders {
				if r.Header.Get(h) == "" {
					r.Header.Set(h, valid.Get(h))
				}
			}
			if r.Header.Get("X-Request-Id") == valid.Get("X-Request-Id") {
				r.Header.Set("X-Request-Id", uuid.NewString()) // a new message to the sandbox
			}
		}
		id := r.Header.Get("X-Request-Id")
		mu.Lock()
		prev, seen := answers[id]
		mu.Unlock()
		if f.replay && seen {
			w.Header().Set("Content-Type", "application/fhir+json")
			_, _ = w.Write(prev)
			return
		}
		if f.processTwice && id != "" {
			r.Header.Set("X-Request-Id", uuid.NewString())
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		rec := httptest.NewRecorder()
		inner.ServeHTTP(rec, r)
		out := rec.Body.Bytes()
		if f.processTwice && rec.Code == http.StatusOK {
			out = []byte(`{"resourceType":"OperationOutcome","id":"` + uuid.NewString() + `","issue":[{"severity":"information","code":"informational","diagnostics":"referral created"}]}`)
		}
		mu.Lock()
		answers[id] = out
		mu.Unlock()
		for k, vs := range rec.Header() {
			w.Header()[k] = vs
		}
		w.WriteHeader(rec.Code)
		_, _ = w.Write(out)
	})
}

func TestCheckReceiver(t *testing.T) {
	msg, err := ExampleMessage(context.Background(), evaluator(t), builtinScenarios(t), "u-cope")
	if err != nil {
		t.Fatal(err)
	}
	malformed := []string{"malformed-bundle/not-json", "malformed-bundle/not-a-bundle", "malformed-bundle/no-message-header"}
	var headers []string
	for _, h := range BaRSHeaders {
		headers = append(headers, "missing-header/"+h)
	}
	tests := []struct {
		name   string
		faults faults
		fail   []string
		skip   []string
	}{
		{name: "the sandbox receiver"},
		{name: "a receiver that replays the first answer to a repeat", faults: faults{replay: true}},
		{name: "a receiver that processes a repeat again", faults: faults{processTwice: true}, fail: []string{"repeat-is-idempotent"}},
		{name: "a receiver that answers 500 to malformed bundles", faults: faults{malformed500: true}, fail: malformed},
		{name: "a receiver that ignores missing headers", faults: faults{ignoreHeaders: true}, fail: headers},
		{name: "a receiver with all three faults", faults: faults{processTwice: true, malformed500: true, ignoreHeaders: true},
			fail: slices.Concat([]string{"repeat-is-idempotent"}, malformed, headers)},
		{name: "a receiver that refuses everything", faults: faults{refuseAll: true}, fail: []string{"accepts-valid-message"}, skip: []string{"repeat-is-idempotent"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(testReceiver(tt.faults, msg.Header))
			defer srv.Close()
			var printed bytes.Buffer
			r := CheckReceiver(context.Background(), Receiver{Endpoint: srv.URL + "/fhir", Message: msg}, Options{Progress: Printer{W: &printed}.Case})
			var names, failed, skipped []string
			for _, c := range r.Cases {
				names = append(names, c.Name)
				switch c.Status {
				case Fail:
					failed = append(failed, c.Name)
					if !strings.Contains(printed.String(), "FAIL "+c.Name) {
						t.Errorf("the progress output does not name %s:\n%s", c.Name, printed.String())
					}
				case Skip:
					skipped = append(skipped, c.Name)
				}
			}
			if !slices.Equal(names, ReceiverCheckNames(false)) {
				t.Errorf("checks %v, want %v", names, ReceiverCheckNames(false))
			}
			if !slices.Equal(failed, tt.fail) {
				t.Errorf("failed %v, want %v\n%s", failed, tt.fail, printed.String())
			}
			if !slices.Equal(skipped, tt.skip) {
				t.Errorf("skipped %v, want %v", skipped, tt.skip)
			}
			if r.OK() != (len(tt.fail) == 0) {
				t.Errorf("OK() is %t with failures %v", r.OK(), failed)
			}
		})
	}
}

func TestExampleMessage(t *testing.T) {
	ev := evaluator(t)
	ss := builtinScenarios(t)
	for _, svc := range ev.Registry.IDs() {
		t.Run(svc, func(t *testing.T) {
			m, err := ExampleMessage(context.Background(), ev, ss, svc)
			if err != nil {
				t.Fatal(err)
			}
			s, _ := ev.Registry.Lookup(svc)
			var b any
			if err := decodeJSON(m.Bundle, &b); err != nil {
				t.Fatal(err)
			}
			dest := assertion{op: "==", path: []step{{"MessageHeader", -1}, {"destination", -1}, {"endpoint", -1}}, value: s.Target.System + "|" + s.Target.Value}
			if ok, got := dest.eval(b); !ok {
				t.Errorf("the message is not addressed to %s: %s", dest.value, got)
			}
			for _, h := range BaRSHeaders {
				if m.Header.Get(h) == "" {
					t.Errorf("no %s header", h)
				}
			}
		})
	}
	t.Run("an unknown service", func(t *testing.T) {
		if _, err := ExampleMessage(context.Background(), ev, ss, "no-such-service"); err == nil || !strings.Contains(err.Error(), "u-cope") {
			t.Errorf("error %v does not list the services", err)
		}
	})
}

func TestProcessMessageURL(t *testing.T) {
	for in, want := range map[string]string{
		"http://r.example/fhir":                   "http://r.example/fhir/$process-message",
		"http://r.example/fhir/":                  "http://r.example/fhir/$process-message",
		"http://r.example/fhir/$process-message":  "http://r.example/fhir/$process-message",
		"https://r.example/bars/R4":               "https://r.example/bars/R4/$process-message",
		"https://r.example/bars/$process-message": "https://r.example/bars/$process-message",
	} {
		if got := ProcessMessageURL(in); got != want {
			t.Errorf("ProcessMessageURL(%q) = %q, want %q", in, got, want)
		}
	}
}
