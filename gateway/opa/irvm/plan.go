package irvm

import (
	"context"
	"errors"
	"sync"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/ir"
	"github.com/open-policy-agent/opa/v1/rego"
)

// Plan asks OPA's planner for its plan of query over the modules compiler
// holds: the same plan OPA's Wasm target is built from. OPA hands plans out
// only to target plugins, so Plan registers one (once, under the target name
// "irvm") that keeps the plan it is given. compiler must be one of its own:
// planning switches a compiler to OPA's IR evaluation mode.
func Plan(ctx context.Context, query string, compiler *ast.Compiler, opts ...func(*rego.Rego)) (*ir.Policy, error) {
	registerOnce.Do(func() { rego.RegisterPlugin(target, capture{}) })
	var got planHolder
	ctx = context.WithValue(ctx, holderKey{}, &got)
	ropts := append([]func(*rego.Rego){rego.Query(query), rego.Compiler(compiler), rego.Target(target)}, opts...)
	if _, err := rego.New(ropts...).PrepareForEval(ctx); err != nil {
		return nil, err
	}
	if got.policy == nil {
		return nil, errors.New("irvm: OPA did not hand over a plan")
	}
	return got.policy, nil
}

// target is the name the capturing plugin answers to.
const target = "irvm"

var registerOnce sync.Once

type holderKey struct{}

type planHolder struct{ policy *ir.Policy }

// capture is the target plugin that keeps the plan; the query OPA prepares
// with it is never evaluated.
type capture struct{}

func (capture) IsTarget(t string) bool { return t == target }

func (capture) PrepareForEval(ctx context.Context, p *ir.Policy, _ ...rego.PrepareOption) (rego.TargetPluginEval, error) {
	h, ok := ctx.Value(holderKey{}).(*planHolder)
	if !ok {
		return nil, errors.New("irvm: the plan capture was prepared outside irvm.Plan")
	}
	h.policy = p
	return unusable{}, nil
}

type unusable struct{}

func (unusable) Eval(context.Context, *rego.EvalContext, ast.Value) (ast.Value, error) {
	return nil, errors.New("irvm: a query prepared only to be planned was evaluated")
}
