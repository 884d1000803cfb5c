// Package sqlstore is the gateway's store written once over database/sql:
// the referrals, the outbox and the decision chains, with their queries and
// transactions. The SQLite and PostgreSQL packages open the database, hold
// the schema migrations and describe their differences in a Dialect, so that
// a change to what the store does is made in one place and both databases
// keep meaning the same thing (the package's tests run every case on both).
//
// Both databases serialise what must not interleave through the same row:
// every transaction that appends to an institution's decision chain, or must
// not interleave with an accept (a cancellation), first locks the chain head
// (lockChain). On PostgreSQL that is a row lock; SQLite has one writer, so
// its write transactions never interleave at all.
package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/student-mh-referrals/gateway/gateway"
)

// Dialect is what differs between the databases the store runs on.
type Dialect struct {
	// Numbered placeholders ($1, $2, …, PostgreSQL) replace the ? the
	// queries are written with.
	Numbered bool
	// Clauses are the prefixes of the optional clauses, written in braces
	// in the queries ({FOR UPDATE}, {INDEXED BY outbox_due}), that this
	// database takes; the others are dropped.
	Clauses []string
	// Time is a time as a query parameter (UTC microseconds either way).
	Time func(time.Time) any
	// Unavailable says that err means the database cannot serve now but
	// may soon (503, try again).
	Unavailable func(err error) bool
	// Transient says that a transaction that failed with err may be run
	// again as it is (a deadlock or serialisation failure).
	Transient func(err error) bool
	// Unique says that err is a unique-key violation.
	Unique func(err error) bool
	// MigrationsTable creates schema_migrations if it does not exist, and
	// MigrationLock (optional) keeps two processes from migrating at once.
	MigrationsTable, MigrationLock string
	// Write, when set, runs every write transaction in place of a
	// transaction of its own (SQLite's group commit); run must be called
	// exactly once, in a transaction that is committed before Write
	// returns nil.
	Write func(ctx context.Context, run func(ctx context.Context, tx *sql.Tx) error) error
}

// UnavailableMessage is all a client learns when the store cannot serve now:
// the cause (a full disk, an unreachable server) is for the operator's log,
// not for the university's system.
const UnavailableMessage = "the store is unavailable; try again shortly"

// DB is the store over a database. It implements gateway.Store.
type DB struct {
	d     Dialect
	w, r  *sql.DB              // writes; reads (the same pool on PostgreSQL)
	stmts map[string]*sql.Stmt // every query, prepared on w
	reads map[string]*sql.Stmt // the reads, prepared on r
	keys  gateway.ChainKeys    // of the keyed decision chain (SetChainKeys)
	// webhooks are the clients with a webhook by institution
	// (SetWebhookClients).
	webhooks map[string][]gateway.WebhookSubscriber
}

var _ gateway.Store = (*DB)(nil)

// New is the store on w (writes) and r (reads; may be w), whose schema is up
// to date. It prepares every query once: parsing SQL was a quarter of an
// accept's CPU time on SQLite. Close closes w and r.
func New(ctx context.Context, d Dialect, w, r *sql.DB) (*DB, error) {
	db := &DB{d: d, w: w, r: r, stmts: map[string]*sql.Stmt{}, reads: map[string]*sql.Stmt{}}
	for _, q := range queries {
		s, err := w.PrepareContext(ctx, d.rewrite(q))
		if err != nil {
			db.Close()
			return nil, db.mapErr(fmt.Errorf("prepare %q: %w", q, err))
		}
		db.stmts[q] = s
	}
	if r == w {
		db.reads = db.stmts
		return db, nil
	}
	for _, q := range readQueries {
		s, err := r.PrepareContext(ctx, d.rewrite(q))
		if err != nil {
			db.Close()
			return nil, db.mapErr(fmt.Errorf("prepare %q: %w", q, err))
		}
		db.reads[q] = s
	}
	return db, nil
}

// Close closes the prepared statements and the databases.
func (db *DB) Close() error {
	for _, s := range db.stmts {
		s.Close()
	}
	for _, s := range db.reads {
		s.Close() // again, when they are stmts: harmless
	}
	if db.r == db.w {
		return db.w.Close()
	}
	// The writer closes last: SQLite checkpoints the whole WAL and removes
	// it when the last connection to the file closes.
	return errors.Join(db.r.Close(), db.w.Close())
}

// Ping implements gateway.Store.
func (db *DB) Ping(ctx context.Context) error {
	if err := db.r.PingContext(ctx); err != nil {
		return &gateway.Error{Code: gateway.EUNAVAILABLE, Message: UnavailableMessage, Err: err}
	}
	return nil
}

// queries and readQueries are every statement the store runs, registered by
// query and read so that New prepares them: on SQLite's one writer
// connection they cannot be prepared later, as the connection is busy with
// the transaction that needs them.
var queries, readQueries []string

// query registers a statement run in write transactions.
func query(q string) string {
	queries = append(queries, q)
	return q
}

// read registers a statement run on the readers (and in write transactions).
func read(q string) string {
	readQueries = append(readQueries, q)
	return query(q)
}

