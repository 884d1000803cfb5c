package gateway

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash"
	"slices"
	"strconv"
	"strings"
	"time"
)

// ReferralStatus is where a stored referral stands. The delivery worker moves
// it from queued to delivered, failed or dead-lettered; the receiving
// service's reports (its return steps, see Step) move it on from accepted or
// rejected to booked, seen, discharged and so on; a university may cancel it.
// The gateway's own states and the service's steps never share a name: that
// the gateway took a referral in (queued) says nothing of whether the
// service accepted it.
type ReferralStatus string

// Referral statuses set by the gateway. The statuses a service's steps set
// are Step.Status: accepted, rejected, booked, rebooked, seen,
// did-not-attend, discharged, redirected.
const (
	// StatusQueued: stored and queued; the caller was answered 202.
	StatusQueued ReferralStatus = "queued"
	// StatusDelivering: a worker has claimed its message at least once.
	StatusDelivering ReferralStatus = "delivering"
	// StatusDelivered: the receiver answered 2xx.
	StatusDelivered ReferralStatus = "delivered"
	// StatusFailed: the receiver refused it (4xx); its OperationOutcome is
	// kept on the message.
	StatusFailed ReferralStatus = "failed"
	// StatusDeadLettered: the gateway gave up (retries exhausted, or an
	// operator dropped the message before it was sent).
	StatusDeadLettered ReferralStatus = "dead-lettered"
	// StatusCancelled: the university withdrew it; a revoke message is
	// queued. Steps the service reports afterwards are kept in the
	// timeline but do not change it.
	StatusCancelled ReferralStatus = "cancelled"
)

// Referral statuses set by the receiving service's steps (Step.Status).
const (
	StatusServiceAccepted ReferralStatus = ReferralStatus(StepAccepted)
	StatusRejected        ReferralStatus = ReferralStatus(StepRejected)
	StatusBooked          ReferralStatus = ReferralStatus(StepBooked)
	StatusRebooked        ReferralStatus = ReferralStatus(StepRebooked)
	StatusSeen            ReferralStatus = ReferralStatus(StepSeen)
	StatusDidNotAttend    ReferralStatus = ReferralStatus(StepDidNotAttend)
	StatusDischarged      ReferralStatus = ReferralStatus(StepDischarged)
	StatusRedirected      ReferralStatus = ReferralStatus(StepRedirected)
)

// StoredReferral is one version of a case as the gateway accepted it. A
// changed case record is a new StoredReferral (Version+1, PreviousID set),
// never an edit, so that what was sent to the NHS is never rewritten. (The
// name avoids Referral, which is the clinical part of a CaseRecord.)
type StoredReferral struct {
	// ID is ReferralID(Institution, CaseID, ContentHash).
	ID          string `json:"id"`
	Institution string `json:"institution"` // UKPRN; the tenant
	CaseID      string `json:"caseId"`
	ContentHash string `json:"contentHash"`
	Version     int    `json:"version"`
	PreviousID  string `json:"previousId,omitempty"`
	ServiceID   string `json:"serviceId"`
	DecisionID  string `json:"decisionId"`
	// Status is the latest status; UpdatedAt is when it was set.
	Status ReferralStatus `json:"status"`
	// Response is the receiver's latest response message (content: purged
	// with the record; the timeline keeps its coded values).
	Response json.RawMessage `json:"response,omitempty"`
	// Record and Bundle are the clinical content (the case record as posted
	// and the message sent); both are nil once PurgedAt is set.
	Record     json.RawMessage `json:"record,omitempty"`
	Bundle     json.RawMessage `json:"bundle,omitempty"`
	AcceptedAt time.Time       `json:"acceptedAt"`
	UpdatedAt  time.Time       `json:"updatedAt"`
	PurgedAt   time.Time       `json:"purgedAt,omitzero"`
	// AcknowledgedAt is the time of the service's first acceptance of this
	// version, and FirstAppointmentAt the earliest appointment it booked
	// (its start) or the earliest time the student was seen, whichever is
	// first: with AcceptedAt, the evaluation's time to acknowledgement and
	// to first appointment. Zero until reported.
	AcknowledgedAt     time.Time `json:"acknowledgedAt,omitzero"`
	FirstAppointmentAt time.Time `json:"firstAppointmentAt,omitzero"`
}

