package sqlite

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
)

// TestHotPlansUseIndexes checks the query plans of the statements that run
// for every message (claim, mark delivering, recording an attempt) and on
// every scrape of /metrics: none may scan the outbox. A scan reads every
// row through the overflow pages of its body, so its cost grows with the
// queue; without statistics SQLite's planner chose such plans.
func TestHotPlansUseIndexes(t *testing.T) {
	db := openAt(t, filepath.Join(t.TempDir(), "gateway.db"), Options{})
	for _, q := range []struct{ name, sql string }{
		{"claim", sqlClaim},
		{"mark delivering", sqlMarkDelivering},
		{"lease of", sqlLeaseOf},
		{"record attempt", sqlRecordAttempt},
		{"referral status", sqlSetStatusIn(len(deliveryStatuses))},
		{"oldest waiting", sqlOldestWaiting},
		{"latest referral", sqlReadLatest},
		{"referral", sqlReadReferral},
	} {
		t.Run(q.name, func(t *testing.T) {
			args := make([]any, strings.Count(q.sql, "?"))
			rows, err := db.r.QueryContext(context.Background(), "EXPLAIN QUERY PLAN "+q.sql, args...)
			if err != nil {
				t.Fatal(err)
			}
			defer rows.Close()
			var plan []string
			for rows.Next() {
				var id, parent, unused int
				var detail string
				if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
					t.Fatal(err)
				}
				plan = append(plan, detail)
			}
			if err := rows.Err(); err != nil {
				t.Fatal(err)
			}
			for _, step := range plan {
				if strings.HasPrefix(step, "SCAN") || strings.Contains(step, "outbox_state") {
					t.Errorf("plan step %q scans; whole plan:\n%s", step, strings.Join(plan, "\n"))
				}
			}
		})
	}
}
