package delivery

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/student-mh-referrals/gateway/gateway"
)

func TestTLS(t *testing.T) {
	p := newPKI(t)
	tests := []struct {
		name      string
		server    func(*tls.Config)
		transport Transport
		state     gateway.MessageState
		errHas    string
		clientCN  string // the client certificate the receiver saw
	}{
		{"CA from caFile", nil, Transport{CAFile: p.caFile}, gateway.MessageDelivered, "", ""},
		{"system roots do not know the CA", nil, Transport{}, gateway.MessagePending, "certificate", ""},
		{"another CA", nil, Transport{CAFile: p.otherCAFile}, gateway.MessagePending, "certificate", ""},
		{"receiver offers only TLS 1.1", func(c *tls.Config) { c.MinVersion, c.MaxVersion = tls.VersionTLS10, tls.VersionTLS11 },
			Transport{CAFile: p.caFile}, gateway.MessagePending, "protocol version", ""},
		{"mTLS with a client certificate", func(c *tls.Config) { c.ClientAuth, c.ClientCAs = tls.RequireAndVerifyClientCert, p.pool },
			Transport{CAFile: p.caFile, CertFile: p.certFile, KeyFile: p.keyFile}, gateway.MessageDelivered, "", "student-mh-referral-gateway"},
		// With TLS 1.3 the refusal may reach the client as a broken
		// connection rather than a handshake alert.
		{"mTLS without one", func(c *tls.Config) { c.ClientAuth, c.ClientCAs = tls.RequireAndVerifyClientCert, p.pool },
			Transport{CAFile: p.caFile}, gateway.MessagePending, "transport error", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var mu sync.Mutex
			var cn string
			hits := 0
			srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				hits++
				if len(r.TLS.PeerCertificates) > 0 {
					cn = r.TLS.PeerCertificates[0].Subject.CommonName
				}
				mu.Unlock()
				answer(200, nil, "")(w, r)
			}))
			srv.TLS = &tls.Config{Certificates: []tls.Certificate{p.server}}
			if tt.server != nil {
				tt.server(srv.TLS)
			}
			srv.Config.ErrorLog = log.New(io.Discard, "", 0)
			srv.StartTLS()
			defer srv.Close()
			h := newHarness(t, settings(), svc("u-cope", srv.URL, "2000010001", tt.transport))
			m := queue(t, h.store, "CASE-1", "u-cope", target("2000010001"), t0)
			h.once(t)
			got := h.message(t, m.ID)
			if got.State != tt.state || !strings.Contains(got.LastError, tt.errHas) {
				t.Fatalf("state %s, error %q; want %s mentioning %q", got.State, got.LastError, tt.state, tt.errHas)
			}
			mu.Lock()
			defer mu.Unlock()
			if cn != tt.clientCN {
				t.Errorf("client certificate %q, want %q", cn, tt.clientCN)
			}
			if want := map[bool]int{true: 1, false: 0}[tt.state == gateway.MessageDelivered]; hits != want {
				t.Errorf("the receiver handled %d posts, want %d", hits, want)
			}
		})
	}
}

// tokenServer is an OAuth2 token endpoint for the client-credentials grant.
type tokenServer struct {
	mu        sync.Mutex
	issued    int
	expiresIn int    // seconds; 0 is 3600
	refuse    bool   // answer 401 invalid_client
	scope     string // the scope of the last request
}

