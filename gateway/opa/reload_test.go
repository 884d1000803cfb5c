package opa

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/student-mh-referrals/gateway/gateway"
)

// namedPolicy is a policy set whose every decision allows and names the set
// in recipient.name, so that a test can tell which set made a decision.
func namedPolicy(name string) string {
	return strings.Replace(minimalPolicy, `"name": "n"`, fmt.Sprintf(`"name": %q`, name), 1)
}

// passingTest is a Rego test of namedPolicy that passes.
const passingTest = `package referral_test

import data.referral

test_allows if referral.decision.allow with input as {"service": {"id": "s"}}
`

// reloadEvent is one call of the WithOnReload callback.
type reloadEvent struct {
	old, new string
	err      error
}

// reloadHarness is a Decider on set "a" that records its reload callbacks
// and log lines.
type reloadHarness struct {
	d      *Decider
	logs   *observer.ObservedLogs
	events chan reloadEvent
}

func newReloadHarness(t *testing.T, fsys fs.FS, opts ...Option) *reloadHarness {
	t.Helper()
	core, logs := observer.New(zapcore.DebugLevel)
	h := &reloadHarness{logs: logs, events: make(chan reloadEvent, 16)}
	opts = append(opts, WithLogger(zap.New(core)), WithOnReload(func(old, new string, err error) {
		h.events <- reloadEvent{old, new, err}
	}))
	d, err := New(context.Background(), fsys, opts...)
	if err != nil {
		t.Fatal(err)
	}
	h.d = d
	return h
}

// decidedBy is the name of the set that decided, and the revision the
// decision carries.
func decidedBy(t *testing.T, d *Decider) (string, string) {
	t.Helper()
	dec, err := d.Decide(context.Background(), inputFor(t, "liverpool-u-cope", decisionTime))
	if err != nil {
		t.Fatalf("Decide: %v", err)
	}
	return dec.Recipient.Name, dec.PolicyRevision
}

// personalData are values of the test records that must never reach a log.
var personalData = []string{"Amy", "Jones", "Okafor", "9434765919", "2005-04-12"}

