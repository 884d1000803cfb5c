package irvm

import (
	"context"
	"errors"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
	"github.com/open-policy-agent/opa/v1/topdown"
)

// engines compiles module twice, for topdown and for the plan of query.
func engines(t *testing.T, module string, data map[string]any, query string) (rego.PreparedEvalQuery, *Program) {
	t.Helper()
	ctx := context.Background()
	compilerFor := func() *ast.Compiler {
		m, err := ast.ParseModuleWithOpts("p.rego", module, ast.ParserOptions{RegoVersion: ast.RegoV1})
		if err != nil {
			t.Fatal(err)
		}
		c := ast.NewCompiler()
		c.Compile(map[string]*ast.Module{"p.rego": m})
		if c.Failed() {
			t.Fatal(c.Errors)
		}
		return c
	}
	raw := func(t *ast.Term, _ *rego.EvalContext) (any, error) { return t, nil }
	pq, err := rego.New(rego.Query(query), rego.Compiler(compilerFor()), rego.Store(inmem.NewFromObject(data)), rego.GenerateJSON(raw)).PrepareForEval(ctx)
	if err != nil {
		t.Fatal(err)
	}
	plan, err := Plan(ctx, query, compilerFor(), rego.Store(inmem.NewFromObject(data)))
	if err != nil {
		t.Fatal(err)
	}
	prog, err := Compile(plan, plan.Plans.Plans[0].Name)
	if err != nil {
		t.Fatal(err)
	}
	return pq, prog
}

// both evaluates query on input with each engine: the value (nil for
// undefined) and the error.
func both(t *testing.T, pq rego.PreparedEvalQuery, prog *Program, input ast.Value, data map[string]any) (want, got ast.Value, werr, gerr error) {
	t.Helper()
	ctx := context.Background()
	rs, werr := pq.Eval(ctx, rego.EvalParsedInput(input))
	if werr == nil && len(rs) == 1 {
		want = rs[0].Expressions[0].Value.(*ast.Term).Value
	}
	dv, err := ast.InterfaceToValue(data)
	if err != nil {
		t.Fatal(err)
	}
	res, gerr := prog.Eval(ctx, input, dv)
	if gerr == nil && len(res) == 1 {
		obj := res[0].(ast.Object)
		got = obj.Get(obj.Keys()[0]).Value
	}
	return want, got, werr, gerr
}

