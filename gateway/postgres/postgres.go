// Package postgres is the gateway's store on PostgreSQL, for running several
// gateway replicas on one database. It keeps the same guarantees as the
// embedded SQLite store with the database doing the coordinating: a row lock
// on each institution's chain head serialises that institution's appends and
// accepts, and workers in any process claim messages with FOR UPDATE SKIP
// LOCKED, so each message is leased to one worker at a time.
//
// Commits use the server's synchronous_commit (on by default), so an accept
// is on disk before Accept returns.
package postgres

import (
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/student-mh-referrals/gateway/gateway"
)

// DB is the PostgreSQL store. It implements gateway.Store.
type DB struct {
	pool *pgxpool.Pool
}

var _ gateway.Store = (*DB)(nil)

// Open connects to the database named by dsn (a postgres:// URL or key=value
// string; pgxpool's pool_* parameters apply, and search_path selects a
// schema) and brings its schema up to date. Without pool_max_conns the pool
// holds 16 connections, enough for concurrent accepts to share the server's
// flushes; without connect_timeout a connection attempt gives up after 5 s
// (defaultConnectTimeout).
func Open(ctx context.Context, dsn string) (*DB, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, gateway.Errorf(gateway.EINVALID, "bad PostgreSQL DSN: %v", redact(err))
	}
	if !strings.Contains(dsn, "pool_max_conns") {
		cfg.MaxConns = 16
	}
	if cfg.ConnConfig.ConnectTimeout == 0 {
		// Unbounded, a connection attempt to an unreachable server waits
		// on the operating system for minutes; bounded, the request that
		// needed it answers 503 instead.
		cfg.ConnConfig.ConnectTimeout = defaultConnectTimeout
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, mapErr(err)
	}
	if err := migrate(ctx, pool); err != nil {
		pool.Close()
		return nil, err
	}
	return &DB{pool: pool}, nil
}

// redact keeps a password in a DSN out of an error message.
func redact(err error) string {
	s := err.Error()
	if i := strings.Index(s, "password"); i >= 0 {
		return s[:i] + "…"
	}
	return s
}

// Close closes the pool.
func (d *DB) Close() error {
	d.pool.Close()
	return nil
}

// Ping implements gateway.Store.
func (d *DB) Ping(ctx context.Context) error {
	if err := d.pool.Ping(ctx); err != nil {
		return &gateway.Error{Code: gateway.EUNAVAILABLE, Message: unavailableMessage, Err: err}
	}
	return nil
}

// tx runs fn in a READ COMMITTED transaction, again (up to three times) when
// the server reports a deadlock or serialisation failure, or retry says so.
func (d *DB) tx(ctx context.Context, retry func(error) bool, fn func(tx pgx.Tx) error) error {
	var err error
	for i := 0; i < 3; i++ {
		err = d.try(ctx, fn)
		if err == nil {
			return nil
		}
		if !transient(err) && (retry == nil || !retry(err)) {
			break
		}
	}
	return mapErr(err)
}

func (d *DB) try(ctx context.Context, fn func(tx pgx.Tx) error) error {
	tx, err := d.pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if err := fn(tx); err != nil {
		return err
	}
	return tx.Commit(ctx)
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

func isUnique(err error) bool { return pgCode(err) == "23505" }

// mapErr turns driver errors into gateway errors; gateway errors pass.
func mapErr(err error) error {
	if err == nil {
		return nil
	}
	var ge *gateway.Error
	if errors.As(err, &ge) {
		return ge
	}
	if errors.Is(err, context.Canceled) {
		return &gateway.Error{Code: gateway.EUNAVAILABLE, Message: "the request was cancelled", Err: err}
	}
	if u := unavailable(err); u != nil {
		return u
	}
	return gateway.Internal(err)
}

// utc normalises a time to what the database keeps: UTC microseconds.
func utc(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

func fromNullTime(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.UTC()
}

func nullTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := utc(t)
	return &u
}

func nullString(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func nullJSON(b []byte) *string {
	if len(b) == 0 {
		return nil
	}
	s := string(b)
	return &s
}

func rawJSON(s *string) []byte {
	if s == nil {
		return nil
	}
	return []byte(*s)
}

// migrations are the schema's history, applied in order of their number and
// recorded in schema_migrations. A file is never edited once released: a
// change is a new file, and a recorded checksum that no longer matches stops
// the gateway rather than run on a schema it does not know.
//
//go:embed migrations/*.sql
var migrations embed.FS

type migration struct {
	version  int
	name     string
	sql      string
	checksum string
}

func loadMigrations() ([]migration, error) {
	names, err := fs.Glob(migrations, "migrations/*.sql")
	if err != nil {
		return nil, err
	}
	var out []migration
	for _, n := range names {
		base := strings.TrimPrefix(n, "migrations/")
		num, _, ok := strings.Cut(base, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 {
			return nil, fmt.Errorf("migration %s: name must start with a positive number and '_'", base)
		}
		b, err := migrations.ReadFile(n)
		if err != nil {
			return nil, err
		}
		sum := sha256.Sum256(b)
		out = append(out, migration{version: v, name: base, sql: string(b), checksum: hex.EncodeToString(sum[:])})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].version < out[j].version })
	for i := 1; i < len(out); i++ {
		if out[i].version == out[i-1].version {
			return nil, fmt.Errorf("migrations %s and %s share a number", out[i-1].name, out[i].name)
		}
	}
	return out, nil
}

// migrate applies the migrations not yet recorded, in one transaction under
// an advisory lock, so that replicas starting together apply each once.
func migrate(ctx context.Context, pool *pgxpool.Pool) error {
	ms, err := loadMigrations()
	if err != nil {
		return gateway.Internal(err)
	}
	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext(current_schema() || '.schema_migrations'))`); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
			version    integer PRIMARY KEY,
			name       text NOT NULL,
			checksum   text NOT NULL,
			applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
			return err
		}
		applied := map[int]string{}
		rows, err := tx.Query(ctx, `SELECT version, checksum FROM schema_migrations`)
		if err != nil {
			return err
		}
		top := 0
		for rows.Next() {
			var v int
			var sum string
			if err := rows.Scan(&v, &sum); err != nil {
				return err
			}
			applied[v], top = sum, max(top, v)
		}
		if err := rows.Err(); err != nil {
			return err
		}
		for _, m := range ms {
			if sum, ok := applied[m.version]; ok {
				if sum != m.checksum {
					return fmt.Errorf("migration %s was changed after it was applied (checksum %s, now %s)", m.name, sum, m.checksum)
				}
				continue
			}
			// No arguments: pgx sends it with the simple protocol, which
			// runs every statement in the file.
			if _, err := tx.Exec(ctx, m.sql); err != nil {
				return fmt.Errorf("migration %s: %w", m.name, err)
			}
			if _, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)`,
				m.version, m.name, m.checksum); err != nil {
				return err
			}
		}
		if len(ms) > 0 && top > ms[len(ms)-1].version {
			return fmt.Errorf("the database schema (migration %d) is newer than this gateway knows (%d)", top, ms[len(ms)-1].version)
		}
		return nil
	})
	if err != nil {
		var ge *gateway.Error
		if errors.As(mapErr(err), &ge) && ge.Code == gateway.EUNAVAILABLE {
			return ge
		}
		return gateway.Internal(err)
	}
	return nil
}
