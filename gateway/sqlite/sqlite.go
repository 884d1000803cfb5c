// Package sqlite is the gateway's embedded store: one SQLite file in WAL mode,
// pure Go (modernc.org/sqlite, no cgo), so that a single gateway needs no
// database server. Every write goes through one connection, so SQLite's single
// writer never has to wait on itself and the decision chains cannot fork;
// reads use a separate pool and see a consistent snapshot.
//
// A write returns only once its transaction is on disk (synchronous=FULL).
// With group commit (the default) concurrent writes share one transaction and
// therefore one flush; see Options.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	sqlite3 "modernc.org/sqlite"
	sqlitelib "modernc.org/sqlite/lib"

	"github.com/student-mh-referrals/gateway/gateway"
)

// Options tune a store; the zero value is what Open uses.
type Options struct {
	// NoGroupCommit gives every write its own transaction and flush instead
	// of batching concurrent writes into one. It exists to measure the
	// difference (BenchmarkAccept): under concurrent accepts group commit
	// gave two to four times the throughput; one at a time, the two are
	// alike.
	NoGroupCommit bool
}

// maxBatch bounds how many writes share one transaction, so that one flush
// never waits on an unbounded amount of work.
const maxBatch = 64

// Checkpoints (copying the WAL back into the database file) run on a
// connection of their own every checkpointEvery, PASSIVE so that they never
// wait for or block the writer. SQLite's default is to checkpoint in the
// writer's commit whenever the WAL reaches 1,000 pages: under load that was
// 5 % of the gateway's CPU spent while every queued write waited, a stall
// each few seconds. The writer keeps an automatic checkpoint only as a
// backstop, at walBackstopPages, for when the background one cannot finish
// (a write running the whole time leaves it no moment with the WAL all
// copied, so the WAL would only grow); by then the background checkpoints
// have copied most of it, and the writer's is short.
const (
	checkpointEvery  = 100 * time.Millisecond
	walBackstopPages = 4000
)

// DB is the SQLite store. It implements gateway.Store.
type DB struct {
	path  string
	w     *sql.DB // exactly one connection: the writer
	r     *sql.DB // readers
	group bool
	jobs  chan *job
	ckpt  *sql.DB       // the checkpointer's connection
	stop  chan struct{} // closed by Close: the checkpointer ends
	wg    sync.WaitGroup
	mu    sync.RWMutex // guards closed against sends on jobs
	// closed is set by Close.
	closed bool
	stmts  map[string]*sql.Stmt // hot statements, prepared on w
	reads  map[string]*sql.Stmt // hot reads, prepared on r
}

var _ gateway.Store = (*DB)(nil)

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
	common := "_pragma=busy_timeout(10000)&_pragma=foreign_keys(1)"
	w, err := sql.Open("sqlite", path+"?"+common+
		"&_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_pragma=temp_store(MEMORY)&_txlock=immediate"+
		fmt.Sprintf("&_pragma=wal_autocheckpoint(%d)", walBackstopPages))
	if err != nil {
		return nil, gateway.Internal(err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)
	if err := migrate(ctx, w); err != nil {
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
	ckpt, err := sql.Open("sqlite", path+"?"+common+"&_pragma=synchronous(FULL)")
	if err != nil {
		r.Close()
		w.Close()
		return nil, gateway.Internal(err)
	}
	ckpt.SetMaxOpenConns(1)
	ckpt.SetMaxIdleConns(1)
	ckpt.SetConnMaxLifetime(0)
	ckpt.SetConnMaxIdleTime(0)
	d := &DB{path: path, w: w, r: r, ckpt: ckpt, stop: make(chan struct{}), group: !opt.NoGroupCommit}
	if err := d.prepareHot(ctx); err != nil {
		ckpt.Close()
		r.Close()
		w.Close()
		return nil, gateway.Internal(err)
	}
	d.wg.Add(1)
	go d.checkpointer()
	if d.group {
		d.jobs = make(chan *job, maxBatch)
		d.wg.Add(1)
		go d.writer()
	}
	return d, nil
}

// Close stops the writer after the writes already queued and closes the
// database. A crash instead of Close loses nothing that was acknowledged.
func (d *DB) Close() error {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil
	}
	d.closed = true
	if d.group {
		close(d.jobs)
	}
	close(d.stop)
	d.mu.Unlock()
	d.wg.Wait()
	for _, s := range d.stmts {
		s.Close()
	}
	for _, s := range d.reads {
		s.Close()
	}
	// The writer's connection closes last: SQLite checkpoints the whole
	// WAL and removes it when the last connection to the file closes.
	return errors.Join(d.ckpt.Close(), d.r.Close(), d.w.Close())
}

