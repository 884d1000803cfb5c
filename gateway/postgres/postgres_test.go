package postgres

import (
	"context"
	"fmt"
	"io/fs"
	"reflect"
	"testing"
	"testing/fstest"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/student-mh-referrals/gateway/gateway"
	"github.com/student-mh-referrals/gateway/gateway/postgres/pgtest"
	"github.com/student-mh-referrals/gateway/gateway/sqlstore"
)

func openAt(t testing.TB, dsn string) *DB {
	t.Helper()
	db, err := Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestOpen(t *testing.T) {
	ctx := context.Background()
	t.Run("migrations are recorded and run once", func(t *testing.T) {
		dsn := pgtest.FreshSchema(t)
		ms, _ := fs.Glob(migrations, "migrations/*.sql")
		for i := 0; i < 2; i++ {
			db := openAt(t, dsn)
			var n int
			if err := db.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM schema_migrations`).Scan(&n); err != nil {
				t.Fatal(err)
			}
			if n != len(ms) {
				t.Fatalf("open %d: %d migrations recorded, want %d", i+1, n, len(ms))
			}
		}
	})
	t.Run("replicas starting together migrate once", func(t *testing.T) {
		dsn := pgtest.FreshSchema(t)
		errs := make(chan error, 4)
		for i := 0; i < 4; i++ {
			go func() {
				db, err := Open(ctx, dsn)
				if err == nil {
					db.Close()
				}
				errs <- err
			}()
		}
		for i := 0; i < 4; i++ {
			if err := <-errs; err != nil {
				t.Fatal(err)
			}
		}
	})
	t.Run("a changed migration stops the gateway", func(t *testing.T) {
		dsn := pgtest.FreshSchema(t)
		db := openAt(t, dsn)
		if _, err := db.db.ExecContext(ctx, `UPDATE schema_migrations SET checksum = 'edited' WHERE version = 1`); err != nil {
			t.Fatal(err)
		}
		if _, err := Open(ctx, dsn); err == nil {
			t.Fatal("opened a store whose migration 1 differs from the embedded one")
		}
	})
	t.Run("a newer schema stops the gateway", func(t *testing.T) {
		dsn := pgtest.FreshSchema(t)
		db := openAt(t, dsn)
		if _, err := db.db.ExecContext(ctx, `INSERT INTO schema_migrations (version, name, checksum) VALUES (9999, '9999_future.sql', 'x')`); err != nil {
			t.Fatal(err)
		}
		if _, err := Open(ctx, dsn); err == nil {
			t.Fatal("opened a store with a schema newer than the gateway")
		}
	})
	t.Run("an unreachable server is unavailable", func(t *testing.T) {
		pgtest.DSN(t)
		_, err := Open(ctx, "postgres://postgres@127.0.0.1:1/test?sslmode=disable&connect_timeout=2")
		if gateway.ErrorCode(err) != gateway.EUNAVAILABLE {
			t.Fatalf("err %v, want unavailable", err)
		}
	})
}

// TestMigrateQueuedMessages opens a store made by a gateway from before
// messages kept their sender: a queued message gets its sender from its
// Bundle, and one whose Bundle names none has none.
func TestMigrateQueuedMessages(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.FreshSchema(t)
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	old := stdlib.OpenDB(*cfg)
	defer old.Close()
	b, err := migrations.ReadFile("migrations/0001_init.sql")
	if err != nil {
		t.Fatal(err)
	}
	if err := sqlstore.Migrate(ctx, old, dialect, fstest.MapFS{"0001_init.sql": {Data: b}}); err != nil {
		t.Fatal(err)
	}
	for i, body := range []string{legacyBundle, `{"resourceType":"Bundle","entry":[]}`} {
		id := fmt.Sprint("m", i)
		for _, st := range []struct {
			q    string
			args []any
		}{
			{`INSERT INTO referrals (id, institution, case_id, content_hash, version, service_id, decision_id, status, record, accepted_at, updated_at)
				VALUES ($1, '10000001', $1, 'h', 1, 's', 'd', 'accepted', '{}', now(), now())`, []any{id}},
			{`INSERT INTO outbox_messages (id, referral_id, institution, case_id, kind, service_id, request_id, correlation_id, body, state, due_at, created_at, updated_at)
				VALUES ($1, $1, '10000001', $1, 'new', 's', 'r', 'c', $2, 'pending', now(), now(), now())`, []any{id, body}},
		} {
			if _, err := old.ExecContext(ctx, st.q, st.args...); err != nil {
				t.Fatal(err)
			}
		}
	}
	db := openAt(t, dsn)
	for id, want := range map[string]gateway.Sender{"m0": legacySender, "m1": {}} {
		m, err := db.Message(ctx, id)
		if err != nil || !reflect.DeepEqual(m.Sender, want) {
			t.Errorf("message %s: sender %+v, %v; want %+v", id, m.Sender, err, want)
		}
	}
}

// legacyBundle is a queued message's Bundle as the gateway stored it before
// messages kept their sender: its MessageHeader.sender references the
// university's Organization entry, whose sender is legacySender.
const legacyBundle = `{"resourceType":"Bundle","type":"message","entry":[
	{"fullUrl":"urn:uuid:h","resource":{"resourceType":"MessageHeader","sender":{"reference":"urn:uuid:u"}}},
	{"fullUrl":"urn:uuid:t","resource":{"resourceType":"Organization","name":"Trust"}},
	{"fullUrl":"urn:uuid:u","resource":{"resourceType":"Organization","name":"University",
		"identifier":[{"system":"https://fhir.nhs.uk/Id/ods-organization-code","value":"X1"}]}}]}`

var legacySender = gateway.Sender{
	Identifier: []gateway.Identifier{{System: "https://fhir.nhs.uk/Id/ods-organization-code", Value: "X1"}},
	Name:       "University",
}