// ReferralID is the id of the referral version with this idempotency key. It
// is derived, not drawn, so that the mapping can put it in the bundle before
// the store has seen it and a replayed request finds the same row.
func ReferralID(institution, caseID, contentHash string) string {
	return DeriveID("referral", institution, caseID, contentHash)
}

// AcceptRequest is an allowed referral ready to be stored and queued.
type AcceptRequest struct {
	Institution string // UKPRN
	CaseID      string
	ContentHash string // ContentHash of the record
	ServiceID   string
	// PreviousID is the id of the latest version of the case that the caller
	// saw (LatestReferral) when it built Bundle, "" when there was none. The
	// store refuses with ECONFLICT when another version has been accepted
	// since, because Bundle's reason (new or update) would then be wrong.
	PreviousID string
	// Record is the case record, Bundle the message the receiver gets.
	Record json.RawMessage
	Bundle json.RawMessage
	// Decision is the allow decision, appended to the institution's chain
	// in the same transaction; its Institution, Seq and hashes are set by
	// the store.
	Decision DecisionRecord
	// Sender is the university the message is sent for, as its
	// MessageHeader.sender names it; stored with the message for delivery.
	Sender Sender
	// CorrelationID is the X-Correlation-Id the message will carry; empty
	// gives the message's request id.
	CorrelationID string
	At            time.Time
}

// Sender is the organisation a message is sent for: the identifiers and name
// of the Organization its MessageHeader.sender references. It is stored with
// the message when it is queued, so that delivery can name the sender in the
// NHSD-End-User-Organisation header without reading the Bundle again.
type Sender struct {
	Identifier []Identifier `json:"identifier,omitempty"`
	Name       string       `json:"name,omitempty"`
}

// SenderOf is the sender of a message about a case of inst, as the mapping
// writes it into the Bundle: the institution's UKPRN, its ODS code when it
// has one, and its name.
func SenderOf(inst Institution) Sender {
	s := Sender{
		Identifier: []Identifier{{System: UKPRNSystem, Value: strings.TrimSpace(inst.UKPRN)}},
		Name:       strings.TrimSpace(inst.Name),
	}
	if ods := strings.TrimSpace(inst.ODSCode); ods != "" {
		s.Identifier = append(s.Identifier, Identifier{System: "https://fhir.nhs.uk/Id/ods-organization-code", Value: ods})
	}
	return s
}

// AcceptResult is what Accept did. Created is false when the same
// (institution, case id, content hash) had already been accepted: Referral
// is then that earlier one and nothing was written.
type AcceptResult struct {
	Referral StoredReferral
	Created  bool
	// Decision is the appended decision record (zero when !Created).
	Decision DecisionRecord
	// Message is the queued outbox message (zero when !Created).
	Message OutboxMessage
}

// CancelRequest withdraws the latest version of a case: the referral becomes
// cancelled and Bundle (the ServiceRequest with status revoked) is queued.
type CancelRequest struct {
	Institution string
	ReferralID  string
	Bundle      json.RawMessage
	// Sender is as in AcceptRequest.
	Sender        Sender
	CorrelationID string
	At            time.Time
}

// MessageKind is why a message is sent; new and update are the BaRS message
// reasons, cancel is the revoke.
type MessageKind string

// Message kinds.
const (
	KindNew    MessageKind = "new"
	KindUpdate MessageKind = "update"
	KindCancel MessageKind = "cancel"
)

// MessageState is where an outbox message stands.
type MessageState string

