// Package sqlite is the gateway's embedded store: one SQLite file in WAL mode,
// pure Go (modernc.org/sqlite, no cgo), so that a single gateway needs no
// database server. The store itself is gateway/sqlstore; this package opens
// the file, holds its migrations and says how SQLite differs.
//
// Every write goes through one connection, so SQLite's single writer never
// has to wait on itself and the decision chains cannot fork; reads use a
// separate pool and see a consistent snapshot. A write returns only once its
// transaction is on disk (synchronous=FULL). With group commit (the default)
// concurrent writes share one transaction and therefore one flush; see
// Options.
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/uuid"
	sqlite3 "modernc.org/sqlite"
	sqlitelib "modernc.org/sqlite/lib"

	"github.com/student-mh-referrals/gateway/gateway"
	"github.com/student-mh-referrals/gateway/gateway/sqlstore"
)

// Options tune a store; the zero value is what Open uses.
type Options struct {
	// NoGroupCommit gives every write its own transaction and flush instead
	// of batching concurrent writes into one. It exists to measure the
	// difference (BenchmarkAccept in gateway/sqlstore, BenchmarkLifecycle):
	// under concurrent accepts group commit gives two to three times the
	// throughput at half the CPU time per accept; one at a time, the two are
	// alike.
	NoGroupCommit bool
}

// migrations are the schema's history (sqlstore.Migrate).
//
//go:embed migrations/*.sql
var migrations embed.FS

// DB is the SQLite store. It implements gateway.Store.
type DB struct {
	*sqlstore.DB
	path  string
	w, r  *sql.DB // exactly one connection: the writer; the readers
	group *group  // nil without group commit
}

// Open opens (creating if need be) the store at path and brings its schema up
// to date.
func Open(ctx context.Context, path string) (*DB, error) {
	return OpenWith(ctx, path, Options{})
}

