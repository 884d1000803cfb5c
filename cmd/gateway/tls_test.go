package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/student-mh-referrals/gateway/gateway/config"
)

// testCA issues certificates for the TLS tests.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue returns a leaf certificate (server or client) and its key as PEM.
func (ca *testCA) issue(t *testing.T, cn string, server bool) (tls.Certificate, []byte, []byte) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
	} else {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return pair, certPEM, keyPEM
}

// TestMutualTLS serves the API over TLS with client certificates: a
// registered certificate authenticates its client, an unregistered one from
// the same CA is 401, one from another CA fails the handshake, and a plain
// bearer token still works over TLS.
func TestMutualTLS(t *testing.T) {
	dir := t.TempDir()
	ca := newTestCA(t)
	_, srvCert, srvKey := ca.issue(t, "gateway", true)
	client, _, _ := ca.issue(t, "liverpool-cms", false)
	stranger, _, _ := ca.issue(t, "unknown", false)
	outsider, _, _ := newTestCA(t).issue(t, "outsider", false)
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	sum := sha256.Sum256(client.Certificate[0])

	ctx := context.Background()
	a, err := newApp(ctx, "", io.Discard, "error")
	if err != nil {
		t.Fatal(err)
	}
	a.cfg.Clients = append(a.cfg.Clients, config.Client{ID: "liverpool-mtls", Institution: "10006842", Roles: []string{"submitter"}, CertSHA256: hex.EncodeToString(sum[:])})
	a.cfg.TLS = config.TLS{CertFile: write("srv.pem", srvCert), KeyFile: write("srv.key", srvKey), ClientCAFile: write("ca.pem", ca.pem)}
	tlsCfg, err := serverTLS(a.cfg.TLS)
	if err != nil {
		t.Fatal(err)
	}
	store, err := openStore(ctx, config.Store{Driver: "sqlite", Path: filepath.Join(dir, "gateway.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	key, _ := a.cfg.PseudonymKey()
	api, _ := a.server(store, key)
	srv := httptest.NewUnstartedServer(api.Handler())
	srv.TLS = tlsCfg
	srv.StartTLS()
	defer srv.Close()

	roots := x509.NewCertPool()
	roots.AddCert(ca.cert)
	body := readCase(t, "allow-liverpool-u-cope")
	tests := []struct {
		name      string
		cert      *tls.Certificate
		token     string
		status    int
		handshake bool // the TLS handshake must fail
	}{
		{"registered client certificate", &client, "", 200, false},
		{"unregistered certificate", &stranger, "", 401, false},
		{"certificate of another CA", &outsider, "", 0, true},
		{"bearer token over TLS", nil, liverpool, 200, false},
		{"nothing", nil, "", 401, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tc := &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
			if tt.cert != nil {
				tc.Certificates = []tls.Certificate{*tt.cert}
			}
			c := &http.Client{Transport: &http.Transport{TLSClientConfig: tc}, Timeout: 10 * time.Second}
			req, _ := http.NewRequest("POST", srv.URL+"/v1/referrals/$evaluate", bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			if tt.token != "" {
				req.Header.Set("Authorization", "Bearer "+tt.token)
			}
			resp, err := c.Do(req)
			if tt.handshake {
				if err == nil {
					resp.Body.Close()
					t.Fatalf("a certificate from another CA was accepted (status %d)", resp.StatusCode)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.status)
			}
		})
	}
}
