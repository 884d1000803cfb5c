package sqlstore

import "context"

// Count is how many rows a table holds, read beneath the store.
func Count(ctx context.Context, db *DB, table string) (int, error) {
	var n int
	err := db.r.QueryRowContext(ctx, `SELECT COUNT(*) FROM `+table).Scan(&n)
	return n, err
}