// checkpointer copies the WAL into the database file in the background
// (see checkpointEvery). A checkpoint that fails (a full disk, say) is tried
// again at the next tick; meanwhile the WAL keeps every committed write, so
// nothing acknowledged depends on it.
func (d *DB) checkpointer() {
	defer d.wg.Done()
	t := time.NewTicker(checkpointEvery)
	defer t.Stop()
	for {
		select {
		case <-d.stop:
			return
		case <-t.C:
		}
		_, _ = d.Checkpoint(context.Background())
	}
}

// Checkpoint copies what it can of the WAL into the database file now,
// without waiting for the writer or the readers (PASSIVE), and returns the
// WAL's frames and how many of them are copied. The background checkpointer
// calls it; tests use it to see that the WAL is being copied.
func (d *DB) Checkpoint(ctx context.Context) (CheckpointResult, error) {
	var r CheckpointResult
	err := d.ckpt.QueryRowContext(ctx, "PRAGMA wal_checkpoint(PASSIVE)").Scan(&r.Busy, &r.Frames, &r.Copied)
	return r, mapErr(err)
}

// CheckpointResult is what PRAGMA wal_checkpoint reports.
type CheckpointResult struct {
	Busy   bool // the checkpoint could not run to the end now
	Frames int  // pages in the WAL
	Copied int  // of them, copied into the database file
}

