package gateway

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// Intake accepts referrals from universities: it evaluates a posted case
// record, records the decision, and for an allowed share stores the referral
// and queues its message in one transaction. It is the domain behind
// POST /v1/referrals; the handler only decodes and renders.
type Intake struct {
	Evaluator *Evaluator
	Store     Store
	// PseudonymKey keys the student pseudonym in decision records (HMAC of
	// the NHS number, or of the institution and student id), so that an IG
	// lead who knows the student can find every decision about them while
	// the records hold no direct identifier.
	PseudonymKey []byte
	// Now is the clock; tests fix it.
	Now func() time.Time
	// Queued, when set, is called after a message was queued (an accepted
	// referral or a cancellation), to wake the delivery worker at once.
	Queued func()
	// Institutions are the configured universities, whose wellbeing
	// contacts the student notices name (T-01).
	Institutions *Institutions
}

// Submission is what Submit did.
type Submission struct {
	// Evaluation is the decision (and, when allowed, the message).
	Evaluation *Evaluation
	// Referral is the stored referral when the share was allowed.
	Referral StoredReferral
	// Created is false when the same record had already been accepted:
	// Referral is the earlier one and nothing was written.
	Created bool
	// Cancelled is the earlier version that a withdrawn consent cancelled,
	// if any.
	Cancelled *StoredReferral
}

func (in *Intake) now() time.Time {
	if in.Now != nil {
		return in.Now()
	}
	return time.Now()
}

// Submit evaluates body for client c. An invalid or malformed record is an
// error (EINVALID, EMALFORMED), and so is a record of another institution
// (EFORBIDDEN). A deny is not an error: the Submission's Evaluation says
// deny, and the decision is on record.
func (in *Intake) Submit(ctx context.Context, c *Client, body []byte) (*Submission, error) {
	rec, err := ParseCaseRecord(body)
	if err != nil {
		return nil, err
	}
	if err := ownRecord(c, rec); err != nil {
		return nil, err
	}
	canonical, err := json.Marshal(rec)
	if err != nil {
		return nil, Internal(err)
	}
	hash := hashCanonical(canonical) // = ContentHash(rec), without encoding it twice
	// A competing version accepted between our read of the latest version
	// and our write is ECONFLICT: read again and rebuild, a few times.
	for try := 0; ; try++ {
		latest, found, err := in.latest(ctx, rec)
		if err != nil {
			return nil, err
		}
		if found && latest.ContentHash == hash {
			return &Submission{Referral: latest}, nil
		}
		at := in.now()
		ev, err := in.Evaluator.evaluate(ctx, rec, hash, at, found)
		if err != nil {
			return nil, err
		}
		if ev.Outcome == OutcomeInvalid {
			return nil, ev.Err
		}
		entry := NewDecisionEntry(ev, c, in.PseudonymKey, false)
		input, err := NewRetainedInput(ev, in.Evaluator.Registry, canonical, false)
		if err != nil {
			return nil, err
		}
		if ev.Outcome == OutcomeDeny {
			return in.deny(ctx, rec, ev, entry, input, latest, found)
		}
		entry.ReferralID = ReferralID(rec.Institution.UKPRN, rec.CaseID, hash)
		entryJSON, err := json.Marshal(entry)
		if err != nil {
			return nil, Internal(err)
		}
		res, err := in.Store.Accept(ctx, AcceptRequest{
			Institution: rec.Institution.UKPRN, CaseID: rec.CaseID, ContentHash: hash,
			ServiceID: ev.Service.ID, PreviousID: latest.ID,
			Record: canonical, Bundle: ev.Bundle, Sender: SenderOf(rec.Institution),
			Decision: DecisionRecord{DecisionID: ev.Decision.ID, At: at, Body: entryJSON, Input: input},
			At:       at,
		})
		if ErrorCode(err) == ECONFLICT && try < 3 {
			continue
		}
		if err != nil {
			return nil, err
		}
		if res.Created {
			in.queued()
		}
		return &Submission{Evaluation: ev, Referral: res.Referral, Created: res.Created}, nil
	}
}