var clause = regexp.MustCompile(`\{([^}]*)\}`)

// rewrite is q in the dialect: its optional clauses kept or dropped, its
// placeholders numbered if need be.
func (d Dialect) rewrite(q string) string {
	q = clause.ReplaceAllStringFunc(q, func(c string) string {
		c = c[1 : len(c)-1]
		for _, p := range d.Clauses {
			if strings.HasPrefix(c, p) {
				return c
			}
		}
		return ""
	})
	if !d.Numbered {
		return q
	}
	var b strings.Builder
	n := 0
	for _, r := range q {
		if r == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// tx is a transaction with the context its statements run under.
type tx struct {
	ctx context.Context
	tx  *sql.Tx
	db  *DB
}

func (t tx) stmt(q string) *sql.Stmt {
	if s, ok := t.db.stmts[q]; ok {
		return t.tx.StmtContext(t.ctx, s)
	}
	return nil
}

func (t tx) exec(q string, args ...any) (sql.Result, error) {
	if s := t.stmt(q); s != nil {
		return s.ExecContext(t.ctx, args...)
	}
	return t.tx.ExecContext(t.ctx, t.db.d.rewrite(q), args...)
}

func (t tx) query(q string, args ...any) (*sql.Rows, error) {
	if s := t.stmt(q); s != nil {
		return s.QueryContext(t.ctx, args...)
	}
	return t.tx.QueryContext(t.ctx, t.db.d.rewrite(q), args...)
}

func (t tx) queryRow(q string, args ...any) *sql.Row {
	if s := t.stmt(q); s != nil {
		return s.QueryRowContext(t.ctx, args...)
	}
	return t.tx.QueryRowContext(t.ctx, t.db.d.rewrite(q), args...)
}

func (t tx) time(v time.Time) any { return t.db.time(v) }

// queryRow runs a read on the readers.
func (db *DB) queryRow(ctx context.Context, q string, args ...any) *sql.Row {
	if s, ok := db.reads[q]; ok {
		return s.QueryRowContext(ctx, args...)
	}
	return db.r.QueryRowContext(ctx, db.d.rewrite(q), args...)
}

// query runs a read on the readers.
func (db *DB) query(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	if s, ok := db.reads[q]; ok {
		return s.QueryContext(ctx, args...)
	}
	return db.r.QueryContext(ctx, db.d.rewrite(q), args...)
}

// write runs fn in a write transaction that is committed (and on disk)
// when write returns nil. A transaction that failed transiently, or as
// retry says, is run again, up to three times in all. Whatever fn computes
// is valid only when write returns nil.
func (db *DB) write(ctx context.Context, retry func(error) bool, fn func(t tx) error) error {
	run := func(ctx context.Context, sqltx *sql.Tx) error { return fn(tx{ctx: ctx, tx: sqltx, db: db}) }
	if db.d.Write != nil {
		return db.mapErr(db.d.Write(ctx, run))
	}
	var err error
	for range 3 {
		if err = db.try(ctx, run); err == nil {
			return nil
		}
		if !(db.d.Transient != nil && db.d.Transient(err)) && (retry == nil || !retry(err)) {
			break
		}
	}
	return db.mapErr(err)
}

func (db *DB) try(ctx context.Context, run func(context.Context, *sql.Tx) error) error {
	t, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := run(ctx, t); err != nil {
		_ = t.Rollback()
		return err
	}
	return t.Commit()
}

func (db *DB) unique(err error) bool { return db.d.Unique != nil && db.d.Unique(err) }

// MapErr turns driver errors into gateway errors; gateway errors pass.
func (d Dialect) MapErr(err error) error {
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
	if errors.Is(err, context.DeadlineExceeded) || (d.Unavailable != nil && d.Unavailable(err)) {
		return &gateway.Error{Code: gateway.EUNAVAILABLE, Message: UnavailableMessage, Err: err}
	}
	return gateway.Internal(err)
}

func (db *DB) mapErr(err error) error { return db.d.MapErr(err) }

// time is a time as the database keeps it: UTC, microseconds.
func (db *DB) time(v time.Time) any { return db.d.Time(utc(v)) }

func utc(v time.Time) time.Time { return v.UTC().Truncate(time.Microsecond) }

// timeOf scans a time as either database keeps it (SQLite: INTEGER
// microseconds since the epoch; PostgreSQL: timestamptz), NULL as zero.
type timeOf struct{ t *time.Time }

func (s timeOf) Scan(v any) error {
	switch v := v.(type) {
	case nil:
		*s.t = time.Time{}
	case int64:
		*s.t = time.UnixMicro(v).UTC()
	case time.Time:
		*s.t = v.UTC()
	default:
		return fmt.Errorf("a time cannot be %T", v)
	}
	return nil
}

func nullString(s string) sql.NullString {
	return sql.NullString{String: s, Valid: s != ""}
}

func nullJSON(b []byte) sql.NullString {
	return sql.NullString{String: string(b), Valid: len(b) > 0}
}

func rawJSON(s sql.NullString) []byte {
	if !s.Valid {
		return nil
	}
	return []byte(s.String)
}

type scanner interface{ Scan(...any) error }
