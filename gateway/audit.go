package gateway

import (
	"context"
	"encoding/base64"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
)

// GatewayChain is the reserved institution id of the gateway's own decision
// chain, which records gateway-wide operator actions (policy reloads,
// retention runs). A UKPRN is eight digits, so it can never collide with an
// institution's chain.
const GatewayChain = "gateway"

// Kinds of audit record, as the audit trail names them.
const (
	// RecordReferral is a decision on a submitted referral (allowed and
	// accepted, or refused).
	RecordReferral = "referral"
	// RecordDryRun is a decision made by POST /v1/referrals/$evaluate:
	// nothing was stored or sent, but the decision is on record.
	RecordDryRun = "dry-run"
	// RecordAction is an operator's or a university's action on something
	// already decided: a cancellation, an outbox retry or drop, a policy
	// reload, a retention run.
	RecordAction = "action"
)

// Actions recorded in the chains. Each is a code, never free text, so that
// a record can hold no personal data whatever an operator typed.
const (
	ActionReferralCancel = "referral-cancel" // a university withdrew a referral
	ActionOutboxRetry    = "outbox-retry"    // an operator re-queued a failed or dead message
	ActionOutboxDrop     = "outbox-drop"     // an operator gave up on a message
	ActionPolicyReload   = "policy-reload"   // the policy set in force changed (gateway chain)
	ActionRetentionPurge = "retention-purge" // clinical content was deleted under the retention policy (gateway chain)
	ActionChainKey       = "chain-key"       // the chain's keyed segment starts (Reason: the key id)
	// ActionStudentInformed: the university told the student of a
	// delivered share (T-01); Reason is the method, InformedAt the time.
	ActionStudentInformed = "student-informed"
	ActionPolicyReplay    = "policy-replay" // a candidate policy set was replayed against the retained decisions (gateway chain)
)

// Reasons of a referral-cancel action.
const (
	CancelRequested        = "requested"         // the university asked (POST …/$cancel)
	CancelConsentWithdrawn = "consent-withdrawn" // a later version withdrew consent
)

// ActionEntry is the body of an action record: who did what to which
// referral or message, and when. Like a DecisionEntry it holds no clinical
// free text and no direct identifier; an operator's free-text reason stays
// on the outbox message (which retention purges), not in the chain (which is
// kept for ever).
type ActionEntry struct {
	// Type is always "action"; it tells an action record from a decision
	// record, whose body has no type.
	Type     string `json:"type"`
	ActionID string `json:"actionId"`
	Action   string `json:"action"`
	Time     string `json:"time"`
	// By is the client id (API) or the operator (CLI --by, or "os:USER").
	By          string `json:"by"`
	Institution string `json:"institution"`
	CaseID      string `json:"caseId,omitempty"`
	ReferralID  string `json:"referralId,omitempty"`
	MessageID   string `json:"messageId,omitempty"`
	Service     string `json:"service,omitempty"`
	// Reason is a code (CancelRequested, CancelConsentWithdrawn), never text.
	Reason string `json:"reason,omitempty"`
	// PolicyRevision and PreviousRevision are set on a policy reload.
	PolicyRevision   string `json:"policyRevision,omitempty"`
	PreviousRevision string `json:"previousRevision,omitempty"`
	// Count is how many referrals a retention run purged.
	Count int `json:"count,omitempty"`
	// InformedAt is when the student was told (student-informed), RFC 3339.
	InformedAt string `json:"informedAt,omitempty"`
	// Replay holds the counts of a policy replay (PolicyRevision is the
	// candidate's revision, PreviousRevision the one in force).
	Replay *ReplayTotals `json:"replay,omitempty"`
}

// AppendAction appends an action to its institution's chain (a.Institution,
// or GatewayChain for gateway-wide actions). ActionID and Time are filled in
// when empty.
func AppendAction(ctx context.Context, log AuditTrail, a ActionEntry, at time.Time) (DecisionRecord, error) {
	if log == nil {
		return DecisionRecord{}, Internal(fmt.Errorf("no decision log to record action %s", a.Action))
	}
	rec, err := NewActionRecord(a, at)
	if err != nil {
		return DecisionRecord{}, err
	}
	return log.AppendDecision(ctx, rec)
}