// deny records a refused share. When the student withdrew consent in this
// later version of a case, the earlier referral is cancelled as well, so the
// NHS service is told to stop acting on data it may no longer hold.
func (in *Intake) deny(ctx context.Context, rec *CaseRecord, ev *Evaluation, entry DecisionEntry, input *RetainedInput, latest StoredReferral, found bool) (*Submission, error) {
	if err := in.record(ctx, ev, entry, input); err != nil {
		return nil, err
	}
	sub := &Submission{Evaluation: ev}
	if found && rec.Consent.Decision == "withdrawn" && latest.Status != StatusCancelled && latest.Status != StatusRejected {
		cancelled, err := in.cancel(ctx, latest, entry.Client, CancelConsentWithdrawn)
		if err != nil {
			return nil, err
		}
		sub.Cancelled = &cancelled
	}
	return sub, nil
}

// Cancel withdraws a referral at the university's request: the referral
// becomes cancelled and the BaRS cancellation (the ServiceRequest again,
// status revoked) is queued. The cancellation is recorded as an action in
// the institution's decision chain.
func (in *Intake) Cancel(ctx context.Context, c *Client, referralID string) (StoredReferral, error) {
	ref, err := in.Store.Referral(ctx, c.Institution, referralID)
	if err != nil {
		return StoredReferral{}, err
	}
	return in.cancel(ctx, ref, c.ID, CancelRequested)
}

// cancel cancels ref on behalf of client `by` and records the action; reason
// is CancelRequested or CancelConsentWithdrawn.
func (in *Intake) cancel(ctx context.Context, ref StoredReferral, by, reason string) (StoredReferral, error) {
	if ref.Status == StatusCancelled {
		return ref, nil
	}
	if len(ref.Record) == 0 {
		return StoredReferral{}, Errorf(ECONFLICT, "the referral's content has been deleted under the retention policy; contact the NHS service directly to withdraw it")
	}
	var rec CaseRecord
	if err := json.Unmarshal(ref.Record, &rec); err != nil {
		return StoredReferral{}, Internal(err)
	}
	svc, ok := in.Evaluator.Registry.Lookup(ref.ServiceID)
	if !ok {
		return StoredReferral{}, Errorf(ECONFLICT, "the referral's service %q is no longer in the registry", ref.ServiceID)
	}
	d, err := in.decisionOf(ctx, ref)
	if err != nil {
		return StoredReferral{}, err
	}
	def, err := in.Evaluator.definition(ctx, svc)
	if err != nil {
		// A withdrawal must reach the service even while its definition
		// cannot be had: it goes under the definition the referral was
		// sent under.
		sent := definitionSent(ref.Bundle)
		if ErrorCode(err) != EUNAVAILABLE || sent == "" {
			return StoredReferral{}, err
		}
		def = &MessageDefinition{URL: sent}
	}
	at := in.now()
	bundle, err := in.Evaluator.Mapper.Message(ctx, MessageInput{Record: &rec, Decision: d, Service: svc, Source: in.Evaluator.Source, At: at, Revoke: true, Definition: def.URL})
	if err != nil {
		return StoredReferral{}, err
	}
	if err := in.Evaluator.gate(bundle); err != nil {
		return StoredReferral{}, err
	}
	cancelled, err := in.Store.Cancel(ctx, CancelRequest{Institution: ref.Institution, ReferralID: ref.ID, Bundle: bundle, Sender: SenderOf(rec.Institution), At: at})
	if err != nil {
		return cancelled, err
	}
	in.queued()
	if _, err := AppendAction(ctx, in.Store, ActionEntry{
		Action: ActionReferralCancel, By: by, Institution: ref.Institution, CaseID: ref.CaseID,
		ReferralID: ref.ID, Service: ref.ServiceID, Reason: reason,
	}, at); err != nil {
		return StoredReferral{}, err
	}
	return cancelled, nil
}

func (in *Intake) queued() {
	if in.Queued != nil {
		in.Queued()
	}
}