// Ping implements gateway.Store.
func (d *DB) Ping(ctx context.Context) error {
	if err := d.r.PingContext(ctx); err != nil {
		return &gateway.Error{Code: gateway.EUNAVAILABLE, Message: unavailableMessage, Err: err}
	}
	return nil
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
		return mapErr(fmt.Errorf("vacuum into: %w", err))
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

// job is one write waiting for the writer.
type job struct {
	ctx  context.Context
	fn   func(t wtx) error
	done chan error
}

// write runs fn once in a write transaction and returns once that is
// committed and flushed, or has failed. Under group commit fn runs inside a
// savepoint of a shared transaction, and its writes alone are undone if it
// returns an error. Whatever fn computes is valid only when write returns
// nil.
func (d *DB) write(ctx context.Context, fn func(t wtx) error) error {
	if !d.group {
		tx, err := d.w.BeginTx(ctx, nil)
		if err != nil {
			return mapErr(err)
		}
		if err := fn(wtx{ctx: ctx, tx: tx, db: d}); err != nil {
			_ = tx.Rollback()
			return mapErr(err)
		}
		return mapErr(tx.Commit())
	}
	j := &job{ctx: ctx, fn: fn, done: make(chan error, 1)}
	d.mu.RLock()
	if d.closed {
		d.mu.RUnlock()
		return gateway.Errorf(gateway.EUNAVAILABLE, "the store is closed")
	}
	select {
	case d.jobs <- j:
		d.mu.RUnlock()
	case <-ctx.Done():
		d.mu.RUnlock()
		return mapErr(ctx.Err())
	}
	// Once queued, the job is waited for even if ctx ends: it may already
	// be committed, and the caller must not be told otherwise.
	return mapErr(<-j.done)
}

// writer is the group-commit loop: it takes the writes queued while the last
// flush ran and commits them together.
func (d *DB) writer() {
	defer d.wg.Done()
	for first := range d.jobs {
		batch := []*job{first}
	gather:
		for len(batch) < maxBatch {
			select {
			case j, ok := <-d.jobs:
				if !ok {
					break gather
				}
				batch = append(batch, j)
			default:
				break gather
			}
		}
		d.commitBatch(batch)
	}
}

func (d *DB) commitBatch(batch []*job) {
	// The transaction and its statements use a context of their own: a
	// caller giving up must not interrupt a statement of a shared
	// transaction, which SQLite would answer by rolling all of it back.
	ctx := context.Background()
	if len(batch) == 1 {
		// Alone: no savepoint needed, its error undoes the transaction.
		j := batch[0]
		if err := j.ctx.Err(); err != nil {
			j.done <- err
			return
		}
		tx, err := d.w.BeginTx(ctx, nil)
		if err != nil {
			j.done <- err
			return
		}
		if err := j.fn(wtx{ctx: ctx, tx: tx, db: d}); err != nil {
			_ = tx.Rollback()
			j.done <- err
			return
		}
		j.done <- tx.Commit()
		return
	}
	errs := make([]error, len(batch))
	fail := func(err error) {
		for i, j := range batch {
			if errs[i] == nil {
				errs[i] = err
			}
			j.done <- errs[i]
		}
	}
	tx, err := d.w.BeginTx(ctx, nil)
	if err != nil {
		fail(err)
		return
	}
	t := wtx{ctx: ctx, tx: tx, db: d}
	for i, j := range batch {
		if err := j.ctx.Err(); err != nil {
			errs[i] = err
			continue
		}
		if _, err := t.exec(sqlSavepoint); err != nil {
			_ = tx.Rollback()
			fail(err)
			return
		}
		if err := j.fn(t); err != nil {
			errs[i] = err
			if _, rerr := t.exec(sqlRollbackTo); rerr != nil {
				// SQLite undoes the whole transaction on some errors
				// (SQLITE_FULL, SQLITE_IOERR): the savepoint is gone and
				// every job of the batch failed for this job's reason.
				_ = tx.Rollback()
				fail(errors.Join(err, rerr))
				return
			}
		}
		if _, err := t.exec(sqlRelease); err != nil {
			_ = tx.Rollback()
			fail(err)
			return
		}
	}
	if err := tx.Commit(); err != nil {
		fail(err)
		return
	}
	for i, j := range batch {
		j.done <- errs[i]
	}
}

var (
	sqlSavepoint  = prepared(`SAVEPOINT job`)
	sqlRollbackTo = prepared(`ROLLBACK TO job`)
	sqlRelease    = prepared(`RELEASE job`)
)

// wtx is a write transaction with the context its statements run under.
// Its statements are prepared once on the writer's connection: parsing SQL
// was a quarter of an accept's CPU time.
type wtx struct {
	ctx context.Context
	tx  *sql.Tx
	db  *DB
}

// hot lists the write statements that Open prepares on the writer's
// connection. They cannot be prepared lazily: the one connection is busy
// with the transaction that needs them.
var hot []string

// prepared registers a write statement in hot.
func prepared(q string) string {
	hot = append(hot, q)
	return q
}

func (d *DB) prepareHot(ctx context.Context) error {
	d.stmts = make(map[string]*sql.Stmt, len(hot))
	for _, q := range hot {
		s, err := d.w.PrepareContext(ctx, q)
		if err != nil {
			return fmt.Errorf("prepare %q: %w", q, err)
		}
		d.stmts[q] = s
	}
	d.reads = make(map[string]*sql.Stmt, len(hotReads))
	for _, q := range hotReads {
		s, err := d.r.PrepareContext(ctx, q)
		if err != nil {
			return fmt.Errorf("prepare %q: %w", q, err)
		}
		d.reads[q] = s
	}
	return nil
}

// hotReads lists the read statements that every request runs (the latest
// version of a case is looked up before each submission is decided).
// Parsing their SQL on every call was a sixth of the store's CPU time under
// load; prepared on the reader pool, each connection parses them once.
var hotReads []string

// preparedRead registers a read statement in hotReads.
func preparedRead(q string) string {
	hotReads = append(hotReads, q)
	return q
}

// queryRow runs a read on the reader pool, prepared when q is a hot read.
func (d *DB) queryRow(ctx context.Context, q string, args ...any) *sql.Row {
	if s, ok := d.reads[q]; ok {
		return s.QueryRowContext(ctx, args...)
	}
	return d.r.QueryRowContext(ctx, q, args...)
}

// stmt is q's prepared statement on this transaction, nil when q is not hot.
func (t wtx) stmt(q string) *sql.Stmt {
	if s, ok := t.db.stmts[q]; ok {
		return t.tx.StmtContext(t.ctx, s)
	}
	return nil
}

func (t wtx) exec(q string, args ...any) (sql.Result, error) {
	if s := t.stmt(q); s != nil {
		return s.ExecContext(t.ctx, args...)
	}
	return t.tx.ExecContext(t.ctx, q, args...)
}

func (t wtx) query(q string, args ...any) (*sql.Rows, error) {
	if s := t.stmt(q); s != nil {
		return s.QueryContext(t.ctx, args...)
	}
	return t.tx.QueryContext(t.ctx, q, args...)
}

func (t wtx) queryRow(q string, args ...any) *sql.Row {
	if s := t.stmt(q); s != nil {
		return s.QueryRowContext(t.ctx, args...)
	}
	return t.tx.QueryRowContext(t.ctx, q, args...)
}

// mapErr turns driver errors into gateway errors; gateway errors pass.
func mapErr(err error) error {
	if err == nil {
		return nil
	}
	var ge *gateway.Error
	if errors.As(err, &ge) {
		return ge
	}
	if u := unavailable(err); u != nil {
		return u
	}
	if errors.Is(err, context.Canceled) {
		return &gateway.Error{Code: gateway.EUNAVAILABLE, Message: "the request was cancelled", Err: err}
	}
	return gateway.Internal(err)
}

func isUnique(err error) bool {
	var se *sqlite3.Error
	return errors.As(err, &se) && (se.Code() == sqlitelib.SQLITE_CONSTRAINT_UNIQUE || se.Code() == sqlitelib.SQLITE_CONSTRAINT_PRIMARYKEY)
}

// Times are stored as microseconds since the epoch, UTC.
func toMicros(t time.Time) int64 { return t.UnixMicro() }

func fromMicros(v int64) time.Time { return time.UnixMicro(v).UTC() }

func nullMicros(t time.Time) sql.NullInt64 {
	if t.IsZero() {
		return sql.NullInt64{}
	}
	return sql.NullInt64{Int64: t.UnixMicro(), Valid: true}
}

func fromNullMicros(v sql.NullInt64) time.Time {
	if !v.Valid {
		return time.Time{}
	}
	return fromMicros(v.Int64)
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