// NewActionRecord is the decision record of an action, not yet appended:
// for a store that appends it in the transaction that does the action.
// ActionID and Time are filled in when empty.
func NewActionRecord(a ActionEntry, at time.Time) (DecisionRecord, error) {
	a.Type = RecordAction
	if a.ActionID == "" {
		a.ActionID = uuid.NewString()
	}
	if a.Time == "" {
		a.Time = at.UTC().Format(time.RFC3339)
	}
	if a.Institution == "" || a.Action == "" {
		return DecisionRecord{}, Errorf(EINVALID, "an action record needs an institution and an action")
	}
	b, err := json.Marshal(a)
	if err != nil {
		return DecisionRecord{}, Internal(err)
	}
	return DecisionRecord{Institution: a.Institution, DecisionID: a.ActionID, At: at, Body: b}, nil
}

// AuditRecord is one record of a chain as the audit trail shows it: its
// place in the chain and its parsed body.
type AuditRecord struct {
	Seq int64 `json:"seq"`
	// ID is the decision id, or the action id of an action.
	ID          string    `json:"id"`
	Kind        string    `json:"kind"` // RecordReferral, RecordDryRun or RecordAction
	Institution string    `json:"institution"`
	RecordedAt  time.Time `json:"recordedAt"`
	PrevHash    string    `json:"prevHash"`
	Hash        string    `json:"hash"`
	// Exactly one of Decision and Action is set.
	Decision *DecisionEntry `json:"decision,omitempty"`
	Action   *ActionEntry   `json:"action,omitempty"`
}

// ParseAuditRecord reads a stored decision record. A body that is not a
// decision or action entry is an internal error: only the gateway writes
// the chain.
func ParseAuditRecord(r DecisionRecord) (AuditRecord, error) {
	out := AuditRecord{Seq: r.Seq, ID: r.DecisionID, Institution: r.Institution, RecordedAt: r.At, PrevHash: r.PrevHash, Hash: r.Hash}
	// One pass reads a decision (the common case) and the type; an action
	// is read again as what it is.
	var peek struct {
		Type string `json:"type"`
		DecisionEntry
	}
	if err := json.Unmarshal(r.Body, &peek); err != nil {
		return out, Internal(fmt.Errorf("decision record %s/%d: %w", r.Institution, r.Seq, err))
	}
	switch peek.Type {
	case RecordAction:
		var a ActionEntry
		if err := json.Unmarshal(r.Body, &a); err != nil {
			return out, Internal(fmt.Errorf("action record %s/%d: %w", r.Institution, r.Seq, err))
		}
		out.Kind, out.Action = RecordAction, &a
	case "":
		e := peek.DecisionEntry
		out.Kind, out.Decision = RecordReferral, &e
		if e.DryRun {
			out.Kind = RecordDryRun
		}
	default:
		return out, Internal(fmt.Errorf("decision record %s/%d: unknown type %q", r.Institution, r.Seq, peek.Type))
	}
	return out, nil
}

// Override reports whether the record is a decision on the override route.
func (r AuditRecord) Override() bool {
	return r.Decision != nil && r.Decision.Route != "" && r.Decision.Route != "consent"
}

// DeniedBy lists the ids of the rules that refused the share.
func (r AuditRecord) DeniedBy() []string {
	var out []string
	if r.Decision != nil {
		for _, rr := range r.Decision.Rules {
			if rr.Effect == EffectDeny {
				out = append(out, rr.ID)
			}
		}
	}
	return out
}

// Query selects audit records. Every filter is optional; they combine with
// AND. Student holds pseudonyms (any of them matches), never an identifier:
// Audit.StudentPseudonyms computes them.
type Query struct {
	// From and To bound the recording time: From <= t < To.
	From, To time.Time
	// Kind is RecordReferral, RecordDryRun or RecordAction.
	Kind string
	// Outcome is "allow" or "deny".
	Outcome string
	// RuleID matches decisions that cite the rule; Effect, when set, only
	// those where the rule had that effect (allow, deny, obligation).
	RuleID string
	Effect string
	// Route is "consent", an override ground, or RouteAnyOverride for
	// every share without consent.
	Route string
	// Recipient is a service id or an ODS code.
	Recipient string
	CaseID    string
	Students  []string
	// Order is "desc" (newest first, the default) or "asc" (chain order).
	Order string
	// Cursor continues a search where the previous page ended (Page.Next).
	Cursor string
	// Limit is the page size: DefaultPageSize when 0, at most MaxPageSize.
	Limit int
}