// Message states. Pending and leased are the queue; the rest are final until
// an operator retries (failed, dead) a message.
const (
	MessagePending   MessageState = "pending"   // waiting for DueAt
	MessageLeased    MessageState = "leased"    // a worker holds it until DueAt
	MessageDelivered MessageState = "delivered" // receiver answered 2xx
	MessageFailed    MessageState = "failed"    // receiver answered 4xx
	MessageDead      MessageState = "dead"      // the worker gave up
	MessageDropped   MessageState = "dropped"   // an operator gave up
)

// OutboxMessage is one message to one receiver, written in the transaction
// that accepted (or cancelled) its referral, so that nothing accepted is lost
// and nothing is sent that was not accepted.
type OutboxMessage struct {
	ID          string      `json:"id"`
	ReferralID  string      `json:"referralId"`
	Institution string      `json:"institution"`
	CaseID      string      `json:"caseId"`
	Kind        MessageKind `json:"kind"`
	ServiceID   string      `json:"serviceId"`
	// RequestID and CorrelationID are the X-Request-Id and X-Correlation-Id
	// headers: fixed at creation, the same on every retry, so that a
	// receiver can drop duplicates.
	RequestID     string `json:"requestId"`
	CorrelationID string `json:"correlationId"`
	// Sender is who the message is sent for; zero for a message queued
	// before senders were stored whose Bundle named none the store could
	// read.
	Sender Sender `json:"sender,omitzero"`
	// Body is the Bundle to post; nil in listings and once purged.
	Body  json.RawMessage `json:"body,omitempty"`
	State MessageState    `json:"state"`
	// DueAt is when a pending message may next be tried, or when a leased
	// message's lease runs out.
	DueAt time.Time `json:"dueAt"`
	// Attempts counts claims, so a message that crashes its worker still
	// runs out of retries.
	Attempts      int       `json:"attempts"`
	LeaseOwner    string    `json:"leaseOwner,omitempty"`
	LeaseID       string    `json:"leaseId,omitempty"`
	LastAttemptAt time.Time `json:"lastAttemptAt,omitzero"`
	// LastError is the worker's short description of the last failure; it
	// must hold no personal data.
	LastError string `json:"lastError,omitempty"`
	// Response is the receiver's OperationOutcome when it refused (failed).
	Response json.RawMessage `json:"response,omitempty"`
	// Operator* record the last operator retry or drop: who, why, when.
	OperatorBy     string    `json:"operatorBy,omitempty"`
	OperatorReason string    `json:"operatorReason,omitempty"`
	OperatorAt     time.Time `json:"operatorAt,omitzero"`
	CreatedAt      time.Time `json:"createdAt"`
	UpdatedAt      time.Time `json:"updatedAt"`
}

// AttemptResult is how one delivery attempt ended.
type AttemptResult string

// Attempt results.
const (
	AttemptDelivered    AttemptResult = "delivered"     // 2xx
	AttemptRetry        AttemptResult = "retry"         // try again at RetryAt
	AttemptFailed       AttemptResult = "failed"        // receiver 4xx: final
	AttemptDeadLettered AttemptResult = "dead-lettered" // retries exhausted
)

// Attempt is the outcome a worker reports for a message it holds.
type Attempt struct {
	Result  AttemptResult
	At      time.Time
	RetryAt time.Time // AttemptRetry only
	// Error describes the failure for operators; no personal data.
	Error string
	// Response is the receiver's OperationOutcome (AttemptFailed).
	Response json.RawMessage
}

// OperatorAction says who retried or dropped a message, why and when.
type OperatorAction struct {
	By     string
	Reason string
	At     time.Time
}

// QueueStats is what the metrics show about the outbox.
type QueueStats struct {
	// Counts has the states that need watching (pending, leased, failed,
	// dead), zero included; delivered and dropped grow without bound and are
	// not counted.
	Counts map[MessageState]int
	// OldestPending is the creation time of the oldest message still in the
	// queue (pending or leased); zero when the queue is empty.
	OldestPending time.Time
}

