package delivery

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/student-mh-referrals/gateway/gateway"
)

// barsSpec is the published BaRS API description the check serves:
// GATEWAY_BARS_OPENAPI, or the copy in ../shared beside the repository.
func barsSpec() string {
	if p := os.Getenv("GATEWAY_BARS_OPENAPI"); p != "" {
		return p
	}
	return "../../../shared/bars-openapi/specification/booking-and-referral.yaml"
}

// TestPrism is the independent check of what the gateway sends a BaRS
// receiver: Prism (an OpenAPI mock server, `prism mock --errors`) serves the
// published BaRS API description and validates every request against it;
// the worker delivers the referral messages the mapping builds (the mapping
// goldens) to it, with the real headers and a bearer token from the signed
// JWT flow, and asks it for the MessageDefinition. Prism reports what it
// finds in the sl-violations header (and a 4xx): any is a failure.
//
// `make prism` installs the pinned Prism and runs this with GATEWAY_PRISM set
// to its binary. Without GATEWAY_PRISM it skips; when ../shared is absent it
// skips too; when Prism cannot run it fails.
func TestPrism(t *testing.T) {
	bin := os.Getenv("GATEWAY_PRISM")
	if bin == "" {
		t.Skip("GATEWAY_PRISM is not set: `make prism` runs this check")
	}
	if _, err := os.Stat(barsSpec()); err != nil {
		t.Skipf("the BaRS API description %s is absent: %v", barsSpec(), err)
	}
	prism := startPrism(t, bin)

	// A recording proxy in front of Prism keeps what it said of each request.
	type verdict struct {
		req        string
		status     int
		violations string
	}
	var mu sync.Mutex
	var seen []verdict
	target, _ := url.Parse(prism)
	proxy := httputil.NewSingleHostReverseProxy(target)
	proxy.ModifyResponse = func(resp *http.Response) error {
		mu.Lock()
		defer mu.Unlock()
		seen = append(seen, verdict{resp.Request.Method + " " + resp.Request.URL.Path, resp.StatusCode, resp.Header.Get("sl-violations")})
		return nil
	}
	front := httptest.NewServer(proxy)
	defer front.Close()

	// The token comes from the sandbox's token endpoint, as in `make run`.
	_, _, jwt, key, _ := jwtSandbox(t)
	jwt.PrivateKeyPEM = pemKey(t, key)

	goldens, err := filepath.Glob("../../mappings/testdata/golden/allow-*.bundle.json")
	if err != nil || len(goldens) == 0 {
		t.Fatalf("no mapping goldens (%v)", err)
	}
	service := svc("u-cope", front.URL, "2000010001", Transport{SignedJWT: &jwt})
	h := newHarness(t, settings(), service)
	sender := gateway.SenderOf(gateway.Institution{UKPRN: institution, Name: "The University of Manchester", ODSCode: "EXA01"})
	for i, path := range goldens {
		body, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		hash := gateway.DeriveID("content", path)
		if _, err := h.store.Accept(context.Background(), gateway.AcceptRequest{
			Institution: institution, CaseID: uniqueCase(i), ContentHash: hash, ServiceID: "u-cope", At: t0,
			Record: []byte(`{}`), Bundle: body, Sender: sender,
			Decision: gateway.DecisionRecord{DecisionID: gateway.DeriveID("decision", hash), At: t0, Body: []byte(`{"allow":true}`)},
		}); err != nil {
			t.Fatal(err)
		}
	}
	for h.once(t) > 0 {
	}
	def, err := h.worker.Definitions().Definition(context.Background(), &service.Service)
	if err != nil {
		t.Errorf("MessageDefinition from Prism: %v", err)
	} else {
		t.Logf("MessageDefinition from Prism's example: %s", def.URL)
	}

	mu.Lock()
	defer mu.Unlock()
	if want := len(goldens) + 1; len(seen) != want {
		t.Errorf("Prism answered %d requests, want %d (%d messages and a MessageDefinition)", len(seen), want, len(goldens))
	}
	for _, v := range seen {
		if v.violations != "" || v.status >= 300 {
			t.Errorf("%s: Prism answered %d with violations %s", v.req, v.status, v.violations)
		} else {
			t.Logf("%s: %d, no violation", v.req, v.status)
		}
	}
}

// startPrism runs `prism mock --errors` on the BaRS description at a free
// loopback port, waits until it listens, and stops it when the test ends.
func startPrism(t *testing.T, bin string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := fmt.Sprint(ln.Addr().(*net.TCPAddr).Port)
	ln.Close()
	cmd := exec.Command(bin, "mock", "--errors", "-h", "127.0.0.1", "-p", port, barsSpec())
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("prism cannot run: %v", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})
	addr := "http://127.0.0.1:" + port
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(addr + "/metadata")
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			return addr
		}
		select {
		case <-exited:
			t.Fatalf("prism exited before listening:\n%s", out.String())
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("prism did not listen within 60 s:\n%s", out.String())
		}
	}
}
