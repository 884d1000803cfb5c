// Package opa is the gateway's sharing decider, an adapter around the Open
// Policy Agent: it compiles the Rego policy set (policies.FS, or a directory
// an operator configures) once, and evaluates data.referral.decision for each
// case record. No sharing rule lives here; this package only moves a record
// into the policies and their decision back out, and refuses to turn a
// missing or malformed policy result into anything but an internal error.
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

	"github.com/open-policy-agent/opa/v1/ast"
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
}

var _ gateway.Decider = (*Decider)(nil)

// Option tunes New.
type Option func(*config)

type config struct {
	strict   bool
	tests    bool
	log      *zap.Logger
	onReload func(old, new string, err error)
}

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
	if fsys == nil {
		fsys = policies.FS
	}
	src, err := load(fsys)
	if err != nil {
		return nil, err
	}
	set, err := compile(ctx, src, d.cfg.strict)
	if err != nil {
		return nil, err
	}
	if d.cfg.tests {
		if _, err := testSet(ctx, src); err != nil {
			return nil, err
		}
	}
	d.cur.Store(set)
	return d, nil
}

// Revision is the content hash of the policy and data files in force
// (revisionOf), so that a decision names the exact rules it was made under.
func (d *Decider) Revision() string { return d.cur.Load().revision }

// Decide evaluates the policies for one record. A deny is a decision, not an
// error; an error means the gateway could not decide (an internal error).
// The decision's PolicyRevision is the revision of the set that made it,
// which a concurrent reload cannot change.
func (d *Decider) Decide(ctx context.Context, in gateway.DecisionInput) (*gateway.Decision, error) {
	if in.Record == nil || in.Service == nil || in.At.IsZero() {
		return nil, gateway.Internal(fmt.Errorf("opa: decision input needs a record, a service and a time"))
	}
	input, err := inputValue(in)
	if err != nil {
		return nil, gateway.Internal(fmt.Errorf("opa: build input: %w", err))
	}
	return decideOn(ctx, d.cur.Load(), input, in.Service.ID)
}

// decideOn evaluates set for one input document about service; the
// decision names the set's revision.
func decideOn(ctx context.Context, set *policySet, input ast.Value, service string) (*gateway.Decision, error) {
	doc, err := set.decide(ctx, input)
	if err != nil {
		return nil, gateway.Internal(fmt.Errorf("opa: evaluate %s: %w", Query, err))
	}
	dec, err := decisionOf(doc)
	if err != nil {
		return nil, gateway.Internal(fmt.Errorf("opa: malformed result of %s: %w", Query, err))
	}
	if dec.Recipient.Service != service {
		return nil, gateway.Internal(fmt.Errorf("opa: malformed result of %s: recipient %q is not the service in the input", Query, dec.Recipient.Service))
	}
	dec.PolicyRevision = set.revision
	return dec, nil
}
