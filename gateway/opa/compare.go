package opa

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/student-mh-referrals/gateway/gateway"
)

// Comparison decides retained inputs under the policy set that was in force
// when it was made and under a candidate set, for policy replay. The
// candidate is loaded, compiled and tested as a reload would, but never
// installed: nothing that serves changes.
type Comparison struct {
	inForce, candidate *policySet
	tests              int
}

var _ gateway.PolicyComparison = (*Comparison)(nil)

// Compare loads the candidate set in fsys against the set in force. Like a
// policy directory, the candidate is compiled strictly and must pass its own
// tests: a set that does not parse, compile, define the decision or pass its
// tests is refused with EINVALID, naming why. A directory that cannot be
// read is ENOTFOUND.
func (d *Decider) Compare(ctx context.Context, fsys fs.FS) (*Comparison, error) {
	src, err := load(fsys)
	if src == nil {
		return nil, &gateway.Error{Code: gateway.ENOTFOUND, Message: "the candidate policy set cannot be read", Err: err}
	}
	if err != nil {
		return nil, err
	}
	set, err := compile(ctx, src, true)
	if err != nil {
		return nil, err
	}
	ran, err := testSet(ctx, src)
	if err != nil {
		return nil, err
	}
	return &Comparison{inForce: d.cur.Load(), candidate: set, tests: ran}, nil
}

// Revisions implements gateway.PolicyComparison.
func (c *Comparison) Revisions() (inForce, candidate string) {
	return c.inForce.revision, c.candidate.revision
}

// Tests implements gateway.PolicyComparison.
func (c *Comparison) Tests() int { return c.tests }

// DecideBoth implements gateway.PolicyComparison.
func (c *Comparison) DecideBoth(ctx context.Context, in gateway.ReplayInput) (*gateway.Decision, *gateway.Decision, error) {
	input, err := replayInput(in)
	if err != nil {
		return nil, nil, err
	}
	a, err := decideOn(ctx, c.inForce, input, in.ServiceID)
	if err != nil {
		return nil, nil, err
	}
	cand, err := decideOn(ctx, c.candidate, input, in.ServiceID)
	if err != nil {
		return nil, nil, err
	}
	return a, cand, nil
}

// DecideCandidate implements gateway.PolicyComparison.
func (c *Comparison) DecideCandidate(ctx context.Context, in gateway.ReplayInput) (*gateway.Decision, error) {
	input, err := replayInput(in)
	if err != nil {
		return nil, err
	}
	return decideOn(ctx, c.candidate, input, in.ServiceID)
}

// replayInput is the input document of a retained input, built from the
// stored JSON as it is: the canonical record and the registry entry are
// exactly what Decide marshals.
func replayInput(in gateway.ReplayInput) (ast.Value, error) {
	var b bytes.Buffer
	b.Grow(len(in.Record) + len(in.Service) + 64)
	b.WriteString(`{"record":`)
	b.Write(in.Record)
	b.WriteString(`,"service":`)
	b.Write(in.Service)
	b.WriteString(`,"at":"`)
	b.WriteString(in.At.UTC().Format(time.RFC3339Nano))
	b.WriteString(`"}`)
	v, err := ast.ValueFromReader(&b)
	if err != nil {
		return nil, gateway.Internal(fmt.Errorf("opa: retained input: %w", err))
	}
	return v, nil
}
