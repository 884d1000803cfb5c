// Package postgres is the gateway's store on PostgreSQL, for running several
// gateway replicas on one database. The store itself is gateway/sqlstore;
// this package connects (pgx through database/sql), holds the migrations and
// says how PostgreSQL differs. The database does the coordinating: a row
// lock on each institution's chain head serialises that institution's
// appends and accepts, and workers in any process claim messages with FOR
// UPDATE SKIP LOCKED, so each message is leased to one worker at a time.
//
// Commits use the server's synchronous_commit (on by default), so an accept
// is on disk before Accept returns.
package postgres

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"io"
	"io/fs"
	"net"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/student-mh-referrals/gateway/gateway"
	"github.com/student-mh-referrals/gateway/gateway/sqlstore"
)

// migrations are the schema's history (sqlstore.Migrate).
//
//go:embed migrations/*.sql
var migrations embed.FS

// DB is the PostgreSQL store. It implements gateway.Store.
type DB struct {
	*sqlstore.DB
	db *sql.DB
}

// defaultConnectTimeout bounds a connection attempt when the DSN sets no
// connect_timeout.
const defaultConnectTimeout = 5 * time.Second

// Open connects to the database named by dsn (a postgres:// URL or key=value
// string; pool_max_conns sizes the pool, and search_path selects a schema)
// and brings its schema up to date. Without pool_max_conns the pool holds 16
// connections, enough for concurrent accepts to share the server's flushes;
// without connect_timeout a connection attempt gives up after 5 s
// (defaultConnectTimeout).
func Open(ctx context.Context, dsn string) (*DB, error) {
	// pgxpool's parser takes the pool_* parameters out of the DSN.
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, gateway.Errorf(gateway.EINVALID, "bad PostgreSQL DSN: %v", redact(err))
	}
	if cfg.ConnConfig.ConnectTimeout == 0 {
		// Unbounded, a connection attempt to an unreachable server waits
		// on the operating system for minutes; bounded, the request that
		// needed it answers 503 instead.
		cfg.ConnConfig.ConnectTimeout = defaultConnectTimeout
	}
	db := stdlib.OpenDB(*cfg.ConnConfig)
	conns := 16
	if strings.Contains(dsn, "pool_max_conns") {
		conns = int(cfg.MaxConns)
	}
	db.SetMaxOpenConns(conns)
	db.SetMaxIdleConns(conns)
	sub, _ := fs.Sub(migrations, "migrations")
	if err := sqlstore.Migrate(ctx, db, dialect, sub); err != nil {
		db.Close()
		return nil, err
	}
	s, err := sqlstore.New(ctx, dialect, db, db)
	if err != nil {
		return nil, err
	}
	return &DB{DB: s, db: db}, nil
}

// dialect is how PostgreSQL differs: numbered placeholders, row locks (FOR
// UPDATE, SKIP LOCKED for claims), timestamptz, and transactions run again
// after a deadlock or serialisation failure.
var dialect = sqlstore.Dialect{
	Numbered:    true,
	Clauses:     []string{"FOR UPDATE"},
	Time:        func(t time.Time) any { return t },
	Unavailable: isUnavailable,
	Transient:   transient,
	Unique:      func(err error) bool { return pgCode(err) == "23505" },
	// Replicas starting together wait for each other here.
	MigrationLock: `SELECT pg_advisory_xact_lock(hashtext(current_schema() || '.schema_migrations'))`,
	MigrationsTable: `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    integer PRIMARY KEY,
		name       text NOT NULL,
		checksum   text NOT NULL,
		applied_at timestamptz NOT NULL DEFAULT now())`,
}

// redact keeps a password in a DSN out of an error message.
func redact(err error) string {
	s := err.Error()
	if i := strings.Index(s, "password"); i >= 0 {
		return s[:i] + "…"
	}
	return s
}

func pgCode(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

func transient(err error) bool {
	c := pgCode(err)
	return c == "40001" || c == "40P01"
}

// isUnavailable says that err means the database could not be reached or
// could not serve the request now (503):
//
//   - no connection: pgconn.ConnectError (refused, DNS, TLS, authentication
//     timeouts), a net.Error, a connection reset or broken pipe, io.EOF on a
//     connection the server or the network dropped, a connection pgx has
//     already closed (pgconn.SafeToRetry: nothing was sent);
//   - no time: pgconn.Timeout (context.DeadlineExceeded, e.g. waiting for a
//     pooled connection, is unavailable for every dialect);
//   - the server says so: SQLSTATE class 08 (connection exception), class
//     53 (insufficient resources: too many connections, disk full, out of
//     memory), 57014 (statement timeout), 57P01..57P03 and 57P05 (shut
//     down, crashed, starting up, idle session ended), and 40001/40P01
//     once the transaction has been retried.
//
// A transaction whose connection failed is rolled back by the server, so
// nothing half-written remains. The one ambiguous case is a COMMIT whose
// answer was lost: the transaction may have committed, and the client's
// retry finds it through the idempotency key (200, the same referral).
func isUnavailable(err error) bool {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch c := pe.Code; {
		case strings.HasPrefix(c, "08"), strings.HasPrefix(c, "53"), transient(err):
			return true
		case c == "57014", c == "57P01", c == "57P02", c == "57P03", c == "57P05":
			return true
		}
		return false
	}
	var ce *pgconn.ConnectError
	var ne net.Error
	return errors.As(err, &ce) || errors.As(err, &ne) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EPIPE) ||
		pgconn.Timeout(err) || pgconn.SafeToRetry(err)
}
