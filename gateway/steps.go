package gateway

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"time"
)

// Step is what a receiving service reports back after a referral was
// delivered: the return path. Each step is read from the BaRS response
// message the service posts (docs/fhir-mapping.md gives the coding of each),
// recorded in the referral's timeline at its own time, and sets the
// referral's status (Step.Status).
type Step string

// Steps a service may report.
const (
	StepAccepted     Step = "accepted"       // the service took the referral on
	StepRejected     Step = "rejected"       // the service declined it
	StepBooked       Step = "booked"         // an appointment was booked
	StepRebooked     Step = "rebooked"       // a booking was moved or replaced
	StepDidNotAttend Step = "did-not-attend" // the student missed an appointment
	StepSeen         Step = "seen"           // the student was seen (booked or walk-in)
	StepRedirected   Step = "redirected"     // the service passed the referral to another service
	StepDischarged   Step = "discharged"     // closed with an outcome
)

// Steps lists every step in journey order. The order is the precedence of
// steps reported for the same instant: the later in the list sets the
// status.
var Steps = []Step{StepAccepted, StepRejected, StepBooked, StepRebooked, StepDidNotAttend, StepSeen, StepRedirected, StepDischarged}

// DefaultReturnSteps are the steps a service may report when its registry
// entry names none (returnSteps): whether the service took the referral on.
// Anything more about the student's care reaches the university only when
// the data-sharing agreement says so, and the registry lists it.
var DefaultReturnSteps = []Step{StepAccepted, StepRejected}

// Valid reports whether s is a known step.
func (s Step) Valid() bool { return slices.Contains(Steps, s) }

// Status is the referral status a step sets.
func (s Step) Status() ReferralStatus { return ReferralStatus(s) }

// ReturnStepsOf are the steps svc may report back to the university.
func ReturnStepsOf(svc *Service) []Step {
	if len(svc.ReturnSteps) == 0 {
		return DefaultReturnSteps
	}
	return svc.ReturnSteps
}

// StepCode is one coded value a receiver's message carried about a step:
// the element it was read from, and its system and code. Only codes are
// kept, never a display or text a receiver wrote, so that the timeline holds
// nothing personal and outlives the retention of clinical content.
type StepCode struct {
	Element string `json:"element"`
	System  string `json:"system,omitempty"`
	Code    string `json:"code"`
}

// ReceiverResponse is what a BaRS response message from an NHS receiver says:
// which message it answers, about which case, and the step it reports.
type ReceiverResponse struct {
	// ResponseID is the response Bundle's id: a second message with it is
	// a duplicate.
	ResponseID string
	// RequestBundleID is MessageHeader.response.identifier: the id of the
	// request Bundle the gateway delivered.
	RequestBundleID string
	// Institution (UKPRN) and CaseID are from the ServiceRequest's case-id
	// identifier.
	Institution string
	CaseID      string
	Step        Step
	// At is when the step happened, as the message says (the Encounter's
	// or Appointment's time, else the Bundle's timestamp).
	At time.Time
	// AppointmentID and AppointmentStart identify and time a booking.
	AppointmentID    string
	AppointmentStart time.Time
	Codes            []StepCode
	// Message is the receiver's message as posted (content: kept on the
	// referral until retention purges it, never shown to the university).
	Message json.RawMessage
}

// TimelineEntry is one recorded step of a referral. It holds only ids,
// times and codes: it is status, not clinical content, and is kept when
// retention purges the referral's content.
type TimelineEntry struct {
	// Seq orders entries across an institution (StepsAfter).
	Seq         int64  `json:"seq"`
	ReferralID  string `json:"referralId"`
	Institution string `json:"institution"`
	CaseID      string `json:"caseId"`
	ServiceID   string `json:"service"`
	Step        Step   `json:"step"`
	// At is when the step happened; RecordedAt when the gateway recorded
	// it (a late report has RecordedAt well after At).
	At         time.Time `json:"at"`
	RecordedAt time.Time `json:"recordedAt"`
	// ResponseID is the receiver's response Bundle id, RequestBundleID the
	// id of the gateway's message it answered.
	ResponseID       string     `json:"responseId"`
	RequestBundleID  string     `json:"requestBundleId"`
	AppointmentID    string     `json:"appointmentId,omitempty"`
	AppointmentStart time.Time  `json:"appointmentStart,omitzero"`
	Codes            []StepCode `json:"codes,omitempty"`
}

