package config

import (
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/student-mh-referrals/gateway/gateway"
)

// Store says where the gateway keeps referrals, the outbox and the decision
// records.
type Store struct {
	// Driver is "sqlite" (embedded, one machine; the default) or
	// "postgres" (several replicas).
	Driver string `json:"driver"`
	// Path is the SQLite database file.
	Path string `json:"path"`
	// DSN is the PostgreSQL connection string.
	DSN string `json:"dsn"`
}

// Audit configures the decision records and what keeps them honest against
// whoever can write the database (docs/security.md): the chain key, kept
// outside the database, and signed checkpoints of every chain's head.
type Audit struct {
	// PseudonymKeyFile holds the key (at least 32 bytes, hex) of the student
	// pseudonym in decision records. Keep it secret and stable: a new key
	// makes earlier pseudonyms unfindable.
	PseudonymKeyFile string `json:"pseudonymKeyFile"`
	// ChainKeyFile is the chain keyring: keys of at least 32 random bytes in
	// hex, one a line. The first keys (HMAC-SHA256) every new decision
	// record; the others, older keys newest first, stay to verify the
	// records written before a rotation.
	ChainKeyFile string `json:"chainKeyFile"`
	// SigningKeyFile holds the Ed25519 key that signs checkpoints (PKCS #8
	// PEM: `openssl genpkey -algorithm ed25519`).
	// To rotate, put the new key first and keep the old one after it until
	// the next checkpoint, which the old key then endorses.
	SigningKeyFile string `json:"signingKeyFile"`
	// CheckpointDir is where checkpoints are written and read (default:
	// "checkpoints" beside the SQLite file; required with postgres outside
	// demo mode). Copy it off the host.
	CheckpointDir string `json:"checkpointDir"`
	// CheckpointInterval is how often `gateway serve` writes a checkpoint
	// (default 1h).
	CheckpointInterval Duration `json:"checkpointInterval"`
}

// Demo keys: public, so they protect nothing. A real deployment must set
// the key files; outside demo mode the gateway refuses to run without them.
var (
	demoPseudonymKey = []byte("demo pseudonym key: not for real deployments!!")
	demoChainKey     = []byte("demo chain key: published, so it protects nothing")
	demoSigningSeed  = sha256.Sum256([]byte("demo checkpoint signing key: published"))
)

func (a *Audit) defaults(s Store) {
	if a.CheckpointDir == "" && s.Driver == "sqlite" {
		a.CheckpointDir = filepath.Join(filepath.Dir(s.Path), "checkpoints")
	}
	if a.CheckpointInterval == 0 {
		a.CheckpointInterval = Duration(time.Hour)
	}
}

func (a Audit) validate(demo bool) error {
	switch {
	case a.CheckpointDir == "" && !demo:
		return fmt.Errorf("audit.checkpointDir: required with store.driver postgres (a directory to write signed checkpoints to)")
	case a.CheckpointInterval.D() < time.Minute:
		return fmt.Errorf("audit.checkpointInterval %s: at least 1m", a.CheckpointInterval.D())
	}
	return nil
}

func (s *Store) defaults() {
	if s.Driver == "" {
		s.Driver = "sqlite"
	}
	if s.Driver == "sqlite" && s.Path == "" {
		s.Path = "data/gateway.db"
	}
}

func (s Store) validate() error {
	switch s.Driver {
	case "sqlite":
		if s.DSN != "" {
			return fmt.Errorf("store.dsn is for postgres; sqlite takes store.path")
		}
	case "postgres":
		if s.DSN == "" {
			return fmt.Errorf("store.dsn: a PostgreSQL connection string is required with driver postgres")
		}
	default:
		return fmt.Errorf("store.driver %q: use sqlite or postgres", s.Driver)
	}
	return nil
}

// PseudonymKey returns the key of the student pseudonym: read from
// audit.pseudonymKeyFile, or the public demo key in a demo configuration.
func (c *Config) PseudonymKey() ([]byte, error) {
	keys, err := c.keyFile("audit.pseudonymKeyFile", c.Audit.PseudonymKeyFile, demoPseudonymKey)
	if err != nil {
		return nil, err
	}
	return keys[0], nil
}

// ChainKeys returns the chain keyring: read from audit.chainKeyFile, or the
// public demo key in a demo configuration.
func (c *Config) ChainKeys() (gateway.ChainKeys, error) {
	keys, err := c.keyFile("audit.chainKeyFile", c.Audit.ChainKeyFile, demoChainKey)
	return keys, err
}

// SigningKeys returns the checkpoint signing keys, newest first: read from
// audit.signingKeyFile, or the public demo key in a demo configuration.
func (c *Config) SigningKeys() ([]ed25519.PrivateKey, error) {
	const field = "audit.signingKeyFile"
	if c.Audit.SigningKeyFile == "" {
		if c.Demo {
			return []ed25519.PrivateKey{ed25519.NewKeyFromSeed(demoSigningSeed[:])}, nil
		}
		return nil, fmt.Errorf("%s: required outside demo mode (an Ed25519 key in PEM, from `openssl genpkey -algorithm ed25519 -out signing.pem`)", field)
	}
	b, err := os.ReadFile(c.Audit.SigningKeyFile)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", field, err)
	}
	var out []ed25519.PrivateKey
	for blk, rest := pem.Decode(b); blk != nil; blk, rest = pem.Decode(rest) {
		k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
		ek, ok := k.(ed25519.PrivateKey)
		if err != nil || !ok {
			return nil, fmt.Errorf("%s: every PEM block must be an Ed25519 private key (PKCS #8)", field)
		}
		out = append(out, ek)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no PEM private key in the file", field)
	}
	return out, nil
}

// keyFile reads a file of hex keys, one a line, each at least 32 bytes and
// drawn at random; demo stands in for a missing file in demo mode.
func (c *Config) keyFile(field, path string, demo []byte) ([][]byte, error) {
	if path == "" {
		if c.Demo {
			return [][]byte{demo}, nil
		}
		return nil, fmt.Errorf("%s: required outside demo mode (a file holding at least 32 random bytes in hex, e.g. from `openssl rand -hex 32`)", field)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", field, err)
	}
	var keys [][]byte
	for _, line := range strings.Fields(string(b)) {
		key, err := hex.DecodeString(line)
		if err != nil || len(key) < 32 {
			return nil, fmt.Errorf("%s: the file must hold keys of at least 32 bytes in hex", field)
		}
		if n := distinctBytes(key); n < minDistinctKeyBytes {
			return nil, fmt.Errorf("%s: the key has only %d distinct byte values (at least %d needed): it was not drawn at random; make one with `openssl rand -hex 32`", field, n, minDistinctKeyBytes)
		}
		keys = append(keys, key)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("%s: the file must hold keys of at least 32 bytes in hex", field)
	}
	return keys, nil
}

// minDistinctKeyBytes is the fewest distinct byte values a pseudonym key
// may hold. 32 random bytes hold about 30 (fewer than 20 has odds below
// one in a billion), while an all-zero key holds 1 and a short pattern
// repeated a few: such a key is guessable, and with it every pseudonym.
const minDistinctKeyBytes = 20

func distinctBytes(b []byte) int {
	var seen [256]bool
	n := 0
	for _, c := range b {
		if !seen[c] {
			seen[c], n = true, n+1
		}
	}
	return n
}
