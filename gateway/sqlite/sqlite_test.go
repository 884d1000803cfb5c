package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"testing/fstest"
	"time"

	"github.com/student-mh-referrals/gateway/gateway"
	"github.com/student-mh-referrals/gateway/gateway/sqlstore"
)

func openAt(t testing.TB, path string, opt Options) *DB {
	t.Helper()
	db, err := OpenWith(context.Background(), path, opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Error(err)
		}
	})
	return db
}

// inst and t0 are the institution and time of the tests' referrals.
const inst = "10000001"

var t0 = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

// acceptRequest is a complete accept request for caseID of inst at t0,
// whose content hash content determines. The store treats record and
// bundle as opaque JSON.
func acceptRequest(caseID, content string) gateway.AcceptRequest {
	hash := gateway.DeriveID("content", caseID, content)
	body, _ := json.Marshal(map[string]string{"caseId": caseID, "content": content})
	return gateway.AcceptRequest{
		Institution: inst, CaseID: caseID, ContentHash: hash, ServiceID: "u-cope", At: t0,
		Record: body, Bundle: body,
		Decision: gateway.DecisionRecord{DecisionID: gateway.DeriveID("decision", hash), At: t0, Body: []byte(`{"allow":true}`)},
	}
}

// commitModes are the store with and without group commit.
var commitModes = []struct {
	name string
	opt  Options
}{{"group-commit", Options{}}, {"commit-per-write", Options{NoGroupCommit: true}}}

func TestOpen(t *testing.T) {
	ctx := context.Background()
	t.Run("migrations are recorded and run once", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "gateway.db")
		for i := 0; i < 2; i++ {
			db := openAt(t, path, Options{})
			var n int
			if err := db.r.QueryRowContext(ctx, `SELECT COUNT(*) FROM schema_migrations`).Scan(&n); err != nil {
				t.Fatal(err)
			}
			ms, _ := fs.Glob(migrations, "migrations/*.sql")
			if n != len(ms) {
				t.Fatalf("open %d: %d migrations recorded, want %d", i+1, n, len(ms))
			}
			var mode, sync string
			if err := db.w.QueryRowContext(ctx, `PRAGMA journal_mode`).Scan(&mode); err != nil {
				t.Fatal(err)
			}
			if err := db.w.QueryRowContext(ctx, `PRAGMA synchronous`).Scan(&sync); err != nil {
				t.Fatal(err)
			}
			if mode != "wal" || sync != "2" {
				t.Fatalf("journal_mode %s, synchronous %s; want wal, 2 (FULL)", mode, sync)
			}
		}
	})
	t.Run("a changed migration stops the gateway", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "gateway.db")
		db := openAt(t, path, Options{})
		if _, err := db.w.ExecContext(ctx, `UPDATE schema_migrations SET checksum = 'edited' WHERE version = 1`); err != nil {
			t.Fatal(err)
		}
		if _, err := Open(ctx, path); err == nil {
			t.Fatal("opened a store whose migration 1 differs from the embedded one")
		}
	})
	t.Run("a newer schema stops the gateway", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "gateway.db")
		db := openAt(t, path, Options{})
		if _, err := db.w.ExecContext(ctx, `INSERT INTO schema_migrations VALUES (9999, '9999_future.sql', 'x', 0)`); err != nil {
			t.Fatal(err)
		}
		if _, err := Open(ctx, path); err == nil {
			t.Fatal("opened a store with a schema newer than the gateway")
		}
	})
	t.Run("a path with a query is refused", func(t *testing.T) {
		_, err := Open(ctx, filepath.Join(t.TempDir(), "x.db?mode=memory"))
		if gateway.ErrorCode(err) != gateway.EINVALID {
			t.Fatalf("err %v", err)
		}
	})
}

// crashEnv tells a re-executed test binary to be the process that crashes.
const crashEnv = "GATEWAY_SQLITE_CRASH_PATH"

// TestCrashDurability accepts referrals in a child process that is then
// killed (no Close, no checkpoint) and checks that every accept it had
// acknowledged is in the reopened store.
func TestCrashDurability(t *testing.T) {
	if path := os.Getenv(crashEnv); path != "" {
		crashChild(path)
		return
	}
	path := filepath.Join(t.TempDir(), "gateway.db")
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashDurability$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashEnv+"="+path)
	out, err := cmd.Output()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("child did not die by SIGKILL: %v\n%s", err, out)
	}
	acked, err := strconv.Atoi(string(out))
	if err != nil || acked == 0 {
		t.Fatalf("child reported %q", out)
	}
	if _, err := os.Stat(path + "-wal"); err != nil {
		t.Fatalf("no WAL left behind, so nothing was tested: %v", err)
	}
	db := openAt(t, path, Options{})
	ctx := context.Background()
	for i := 0; i < acked; i++ {
		req := acceptRequest(fmt.Sprintf("crash-%d", i), "a")
		ref, err := db.Referral(ctx, inst, gateway.ReferralID(req.Institution, req.CaseID, req.ContentHash))
		if err != nil {
			t.Fatalf("acknowledged referral %d lost: %v", i, err)
		}
		if ref.Status != gateway.StatusQueued || ref.Bundle == nil {
			t.Fatalf("referral %d: %+v", i, ref)
		}
	}
	v, err := db.Verify(ctx, inst)
	if err != nil || !v.OK || v.Records < int64(acked) {
		t.Fatalf("chain after crash: %+v %v (acked %d)", v, err, acked)
	}
	st, err := db.QueueStats(ctx)
	if err != nil || st.Counts[gateway.MessagePending] < acked {
		t.Fatalf("queue after crash: %+v %v", st, err)
	}
}

