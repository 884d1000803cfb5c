package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"sync"

	"github.com/student-mh-referrals/gateway/gateway"
)

// maxBatch bounds how many writes share one transaction, so that one flush
// never waits on an unbounded amount of work.
const maxBatch = 64

// group is group commit: the writes queued while the last flush ran are
// committed together, each in a savepoint of the shared transaction, so
// that a write that fails undoes its own changes alone.
type group struct {
	w    *sql.DB
	save [3]*sql.Stmt // SAVEPOINT, ROLLBACK TO, RELEASE
	jobs chan *job
	wg   sync.WaitGroup
	mu   sync.RWMutex // guards closed against sends on jobs
	// closed is set by close.
	closed bool
}

// job is one write waiting for the writer.
type job struct {
	ctx  context.Context
	run  func(context.Context, *sql.Tx) error
	done chan error
}

func newGroup(ctx context.Context, w *sql.DB) (*group, error) {
	g := &group{w: w, jobs: make(chan *job, maxBatch)}
	for i, q := range []string{`SAVEPOINT job`, `ROLLBACK TO job`, `RELEASE job`} {
		s, err := w.PrepareContext(ctx, q)
		if err != nil {
			return nil, err
		}
		g.save[i] = s
	}
	g.wg.Add(1)
	go g.writer()
	return g, nil
}

// close commits the writes already queued and stops the writer.
func (g *group) close() {
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return
	}
	g.closed = true
	close(g.jobs)
	g.mu.Unlock()
	g.wg.Wait()
	for _, s := range g.save {
		s.Close()
	}
}

// write is sqlstore.Dialect.Write: it queues run and returns once the
// batch it joined is committed and flushed, or has failed.
func (g *group) write(ctx context.Context, run func(context.Context, *sql.Tx) error) error {
	j := &job{ctx: ctx, run: run, done: make(chan error, 1)}
	g.mu.RLock()
	if g.closed {
		g.mu.RUnlock()
		return gateway.Errorf(gateway.EUNAVAILABLE, "the store is closed")
	}
	select {
	case g.jobs <- j:
		g.mu.RUnlock()
	case <-ctx.Done():
		g.mu.RUnlock()
		return ctx.Err()
	}
	// Once queued, the job is waited for even if ctx ends: it may already
	// be committed, and the caller must not be told otherwise.
	return <-j.done
}

// writer takes the writes queued while the last flush ran and commits them
// together.
func (g *group) writer() {
	defer g.wg.Done()
	for first := range g.jobs {
		batch := []*job{first}
	gather:
		for len(batch) < maxBatch {
			select {
			case j, ok := <-g.jobs:
				if !ok {
					break gather
				}
				batch = append(batch, j)
			default:
				break gather
			}
		}
		g.commit(batch)
	}
}

func (g *group) commit(batch []*job) {
	// The transaction and its statements use a context of their own: a
	// caller giving up must not interrupt a statement of a shared
	// transaction, which SQLite would answer by rolling all of it back.
	ctx := context.Background()
	errs := make([]error, len(batch))
	fail := func(err error) {
		for i, j := range batch {
			if errs[i] == nil {
				errs[i] = err
			}
			j.done <- errs[i]
		}
	}
	tx, err := g.w.BeginTx(ctx, nil)
	if err != nil {
		fail(err)
		return
	}
	exec := func(i int) error {
		_, err := tx.StmtContext(ctx, g.save[i]).ExecContext(ctx)
		return err
	}
	alone := len(batch) == 1 // no savepoint needed: its error undoes the transaction
	for i, j := range batch {
		if err := j.ctx.Err(); err != nil {
			errs[i] = err
			continue
		}
		if !alone {
			if err := exec(0); err != nil {
				_ = tx.Rollback()
				fail(err)
				return
			}
		}
		if err := j.run(ctx, tx); err != nil {
			errs[i] = err
			if alone {
				_ = tx.Rollback()
				fail(err)
				return
			}
			if rerr := exec(1); rerr != nil {
				// SQLite undoes the whole transaction on some errors
				// (SQLITE_FULL, SQLITE_IOERR): the savepoint is gone and
				// every job of the batch failed for this job's reason.
				_ = tx.Rollback()
				fail(errors.Join(err, rerr))
				return
			}
		}
		if !alone {
			if err := exec(2); err != nil {
				_ = tx.Rollback()
				fail(err)
				return
			}
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
