package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/student-mh-referrals/gateway/gateway/config"
)

// aead reports whether a TLS 1.2 suite encrypts with an AEAD cipher.
func aead(s *tls.CipherSuite) bool {
	return strings.Contains(s.Name, "_GCM_") || strings.Contains(s.Name, "CHACHA20_POLY1305")
}

// TestTLSOffersAEADSuitesOnly: over TLS 1.2 the API completes a handshake
// only with an ECDHE AEAD suite. A client that offers nothing but a CBC
// suite (the penetration test's ECDHE-…-AES128-SHA and AES256-SHA) is
// refused. The certificate is ECDSA, so each ECDSA suite is tried alone;
// the configured list is checked for the RSA ones.
func TestTLSOffersAEADSuitesOnly(t *testing.T) {
	dir := t.TempDir()
	ca := newTestCA(t)
	_, certPEM, keyPEM := ca.issue(t, "gateway", true)
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cfg, err := serverTLS(config.TLS{CertFile: write("srv.pem", certPEM), KeyFile: write("srv.key", keyPEM)})
	if err != nil {
		t.Fatal(err)
	}
	all := append(tls.CipherSuites(), tls.InsecureCipherSuites()...)
	for _, s := range all {
		if !aead(s) && slices.Contains(cfg.CipherSuites, s.ID) {
			t.Errorf("%s is configured", s.Name)
		}
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { _ = c.(*tls.Conn).Handshake(); c.Close() }()
		}
	}()
	roots := x509.NewCertPool()
	roots.AddCert(ca.cert)
	tried := 0
	for _, s := range all {
		if !strings.HasPrefix(s.Name, "TLS_ECDHE_ECDSA_") || !slices.Contains(s.SupportedVersions, tls.VersionTLS12) {
			continue
		}
		tried++
		t.Run(s.Name, func(t *testing.T) {
			c, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{RootCAs: roots, MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{s.ID}})
			if err == nil {
				c.Close()
			}
			if aead(s) && err != nil {
				t.Fatalf("an AEAD suite was refused: %v", err)
			}
			if !aead(s) && err == nil {
				t.Fatal("a client offering only this CBC suite completed a handshake")
			}
		})
	}
	if tried < 6 {
		t.Fatalf("only %d ECDSA suites tried; the test proves nothing", tried)
	}
}

// TestRequestEndsAtWriteTimeout: a request's context is done when the
// server's write timeout passes, so that a handler stops its work when its
// answer can no longer be sent, whatever the client does.
func TestRequestEndsAtWriteTimeout(t *testing.T) {
	lim := productionLimits
	lim.WriteTimeout = 200 * time.Millisecond
	stopped := make(chan error, 1)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
		stopped <- r.Context().Err()
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := newHTTPServer(h, zap.NewNop(), lim)
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	go func() {
		// The client waits far longer than the server's timeout.
		c := &http.Client{Timeout: time.Minute}
		if resp, err := c.Get("http://" + ln.Addr().String() + "/"); err == nil {
			resp.Body.Close()
		}
	}()
	select {
	case err := <-stopped:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("the handler's context ended with %v, want the deadline", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the handler's context was still live long after the write timeout")
	}
}

// TestForgedCursorOnTheWiredAPI sends the penetration test's cursor
// (base64url of "v1:desc:9223372036854775807") to the API as `gateway serve`
// wires it: a prompt 422 naming cursor, not a scan down from 2⁶³.
func TestForgedCursorOnTheWiredAPI(t *testing.T) {
	api := newHostileAPI(t, productionLimits)
	req, _ := http.NewRequest("GET", "http://"+api.addr+"/v1/audit/decisions?order=desc&cursor=djE6ZGVzYzo5MjIzMzcyMDM2ODU0Nzc1ODA3", nil)
	req.Header.Set("Authorization", "Bearer "+auditor)
	resp, err := (&http.Client{Timeout: time.Minute}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var buf strings.Builder
	_, _ = io.Copy(&buf, resp.Body)
	if resp.StatusCode != 422 || !strings.Contains(buf.String(), `"cursor"`) || !strings.Contains(buf.String(), "OperationOutcome") {
		t.Fatalf("status %d: %s", resp.StatusCode, buf.String())
	}
}

// TestServeMetricsOnItsOwnListener runs `gateway serve`: /metrics is a 404
// on the API's listener and served on metrics.listen, which serves nothing
// else.
func TestServeMetricsOnItsOwnListener(t *testing.T) {
	dir := t.TempDir()
	cfg, api, _ := processConfig(t, dir, testStore(t, "sqlite"))
	y, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`metrics:\n  listen: (\S+)`).FindSubmatch(y)
	if m == nil {
		t.Fatal("no metrics.listen in the configuration")
	}
	metrics := string(m[1])
	ctx, cancel := context.WithCancel(context.Background())
	out := &syncBuffer{}
	done := make(chan error, 1)
	go func() { done <- cmdServe(ctx, []string{"--config", cfg}, out, io.Discard) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	}()
	get := func(url string) (int, string) {
		resp, err := http.Get(url)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		s1, _ := get("http://" + api + "/healthz")
		s2, _ := get("http://" + metrics + "/metrics")
		if s1 == 200 && s2 == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the gateway did not come up: %s", out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if s, body := get("http://" + api + "/metrics"); s != 404 || strings.Contains(body, "gateway_") {
		t.Errorf("/metrics on the API listener: status %d: %.200s", s, body)
	}
	if s, body := get("http://" + metrics + "/metrics"); s != 200 || !strings.Contains(body, "gateway_outbox_depth") {
		t.Errorf("/metrics on the metrics listener: status %d: %.200s", s, body)
	}
	if s, _ := get("http://" + metrics + "/healthz"); s != 404 {
		t.Errorf("the metrics listener serves /healthz: status %d", s)
	}
}

// TestStartWarnings: what the configuration allows but weakens is logged
// at every start: demo mode, plain HTTP behind a TLS proxy on a public
// interface, /metrics on a non-loopback address.
func TestStartWarnings(t *testing.T) {
	y := string(config.Example)
	for from, to := range map[string]string{
		"listen: 127.0.0.1:8080":    "listen: 0.0.0.0:8080",
		"terminatedUpstream: false": "terminatedUpstream: true",
		"listen: 127.0.0.1:9090":    "listen: 0.0.0.0:9090",
	} {
		if !strings.Contains(y, from) {
			t.Fatalf("%q is not in the example", from)
		}
		y = strings.Replace(y, from, to, 1)
	}
	cfg, err := config.Parse([]byte(y))
	if err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zap.InfoLevel)
	startWarnings(zap.New(core), cfg)
	var got []string
	for _, e := range logs.All() {
		if e.Level != zap.WarnLevel {
			t.Errorf("%q logged at %s", e.Message, e.Level)
		}
		got = append(got, e.Message)
	}
	for _, want := range []string{"DEMO MODE", "plain HTTP on 0.0.0.0:8080", "/metrics is served without a login on the non-loopback address 0.0.0.0:9090"} {
		if !strings.Contains(strings.Join(got, "\n"), want) {
			t.Errorf("no warning mentioning %q in %q", want, got)
		}
	}
	local, err := config.Load("")
	if err != nil {
		t.Fatal(err)
	}
	core, logs = observer.New(zap.InfoLevel)
	startWarnings(zap.New(core), local)
	if logs.Len() != 1 {
		t.Errorf("the loopback example logs %d warnings, want the demo's alone", logs.Len())
	}
}
