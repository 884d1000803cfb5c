package sqlstore_test

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"database/sql"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the attacker's own PostgreSQL connection

	"github.com/student-mh-referrals/gateway/gateway"
	"github.com/student-mh-referrals/gateway/gateway/postgres"
	"github.com/student-mh-referrals/gateway/gateway/postgres/pgtest"
	"github.com/student-mh-referrals/gateway/gateway/sqlite"
)

// These tests play an attacker who can write the database but holds neither
// the chain key nor the checkpoint signing key (issue #15 §1): they lift the
// append-only guard as such a person can (drop the SQLite triggers, disable
// the PostgreSQL ones) and rewrite the decision records with SQL of their
// own. Each attack is run twice: against a store without a chain key or
// checkpoints, where verify finds nothing (the weakness), and against a keyed
// store with a signed checkpoint, where verify names the chain.

const (
	tamperA = "10007164"
	tamperB = "10006842"
)

var (
	chainKey1   = sha256.Sum256([]byte("tamper test chain key 1"))
	chainKey2   = sha256.Sum256([]byte("tamper test chain key 2"))
	signingKey  = ed25519.NewKeyFromSeed(chainKey1[:])
	tamperStart = time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
)

// keyedStore is what the gateway/sqlite and gateway/postgres stores are.
type keyedStore interface {
	gateway.Store
	SetChainKeys(gateway.ChainKeys)
	StartKeyedSegments(ctx context.Context, at time.Time) ([]string, error)
}

// target is a store, the attacker's own connection to its database, and
// what lifts the append-only guard there.
type target struct {
	store   keyedStore
	raw     *sql.DB
	unguard []string
}

func openTarget(t *testing.T, driver string) target {
	t.Helper()
	ctx := context.Background()
	var tg target
	var err error
	switch driver {
	case "sqlite":
		path := filepath.Join(t.TempDir(), "gateway.db")
		var db *sqlite.DB
		if db, err = sqlite.Open(ctx, path); err == nil {
			tg.store = db
			tg.raw, err = sql.Open("sqlite", path+"?_pragma=busy_timeout(10000)")
		}
		tg.unguard = []string{`DROP TRIGGER IF EXISTS decision_records_no_update`, `DROP TRIGGER IF EXISTS decision_records_no_delete`}
	case "postgres":
		dsn := pgtest.FreshSchema(t)
		var db *postgres.DB
		if db, err = postgres.Open(ctx, dsn); err == nil {
			tg.store = db
			tg.raw, err = sql.Open("pgx", dsn)
		}
		tg.unguard = []string{`ALTER TABLE decision_records DISABLE TRIGGER USER`}
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tg.raw.Close(); tg.store.Close() })
	return tg
}

// attack runs the attacker's statements with the guard lifted.
func (tg target) attack(t *testing.T, stmts ...string) {
	t.Helper()
	for _, q := range append(append([]string{}, tg.unguard...), stmts...) {
		if _, err := tg.raw.Exec(q); err != nil {
			t.Fatalf("attacker's %q: %v", q, err)
		}
	}
}

// seed writes an accepted referral and six decisions to tamperA's chain and
// three to tamperB's.
func seed(t *testing.T, s gateway.Store) {
	t.Helper()
	ctx := context.Background()
	rec := json.RawMessage(`{"caseId":"C1"}`)
	if _, err := s.Accept(ctx, gateway.AcceptRequest{
		Institution: tamperA, CaseID: "C1", ContentHash: "h1", ServiceID: "u-cope", Record: rec, Bundle: rec, At: tamperStart,
		Decision: gateway.DecisionRecord{DecisionID: "accept-1", Body: json.RawMessage(`{"allow":true}`)},
	}); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 6; i++ {
		appendN(t, s, tamperA, i)
		if i <= 3 {
			appendN(t, s, tamperB, i)
		}
	}
}

func appendN(t *testing.T, s gateway.Store, inst string, i int) {
	t.Helper()
	if _, err := s.AppendDecision(context.Background(), gateway.DecisionRecord{
		Institution: inst, DecisionID: fmt.Sprintf("%s-d%d", inst, i), At: tamperStart.Add(time.Duration(i) * time.Second),
		Body: json.RawMessage(fmt.Sprintf(`{"allow":false,"n":%d}`, i)),
	}); err != nil {
		t.Fatal(err)
	}
}

// verifyAll is `gateway audit verify`: every chain the store holds or the
// checkpoint lists, each held to the checkpoint.
func verifyAll(t *testing.T, s gateway.Store, cp *gateway.Checkpoint) map[string]gateway.ChainVerification {
	t.Helper()
	ctx := context.Background()
	names, err := gateway.ChainNames(ctx, s, cp)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]gateway.ChainVerification{}
	for _, n := range names {
		v, err := s.Verify(ctx, n)
		if err == nil {
			err = cp.Check(ctx, s, &v)
		}
		if err != nil {
			t.Fatal(err)
		}
		out[n] = v
	}
	return out
}

