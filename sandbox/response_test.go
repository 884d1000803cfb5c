package sandbox

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"flag"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/student-mh-referrals/gateway/fhirvalidator"
	"github.com/student-mh-referrals/gateway/mappings"
)

var update = flag.Bool("update", false, "rewrite the golden files")

var t0 = time.Date(2026, 11, 23, 12, 5, 0, 0, time.UTC)

// canonical is the testdata form of a JSON document: 2-space indented, keys
// as encoding/json emits them, a trailing newline.
func canonical(t *testing.T, doc []byte) []byte {
	t.Helper()
	var out bytes.Buffer
	if err := json.Indent(&out, doc, "", "  "); err != nil {
		t.Fatal(err)
	}
	return append(out.Bytes(), '\n')
}

// responseMessage reads a referral as the receiver does, addressed to the
// fixture's target, and builds the response message to it.
func responseMessage(t testing.TB, body []byte, accept bool, reason string) ([]byte, responseInfo, error) {
	t.Helper()
	spec := StepSpec{Step: StepAccepted}
	if !accept {
		spec = StepSpec{Step: StepRejected, Reason: reason}
	}
	return responseTo(readFixture(t, body), spec, t0)
}

// readFixture reads a referral as the receiver does, addressed to the
// fixture's target.
func readFixture(t testing.TB, body []byte) request {
	t.Helper()
	req := request{body: body, target: "https://fhir.nhs.uk/Id/dos-service-id|2000010003"}
	if p := readMessage(&req); p != nil {
		t.Fatalf("the receiver refuses the referral: %s", p.msg)
	}
	return req
}

// waitCallbacks waits until every response message rc has scheduled has
// been posted or given up.
func waitCallbacks(t testing.TB, rc *Receiver) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		cbs := rc.Callbacks()
		if !slices.ContainsFunc(cbs, func(c Callback) bool { return !c.Done }) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("response messages not posted: %+v", cbs)
		}
	}
}

// decoded is a response message as the tests read it.
type decoded struct {
	Entry []struct {
		FullURL  string          `json:"fullUrl"`
		Resource json.RawMessage `json:"resource"`
	} `json:"entry"`
}

func (d decoded) resource(t *testing.T, ref string) map[string]any {
	t.Helper()
	for _, e := range d.Entry {
		if e.FullURL == ref {
			var m map[string]any
			if err := json.Unmarshal(e.Resource, &m); err != nil {
				t.Fatal(err)
			}
			return m
		}
	}
	t.Fatalf("no entry %s", ref)
	return nil
}

