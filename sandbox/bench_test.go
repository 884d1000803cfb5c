package sandbox

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// goldenBundles returns the mapping golden Bundles (real messages the
// gateway builds, synthetic data) by file name.
func goldenBundles(t testing.TB) map[string][]byte {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("..", "mappings", "testdata", "golden", "*.bundle.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden Bundles: %v", err)
	}
	out := map[string][]byte{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out[filepath.Base(f)] = b
	}
	return out
}

// benchPost is one golden Bundle as the gateway posts it: compact JSON
// (the outbox holds json.Marshal output) with the target header naming its
// destination.
type benchPost struct {
	body     []byte
	target   string // NHSD-Target-Identifier, base64
	endpoint string // its system|value, as read puts it in request.target
}

func benchPosts(b *testing.B) []benchPost {
	b.Helper()
	var posts []benchPost
	golden := goldenBundles(b)
	for _, name := range slices.Sorted(maps.Keys(golden)) {
		doc := golden[name]
		var compact bytes.Buffer
		if err := json.Compact(&compact, doc); err != nil {
			b.Fatal(name, err)
		}
		var m struct {
			Entry []struct {
				Resource struct {
					Destination []struct{ Endpoint string }
				}
			}
		}
		if err := json.Unmarshal(doc, &m); err != nil {
			b.Fatal(name, err)
		}
		sys, val, _ := strings.Cut(m.Entry[0].Resource.Destination[0].Endpoint, "|")
		target, _ := json.Marshal(map[string]string{"system": sys, "value": val})
		posts = append(posts, benchPost{compact.Bytes(), b64(string(target)), sys + "|" + val})
	}
	return posts
}

// runProcessMessage posts b.N golden messages, each with a fresh request
// id, to rc's $process-message and checks each is accepted.
func runProcessMessage(b *testing.B, rc *Receiver) {
	posts := benchPosts(b)
	h := rc.Handler()
	b.ReportAllocs()
	b.SetBytes(int64(len(posts[0].body)))
	b.ResetTimer()
	for i := range b.N {
		p := posts[i%len(posts)]
		req := httptest.NewRequest(http.MethodPost, "/fhir/$process-message", bytes.NewReader(p.body))
		setGood(req.Header, fmt.Sprintf("00000000-0000-4000-8000-%012x", i))
		req.Header.Set("NHSD-Target-Identifier", p.target)
		rr := httptest.NewRecorder()
		h.ServeHTTP(rr, req)
		if rr.Code != http.StatusOK {
			b.Fatalf("status %d: %s", rr.Code, rr.Body)
		}
	}
	waitCallbacks(b, rc)
}

// BenchmarkProcessMessage is the receiver's work per message without the
// response message: headers, the Bundle's checks, the record and the
// answer.
func BenchmarkProcessMessage(b *testing.B) {
	rc := NewReceiver(Options{})
	defer rc.Close()
	runProcessMessage(b, rc)
}

// BenchmarkProcessMessageCallback adds the response message, posted at
// once to a stub of the gateway on loopback that reads and drops it (the
// stub's own work is counted too: it runs in this process).
func BenchmarkProcessMessageCallback(b *testing.B) {
	gw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusOK)
	}))
	defer gw.Close()
	rc := NewReceiver(Options{CallbackURL: gw.URL + "/fhir", CallbackToken: "t", Now: func() time.Time { return t0 }})
	defer rc.Close()
	runProcessMessage(b, rc)
	if cbs := rc.Callbacks(); len(cbs) != b.N || !cbs[len(cbs)-1].Done || cbs[len(cbs)-1].Status != 200 {
		b.Fatalf("%d callbacks for %d messages, last %+v", len(cbs), b.N, cbs[len(cbs)-1])
	}
}

// BenchmarkReadMessage is the Bundle's checks alone.
func BenchmarkReadMessage(b *testing.B) {
	posts := benchPosts(b)
	b.ReportAllocs()
	b.SetBytes(int64(len(posts[0].body)))
	b.ResetTimer()
	for i := range b.N {
		p := posts[i%len(posts)]
		req := request{body: p.body, target: p.endpoint}
		if p := readMessage(&req); p != nil {
			b.Fatal(p.msg)
		}
	}
}

// BenchmarkResponseTo is building the response message from a request
// readMessage has read.
func BenchmarkResponseTo(b *testing.B) {
	posts := benchPosts(b)
	reqs := make([]request, len(posts))
	for i, p := range posts {
		reqs[i].body, reqs[i].target = p.body, p.endpoint
		if pr := readMessage(&reqs[i]); pr != nil {
			b.Fatal(pr.msg)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		r := reqs[i%len(reqs)]
		if _, _, err := responseTo(r, StepSpec{Step: StepAccepted}, t0); err != nil {
			b.Fatal(err)
		}
	}
}
