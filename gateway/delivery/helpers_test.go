package delivery

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/student-mh-referrals/gateway/gateway"
	"github.com/student-mh-referrals/gateway/gateway/sqlite"
)

// t0 is when the test messages are queued.
var t0 = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

// clock is a settable clock for the worker and the store.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: t0} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// metrics counts ObserveDelivery calls by "service result".
type metrics struct {
	mu sync.Mutex
	n  map[string]int
}

func (m *metrics) ObserveDelivery(service, result string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.n == nil {
		m.n = map[string]int{}
	}
	m.n[service+" "+result]++
}

func (m *metrics) count(key string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.n[key]
}

// openStore opens a fresh SQLite store.
func openStore(t testing.TB) *sqlite.DB {
	t.Helper()
	return openStoreAt(t, filepath.Join(t.TempDir(), "gateway.db"))
}

func openStoreAt(t testing.TB, path string) *sqlite.DB {
	t.Helper()
	db, err := sqlite.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

const (
	institution = "10007798"
	targetSys   = "https://fhir.nhs.uk/Id/dos-service-id"
)

func target(value string) gateway.Identifier {
	return gateway.Identifier{System: targetSys, Value: value}
}

// patientName is in every test message and must never reach a log line.
const patientName = "Alexandra Testperson"

// message builds a BaRS referral message for a case, addressed to target:
// the shape the sandbox checks, with synthetic personal data.
func message(caseID string, tgt gateway.Identifier) []byte {
	id := func(kind string) string { return gateway.DeriveID("test", kind, caseID) }
	urn := func(kind string) string { return "urn:uuid:" + id(kind) }
	b := map[string]any{
		"resourceType": "Bundle", "id": id("bundle"), "type": "message", "timestamp": "2026-11-23T12:00:00Z",
		"entry": []any{
			map[string]any{"fullUrl": urn("header"), "resource": map[string]any{
				"resourceType": "MessageHeader", "id": id("header"),
				"eventCoding": map[string]any{"system": "https://fhir.nhs.uk/CodeSystem/message-events-bars", "code": "servicerequest-request"},
				"reason":      map[string]any{"coding": []any{map[string]any{"system": "https://fhir.nhs.uk/CodeSystem/message-reason-bars", "code": "new"}}},
				"destination": []any{map[string]any{"endpoint": tgt.System + "|" + tgt.Value, "receiver": map[string]any{"reference": urn("trust")}}},
				"sender":      map[string]any{"reference": urn("university")},
				"source":      map[string]any{"software": "student-mh-referral-gateway", "endpoint": "http://127.0.0.1:8080/fhir"},
				"focus":       []any{map[string]any{"reference": urn("sr")}},
			}},
			map[string]any{"fullUrl": urn("sr"), "resource": map[string]any{
				"resourceType": "ServiceRequest", "id": id("sr"), "status": "active", "intent": "order",
				"identifier": []any{map[string]any{"system": gateway.FHIRBase + "/Id/case-id/" + institution, "value": caseID}},
				"subject":    map[string]any{"reference": urn("patient")},
			}},
			map[string]any{"fullUrl": urn("patient"), "resource": map[string]any{
				"resourceType": "Patient", "id": id("patient"),
				"identifier": []any{map[string]any{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": "9990000018"}},
				"name":       []any{map[string]any{"text": patientName}},
			}},
			map[string]any{"fullUrl": urn("university"), "resource": map[string]any{
				"resourceType": "Organization", "id": id("university"),
				"identifier": []any{map[string]any{"system": gateway.UKPRNSystem, "value": institution}},
				"name":       "The University of Manchester",
			}},
			map[string]any{"fullUrl": urn("trust"), "resource": map[string]any{
				"resourceType": "Organization", "id": id("trust"),
				"identifier": []any{map[string]any{"system": "https://fhir.nhs.uk/Id/ods-organization-code", "value": "RXV"}},
				"name":       "Greater Manchester Mental Health NHS Foundation Trust",
			}},
		},
	}
	out, _ := json.Marshal(b)
	return out
}

// university is the sender of the test messages, as message names it.
var university = gateway.Sender{
	Identifier: []gateway.Identifier{{System: gateway.UKPRNSystem, Value: institution}},
	Name:       "The University of Manchester",
}

// queue accepts a referral for caseID to service at time at and returns its
// outbox message.
func queue(t testing.TB, s gateway.Store, caseID, service string, tgt gateway.Identifier, at time.Time) gateway.OutboxMessage {
	t.Helper()
	hash := gateway.DeriveID("content", caseID)
	req := gateway.AcceptRequest{
		Institution: institution, CaseID: caseID, ContentHash: hash, ServiceID: service, At: at,
		Record: []byte(`{}`), Bundle: message(caseID, tgt), Sender: university,
		Decision: gateway.DecisionRecord{DecisionID: gateway.DeriveID("decision", hash), At: at, Body: []byte(`{"allow":true}`)},
	}
	res, err := s.Accept(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	return res.Message
}

// settings are fast, deterministic delivery settings for tests.
func settings() Settings {
	return Settings{
		Workers: 2, MaxAttempts: 5,
		MaxAge:      24 * time.Hour,
		BaseBackoff: 10 * time.Second, MaxBackoff: time.Hour,
		Timeout: 2 * time.Second, Lease: time.Minute,
		PollInterval: 10 * time.Millisecond,
	}
}

// svc is a service at endpoint with the given target value and transport.
func svc(id, endpoint, targetValue string, tr Transport) Service {
	return Service{Service: gateway.Service{
		ID: id, Name: id, Endpoint: endpoint, Target: target(targetValue),
		Organization: gateway.Organization{Name: "Trust", ODSCode: "RXV"},
	}, Transport: tr}
}

// harness is a worker on a store with a fake clock, metrics and an
// observed log.
type harness struct {
	store   *sqlite.DB
	clock   *clock
	metrics *metrics
	logs    *observer.ObservedLogs
	worker  *Worker
}

func newHarness(t *testing.T, set Settings, services ...Service) *harness {
	t.Helper()
	h := &harness{store: openStore(t), clock: newClock(), metrics: &metrics{}}
	core, logs := observer.New(zap.DebugLevel)
	h.logs = logs
	w, err := New(Options{
		Outbox: h.store, Services: services, Settings: set,
		Source: gateway.Source{Software: "student-mh-referral-gateway", Version: "1.2.3"},
		Logger: zap.New(core), Metrics: h.metrics, Now: h.clock.Now, Rand: func() float64 { return 0 },
	})
	if err != nil {
		t.Fatal(err)
	}
	h.worker = w
	return h
}

// once runs DeliverOnce and returns how many messages it handled.
func (h *harness) once(t *testing.T) int {
	t.Helper()
	n, err := h.worker.DeliverOnce(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func (h *harness) message(t *testing.T, id string) gateway.OutboxMessage {
	t.Helper()
	m, err := h.store.Message(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// pki is a throwaway CA with a server certificate for 127.0.0.1 and a
// client certificate, written as PEM files.
type pki struct {
	dir                       string
	caFile, certFile, keyFile string // the CA, and the client certificate for mTLS
	pool                      *x509.CertPool
	server                    tls.Certificate
	otherCAFile               string // a CA that signed nothing here
}

func newPKI(t *testing.T) *pki {
	t.Helper()
	p := &pki{dir: t.TempDir()}
	caKey, caCert, caPEM := selfSigned(t, "test CA")
	p.caFile = writeFile(t, p.dir, "ca.pem", caPEM)
	p.pool = x509.NewCertPool()
	p.pool.AddCert(caCert)
	_, _, otherPEM := selfSigned(t, "another CA")
	p.otherCAFile = writeFile(t, p.dir, "other-ca.pem", otherPEM)

	srvCert, srvKey := issue(t, caCert, caKey, "127.0.0.1", x509.ExtKeyUsageServerAuth)
	var err error
	p.server, err = tls.X509KeyPair(srvCert, srvKey)
	if err != nil {
		t.Fatal(err)
	}
	cliCert, cliKey := issue(t, caCert, caKey, "student-mh-referral-gateway", x509.ExtKeyUsageClientAuth)
	p.certFile = writeFile(t, p.dir, "client.pem", cliCert)
	p.keyFile = writeFile(t, p.dir, "client-key.pem", cliKey)
	return p
}

func selfSigned(t *testing.T, cn string) (*ecdsa.PrivateKey, *x509.Certificate, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return key, cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func issue(t *testing.T, ca *x509.Certificate, caKey *ecdsa.PrivateKey, name string, usage x509.ExtKeyUsage) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
	}
	if ip := net.ParseIP(name); ip != nil {
		tmpl.IPAddresses = []net.IP{ip}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
}

func writeFile(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// uniqueCase names test cases distinctly.
func uniqueCase(i int) string { return fmt.Sprintf("CASE-%04d", i) }
