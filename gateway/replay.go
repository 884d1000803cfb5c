package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
)

// Policy replay: before an IG lead puts a changed policy set in force, the
// gateway decides every retained decision input again, under the set in
// force and under the candidate, and reports what would change. Both sets
// decide the same stored input (the validated record, the registry entry as
// it was, the receiver's MessageDefinition as it was resolved, the original
// decision time), so that the report shows the
// difference between the two sets and nothing else: a one-rule change shows
// exactly the decisions that rule changes, even when the policies or the
// registry have changed since the decisions were made. What was decided at
// the time is shown beside them, not compared.

// RetainedInput is what one decision was made on, kept with the content it
// belongs to (and purged with it) so that the decision can be replayed.
type RetainedInput struct {
	// DecidedAt is the decision time the policies saw.
	DecidedAt time.Time
	DryRun    bool
	// ReferralID is the referral an allowed share stored; empty for a
	// refused share or a dry run. The store sets it on accept.
	ReferralID string
	// Record is the case record as validated (its canonical JSON, which is
	// what the policies read as input.record).
	Record json.RawMessage
	// Service is the registry entry the record named, as the policies saw
	// it (input.service).
	Service ServiceSnapshot
	// Definition is the receiver's MessageDefinition the policies saw
	// (input.definition); nil when the decision had none.
	Definition *MessageDefinition
}

// valid reports whether the input is complete: a decision time, a JSON
// record and a hashed JSON registry entry.
func (in *RetainedInput) valid() bool {
	return !in.DecidedAt.IsZero() && json.Valid(in.Record) && in.Service.Hash != "" && json.Valid(in.Service.JSON)
}

// NewRetainedInput is the input of an evaluation to keep with its decision
// record. canonical is the record's canonical JSON when the caller has it
// (nil marshals it).
func NewRetainedInput(ev *Evaluation, reg *Registry, canonical []byte, dryRun bool) (*RetainedInput, error) {
	snap, ok := reg.Snapshot(ev.Service.ID)
	if !ok {
		return nil, Internal(fmt.Errorf("service %q has no registry snapshot", ev.Service.ID))
	}
	if canonical == nil {
		var err error
		if canonical, err = json.Marshal(ev.Record); err != nil {
			return nil, Internal(err)
		}
	}
	at, err := time.Parse(time.RFC3339, ev.Decision.Time)
	if err != nil {
		return nil, Internal(fmt.Errorf("decision time %q: %w", ev.Decision.Time, err))
	}
	return &RetainedInput{DecidedAt: at, DryRun: dryRun, Record: canonical, Service: snap, Definition: ev.Definition}, nil
}

// ReplayFilter selects the decisions to replay by recording time (From <=
// at < To; a zero bound is open) and, optionally, one institution.
type ReplayFilter struct {
	From, To    time.Time
	Institution string
}

// ReplaySource reads the decision chains with their retained inputs.
type ReplaySource interface {
	// ReplayDecisions calls fn with every record of the institutions'
	// chains (never the gateway's own) that the filter selects, its Input
	// set when it is still retained, until fn returns an error.
	ReplayDecisions(ctx context.Context, f ReplayFilter, fn func(DecisionRecord) error) error
}

// ReplayInput is one retained input as the policies read it.
type ReplayInput struct {
	Record    json.RawMessage
	Service   json.RawMessage
	ServiceID string
	At        time.Time
	// Definition is the MessageDefinition the decision was made with, nil
	// when it had none: the policies read it as the live decision did.
	Definition *MessageDefinition
}

// PolicyComparison decides inputs under the policy set in force and under
// a candidate set that is loaded and tested but never installed (the OPA
// adapter's Comparison).
type PolicyComparison interface {
	// Revisions are the revision in force and the candidate's.
	Revisions() (inForce, candidate string)
	// Tests is how many of the candidate's own Rego tests passed.
	Tests() int
	// DecideBoth decides in under both sets.
	DecideBoth(ctx context.Context, in ReplayInput) (inForce, candidate *Decision, err error)
	// DecideCandidate decides in under the candidate only.
	DecideCandidate(ctx context.Context, in ReplayInput) (*Decision, error)
}

