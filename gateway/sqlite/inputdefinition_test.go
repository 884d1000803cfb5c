package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"io/fs"
	"path/filepath"
	"reflect"
	"testing"
	"testing/fstest"

	"github.com/student-mh-referrals/gateway/gateway"
	"github.com/student-mh-referrals/gateway/gateway/sqlstore"
)

// migrationsBefore is the embedded migrations older than the one named
// first, for a store made by an earlier gateway.
func migrationsBefore(first string) fstest.MapFS {
	before := fstest.MapFS{}
	names, _ := fs.Glob(migrations, "migrations/*.sql")
	for _, n := range names {
		if n = filepath.Base(n); n < first {
			b, _ := migrations.ReadFile("migrations/" + n)
			before[n] = &fstest.MapFile{Data: b}
		}
	}
	return before
}

// TestMigrateInputDefinition opens a store whose decision inputs were kept
// before they kept the MessageDefinition: such an input replays without a
// definition (as it was replayed before), and a new one keeps its own.
func TestMigrateInputDefinition(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "gateway.db")
	old, err := sql.Open("sqlite", path+"?_txlock=immediate")
	if err != nil {
		t.Fatal(err)
	}
	if err := sqlstore.Migrate(ctx, old, dialect, migrationsBefore("0009")); err != nil {
		t.Fatal(err)
	}
	if _, err := old.ExecContext(ctx, `INSERT INTO registry_snapshots VALUES ('h', '{"id":"u-cope"}');
		INSERT INTO decision_inputs VALUES (?1, 'old', 0, 0, NULL, '{}', 'h')`, inst); err != nil {
		t.Fatal(err)
	}
	old.Close()
	checkInputDefinitions(t, openAt(t, path, Options{}))
}

// checkInputDefinitions appends the decision records of the input
// TestMigrateInputDefinition kept ("old") and of a new input with a
// definition, and checks what the replay reads of each.
func checkInputDefinitions(t *testing.T, db *DB) {
	ctx := context.Background()
	def := &gateway.MessageDefinition{URL: "https://u-cope.example/MessageDefinition/1", Focus: []gateway.DefinitionFocus{{Code: "Observation", Min: 1, Max: "*"}}}
	inputs := map[string]*gateway.RetainedInput{"old": nil, "new": {DecidedAt: t0, Record: json.RawMessage(`{}`),
		Service: gateway.ServiceSnapshot{Hash: "h", JSON: json.RawMessage(`{"id":"u-cope"}`)}, Definition: def}}
	for id, in := range inputs {
		if _, err := db.AppendDecision(ctx, gateway.DecisionRecord{Institution: inst, DecisionID: id, At: t0, Body: json.RawMessage(`{}`), Input: in}); err != nil {
			t.Fatal(err)
		}
	}
	got := map[string]*gateway.RetainedInput{}
	if err := db.ReplayDecisions(ctx, gateway.ReplayFilter{}, func(r gateway.DecisionRecord) error {
		got[r.DecisionID] = r.Input
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if got["old"] == nil || got["old"].Definition != nil || got["new"] == nil || !reflect.DeepEqual(got["new"].Definition, def) {
		t.Fatalf("replayed inputs: old %+v, new %+v", got["old"], got["new"])
	}
}