// OpenWith is Open with options.
func OpenWith(ctx context.Context, path string, opt Options) (*DB, error) {
	if path == "" || strings.ContainsAny(path, "?") || strings.HasPrefix(path, ":memory:") {
		return nil, gateway.Errorf(gateway.EINVALID, "the SQLite store needs a file path without '?'")
	}
	// busy_timeout covers the rare second process or handle on the same
	// file (a backup, an operator's sqlite3 shell, a test's second handle).
	// SQLite checkpoints the WAL into the file itself, in the commit that
	// takes it past 1,000 pages.
	common := "_pragma=busy_timeout(10000)&_pragma=foreign_keys(1)"
	w, err := sql.Open("sqlite", path+"?"+common+
		"&_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_pragma=temp_store(MEMORY)&_txlock=immediate")
	if err != nil {
		return nil, gateway.Internal(err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)
	sub, _ := fs.Sub(migrations, "migrations")
	if err := sqlstore.Migrate(ctx, w, dialect, sub); err != nil {
		w.Close()
		return nil, err
	}
	r, err := sql.Open("sqlite", path+"?"+common+"&_pragma=query_only(1)")
	if err != nil {
		w.Close()
		return nil, gateway.Internal(err)
	}
	r.SetMaxOpenConns(8)
	r.SetMaxIdleConns(8)
	d := &DB{path: path, w: w, r: r}
	dia := dialect
	if !opt.NoGroupCommit {
		if d.group, err = newGroup(ctx, w); err != nil {
			r.Close()
			w.Close()
			return nil, dialect.MapErr(err)
		}
		dia.Write = d.group.write
	}
	if d.DB, err = sqlstore.New(ctx, dia, w, r); err != nil {
		if d.group != nil {
			d.group.close()
		}
		return nil, err
	}
	return d, nil
}

// dialect is how SQLite differs: ? placeholders, INDEXED BY where the
// planner without statistics would scan the outbox, no row locks (the one
// writer needs none), times as INTEGER microseconds since the epoch.
var dialect = sqlstore.Dialect{
	Clauses:     []string{"INDEXED BY"},
	Time:        func(t time.Time) any { return t.UnixMicro() },
	Unavailable: unavailable,
	Unique: func(err error) bool {
		var se *sqlite3.Error
		return errors.As(err, &se) && (se.Code() == sqlitelib.SQLITE_CONSTRAINT_UNIQUE || se.Code() == sqlitelib.SQLITE_CONSTRAINT_PRIMARYKEY)
	},
	// The migrations' transaction is BEGIN IMMEDIATE (_txlock): two
	// processes opening one file cannot both apply a migration.
	MigrationsTable: `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER PRIMARY KEY,
		name       TEXT NOT NULL,
		checksum   TEXT NOT NULL,
		applied_at INTEGER NOT NULL)`,
}

// unavailable says that err means the database cannot serve the request now
// but may once an operator or time has fixed the cause:
//
//   - SQLITE_FULL: the disk (or PRAGMA max_page_count) is full;
//   - SQLITE_IOERR: the file could not be read or written;
//   - SQLITE_BUSY: another handle held the lock beyond busy_timeout.
//
// Each such failure leaves nothing written: the transaction (or, under
// group commit, the job's savepoint) is rolled back before the error
// reaches the caller, so a client may simply try again.
func unavailable(err error) bool {
	var se *sqlite3.Error
	if !errors.As(err, &se) {
		return false
	}
	switch se.Code() & 0xff { // the primary code; extended codes refine it
	case sqlitelib.SQLITE_FULL, sqlitelib.SQLITE_IOERR, sqlitelib.SQLITE_BUSY:
		return true
	}
	return false
}

// Close stops the writer after the writes already queued and closes the
// database. A crash instead of Close loses nothing that was acknowledged.
func (d *DB) Close() error {
	if d.group != nil {
		d.group.close()
	}
	return d.DB.Close()
}

// SetMaxPageCount caps the database file at n pages (PRAGMA
// max_page_count) and returns the cap now in force, which SQLite never sets
// below the pages already in use: SetMaxPageCount(ctx, 1) makes the store
// exactly full. Past the cap a write fails with SQLITE_FULL just as on a
// full disk, so an operator can bound the store's growth, and the fault
// tests fill the "disk" without a small filesystem. SQLite keeps the cap per
// connection: it is set on the writer's one connection, the only one that
// writes, and a reopened store has none.
func (d *DB) SetMaxPageCount(ctx context.Context, n int64) (int64, error) {
	if n <= 0 {
		return 0, gateway.Errorf(gateway.EINVALID, "a max page count must be positive, not %d", n)
	}
	var got int64
	if err := d.w.QueryRowContext(ctx, fmt.Sprintf("PRAGMA max_page_count = %d", n)).Scan(&got); err != nil {
		return 0, dialect.MapErr(err)
	}
	return got, nil
}

// Backup writes a consistent copy of the live store to path (VACUUM INTO, so
// writers carry on meanwhile), flushes it to disk and only then gives it its
// name, so that a file at path is always a complete backup. path must not
// exist.
func (d *DB) Backup(ctx context.Context, path string) error {
	if _, err := os.Stat(path); err == nil {
		return gateway.Errorf(gateway.ECONFLICT, "the backup file already exists")
	} else if !errors.Is(err, os.ErrNotExist) {
		return gateway.Internal(err)
	}
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+"."+uuid.NewString()+".tmp")
	defer os.Remove(tmp)
	// A connection of its own: the readers are query_only, and the writer
	// must stay free for the writes that go on meanwhile.
	src, err := sql.Open("sqlite", d.path+"?_pragma=busy_timeout(10000)")
	if err != nil {
		return gateway.Internal(err)
	}
	_, err = src.ExecContext(ctx, "VACUUM INTO ?", tmp)
	src.Close()
	if err != nil {
		return dialect.MapErr(fmt.Errorf("vacuum into: %w", err))
	}
	if err := syncFile(tmp); err != nil {
		return gateway.Internal(err)
	}
	if err := os.Link(tmp, path); err != nil { // fails rather than replaces
		if errors.Is(err, os.ErrExist) {
			return gateway.Errorf(gateway.ECONFLICT, "the backup file already exists")
		}
		return gateway.Internal(err)
	}
	if err := syncFile(filepath.Dir(path)); err != nil {
		return gateway.Internal(err)
	}
	return nil
}

func syncFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}