// ReplayChanges counts the decisions that a candidate decides otherwise:
// an allowed share it refuses, a refused share it allows, and an allowed
// share (under both) that sends other data categories.
type ReplayChanges struct {
	AllowToDeny       int `json:"allowToDeny"`
	DenyToAllow       int `json:"denyToAllow"`
	CategoriesChanged int `json:"categoriesChanged"`
}

// ReplayTotals are a replay's counts: how many decisions were replayed,
// how many could not be (their input is past retention), and the changes.
// An action record of a replay carries them.
type ReplayTotals struct {
	Replayed         int `json:"replayed"`
	OutsideRetention int `json:"outsideRetention"`
	// InForceAsRecorded is how many of the replayed decisions were made
	// under the revision in force: the set in force decided that very
	// input then, so its decision record is its decision and only the
	// candidate decides again.
	InForceAsRecorded int `json:"inForceAsRecorded"`
	ReplayChanges
}

// ReplayOutcome is one column of a changed decision: the outcome, the
// rules that refused, and the data categories sent.
type ReplayOutcome struct {
	Outcome        string   `json:"outcome"`
	DeniedBy       []string `json:"deniedBy"`
	DataCategories []string `json:"dataCategories"`
	// PolicyRevision is the set that decided (the historical column only).
	PolicyRevision string `json:"policyRevision,omitempty"`
}

// ReplayChange is one decision the candidate decides otherwise than the set
// in force, with what was actually decided at the time beside them.
type ReplayChange struct {
	DecisionID  string    `json:"decisionId"`
	Institution string    `json:"institution"`
	DecidedAt   time.Time `json:"decidedAt"`
	DryRun      bool      `json:"dryRun,omitempty"`
	Route       string    `json:"route"`
	Service     string    `json:"service"`
	// Change is allow-to-deny, deny-to-allow or categories.
	Change string `json:"change"`
	// Rules are the ids of the rules behind the change (changedRules).
	Rules      []string      `json:"rules"`
	InForce    ReplayOutcome `json:"inForce"`
	Candidate  ReplayOutcome `json:"candidate"`
	Historical ReplayOutcome `json:"historical"`
}

// Kinds of change in a ReplayChange.
const (
	ChangeAllowToDeny = "allow-to-deny"
	ChangeDenyToAllow = "deny-to-allow"
	ChangeCategories  = "categories"
)

// ReplayReport is the result of a replay (the JSON of `gateway policy
// replay --json`).
type ReplayReport struct {
	InForceRevision   string    `json:"inForceRevision"`
	CandidateRevision string    `json:"candidateRevision"`
	CandidateTests    int       `json:"candidateTests"`
	From              time.Time `json:"from,omitzero"`
	To                time.Time `json:"to,omitzero"`
	Institution       string    `json:"institution,omitempty"`
	IncludeDryRuns    bool      `json:"includeDryRuns"`
	ReplayTotals
	// ByRule and ByRoute split the changes by rule id (a change counts for
	// every rule whose effect differs) and by route.
	ByRule  map[string]ReplayChanges `json:"byRule"`
	ByRoute map[string]ReplayChanges `json:"byRoute"`
	// Changed lists every changed decision, oldest first.
	Changed []ReplayChange `json:"changed"`
}

// ReplayQuery is what to replay.
type ReplayQuery struct {
	ReplayFilter
	IncludeDryRuns bool
}

// Replayer runs replays. Nothing it does is stored or sent, except the
// action record of each replay in the gateway's own chain (who, when, the
// candidate's revision, the counts).
type Replayer struct {
	Source ReplaySource
	Log    AuditTrail
	// Compare loads a candidate set from a directory (for the web page);
	// the OPA adapter's Decider.Compare.
	Compare func(ctx context.Context, fsys fs.FS) (PolicyComparison, error)
	// CandidatesDir holds candidate sets, one per subdirectory, that an
	// operator placed there for the web page (policies.candidatesDir).
	CandidatesDir string
	// Workers decide in parallel; 0 means GOMAXPROCS.
	Workers int
	// Now is the clock; tests fix it.
	Now func() time.Time
}