// TestAgreesWithTopdown runs small policies that use each kind of statement
// a plan holds (rules with defaults and else, partial sets and objects,
// functions, negation, comprehensions, some, every, early exits, conflicts)
// on several inputs each; the plan must give topdown's answer, undefined and
// errors included.
func TestAgreesWithTopdown(t *testing.T) {
	data := map[string]any{
		"roles": map[string]any{"alice": []any{"admin", "dev"}, "bob": []any{"dev"}}, "limit": 3,
		"byid": map[string]any{"2": "two", "3": "three", "5": "five"}, "list": []any{"zero", "one", "two"},
	}
	inputs := []string{
		``, // no input at all
		`{}`,
		`{"user": "alice", "n": 2, "tags": ["a", "b", "a"], "obj": {"x": 1, "y": [1, 2]}}`,
		`{"user": "bob", "n": 5, "tags": [], "obj": {"x": "s"}}`,
		`{"user": 7, "n": "5", "tags": {"a": 1}, "obj": null}`,
		`{"user": "carol", "n": 3.0, "tags": ["c"], "obj": {"x": 3, "y": {"z": true}}}`,
	}
	tests := []struct {
		name, module string
	}{
		{"complete rule with default", `package p
default r := "none"
r := "admin" if "admin" in data.roles[input.user]`},
		{"else chain", `package p
r := "big" if { input.n > 4 } else := "mid" if { input.n > 2 } else := "small"`},
		{"partial set and count", `package p
s contains t if { some t in input.tags; t != "b" }
r := {"s": s, "n": count(s)}`},
		{"partial object", `package p
o[k] := v if { some k, v in input.obj }
r := o`},
		{"function with arguments", `package p
f(x) := x * 2 if is_number(x)
f(x) := concat("-", [x, x]) if is_string(x)
r := [f(input.n), f(input.user)]`},
		{"negation", `package p
r if { not input.user; not input.missing.deep }
r2 := true if not "admin" in data.roles[input.user]
r3 := {"r": r, "r2": r2}`},
		{"comprehensions", `package p
r := {"a": [x | some x in input.tags], "s": {x | some x in input.tags}, "o": {k: v | some k, v in input.obj; is_number(v)}}`},
		{"every", `package p
r if every t in input.tags { is_string(t) }`},
		{"nested iteration with early exit", `package p
r if { some u, rs in data.roles; some role in rs; role == "admin"; u == input.user }`},
		{"conflicting outputs", `package p
r := 1 if input.n
r := 2 if input.user`},
		{"object.get, sprintf and sorting", `package p
r := sprintf("%v/%s/%d", [object.get(input, ["obj", "x"], "none"), object.get(input, "user", "?"), count(sort(input.tags))])`},
		{"arrays and indexes", `package p
r := [input.tags[0], input.tags[count(input.tags) - 1], input.obj.y[1]]`},
		{"sets of objects", `package p
d contains {"id": "A", "m": sprintf("n is %v", [input.n])} if input.n > 1
d contains {"id": "B", "m": "user"} if input.user
r := {"d": d, "ids": {x.id | some x in d}}`},
		{"data lookups", `package p
r := data.limit - count(data.roles[input.user])`},
		{"string and number built-ins", `package p
r := {"u": upper(input.user), "t": trim_space(" x "), "n": input.n + 1, "c": input.n < 4, "e": input.n == 3}`},
		{"type tests", `package p
r := [is_string(input.user), is_number(input.n), is_array(input.tags), is_object(input.obj), is_null(input.obj), is_set(input.tags), is_boolean(true)]`},
		// Regression: a rule was undefined when the query had no input, as
		// its call passed the undefined input on as a failure.
		{"rules called without input", `package p
default r := "none"
r := data.limit + 1 if not input.user
r := "user" if input.user`},
		// Regression: walk, the one built-in function with many outputs,
		// was undefined; the plan scans the collection of its outputs.
		{"walk", `package p
r := {"paths": {p | walk(input.obj, [p, _])}, "values": [v | walk(input.tags, [_, v])], "pairs": [x | walk(input.n, x)]}`},
		// Regression: topdown reads a ref into a base document from its
		// store, by a path of strings: a number key finds an object's key
		// spelling it, a string key an array's index. A value bound to a
		// variable is looked up as a value.
		{"base document refs with number and string keys", `package p
f(x) := data.byid[x]
r := {
	"num": [v | v := data.byid[input.n]],
	"float": [v | v := data.byid[3.0]],
	"index": [v | v := data.list["1"]],
	"iter": [v | some k; v := data.roles[k]["0"]],
	"var": [v | x := data.byid; v := x[input.n]],
	"in": [v | some x in data.roles; v := x["0"]],
	"fn": [v | v := f(input.n)],
}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pq, prog := engines(t, tc.module, data, "data.p.r")
			for _, in := range inputs {
				var input ast.Value
				if in != "" {
					input = ast.MustParseTerm(in).Value
				}
				want, got, werr, gerr := both(t, pq, prog, input, data)
				if (werr == nil) != (gerr == nil) {
					t.Errorf("input %s: topdown error %v, plan error %v", in, werr, gerr)
					continue
				}
				if (want == nil) != (got == nil) || (want != nil && ast.Compare(want, got) != 0) {
					t.Errorf("input %s: topdown %v, plan %v", in, want, got)
				}
			}
		})
	}
}

// TestUnsupported is a plan that uses `with`: Compile refuses it with
// ErrUnsupported, so that the caller keeps topdown.
func TestUnsupported(t *testing.T) {
	for name, module := range map[string]string{
		"with":      "package p\nq := input.x\nr := v if { v := q with input.x as 1 }",
		"http.send": "package p\nr := http.send({\"method\": \"GET\", \"url\": input.u})",
		"time.now":  "package p\nr := time.now_ns()",
	} {
		t.Run(name, func(t *testing.T) {
			m := ast.MustParseModuleWithOpts(module, ast.ParserOptions{RegoVersion: ast.RegoV1})
			c := ast.NewCompiler()
			c.Compile(map[string]*ast.Module{"p.rego": m})
			if c.Failed() {
				t.Fatal(c.Errors)
			}
			plan, err := Plan(context.Background(), "data.p.r", c)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := Compile(plan, plan.Plans.Plans[0].Name); !errors.Is(err, ErrUnsupported) {
				t.Errorf("Compile: %v; want ErrUnsupported", err)
			}
		})
	}
}

// TestCancelled stops within cancelEvery calls once the context is done.
func TestCancelled(t *testing.T) {
	_, prog := engines(t, "package p\nf(x) := x\nr := [y | some i in numbers.range(1, 100); y := f(i)]", map[string]any{}, "data.p.r")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := prog.Eval(ctx, ast.NewObject(), ast.NewObject())
	var te *topdown.Error
	if !errors.As(err, &te) || te.Code != topdown.CancelErr {
		t.Errorf("Eval on a cancelled context: %v; want a cancellation", err)
	}
}

// TestInlinedMatchTopdown calls each inlined built-in function and
// topdown's function of the same name on every pairing of a table of values
// of each type; they must give the same result, an error being undefined.
func TestInlinedMatchTopdown(t *testing.T) {
	values := []string{`null`, `true`, `false`, `0`, `1`, `1.0`, `2.5`, `-3`, `""`, `"a"`, `"b"`, `"éa"`,
		`[]`, `["a"]`, `[1, "a"]`, `{}`, `{"a": 1}`, `{"k": "a"}`, `set()`, `{"a"}`, `{1, "a"}`}
	terms := make([]*ast.Term, len(values))
	for i, v := range values {
		terms[i] = ast.MustParseTerm(v)
	}
	m := &machine{}
	for name, inline := range inlined {
		decl, ok := ast.BuiltinMap[name]
		if !ok {
			t.Fatalf("%s is not a built-in function", name)
		}
		f := topdown.GetBuiltin(name)
		arity := len(decl.Decl.FuncArgs().Args)
		var calls [][]*ast.Term
		for _, a := range terms {
			if arity == 1 {
				calls = append(calls, []*ast.Term{a})
				continue
			}
			for _, b := range terms {
				calls = append(calls, []*ast.Term{a, b})
			}
		}
		for _, args := range calls {
			var want ast.Value
			err := f(topdown.BuiltinContext{Context: context.Background()}, args, func(t *ast.Term) error { want = t.Value; return nil })
			if err != nil {
				want = nil
			}
			vals := make([]ast.Value, len(args))
			for i, a := range args {
				vals[i] = a.Value
			}
			got := inline(m, vals)
			if (want == nil) != (got == nil) || (want != nil && ast.Compare(want, got) != 0) {
				t.Errorf("%s%v: topdown %v, inlined %v", name, args, want, got)
			}
		}
	}
}