func TestReloadRefusesUnfitSets(t *testing.T) {
	good := fstest.MapFS{"a.rego": {Data: []byte(namedPolicy("a"))}}
	tests := []struct {
		name   string
		fsys   fs.FS
		reason string // in the log line and the error
	}{
		{"syntax error", fstest.MapFS{"a.rego": {Data: []byte("package referral\n\ndecision := {\n")}}, "does not parse"},
		{"compile error", fstest.MapFS{"a.rego": {Data: []byte("package referral\n\ndecision := x\n")}}, "does not compile"},
		{"no decision", fstest.MapFS{"a.rego": {Data: []byte("package referral\n\nallow := true\n")}}, "does not define data.referral.decision"},
		{"no Rego", fstest.MapFS{"README.md": {Data: []byte("# none")}}, "has no Rego files"},
		{"bad data file", fstest.MapFS{"a.rego": {Data: []byte(namedPolicy("b"))}, "data.json": {Data: []byte("[1]")}}, "does not parse"},
		{"failing test", fstest.MapFS{
			"a.rego": {Data: []byte(namedPolicy("b"))},
			"a_test.rego": {Data: []byte(passingTest + `
test_names_the_student if {
	d := referral.decision with input as {"service": {"id": "s"}, "record": {"student": {"name": "Amy Jones"}}}
	d.recipient.name == "Amy Jones"
}
`)},
		}, "1 of 2 policy tests fail: failing: referral_test.test_names_the_student"},
		{"test error", fstest.MapFS{
			"a.rego":      {Data: []byte(namedPolicy("b"))},
			"a_test.rego": {Data: []byte("package referral_test\n\ntest_divides if 1 / 0\n")},
		}, "failing: referral_test.test_divides"},
		{"unreadable", errFS{}, "cannot be read"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newReloadHarness(t, good)
			old := h.d.Revision()
			rev, err := h.d.Reload(context.Background(), tc.fsys)
			if err == nil {
				t.Fatalf("Reload succeeded with revision %s", rev)
			}
			if gateway.ErrorCode(err) != gateway.EINVALID || !strings.Contains(reason(err), tc.reason) {
				t.Errorf("error %q (code %s); want EINVALID naming %q", reason(err), gateway.ErrorCode(err), tc.reason)
			}
			if rev != old || h.d.Revision() != old {
				t.Errorf("revision %s, in force %s; want %s still in force", rev, h.d.Revision(), old)
			}
			if name, decRev := decidedBy(t, h.d); name != "a" || decRev != old {
				t.Errorf("decided by %q under %s; want the old set a under %s", name, decRev, old)
			}
			ev := <-h.events
			if ev.old != old || ev.err == nil || ev.new == old {
				t.Errorf("reload event %+v; want old %s and an error", ev, old)
			}
			if _, unreadable := tc.fsys.(errFS); ev.new == "" && !unreadable {
				t.Errorf("reload event %+v does not name the refused revision", ev)
			}
			lines := h.logs.FilterMessageSnippet("refused").All()
			if len(lines) != 1 || lines[0].Level != zapcore.ErrorLevel {
				t.Fatalf("log %+v; want one error line saying the set was refused", h.logs.All())
			}
			fields := lines[0].ContextMap()
			if fields["revision"] != old || !strings.Contains(fmt.Sprint(fields["reason"]), tc.reason) {
				t.Errorf("log fields %v; want the revision in force and the reason", fields)
			}
			for _, pd := range personalData {
				if strings.Contains(fmt.Sprint(fields), pd) {
					t.Errorf("the log line quotes %q: %v", pd, fields)
				}
			}
		})
	}
}

// errFS is a policy directory that cannot be read.
type errFS struct{}

func (errFS) Open(string) (fs.File, error) { return nil, errors.New("permission denied") }

func TestReloadSwapsAGoodSet(t *testing.T) {
	h := newReloadHarness(t, fstest.MapFS{"a.rego": {Data: []byte(namedPolicy("a"))}})
	old := h.d.Revision()
	b := fstest.MapFS{"a.rego": {Data: []byte(namedPolicy("b"))}, "a_test.rego": {Data: []byte(passingTest)}}
	rev, err := h.d.Reload(context.Background(), b)
	if err != nil {
		t.Fatalf("Reload: %v", err)
	}
	if rev == old || h.d.Revision() != rev {
		t.Errorf("revision %s, in force %s; want a new revision in force (old %s)", rev, h.d.Revision(), old)
	}
	if name, decRev := decidedBy(t, h.d); name != "b" || decRev != rev {
		t.Errorf("decided by %q under %s; want set b under %s", name, decRev, rev)
	}
	if ev := <-h.events; ev != (reloadEvent{old: old, new: rev}) {
		t.Errorf("reload event %+v; want %s -> %s", ev, old, rev)
	}
	lines := h.logs.FilterMessageSnippet("in force").All()
	if len(lines) != 1 || lines[0].ContextMap()["tests"] != int64(1) || lines[0].ContextMap()["old_revision"] != old {
		t.Errorf("log %+v; want one line with the old revision and the 1 test that ran", h.logs.All())
	}

	// The same set again changes nothing, and says so.
	if again, err := h.d.Reload(context.Background(), b); err != nil || again != rev {
		t.Errorf("reload of the set in force: %s, %v", again, err)
	}
	if ev := <-h.events; ev != (reloadEvent{old: rev, new: rev}) {
		t.Errorf("reload event %+v; want %s unchanged", ev, rev)
	}
}

