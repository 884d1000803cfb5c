package http

import (
	"net/http"
	"slices"
	"time"

	"github.com/gorilla/mux"
	"go.uber.org/zap"

	"github.com/student-mh-referrals/gateway/gateway"
)

// ReferralView is a referral as its university sees it: where it stands,
// each step the service reported (coded values only: what a receiver wrote
// in free text is never shown) and how delivery is going, without the
// clinical content.
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
	ContentHash string                 `json:"contentHash"`
	// StudentInformed is when and how the university told the student of
	// the share (T-01); absent until it has.
	StudentInformed *gateway.StudentInformedRecord `json:"studentInformed,omitempty"`
	// StudentNotice is "available" once the share is delivered, or
	// "held-back" while the override says the student is not yet to be
	// told; absent before delivery.
	StudentNotice string `json:"studentNotice,omitempty"`
	// AcknowledgedAt and FirstAppointmentAt are the service's first
	// acceptance and the first appointment (see gateway.StoredReferral).
	AcknowledgedAt     time.Time `json:"acknowledgedAt,omitzero"`
	FirstAppointmentAt time.Time `json:"firstAppointmentAt,omitzero"`
	// Timeline is every step of the case (all its versions) by its time;
	// Delivery is the progress of each message of this version.
	Timeline []gateway.TimelineEntry `json:"timeline,omitempty"`
	Delivery []gateway.Delivery      `json:"delivery,omitempty"`
}

func viewOf(r gateway.StoredReferral) ReferralView {
	return ReferralView{
		ID: r.ID, CaseID: r.CaseID, Version: r.Version, PreviousID: r.PreviousID, Service: r.ServiceID,
		Status: r.Status, DecisionID: r.DecisionID, AcceptedAt: r.AcceptedAt, UpdatedAt: r.UpdatedAt,
		ContentHash: r.ContentHash, AcknowledgedAt: r.AcknowledgedAt, FirstAppointmentAt: r.FirstAppointmentAt,
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

// handleReferral is GET /v1/referrals/{id}: the status, the timeline and
// the delivery progress. Only the owning institution sees it; any other gets
// the same 404 as for a referral that does not exist.
func (s *Server) handleReferral(w http.ResponseWriter, r *http.Request) error {
	st, err := s.Intake.Follow(r.Context(), gateway.ClientFrom(r.Context()), mux.Vars(r)["id"])
	if err != nil {
		return err
	}
	sh, err := s.Intake.Store.Share(r.Context(), st.Referral.Institution, st.Referral.ID)
	if err != nil {
		return err
	}
	sh.Referral = st.Referral
	v := shareView(sh)
	v.Timeline, v.Delivery = st.Timeline, st.Delivery
	writeJSON(w, http.StatusOK, MediaJSON, v)
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

// handleInbound is POST /fhir/$process-message for receivers: a BaRS
// response message reports a step of a referral the gateway delivered to
// the receiver. A message refused for any reason changes nothing but the
// audit trail, which records the refusal.
func (s *Server) handleInbound(w http.ResponseWriter, r *http.Request) error {
	c := gateway.ClientFrom(r.Context())
	body, err := s.readBody(w, r, MediaFHIRJSON, MediaJSON) // FHIR servers take plain JSON too
	if err != nil {
		return barsRefusal(s.Intake.RefuseMalformed(r.Context(), c, err))
	}
	resp, err := s.ParseResponse(body)
	if err != nil {
		return barsRefusal(s.Intake.RefuseMalformed(r.Context(), c, err))
	}
	ref, e, err := s.Intake.Respond(r.Context(), c, resp)
	if err != nil {
		return barsRefusal(err)
	}
	msg := "response recorded: step " + string(e.Step) + " of referral " + ref.ID + ", now " + string(ref.Status)
	writeJSON(w, http.StatusOK, MediaFHIRJSON, map[string]any{
		"resourceType": "OperationOutcome",
		"issue":        []map[string]any{{"severity": "information", "code": "informational", "diagnostics": msg}},
	})
	return nil
}

// BARSErrorCodes is the BaRS code system of the error codes in an
// OperationOutcome's issue details.
const BARSErrorCodes = "https://fhir.nhs.uk/Codesystem/http-error-codes"

// barsCodes are the BaRS error codes with which the gateway, as the
// receiver of a response message, refuses it.
var barsCodes = map[string]string{
	gateway.EMALFORMED: "REC_BAD_REQUEST",
	gateway.EINVALID:   "REC_UNPROCESSABLE_ENTITY",
	gateway.EFORBIDDEN: "REC_FORBIDDEN",
	gateway.ENOTFOUND:  "REC_NOT_FOUND",
	gateway.ECONFLICT:  "REC_CONFLICT",
}

// barsRefusal gives each issue of a refused response message the BaRS
// error code of its status in its details, as a BaRS receiver answers; the
// gateway's own reason is in the audit trail and the issue's text.
func barsRefusal(err error) error {
	code, ok := barsCodes[gateway.ErrorCode(err)]
	if !ok {
		return err
	}
	e := *gateway.AsError(err)
	e.Issues = slices.Clone(e.Issues)
	if len(e.Issues) == 0 {
		e.Issues = []gateway.Issue{{Severity: "error", Message: e.Message}}
	}
	for i := range e.Issues {
		e.Issues[i].DetailsCode, e.Issues[i].DetailsSystem = code, BARSErrorCodes
	}
	return &e
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