// StepRequest asks the store to record a step about a delivered message.
type StepRequest struct {
	// Message is the delivered message the response answers (from
	// SentMessage).
	Message OutboxMessage
	// Entry is the step; the store sets Seq, ReferralID, Institution,
	// CaseID, ServiceID and RecordedAt.
	Entry TimelineEntry
	// Response is the receiver's message, kept on the referral.
	Response json.RawMessage
	At       time.Time
}

// Timeline stores the steps receivers report.
type Timeline interface {
	// SentMessage is the message whose Bundle id is bundleID, without its
	// body; ENOTFOUND when the gateway queued none.
	SentMessage(ctx context.Context, bundleID string) (OutboxMessage, error)
	// RecordStep records a step on the latest version of the message's
	// case and moves the referral on (ApplyStep), in one transaction. An
	// acceptance or rejection of a superseded version is ECONFLICT
	// (RefusedSuperseded), and so is a response already recorded
	// (RefusedDuplicate).
	RecordStep(ctx context.Context, req StepRequest) (StoredReferral, TimelineEntry, error)
	// Steps lists the timeline of an institution's case (all its
	// versions), in the order of the steps' times.
	Steps(ctx context.Context, institution, caseID string) ([]TimelineEntry, error)
	// StepsAfter lists up to limit entries of an institution recorded
	// after seq afterSeq, in seq order: a feed that a poller or a webhook
	// sender resumes from the last seq it saw.
	StepsAfter(ctx context.Context, institution string, afterSeq int64, limit int) ([]TimelineEntry, error)
	// ReferralMessages lists the messages queued for a referral, oldest
	// first, without bodies: its delivery progress.
	ReferralMessages(ctx context.Context, referralID string) ([]OutboxMessage, error)
}

// Why a response was refused: the reason code of its action record.
const (
	RefusedMalformed        = "malformed"         // not a readable BaRS response message
	RefusedUnknown          = "unknown-message"   // answers no message the gateway queued
	RefusedNotDelivered     = "not-delivered"     // answers a message not (yet) delivered, or dead-lettered
	RefusedWrongReceiver    = "wrong-receiver"    // the message went to a service the client does not answer for
	RefusedCaseMismatch     = "case-mismatch"     // the ServiceRequest names another case than the message answered
	RefusedOutsideAgreement = "outside-agreement" // the step is not in the service's returnSteps
	RefusedSuperseded       = "superseded"        // acceptance or rejection of a version no longer current
	RefusedDuplicate        = "duplicate"         // the response Bundle was recorded before
	RefusedFutureTime       = "future-time"       // the step is dated in the future
)

// MaxClockSkew is how far in the future a step's time may lie: a receiver's
// clock may run a little ahead, but a step is reported after it happened.
const MaxClockSkew = 5 * time.Minute

// Actions of the return path in the audit chains.
const (
	ActionResponseStep    = "response-step"    // a step recorded (Reason: the step)
	ActionResponseRefused = "response-refused" // a response refused (Reason: Refused*)
)