func TestResponseMessage(t *testing.T) {
	req := fixture(t)
	var reqDoc decoded
	if err := json.Unmarshal(req, &reqDoc); err != nil {
		t.Fatal(err)
	}
	var reqBundle struct {
		ID string `json:"id"`
	}
	_ = json.Unmarshal(req, &reqBundle)
	var reqHeader struct {
		ID     string `json:"id"`
		Source struct{ Endpoint string }
		Focus  []struct{ Reference string }
	}
	_ = json.Unmarshal(reqDoc.Entry[0].Resource, &reqHeader)
	reqSR := reqDoc.resource(t, reqHeader.Focus[0].Reference)

	tests := []struct {
		name   string
		accept bool
		reason string
		status string
	}{
		{"accept", true, "", "active"},
		{"reject", false, "outside our catchment", "revoked"},
	}
	ids := map[string]bool{}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body, info, err := responseMessage(t, req, tt.accept, tt.reason)
			if err != nil {
				t.Fatal(err)
			}
			golden := filepath.Join("testdata", "response-"+tt.name+".golden.json")
			if *update {
				if err := os.WriteFile(golden, canonical(t, body), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if got := canonical(t, body); !bytes.Equal(got, want) {
				t.Errorf("differs from %s (run with -update to accept):\n%s", golden, got)
			}
			if res := fhirvalidator.Builtin().Validate(body); !res.OK() {
				t.Errorf("not valid FHIR:\n%s", res)
			}

			var doc struct {
				ID   string `json:"id"`
				Type string `json:"type"`
				decoded
			}
			if err := json.Unmarshal(body, &doc); err != nil {
				t.Fatal(err)
			}
			if doc.ID != info.id || !uuidPattern.MatchString(doc.ID) || ids[doc.ID] {
				t.Errorf("bundle id %q: want a UUID, new per decision, the same as the callback's request id %q", doc.ID, info.id)
			}
			ids[doc.ID] = true
			var mh struct {
				ResourceType string `json:"resourceType"`
				EventCoding  struct{ System, Code string }
				Response     struct{ Identifier, Code string }
				Destination  []struct{ Endpoint string }
				Source       struct{ Endpoint string }
				Focus        []struct{ Reference string }
			}
			_ = json.Unmarshal(doc.Entry[0].Resource, &mh)
			switch {
			case mh.ResourceType != "MessageHeader":
				t.Errorf("first entry %s", mh.ResourceType)
			case mh.EventCoding.System != EventSystem || mh.EventCoding.Code != "servicerequest-response":
				t.Errorf("event %+v", mh.EventCoding)
			case mh.Response.Identifier != reqBundle.ID || mh.Response.Code != "ok":
				t.Errorf("response %+v, want the request's Bundle id %s and ok", mh.Response, reqBundle.ID)
			case len(mh.Destination) != 1 || mh.Destination[0].Endpoint != reqHeader.Source.Endpoint:
				t.Errorf("destination %+v, want the request's source %s", mh.Destination, reqHeader.Source.Endpoint)
			case mh.Source.Endpoint != "https://fhir.nhs.uk/Id/dos-service-id|2000010003":
				t.Errorf("source endpoint %q", mh.Source.Endpoint)
			case len(mh.Focus) != 1 || mh.Focus[0].Reference != reqHeader.Focus[0].Reference:
				t.Errorf("focus %+v", mh.Focus)
			}
			sr := doc.resource(t, mh.Focus[0].Reference)
			if sr["status"] != tt.status || sr["id"] != reqSR["id"] {
				t.Errorf("ServiceRequest status %v id %v, want %s %v", sr["status"], sr["id"], tt.status, reqSR["id"])
			}
			srIDs, _ := json.Marshal(sr["identifier"])
			reqIDs, _ := json.Marshal(reqSR["identifier"])
			if !bytes.Equal(srIDs, reqIDs) {
				t.Errorf("identifiers %s, want the request's %s", srIDs, reqIDs)
			}
			note, _ := json.Marshal(sr["note"])
			if hasNote := strings.Contains(string(note), tt.reason) && tt.reason != ""; hasNote == tt.accept {
				t.Errorf("note %s for accept=%v", note, tt.accept)
			}
			pat := doc.resource(t, sr["subject"].(map[string]any)["reference"].(string))
			for k := range pat {
				if k != "resourceType" && k != "id" && k != "meta" {
					t.Errorf("the Patient carries %q; it must carry no personal data", k)
				}
			}

			// The gateway's own reader agrees on what it says.
			parsed, err := mappings.ParseResponse(body)
			if err != nil {
				t.Fatalf("mappings.ParseResponse: %v", err)
			}
			if (parsed.Step == "accepted") != tt.accept || parsed.Institution != "10007798" || parsed.CaseID == "" ||
				parsed.RequestBundleID != reqBundle.ID || parsed.ResponseID != info.id {
				t.Errorf("parsed %+v", parsed)
			}
		})
	}

	t.Run("the validator catches a broken response", func(t *testing.T) {
		body, _, _ := responseMessage(t, req, true, "")
		broken := editJSON(t, body, func(b map[string]any) { delete(resource(b, 0), "source") })
		if fhirvalidator.Builtin().Validate(broken).OK() {
			t.Fatal("a MessageHeader without source passed validation")
		}
	})
}

func TestResponseMessageRefuses(t *testing.T) {
	good := fixture(t)
	tests := []struct {
		name string
		req  []byte
	}{
		{"no header id", editJSON(t, good, func(b map[string]any) { delete(resource(b, 0), "id") })},
		{"no source endpoint", editJSON(t, good, func(b map[string]any) { delete(resource(b, 0), "source") })},
		{"no sender", editJSON(t, good, func(b map[string]any) { delete(resource(b, 0), "sender") })},
		{"no destination", editJSON(t, good, func(b map[string]any) { delete(resource(b, 0), "destination") })},
		{"no subject", editJSON(t, good, func(b map[string]any) { delete(resource(b, 1), "subject") })},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, _, err := responseMessage(t, tt.req, true, ""); err == nil {
				t.Fatal("no error")
			}
		})
	}
}

// gatewayStub is the gateway's inbound $process-message as the sandbox
// sees it: it records each post and answers from a script.
type gatewayStub struct {
	mu      sync.Mutex
	posts   []*http.Request
	bodies  [][]byte
	answers []int // status per post; 200 once the script runs out
}

