package postgres

import (
	"context"
	"database/sql"
	"io/fs"
	"path/filepath"
	"reflect"
	"testing"
	"testing/fstest"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/student-mh-referrals/gateway/gateway"
	"github.com/student-mh-referrals/gateway/gateway/postgres/pgtest"
	"github.com/student-mh-referrals/gateway/gateway/sqlstore"
)

// migratedBefore is a fresh schema migrated by the embedded migrations
// older than the one named first (a store made by an earlier gateway), its
// DSN and a connection to it.
func migratedBefore(t *testing.T, first string) (string, *sql.DB) {
	t.Helper()
	dsn := pgtest.FreshSchema(t)
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	old := stdlib.OpenDB(*cfg)
	t.Cleanup(func() { old.Close() })
	before := fstest.MapFS{}
	names, _ := fs.Glob(migrations, "migrations/*.sql")
	for _, n := range names {
		if n = filepath.Base(n); n < first {
			b, _ := migrations.ReadFile("migrations/" + n)
			before[n] = &fstest.MapFile{Data: b}
		}
	}
	if err := sqlstore.Migrate(context.Background(), old, dialect, before); err != nil {
		t.Fatal(err)
	}
	return dsn, old
}

// TestMigrateInputDefinition is the SQLite test of the same name on
// PostgreSQL: an input kept before inputs kept the MessageDefinition has
// none (NULL) and still replays; a new one keeps its own.
func TestMigrateInputDefinition(t *testing.T) {
	ctx := context.Background()
	dsn, old := migratedBefore(t, "0008")
	if _, err := old.ExecContext(ctx, `WITH s AS (INSERT INTO registry_snapshots VALUES ('h', '{"id":"u-cope"}') RETURNING hash)
		INSERT INTO decision_inputs SELECT '10000001', 'old', now(), false, NULL, '{}', hash FROM s`); err != nil {
		t.Fatal(err)
	}
	db := openAt(t, dsn)
	t0 := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	def := &gateway.MessageDefinition{URL: "https://u-cope.example/MessageDefinition/1", Focus: []gateway.DefinitionFocus{{Code: "Observation", Min: 1, Max: "*"}}}
	for _, r := range []gateway.DecisionRecord{{DecisionID: "old"}, {DecisionID: "new", Input: &gateway.RetainedInput{
		DecidedAt: t0, Record: []byte(`{}`), Service: gateway.ServiceSnapshot{Hash: "h", JSON: []byte(`{"id":"u-cope"}`)}, Definition: def}}} {
		r.Institution, r.At, r.Body = "10000001", t0, []byte(`{}`)
		if _, err := db.AppendDecision(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	want := map[string]*gateway.MessageDefinition{"old": nil, "new": def}
	var kept []string
	if err := db.ReplayDecisions(ctx, gateway.ReplayFilter{}, func(r gateway.DecisionRecord) error {
		if r.Input != nil && reflect.DeepEqual(r.Input.Definition, want[r.DecisionID]) {
			kept = append(kept, r.DecisionID)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(kept) != 2 {
		t.Fatalf("inputs replayed as kept: %v, want old (no definition) and new (its own)", kept)
	}
}
