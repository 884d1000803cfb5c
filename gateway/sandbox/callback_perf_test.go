package sandbox

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/samply/golang-fhir-models/fhir-models/fhir"
)

// TestCallbackReusesConnections: response messages posted at once keep
// their connections to the gateway for the next ones, rather than each
// dialling anew (with http.DefaultTransport only 2 stay open).
func TestCallbackReusesConnections(t *testing.T) {
	const burst = 32
	var (
		conns   atomic.Int64
		mu      sync.Mutex
		arrived int
		release = make(chan struct{})
	)
	// The stub holds every post until the whole burst has arrived, so that
	// the burst is burst posts in flight at once, on as many connections.
	gw := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		arrived++
		rel := release
		if arrived%burst == 0 {
			close(release)
			release = make(chan struct{})
		}
		mu.Unlock()
		select {
		case <-rel:
		case <-time.After(10 * time.Second):
		}
		w.WriteHeader(http.StatusOK)
	}))
	gw.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	gw.Start()
	defer gw.Close()
	rc := NewReceiver(Options{CallbackURL: gw.URL + "/fhir", CallbackToken: "t", Now: func() time.Time { return t0 }})
	defer rc.Close()
	body := fixture(t)
	n := 0
	send := func() {
		for range burst {
			n++
			req := httptest.NewRequest(http.MethodPost, "/fhir/$process-message", bytes.NewReader(body))
			setGood(req.Header, fmt.Sprintf("00000000-0000-4000-8000-%012x", n))
			rr := httptest.NewRecorder()
			rc.Handler().ServeHTTP(rr, req)
			if rr.Code != http.StatusOK {
				t.Fatalf("status %d", rr.Code)
			}
		}
		rc.Wait()
	}
	send()
	first := conns.Load()
	// The transport puts a connection back as idle just after the
	// response is read: give it a moment.
	time.Sleep(100 * time.Millisecond)
	send()
	again := conns.Load() - first
	if first < burst/2 || again > burst/4 {
		t.Errorf("the first burst took %d connections and the second %d new ones; want the second to reuse the first's", first, again)
	}
	for _, cb := range rc.Callbacks() {
		if !cb.Done || cb.Status != http.StatusOK {
			t.Fatalf("callback %+v", cb)
		}
	}
}

// TestAcceptedAnswer: the answer to an accepted message, encoded once, is
// the OperationOutcome the receiver encoded for each message before.
func TestAcceptedAnswer(t *testing.T) {
	msg := "message accepted by the sandbox receiver"
	var want bytes.Buffer
	enc := json.NewEncoder(&want)
	enc.SetIndent("", "  ")
	if err := enc.Encode(fhir.OperationOutcome{Issue: []fhir.OperationOutcomeIssue{{
		Severity: fhir.IssueSeverityInformation, Code: fhir.IssueTypeInformational, Diagnostics: &msg,
	}}}); err != nil {
		t.Fatal(err)
	}
	rc := New(nil)
	req := httptest.NewRequest(http.MethodPost, "/fhir/$process-message", bytes.NewReader(fixture(t)))
	setGood(req.Header, "00000000-0000-4000-8000-000000000001")
	rr := httptest.NewRecorder()
	rc.Handler().ServeHTTP(rr, req)
	if rr.Code != http.StatusOK || rr.Header().Get("Content-Type") != "application/fhir+json; charset=utf-8" || !bytes.Equal(rr.Body.Bytes(), want.Bytes()) {
		t.Fatalf("answer %d %q:\n%s\nwant\n%s", rr.Code, rr.Header().Get("Content-Type"), rr.Body, want.Bytes())
	}
}