// Page sizes of a search.
const (
	DefaultPageSize = 50
	MaxPageSize     = 500
)

// scanBatch is how many records a search reads from the store at a time.
const scanBatch = 500

// Validate checks a query's values, naming each bad one by its parameter.
func (q Query) Validate() error {
	var issues []Issue
	bad := func(field, msg string) { issues = append(issues, searchIssue(field, msg)) }
	oneOf := func(field, v string, allowed ...string) {
		if v != "" && !slices.Contains(allowed, v) {
			bad(field, field+" must be one of "+strings.Join(allowed, ", "))
		}
	}
	oneOf("kind", q.Kind, RecordReferral, RecordDryRun, RecordAction)
	oneOf("outcome", q.Outcome, OutcomeAllow, OutcomeDeny)
	oneOf("effect", q.Effect, EffectAllow, EffectDeny, EffectObligation)
	oneOf("route", q.Route, append([]string{"consent", RouteAnyOverride}, OverrideGrounds...)...)
	oneOf("order", q.Order, "asc", "desc")
	if q.Effect != "" && q.RuleID == "" {
		bad("effect", "effect narrows ruleId: give a ruleId with it")
	}
	if !q.From.IsZero() && !q.To.IsZero() && !q.From.Before(q.To) {
		bad("to", "to must be after from")
	}
	if q.Limit < 0 || q.Limit > MaxPageSize {
		bad("limit", fmt.Sprintf("limit must be between 1 and %d", MaxPageSize))
	}
	for _, f := range []struct{ name, v string }{{"ruleId", q.RuleID}, {"recipient", q.Recipient}, {"caseId", q.CaseID}} {
		if len(f.v) > 200 {
			bad(f.name, f.name+" is too long")
		}
	}
	if _, _, err := parseCursor(q.Cursor); err != nil {
		bad("cursor", "cursor is not one this server gave; start the search again without it")
	}
	if len(issues) > 0 {
		return &Error{Code: EINVALID, Message: "bad search", Issues: issues}
	}
	return nil
}

func searchIssue(field, msg string) Issue {
	return Issue{Severity: "error", Type: "value", Expression: field, Message: msg}
}

// badSearch is the error of a search parameter that cannot be used.
func badSearch(field, msg string) error {
	return &Error{Code: EINVALID, Message: "bad search", Issues: []Issue{searchIssue(field, msg)}}
}

// Match reports whether a record passes the query's filters (not its
// cursor).
func (q Query) Match(r AuditRecord) bool {
	if (!q.From.IsZero() && r.RecordedAt.Before(q.From)) || (!q.To.IsZero() && !r.RecordedAt.Before(q.To)) {
		return false
	}
	if q.Kind != "" && r.Kind != q.Kind {
		return false
	}
	if a := r.Action; a != nil {
		// Actions carry no outcome, rules, route or student: a query on
		// those is about decisions.
		if q.Outcome != "" || q.RuleID != "" || q.Route != "" || len(q.Students) > 0 {
			return false
		}
		return (q.CaseID == "" || a.CaseID == q.CaseID) && (q.Recipient == "" || a.Service == q.Recipient)
	}
	d := r.Decision
	if d == nil {
		return false
	}
	switch {
	case q.Outcome != "" && d.Outcome != q.Outcome:
		return false
	case q.Route == RouteAnyOverride && (d.Route == "" || d.Route == "consent"):
		return false
	case q.Route != "" && q.Route != RouteAnyOverride && d.Route != q.Route:
		return false
	case q.CaseID != "" && d.CaseID != q.CaseID:
		return false
	case q.Recipient != "" && !strings.EqualFold(d.Recipient.Service, q.Recipient) && !strings.EqualFold(d.Recipient.ODSCode, q.Recipient):
		return false
	case len(q.Students) > 0 && !slices.Contains(q.Students, d.Student):
		return false
	}
	if q.RuleID != "" {
		return slices.ContainsFunc(d.Rules, func(rr RuleResult) bool {
			return strings.EqualFold(rr.ID, q.RuleID) && (q.Effect == "" || rr.Effect == q.Effect)
		})
	}
	return true
}

