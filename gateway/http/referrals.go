package http

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/gorilla/mux"
	"go.uber.org/zap"

	"github.com/student-mh-referrals/gateway/gateway"
)

// ReferralView is a referral as its university sees it: where it stands and
// what the receiver said, without the clinical content.
type ReferralView struct {
	ID          string                 `json:"id"`
	CaseID      string                 `json:"caseId"`
	Version     int                    `json:"version"`
	PreviousID  string                 `json:"previousId,omitempty"`
	Service     string                 `json:"service"`
	Status      gateway.ReferralStatus `json:"status"`
	DecisionID  string                 `json:"decisionId"`
	AcceptedAt  time.Time              `json:"acceptedAt"`
	UpdatedAt   time.Time              `json:"updatedAt"`
	Response    json.RawMessage        `json:"receiverResponse,omitempty"`
	ContentHash string                 `json:"contentHash"`
	// StudentInformed is when and how the university told the student of
	// the share (T-01); absent until it has.
	StudentInformed *gateway.StudentInformedRecord `json:"studentInformed,omitempty"`
	// StudentNotice is "available" once the share is delivered, or
	// "held-back" while the override says the student is not yet to be
	// told; absent before delivery.
	StudentNotice string `json:"studentNotice,omitempty"`
}

func viewOf(r gateway.StoredReferral) ReferralView {
	return ReferralView{
		ID: r.ID, CaseID: r.CaseID, Version: r.Version, PreviousID: r.PreviousID, Service: r.ServiceID,
		Status: r.Status, DecisionID: r.DecisionID, AcceptedAt: r.AcceptedAt, UpdatedAt: r.UpdatedAt,
		Response: r.Response, ContentHash: r.ContentHash,
	}
}

// submitAnswer is the body of 202 (and of 200 for a repeat).
type submitAnswer struct {
	ID       string                 `json:"id"`
	Status   gateway.ReferralStatus `json:"status"`
	Version  int                    `json:"version"`
	Decision *gateway.Decision      `json:"decision,omitempty"`
}

// handleSubmit is POST /v1/referrals: 202 with Location when accepted, 200
// with the same referral when the record was already accepted, 403 with one
// issue per denying rule when refused.
func (s *Server) handleSubmit(w http.ResponseWriter, r *http.Request) error {
	body, err := s.readBody(w, r, MediaJSON)
	if err != nil {
		return err
	}
	c := gateway.ClientFrom(r.Context())
	sub, err := s.Intake.Submit(r.Context(), c, body)
	if err != nil {
		return err
	}
	if ev := sub.Evaluation; ev != nil {
		LogEvaluation(logFrom(r.Context()), ev, false)
		s.observer().ObserveEvaluation(ev, false)
		w.Header().Set("X-Decision-Id", ev.Decision.ID)
		if ev.Outcome == gateway.OutcomeDeny {
			return gateway.DenialError(ev.Decision)
		}
	}
	w.Header().Set("Location", "/v1/referrals/"+sub.Referral.ID)
	ans := submitAnswer{ID: sub.Referral.ID, Status: sub.Referral.Status, Version: sub.Referral.Version}
	status := http.StatusOK
	if sub.Created {
		status = http.StatusAccepted
		ans.Decision = sub.Evaluation.Decision
	} else {
		w.Header().Set("X-Decision-Id", sub.Referral.DecisionID)
	}
	writeJSON(w, status, MediaJSON, ans)
	return nil
}

// handleReferral is GET /v1/referrals/{id}: only the owning institution sees
// it; any other gets 404, as for a referral that does not exist.
func (s *Server) handleReferral(w http.ResponseWriter, r *http.Request) error {
	inst, id := gateway.ClientFrom(r.Context()).Institution, mux.Vars(r)["id"]
	ref, err := s.Intake.Store.Referral(r.Context(), inst, id)
	if err != nil {
		return err
	}
	sh, err := s.Intake.Store.Share(r.Context(), inst, id)
	if err != nil {
		return err
	}
	sh.Referral = ref
	writeJSON(w, http.StatusOK, MediaJSON, shareView(sh))
	return nil
}

// handleCancel is POST /v1/referrals/{id}/$cancel: the referral becomes
// cancelled and the BaRS cancellation is queued.
func (s *Server) handleCancel(w http.ResponseWriter, r *http.Request) error {
	ref, err := s.Intake.Cancel(r.Context(), gateway.ClientFrom(r.Context()), mux.Vars(r)["id"])
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, MediaJSON, viewOf(ref))
	return nil
}

// handleInbound is POST /fhir/$process-message for receivers: BaRS response
// messages move a referral to acknowledged or rejected.
func (s *Server) handleInbound(w http.ResponseWriter, r *http.Request) error {
	body, err := s.readBody(w, r, MediaFHIRJSON, MediaJSON) // FHIR servers take plain JSON too
	if err != nil {
		return err
	}
	resp, err := s.ParseResponse(body)
	if err != nil {
		return err
	}
	ref, err := s.Intake.Respond(r.Context(), gateway.ClientFrom(r.Context()), resp)
	if err != nil {
		return err
	}
	msg := "response recorded: referral " + ref.ID + " is " + string(ref.Status)
	writeJSON(w, http.StatusOK, MediaFHIRJSON, map[string]any{
		"resourceType": "OperationOutcome",
		"issue":        []map[string]any{{"severity": "information", "code": "informational", "diagnostics": msg}},
	})
	return nil
}

// handleReady is /readyz: the store answers and the policies are loaded.
func (s *Server) handleReady(w http.ResponseWriter, r *http.Request) {
	if s.Ready != nil {
		if err := s.Ready(r.Context()); err != nil {
			logFrom(r.Context()).Warn("not ready", zap.Error(err))
			Error(w, r, issueError(gateway.EUNAVAILABLE, "not ready", "transient", "", "the gateway is not ready (store or policies unavailable); try again shortly"))
			return
		}
	}
	writeJSON(w, http.StatusOK, MediaJSON, map[string]string{"status": "ready"})
}