// ApplyStep places e among the referral's earlier entries and returns the
// entry as it is recorded and the referral after it. A booking after an
// earlier booking of another appointment, or of the same one at another
// time, is a rebooking. The status is the step of the latest entry by its
// own time (ties: the later step in Steps, then the later recorded), so a
// late or out-of-order report is recorded without rewinding the status; a
// cancelled referral stays cancelled. AcknowledgedAt is the earliest
// acceptance and FirstAppointmentAt the earliest booked start or seen time.
func ApplyStep(ref StoredReferral, earlier []TimelineEntry, e TimelineEntry) (TimelineEntry, StoredReferral) {
	if e.Step == StepBooked {
		for _, p := range earlier {
			if (p.Step == StepBooked || p.Step == StepRebooked) && p.At.Before(e.At) &&
				(p.AppointmentID != e.AppointmentID || !p.AppointmentStart.Equal(e.AppointmentStart)) {
				e.Step = StepRebooked
				break
			}
		}
	}
	all := append(slices.Clone(earlier), e)
	latest := slices.MaxFunc(all, compareEntries)
	if ref.Status != StatusCancelled {
		ref.Status = latest.Step.Status()
	}
	ref.AcknowledgedAt, ref.FirstAppointmentAt = time.Time{}, time.Time{}
	for _, p := range all {
		switch p.Step {
		case StepAccepted:
			ref.AcknowledgedAt = earliest(ref.AcknowledgedAt, p.At)
		case StepBooked, StepRebooked:
			start := p.AppointmentStart
			if start.IsZero() {
				start = p.At
			}
			ref.FirstAppointmentAt = earliest(ref.FirstAppointmentAt, start)
		case StepSeen:
			ref.FirstAppointmentAt = earliest(ref.FirstAppointmentAt, p.At)
		}
	}
	return e, ref
}

// compareEntries orders entries by time, then step precedence, then seq (a
// new entry has seq 0 and is the latest recorded).
func compareEntries(a, b TimelineEntry) int {
	if c := a.At.Compare(b.At); c != 0 {
		return c
	}
	if c := slices.Index(Steps, a.Step) - slices.Index(Steps, b.Step); c != 0 {
		return c
	}
	switch {
	case a.Seq == b.Seq:
		return 0
	case a.Seq == 0:
		return 1
	case b.Seq == 0:
		return -1
	}
	return int(a.Seq - b.Seq)
}

func earliest(t, u time.Time) time.Time {
	if t.IsZero() || u.Before(t) {
		return u
	}
	return t
}

// noSuchMessage is the one answer to a response the gateway will not tie to
// a message: whether the message or case exists, or is another service's,
// is not revealed.
func noSuchMessage() error {
	return &Error{Code: ENOTFOUND, Message: "no such referral message", Issues: []Issue{{
		Severity: "error", Type: "not-found", Expression: "MessageHeader.response.identifier",
		Message: "no message delivered to a service this client answers for has this Bundle id",
	}}}
}