// decisionOf rebuilds the decision under which a referral was accepted, from
// its decision record, so that a cancellation carries the same categories.
func (in *Intake) decisionOf(ctx context.Context, ref StoredReferral) (*Decision, error) {
	r, err := in.Store.Decision(ctx, ref.Institution, ref.DecisionID)
	if ErrorCode(err) == ENOTFOUND {
		return nil, Internal(fmt.Errorf("decision record %s not found", ref.DecisionID))
	} else if err != nil {
		return nil, err
	}
	var e DecisionEntry
	if err := json.Unmarshal(r.Body, &e); err != nil {
		return nil, Internal(err)
	}
	return e.Decision(), nil
}

func (in *Intake) latest(ctx context.Context, rec *CaseRecord) (StoredReferral, bool, error) {
	latest, err := in.Store.LatestReferral(ctx, rec.Institution.UKPRN, rec.CaseID)
	if ErrorCode(err) == ENOTFOUND {
		return StoredReferral{}, false, nil
	}
	return latest, err == nil, err
}

// ownRecord refuses a record that names another institution than the
// client's: a university submits only its own students' referrals.
func ownRecord(c *Client, rec *CaseRecord) error {
	if c == nil || c.Institution == "" || rec.Institution.UKPRN != c.Institution {
		return &Error{Code: EFORBIDDEN, Message: "forbidden", Issues: []Issue{{
			Severity: "error", Type: "security", Expression: "institution.ukprn",
			Message: "institution.ukprn is not the institution this client is registered for",
		}}}
	}
	return nil
}

// DenialError renders a deny as the error a submitter gets: one issue per
// denying rule, the rule id as the issue's details code.
func DenialError(d *Decision) *Error {
	e := &Error{Code: EDENIED, Message: "the sharing policies refused this referral (decision " + d.ID + ")"}
	for _, r := range d.Rules {
		if r.Effect == EffectDeny {
			msg := r.Message
			if strings.TrimSpace(msg) == "" {
				// FHIR forbids empty strings; a rule without a message
				// still names itself.
				msg = "refused by rule " + r.ID
			}
			e.Issues = append(e.Issues, Issue{
				Severity: "error", Type: "business-rule", Message: msg,
				DetailsCode: r.ID, DetailsSystem: FHIRBase + "/CodeSystem/sharing-rule",
			})
		}
	}
	return e
}

// DecisionEntry is the body of a decision record: what an IG lead needs to
// answer what was shared, with whom, on what grounds, approved by whom and
// under which policy revision, and what was refused and why. It never holds
// clinical free text or a direct identifier of the student.
type DecisionEntry struct {
	DecisionID     string       `json:"decisionId"`
	Time           string       `json:"time"`
	DryRun         bool         `json:"dryRun,omitempty"`
	Client         string       `json:"client"`
	Institution    string       `json:"institution"`
	CaseID         string       `json:"caseId"`
	ReferralID     string       `json:"referralId,omitempty"`
	Student        string       `json:"student"`
	Outcome        string       `json:"outcome"`
	Allow          bool         `json:"allow"`
	Route          string       `json:"route"`
	Rules          []RuleResult `json:"rules"`
	Obligations    []Obligation `json:"obligations,omitempty"`
	LawfulBases    LawfulBasis  `json:"lawfulBases"`
	DataCategories []string     `json:"dataCategories"`
	Recipient      Recipient    `json:"recipient"`
	// Override is present on the override route: who decided and approved
	// (staff names and roles), when, and whether the student was told.
	Override       *OverrideEntry `json:"override,omitempty"`
	PolicyRevision string         `json:"policyRevision"`
}

// OverrideEntry is the override part of a decision record.
type OverrideEntry struct {
	Ground          string  `json:"ground"`
	DecidedBy       *Person `json:"decidedBy,omitempty"`
	ApprovedBy      *Person `json:"approvedBy,omitempty"`
	DecidedAt       string  `json:"decidedAt,omitempty"`
	StudentInformed string  `json:"studentInformed,omitempty"`
}

