package sqlstore_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/student-mh-referrals/gateway/gateway"
	"github.com/student-mh-referrals/gateway/gateway/postgres"
	"github.com/student-mh-referrals/gateway/gateway/postgres/pgtest"
	"github.com/student-mh-referrals/gateway/gateway/sqlite"
	"github.com/student-mh-referrals/gateway/gateway/sqlstore"
)

// TestStore is the store's behaviour suite. Every case runs on each
// database the store serves, so that SQLite and PostgreSQL cannot drift
// apart in what idempotency, delivery and the decision chain mean.
func TestStore(t *testing.T) {
	forEachDialect(t, func(t *testing.T, open func(testing.TB) *store) {
		t.Run("Accept", func(t *testing.T) { testAccept(t, open) })
		t.Run("AcceptRefusesIncompleteRequests", func(t *testing.T) { testAcceptInvalid(t, open) })
		t.Run("ConcurrentDuplicateAccepts", func(t *testing.T) { testConcurrentDuplicates(t, open) })
		t.Run("ConcurrentVersions", func(t *testing.T) { testConcurrentVersions(t, open) })
		t.Run("Tenancy", func(t *testing.T) { testTenancy(t, open) })
		t.Run("Outbox", func(t *testing.T) { testOutbox(t, open) })
		t.Run("ConcurrentClaimers", func(t *testing.T) { testConcurrentClaimers(t, open) })
		t.Run("Steps", func(t *testing.T) { testSteps(t, open) })
		t.Run("StepsOfVersions", func(t *testing.T) { testStepsOfVersions(t, open) })
		t.Run("Cancel", func(t *testing.T) { testCancel(t, open) })
		t.Run("DecisionChain", func(t *testing.T) { testDecisionChain(t, open) })
		t.Run("ConcurrentAppends", func(t *testing.T) { testConcurrentAppends(t, open) })
		t.Run("Tampering", func(t *testing.T) { testTampering(t, open) })
		t.Run("PurgeContent", func(t *testing.T) { testPurge(t, open) })
	})
}

// dialects are the databases the suite runs on: SQLite with and without
// group commit, and PostgreSQL where GATEWAY_TEST_POSTGRES_DSN answers
// (pgtest). open returns a fresh, empty store that the test's cleanup
// closes.
var dialects = []struct {
	name string
	open func(t testing.TB) *store
}{
	{"sqlite", func(t testing.TB) *store { return openSQLite(t, sqlite.Options{}) }},
	{"sqlite-commit-per-write", func(t testing.TB) *store { return openSQLite(t, sqlite.Options{NoGroupCommit: true}) }},
	{"postgres", func(t testing.TB) *store { return openPostgres(t, pgtest.FreshSchema(t)) }},
}

// forEachDialect runs f once per dialect; PostgreSQL's run skips as a whole,
// saying why, where there is no test database.
func forEachDialect[T interface {
	testing.TB
	Run(string, func(T)) bool
}](t T, f func(t T, open func(testing.TB) *store)) {
	for _, d := range dialects {
		t.Run(d.name, func(t T) {
			if d.name == "postgres" {
				pgtest.DSN(t)
			}
			f(t, d.open)
		})
	}
}

// store is a store under test with what reaches beneath the Store
// interface, as an attacker with database access or a second gateway
// process would.
type store struct {
	gateway.Store
	db *sqlstore.DB
	// unguard lifts the append-only guards of decision_records; reguard
	// puts them back.
	unguard, reguard []string
	// another opens a second, independent handle (its own connections) on
	// the same database; the test's cleanup closes it.
	another func(t testing.TB) gateway.Store
	// singleWriter says that the database admits one writer at a time
	// (SQLite). A second handle's writes then wait their turn, and SQLite's
	// busy handler is not fair, so the suite proves exactly-once claims
	// across handles without requiring the second handle to make progress
	// alongside.
	singleWriter bool
}

// Exec runs raw SQL statements, in one transaction, with the store's own
// guards in force.
func (s *store) Exec(ctx context.Context, queries ...string) error {
	return sqlstore.Exec(ctx, s.db, queries...)
}

// Tamper runs raw SQL statements with the append-only guards lifted.
func (s *store) Tamper(ctx context.Context, queries ...string) error {
	return s.Exec(ctx, slices.Concat(s.unguard, queries, s.reguard)...)
}