// crashChild accepts concurrently, prints how many accepts returned, and
// kills itself while more are in flight.
func crashChild(path string) {
	db, err := Open(context.Background(), path)
	if err != nil {
		fmt.Fprint(os.Stderr, err)
		os.Exit(3)
	}
	var acked sync.WaitGroup
	var mu sync.Mutex
	done := 0
	for w := 0; w < 8; w++ {
		acked.Add(1)
		go func() {
			defer acked.Done()
			for i := w; i < 400; i += 8 {
				req := acceptRequest(fmt.Sprintf("crash-%d", i), "a")
				if _, err := db.Accept(context.Background(), req); err != nil {
					fmt.Fprint(os.Stderr, err)
					os.Exit(3)
				}
				mu.Lock()
				if i < 200 {
					done++
				}
				mu.Unlock()
			}
		}()
	}
	// Report the first 200 once all of them are acknowledged; the rest
	// are still being written when the process dies.
	for {
		mu.Lock()
		n := done
		mu.Unlock()
		if n == 200 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	fmt.Print(200)
	_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
	select {}
}

func TestBackup(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	db := openAt(t, filepath.Join(dir, "gateway.db"), Options{})
	for i := 0; i < 20; i++ {
		if _, err := db.Accept(ctx, acceptRequest(fmt.Sprintf("C%d", i), "a")); err != nil {
			t.Fatal(err)
		}
	}
	// Writers carry on while the backup runs.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := db.AppendDecision(ctx, gateway.DecisionRecord{Institution: inst, DecisionID: fmt.Sprint(i), At: t0, Body: []byte(`{}`)}); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	backup := filepath.Join(dir, "backup.db")
	err := db.Backup(ctx, backup)
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Backup(ctx, backup); gateway.ErrorCode(err) != gateway.ECONFLICT {
		t.Fatalf("a second backup to the same file: %v, want conflict", err)
	}
	cp := openAt(t, backup, Options{})
	for i := 0; i < 20; i++ {
		got, err := cp.LatestReferral(ctx, inst, fmt.Sprintf("C%d", i))
		if err != nil {
			t.Fatalf("backup lacks referral %d: %v", i, err)
		}
		// The backup carries the content too, not only the rows.
		want := acceptRequest(fmt.Sprintf("C%d", i), "a")
		if !bytes.Equal(got.Record, want.Record) || !bytes.Equal(got.Bundle, want.Bundle) {
			t.Fatalf("backup of referral %d: record %q, bundle %q", i, got.Record, got.Bundle)
		}
		ms, err := cp.Message(ctx, gateway.DeriveID("message", string(gateway.KindNew), got.ID))
		if err != nil || !bytes.Equal(ms.Body, want.Bundle) {
			t.Fatalf("backup of message %d: %q, %v", i, ms.Body, err)
		}
	}
	v, err := cp.Verify(ctx, inst)
	if err != nil || !v.OK || v.Records < 20 {
		t.Fatalf("backup chain %+v %v", v, err)
	}
	leftovers, _ := filepath.Glob(filepath.Join(dir, ".backup.db.*"))
	if len(leftovers) != 0 {
		t.Fatalf("temporary files left: %v", leftovers)
	}
}

// TestMigrateQueuedMessages opens a store made by a gateway from before
// messages kept their sender: a queued message gets its sender from its
// Bundle, and one whose Bundle names none has none.
func TestMigrateQueuedMessages(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "gateway.db")
	old, err := sql.Open("sqlite", path+"?_txlock=immediate")
	if err != nil {
		t.Fatal(err)
	}
	before := fstest.MapFS{}
	for _, n := range []string{"0001_init.sql", "0002_outbox_waiting_created.sql"} {
		b, err := migrations.ReadFile("migrations/" + n)
		if err != nil {
			t.Fatal(err)
		}
		before[n] = &fstest.MapFile{Data: b}
	}
	if err := sqlstore.Migrate(ctx, old, dialect, before); err != nil {
		t.Fatal(err)
	}
	for i, body := range []string{legacyBundle, `{"resourceType":"Bundle","entry":[]}`} {
		id := fmt.Sprint("m", i)
		for _, st := range []struct {
			q    string
			args []any
		}{
			{`INSERT INTO referrals (id, institution, case_id, content_hash, version, service_id, decision_id, status, record, accepted_at, updated_at)
				VALUES (?1, '10000001', ?1, 'h', 1, 's', 'd', 'accepted', '{}', 0, 0)`, []any{id}},
			{`INSERT INTO outbox_messages (id, referral_id, institution, case_id, kind, service_id, request_id, correlation_id, body, state, due_at, created_at, updated_at)
				VALUES (?1, ?1, '10000001', ?1, 'new', 's', 'r', 'c', ?2, 'pending', 0, 0, 0)`, []any{id, body}},
		} {
			if _, err := old.ExecContext(ctx, st.q, st.args...); err != nil {
				t.Fatal(err)
			}
		}
	}
	old.Close()
	db := openAt(t, path, Options{})
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
