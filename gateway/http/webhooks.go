package http

import (
	"net/http"
	"strconv"

	"github.com/gorilla/mux"

	"github.com/student-mh-referrals/gateway/gateway"
)

// webhookRoutes adds the webhooks' visible dead letter: the calls the
// gateway gave up on, for an institution's own clients and the operators,
// and the operators' retry. They need the store (through Intake).
func (s *Server) webhookRoutes(r *mux.Router) {
	if s.Intake == nil {
		return
	}
	r.HandleFunc("/v1/webhooks/dead", s.require(api(s.handleDeadWebhooks),
		gateway.RoleAdmin, gateway.RoleAuditor, gateway.RoleSubmitter)).Methods(http.MethodGet)
	r.HandleFunc("/v1/webhooks/{id}/$retry", s.require(api(s.handleRetryWebhook), gateway.RoleAdmin)).Methods(http.MethodPost)
}

// webhooks is the store's webhook queue.
func (s *Server) webhooks() (gateway.Webhooks, error) {
	if w, ok := s.Intake.Store.(gateway.Webhooks); ok {
		return w, nil
	}
	return nil, gateway.Errorf(gateway.ENOTFOUND, "this gateway keeps no webhook calls")
}

// deadWebhooks is the body of GET /v1/webhooks/dead.
type deadWebhooks struct {
	Calls []gateway.WebhookCall `json:"calls"`
}

// handleDeadWebhooks is GET /v1/webhooks/dead: the dead calls, oldest
// first, up to limit (default 100, at most 1000). A university's client
// sees its own institution's; an admin sees every institution's, or one
// (?institution=).
func (s *Server) handleDeadWebhooks(w http.ResponseWriter, r *http.Request) error {
	wh, err := s.webhooks()
	if err != nil {
		return err
	}
	q := r.URL.Query()
	limit := 100
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			return issueError(gateway.EINVALID, "bad limit", "value", "limit", "limit must be a number from 1 to 1000")
		}
		limit = n
	}
	c := gateway.ClientFrom(r.Context())
	inst := c.Institution
	if c.Has(gateway.RoleAdmin) && inst == "" {
		inst = q.Get("institution")
	} else if v := q.Get("institution"); v != "" && v != inst {
		return issueError(gateway.EFORBIDDEN, "forbidden", "forbidden", "institution", "a client sees only its own institution's webhook calls")
	}
	calls, err := wh.DeadWebhooks(r.Context(), inst, limit)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, MediaJSON, deadWebhooks{Calls: calls})
	return nil
}

// handleRetryWebhook is POST /v1/webhooks/{id}/$retry: the dead call is
// queued again, due at once, with its attempts counted afresh.
func (s *Server) handleRetryWebhook(w http.ResponseWriter, r *http.Request) error {
	wh, err := s.webhooks()
	if err != nil {
		return err
	}
	id := mux.Vars(r)["id"]
	if err := wh.RequeueWebhook(r.Context(), id, s.now()); err != nil {
		return err
	}
	writeJSON(w, http.StatusAccepted, MediaJSON, map[string]string{"id": id, "state": string(gateway.WebhookPending)})
	return nil
}