func TestReloadAppliesStrictMode(t *testing.T) {
	h := newReloadHarness(t, fstest.MapFS{"a.rego": {Data: []byte(namedPolicy("a"))}}, WithStrict())
	unusedImport := "package referral\n\nimport input.record.consent\n\n" + strings.TrimPrefix(namedPolicy("b"), "package referral\n")
	if _, err := h.d.Reload(context.Background(), fstest.MapFS{"a.rego": {Data: []byte(unusedImport)}}); err == nil || !strings.Contains(reason(err), "unused") {
		t.Errorf("Reload of a set with an unused import: %v; want a strict-mode refusal", err)
	}
}

// TestReloadUnderConcurrentDecide swaps between two sets while decisions
// run; every decision must come whole from one set, named by its revision.
// Run with -race.
func TestReloadUnderConcurrentDecide(t *testing.T) {
	sets := map[string]fstest.MapFS{}
	for _, name := range []string{"a", "b"} {
		sets[name] = fstest.MapFS{"a.rego": {Data: []byte(namedPolicy(name))}}
	}
	d, err := New(context.Background(), sets["a"])
	if err != nil {
		t.Fatal(err)
	}
	revOf := map[string]string{"a": d.Revision()}
	in := inputFor(t, "liverpool-u-cope", decisionTime)
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	var mu sync.Mutex
	decided := 0
	for range 4 {
		wg.Go(func() {
			for ctx.Err() == nil {
				dec, err := d.Decide(context.Background(), in)
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				want, known := revOf[dec.Recipient.Name]
				decided++
				mu.Unlock()
				if known && dec.PolicyRevision != want {
					errs <- fmt.Errorf("set %s decided under revision %s, not %s", dec.Recipient.Name, dec.PolicyRevision, want)
					return
				}
			}
		})
	}
	for i := range 20 {
		name := []string{"b", "a"}[i%2]
		rev, err := d.Reload(context.Background(), sets[name])
		if err != nil {
			t.Fatalf("Reload %s: %v", name, err)
		}
		mu.Lock()
		revOf[name] = rev
		mu.Unlock()
	}
	stop()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if decided == 0 {
		t.Error("no decision ran during the reloads")
	}
}

