package gateway

import (
	"context"
	"encoding/json"
	"time"
)

// Webhook event types: what a webhook call is about. A status event carries
// the referral's new status; a step event carries the code of a step of the
// return path (the receiver's progress on the referral).
const (
	WebhookEventStatus = "referral.status"
	WebhookEventStep   = "referral.step"
)

// WebhookEventTypes lists the event types a client's webhook may subscribe
// to, for configuration checks and documentation.
var WebhookEventTypes = []string{WebhookEventStatus, WebhookEventStep}

// WebhookStatuses are the referral statuses a status event is sent for:
// the changes a university's system would otherwise poll for, the return
// path's included. Queued is the answer to its own request and delivering
// is momentary, so neither is sent.
var WebhookStatuses = []ReferralStatus{
	StatusDelivered, StatusFailed, StatusDeadLettered, StatusCancelled,
	StatusServiceAccepted, StatusRejected, StatusBooked, StatusRebooked,
	StatusSeen, StatusDidNotAttend, StatusDischarged, StatusRedirected,
}

// WebhookSubscriber is a client with a webhook as the store needs to know
// it: which client, and which event types it takes (empty: all).
type WebhookSubscriber struct {
	ClientID string
	Events   []string
}

// WebhookEvent is a change worth a webhook call: ids, a status or step
// code and a time, never clinical content or anything that names a student.
type WebhookEvent struct {
	Institution string
	ReferralID  string
	CaseID      string
	// Event is WebhookEventStatus or WebhookEventStep.
	Event string
	// Status is the new referral status, or the step's code.
	Status string
	At     time.Time
}

// WebhookState is where a webhook call stands.
type WebhookState string

// Webhook call states. A pending call is leased by pushing its
// NextAttemptAt ahead; delivered and dead are final until an operator
// requeues a dead call.
const (
	WebhookPending   WebhookState = "pending"
	WebhookDelivered WebhookState = "delivered"
	WebhookDead      WebhookState = "dead"
)

// WebhookCall is one notification to one client, written in the
// transaction that made the change it tells of, so that it is never lost.
type WebhookCall struct {
	ID          string       `json:"id"`
	ClientID    string       `json:"clientId"`
	Institution string       `json:"institution"`
	ReferralID  string       `json:"referralId"`
	CaseID      string       `json:"caseId"`
	Event       string       `json:"event"`
	Status      string       `json:"status"`
	At          time.Time    `json:"at"`
	State       WebhookState `json:"state"`
	// Attempts counts claims, so a call whose dispatcher crashed mid-post
	// still runs out of attempts.
	Attempts      int       `json:"attempts"`
	NextAttemptAt time.Time `json:"nextAttemptAt"`
	// LeaseID is the lease of the dispatcher that holds the call (Claim).
	LeaseID string `json:"-"`
	// LastErrorClass names how the last attempt failed (timeout, refused,
	// http-503, redirect, …); never the URL or the answer's body.
	LastErrorClass string    `json:"lastErrorClass,omitempty"`
	CreatedAt      time.Time `json:"createdAt"`
	DeliveredAt    time.Time `json:"deliveredAt,omitzero"`
}

// WebhookPayload is the JSON body of a webhook call: exactly these fields,
// ids, statuses and times, so that no personal data can leave by this road.
type WebhookPayload struct {
	ID          string    `json:"id"`
	ReferralID  string    `json:"referralId"`
	CaseID      string    `json:"caseId"`
	Institution string    `json:"institution"`
	Event       string    `json:"event"`
	Status      string    `json:"status"`
	At          time.Time `json:"at"`
	Attempt     int       `json:"attempt"`
}

// Body is the call's payload on its attempt-th try.
func (c WebhookCall) Body(attempt int) []byte {
	b, _ := json.Marshal(WebhookPayload{ID: c.ID, ReferralID: c.ReferralID, CaseID: c.CaseID, Institution: c.Institution,
		Event: c.Event, Status: c.Status, At: c.At.UTC(), Attempt: attempt}) // strings, a time, an int: cannot fail
	return b
}

// WebhookID is the id of the call that tells client of event: derived, so
// that a change replayed in a retried transaction gives the same call.
func WebhookID(client string, e WebhookEvent) string {
	return DeriveID("webhook", client, e.ReferralID, e.Event, e.Status, e.At.UTC().Format(time.RFC3339Nano))
}

// Webhooks is the queue of webhook calls. The store fills it in the
// transactions that change a referral (for the subscribers SetWebhookClients
// names); the dispatcher (gateway/webhook) drains it.
type Webhooks interface {
	// EnqueueWebhooks queues a call of e for each subscriber of its
	// institution, in a transaction of its own.
	EnqueueWebhooks(ctx context.Context, e WebhookEvent) error
	// ClaimWebhooks leases up to max due calls until now+lease and counts
	// an attempt on each. A call is never claimed by two dispatchers at
	// once.
	ClaimWebhooks(ctx context.Context, max int, now time.Time, lease time.Duration) ([]WebhookCall, error)
	// CompleteWebhook marks a leased call delivered; ECONFLICT when the
	// lease was lost.
	CompleteWebhook(ctx context.Context, id, leaseID string, at time.Time) error
	// RetryWebhook puts a leased call back to be tried at next.
	RetryWebhook(ctx context.Context, id, leaseID string, next time.Time, errorClass string) error
	// DeadLetterWebhook gives up on a leased call.
	DeadLetterWebhook(ctx context.Context, id, leaseID string, at time.Time, errorClass string) error
	// DeadWebhooks lists dead calls, oldest first; institution "" lists
	// every institution's.
	DeadWebhooks(ctx context.Context, institution string, limit int) ([]WebhookCall, error)
	// RequeueWebhook puts a dead call back in the queue, due at once, with
	// its attempts reset; ENOTFOUND when there is no such call, ECONFLICT
	// when it is not dead.
	RequeueWebhook(ctx context.Context, id string, at time.Time) error
	// WebhookCounts counts pending and dead calls, for the metrics.
	WebhookCounts(ctx context.Context) (pending, dead int, err error)
}
