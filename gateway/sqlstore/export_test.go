package sqlstore

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