// DecisionRecord is one entry of an institution's decision log: append-only
// and hash-chained, so that an IG lead can show that no decision was altered,
// removed or reordered after the fact.
type DecisionRecord struct {
	Institution string          `json:"institution"`
	Seq         int64           `json:"seq"` // 1, 2, … per institution
	DecisionID  string          `json:"decisionId"`
	At          time.Time       `json:"at"`
	Body        json.RawMessage `json:"body"` // opaque to the store; no clinical free text, no direct identifiers
	PrevHash    string          `json:"prevHash"`
	Hash        string          `json:"hash"`
	// KeyID names the chain key whose HMAC Hash is (KeyedDecisionHash);
	// empty for a record of the plain SHA-256 scheme (DecisionHash), which
	// chains written before the key was configured keep.
	KeyID string `json:"keyId,omitempty"`
	// Input is what the decision was made on, kept for policy replay: the
	// store writes it with the record, in the same transaction, and purges
	// it with content. It is never part of the chain (nor of its hash or
	// an export); nil on an action record, and on a decision read back
	// whose input is past retention.
	Input *RetainedInput `json:"-"`
}

// GenesisHash is the PrevHash of an institution's first decision record.
var GenesisHash = strings.Repeat("0", 64)

// DecisionHash is the hex SHA-256 that chains a decision record to the one
// before it. The encoding is canonical: a version tag, then institution, seq,
// decision id, time (RFC 3339, UTC, microseconds), prev hash and the body's
// exact bytes, each prefixed by its length as 8 bytes big-endian, so no two
// records encode alike and anyone can recompute it from an export.
func DecisionHash(r DecisionRecord) string {
	return chainHash(sha256.New(), "gateway-decision-v1", r)
}

// KeyedDecisionHash is the hex HMAC-SHA256 under key of the same encoding,
// tagged v2 and with the key's id: whoever can write the database but does
// not hold the key cannot recompute it.
func KeyedDecisionHash(r DecisionRecord, key []byte) string {
	return chainHash(hmac.New(sha256.New, key), "gateway-decision-v2/"+KeyID(key), r)
}

