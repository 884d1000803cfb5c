package gateway_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/student-mh-referrals/gateway/gateway"
)

// headsLog is a decision log that only knows its chain heads.
type headsLog struct {
	gateway.AuditTrail
	heads []gateway.ChainHead
}

func (l *headsLog) Chains(context.Context) ([]gateway.ChainHead, error) { return l.heads, nil }

func signer(name string) ed25519.PrivateKey {
	seed := sha256.Sum256([]byte(name))
	return ed25519.NewKeyFromSeed(seed[:])
}

func pub(k ed25519.PrivateKey) ed25519.PublicKey { return k.Public().(ed25519.PublicKey) }

// TestCheckpointChain: checkpoints are numbered, linked and signed; a
// rotation is endorsed by the old key; and every way of tampering with the
// files (altering one, removing one from the middle, appending one signed
// by another key, with or without naming the real key) is refused.
func TestCheckpointChain(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	log := &headsLog{heads: []gateway.ChainHead{{Institution: "10007164", Seq: 3, Hash: strings.Repeat("a", 64)}}}
	at := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	old, cur, evil := signer("old"), signer("current"), signer("attacker")
	write := func(keys ...ed25519.PrivateKey) (*gateway.Checkpoint, error) {
		at = at.Add(time.Hour)
		log.heads[0].Seq++
		return gateway.WriteCheckpoint(ctx, log, dir, keys, at)
	}
	for range 2 {
		if _, err := write(old); err != nil {
			t.Fatal(err)
		}
	}
	if cp, err := gateway.WriteCheckpoint(ctx, log, dir, []ed25519.PrivateKey{old}, at.Add(time.Hour)); err != nil || cp.Number != 2 {
		t.Fatalf("unchanged heads wrote a checkpoint: %+v, %v", cp, err)
	}
	if _, err := write(cur); err == nil || !strings.Contains(err.Error(), "to rotate, keep that key") {
		t.Fatalf("a rotation without the old key: %v", err)
	}
	cp, err := write(cur, old)
	if err != nil || cp.Number != 3 || cp.PreviousPublicKey == "" {
		t.Fatalf("rotation: %+v, %v", cp, err)
	}
	if _, err := write(cur); err != nil {
		t.Fatal(err)
	}
	good := gateway.CheckpointDir{Dir: dir, Trusted: pub(cur)}
	if cps, err := good.Load(); err != nil || len(cps) != 4 || cps[3].Chains[0].Seq != 8 {
		t.Fatalf("load: %d checkpoints, %v", len(cps), err)
	}
	if _, err := (gateway.CheckpointDir{Dir: dir, Trusted: pub(old)}).Latest(); err == nil {
		t.Fatal("the newest checkpoint was accepted under the retired key")
	}

	name := func(n int) string { return filepath.Join(dir, fmt.Sprintf("checkpoint-%08d.json", n)) }
	tampers := []struct {
		name string
		do   func(t *testing.T)
		want string
	}{
		{"a head altered", func(t *testing.T) {
			b, _ := os.ReadFile(name(2))
			os.WriteFile(name(2), bytes.Replace(b, []byte(`"seq":5`), []byte(`"seq":9`), 1), 0o644)
		}, "signature does not match"},
		{"one removed from the middle", func(t *testing.T) { os.Remove(name(2)) }, "is checkpoint 3 where checkpoint 2 belongs"},
		{"all replaced by a sequence under another key", func(t *testing.T) {
			for n := 1; n <= 4; n++ {
				os.Remove(name(n))
			}
			for range 2 {
				if _, err := write(evil); err != nil {
					t.Fatal(err)
				}
			}
		}, "not by the trusted key"},
		{"the old key's endorsement of the new one stripped", func(t *testing.T) {
			b, _ := os.ReadFile(name(3))
			os.WriteFile(name(3), bytes.Replace(b, []byte(`"previousKeySignature"`), []byte(`"x"`), 1), 0o644)
		}, "endorsement does not match"},
	}
	for _, tt := range tampers {
		t.Run(tt.name, func(t *testing.T) {
			saved := map[string][]byte{}
			files, _ := filepath.Glob(filepath.Join(dir, "*.json"))
			for _, f := range files {
				saved[f], _ = os.ReadFile(f)
			}
			t.Cleanup(func() {
				files, _ := filepath.Glob(filepath.Join(dir, "*.json"))
				for _, f := range files {
					os.Remove(f)
				}
				for f, b := range saved {
					os.WriteFile(f, b, 0o644)
				}
			})
			tt.do(t)
			if _, err := good.Latest(); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want an error with %q", err, tt.want)
			}
		})
	}
	if _, err := good.Latest(); err != nil {
		t.Fatalf("restored: %v", err)
	}
}
