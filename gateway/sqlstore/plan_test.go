package sqlstore_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"strings"
	"testing"

	"github.com/student-mh-referrals/gateway/gateway/sqlite"
	"github.com/student-mh-referrals/gateway/gateway/sqlstore"
)

// TestHotPlansUseIndexes checks SQLite's query plans of the statements that
// run for every message, submission and scrape of /metrics: none may scan
// a table. A scan of the outbox reads every row through the overflow pages
// of its body, so its cost grows with the queue; without statistics
// SQLite's planner chose such plans.
func TestHotPlansUseIndexes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "gateway.db")
	s, err := sqlite.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for name, q := range sqlstore.HotQueries {
		t.Run(name, func(t *testing.T) {
			q := sqlstore.Rewrite(sqlstore.Dialect{Clauses: []string{"INDEXED BY"}}, q)
			args := make([]any, strings.Count(q, "?"))
			rows, err := db.QueryContext(context.Background(), "EXPLAIN QUERY PLAN "+q, args...)
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
