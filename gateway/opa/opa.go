// Package opa is the gateway's sharing decider, an adapter around the Open
// Policy Agent: it compiles the Rego policy set (policies.FS, or a directory
// an operator configures) once, and evaluates data.referral.decision for each
// case record. No sharing rule lives here; this package only moves a record
// into the policies and their decision back out, and refuses to turn a
// missing or malformed policy result into anything but an internal error.
//
// Two engines evaluate the same compiled policies: OPA's plan of them, run
// by package irvm (the default, several times faster), and OPA's own
// evaluator, topdown, which is the reference the plan is checked against
// (engines.go).
//
// The policy set in force can be replaced while the gateway runs (Reload,
// Watch): a new set serves only once it compiles and its own tests pass, and
// an evaluation already under way finishes on the set it started with.
package opa

import (
	"context"
	"fmt"
	"io/fs"
	"sync"
	"sync/atomic"

	"go.uber.org/zap"

	// The policies take ages and dates in Europe/London; the embedded zone
	// database makes that work on machines without one.
	_ "time/tzdata"

	"github.com/student-mh-referrals/gateway/gateway"
	"github.com/student-mh-referrals/gateway/policies"
)

// Query is the document the policies must define: the decision about the
// record in input.record for the service in input.service at input.at.
const Query = "data.referral.decision"

// Decider makes sharing decisions by evaluating the Rego policy set. It is
// safe for concurrent use: the query is prepared once per policy set and
// evaluated per call, and a reload swaps the whole set at once.
type Decider struct {
	cfg config
	cur atomic.Pointer[policySet]
	// reloading serialises Reload, so that two reloads cannot race to decide
	// which set is in force.
	reloading sync.Mutex
	// services are the registry entries already converted for the policies.
	services serviceValues
}

var _ gateway.Decider = (*Decider)(nil)

// Option tunes New.
type Option func(*config)

type config struct {
	engine   string
	strict   bool
	tests    bool
	log      *zap.Logger
	onReload func(old, new string, err error)
}

// The engines that evaluate a policy set (WithEngine).
const (
	// EnginePlan runs OPA's plan of the policies (package irvm), falling
	// back to topdown for a set whose plan uses what irvm does not run.
	EnginePlan = "plan"
	// EngineTopdown is OPA's own tree-walking evaluator.
	EngineTopdown = "topdown"
)

// WithEngine chooses the engine that makes decisions, EnginePlan (the
// default) or EngineTopdown. Both evaluate the same compiled policies; the
// tests hold their decisions equal (policies/README.md, "Engines").
func WithEngine(name string) Option { return func(c *config) { c.engine = name } }

// WithStrict compiles the policies in OPA's strict mode (unused variables,
// imports and arguments are errors), as `opa check --strict` does in CI. Use
// it where a policy directory is loaded that CI did not check; it applies to
// every reload too.
func WithStrict() Option { return func(c *config) { c.strict = true } }

// WithTests makes New run the set's own tests (its *_test.rego files), as
// Reload always does, and refuse to start when one fails: for a policy
// directory that CI did not test.
func WithTests() Option { return func(c *config) { c.tests = true } }

// WithLogger is where reloads are logged: one line per reload, with the old
// and new revisions and, for a refused set, the reason (compiler messages or
// the names of failing tests; policies and tests hold no personal data). The
// default logs nothing.
func WithLogger(l *zap.Logger) Option { return func(c *config) { c.log = l } }

// WithOnReload calls f after every reload attempt, so that the gateway can
// audit it as an operator action: old is the revision that was in force,
// new the revision of the set that was offered (empty when it could not be
// read), and err is nil when new now serves, or why it was refused and old
// still serves. f runs on the reloading goroutine and must not call Reload.
func WithOnReload(f func(old, new string, err error)) Option {
	return func(c *config) { c.onReload = f }
}