// Respond records the step a receiver's response reports. The response must
// answer (MessageHeader.response.identifier) a message the gateway delivered
// to a service the client answers for, about the case its ServiceRequest
// names; anything else is ENOTFOUND, one answer whatever the reason. The
// step must be in the service's returnSteps (EFORBIDDEN), an acceptance or
// rejection must be of the current version, and a response is recorded once
// (ECONFLICT). Every refusal is recorded in the audit chain with its reason
// and changes nothing else; a recorded step is in the chain too.
func (in *Intake) Respond(ctx context.Context, c *Client, r ReceiverResponse) (StoredReferral, TimelineEntry, error) {
	m, err := in.Store.SentMessage(ctx, r.RequestBundleID)
	reason := ""
	switch {
	case ErrorCode(err) == ENOTFOUND:
		reason = RefusedUnknown
	case err != nil:
		return StoredReferral{}, TimelineEntry{}, err
	case !c.Has(RoleReceiver) || !c.Serves(m.ServiceID):
		reason = RefusedWrongReceiver
	case m.Institution != r.Institution || m.CaseID != r.CaseID:
		reason = RefusedCaseMismatch
	case m.State != MessageDelivered:
		reason = RefusedNotDelivered
	}
	if reason != "" {
		return StoredReferral{}, TimelineEntry{}, in.refuse(ctx, c, m, reason, noSuchMessage())
	}
	svc, ok := in.Evaluator.Registry.Lookup(m.ServiceID)
	if !ok || !slices.Contains(ReturnStepsOf(svc), r.Step) {
		return StoredReferral{}, TimelineEntry{}, in.refuse(ctx, c, m, RefusedOutsideAgreement, &Error{Code: EFORBIDDEN, Message: "step outside the data-sharing agreement", Issues: []Issue{{
			Severity: "error", Type: "business-rule", Expression: "MessageHeader",
			Message:     "the data-sharing agreement of this service does not let it report " + string(r.Step) + " to the university",
			DetailsCode: RefusedOutsideAgreement, DetailsSystem: FHIRBase + "/CodeSystem/response-refusal",
		}}})
	}
	at := in.now()
	if r.At.After(at.Add(MaxClockSkew)) {
		return StoredReferral{}, TimelineEntry{}, in.refuse(ctx, c, m, RefusedFutureTime, &Error{Code: EINVALID, Message: "step dated in the future", Issues: []Issue{{
			Severity: "error", Type: "value", Expression: "Bundle.timestamp",
			Message:     "the step's time is in the future: report a step once it has happened (an appointment's start may be in the future, its booking not)",
			DetailsCode: RefusedFutureTime, DetailsSystem: FHIRBase + "/CodeSystem/response-refusal",
		}}})
	}
	ref, e, err := in.Store.RecordStep(ctx, StepRequest{Message: m, Response: r.Message, At: at, Entry: TimelineEntry{
		Step: r.Step, At: r.At, ResponseID: r.ResponseID, RequestBundleID: r.RequestBundleID,
		AppointmentID: r.AppointmentID, AppointmentStart: r.AppointmentStart, Codes: r.Codes,
	}})
	if ErrorCode(err) == ECONFLICT && len(AsError(err).Issues) == 1 { // a Refusal: superseded or duplicate
		return StoredReferral{}, TimelineEntry{}, in.refuse(ctx, c, m, AsError(err).Issues[0].DetailsCode, err)
	} else if err != nil {
		return StoredReferral{}, TimelineEntry{}, err
	}
	_, err = AppendAction(ctx, in.Store, ActionEntry{
		Action: ActionResponseStep, By: c.ID, Institution: ref.Institution, CaseID: ref.CaseID,
		ReferralID: ref.ID, MessageID: m.ID, Service: m.ServiceID, Reason: string(e.Step),
	}, at)
	return ref, e, err
}

// RefuseMalformed records that a client posted a response message that
// could not be read (to the gateway's chain: it names no case to trust).
func (in *Intake) RefuseMalformed(ctx context.Context, c *Client, cause error) error {
	return in.refuse(ctx, c, OutboxMessage{}, RefusedMalformed, cause)
}

// refuse records a refused response in the chain of the institution whose
// message it named (the gateway's chain when it named none that exists, so
// that a forged id creates no chain) and returns cause.
func (in *Intake) refuse(ctx context.Context, c *Client, m OutboxMessage, reason string, cause error) error {
	a := ActionEntry{Action: ActionResponseRefused, Institution: GatewayChain, Reason: reason}
	if c != nil {
		a.By = c.ID
	}
	if m.ID != "" {
		a.Institution, a.CaseID, a.ReferralID, a.MessageID, a.Service = m.Institution, m.CaseID, m.ReferralID, m.ID, m.ServiceID
	}
	if _, err := AppendAction(ctx, in.Store, a, in.now()); err != nil {
		return err
	}
	return cause
}

// Refusal is a store's ECONFLICT for a response it will not record, with the
// reason code (RefusedSuperseded, RefusedDuplicate) as the issue's details.
func Refusal(reason, expression, msg string) *Error {
	return &Error{Code: ECONFLICT, Message: "response refused", Issues: []Issue{{
		Severity: "error", Type: "conflict", Expression: expression, Message: msg,
		DetailsCode: reason, DetailsSystem: FHIRBase + "/CodeSystem/response-refusal",
	}}}
}

