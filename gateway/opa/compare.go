package opa

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"sync"
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
	// services holds each registry snapshot already seen as the OPA value
	// the policies read, keyed by its JSON: many decisions share one
	// snapshot (the registry rarely changes), so it is parsed once per
	// replay rather than once per decision.
	servicesMu sync.RWMutex
	services   map[string]ast.Value
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
	return &Comparison{inForce: d.cur.Load(), candidate: set, tests: ran, services: map[string]ast.Value{}}, nil
}

// Revisions implements gateway.PolicyComparison.
func (c *Comparison) Revisions() (inForce, candidate string) {
	return c.inForce.revision, c.candidate.revision
}

// Tests implements gateway.PolicyComparison.
func (c *Comparison) Tests() int { return c.tests }

// DecideBoth implements gateway.PolicyComparison.
func (c *Comparison) DecideBoth(ctx context.Context, in gateway.ReplayInput) (*gateway.Decision, *gateway.Decision, error) {
	input, err := c.replayInput(in)
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
	input, err := c.replayInput(in)
	if err != nil {
		return nil, err
	}
	return decideOn(ctx, c.candidate, input, in.ServiceID)
}

// replayInput is the input document of a retained input, built from the
// stored JSON as it is: the canonical record and the registry entry are
// exactly what Decide marshals, so the value equals the one Decide parsed.
// The record is parsed per decision, the registry entry once per snapshot.
// The retained MessageDefinition becomes input.definition as in Decide
// (definitionInput): absent when the decision had none or only a URL.
func (c *Comparison) replayInput(in gateway.ReplayInput) (ast.Value, error) {
	record, err := ast.ValueFromReader(bytes.NewReader(in.Record))
	if err != nil {
		return nil, gateway.Internal(fmt.Errorf("opa: retained record: %w", err))
	}
	service, err := c.service(in.Service)
	if err != nil {
		return nil, err
	}
	items := [][2]*ast.Term{
		ast.Item(ast.InternedTerm("record"), ast.NewTerm(record)),
		ast.Item(ast.InternedTerm("service"), ast.NewTerm(service)),
		ast.Item(ast.InternedTerm("at"), ast.StringTerm(in.At.UTC().Format(time.RFC3339Nano))),
	}
	if d := definitionInput(in.Definition); d != nil {
		b, err := json.Marshal(d)
		if err != nil {
			return nil, gateway.Internal(err)
		}
		v, err := ast.ValueFromReader(bytes.NewReader(b))
		if err != nil {
			return nil, gateway.Internal(fmt.Errorf("opa: retained definition: %w", err))
		}
		items = append(items, ast.Item(ast.InternedTerm("definition"), ast.NewTerm(v)))
	}
	return ast.NewObject(items...), nil
}

// service is a registry snapshot's JSON as an OPA value, parsed on its
// first use in this comparison. Values are never changed by evaluation, so
// concurrent decisions share them.
func (c *Comparison) service(snapshot []byte) (ast.Value, error) {
	c.servicesMu.RLock()
	v, ok := c.services[string(snapshot)]
	c.servicesMu.RUnlock()
	if ok {
		return v, nil
	}
	v, err := ast.ValueFromReader(bytes.NewReader(snapshot))
	if err != nil {
		return nil, gateway.Internal(fmt.Errorf("opa: retained registry snapshot: %w", err))
	}
	c.servicesMu.Lock()
	c.services[string(snapshot)] = v
	c.servicesMu.Unlock()
	return v, nil
}