// Page is one page of search results. Next, when set, is the cursor of the
// following page; it is set whenever more records may match (the following
// page can then still be empty in ascending order).
type Page struct {
	Institution string        `json:"institution"`
	Order       string        `json:"order"`
	Records     []AuditRecord `json:"records"`
	Next        string        `json:"next,omitempty"`
}

// Cursors are opaque to clients: base64url of "v1:ORDER:SEQ". In ascending
// order SEQ is the last record returned; in descending order it is the
// oldest record returned, and the next page holds records before it.
func makeCursor(order string, seq int64) string {
	return base64.RawURLEncoding.EncodeToString([]byte("v1:" + order + ":" + strconv.FormatInt(seq, 10)))
}

func parseCursor(c string) (order string, seq int64, err error) {
	if c == "" {
		return "", 0, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return "", 0, err
	}
	parts := strings.Split(string(b), ":")
	if len(parts) != 3 || parts[0] != "v1" || (parts[1] != "asc" && parts[1] != "desc") {
		return "", 0, fmt.Errorf("bad cursor")
	}
	seq, err = strconv.ParseInt(parts[2], 10, 64)
	if err != nil || seq < 0 {
		return "", 0, fmt.Errorf("bad cursor")
	}
	return parts[1], seq, nil
}

// RouteAnyOverride is the route filter that finds every share attempted
// without consent, whatever its ground: what an IG lead reviews first.
const RouteAnyOverride = "override"

// Audit is the IG leads' view of the decision chains: search, read, export
// and verify their own institution's records. It reads the chain through
// AuditTrail.Decisions in windows and filters in Go, so that it works over
// any store adapter unchanged: a page costs the records read until it is
// full (the whole chain for a filter that matches nothing), newest first
// by reading backwards from the head.
type Audit struct {
	Log AuditTrail
	// PseudonymKey is the key of the student pseudonym (Intake's), so that
	// a search by NHS number or student id finds the records.
	PseudonymKey []byte
	// Checkpoints, when set, are the signed checkpoints Verify holds the
	// chain to.
	Checkpoints *CheckpointDir
}

// institutionOf returns the chain a client may read: its own institution's,
// and only for IG auditors.
func institutionOf(c *Client) (string, error) {
	if c == nil || !c.Has(RoleAuditor) || c.Institution == "" {
		return "", &Error{Code: EFORBIDDEN, Message: "forbidden", Issues: []Issue{{
			Severity: "error", Type: "forbidden", Message: "the audit trail is open to IG auditors of an institution only",
		}}}
	}
	return c.Institution, nil
}

func (a *Audit) ready() error {
	if a == nil || a.Log == nil {
		return Errorf(EUNAVAILABLE, "the audit trail is not available: no store is configured")
	}
	return nil
}

// open returns the chain client c may read, once the trail is available.
func (a *Audit) open(c *Client) (string, error) {
	inst, err := institutionOf(c)
	if err != nil {
		return "", err
	}
	return inst, a.ready()
}

// stopped is the error of a read of the chain whose request was cancelled
// or ran out of time (the server's write timeout bounds every request), so
// that no loop over the chain outlives the request that asked for it.
func stopped(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return &Error{Code: EUNAVAILABLE, Message: "the request was cancelled or ran out of time; narrow the search (from, to) and try again", Err: err}
	}
	return nil
}