// Delivery is how the delivery of a referral's messages stands, as its
// university sees it while the gateway is still trying.
type Delivery struct {
	Kind     MessageKind  `json:"kind"`
	State    MessageState `json:"state"`
	Attempts int          `json:"attempts"`
	// ErrorClass is the kind of the last failure (ErrorClassOf);
	// NextRetryAt when the next attempt is due (pending messages only).
	ErrorClass    string    `json:"lastErrorClass,omitempty"`
	LastAttemptAt time.Time `json:"lastAttemptAt,omitzero"`
	NextRetryAt   time.Time `json:"nextRetryAt,omitzero"`
	// DeadLetterReason says why the gateway gave up (dead or dropped).
	DeadLetterReason string `json:"deadLetterReason,omitempty"`
}

// DeliveryOf is the delivery progress of one message.
func DeliveryOf(m OutboxMessage) Delivery {
	d := Delivery{Kind: m.Kind, State: m.State, Attempts: m.Attempts, LastAttemptAt: m.LastAttemptAt, ErrorClass: ErrorClassOf(m.LastError)}
	switch m.State {
	case MessagePending:
		if m.Attempts > 0 {
			d.NextRetryAt = m.DueAt
		}
	case MessageDead:
		d.DeadLetterReason = "retries-exhausted"
		if strings.Contains(m.LastError, "in the queue") {
			d.DeadLetterReason = "too-long-in-queue"
		}
	case MessageDropped:
		d.DeadLetterReason = "dropped-by-operator"
	}
	return d
}

// ErrorClassOf classifies a delivery error (OutboxMessage.LastError, which
// the worker writes without content) into a code a university can read:
// timeout, transport, receiver-unavailable (5xx, 429, 408),
// receiver-refused (other 4xx), token-refused, or other.
func ErrorClassOf(lastError string) string {
	if rest, ok := strings.CutPrefix(lastError, "gave up"); ok {
		if _, cause, ok := strings.Cut(rest, "in the queue: "); ok {
			lastError = cause
		} else {
			_, lastError, _ = strings.Cut(rest, ": ")
		}
	}
	switch {
	case lastError == "":
		return ""
	case strings.HasPrefix(lastError, "timeout"):
		return "timeout"
	case strings.HasPrefix(lastError, "transport error"):
		return "transport"
	case strings.HasPrefix(lastError, "receiver refused the bearer token"):
		return "token-refused"
	case strings.HasPrefix(lastError, "receiver refused"):
		return "receiver-refused"
	case strings.HasPrefix(lastError, "receiver answered"):
		return "receiver-unavailable"
	}
	return "other"
}

// ReferralState is a referral as its university follows it: the referral,
// its case's timeline and, until a message is out of the queue, the
// progress of its delivery.
type ReferralState struct {
	Referral StoredReferral
	Timeline []TimelineEntry
	// Delivery has one entry per message of the referral (new or update,
	// then any cancellation), oldest first.
	Delivery []Delivery
}

// Follow returns the referral id of client c's institution with its
// timeline and delivery progress; ENOTFOUND, with one message, when there
// is no such referral or it is another institution's.
func (in *Intake) Follow(ctx context.Context, c *Client, id string) (ReferralState, error) {
	if c == nil || c.Institution == "" {
		return ReferralState{}, Errorf(ENOTFOUND, "no such referral")
	}
	ref, err := in.Store.Referral(ctx, c.Institution, id)
	if err != nil {
		return ReferralState{}, err
	}
	st := ReferralState{Referral: ref}
	if st.Timeline, err = in.Store.Steps(ctx, ref.Institution, ref.CaseID); err != nil {
		return ReferralState{}, err
	}
	ms, err := in.Store.ReferralMessages(ctx, ref.ID)
	if err != nil {
		return ReferralState{}, err
	}
	for _, m := range ms {
		st.Delivery = append(st.Delivery, DeliveryOf(m))
	}
	return st, nil
}
