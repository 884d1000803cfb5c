package config

import (
	"encoding/hex"
	"fmt"
	"os"
	"strings"
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

// Audit configures the decision records.
type Audit struct {
	// PseudonymKeyFile holds the key (at least 32 bytes, hex) of the student
	// pseudonym in decision records. Keep it secret and stable: a new key
	// makes earlier pseudonyms unfindable.
	PseudonymKeyFile string `json:"pseudonymKeyFile"`
}

// demoPseudonymKey is the pseudonym key of a demo configuration that names
// none. It is public, so it protects nothing: a real deployment must set
// audit.pseudonymKeyFile, and Validate insists.
var demoPseudonymKey = []byte("demo pseudonym key: not for real deployments!!")

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
	if c.Audit.PseudonymKeyFile == "" {
		if c.Demo {
			return demoPseudonymKey, nil
		}
		return nil, fmt.Errorf("audit.pseudonymKeyFile: required outside demo mode (a file holding at least 32 random bytes in hex, e.g. from `openssl rand -hex 32`)")
	}
	b, err := os.ReadFile(c.Audit.PseudonymKeyFile)
	if err != nil {
		return nil, fmt.Errorf("audit.pseudonymKeyFile: %w", err)
	}
	key, err := hex.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(key) < 32 {
		return nil, fmt.Errorf("audit.pseudonymKeyFile: the file must hold at least 32 bytes in hex")
	}
	if n := distinctBytes(key); n < minDistinctKeyBytes {
		return nil, fmt.Errorf("audit.pseudonymKeyFile: the key has only %d distinct byte values (at least %d needed): it was not drawn at random; make one with `openssl rand -hex 32`", n, minDistinctKeyBytes)
	}
	return key, nil
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
