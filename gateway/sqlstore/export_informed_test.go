package sqlstore

// The T-01 reads run for every notice, confirmation and page of shares not
// yet told: they too must use indexes.
func init() {
	HotQueries["share"] = sqlReadShare
	HotQueries["untold shares"] = sqlUntold
}
