package opa

import (
	"context"
	"errors"
	"io/fs"
	"time"

	"go.uber.org/zap"

	"github.com/student-mh-referrals/gateway/gateway"
)

// Reload replaces the policy set in force with the one in fsys, after
// checking it as CI would: it must parse and compile (strictly, under
// WithStrict), define the decision, and pass its own tests (the
// *_test.rego files of fsys, run with OPA's tester). A set that fails any of
// these is refused, with one log line saying why, and the set in force keeps
// serving; the error says why as well. A set with the revision already in
// force is not rebuilt. Evaluations under way when the new set takes over
// finish on the set they started with; every later Decide uses the new one.
//
// Reload returns the revision in force afterwards. Each call reports to the
// WithOnReload callback, for the audit trail of operator actions.
func (d *Decider) Reload(ctx context.Context, fsys fs.FS) (string, error) {
	d.reloading.Lock()
	defer d.reloading.Unlock()
	old := d.cur.Load().revision
	src, err := load(fsys)
	if err != nil {
		offered := ""
		if src != nil {
			offered = src.revision
		}
		return d.refuse(old, offered, err)
	}
	if src.revision == old {
		d.cfg.log.Info("policy reload: the policy set is unchanged", zap.String("revision", old))
		d.report(old, old, nil)
		return old, nil
	}
	set, err := compile(ctx, src, d.cfg.strict)
	if err != nil {
		return d.refuse(old, src.revision, err)
	}
	ran, err := testSet(ctx, src)
	if err != nil {
		return d.refuse(old, src.revision, err)
	}
	d.cur.Store(set)
	if ran == 0 {
		d.cfg.log.Warn("policy reload: the new policy set has no tests", zap.String("revision", src.revision))
	}
	d.cfg.log.Info("policy reload: the new policy set is in force",
		zap.String("old_revision", old), zap.String("revision", src.revision), zap.Int("tests", ran))
	d.report(old, src.revision, nil)
	return src.revision, nil
}

// refuse logs and reports a refused set and returns the revision still in
// force with the reason.
func (d *Decider) refuse(old, offered string, err error) (string, error) {
	d.cfg.log.Error("policy reload refused: the policy set in force keeps serving",
		zap.String("revision", old), zap.String("offered_revision", offered), zap.String("reason", reason(err)))
	d.report(old, offered, err)
	return old, err
}

func (d *Decider) report(old, new string, err error) {
	if d.cfg.onReload != nil {
		d.cfg.onReload(old, new, err)
	}
}

// reason is the text of a refusal for the log: the client-safe message and
// the cause (compiler messages with file and line, or failing test names).
func reason(err error) string {
	var e *gateway.Error
	if errors.As(err, &e) && e.Err != nil {
		return e.Message + ": " + e.Err.Error()
	}
	return err.Error()
}

// Watch polls fsys (os.DirFS of the configured policy directory) every
// interval and reloads when its policy or test files change, until ctx is
// done; it returns ctx's error. A change is acted on once the files have held
// still for one interval, so that an editor saving several files is not
// caught half way; a set that was refused is offered again only when a file
// changes. Run it on its own goroutine.
func (d *Decider) Watch(ctx context.Context, fsys fs.FS, interval time.Duration) error {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	var seen, pending string // fingerprints: last offered, and waiting to hold still
	unreadable := false      // logged once until the directory reads again
	if files, err := readPolicyFiles(fsys); err == nil && revisionOf(files) == d.Revision() {
		seen = fingerprintOf(files)
	}
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
		files, err := readPolicyFiles(fsys)
		if err != nil {
			if !unreadable {
				d.cfg.log.Warn("policy watch: the policy directory cannot be read", zap.String("reason", err.Error()))
			}
			unreadable = true
			continue
		}
		unreadable = false
		switch fp := fingerprintOf(files); {
		case fp == seen:
			pending = ""
		case fp != pending:
			pending = fp
		default:
			seen, pending = fp, ""
			d.Reload(ctx, fsys) //nolint:errcheck // Reload logs and reports the outcome
		}
	}
}