func openSQLite(t testing.TB, opt sqlite.Options) *store {
	path := filepath.Join(t.TempDir(), "gateway.db")
	open := func(t testing.TB) *sqlite.DB {
		return closing[*sqlite.DB](t)(sqlite.OpenWith(context.Background(), path, opt))
	}
	db := open(t)
	return &store{
		Store: db, db: db.DB, singleWriter: true,
		unguard: []string{`DROP TRIGGER IF EXISTS decision_records_no_update`, `DROP TRIGGER IF EXISTS decision_records_no_delete`},
		another: func(t testing.TB) gateway.Store { return open(t) },
	}
}

func openPostgres(t testing.TB, dsn string) *store {
	open := func(t testing.TB) *postgres.DB {
		return closing[*postgres.DB](t)(postgres.Open(context.Background(), dsn))
	}
	db := open(t)
	return &store{
		Store: db, db: db.DB,
		unguard: []string{`ALTER TABLE decision_records DISABLE TRIGGER USER`},
		reguard: []string{`ALTER TABLE decision_records ENABLE TRIGGER USER`},
		// A second pool on the same schema.
		another: func(t testing.TB) gateway.Store { return open(t) },
	}
}

// closing is must for an opened store, which the test's cleanup closes.
func closing[S gateway.Store](t testing.TB) func(S, error) S {
	return func(s S, err error) S {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := s.Close(); err != nil {
				t.Error(err)
			}
		})
		return s
	}
}

// t0 is the time the suite's scenarios start at.
var t0 = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

// Institutions used by the suite (UKPRNs).
const (
	instA = "10000001"
	instB = "10000002"
)

// newAcceptRequest builds a complete accept request whose content, and so
// its content hash, is determined by content. Record and bundle are
// stand-ins: the store treats them as opaque JSON.
func newAcceptRequest(institution, caseID, content, previousID string, at time.Time) gateway.AcceptRequest {
	return paddedAcceptRequest(institution, caseID, content, previousID, at, "")
}

// paddedAcceptRequest is newAcceptRequest with padding in the bundle.
func paddedAcceptRequest(institution, caseID, content, previousID string, at time.Time, padding string) gateway.AcceptRequest {
	sum := sha256.Sum256([]byte(institution + "\x00" + caseID + "\x00" + content))
	hash := hex.EncodeToString(sum[:])
	id := gateway.ReferralID(institution, caseID, hash)
	record, _ := json.Marshal(map[string]any{"caseId": caseID, "content": content})
	bundle, _ := json.Marshal(map[string]any{"resourceType": "Bundle", "id": bundleID(id), "type": "message", "referral": id, "content": content, "padding": padding})
	decisionID := gateway.DeriveID("decision", hash, at.Format(time.RFC3339Nano))
	return gateway.AcceptRequest{
		Institution: institution, CaseID: caseID, ContentHash: hash, ServiceID: "u-cope",
		PreviousID: previousID, Record: record, Bundle: bundle, At: at,
		Sender: gateway.Sender{
			Identifier: []gateway.Identifier{{System: gateway.FHIRBase + "/Id/ukprn", Value: institution}},
			Name:       "University " + institution,
		},
		Decision: gateway.DecisionRecord{
			DecisionID: decisionID, At: at,
			Body: json.RawMessage(`{"allow":true,"route":"consent","rules":["C-01"],"id":"` + decisionID + `"}`),
		},
	}
}

// wantCode fails the test unless err has the gateway error code.
func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	if got := gateway.ErrorCode(err); got != code {
		t.Fatalf("error code = %q (%v), want %q", got, err, code)
	}
}

func must[T any](t *testing.T) func(T, error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

func accept(t *testing.T, s gateway.Store, req gateway.AcceptRequest) gateway.AcceptResult {
	t.Helper()
	res, err := s.Accept(context.Background(), req)
	if err != nil {
		t.Fatalf("accept %s/%s: %v", req.Institution, req.CaseID, err)
	}
	return res
}

// jsonEqual compares JSON documents by value; stores may reformat them
// (PostgreSQL jsonb does), and the store's contract is the value.
func jsonEqual(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	xa, _ := json.Marshal(x)
	ya, _ := json.Marshal(y)
	return string(xa) == string(ya)
}

func sqlQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
