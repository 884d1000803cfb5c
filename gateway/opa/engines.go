package opa

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/topdown"
)

// The plan engine (package irvm) runs OPA's plan of the policies; topdown,
// OPA's own evaluator, is the reference. Before a policy set serves on the
// plan, every input document its own tests evaluate is decided by both
// engines, and the set serves on the plan only if they agree on every one:
// same document, or both undefined, or both failing. A set whose engines
// disagree serves on topdown, and the log says why.

// errEnginesDisagree is a plan that decided some test input differently
// from topdown.
var errEnginesDisagree = errors.New("the plan and topdown disagree")

// checkEngines decides every input with both engines of set.
func checkEngines(ctx context.Context, set *policySet, inputs []ast.Value) error {
	if set.plan == nil {
		return nil
	}
	var differ []string
	for i, in := range inputs {
		if err := agree(ctx, set, in); err != nil {
			differ = append(differ, fmt.Sprintf("test input %d: %v", i+1, err))
		}
	}
	if len(differ) > 0 {
		first := differ[0]
		return fmt.Errorf("%w on %d of %d test inputs; first: %s", errEnginesDisagree, len(differ), len(inputs), first)
	}
	return nil
}

// agree decides input with both engines of set and says how they differ.
// Messages name no value from the input: inputs are test fixtures, but the
// same check may one day run on a real record.
func agree(ctx context.Context, set *policySet, input ast.Value) error {
	want, werr := set.decideTopdown(ctx, input)
	got, gerr := set.decide(ctx, input)
	switch {
	case (werr == nil) != (gerr == nil):
		return fmt.Errorf("topdown error %v, plan error %v", werr, gerr)
	case werr != nil:
		return nil // both fail: neither serves a decision
	case (want == nil) != (got == nil):
		return fmt.Errorf("topdown defined %t, plan defined %t", want != nil, got != nil)
	case want == nil:
		return nil
	case ast.Compare(want, got) != 0:
		return errors.New("different decision documents")
	}
	return nil
}

// inputCollector is a query tracer that keeps every distinct input
// document a policy test evaluates, including the ones tests build with
// `with input as` and `with input.x as`.
type inputCollector struct {
	mu     sync.Mutex
	seen   map[*ast.Term]bool
	byHash map[int][]ast.Value
	inputs []ast.Value
}

func newInputCollector() *inputCollector {
	return &inputCollector{seen: map[*ast.Term]bool{}, byHash: map[int][]ast.Value{}}
}

func (c *inputCollector) Enabled() bool { return true }

func (c *inputCollector) Config() topdown.TraceConfig { return topdown.TraceConfig{} }

func (c *inputCollector) TraceEvent(evt topdown.Event) {
	in := evt.Input()
	if in == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.seen[in] {
		return
	}
	c.seen[in] = true
	h := in.Value.Hash()
	for _, v := range c.byHash[h] {
		if ast.Compare(v, in.Value) == 0 {
			return
		}
	}
	c.byHash[h] = append(c.byHash[h], in.Value)
	c.inputs = append(c.inputs, in.Value)
}