func chainHash(h hash.Hash, tag string, r DecisionRecord) string {
	var n [8]byte
	for _, f := range [][]byte{
		[]byte(tag),
		[]byte(r.Institution),
		[]byte(strconv.FormatInt(r.Seq, 10)),
		[]byte(r.DecisionID),
		[]byte(r.At.UTC().Truncate(time.Microsecond).Format("2006-01-02T15:04:05.000000Z")),
		[]byte(r.PrevHash),
		r.Body,
	} {
		binary.BigEndian.PutUint64(n[:], uint64(len(f)))
		h.Write(n[:])
		h.Write(f)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// ChainProblem names how a decision chain is broken.
type ChainProblem string

// Chain problems.
const (
	// ChainAltered: a record no longer matches its hash, or its link.
	ChainAltered ChainProblem = "altered"
	// ChainRemoved: a record is missing (a gap in seq, or the chain ends
	// before its head).
	ChainRemoved ChainProblem = "removed"
	// ChainReordered: an intact record sits at another position than the
	// one it was written at.
	ChainReordered ChainProblem = "reordered"
	// ChainMissing: the store has no record of a chain that a checkpoint
	// lists.
	ChainMissing ChainProblem = "missing"
	// ChainUnknownKey: a record is keyed with a chain key the keyring does
	// not hold, so it cannot be checked.
	ChainUnknownKey ChainProblem = "unknown-key"
	// ChainCheckpoint: the checkpoints themselves are not intact (a bad
	// signature, a gap, an untrusted key), so the heads cannot be checked.
	ChainCheckpoint ChainProblem = "checkpoint"
)

// ChainVerification is the result of walking one institution's chain.
type ChainVerification struct {
	Institution string
	// Records is how many records were checked before the walk stopped.
	Records int64
	// HeadSeq and HeadHash are the chain head the store holds; publishing
	// them elsewhere lets a later Verify also prove nothing was cut from
	// the end together with the head.
	HeadSeq  int64
	HeadHash string
	OK       bool
	// BadSeq is the first position at fault; Problem and Detail say how.
	BadSeq  int64
	Problem ChainProblem
	Detail  string
	// Checkpoint is the seq the newest signed checkpoint gives the chain's
	// head: the record up to which the chain was held to it (0: none).
	Checkpoint int64
}

// Referrals stores accepted referrals and their status. Every read is scoped
// to an institution: another institution's referral is ENOTFOUND, so one
// university can never learn of another's cases.
type Referrals interface {
	// Accept stores the referral, appends its decision record and queues its
	// message in one transaction that is flushed to disk before it returns,
	// so that the caller may answer 202. The same (institution, case id,
	// content hash) returns the stored referral with Created false; a
	// changed record for the same case becomes version n+1 with an update
	// message. See AcceptRequest.PreviousID for ECONFLICT.
	Accept(ctx context.Context, req AcceptRequest) (AcceptResult, error)
	// Referral returns one version; ENOTFOUND if it is not the institution's.
	Referral(ctx context.Context, institution, id string) (StoredReferral, error)
	// LatestReferral returns the highest version of a case; ENOTFOUND when
	// the case was never accepted.
	LatestReferral(ctx context.Context, institution, caseID string) (StoredReferral, error)
	// Cancel marks the latest version cancelled and queues the revoke in one
	// transaction. Cancelling twice returns the referral unchanged; an older
	// version or a rejected referral is ECONFLICT.
	Cancel(ctx context.Context, req CancelRequest) (StoredReferral, error)
}

// Outbox is the delivery queue. Workers in any number of gateway processes
// Claim messages, post them and RecordAttempt; a worker that dies loses its
// lease when it expires and the message is claimed again.
type Outbox interface {
	// Claim leases up to max due messages to owner until now+lease and
	// returns them with their bodies. A message is never claimed by two
	// workers at once, and a case's messages go out in order: one waits
	// while an earlier message of its case is still queued.
	Claim(ctx context.Context, owner string, max int, now time.Time, lease time.Duration) ([]OutboxMessage, error)
	// RecordAttempt records how the attempt under leaseID ended. ECONFLICT
	// when the lease was lost (expired and claimed again, or an operator
	// acted); the other worker's outcome then counts.
	RecordAttempt(ctx context.Context, messageID, leaseID string, a Attempt) error
	// Message returns one message with its body.
	Message(ctx context.Context, id string) (OutboxMessage, error)
	// Messages lists messages in a state, oldest first, without bodies.
	Messages(ctx context.Context, state MessageState, limit int) ([]OutboxMessage, error)
	// Retry puts a failed or dead message back in the queue, due at once.
	Retry(ctx context.Context, messageID string, op OperatorAction) error
	// Drop gives up on a message that is not leased or delivered.
	Drop(ctx context.Context, messageID string, op OperatorAction) error
	// QueueStats is the queue's depth by state and its oldest message, for
	// the metrics.
	QueueStats(ctx context.Context) (QueueStats, error)
}

// AuditTrail is the append-only, per-institution hash chain of what the
// gateway did: every decision (allowed, refused, dry run) and every operator
// action (outbox retries and drops, retention runs, policy reloads, chain-key
// records), so that an IG lead reads one trail.
type AuditTrail interface {
	// AppendDecision appends a deny or dry-run decision in its own
	// transaction (allowed referrals are appended by Accept). Appends for
	// one institution are serialised so the chain never forks.
	AppendDecision(ctx context.Context, rec DecisionRecord) (DecisionRecord, error)
	// Decisions returns up to limit records after seq afterSeq, in order.
	Decisions(ctx context.Context, institution string, afterSeq int64, limit int) ([]DecisionRecord, error)
	// Decision returns the institution's first record with the decision
	// id (how a cancellation finds the decision it revokes); ENOTFOUND when
	// there is none.
	Decision(ctx context.Context, institution, decisionID string) (DecisionRecord, error)
	// Verify walks the chain and names the first record at fault, then
	// checks that every referral's decision record is in it. A broken
	// chain is a result, not an error.
	Verify(ctx context.Context, institution string) (ChainVerification, error)
	// Chains lists every institution that has a decision record, a chain
	// head or a referral, in order, with its head as the store holds it
	// (zero when the head row is gone): what verify and checkpoints cover,
	// whatever the configuration names.
	Chains(ctx context.Context) ([]ChainHead, error)
}

// Store is the gateway's durable state. One implementation over
// database/sql (gateway/sqlstore) serves SQLite and PostgreSQL, and both
// pass the same test suite (TestStore in gateway/sqlstore).
type Store interface {
	Referrals
	Outbox
	AuditTrail
	Notices
	Timeline
	// PurgeContent deletes the clinical content (record, bundle, message
	// bodies, receiver responses) of referrals last updated before the given
	// time whose messages are all out of the queue, keeping their status and
	// decision records. The retained decision inputs go with it: a refused
	// share's or a dry run's once decided before that time, an allowed
	// share's with its referral's content. It returns how many referrals it
	// purged.
	PurgeContent(ctx context.Context, before, now time.Time) (int, error)
	// Ping reports whether the database answers (readiness).
	Ping(ctx context.Context) error
	Close() error
}

// Validate checks that an accept request is complete before anything is
// written; the adapters call it so that both refuse the same requests.
func (r AcceptRequest) Validate() error {
	var issues []Issue
	need := func(ok bool, field string) {
		if !ok {
			issues = append(issues, Issue{Severity: "error", Type: "required", Expression: field, Message: field + " is required"})
		}
	}
	need(r.Institution != "", "institution")
	need(r.CaseID != "", "caseId")
	need(r.ContentHash != "", "contentHash")
	need(r.ServiceID != "", "serviceId")
	need(json.Valid(r.Record), "record")
	need(json.Valid(r.Bundle), "bundle")
	need(r.Decision.DecisionID != "", "decision.decisionId")
	need(json.Valid(r.Decision.Body), "decision.body")
	need(r.Decision.Input == nil || r.Decision.Input.valid(), "decision.input")
	need(r.Decision.Institution == "" || r.Decision.Institution == r.Institution, "decision.institution")
	need(!r.At.IsZero(), "at")
	if len(issues) > 0 {
		return &Error{Code: EINVALID, Message: "incomplete accept request", Issues: issues}
	}
	return nil
}

// Validate checks a decision record about to be appended, and its input if
// it has one.
func (r DecisionRecord) Validate() error {
	if r.Institution == "" || r.DecisionID == "" || r.At.IsZero() || !json.Valid(r.Body) {
		return Errorf(EINVALID, "a decision record needs an institution, a decision id, a time and a JSON body")
	}
	if r.Input != nil && !r.Input.valid() {
		return Errorf(EINVALID, "a decision input needs a decision time, a JSON record and a hashed JSON registry entry")
	}
	return nil
}

// Validate checks a cancel request.
func (r CancelRequest) Validate() error {
	if r.Institution == "" || r.ReferralID == "" || !json.Valid(r.Bundle) || r.At.IsZero() {
		return Errorf(EINVALID, "a cancel request needs an institution, a referral id, a revoke bundle and a time")
	}
	return nil
}

// Validate checks an attempt outcome.
func (a Attempt) Validate() error {
	switch {
	case a.At.IsZero():
		return Errorf(EINVALID, "an attempt needs a time")
	case a.Result == AttemptRetry && a.RetryAt.IsZero():
		return Errorf(EINVALID, "a retry needs a time to retry at")
	case a.Response != nil && !json.Valid(a.Response):
		return Errorf(EINVALID, "an attempt's response must be JSON")
	case !slices.Contains([]AttemptResult{AttemptDelivered, AttemptRetry, AttemptFailed, AttemptDeadLettered}, a.Result):
		return Errorf(EINVALID, "unknown attempt result %q", a.Result)
	}
	return nil
}

// ChainWalker checks a decision chain one record at a time, in seq order, so
// that an adapter can stream a chain of any length and both adapters judge
// a chain alike. Set v's Institution, HeadSeq and HeadHash first.
type ChainWalker struct {
	v    *ChainVerification
	keys ChainKeys
	prev string
	rank int // of the last record's key: no later record may use an older one
	done bool
}

// NewChainWalker starts a walk that reports into v, checking keyed records
// with keys.
func NewChainWalker(v *ChainVerification, keys ChainKeys) *ChainWalker {
	return &ChainWalker{v: v, keys: keys, prev: GenesisHash, rank: keys.rank("")}
}

// Next checks the next record. It returns false when the walk stops there;
// v then names the position at fault ("altered" until Classify refines it).
func (w *ChainWalker) Next(r DecisionRecord) bool {
	if w.done {
		return false
	}
	v := w.v
	expect := v.Records + 1
	rank := w.keys.rank(r.KeyID)
	switch {
	case r.Seq != expect:
		w.fail(expect, ChainRemoved, fmt.Sprintf("record %d is missing (the next record is %d)", expect, r.Seq))
	case rank < 0:
		w.fail(r.Seq, ChainUnknownKey, fmt.Sprintf("record %d is keyed with chain key %s, which the keyring (audit.chainKeyFile) does not hold", r.Seq, r.KeyID))
	case rank > w.rank:
		w.fail(r.Seq, ChainAltered, fmt.Sprintf("record %d is under an older chain key, or none, than the record before it: it was written outside the gateway", r.Seq))
	case w.keys.hash(r) != r.Hash:
		w.fail(r.Seq, ChainAltered, fmt.Sprintf("record %d does not match its hash", r.Seq))
	case r.PrevHash != w.prev:
		w.fail(r.Seq, ChainAltered, fmt.Sprintf("record %d does not link to record %d", r.Seq, r.Seq-1))
	default:
		v.Records++
		w.prev, w.rank = r.Hash, rank
		return true
	}
	return false
}

// Classify refines why record r stopped the walk. predecessorExists says
// whether any record of the chain has r.PrevHash as its hash (true for the
// genesis hash). An intact record that was written at another position was
// reordered, or, when its predecessor is gone, moved up after a removal.
func (w *ChainWalker) Classify(r DecisionRecord, predecessorExists bool) {
	if w.v.Problem != ChainAltered || w.keys.hash(r) == r.Hash || w.keys.rank(r.KeyID) > w.rank {
		return
	}
	// Find the position r was written at; only done on a broken chain.
	limit := max(w.v.HeadSeq, r.Seq) + 64
	if limit > 1<<22 {
		return
	}
	orig := r
	for orig.Seq = 1; orig.Seq <= limit; orig.Seq++ {
		if orig.Seq == r.Seq || w.keys.hash(orig) != r.Hash {
			continue
		}
		if predecessorExists {
			w.v.Problem = ChainReordered
			w.v.Detail = fmt.Sprintf("record %d was written as record %d", r.Seq, orig.Seq)
		} else {
			w.v.Problem = ChainRemoved
			w.v.Detail = fmt.Sprintf("record %d was written as record %d, after a record now missing", r.Seq, orig.Seq)
		}
		return
	}
}

// End finishes a walk that passed every record: the chain must end at its
// head.
func (w *ChainWalker) End() {
	if w.done {
		return
	}
	v := w.v
	switch {
	case v.Records < v.HeadSeq:
		w.fail(v.Records+1, ChainRemoved, fmt.Sprintf("the chain ends at record %d but its head is record %d", v.Records, v.HeadSeq))
	case v.Records > v.HeadSeq:
		w.fail(v.HeadSeq+1, ChainAltered, fmt.Sprintf("records after the head (record %d) were added outside the store", v.HeadSeq))
	case w.prev != v.HeadHash:
		w.fail(v.Records, ChainAltered, fmt.Sprintf("record %d does not match the chain head", v.Records))
	default:
		v.OK = true
		w.done = true
	}
}

func (w *ChainWalker) fail(seq int64, p ChainProblem, detail string) {
	w.done = true
	w.v.OK, w.v.BadSeq, w.v.Problem, w.v.Detail = false, seq, p, detail
}