// TestReloadLetsAnEvaluationFinishOnItsSet holds an evaluation of set a
// inside the policy (http.send to a server that waits), reloads set b, and
// releases it: the held decision comes from a, every later one from b.
func TestReloadLetsAnEvaluationFinishOnItsSet(t *testing.T) {
	started, release := make(chan struct{}), make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		close(started)
		<-release
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"name": "a"}`)
	}))
	defer srv.Close()
	var releaseOnce sync.Once
	unblock := func() { releaseOnce.Do(func() { close(release) }) }
	defer unblock() // before srv.Close, so that a failing test does not hang on the held handler
	held := strings.Replace(minimalPolicy, `"name": "n"`, `"name": http.send({"method": "GET", "url": input.service.endpoint}).body.name`, 1)
	d, err := New(context.Background(), fstest.MapFS{"a.rego": {Data: []byte(held)}})
	if err != nil {
		t.Fatal(err)
	}
	revA := d.Revision()
	in := inputFor(t, "liverpool-u-cope", decisionTime)
	svc := *in.Service
	svc.Endpoint = srv.URL
	in.Service = &svc
	type result struct {
		dec *gateway.Decision
		err error
	}
	done := make(chan result, 1)
	go func() {
		dec, err := d.Decide(context.Background(), in)
		done <- result{dec, err}
	}()
	<-started // the evaluation of set a is under way
	revB, err := d.Reload(context.Background(), fstest.MapFS{"a.rego": {Data: []byte(namedPolicy("b"))}})
	if err != nil {
		t.Fatalf("Reload: %v", err)
	}
	if name, rev := decidedBy(t, d); name != "b" || rev != revB {
		t.Errorf("a decision after the reload came from %q under %s; want b under %s", name, rev, revB)
	}
	unblock()
	r := <-done
	if r.err != nil {
		t.Fatalf("the held Decide: %v", r.err)
	}
	if r.dec.Recipient.Name != "a" || r.dec.PolicyRevision != revA {
		t.Errorf("the held decision came from %q under %s; want a under %s", r.dec.Recipient.Name, r.dec.PolicyRevision, revA)
	}
}

func TestWatch(t *testing.T) {
	dir := t.TempDir()
	// write replaces a file at once, as an editor that saves by renaming
	// does, so that the watcher never reads half a file.
	write := func(name, content string) {
		t.Helper()
		tmp := filepath.Join(dir, ".saving")
		if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	write("a.rego", namedPolicy("a"))
	h := newReloadHarness(t, os.DirFS(dir))
	revA := h.d.Revision()
	ctx, cancel := context.WithCancel(context.Background())
	watched := make(chan error, 1)
	go func() { watched <- h.d.Watch(ctx, os.DirFS(dir), 5*time.Millisecond) }()
	// next is the next reload that changed or refused something: a watcher
	// that sees the first of two files written may offer the set in force
	// again, which changes nothing.
	next := func(what string) reloadEvent {
		t.Helper()
		for {
			select {
			case ev := <-h.events:
				if ev.old == ev.new && ev.err == nil {
					continue
				}
				return ev
			case <-time.After(30 * time.Second):
				t.Fatalf("no reload after %s", what)
				return reloadEvent{}
			}
		}
	}

	write("a.rego", namedPolicy("b"))
	ev := next("a good edit")
	if ev.old != revA || ev.err != nil || ev.new == revA || h.d.Revision() != ev.new {
		t.Fatalf("after a good edit: event %+v, in force %s", ev, h.d.Revision())
	}
	revB := ev.new
	if name, _ := decidedBy(t, h.d); name != "b" {
		t.Errorf("decided by %q after the edit; want b", name)
	}

	write("a_test.rego", "package referral_test\n\ntest_fails if false\n")
	write("a.rego", namedPolicy("c"))
	ev = next("an edit whose tests fail")
	if ev.old != revB || ev.err == nil || h.d.Revision() != revB {
		t.Fatalf("after an edit whose tests fail: event %+v, in force %s; want %s to keep serving", ev, h.d.Revision(), revB)
	}

	write("a_test.rego", passingTest) // fixing the tests alone offers the set again
	ev = next("the tests were fixed")
	if ev.old != revB || ev.err != nil || h.d.Revision() == revB {
		t.Fatalf("after fixing the tests: event %+v, in force %s", ev, h.d.Revision())
	}
	if name, _ := decidedBy(t, h.d); name != "c" {
		t.Errorf("decided by %q after the fix; want c", name)
	}

	cancel()
	if err := <-watched; !errors.Is(err, context.Canceled) {
		t.Errorf("Watch returned %v; want context.Canceled", err)
	}
	for len(h.events) > 0 {
		if ev := <-h.events; ev.old != ev.new || ev.err != nil {
			t.Errorf("unexpected reload %+v", ev)
		}
	}
}

func TestNewWithTests(t *testing.T) {
	failing := fstest.MapFS{
		"a.rego":      {Data: []byte(namedPolicy("a"))},
		"a_test.rego": {Data: []byte("package referral_test\n\ntest_fails if false\n")},
	}
	if _, err := New(context.Background(), failing); err != nil {
		t.Fatalf("New without WithTests runs no tests: %v", err)
	}
	if _, err := New(context.Background(), failing, WithTests()); gateway.ErrorCode(err) != gateway.EINVALID {
		t.Errorf("New with WithTests and a failing test: %v; want EINVALID", err)
	}
	d, err := New(context.Background(), nil, WithTests(), WithStrict())
	if err != nil {
		t.Fatalf("the embedded policies fail their own tests: %v", err)
	}
	if d.Revision() != decider(t).Revision() {
		t.Error("running the tests changed the revision")
	}
}
