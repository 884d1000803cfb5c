package sqlite

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	sqlite3 "modernc.org/sqlite"
	sqlitelib "modernc.org/sqlite/lib"

	"github.com/student-mh-referrals/gateway/gateway"
	"github.com/student-mh-referrals/gateway/gateway/sqlstore"
)

func TestMapErr(t *testing.T) {
	tests := []struct {
		name string
		err  error
		code string
	}{
		{"deadline", fmt.Errorf("wait for the writer: %w", context.DeadlineExceeded), gateway.EUNAVAILABLE},
		{"caller gone", context.Canceled, gateway.EUNAVAILABLE},
		{"gateway error passes", gateway.Errorf(gateway.ECONFLICT, "x"), gateway.ECONFLICT},
		{"anything else is internal", errors.New("no such table: referrals"), gateway.EINTERNAL},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := gateway.ErrorCode(dialect.MapErr(tt.err)); got != tt.code {
				t.Fatalf("code %s, want %s", got, tt.code)
			}
		})
	}
}

// TestDiskFull fills the store (PRAGMA max_page_count, the real
// SQLITE_FULL path) while accepts run concurrently: every refused accept is
// EUNAVAILABLE and left nothing behind, every acknowledged one is whole, and
// once there is room again the refused ones are accepted.
func TestDiskFull(t *testing.T) {
	for _, opt := range commitModes {
		t.Run(opt.name, func(t *testing.T) {
			ctx := context.Background()
			db := openAt(t, filepath.Join(t.TempDir(), "gateway.db"), opt.opt)
			content := strings.Repeat("x", 1500) // a few accepts fill a page
			req := func(i int) gateway.AcceptRequest {
				return acceptRequest(fmt.Sprintf("FULL-%04d", i), content)
			}
			for i := range 3 {
				if _, err := db.Accept(ctx, req(i)); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := db.SetMaxPageCount(ctx, 1); err != nil {
				t.Fatal(err)
			}
			var (
				mu       sync.Mutex
				accepted []gateway.AcceptRequest
				refused  []gateway.AcceptRequest
			)
			next := 3
			for round := 0; len(refused) == 0; round++ {
				if round == 100 {
					t.Fatal("100 rounds of accepts and the store never filled up")
				}
				var wg sync.WaitGroup
				for range 8 {
					r := req(next)
					next++
					wg.Go(func() {
						_, err := db.Accept(ctx, r)
						mu.Lock()
						defer mu.Unlock()
						if err == nil {
							accepted = append(accepted, r)
							return
						}
						refused = append(refused, r)
						var ge *gateway.Error
						var se *sqlite3.Error
						if !errors.As(err, &ge) || ge.Code != gateway.EUNAVAILABLE || ge.Message != sqlstore.UnavailableMessage ||
							!errors.As(err, &se) || se.Code()&0xff != sqlitelib.SQLITE_FULL {
							t.Errorf("accept on a full store: %v; want EUNAVAILABLE %q caused by SQLITE_FULL", err, sqlstore.UnavailableMessage)
						}
					})
				}
				wg.Wait()
			}
			for _, r := range refused {
				assertNothingOf(t, db, r)
			}
			v, err := db.Verify(ctx, inst)
			if err != nil || !v.OK || v.Records != int64(3+len(accepted)) {
				t.Fatalf("chain %+v %v; want it intact with %d records", v, err, 3+len(accepted))
			}

			if _, err := db.SetMaxPageCount(ctx, 1<<30); err != nil {
				t.Fatal(err)
			}
			for _, r := range refused {
				res, err := db.Accept(ctx, r)
				if err != nil || !res.Created {
					t.Fatalf("accept once there is room: created %v, %v", res.Created, err)
				}
			}
			st, err := db.QueueStats(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if want := 3 + len(accepted) + len(refused); st.Counts[gateway.MessagePending] != want {
				t.Fatalf("%d messages queued, want %d", st.Counts[gateway.MessagePending], want)
			}
			if v, err := db.Verify(ctx, inst); err != nil || !v.OK {
				t.Fatalf("chain %+v %v", v, err)
			}
		})
	}
}

// assertNothingOf checks that a refused accept left no referral, decision
// record or message.
func assertNothingOf(t *testing.T, db *DB, r gateway.AcceptRequest) {
	t.Helper()
	ctx := context.Background()
	for q, want := range map[string]string{
		`SELECT COUNT(*) FROM referrals WHERE institution = ? AND case_id = ?`:            r.CaseID,
		`SELECT COUNT(*) FROM outbox_messages WHERE institution = ? AND case_id = ?`:      r.CaseID,
		`SELECT COUNT(*) FROM decision_records WHERE institution = ? AND decision_id = ?`: r.Decision.DecisionID,
	} {
		var n int
		if err := db.r.QueryRowContext(ctx, q, r.Institution, want).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != 0 {
			t.Errorf("a refused accept of %s left %d rows: %s", r.CaseID, n, q)
		}
	}
}
