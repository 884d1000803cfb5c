package delivery

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/student-mh-referrals/gateway/gateway"
	"github.com/student-mh-referrals/gateway/sandbox"
)

// jwtSandbox is the sandbox receiver with one registered application, and
// a count of the token requests it answered.
func jwtSandbox(t *testing.T) (srv *httptest.Server, rc *sandbox.Receiver, cfg SignedJWT, key *rsa.PrivateKey, tokens *atomic.Int32) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tokens = &atomic.Int32{}
	var h http.Handler
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/oauth2/token" {
			tokens.Add(1)
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	cfg = SignedJWT{TokenURL: srv.URL + "/oauth2/token", ClientID: "api-key", KeyID: "k1"}
	rc = sandbox.NewReceiver(sandbox.Options{TokenClients: []sandbox.TokenClient{
		{ClientID: cfg.ClientID, KeyID: cfg.KeyID, PublicKey: &key.PublicKey, Audience: cfg.TokenURL},
	}})
	t.Cleanup(rc.Close)
	h = rc.Handler()
	return srv, rc, cfg, key, tokens
}

// TestSignedJWTDelivery: the worker gets an access token with a signed JWT
// client assertion, as the NHS API platform expects, caches it across
// messages, and the receiver (which checks the token) takes every message.
// The MessageDefinition is asked for with the same token.
func TestSignedJWTDelivery(t *testing.T) {
	srv, rc, cfg, key, tokens := jwtSandbox(t)
	cfg.PrivateKeyPEM = pemKey(t, key)
	h := newHarness(t, settings(), svc("u-cope", srv.URL+"/fhir", "2000010001", Transport{SignedJWT: &cfg}))
	for i := range 3 {
		queue(t, h.store, uniqueCase(i), "u-cope", target("2000010001"), t0)
	}
	for h.once(t) > 0 {
	}
	if got := len(rc.Received()); got != 3 {
		t.Fatalf("the receiver took %d messages, want 3 (log: %v)", got, h.logs.All())
	}
	def, err := h.worker.Definitions().Definition(context.Background(), &h.worker.receivers["u-cope"].svc)
	if err != nil || def.URL != sandbox.DefinitionURL || len(def.Focus) == 0 {
		t.Fatalf("definition %+v, %v: want the sandbox's", def, err)
	}
	if n := tokens.Load(); n != 1 {
		t.Errorf("%d token requests for 3 messages and a definition, want 1 (the token is cached)", n)
	}

	// Without a token the receiver refuses, as a BaRS receiver does.
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/fhir/MessageDefinition?context=x", nil)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("MessageDefinition without a token: %v %v, want 401", resp.StatusCode, err)
	}
}

// TestSandboxTokenChecks: the sandbox's token endpoint checks the assertion
// as the NHS API platform does.
func TestSandboxTokenChecks(t *testing.T) {
	srv, _, cfg, key, _ := jwtSandbox(t)
	other, _ := rsa.GenerateKey(rand.Reader, 2048)
	now := time.Now()
	sign := func(c SignedJWT, k *rsa.PrivateKey, at time.Time) string {
		a, err := Assertion(c, k, at)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	replayed := sign(cfg, key, now)
	post := func(assertion string) int {
		resp, err := http.PostForm(cfg.TokenURL, url.Values{
			"grant_type": {"client_credentials"}, "client_assertion_type": {AssertionType}, "client_assertion": {assertion},
		})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if s := post(replayed); s != http.StatusOK {
		t.Fatalf("a good assertion: %d", s)
	}
	wrongAud, wrongKid := cfg, cfg
	wrongAud.TokenURL = srv.URL + "/elsewhere"
	wrongKid.KeyID = "k2"
	tests := []struct {
		name      string
		assertion string
	}{
		{"replayed jti", replayed},
		{"another key", sign(cfg, other, now)},
		{"another kid", sign(wrongKid, key, now)},
		{"another audience", sign(wrongAud, key, now)},
		{"expired", sign(cfg, key, now.Add(-10*time.Minute))},
		{"exp too far ahead", sign(cfg, key, now.Add(10*time.Minute))},
		{"not a JWT", "a.b"},
		{"tampered", strings.Replace(sign(cfg, key, now), ".", ".e30", 1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if s := post(tt.assertion); s != http.StatusUnauthorized {
				t.Errorf("status %d, want 401", s)
			}
		})
	}
}

// TestDefinitionsCache: a pinned definition is not asked for; a receiver's
// own is cached, and kept when a refresh fails; none at all is
// EUNAVAILABLE.
func TestDefinitionsCache(t *testing.T) {
	var up atomic.Bool
	up.Store(true)
	var asked atomic.Int32
	rc := sandbox.NewReceiver(sandbox.Options{})
	t.Cleanup(rc.Close)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked.Add(1)
		if !up.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		rc.Handler().ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	pinned := svc("pinned", srv.URL+"/fhir", "2000010002", Transport{})
	pinned.MessageDefinition = "https://example.org/MessageDefinition/pinned"
	h := newHarness(t, settings(), svc("u-cope", srv.URL+"/fhir", "2000010001", Transport{}), pinned)
	defs := h.worker.Definitions()
	ctx := context.Background()
	if d, err := defs.Definition(ctx, &pinned.Service); err != nil || d.URL != pinned.MessageDefinition || asked.Load() != 0 {
		t.Fatalf("pinned: %+v %v, asked %d", d, err, asked.Load())
	}
	ucope := &h.worker.receivers["u-cope"].svc
	up.Store(false)
	if _, err := defs.Definition(ctx, ucope); gateway.ErrorCode(err) != gateway.EUNAVAILABLE {
		t.Fatalf("receiver down, nothing cached: %v, want unavailable", err)
	}
	up.Store(true)
	if d, err := defs.Definition(ctx, ucope); err != nil || d.URL != sandbox.DefinitionURL {
		t.Fatalf("receiver up: %+v %v", d, err)
	}
	before := asked.Load()
	if _, err := defs.Definition(ctx, ucope); err != nil || asked.Load() != before {
		t.Errorf("a cached definition was asked for again (%v)", err)
	}
	up.Store(false)
	h.clock.Advance(DefinitionTTL + time.Second)
	if d, err := defs.Definition(ctx, ucope); err != nil || d.URL != sandbox.DefinitionURL || asked.Load() == before {
		t.Errorf("expired, refresh failing: %+v %v; want the cached copy after asking", d, err)
	}
}

// pemKey is key as PKCS#1 PEM.
func pemKey(t *testing.T, key *rsa.PrivateKey) []byte {
	t.Helper()
	return pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
}
