package delivery

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/student-mh-referrals/gateway/gateway"
)

// leafCert is a server certificate for 127.0.0.1 signed by ca, valid from an
// hour ago for two hours; edit changes the template before signing.
func leafCert(t *testing.T, ca *x509.Certificate, caKey *ecdsa.PrivateKey, edit func(*x509.Certificate)) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: "receiver"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
	}
	if edit != nil {
		edit(tmpl)
	}
	signer, signerKey := ca, caKey
	if signer == nil { // self-signed
		signer, signerKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signer, &key.PublicKey, signerKey)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// TestBadCertificateThenFixed: a receiver presenting a bad certificate
// (expired, for another host, from an unknown CA) gets nothing; the message
// waits in the queue, is not lost, and is delivered, once and with the same
// X-Request-Id, when the receiver's certificate is fixed.
func TestBadCertificateThenFixed(t *testing.T) {
	caKey, caCert, caPEM := selfSigned(t, "test CA")
	caFile := writeFile(t, t.TempDir(), "ca.pem", caPEM)
	good := leafCert(t, caCert, caKey, nil)
	tests := []struct {
		name   string
		bad    tls.Certificate
		errHas string
	}{
		{"expired", leafCert(t, caCert, caKey, func(c *x509.Certificate) {
			c.NotBefore, c.NotAfter = time.Now().Add(-48*time.Hour), time.Now().Add(-24*time.Hour)
		}), "expired"},
		{"for another host", leafCert(t, caCert, caKey, func(c *x509.Certificate) {
			c.IPAddresses = []net.IP{net.ParseIP("127.0.0.2")}
		}), "valid for 127.0.0.2, not 127.0.0.1"},
		{"self-signed", leafCert(t, nil, nil, nil), "unknown authority"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var current atomic.Pointer[tls.Certificate]
			current.Store(&tt.bad)
			var mu sync.Mutex
			var requestIDs []string
			srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				requestIDs = append(requestIDs, r.Header.Get("X-Request-Id"))
				mu.Unlock()
				answer(200, nil, "")(w, r)
			}))
			// Asked at every handshake, so the certificate can be replaced
			// while the server runs, as an operator would.
			srv.TLS = &tls.Config{GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
				return &tls.Config{Certificates: []tls.Certificate{*current.Load()}}, nil
			}}
			srv.Config.ErrorLog = log.New(io.Discard, "", 0)
			srv.StartTLS()
			defer srv.Close()
			h := newHarness(t, settings(), svc("u-cope", srv.URL, "2000010001", Transport{CAFile: caFile}))
			m := queue(t, h.store, "CASE-1", "u-cope", target("2000010001"), t0)

			for i := range 2 { // still bad on the retry
				if n := h.once(t); n != 1 {
					t.Fatalf("attempt %d handled %d messages", i+1, n)
				}
				got := h.message(t, m.ID)
				if got.State != gateway.MessagePending || !strings.Contains(got.LastError, tt.errHas) {
					t.Fatalf("attempt %d: state %s, error %q; want pending, mentioning %q", i+1, got.State, got.LastError, tt.errHas)
				}
				h.clock.Advance(time.Hour)
			}
			current.Store(&good)
			if n := h.once(t); n != 1 {
				t.Fatalf("the retry after the fix handled %d messages", n)
			}
			got := h.message(t, m.ID)
			if got.State != gateway.MessageDelivered || got.Attempts != 3 {
				t.Fatalf("state %s after %d attempts (%s), want delivered after 3", got.State, got.Attempts, got.LastError)
			}
			mu.Lock()
			defer mu.Unlock()
			if len(requestIDs) != 1 || requestIDs[0] != m.RequestID {
				t.Errorf("the receiver handled %v, want the message once with X-Request-Id %s", requestIDs, m.RequestID)
			}
		})
	}
}

// flakyOutbox fails RecordAttempt with EUNAVAILABLE while down is above
// zero, counting it down, as a store does while its database restarts.
type flakyOutbox struct {
	gateway.Outbox
	down atomic.Int32
}

func (f *flakyOutbox) RecordAttempt(ctx context.Context, messageID, leaseID string, a gateway.Attempt) error {
	if f.down.Add(-1) >= 0 {
		return &gateway.Error{Code: gateway.EUNAVAILABLE, Message: "the store is unavailable; try again shortly"}
	}
	return f.Outbox.RecordAttempt(ctx, messageID, leaseID, a)
}

// TestRecordWhileStoreUnavailable: when the store is unavailable just after
// a post, the worker keeps trying to record the outcome instead of leaving
// the message leased, which would post it again when the lease ran out.
func TestRecordWhileStoreUnavailable(t *testing.T) {
	var posts atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		posts.Add(1)
		answer(200, nil, "")(w, r)
	}))
	defer srv.Close()
	h := newHarness(t, settings(), svc("u-cope", srv.URL, "2000010001", Transport{}))
	flaky := &flakyOutbox{Outbox: h.store}
	flaky.down.Store(4)
	h.worker.outbox = flaky
	m := queue(t, h.store, "CASE-1", "u-cope", target("2000010001"), t0)
	if n := h.once(t); n != 1 {
		t.Fatalf("handled %d", n)
	}
	if got := h.message(t, m.ID); got.State != gateway.MessageDelivered {
		t.Fatalf("state %s: the delivery was not recorded once the store was back", got.State)
	}
	if n := posts.Load(); n != 1 {
		t.Errorf("%d posts, want 1", n)
	}
	if n := h.logs.FilterMessage("the store is unavailable; recording the attempt again shortly").Len(); n != 4 {
		t.Errorf("%d retries logged, want 4", n)
	}
	if h.metrics.count("u-cope delivered") != 1 {
		t.Errorf("metrics %v", h.metrics.n)
	}
}