// scan reads the chain in order from after afterSeq and calls fn for each
// parsed record until fn returns false.
func (a *Audit) scan(ctx context.Context, institution string, afterSeq int64, fn func(AuditRecord) bool) error {
	for {
		if err := stopped(ctx); err != nil {
			return err
		}
		recs, err := a.Log.Decisions(ctx, institution, afterSeq, scanBatch)
		if err != nil {
			return err
		}
		for _, r := range recs {
			ar, err := ParseAuditRecord(r)
			if err != nil {
				return err
			}
			if !fn(ar) {
				return nil
			}
		}
		if len(recs) < scanBatch {
			return nil
		}
		afterSeq = recs[len(recs)-1].Seq
	}
}

// Search returns one page of the client's institution's records that match
// q.
func (a *Audit) Search(ctx context.Context, c *Client, q Query) (Page, error) {
	inst, err := a.open(c)
	if err != nil {
		return Page{}, err
	}
	if err := q.Validate(); err != nil {
		return Page{}, err
	}
	if q.Order == "" {
		q.Order = "desc"
	}
	limit := q.Limit
	if limit == 0 {
		limit = DefaultPageSize
	}
	corder, cseq, _ := parseCursor(q.Cursor)
	if q.Cursor != "" && corder != q.Order {
		return Page{}, badSearch("cursor", "the cursor belongs to a search in the other order")
	}
	// A cursor is a position this server gave, so it lies within the chain
	// (a descending one on a record, at 1 or above): one beyond the head is
	// forged and refused, rather than read down from, window by empty
	// window.
	var head int64
	if q.Cursor != "" || q.Order == "desc" {
		if head, err = a.head(ctx, inst); err != nil {
			return Page{}, err
		}
	}
	if q.Cursor != "" && (cseq > head || (q.Order == "desc" && cseq < 1)) {
		return Page{}, badSearch("cursor", "the cursor is beyond the end of the audit trail; start the search again without it")
	}
	page := Page{Institution: inst, Order: q.Order, Records: []AuditRecord{}}
	if q.Order == "asc" {
		err = a.scan(ctx, inst, cseq, func(r AuditRecord) bool {
			if !q.Match(r) {
				return true
			}
			page.Records = append(page.Records, r)
			if len(page.Records) == limit {
				page.Next = makeCursor("asc", r.Seq)
				return false
			}
			return true
		})
		return page, err
	}
	// Newest first: read the chain backwards in windows below the cursor
	// (or the head), one more match than the page to know if there is a
	// next.
	upper := cseq // exclusive
	if q.Cursor == "" {
		upper = head + 1
	}
	for upper > 1 && len(page.Records) <= limit {
		if err := stopped(ctx); err != nil {
			return Page{}, err
		}
		lo := max(0, upper-1-scanBatch)
		recs, err := a.Log.Decisions(ctx, inst, lo, int(upper-1-lo))
		if err != nil {
			return Page{}, err
		}
		for i := len(recs) - 1; i >= 0 && len(page.Records) <= limit; i-- {
			if recs[i].Seq >= upper {
				continue // past a gap left by tampering; Verify reports it
			}
			r, err := ParseAuditRecord(recs[i])
			if err != nil {
				return Page{}, err
			}
			if q.Match(r) {
				page.Records = append(page.Records, r)
			}
		}
		upper = lo + 1
	}
	if len(page.Records) > limit {
		page.Records = page.Records[:limit]
		page.Next = makeCursor("desc", page.Records[limit-1].Seq)
	}
	return page, nil
}

// head finds the highest seq of a chain with O(log n) one-record reads:
// "a record at or after p exists" only turns false once as p grows.
func (a *Audit) head(ctx context.Context, inst string) (int64, error) {
	var err error
	exists := func(p int64) bool {
		if err == nil {
			err = stopped(ctx)
		}
		if err != nil {
			return false
		}
		var recs []DecisionRecord
		recs, err = a.Log.Decisions(ctx, inst, p-1, 1)
		return len(recs) > 0
	}
	hi := int64(1)
	for exists(hi) {
		hi *= 2
	}
	lo := hi / 2 // exists(lo) holds, or lo is 0
	i := sort.Search(int(hi-lo-1), func(i int) bool { return !exists(lo + 1 + int64(i)) })
	return lo + int64(i), err
}

