package postgres

import (
	"context"
	"testing"

	"github.com/student-mh-referrals/gateway/gateway"
)

// TestMigrateReturnPath is the SQLite test of the same name on PostgreSQL:
// statuses renamed, Bundle ids kept beside messages, responses already
// recorded in the timeline.
func TestMigrateReturnPath(t *testing.T) {
	ctx := context.Background()
	dsn, old := migratedBefore(t, "0005")
	statuses := map[string]gateway.ReferralStatus{"accepted": gateway.StatusQueued, "acknowledged": gateway.StatusServiceAccepted, "rejected": gateway.StatusRejected}
	for id := range statuses {
		if _, err := old.ExecContext(ctx, `WITH r AS (INSERT INTO referrals (id, institution, case_id, content_hash, version, service_id, decision_id, status, record, accepted_at, updated_at)
			VALUES ($1, '10000001', $1, 'h', 1, 's', 'd', $1, '{}', now(), now()) RETURNING id)
			INSERT INTO outbox_messages (id, referral_id, institution, case_id, kind, service_id, request_id, correlation_id, body, state, due_at, created_at, updated_at)
			SELECT id, id, '10000001', id, 'new', 's', 'r', 'c', '{"resourceType":"Bundle","id":"b-' || id || '"}', 'delivered', now(), now(), now() FROM r`, id); err != nil {
			t.Fatal(err)
		}
	}
	db := openAt(t, dsn)
	for id, want := range statuses {
		ref, rerr := db.Referral(ctx, "10000001", id)
		m, merr := db.SentMessage(ctx, "b-"+id)
		steps, serr := db.Steps(ctx, "10000001", id)
		if rerr != nil || merr != nil || serr != nil || ref.Status != want || m.ReferralID != id || (len(steps) == 1) != (id != "accepted") {
			t.Errorf("%s: %+v %+v %+v (%v %v %v); want status %s", id, ref, m, steps, rerr, merr, serr, want)
		}
	}
}