// Candidates lists the candidate sets in CandidatesDir by name.
func (r *Replayer) Candidates() ([]string, error) {
	if r == nil || r.CandidatesDir == "" {
		return nil, Errorf(EUNAVAILABLE, "no candidate directory is configured (policies.candidatesDir)")
	}
	entries, err := os.ReadDir(r.CandidatesDir)
	if err != nil {
		return nil, Internal(fmt.Errorf("read policies.candidatesDir: %w", err))
	}
	var out []string
	for _, e := range entries {
		if e.IsDir() && !strings.HasPrefix(e.Name(), ".") {
			out = append(out, e.Name())
		}
	}
	return out, nil
}

// ReplayCandidate replays the candidate set called name (one of
// Candidates) for client c, an IG auditor, over its own institution's
// decisions. A candidate that fails to compile or its tests is EINVALID.
func (r *Replayer) ReplayCandidate(ctx context.Context, c *Client, name string, q ReplayQuery) (*ReplayReport, error) {
	inst, err := institutionOf(c)
	if err != nil {
		return nil, err
	}
	names, err := r.Candidates()
	if err != nil {
		return nil, err
	}
	if !slices.Contains(names, name) {
		return nil, Errorf(ENOTFOUND, "no candidate policy set is called %q", name)
	}
	q.Institution = inst
	return r.ReplaySet(ctx, os.DirFS(filepath.Join(r.CandidatesDir, name)), q, c.ID)
}

// ReplaySet loads the candidate set in fsys (Compare) and replays it.
func (r *Replayer) ReplaySet(ctx context.Context, fsys fs.FS, q ReplayQuery, by string) (*ReplayReport, error) {
	if r == nil || r.Compare == nil {
		return nil, Errorf(EUNAVAILABLE, "policy replay is not available")
	}
	cmp, err := r.Compare(ctx, fsys)
	if err != nil {
		return nil, err
	}
	return r.Replay(ctx, cmp, q, by)
}

// replayItem is one retained decision to decide again.
type replayItem struct {
	rec   DecisionRecord
	entry *DecisionEntry
}

// replayed is one worker's share of a report.
type replayed struct {
	n, asRecorded, outside int
	changed                []ReplayChange
	// services maps each registry snapshot this worker has seen (its
	// JSON) to the service id it names: decisions share a few snapshots.
	services map[string]string
}

// replay reads one record of a chain and, when it is a decision to replay
// with its input retained, decides it again (its result in w).
func (w *replayed) replay(ctx context.Context, cmp PolicyComparison, inForce string, q ReplayQuery, rec DecisionRecord) error {
	ar, err := ParseAuditRecord(rec)
	if err != nil {
		return err
	}
	if ar.Decision == nil || (ar.Decision.DryRun && !q.IncludeDryRuns) {
		return nil
	}
	if rec.Input == nil {
		w.outside++
		return nil
	}
	ch, asRecorded, err := w.replayOne(ctx, cmp, inForce, replayItem{rec: rec, entry: ar.Decision})
	if err != nil {
		return err
	}
	w.n++
	if asRecorded {
		w.asRecorded++
	}
	if ch != nil {
		w.changed = append(w.changed, *ch)
	}
	return nil
}

// serviceID is the id of the service a registry snapshot describes.
func (w *replayed) serviceID(rec DecisionRecord) (string, error) {
	snap := rec.Input.Service.JSON
	if id, ok := w.services[string(snap)]; ok {
		return id, nil
	}
	var svc struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(snap, &svc); err != nil {
		return "", Internal(fmt.Errorf("decision %s: registry snapshot: %w", rec.DecisionID, err))
	}
	w.services[string(snap)] = svc.ID
	return svc.ID, nil
}

