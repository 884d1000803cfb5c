package sqlite

import (
	"context"
	"fmt"

	"github.com/student-mh-referrals/gateway/gateway"
)

// SetMaxPageCount caps the database file at n pages (PRAGMA
// max_page_count) and returns the cap now in force, which SQLite never sets
// below the pages already in use: SetMaxPageCount(ctx, 1) makes the store
// exactly full. Past the cap a write fails with SQLITE_FULL just as on a
// full disk, so an operator can bound the store's growth, and the fault
// tests fill the "disk" without a small filesystem. SQLite keeps the cap per
// connection: it is set on the writer's one connection, the only one that
// writes, and a reopened store has none.
func (d *DB) SetMaxPageCount(ctx context.Context, n int64) (int64, error) {
	if n <= 0 {
		return 0, gateway.Errorf(gateway.EINVALID, "a max page count must be positive, not %d", n)
	}
	var got int64
	if err := d.w.QueryRowContext(ctx, fmt.Sprintf("PRAGMA max_page_count = %d", n)).Scan(&got); err != nil {
		return 0, mapErr(err)
	}
	return got, nil
}
