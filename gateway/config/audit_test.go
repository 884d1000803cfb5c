package config

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestAuditKeys: the chain keyring takes several keys, newest first, each
// held to the pseudonym key's entropy rule; the signing key file takes
// Ed25519 keys in PKCS #8 PEM and refuses any other kind; outside demo mode
// both are required, in demo mode the published keys stand in.
func TestAuditKeys(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	const k1 = "3aca4bf82a91897f9957e76680656fdbec7660d190ca3d90ddc01494153a6165"
	const k2 = "9f1c2e7d40b5a8836e11d4c09a7b3f25e6d80c4b1a97f3e2d5c6b8a0f1e2d3c4"
	c := &Config{Audit: Audit{ChainKeyFile: write("ring", k2+"\n"+k1+"\n")}}
	if ks, err := c.ChainKeys(); err != nil || ks.Current() == "" {
		t.Fatalf("keyring: %v", err)
	}
	c.Audit.ChainKeyFile = write("weak", k2+"\n"+strings.Repeat("00", 32)+"\n")
	if _, err := c.ChainKeys(); err == nil || !strings.Contains(err.Error(), "audit.chainKeyFile") || !strings.Contains(err.Error(), "distinct byte values") {
		t.Fatalf("a weak old key: %v", err)
	}

	pemOf := func(k any) string {
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	}
	_, newKey, _ := ed25519.GenerateKey(rand.Reader)
	_, oldKey, _ := ed25519.GenerateKey(rand.Reader)
	c.Audit.SigningKeyFile = write("signing.pem", pemOf(newKey)+pemOf(oldKey))
	if keys, err := c.SigningKeys(); err != nil || len(keys) != 2 || !keys[0].Equal(newKey) {
		t.Fatalf("signing keys: %d, %v", len(keys), err)
	}
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	c.Audit.SigningKeyFile = write("ec.pem", pemOf(ec))
	if _, err := c.SigningKeys(); err == nil || !strings.Contains(err.Error(), "Ed25519") {
		t.Fatalf("an ECDSA key: %v", err)
	}

	c = &Config{}
	if _, err := c.ChainKeys(); err == nil || !strings.Contains(err.Error(), "required outside demo mode") {
		t.Fatalf("no chain key outside demo mode: %v", err)
	}
	if _, err := c.SigningKeys(); err == nil || !strings.Contains(err.Error(), "required outside demo mode") {
		t.Fatalf("no signing key outside demo mode: %v", err)
	}
	c.Demo = true
	if _, err := c.ChainKeys(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.SigningKeys(); err != nil {
		t.Fatal(err)
	}
}

// TestCheckpointSettings: checkpoints go beside the SQLite file unless set;
// PostgreSQL outside demo mode needs a directory named.
func TestCheckpointSettings(t *testing.T) {
	a := Audit{}
	a.defaults(Store{Driver: "sqlite", Path: "/var/lib/gateway/gateway.db"})
	if a.CheckpointDir != "/var/lib/gateway/checkpoints" || a.CheckpointInterval.D() != time.Hour {
		t.Fatalf("defaults: %+v", a)
	}
	a = Audit{}
	a.defaults(Store{Driver: "postgres", DSN: "postgres://db/gateway"})
	if err := a.validate(false); err == nil || !strings.Contains(err.Error(), "audit.checkpointDir") {
		t.Fatalf("postgres without a checkpoint directory: %v", err)
	}
	if err := a.validate(true); err != nil {
		t.Fatalf("demo on postgres: %v", err)
	}
}