// Each calls fn with every record of the client's institution that matches
// q (its cursor and limit ignored), in chain order, for exports.
func (a *Audit) Each(ctx context.Context, c *Client, q Query, fn func(AuditRecord) error) error {
	inst, err := a.open(c)
	if err != nil {
		return err
	}
	q.Cursor, q.Limit = "", 0
	if err := q.Validate(); err != nil {
		return err
	}
	var ferr error
	err = a.scan(ctx, inst, 0, func(r AuditRecord) bool {
		if q.Match(r) {
			ferr = fn(r)
		}
		return ferr == nil
	})
	if err != nil {
		return err
	}
	return ferr
}

// Record returns the record with decision (or action) id id in the
// client's institution's chain. The same decision id can be recorded more
// than once (a dry run repeated with the same `at`): seq picks one (0 means
// the latest), and others lists the positions of the rest.
func (a *Audit) Record(ctx context.Context, c *Client, id string, seq int64) (rec AuditRecord, others []int64, err error) {
	inst, err := a.open(c)
	if err != nil {
		return AuditRecord{}, nil, err
	}
	var seqs []int64
	var pick *AuditRecord
	err = a.scan(ctx, inst, 0, func(r AuditRecord) bool {
		if r.ID == id {
			seqs = append(seqs, r.Seq)
			if seq == 0 || r.Seq == seq {
				pick = &r
			}
		}
		return true
	})
	if err != nil {
		return AuditRecord{}, nil, err
	}
	if pick == nil {
		return AuditRecord{}, nil, Errorf(ENOTFOUND, "no decision %s in this institution's audit trail", id)
	}
	for _, s := range seqs {
		if s != pick.Seq {
			others = append(others, s)
		}
	}
	return *pick, others, nil
}

// Verify checks the client's institution's chain, and holds it to the
// newest checkpoint.
func (a *Audit) Verify(ctx context.Context, c *Client) (ChainVerification, error) {
	inst, err := a.open(c)
	if err != nil {
		return ChainVerification{}, err
	}
	v, err := a.Log.Verify(ctx, inst)
	if err != nil || a.Checkpoints == nil {
		return v, err
	}
	cp, err := a.Checkpoints.Latest()
	if err != nil {
		v.OK, v.Problem, v.Detail = false, ChainCheckpoint, err.Error()
		return v, nil
	}
	return v, cp.Check(ctx, a.Log, &v)
}

// StudentPseudonyms returns the pseudonyms under which the client's
// institution's records name a student, from an NHS number, a student id
// or both. A record is keyed by the NHS number when its case record had
// one, else by the student id: give both to find every record. Neither
// value is echoed in an error, and the caller must not log them.
func (a *Audit) StudentPseudonyms(c *Client, nhsNumber, studentID string) ([]string, error) {
	inst, err := institutionOf(c)
	if err != nil {
		return nil, err
	}
	var out []string
	if nhs := strings.NewReplacer(" ", "", "-", "").Replace(nhsNumber); nhs != "" {
		if !ValidNHSNumber(nhs) {
			return nil, badSearch("nhsNumber", "nhsNumber is not a valid NHS number (ten digits with a correct check digit)")
		}
		out = append(out, StudentPseudonym(a.PseudonymKey, &CaseRecord{Institution: Institution{UKPRN: inst}, Student: Student{NHSNumber: nhs}}))
	}
	if sid := strings.TrimSpace(studentID); sid != "" {
		if len(sid) > 200 {
			return nil, badSearch("studentId", "studentId is too long")
		}
		out = append(out, StudentPseudonym(a.PseudonymKey, &CaseRecord{Institution: Institution{UKPRN: inst}, Student: Student{StudentID: sid}}))
	}
	return out, nil
}

// PolicyReloaded records in the gateway chain that the policy set in force
// changed from one revision to another. It is the hook for the policy
// reload: call it after a reload took effect, with who asked for it.
func (a *Audit) PolicyReloaded(ctx context.Context, by, from, to string, at time.Time) error {
	if err := a.ready(); err != nil {
		return err
	}
	_, err := AppendAction(ctx, a.Log, ActionEntry{
		Action: ActionPolicyReload, By: by, Institution: GatewayChain,
		PolicyRevision: to, PreviousRevision: from,
	}, at)
	return err
}