func (s *tokenServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	id, secret, ok := r.BasicAuth()
	if err := r.ParseForm(); err != nil || r.Form.Get("grant_type") != "client_credentials" {
		http.Error(w, `{"error":"unsupported_grant_type"}`, http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.refuse || !ok || id != "gateway" || secret != "s3cret" {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprint(w, `{"error":"invalid_client"}`)
		return
	}
	s.issued++
	s.scope = r.Form.Get("scope")
	exp := s.expiresIn
	if exp == 0 {
		exp = 3600
	}
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"access_token":"token-%d","token_type":"Bearer","expires_in":%d}`, s.issued, exp)
}

// bearerReceiver answers 200 to the current token, 401 to any other, and
// records the tokens it was shown.
type bearerReceiver struct {
	mu    sync.Mutex
	valid string // "" accepts any token
	seen  []string
}

func (b *bearerReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	tok, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	b.mu.Lock()
	b.seen = append(b.seen, tok)
	ok := tok != "" && (b.valid == "" || tok == b.valid)
	b.mu.Unlock()
	if !ok {
		answer(401, nil, outcomeJSON("forbidden", "REC_UNAUTHORIZED"))(w, r)
		return
	}
	answer(200, nil, "")(w, r)
}

func TestOAuth2(t *testing.T) {
	type step struct {
		messages int    // queued and delivered in one DeliverOnce
		valid    string // the token the receiver takes from now on
	}
	tests := []struct {
		name      string
		tokens    *tokenServer
		steps     []step
		issued    int      // tokens fetched in all
		seen      []string // tokens the receiver saw, in order
		delivered int
		errHas    string
	}{
		{"one token serves many messages", &tokenServer{}, []step{{1, ""}, {1, ""}, {1, ""}},
			1, []string{"token-1", "token-1", "token-1"}, 3, ""},
		{"an expiring token is renewed", &tokenServer{expiresIn: 5}, []step{{1, ""}, {1, ""}},
			2, []string{"token-1", "token-2"}, 2, ""},
		{"a refused token is dropped and the message retried", &tokenServer{}, []step{{1, ""}, {1, "token-2"}, {0, ""}},
			2, []string{"token-1", "token-1", "token-2"}, 2, ""},
		{"the token endpoint refuses the client", &tokenServer{refuse: true}, []step{{1, ""}},
			0, nil, 0, "oauth2 token request refused: 401 invalid_client"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := httptest.NewServer(tt.tokens)
			defer ts.Close()
			rcv := &bearerReceiver{}
			rs := httptest.NewServer(rcv)
			defer rs.Close()
			secret := writeFile(t, t.TempDir(), "secret", []byte("s3cret\n"))
			h := newHarness(t, settings(), svc("u-cope", rs.URL, "2000010001", Transport{OAuth2: &OAuth2{
				TokenURL: ts.URL, ClientID: "gateway", ClientSecretFile: secret, Scopes: []string{"bars", "referrals"},
			}}))
			n := 0
			for _, s := range tt.steps {
				rcv.mu.Lock()
				if s.valid != "" {
					rcv.valid = s.valid
				}
				rcv.mu.Unlock()
				for range s.messages {
					n++
					queue(t, h.store, uniqueCase(n), "u-cope", target("2000010001"), t0)
				}
				h.clock.Advance(time.Hour)
				h.once(t)
			}
			ms, err := h.store.Messages(context.Background(), gateway.MessageDelivered, 100)
			if err != nil {
				t.Fatal(err)
			}
			if len(ms) != tt.delivered {
				t.Errorf("%d delivered, want %d", len(ms), tt.delivered)
			}
			tt.tokens.mu.Lock()
			issued, scope := tt.tokens.issued, tt.tokens.scope
			tt.tokens.mu.Unlock()
			if issued != tt.issued || (issued > 0 && scope != "bars referrals") {
				t.Errorf("issued %d tokens with scope %q, want %d with \"bars referrals\"", issued, scope, tt.issued)
			}
			rcv.mu.Lock()
			defer rcv.mu.Unlock()
			if strings.Join(rcv.seen, ",") != strings.Join(tt.seen, ",") {
				t.Errorf("receiver saw %v, want %v", rcv.seen, tt.seen)
			}
			if tt.errHas != "" {
				pending, _ := h.store.Messages(context.Background(), gateway.MessagePending, 10)
				if len(pending) != 1 || !strings.Contains(pending[0].LastError, tt.errHas) {
					t.Errorf("pending %+v, want one mentioning %q", pending, tt.errHas)
				}
			}
		})
	}
}

// The token endpoint is reached with the receiver's TLS settings: its CA
// and, where it asks, the gateway's client certificate.
func TestOAuth2OverMTLS(t *testing.T) {
	p := newPKI(t)
	mtls := func(h http.Handler) *httptest.Server {
		s := httptest.NewUnstartedServer(h)
		s.TLS = &tls.Config{Certificates: []tls.Certificate{p.server}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: p.pool}
		s.StartTLS()
		return s
	}
	tokens := &tokenServer{}
	ts := mtls(tokens)
	defer ts.Close()
	rcv := &bearerReceiver{}
	rs := mtls(rcv)
	defer rs.Close()
	secret := writeFile(t, t.TempDir(), "secret", []byte("s3cret"))
	h := newHarness(t, settings(), svc("u-cope", rs.URL, "2000010001", Transport{
		CAFile: p.caFile, CertFile: p.certFile, KeyFile: p.keyFile,
		OAuth2: &OAuth2{TokenURL: ts.URL + "/oauth2/token", ClientID: "gateway", ClientSecretFile: secret},
	}))
	m := queue(t, h.store, "CASE-1", "u-cope", target("2000010001"), t0)
	h.once(t)
	if got := h.message(t, m.ID); got.State != gateway.MessageDelivered {
		t.Fatalf("state %s: %s", got.State, got.LastError)
	}
}
