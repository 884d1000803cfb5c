// Package pgtest gives tests a PostgreSQL database of their own: a fresh
// schema in the database named by GATEWAY_TEST_POSTGRES_DSN, dropped when the
// test ends, so that parallel test runs never see each other's rows. Tests
// skip with a clear message where the variable is unset or the database does
// not answer, and fail under CI=true, where .ci/run sets it. (make test sets
// it to the local default, postgres://postgres@127.0.0.1:5432/test.)
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// DSNEnv names the environment variable holding the test database's DSN.
const DSNEnv = "GATEWAY_TEST_POSTGRES_DSN"

// DSN returns the test database's DSN, or skips saying why (fails under
// CI=true): the variable is unset, or the database does not answer.
func DSN(t testing.TB) string {
	t.Helper()
	dsn := os.Getenv(DSNEnv)
	skip := func(format string, args ...any) {
		t.Helper()
		if os.Getenv("CI") == "true" {
			t.Fatalf(format, args...)
		}
		t.Skipf(format, args...)
	}
	if dsn == "" {
		skip("%s is not set; set it to a PostgreSQL database the tests may use, e.g. postgres://postgres@127.0.0.1:5432/test?sslmode=disable", DSNEnv)
	}
	if err := answers(dsn); err != nil {
		skip("PostgreSQL at %s does not answer: %v (%s names it)", where(dsn), err, DSNEnv)
	}
	return dsn
}

// probes holds, per DSN, whether the database answered: it is asked once
// per test process, not once per test.
var probes sync.Map // DSN -> func() error

func answers(dsn string) error {
	f, _ := probes.LoadOrStore(dsn, sync.OnceValue(func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			return err
		}
		return conn.Close(ctx)
	}))
	return f.(func() error)()
}

// where names the database of dsn without its password.
func where(dsn string) string {
	c, err := pgx.ParseConfig(dsn)
	if err != nil {
		return "(" + DSNEnv + ")"
	}
	return fmt.Sprintf("%s:%d/%s", c.Host, c.Port, c.Database)
}

// FreshSchema creates a schema for the test and returns a DSN whose
// search_path points at it.
func FreshSchema(t testing.TB) string {
	t.Helper()
	dsn := DSN(t)
	ctx := context.Background()
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	schema := "test_" + hex.EncodeToString(b)
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("connect to %s: %v", DSNEnv, err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `CREATE SCHEMA `+schema); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			t.Error(err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, `DROP SCHEMA `+schema+` CASCADE`); err != nil {
			t.Error(err)
		}
	})
	return WithParam(t, dsn, "search_path", schema)
}

// WithParam sets a connection parameter in a URL or key=value DSN.
func WithParam(t testing.TB, dsn, key, value string) string {
	t.Helper()
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			t.Fatal(err)
		}
		q := u.Query()
		q.Set(key, value)
		u.RawQuery = q.Encode()
		return u.String()
	}
	return dsn + " " + key + "=" + value
}