// CSVHeader is the first row of a CSV export; every column is an id, a
// code or a time, plus the rules' plain-English messages.
var CSVHeader = []string{
	"seq", "recordedAt", "kind", "id", "decisionTime", "client", "institution", "caseId", "referralId",
	"student", "outcome", "route", "deniedBy", "rules", "article6", "article9", "dpaSchedule1",
	"dataCategories", "recipientService", "recipientOdsCode", "recipientName",
	"overrideDecidedBy", "overrideApprovedBy", "overrideDecidedAt", "studentInformed",
	"policyRevision", "action", "actionBy", "messageId", "hash", "prevHash",
}

// AuditCSV writes audit records as CSV (RFC 4180) for spreadsheets. Cells
// that a spreadsheet would run as a formula are prefixed with a quote.
type AuditCSV struct{ w *csv.Writer }

// NewAuditCSV returns a writer of audit records to w, header first.
func NewAuditCSV(w io.Writer) *AuditCSV {
	c := &AuditCSV{w: csv.NewWriter(w)}
	c.w.Write(CSVHeader) //nolint:errcheck // the writer keeps a write error, and Close returns it
	return c
}

// Write writes one record.
func (c *AuditCSV) Write(r AuditRecord) error { return c.w.Write(CSVRow(r)) }

// Close flushes what was written.
func (c *AuditCSV) Close() error {
	c.w.Flush()
	return c.w.Error()
}

// CSVRow is one record as a CSV row, in CSVHeader's order.
func CSVRow(r AuditRecord) []string {
	row := make(map[string]string, len(CSVHeader))
	row["seq"] = strconv.FormatInt(r.Seq, 10)
	row["recordedAt"] = r.RecordedAt.UTC().Format(time.RFC3339Nano)
	row["kind"], row["id"], row["institution"] = r.Kind, r.ID, r.Institution
	row["hash"], row["prevHash"] = r.Hash, r.PrevHash
	if d := r.Decision; d != nil {
		row["decisionTime"], row["client"], row["caseId"], row["referralId"] = d.Time, d.Client, d.CaseID, d.ReferralID
		row["student"], row["outcome"], row["route"] = d.Student, d.Outcome, d.Route
		row["deniedBy"] = strings.Join(r.DeniedBy(), ";")
		rules := make([]string, 0, len(d.Rules))
		for _, rr := range d.Rules {
			rules = append(rules, rr.ID+" "+rr.Effect+": "+rr.Message)
		}
		row["rules"] = strings.Join(rules, "\n")
		row["article6"], row["article9"], row["dpaSchedule1"] = d.LawfulBases.Article6, d.LawfulBases.Article9, d.LawfulBases.DPASchedule1
		row["dataCategories"] = strings.Join(d.DataCategories, ";")
		row["recipientService"], row["recipientOdsCode"], row["recipientName"] = d.Recipient.Service, d.Recipient.ODSCode, d.Recipient.Name
		row["policyRevision"] = d.PolicyRevision
		if o := d.Override; o != nil {
			row["overrideDecidedBy"], row["overrideApprovedBy"] = personText(o.DecidedBy), personText(o.ApprovedBy)
			row["overrideDecidedAt"], row["studentInformed"] = o.DecidedAt, o.StudentInformed
		}
	}
	if a := r.Action; a != nil {
		row["decisionTime"], row["caseId"], row["referralId"] = a.Time, a.CaseID, a.ReferralID
		row["action"], row["actionBy"], row["messageId"] = a.Action, a.By, a.MessageID
		row["recipientService"], row["policyRevision"] = a.Service, a.PolicyRevision
		if a.Action == ActionStudentInformed {
			row["studentInformed"] = a.Reason + " " + a.InformedAt // how and when the student was told
		}
	}
	out := make([]string, len(CSVHeader))
	for i, h := range CSVHeader {
		out[i] = csvSafe(row[h])
	}
	return out
}

func personText(p *Person) string {
	if p == nil {
		return ""
	}
	return p.Name + " (" + p.Role + ")"
}

// csvSafe defuses a cell that a spreadsheet would evaluate as a formula
// (OWASP CSV injection).
func csvSafe(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}
