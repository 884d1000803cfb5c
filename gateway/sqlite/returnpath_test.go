package sqlite

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"

	"github.com/student-mh-referrals/gateway/gateway"
	"github.com/student-mh-referrals/gateway/gateway/sqlstore"
)

// TestMigrateReturnPath opens a store made by a gateway from before the
// return path: the gateway's "accepted" becomes "queued", the service's
// "acknowledged" becomes "accepted" (with its time), each message gets its
// Bundle id, and the responses already recorded start the timeline.
func TestMigrateReturnPath(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "gateway.db")
	old, err := sql.Open("sqlite", path+"?_txlock=immediate")
	if err != nil {
		t.Fatal(err)
	}
	if err := sqlstore.Migrate(ctx, old, dialect, migrationsBefore("0006")); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"accepted", "acknowledged", "rejected", "delivered"} {
		if _, err := old.ExecContext(ctx, `INSERT INTO referrals (id, institution, case_id, content_hash, version, service_id, decision_id, status, record, accepted_at, updated_at)
			VALUES (?1, '10000001', ?1, 'h', 1, 's', 'd', ?1, '{}', 0, 5000000)`, id); err != nil {
			t.Fatal(err)
		}
		if _, err := old.ExecContext(ctx, `INSERT INTO outbox_messages (id, referral_id, institution, case_id, kind, service_id, request_id, correlation_id, body, state, due_at, created_at, updated_at)
			VALUES (?1, ?1, '10000001', ?1, 'new', 's', 'r', 'c', '{"resourceType":"Bundle","id":"b-' || ?1 || '"}', 'delivered', 0, 0, 0)`, id); err != nil {
			t.Fatal(err)
		}
	}
	old.Close()
	checkMigratedReturnPath(t, openAt(t, path, Options{}))
}

// checkMigratedReturnPath checks the referrals TestMigrateReturnPath made,
// once migrated.
func checkMigratedReturnPath(t *testing.T, db gateway.Store) {
	ctx := context.Background()
	for id, want := range map[string]gateway.ReferralStatus{
		"accepted": gateway.StatusQueued, "acknowledged": gateway.StatusServiceAccepted,
		"rejected": gateway.StatusRejected, "delivered": gateway.StatusDelivered,
	} {
		ref, err := db.Referral(ctx, "10000001", id)
		if err != nil || ref.Status != want || (id == "acknowledged") != !ref.AcknowledgedAt.IsZero() {
			t.Errorf("%s: %+v, %v; want %s", id, ref, err, want)
		}
		if m, err := db.SentMessage(ctx, "b-"+id); err != nil || m.ReferralID != id {
			t.Errorf("%s: the message by its Bundle id: %+v, %v", id, m, err)
		}
	}
	var got []string
	for _, c := range []string{"acknowledged", "rejected"} {
		steps, err := db.Steps(ctx, "10000001", c)
		if err != nil || len(steps) != 1 || steps[0].RequestBundleID != "b-"+c || steps[0].At.UnixMicro() != 5000000 {
			t.Fatalf("timeline of %s: %+v, %v", c, steps, err)
		}
		got = append(got, string(steps[0].Step))
	}
	if got[0] != "accepted" || got[1] != "rejected" {
		t.Errorf("migrated steps %v", got)
	}
}