func records(t *testing.T, s gateway.Store, inst string) []gateway.DecisionRecord {
	t.Helper()
	recs, err := s.Decisions(context.Background(), inst, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

// attacks are the four of issue #15 §1, each with the chain it must be
// caught on and how.
var attacks = []struct {
	name    string
	do      func(t *testing.T, tg target)
	inst    string
	problem gateway.ChainProblem
	detail  string
}{
	{"a cut the newest records and move the head back", func(t *testing.T, tg target) {
		recs := records(t, tg.store, tamperA)
		tg.attack(t, `DELETE FROM decision_records WHERE institution = '`+tamperA+`' AND seq > 4`,
			fmt.Sprintf(`UPDATE decision_chains SET seq = 4, hash = '%s' WHERE institution = '%s'`, recs[3].Hash, tamperA))
	}, tamperA, gateway.ChainRemoved, "the chain ends at record 4 but had 7 records"},
	{"b rewrite the whole chain consistently", func(t *testing.T, tg target) {
		var stmts []string
		prev := gateway.GenesisHash
		for _, r := range records(t, tg.store, tamperA) {
			r.Body = json.RawMessage(strings.ReplaceAll(string(r.Body), "false", "true"))
			r.PrevHash, r.KeyID = prev, ""
			r.Hash = gateway.DecisionHash(r)
			prev = r.Hash
			stmts = append(stmts, fmt.Sprintf(`UPDATE decision_records SET body = '%s', prev_hash = '%s', hash = '%s', key_id = '' WHERE institution = '%s' AND seq = %d`,
				r.Body, r.PrevHash, r.Hash, tamperA, r.Seq))
		}
		tg.attack(t, append(stmts, fmt.Sprintf(`UPDATE decision_chains SET hash = '%s' WHERE institution = '%s'`, prev, tamperA))...)
	}, tamperA, gateway.ChainAltered, "record 7 is not the record that was signed"},
	{"c delete a whole chain with its head", func(t *testing.T, tg target) {
		tg.attack(t, `DELETE FROM decision_records WHERE institution = '`+tamperB+`'`, `DELETE FROM decision_chains WHERE institution = '`+tamperB+`'`)
	}, tamperB, gateway.ChainMissing, "the chain is missing: it had 3 records"},
	{"d append a forged record, correctly chained", func(t *testing.T, tg target) {
		recs := records(t, tg.store, tamperA)
		head := recs[len(recs)-1]
		forged := gateway.DecisionRecord{Institution: tamperA, Seq: head.Seq + 1, DecisionID: "forged", At: head.At,
			Body: json.RawMessage(`{"allow":true}`), PrevHash: head.Hash}
		forged.Hash = gateway.DecisionHash(forged)
		tg.attack(t, fmt.Sprintf(`INSERT INTO decision_records (institution, seq, decision_id, at, body, prev_hash, hash, key_id)
			SELECT institution, %d, 'forged', at, '{"allow":true}', hash, '%s', '' FROM decision_records WHERE institution = '%s' AND seq = %d`,
			forged.Seq, forged.Hash, tamperA, head.Seq),
			fmt.Sprintf(`UPDATE decision_chains SET seq = %d, hash = '%s' WHERE institution = '%s'`, forged.Seq, forged.Hash, tamperA))
	}, tamperA, gateway.ChainAltered, "record 8 is under an older chain key, or none, than the record before it"},
}

func TestTamperCaught(t *testing.T) {
	ctx := context.Background()
	for _, driver := range []string{"sqlite", "postgres"} {
		for _, a := range attacks {
			t.Run(driver+"/"+a.name[:1]+"/unkeyed-no-checkpoint", func(t *testing.T) {
				tg := openTarget(t, driver)
				seed(t, tg.store)
				a.do(t, tg)
				for inst, v := range verifyAll(t, tg.store, nil) {
					if !v.OK {
						t.Errorf("%s: %+v; the plain chain was expected to hide the attack", inst, v)
					}
				}
			})
			t.Run(driver+"/"+a.name[:1]+"/keyed-checkpointed", func(t *testing.T) {
				tg := openTarget(t, driver)
				tg.store.SetChainKeys(gateway.ChainKeys{chainKey1[:]})
				seed(t, tg.store)
				dir := t.TempDir()
				if _, err := gateway.WriteCheckpoint(ctx, tg.store, dir, []ed25519.PrivateKey{signingKey}, tamperStart.Add(time.Hour)); err != nil {
					t.Fatal(err)
				}
				a.do(t, tg)
				cp, err := gateway.CheckpointDir{Dir: dir, Trusted: signingKey.Public().(ed25519.PublicKey)}.Latest()
				if err != nil || cp == nil {
					t.Fatalf("checkpoint: %v, %v", cp, err)
				}
				for inst, v := range verifyAll(t, tg.store, cp) {
					switch {
					case inst != a.inst && !v.OK:
						t.Errorf("%s: %+v; only %s was attacked", inst, v, a.inst)
					case inst == a.inst && (v.OK || v.Problem != a.problem || !strings.Contains(v.Detail, a.detail)):
						t.Errorf("%s: %+v; want %s: %q", inst, v, a.problem, a.detail)
					case inst == a.inst:
						t.Logf("%s %s: %s at record %d: %s", driver, inst, v.Problem, v.BadSeq, v.Detail)
					}
				}
			})
		}
	}
}

// TestTamperWindow shows what a checkpoint cannot cover: records written
// since the last one can be cut unseen (docs/security.md), and a chain
// deleted with its head and no checkpoint is still found by its referrals.
func TestTamperWindow(t *testing.T) {
	ctx := context.Background()
	tg := openTarget(t, "sqlite")
	tg.store.SetChainKeys(gateway.ChainKeys{chainKey1[:]})
	seed(t, tg.store)
	dir := t.TempDir()
	cp, err := gateway.WriteCheckpoint(ctx, tg.store, dir, []ed25519.PrivateKey{signingKey}, tamperStart.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, tg.store, tamperA, 7)
	head := records(t, tg.store, tamperA)[6]
	tg.attack(t, `DELETE FROM decision_records WHERE institution = '`+tamperA+`' AND seq = 8`,
		fmt.Sprintf(`UPDATE decision_chains SET seq = 7, hash = '%s' WHERE institution = '%s'`, head.Hash, tamperA))
	if v := verifyAll(t, tg.store, cp)[tamperA]; !v.OK {
		t.Fatalf("a cut after the checkpoint was caught: %+v; update docs/security.md", v)
	}
	tg.attack(t, `DELETE FROM decision_records WHERE institution = '`+tamperA+`'`, `DELETE FROM decision_chains WHERE institution = '`+tamperA+`'`)
	if v := verifyAll(t, tg.store, nil)[tamperA]; v.OK || v.Problem != gateway.ChainRemoved || !strings.Contains(v.Detail, "names decision accept-1") {
		t.Fatalf("a deleted chain whose referral remains: %+v", v)
	}
}

// TestChainKeyRotation: a new key starts a keyed segment in every chain;
// older records verify under the old key kept in the keyring; a record
// written under the old key after the rotation (by someone who kept it) is
// caught, and without the old key the old records cannot be checked.
func TestChainKeyRotation(t *testing.T) {
	ctx := context.Background()
	for _, driver := range []string{"sqlite", "postgres"} {
		t.Run(driver, func(t *testing.T) {
			tg := openTarget(t, driver)
			seed(t, tg.store) // plain: written before any key
			tg.store.SetChainKeys(gateway.ChainKeys{chainKey1[:]})
			if started, err := tg.store.StartKeyedSegments(ctx, tamperStart); err != nil || len(started) != 2 {
				t.Fatalf("keyed segments started in %v, %v; want both chains", started, err)
			}
			appendN(t, tg.store, tamperA, 7)
			ring := gateway.ChainKeys{chainKey2[:], chainKey1[:]}
			tg.store.SetChainKeys(ring)
			if started, _ := tg.store.StartKeyedSegments(ctx, tamperStart); len(started) != 2 {
				t.Fatalf("after the rotation, keyed segments started in %v", started)
			}
			appendN(t, tg.store, tamperA, 8)
			recs := records(t, tg.store, tamperA)
			want := []string{"", gateway.KeyID(chainKey1[:]), gateway.KeyID(chainKey2[:])}
			if got := []string{recs[0].KeyID, recs[7].KeyID, recs[len(recs)-1].KeyID}; fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("key ids %v, want %v", got, want)
			}
			for inst, v := range verifyAll(t, tg.store, nil) {
				if !v.OK {
					t.Fatalf("%s after rotation: %+v", inst, v)
				}
			}
			tg.store.SetChainKeys(gateway.ChainKeys{chainKey2[:]})
			if v, _ := tg.store.Verify(ctx, tamperA); v.Problem != gateway.ChainUnknownKey {
				t.Fatalf("without the old key: %+v", v)
			}
			// Someone who kept the old key appends under it.
			tg.store.SetChainKeys(gateway.ChainKeys{chainKey1[:]})
			appendN(t, tg.store, tamperA, 9)
			tg.store.SetChainKeys(ring)
			if v, _ := tg.store.Verify(ctx, tamperA); v.OK || !strings.Contains(v.Detail, "older chain key") {
				t.Fatalf("a record under the retired key: %+v", v)
			}
		})
	}
}