// Replay decides every selected decision that still has its input under
// both sets of cmp, reports the changes, and records the replay (by whom)
// in the gateway's chain.
func (r *Replayer) Replay(ctx context.Context, cmp PolicyComparison, q ReplayQuery, by string) (*ReplayReport, error) {
	if r == nil || r.Source == nil {
		return nil, Errorf(EUNAVAILABLE, "policy replay is not available: no store is configured")
	}
	if !q.To.IsZero() && !q.From.Before(q.To) {
		return nil, badSearch("to", "to must be after from")
	}
	inForce, candidate := cmp.Revisions()
	rep := &ReplayReport{
		InForceRevision: inForce, CandidateRevision: candidate, CandidateTests: cmp.Tests(),
		From: q.From, To: q.To, Institution: q.Institution, IncludeDryRuns: q.IncludeDryRuns,
		ByRule: map[string]ReplayChanges{}, ByRoute: map[string]ReplayChanges{}, Changed: []ReplayChange{},
	}
	parent := ctx
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	items := make(chan DecisionRecord, 256)
	workers := r.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	results := make([]replayed, workers)
	var wg sync.WaitGroup
	for w := range workers {
		results[w].services = map[string]string{}
		wg.Go(func() {
			for rec := range items {
				if err := results[w].replay(ctx, cmp, inForce, q, rec); err != nil {
					cancel(err)
				}
			}
		})
	}
	// The store is read on this goroutine while the workers parse and
	// decide what it has read, so the read hides behind the deciding.
	err := r.Source.ReplayDecisions(ctx, q.ReplayFilter, func(rec DecisionRecord) error {
		select {
		case items <- rec:
			return nil
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	})
	close(items)
	wg.Wait()
	if err == nil {
		err = context.Cause(ctx) // a worker's error, or the caller gave up
	}
	if err != nil {
		if serr := stopped(parent); serr != nil {
			return nil, serr
		}
		return nil, err
	}
	for _, res := range results {
		rep.Replayed += res.n
		rep.OutsideRetention += res.outside
		rep.InForceAsRecorded += res.asRecorded
		rep.Changed = append(rep.Changed, res.changed...)
	}
	sort.Slice(rep.Changed, func(i, j int) bool {
		a, b := rep.Changed[i], rep.Changed[j]
		if !a.DecidedAt.Equal(b.DecidedAt) {
			return a.DecidedAt.Before(b.DecidedAt)
		}
		return a.Institution+"/"+a.DecisionID < b.Institution+"/"+b.DecisionID
	})
	for _, ch := range rep.Changed {
		rep.ReplayChanges.add(ch.Change)
		for _, id := range ch.Rules {
			c := rep.ByRule[id]
			c.add(ch.Change)
			rep.ByRule[id] = c
		}
		c := rep.ByRoute[ch.Route]
		c.add(ch.Change)
		rep.ByRoute[ch.Route] = c
	}
	if err := r.record(ctx, rep, by); err != nil {
		return nil, err
	}
	return rep, nil
}

func (c *ReplayChanges) add(change string) {
	switch change {
	case ChangeAllowToDeny:
		c.AllowToDeny++
	case ChangeDenyToAllow:
		c.DenyToAllow++
	case ChangeCategories:
		c.CategoriesChanged++
	}
}

// record appends the replay to the gateway's chain.
func (r *Replayer) record(ctx context.Context, rep *ReplayReport, by string) error {
	now := time.Now
	if r.Now != nil {
		now = r.Now
	}
	totals := rep.ReplayTotals
	_, err := AppendAction(ctx, r.Log, ActionEntry{
		Action: ActionPolicyReplay, By: by, Institution: GatewayChain,
		PolicyRevision: rep.CandidateRevision, PreviousRevision: rep.InForceRevision, Replay: &totals,
	}, now().UTC())
	return err
}

// replayOne decides one retained input under both sets; the change is nil
// when the two agree. A decision recorded under the revision in force
// (inForce) is that set's decision on this very input, so only the
// candidate decides it again (asRecorded): the policies are a function of
// their input, and the revision hashes every policy and data file.
func (w *replayed) replayOne(ctx context.Context, cmp PolicyComparison, inForce string, it replayItem) (_ *ReplayChange, asRecorded bool, err error) {
	in := it.rec.Input
	service, err := w.serviceID(it.rec)
	if err != nil {
		return nil, false, err
	}
	ri := ReplayInput{Record: in.Record, Service: in.Service.JSON, ServiceID: service, At: in.DecidedAt, Definition: in.Definition}
	var a, b *Decision
	if asRecorded = it.entry.PolicyRevision == inForce; asRecorded {
		a = it.entry.Decision()
		b, err = cmp.DecideCandidate(ctx, ri)
	} else {
		a, b, err = cmp.DecideBoth(ctx, ri)
	}
	if err != nil {
		return nil, false, err
	}
	change := ""
	switch {
	case a.Allow && !b.Allow:
		change = ChangeAllowToDeny
	case !a.Allow && b.Allow:
		change = ChangeDenyToAllow
	case a.Allow && !sameSet(a.DataCategories, b.DataCategories):
		change = ChangeCategories
	default:
		return nil, asRecorded, nil
	}
	e := it.entry
	oa, ob := outcomeOf(a.Allow, a.Rules, a.DataCategories, ""), outcomeOf(b.Allow, b.Rules, b.DataCategories, "")
	return &ReplayChange{
		DecisionID: it.rec.DecisionID, Institution: it.rec.Institution, DecidedAt: in.DecidedAt, DryRun: e.DryRun,
		Route: a.Route, Service: service, Change: change, Rules: changedRules(change, oa, ob, a.Rules, b.Rules),
		InForce: oa, Candidate: ob, Historical: outcomeOf(e.Allow, e.Rules, e.DataCategories, e.PolicyRevision),
	}, asRecorded, nil
}

func outcomeOf(allow bool, rules []RuleResult, categories []string, revision string) ReplayOutcome {
	o := ReplayOutcome{Outcome: OutcomeDeny, DeniedBy: []string{}, DataCategories: categories, PolicyRevision: revision}
	if allow {
		o.Outcome = OutcomeAllow
	}
	if o.DataCategories == nil {
		o.DataCategories = []string{}
	}
	for _, r := range rules {
		if r.Effect == EffectDeny && !slices.Contains(o.DeniedBy, r.ID) {
			o.DeniedBy = append(o.DeniedBy, r.ID)
		}
	}
	return o
}

// changedRules is the ids of the rules behind a change, sorted: the rules
// that refuse under the candidate (allow to deny) or refused under the set
// in force (deny to allow); for changed categories, the rules whose effect
// or message differs between the two allowed decisions.
func changedRules(change string, a, b ReplayOutcome, ra, rb []RuleResult) []string {
	switch change {
	case ChangeAllowToDeny:
		return b.DeniedBy
	case ChangeDenyToAllow:
		return a.DeniedBy
	}
	seen := func(rs []RuleResult) map[RuleResult]bool {
		m := make(map[RuleResult]bool, len(rs))
		for _, r := range rs {
			m[r] = true
		}
		return m
	}
	sa, sb := seen(ra), seen(rb)
	ids := []string{}
	for _, pair := range [][2]map[RuleResult]bool{{sa, sb}, {sb, sa}} {
		for r := range pair[0] {
			if !pair[1][r] && !slices.Contains(ids, r.ID) {
				ids = append(ids, r.ID)
			}
		}
	}
	sort.Strings(ids)
	return ids
}

// sameSet reports whether a and b hold the same strings, in any order.
func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	x, y := slices.Clone(a), slices.Clone(b)
	slices.Sort(x)
	slices.Sort(y)
	return slices.Equal(x, y)
}
