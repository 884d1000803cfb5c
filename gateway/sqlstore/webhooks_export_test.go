package sqlstore

// The webhook claim, run on every dispatcher poll, joins the hot statements
// whose plans may not scan. (The counts behind the /metrics gauges scan
// their partial indexes, which hold exactly the pending and the dead calls
// they count.)
func init() {
	HotQueries["claim webhooks"] = sqlClaimWebhooks
}