// NewDecisionEntry builds the decision record body for an evaluation.
func NewDecisionEntry(ev *Evaluation, c *Client, key []byte, dryRun bool) DecisionEntry {
	d, rec := ev.Decision, ev.Record
	e := DecisionEntry{
		DecisionID: d.ID, Time: d.Time, DryRun: dryRun,
		Institution: rec.Institution.UKPRN, CaseID: rec.CaseID,
		Student: StudentPseudonym(key, rec), Outcome: ev.Outcome, Allow: d.Allow, Route: d.Route,
		Rules: d.Rules, Obligations: d.Obligations, LawfulBases: d.LawfulBases,
		DataCategories: d.DataCategories, Recipient: d.Recipient, PolicyRevision: d.PolicyRevision,
	}
	if c != nil {
		e.Client = c.ID
	}
	if o := rec.Override; o != nil {
		e.Override = &OverrideEntry{Ground: o.Ground, DecidedBy: o.DecidedBy, ApprovedBy: o.ApprovedBy, DecidedAt: o.DecidedAt}
		if o.StudentInformed != nil {
			e.Override.StudentInformed = o.StudentInformed.Status
		}
	}
	return e
}

// Decision rebuilds the decision document from a decision record.
func (e DecisionEntry) Decision() *Decision {
	return &Decision{
		ID: e.DecisionID, Allow: e.Allow, Route: e.Route, Rules: e.Rules, Obligations: e.Obligations,
		LawfulBases: e.LawfulBases, DataCategories: e.DataCategories, Recipient: e.Recipient,
		Time: e.Time, PolicyRevision: e.PolicyRevision,
	}
}

// StudentPseudonym is the keyed pseudonym of the student of rec: an HMAC of
// the NHS number when there is one, else of the institution and student id.
// Without the key it cannot be reversed or recomputed.
func StudentPseudonym(key []byte, rec *CaseRecord) string {
	var subject string
	switch {
	case rec.Student.NHSNumber != "":
		subject = "nhs:" + rec.Student.NHSNumber
	case rec.Student.StudentID != "":
		subject = "student:" + rec.Institution.UKPRN + ":" + strings.TrimSpace(rec.Student.StudentID)
	default:
		subject = "case:" + rec.Institution.UKPRN + ":" + rec.CaseID
	}
	m := hmac.New(sha256.New, key)
	m.Write([]byte(subject))
	return hex.EncodeToString(m.Sum(nil))
}

// DryRun evaluates body for client c as POST /v1/referrals/$evaluate does:
// nothing is stored or sent, but the decision is recorded, marked as a dry
// run, because an IG lead must see every decision the gateway made. Invalid
// input is an Evaluation with Outcome "invalid", as in Evaluate; a record of
// another institution is EFORBIDDEN.
func (in *Intake) DryRun(ctx context.Context, c *Client, body []byte, at time.Time) (*Evaluation, error) {
	ev, err := in.Evaluator.Evaluate(ctx, body, at)
	if err != nil || ev.Record == nil {
		return ev, err
	}
	if err := ownRecord(c, ev.Record); err != nil {
		return nil, err
	}
	if ev.Decision == nil || in.Store == nil {
		return ev, nil
	}
	input, err := NewRetainedInput(ev, in.Evaluator.Registry, nil, true)
	if err != nil {
		return nil, err
	}
	if err := in.record(ctx, ev, NewDecisionEntry(ev, c, in.PseudonymKey, true), input); err != nil {
		return nil, err
	}
	return ev, nil
}

// record appends a decision that stores no referral (a deny or a dry run)
// to its institution's chain, with the input it was made on.
func (in *Intake) record(ctx context.Context, ev *Evaluation, entry DecisionEntry, input *RetainedInput) error {
	b, err := json.Marshal(entry)
	if err != nil {
		return Internal(err)
	}
	_, err = in.Store.AppendDecision(ctx, DecisionRecord{Institution: ev.Record.Institution.UKPRN, DecisionID: ev.Decision.ID, At: in.now(), Body: b, Input: input})
	return err
}
