package sqlstore

import "context"

// HotQueries are the statements that run for every message (claim, mark
// delivering, recording an attempt), every submission (the referral
// reads) and every scrape of /metrics, for TestHotPlansUseIndexes.
var HotQueries = map[string]string{
	"claim":           sqlClaim,
	"mark delivering": sqlMarkDelivering,
	"record attempt":  sqlRecordAttempt,
	"referral status": sqlSetStatusIn[len(deliveryStatuses)],
	"oldest waiting":  sqlOldestWaiting,
	"latest referral": sqlReadLatest,
	"referral":        sqlReadReferral,
	"decision":        sqlDecision,
}

// Rewrite is d.rewrite.
func Rewrite(d Dialect, q string) string { return d.rewrite(q) }

// Exec runs raw statements in one transaction on the writer, beneath the
// store, as an attacker with database access would.
func Exec(ctx context.Context, db *DB, queries ...string) error {
	t, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer t.Rollback()
	for _, q := range queries {
		if _, err := t.ExecContext(ctx, q); err != nil {
			return err
		}
	}
	return t.Commit()
}
