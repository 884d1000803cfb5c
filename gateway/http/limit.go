package http

import (
	"net/http"

	"github.com/student-mh-referrals/gateway/gateway"
)

// inFlight bounds how many intake requests (submissions and dry runs) run at
// once, so that a burst after an outage is refused cleanly with 503 and
// Retry-After instead of queueing inside the gateway until latency and
// memory run away. A university's system retries, and a repeated submission
// is idempotent. max ≤ 0 means no bound.
func inFlight(max int) func(http.HandlerFunc) http.HandlerFunc {
	if max <= 0 {
		return func(h http.HandlerFunc) http.HandlerFunc { return h }
	}
	slots := make(chan struct{}, max)
	return func(h http.HandlerFunc) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			select {
			case slots <- struct{}{}:
				defer func() { <-slots }()
				h(w, r)
			default:
				w.Header().Set("Retry-After", "1")
				Error(w, r, gateway.Errorf(gateway.EUNAVAILABLE, "the gateway is taking in as many referrals as it can at once: retry after a second"))
			}
		}
	}
}