// New compiles the policy set in fsys into a prepared query for
// data.referral.decision. A nil fsys means the embedded policies.FS; any
// fs.FS works, such as os.DirFS for a directory that an IG lead edits.
// Rego files ending in _test.rego are not part of the set (WithTests runs
// them); data.json and data.yaml files are loaded under the data path of
// their directory, as in an OPA bundle. A policy set that does not parse,
// compile or define the decision is an error: the gateway must not start
// without its rules.
func New(ctx context.Context, fsys fs.FS, opts ...Option) (*Decider, error) {
	d := &Decider{}
	for _, o := range opts {
		o(&d.cfg)
	}
	if d.cfg.log == nil {
		d.cfg.log = zap.NewNop()
	}
	switch d.cfg.engine {
	case "":
		d.cfg.engine = EnginePlan
	case EnginePlan, EngineTopdown:
	default:
		return nil, policyError(fmt.Sprintf("unknown policy engine %q: use %s or %s", d.cfg.engine, EnginePlan, EngineTopdown), nil)
	}
	if fsys == nil {
		fsys = policies.FS
	}
	src, err := load(fsys)
	if err != nil {
		return nil, err
	}
	set, err := compile(ctx, src, d.cfg.strict, d.cfg.engine)
	if err != nil {
		return nil, err
	}
	if d.cfg.tests {
		if _, err := d.vet(ctx, src, set); err != nil {
			return nil, err
		}
	}
	d.logEngine(set)
	d.cur.Store(set)
	return d, nil
}

// vet runs the set's own tests. For a set on the plan it also decides every
// input those tests evaluate with both engines; a plan that disagrees with
// topdown on any of them is dropped, and the set serves on topdown.
func (d *Decider) vet(ctx context.Context, src *source, set *policySet) (int, error) {
	var inputs *inputCollector
	if set.plan != nil {
		inputs = newInputCollector()
	}
	ran, err := testSet(ctx, src, inputs)
	if err != nil {
		return ran, err
	}
	if inputs != nil {
		if err := checkEngines(ctx, set, inputs.inputs); err != nil {
			set.plan, set.planErr = nil, err
		}
	}
	return ran, nil
}

// logEngine says which engine decides for set, and why a set that was to
// run on the plan does not.
func (d *Decider) logEngine(set *policySet) {
	switch {
	case set.plan != nil:
		d.cfg.log.Info("policy engine: plan", zap.String("revision", set.revision))
	case set.planErr != nil:
		d.cfg.log.Warn("policy engine: topdown, because the plan cannot serve this policy set",
			zap.String("revision", set.revision), zap.String("reason", set.planErr.Error()))
	default:
		d.cfg.log.Info("policy engine: topdown", zap.String("revision", set.revision))
	}
}

// Revision is "sha256:" and the first 16 hex digits of a hash over the name
// and content of every policy and data file (tests excluded), sorted by name,
// of the set in force, so that a decision names the exact rules it was made
// under.
func (d *Decider) Revision() string { return d.cur.Load().revision }

// Decide evaluates the policies for one record. A deny is a decision, not an
// error; an error means the gateway could not decide (an internal error).
// The decision's PolicyRevision is the revision of the set that made it,
// which a concurrent reload cannot change.
func (d *Decider) Decide(ctx context.Context, in gateway.DecisionInput) (*gateway.Decision, error) {
	if in.Record == nil || in.Service == nil || in.At.IsZero() {
		return nil, gateway.Internal(fmt.Errorf("opa: decision input needs a record, a service and a time"))
	}
	set := d.cur.Load()
	input, err := d.services.input(in)
	if err != nil {
		return nil, gateway.Internal(fmt.Errorf("opa: build input: %w", err))
	}
	doc, err := set.decide(ctx, input)
	if err != nil {
		return nil, gateway.Internal(fmt.Errorf("opa: evaluate %s: %w", Query, err))
	}
	dec, err := decisionOf(doc)
	if err != nil {
		return nil, gateway.Internal(fmt.Errorf("opa: malformed result of %s: %w", Query, err))
	}
	if dec.Recipient.Service != in.Service.ID {
		return nil, gateway.Internal(fmt.Errorf("opa: malformed result of %s: recipient %q is not the service in the input", Query, dec.Recipient.Service))
	}
	dec.PolicyRevision = set.revision
	return dec, nil
}
