package sandbox

import (
	"bytes"
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// minimalMessage is the smallest Bundle that readMessage accepts, addressed
// to target "T": a seed the fuzzer can mutate quickly.
const minimalMessage = `{"resourceType":"Bundle","id":"b","type":"message","entry":[` +
	`{"fullUrl":"h","resource":{"resourceType":"MessageHeader","eventCoding":{"system":"https://fhir.nhs.uk/CodeSystem/message-events-bars","code":"servicerequest-request"},` +
	`"reason":{"coding":[{"system":"https://fhir.nhs.uk/CodeSystem/message-reason-bars","code":"new"}]},"focus":[{"reference":"s"}],"destination":[{"endpoint":"T"}]}},` +
	`{"fullUrl":"s","resource":{"resourceType":"ServiceRequest","status":"active"}}]}`

// goldenTarget is the request.target (system|value) that a golden Bundle is
// addressed to.
func goldenTarget(t testing.TB, doc []byte) string {
	t.Helper()
	var m struct {
		Entry []struct {
			Resource struct {
				Destination []struct{ Endpoint string }
			}
		}
	}
	if err := json.Unmarshal(doc, &m); err != nil || len(m.Entry) == 0 || len(m.Entry[0].Resource.Destination) == 0 {
		t.Fatalf("not a golden message: %v", err)
	}
	return m.Entry[0].Resource.Destination[0].Endpoint
}

// readMessageCase is one entry of testdata/readmessage.json: a body, the
// target it was posted to, and what readMessage makes of it (the problem,
// if any, and what it read into the request).
type readMessageCase struct {
	Body   string `json:"body"`
	Target string `json:"target"`
	Want   struct {
		Status               int    `json:"status,omitempty"`
		Issue                string `json:"issue,omitempty"`
		Message              string `json:"message,omitempty"`
		BundleID             string `json:"bundleId,omitempty"`
		Event                string `json:"event,omitempty"`
		Reason               string `json:"reason,omitempty"`
		ServiceRequestStatus string `json:"serviceRequestStatus,omitempty"`
	} `json:"want"`
}

// TestReadMessage checks readMessage on the small bodies of
// testdata/readmessage.json (shapes the real messages do not have), and
// that it accepts every golden Bundle as a referral, indented or compact.
func TestReadMessage(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "readmessage.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cases []readMessageCase
	if err := json.Unmarshal(data, &cases); err != nil {
		t.Fatal(err)
	}
	for i, tc := range cases {
		req := request{body: []byte(tc.Body), target: tc.Target}
		p := readMessage(&req)
		var status int
		var issue, msg string
		if p != nil {
			status, issue, msg = p.status, p.issue.Code(), p.msg
		}
		w := tc.Want
		if status != w.Status || issue != w.Issue || msg != w.Message ||
			req.bundleID != w.BundleID || req.event != w.Event || req.reason != w.Reason || req.sr.Status != w.ServiceRequestStatus {
			t.Errorf("case %d %.120q: got %d %s %q, read %q %q %q %q; want %+v",
				i, tc.Body, status, issue, msg, req.bundleID, req.event, req.reason, req.sr.Status, w)
		}
	}
	golden := goldenBundles(t)
	golden["request.json"] = fixture(t)
	for _, name := range slices.Sorted(maps.Keys(golden)) {
		doc := golden[name]
		var compact bytes.Buffer
		if err := json.Compact(&compact, doc); err != nil {
			t.Fatal(err)
		}
		for _, body := range [][]byte{doc, compact.Bytes()} {
			req := request{body: body, target: goldenTarget(t, doc)}
			if p := readMessage(&req); p != nil || req.sr.Status != "active" || req.bundleID == "" {
				t.Errorf("%s: not accepted as a referral: %+v", name, p)
			}
		}
	}
}

// FuzzReadMessage: on any body and target, readMessage either refuses the
// body with a 4xx problem that says why, or reads a message Bundle.
func FuzzReadMessage(f *testing.F) {
	f.Add([]byte(minimalMessage), "T")
	f.Add([]byte(`{"resourceType":"Bundle","type":"message","entry":[{}]}`), "T")
	f.Fuzz(func(t *testing.T, body []byte, target string) {
		req := request{body: body, target: target}
		if p := readMessage(&req); p != nil {
			if p.status < 400 || p.status > 499 || p.msg == "" {
				t.Fatalf("problem %+v", p)
			}
			return
		}
		if req.bundleID == "" || len(req.msg.Entry) == 0 || (req.sr.Status != "active" && req.sr.Status != "revoked") {
			t.Fatalf("accepted %+v", req)
		}
	})
}