func (g *gatewayStub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	g.mu.Lock()
	g.posts = append(g.posts, r)
	g.bodies = append(g.bodies, b)
	status := http.StatusOK
	if len(g.answers) > 0 {
		status, g.answers = g.answers[0], g.answers[1:]
	}
	g.mu.Unlock()
	w.WriteHeader(status)
}

func TestCallback(t *testing.T) {
	const token = "demo-sandbox-receiver"
	tests := []struct {
		name     string
		faults   []Fault
		answers  []int
		edit     func(b map[string]any)
		posts    int // posts the gateway gets
		step     string
		attempts int
		done     bool
		status   int
	}{
		{"accepted", nil, nil, nil, 1, StepAccepted, 1, true, 200},
		{"retried after 503", nil, []int{503}, nil, 2, StepAccepted, 2, true, 200},
		{"a duplicate is taken", nil, []int{409}, nil, 1, StepAccepted, 1, true, 409},
		{"refused", nil, []int{403}, nil, 1, StepAccepted, 1, true, 403},
		{"rejected", []Fault{{Mode: ModeReject, Reason: "outside our catchment", Count: 1}}, nil, nil, 1, StepRejected, 1, true, 200},
		{"no response to a cancellation", nil, nil, func(b map[string]any) { resource(b, 1)["status"] = "revoked" }, 0, "", 0, false, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			gw := &gatewayStub{answers: tt.answers}
			gs := httptest.NewServer(gw)
			defer gs.Close()
			rc := NewReceiver(Options{CallbackURL: gs.URL + "/fhir/", CallbackToken: token, Now: func() time.Time { return t0 }})
			defer rc.Close()
			for _, f := range tt.faults {
				if err := rc.AddFault(f); err != nil {
					t.Fatal(err)
				}
			}
			body := fixture(t)
			if tt.edit != nil {
				body = editJSON(t, body, tt.edit)
			}
			const reqID = "00000000-0000-4000-8000-000000000001"
			for range 2 { // the duplicate must not be answered again
				req := httptest.NewRequest(http.MethodPost, "/fhir/$process-message", bytes.NewReader(body))
				setGood(req.Header, reqID)
				rr := httptest.NewRecorder()
				rc.Handler().ServeHTTP(rr, req)
			}
			waitCallbacks(t, rc)
			gw.mu.Lock()
			defer gw.mu.Unlock()
			if len(gw.posts) != tt.posts {
				t.Fatalf("the gateway got %d posts, want %d", len(gw.posts), tt.posts)
			}
			cbs := rc.Callbacks()
			if tt.posts == 0 {
				if len(cbs) != 0 {
					t.Errorf("callbacks %+v", cbs)
				}
				return
			}
			if len(cbs) != 1 {
				t.Fatalf("callbacks %+v, want one", cbs)
			}
			cb := cbs[0]
			if cb.RequestID != reqID || cb.Step != tt.step || cb.Attempts != tt.attempts || cb.Done != tt.done || cb.Status != tt.status {
				t.Errorf("callback %+v", cb)
			}
			want, _, _ := responseMessage(t, body, tt.step == StepAccepted, "outside our catchment")
			for i, p := range gw.posts {
				switch {
				case p.URL.Path != "/fhir/$process-message":
					t.Errorf("post %d to %s", i, p.URL.Path)
				case p.Header.Get("Authorization") != "Bearer "+token:
					t.Errorf("post %d: Authorization %q", i, p.Header.Get("Authorization"))
				case p.Header.Get("Content-Type") != "application/fhir+json":
					t.Errorf("post %d: Content-Type %q", i, p.Header.Get("Content-Type"))
				case p.Header.Get("X-Request-Id") != cb.ResponseID:
					t.Errorf("post %d: X-Request-Id %q, want the response id %q on every retry", i, p.Header.Get("X-Request-Id"), cb.ResponseID)
				case p.Header.Get("X-Correlation-Id") != "2b9f3c4e-0b1a-4c1e-9a7e-2f1d3c4b5a60":
					t.Errorf("post %d: X-Correlation-Id %q, want the referral's", i, p.Header.Get("X-Correlation-Id"))
				case !bytes.Equal(gw.bodies[i], want):
					t.Errorf("post %d: body is not the response message", i)
				}
				org, err := base64.StdEncoding.DecodeString(p.Header.Get("NHSD-End-User-Organisation"))
				if err != nil || !strings.Contains(string(org), `"RXV"`) {
					t.Errorf("post %d: NHSD-End-User-Organisation %s, want the receiving trust", i, org)
				}
			}
		})
	}
}
