// Package irvm evaluates a Rego policy from the plan OPA's own planner makes
// of it (the intermediate representation, package ir, that OPA compiles to
// WebAssembly), without WebAssembly.
//
// OPA's tree-walking evaluator (topdown) spends one to two microseconds on
// every rule body it cannot skip through its rule index, and a sharing
// decision runs well over a hundred of them. A plan is a flat program of
// simple statements over local variables; running it directly costs a
// fraction of that. The plan is OPA's (the same one its Wasm target runs),
// the built-in functions are topdown's own, and this package only executes
// the statements, with the semantics the Wasm compiler gives them. The OPA
// adapter (package opa) keeps topdown as the reference: it checks that both
// engines reach the same decision on every test case of a policy set before
// it serves that set with the plan.
package irvm

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/ir"
	"github.com/open-policy-agent/opa/v1/metrics"
	"github.com/open-policy-agent/opa/v1/topdown"
	"github.com/open-policy-agent/opa/v1/topdown/builtins"
	"github.com/open-policy-agent/opa/v1/util"
)

// Program is a plan made ready to run: functions resolved, constants built,
// the frame sizes known. It is immutable and safe for concurrent use.
type Program struct {
	entry    *function
	funcs    []*function
	memoized int // number of memoized functions (slots in an evaluation's memo)
	stack    int // locals needed by the deepest chain of calls
	pool     sync.Pool
	metrics  metrics.Metrics // for built-in functions that count things
}

// function is a planned rule or function, or the entry plan itself.
type function struct {
	name   string
	params []int
	ret    int // the local returned; -1 for the entry plan
	blocks []*block
	frame  int // number of locals
	memo   int // slot in the memo, or -1 when not memoized
}

type block struct{ stmts []stmt }

type opcode uint8

const (
	opReturnLocal opcode = iota
	opCall
	opCallBuiltin
	opBlock
	opBreak
	opAssignVar
	opAssignVarOnce
	opScan
	opNop
	opNot
	opDot
	opDotData // a DotStmt that reads a base document, see dataPaths
	opLen
	opEqual
	opNotEqual
	opMakeNull
	opMakeArray
	opMakeObject
	opMakeSet
	opIsArray
	opIsObject
	opIsSet
	opIsDefined
	opIsUndefined
	opResetLocal
	opArrayAppend
	opObjectInsert
	opObjectInsertOnce
	opSetAdd
	opResultSetAdd
	opArrayOf  // MakeArrayStmt and its appends, fused by compiler.literal
	opObjectOf // MakeObjectStmt and its inserts
	opSetOf    // MakeSetStmt and its adds
)

// operand is a local (local >= 0) or a constant term.
type operand struct {
	local int
	term  *ast.Term
}

// stmt is one statement, with the fields its opcode uses.
type stmt struct {
	op      opcode
	a, b    operand // source, key or value, depending on op
	target  int
	target2 int // ScanStmt's value local
	index   int // BreakStmt's index, MakeArrayStmt's capacity
	fn      *function
	bi      *builtinFunc
	args    []operand
	block   *block
	blocks  []*block
	loc     *ast.Location
}

type builtinFunc struct {
	name string
	f    topdown.BuiltinFunc
	// relation is a built-in function with any number of outputs (walk):
	// the plan scans its result, the collection of all of them.
	relation bool
	// inline, when set, is the same function on values, called without
	// boxing the operands into terms (see inline.go); nil means undefined.
	inline func(m *machine, args []ast.Value) ast.Value
}

// ErrUnsupported is returned by Compile for a plan that uses a statement this
// package does not run (with, dynamic calls, object merges) or a built-in
// function topdown does not provide; such a policy stays on topdown.
var ErrUnsupported = errors.New("irvm: plan not supported")

// Compile prepares the plan named entrypoint of policy.
func Compile(policy *ir.Policy, entrypoint string) (*Program, error) {
	c := &compiler{
		policy:   policy,
		funcs:    map[string]*function{},
		builtins: map[string]*builtinFunc{},
		strings:  make([]*ast.Term, len(policy.Static.Strings)),
	}
	for i, s := range policy.Static.Strings {
		c.strings[i] = ast.StringTerm(s.Value)
	}
	for _, b := range policy.Static.BuiltinFuncs {
		f := topdown.GetBuiltin(b.Name)
		if f == nil {
			return nil, fmt.Errorf("%w: built-in function %s", ErrUnsupported, b.Name)
		}
		// Functions that reach outside the evaluation (the network, the
		// clock, randomness, the runtime) need state topdown keeps per query;
		// a policy that calls one stays on topdown.
		decl, ok := ast.BuiltinMap[b.Name]
		if !ok || decl.Nondeterministic {
			return nil, fmt.Errorf("%w: built-in function %s", ErrUnsupported, b.Name)
		}
		c.builtins[b.Name] = &builtinFunc{name: b.Name, f: f, inline: inlined[b.Name], relation: decl.Relation}
	}
	p := &Program{metrics: metrics.New()}
	if policy.Funcs != nil {
		for _, f := range policy.Funcs.Funcs {
			fn := &function{name: f.Name, params: locals(f.Params), ret: int(f.Return), memo: -1}
			if len(f.Params) == 2 { // input and data only: a rule, the same on every call
				fn.memo = p.memoized
				p.memoized++
			}
			c.funcs[f.Name] = fn
			p.funcs = append(p.funcs, fn)
		}
		// In the plan's order, so that a plan refused for more than one
		// reason is always refused for the same one.
		for i, f := range policy.Funcs.Funcs {
			if err := c.function(p.funcs[i], f.Blocks); err != nil {
				return nil, fmt.Errorf("%s: %w", f.Name, err)
			}
		}
	}
	if policy.Plans != nil {
		for _, pl := range policy.Plans.Plans {
			if pl.Name == entrypoint {
				p.entry = &function{name: pl.Name, params: []int{int(ir.Input), int(ir.Data)}, ret: -1, memo: -1}
				if err := c.function(p.entry, pl.Blocks); err != nil {
					return nil, fmt.Errorf("plan %s: %w", pl.Name, err)
				}
			}
		}
	}
	if p.entry == nil {
		return nil, fmt.Errorf("irvm: the policy has no plan %q", entrypoint)
	}
	depth := map[*function]int{}
	p.stack = stackDepth(p.entry, depth, map[*function]bool{})
	if p.stack < 0 {
		return nil, fmt.Errorf("%w: recursive calls", ErrUnsupported)
	}
	return p, nil
}

func locals(ls []ir.Local) []int {
	out := make([]int, len(ls))
	for i, l := range ls {
		out[i] = int(l)
	}
	return out
}

// stackDepth is the number of locals the deepest chain of calls from fn
// needs at once, or -1 for a cycle (Rego has no recursion; a plan with one is
// refused rather than run).
func stackDepth(fn *function, memo map[*function]int, visiting map[*function]bool) int {
	if d, ok := memo[fn]; ok {
		return d
	}
	if visiting[fn] {
		return -1
	}
	visiting[fn] = true
	deepest := 0
	var walk func(bs []*block) bool
	walk = func(bs []*block) bool {
		for _, b := range bs {
			for i := range b.stmts {
				s := &b.stmts[i]
				if s.fn != nil {
					d := stackDepth(s.fn, memo, visiting)
					if d < 0 {
						return false
					}
					deepest = max(deepest, d)
				}
				if s.block != nil && !walk([]*block{s.block}) {
					return false
				}
				if !walk(s.blocks) {
					return false
				}
			}
		}
		return true
	}
	if !walk(fn.blocks) {
		return -1
	}
	visiting[fn] = false
	memo[fn] = fn.frame + deepest
	return memo[fn]
}

type compiler struct {
	policy   *ir.Policy
	funcs    map[string]*function
	builtins map[string]*builtinFunc
	strings  []*ast.Term
	frame    int
	data     map[ir.Local]bool // the function's data paths, see dataPaths
}

func (c *compiler) function(fn *function, blocks []*ir.Block) error {
	c.frame = 2 // input and data
	for _, p := range fn.params {
		c.use(p)
	}
	if fn.ret >= 0 {
		c.use(fn.ret)
	}
	c.data = dataPaths(fn.params, blocks)
	bs, err := c.blocks(blocks)
	if err != nil {
		return err
	}
	fn.blocks = bs
	fn.frame = c.frame
	return nil
}

func (c *compiler) use(l int) int {
	if l+1 > c.frame {
		c.frame = l + 1
	}
	return l
}

func (c *compiler) local(l ir.Local) int { return c.use(int(l)) }

func (c *compiler) blocks(in []*ir.Block) ([]*block, error) {
	out := make([]*block, len(in))
	for i, b := range in {
		cb, err := c.block(b)
		if err != nil {
			return nil, err
		}
		out[i] = cb
	}
	return out, nil
}

func (c *compiler) operand(o ir.Operand) (operand, error) {
	switch v := o.Value.(type) {
	case ir.Local:
		return operand{local: c.local(v)}, nil
	case ir.Bool:
		return operand{local: -1, term: ast.BooleanTerm(bool(v))}, nil
	case ir.StringIndex:
		if int(v) < 0 || int(v) >= len(c.strings) {
			return operand{}, fmt.Errorf("irvm: string index %d out of range", v)
		}
		return operand{local: -1, term: c.strings[v]}, nil
	}
	return operand{}, fmt.Errorf("%w: operand %T", ErrUnsupported, o.Value)
}

func (c *compiler) block(b *ir.Block) (*block, error) {
	out := &block{stmts: make([]stmt, 0, len(b.Stmts))}
	for i := 0; i < len(b.Stmts); i++ {
		if cs, n, err := c.literal(b.Stmts[i:]); err != nil {
			return nil, err
		} else if n > 0 {
			out.stmts = append(out.stmts, cs)
			i += n - 1
			continue
		}
		cs, err := c.stmt(b.Stmts[i])
		if err != nil {
			return nil, err
		}
		out.stmts = append(out.stmts, cs)
	}
	return out, nil
}

// literal fuses a collection literal into one statement: the planner makes
// `[a, b]`, `{"id": x, "message": m}` and `{a, b}` as a Make statement and
// then one append, insert or add per element, and building the collection
// at once costs one allocation instead of one per element. It returns how
// many statements it fused, 0 when stmts does not start with a literal.
// The elements are read when the literal is built, as the separate
// statements would read them: nothing runs in between.
func (c *compiler) literal(stmts []ir.Stmt) (stmt, int, error) {
	var out stmt
	var target ir.Local
	switch s := stmts[0].(type) {
	case *ir.MakeArrayStmt:
		out.op, target = opArrayOf, s.Target
	case *ir.MakeObjectStmt:
		out.op, target = opObjectOf, s.Target
	case *ir.MakeSetStmt:
		out.op, target = opSetOf, s.Target
	default:
		return out, 0, nil
	}
	out.target = c.local(target)
	n := 1
	for _, s := range stmts[1:] {
		var srcs []ir.Operand
		switch s := s.(type) {
		case *ir.ArrayAppendStmt:
			if out.op == opArrayOf && s.Array == target {
				srcs = []ir.Operand{s.Value}
			}
		case *ir.ObjectInsertStmt: // not InsertOnce: that one checks for conflicts
			if out.op == opObjectOf && s.Object == target {
				srcs = []ir.Operand{s.Key, s.Value}
			}
		case *ir.SetAddStmt:
			if out.op == opSetOf && s.Set == target {
				srcs = []ir.Operand{s.Value}
			}
		}
		if srcs == nil {
			break
		}
		for _, o := range srcs {
			op, err := c.operand(o)
			if err != nil {
				return out, 0, err
			}
			out.args = append(out.args, op)
		}
		n++
	}
	return out, n, nil
}

func (c *compiler) stmt(s ir.Stmt) (stmt, error) {
	loc := s.GetLocation()
	out := stmt{loc: &ast.Location{Row: loc.Row, Col: loc.Col}}
	var err error
	ops := func(dst ...*operand) func(src ...ir.Operand) {
		return func(src ...ir.Operand) {
			for i := range src {
				if err == nil {
					*dst[i], err = c.operand(src[i])
				}
			}
		}
	}
	switch s := s.(type) {
	case *ir.ReturnLocalStmt:
		out.op, out.target = opReturnLocal, c.local(s.Source)
	case *ir.CallStmt:
		out.target = c.local(s.Result)
		out.args = make([]operand, len(s.Args))
		for i, a := range s.Args {
			if out.args[i], err = c.operand(a); err != nil {
				return out, err
			}
		}
		if fn, ok := c.funcs[s.Func]; ok {
			out.op, out.fn = opCall, fn
			if len(fn.params) != len(s.Args) {
				return out, fmt.Errorf("irvm: %s called with %d arguments, takes %d", s.Func, len(s.Args), len(fn.params))
			}
		} else if bi, ok := c.builtins[s.Func]; ok {
			out.op, out.bi = opCallBuiltin, bi
		} else {
			return out, fmt.Errorf("%w: call to unknown function %s", ErrUnsupported, s.Func)
		}
	case *ir.BlockStmt:
		out.op = opBlock
		out.blocks, err = c.blocks(s.Blocks)
	case *ir.BreakStmt:
		out.op, out.index = opBreak, int(s.Index)
	case *ir.AssignVarStmt:
		out.op, out.target = opAssignVar, c.local(s.Target)
		ops(&out.a)(s.Source)
	case *ir.AssignVarOnceStmt:
		out.op, out.target = opAssignVarOnce, c.local(s.Target)
		ops(&out.a)(s.Source)
	case *ir.AssignIntStmt:
		out.op, out.target = opAssignVar, c.local(s.Target)
		out.a = operand{local: -1, term: ast.IntNumberTerm(int(s.Value))}
	case *ir.ScanStmt:
		out.op = opScan
		out.a = operand{local: c.local(s.Source)}
		out.target, out.target2 = c.local(s.Key), c.local(s.Value)
		out.block, err = c.block(s.Block)
	case *ir.NopStmt:
		out.op = opNop
	case *ir.NotStmt:
		out.op = opNot
		out.block, err = c.block(s.Block)
	case *ir.DotStmt:
		out.op, out.target = opDot, c.local(s.Target)
		if l, ok := s.Source.Value.(ir.Local); ok && c.data[l] {
			out.op = opDotData
		}
		ops(&out.a, &out.b)(s.Source, s.Key)
	case *ir.LenStmt:
		out.op, out.target = opLen, c.local(s.Target)
		ops(&out.a)(s.Source)
	case *ir.EqualStmt:
		out.op = opEqual
		ops(&out.a, &out.b)(s.A, s.B)
	case *ir.NotEqualStmt:
		out.op = opNotEqual
		ops(&out.a, &out.b)(s.A, s.B)
	case *ir.MakeNullStmt:
		out.op, out.target = opAssignVar, c.local(s.Target)
		out.a = operand{local: -1, term: ast.NullTerm()}
	case *ir.MakeNumberIntStmt:
		out.op, out.target = opAssignVar, c.local(s.Target)
		out.a = operand{local: -1, term: ast.IntNumberTerm(int(s.Value))}
	case *ir.MakeNumberRefStmt:
		if s.Index < 0 || s.Index >= len(c.strings) {
			return out, fmt.Errorf("irvm: number index %d out of range", s.Index)
		}
		out.op, out.target = opAssignVar, c.local(s.Target)
		out.a = operand{local: -1, term: ast.NewTerm(ast.Number(c.policy.Static.Strings[s.Index].Value))}
	case *ir.MakeArrayStmt:
		out.op, out.target, out.index = opMakeArray, c.local(s.Target), int(s.Capacity)
	case *ir.MakeObjectStmt:
		out.op, out.target = opMakeObject, c.local(s.Target)
	case *ir.MakeSetStmt:
		out.op, out.target = opMakeSet, c.local(s.Target)
	case *ir.IsArrayStmt:
		out.op = opIsArray
		ops(&out.a)(s.Source)
	case *ir.IsObjectStmt:
		out.op = opIsObject
		ops(&out.a)(s.Source)
	case *ir.IsSetStmt:
		out.op = opIsSet
		ops(&out.a)(s.Source)
	case *ir.IsDefinedStmt:
		out.op, out.target = opIsDefined, c.local(s.Source)
	case *ir.IsUndefinedStmt:
		out.op, out.target = opIsUndefined, c.local(s.Source)
	case *ir.ResetLocalStmt:
		out.op, out.target = opResetLocal, c.local(s.Target)
	case *ir.ArrayAppendStmt:
		out.op, out.target = opArrayAppend, c.local(s.Array)
		ops(&out.a)(s.Value)
	case *ir.ObjectInsertStmt:
		out.op, out.target = opObjectInsert, c.local(s.Object)
		ops(&out.a, &out.b)(s.Key, s.Value)
	case *ir.ObjectInsertOnceStmt:
		out.op, out.target = opObjectInsertOnce, c.local(s.Object)
		ops(&out.a, &out.b)(s.Key, s.Value)
	case *ir.SetAddStmt:
		out.op, out.target = opSetAdd, c.local(s.Set)
		ops(&out.a)(s.Value)
	case *ir.ResultSetAddStmt:
		out.op, out.target = opResultSetAdd, c.local(s.Value)
	default:
		return out, fmt.Errorf("%w: statement %T", ErrUnsupported, s)
	}
	return out, err
}

// Eval runs the program on input (nil for none) and data. It returns the
// values the plan added to its result set, in order: for a query plan, one
// object per result, binding the query's variables.
func (p *Program) Eval(ctx context.Context, input, data ast.Value) ([]ast.Value, error) {
	m, _ := p.pool.Get().(*machine)
	if m == nil {
		m = &machine{
			stack: make([]ast.Value, p.stack),
			memo:  make([]ast.Value, p.memoized),
			done:  make([]bool, p.memoized),
		}
		m.iter = func(t *ast.Term) error {
			if m.out != nil {
				return errMultipleOutputs
			}
			m.out = t.Value
			return nil
		}
	}
	m.ctx = ctx
	m.bctx = topdown.BuiltinContext{Context: ctx, Cache: builtins.Cache{}, Metrics: p.metrics}
	m.results = nil
	frame := m.stack[:p.entry.frame]
	clear(frame)
	frame[ir.Input] = input
	frame[ir.Data] = data
	err := m.runEntry(p.entry, frame, m.stack[p.entry.frame:])
	results := m.results
	clear(m.stack)
	clear(m.memo)
	clear(m.done)
	m.results, m.ctx, m.out, m.slab, m.calls = nil, nil, nil, nil, 0
	m.bctx = topdown.BuiltinContext{}
	p.pool.Put(m)
	if err != nil {
		return nil, err
	}
	return results, nil
}

// runEntry runs the entry plan. A panic (a built-in function given what it
// did not expect, or a bug here) is an evaluation error, never a crash.
func (m *machine) runEntry(fn *function, frame, rest []ast.Value) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("irvm: evaluation failed: %v", r)
		}
	}()
	_, err = m.run(fn, frame, rest)
	return err
}

var errMultipleOutputs = errors.New("irvm: a built-in function gave more than one output")

// machine is the state of one evaluation; Program pools them.
type machine struct {
	ctx     context.Context
	bctx    topdown.BuiltinContext
	stack   []ast.Value
	memo    []ast.Value
	done    []bool
	results []ast.Value
	ret     ast.Value
	out     ast.Value
	iter    func(*ast.Term) error
	key     ast.Term    // scratch term for lookups
	args    []*ast.Term // a built-in function's operands, reused
	vals    []ast.Value // an inlined built-in function's operands, reused
	slab    []ast.Term  // see term
	calls   int         // functions run so far, for cancelEvery
}

// cancelEvery is how often, in function calls, an evaluation looks at its
// context: a cancellable context takes a lock to say whether it is done.
const cancelEvery = 32

// Block exits. A block's run returns normal when it reaches its end, or the
// index of a break: 0 leaves the block itself (what a statement that fails
// does), n leaves n blocks around it as well. returned unwinds a function.
const (
	normal   = -1
	returned = 1 << 30
)

// run executes fn with frame as its locals and rest as the stack above it.
func (m *machine) run(fn *function, frame, rest []ast.Value) (ast.Value, error) {
	for _, b := range fn.blocks {
		brk, err := m.block(b, frame, rest)
		if err != nil {
			return nil, err
		}
		if brk == returned {
			return m.ret, nil
		}
		if brk > 0 { // leaves the function
			break
		}
	}
	if fn.ret < 0 {
		return nil, nil
	}
	return frame[fn.ret], nil
}

func (m *machine) read(o *operand, frame []ast.Value) ast.Value {
	if o.local >= 0 {
		return frame[o.local]
	}
	return o.term.Value
}

// term is o as a term. A local's term comes from the evaluation's slab of
// terms: values the evaluation builds keep such terms, so a slab is never
// reused by another evaluation.
func (m *machine) term(o *operand, frame []ast.Value) *ast.Term {
	if o.local >= 0 {
		v := frame[o.local]
		if v == nil {
			return nil
		}
		if len(m.slab) == cap(m.slab) {
			m.slab = make([]ast.Term, 0, slabSize)
		}
		m.slab = append(m.slab, ast.Term{Value: v})
		return &m.slab[len(m.slab)-1]
	}
	return o.term
}

// slabSize is how many terms an evaluation allocates at once.
const slabSize = 128

// block runs b; see normal and returned for what it returns.
func (m *machine) block(b *block, frame, rest []ast.Value) (int, error) {
	for i := range b.stmts {
		s := &b.stmts[i]
		switch s.op {
		case opDot, opDotData:
			src, key := m.read(&s.a, frame), m.read(&s.b, frame)
			if src == nil || key == nil {
				return 0, nil
			}
			var v ast.Value
			if s.op == opDot {
				v = m.dot(src, key)
			} else {
				v = m.dotData(src, key)
			}
			if v == nil {
				return 0, nil
			}
			frame[s.target] = v
		case opEqual, opNotEqual:
			a, b := m.read(&s.a, frame), m.read(&s.b, frame)
			if a == nil || b == nil {
				return 0, nil
			}
			if (ast.Compare(a, b) == 0) != (s.op == opEqual) {
				return 0, nil
			}
		case opAssignVar:
			v := m.read(&s.a, frame)
			if v == nil {
				return 0, nil
			}
			frame[s.target] = v
		case opAssignVarOnce:
			v := m.read(&s.a, frame)
			if v == nil {
				return 0, nil
			}
			if cur := frame[s.target]; cur != nil {
				if ast.Compare(cur, v) != 0 {
					return 0, conflict(s, "complete rules must not produce multiple outputs")
				}
				continue
			}
			frame[s.target] = v
		case opCall, opCallBuiltin:
			var v ast.Value
			var err error
			if s.op == opCall {
				v, err = m.call(s, frame, rest)
			} else {
				v, err = m.builtin(s, frame)
			}
			if err != nil {
				return 0, err
			}
			if v == nil {
				return 0, nil
			}
			frame[s.target] = v
		case opIsDefined:
			if frame[s.target] == nil {
				return 0, nil
			}
		case opIsUndefined:
			if frame[s.target] != nil {
				return 0, nil
			}
		case opResetLocal:
			frame[s.target] = nil
		case opNot:
			brk, err := m.block(s.block, frame, rest)
			switch {
			case err != nil:
				return 0, err
			case brk == returned:
				return brk, nil
			case brk == normal: // the negated block holds: not fails
				return 0, nil
			case brk > 0:
				return brk - 1, nil
			}
		case opBlock:
			for _, sb := range s.blocks {
				brk, err := m.block(sb, frame, rest)
				if err != nil {
					return 0, err
				}
				if brk == returned {
					return brk, nil
				}
				if brk > 0 {
					return brk - 1, nil
				}
			}
		case opBreak:
			return s.index, nil
		case opScan:
			brk, err := m.scan(s, frame, rest)
			if err != nil || brk != normal {
				return brk, err
			}
		case opArrayOf, opObjectOf, opSetOf:
			v := m.literal(s, frame)
			if v == nil {
				return 0, nil
			}
			frame[s.target] = v
		case opMakeObject:
			frame[s.target] = ast.NewObject()
		case opMakeSet:
			frame[s.target] = ast.NewSet()
		case opMakeArray:
			frame[s.target] = ast.NewArray(make([]*ast.Term, 0, s.index)...)
		case opObjectInsert, opObjectInsertOnce:
			obj, ok := frame[s.target].(ast.Object)
			k, v := m.term(&s.a, frame), m.term(&s.b, frame)
			if !ok || k == nil || v == nil {
				return 0, nil
			}
			if s.op == opObjectInsertOnce {
				if cur := obj.Get(k); cur != nil {
					if ast.Compare(cur.Value, v.Value) != 0 {
						return 0, conflict(s, "object keys must be unique")
					}
					continue
				}
			}
			obj.Insert(k, v)
		case opSetAdd:
			set, ok := frame[s.target].(ast.Set)
			v := m.term(&s.a, frame)
			if !ok || v == nil {
				return 0, nil
			}
			set.Add(v)
		case opArrayAppend:
			arr, ok := frame[s.target].(*ast.Array)
			v := m.term(&s.a, frame)
			if !ok || v == nil {
				return 0, nil
			}
			frame[s.target] = arr.Append(v)
		case opLen:
			v := m.read(&s.a, frame)
			n := -1
			switch v := v.(type) {
			case *ast.Array:
				n = v.Len()
			case ast.Object:
				n = v.Len()
			case ast.Set:
				n = v.Len()
			case ast.String:
				n = len([]rune(string(v)))
			}
			if n < 0 {
				return 0, nil
			}
			frame[s.target] = ast.InternedValue(n)
		case opIsArray, opIsObject, opIsSet:
			v := m.read(&s.a, frame)
			var ok bool
			switch s.op {
			case opIsArray:
				_, ok = v.(*ast.Array)
			case opIsObject:
				_, ok = v.(ast.Object)
			case opIsSet:
				_, ok = v.(ast.Set)
			}
			if !ok {
				return 0, nil
			}
		case opReturnLocal:
			m.ret = frame[s.target]
			return returned, nil
		case opResultSetAdd:
			if v := frame[s.target]; v != nil {
				m.results = append(m.results, v)
			}
		case opNop:
		}
	}
	return normal, nil
}

// literal builds a fused collection literal; nil when an element is
// undefined, as the statement appending it would fail.
func (m *machine) literal(s *stmt, frame []ast.Value) ast.Value {
	terms := make([]*ast.Term, len(s.args))
	for i := range s.args {
		if terms[i] = m.term(&s.args[i], frame); terms[i] == nil {
			return nil
		}
	}
	switch s.op {
	case opArrayOf:
		return ast.NewArray(terms...)
	case opSetOf:
		return ast.NewSet(terms...)
	}
	obj := ast.NewObjectWithCapacity(len(terms) / 2)
	for i := 0; i < len(terms); i += 2 {
		obj.Insert(terms[i], terms[i+1])
	}
	return obj
}

// dot is src[key] as the plan's DotStmt reads it: an object's value, an
// array's element, a set's member; nil when there is none.
func (m *machine) dot(src, key ast.Value) ast.Value {
	m.key.Value = key
	var out ast.Value
	switch src := src.(type) {
	case ast.Object:
		if t := src.Get(&m.key); t != nil {
			out = t.Value
		}
	case *ast.Array:
		if t := src.Get(&m.key); t != nil {
			out = t.Value
		}
	case ast.Set:
		if src.Contains(&m.key) {
			out = key
		}
	}
	m.key.Value = nil
	return out
}

// dotData is src[key] where src is a base document (data, or a value read
// from it by a chain of refs): topdown reads such a ref from its store, by
// a path of strings, so a number key finds an object's key written as that
// number (data.users[7] is the key "7"), a string key finds an array's
// element at the index it spells (data.list["1"]), and keys of other types
// find nothing. Everywhere else, dot applies.
func (m *machine) dotData(src, key ast.Value) ast.Value {
	switch k := key.(type) {
	case ast.Number:
		if obj, ok := src.(ast.Object); ok {
			return m.dot(obj, ast.String(k.String()))
		}
	case ast.String:
		if arr, ok := src.(*ast.Array); ok {
			i, ok := util.Atoi(string(k))
			if !ok || i < 0 || i >= arr.Len() {
				return nil
			}
			return arr.Elem(i).Value
		}
	default:
		if _, ok := src.(ast.Set); !ok {
			return nil
		}
	}
	return m.dot(src, key)
}

// dataPaths are the locals of a function (with params, blocks) that hold a
// base document the way a ref names it: data itself, what a DotStmt reads
// from a data path, and the values a ScanStmt visits in one (data.a[_].b is
// a scan of data.a and a dot on each value). dotData reads from them, as
// topdown reads the ref from its store. A local that anything else writes
// (an assignment: x := data.a; x[1] is a lookup in a value) is not one.
func dataPaths(params []int, blocks []*ir.Block) map[ir.Local]bool {
	if len(params) < 2 || params[1] != int(ir.Data) {
		return nil
	}
	type read struct{ src, dst ir.Local }
	var reads []read
	other := map[ir.Local]bool{}
	for _, p := range params {
		if p != int(ir.Data) {
			other[ir.Local(p)] = true
		}
	}
	var walk func(bs []*ir.Block)
	walk = func(bs []*ir.Block) {
		for _, b := range bs {
			for _, s := range b.Stmts {
				switch s := s.(type) {
				case *ir.DotStmt:
					if l, ok := s.Source.Value.(ir.Local); ok {
						reads = append(reads, read{l, s.Target})
					} else {
						other[s.Target] = true
					}
				case *ir.ScanStmt:
					reads = append(reads, read{s.Source, s.Value})
					other[s.Key] = true
					walk([]*ir.Block{s.Block})
				case *ir.BlockStmt:
					walk(s.Blocks)
				case *ir.NotStmt:
					walk([]*ir.Block{s.Block})
				case *ir.WithStmt:
					other[s.Local] = true
					walk([]*ir.Block{s.Block})
				case *ir.CallStmt:
					other[s.Result] = true
				case *ir.CallDynamicStmt:
					other[s.Result] = true
				case *ir.AssignVarStmt:
					other[s.Target] = true
				case *ir.AssignVarOnceStmt:
					other[s.Target] = true
				case *ir.AssignIntStmt:
					other[s.Target] = true
				case *ir.LenStmt:
					other[s.Target] = true
				case *ir.MakeNullStmt:
					other[s.Target] = true
				case *ir.MakeNumberIntStmt:
					other[s.Target] = true
				case *ir.MakeNumberRefStmt:
					other[s.Target] = true
				case *ir.MakeArrayStmt:
					other[s.Target] = true
				case *ir.MakeObjectStmt:
					other[s.Target] = true
				case *ir.MakeSetStmt:
					other[s.Target] = true
				case *ir.ArrayAppendStmt:
					other[s.Array] = true
				case *ir.ObjectInsertStmt:
					other[s.Object] = true
				case *ir.ObjectInsertOnceStmt:
					other[s.Object] = true
				case *ir.ObjectMergeStmt:
					other[s.Target] = true
				case *ir.SetAddStmt:
					other[s.Set] = true
				}
			}
		}
	}
	walk(blocks)
	// Start from every local a read writes, and drop those that something
	// else writes or that a read from a non-path writes, until none drops.
	paths := map[ir.Local]bool{ir.Data: !other[ir.Data]}
	for _, r := range reads {
		paths[r.dst] = !other[r.dst]
	}
	for changed := true; changed; {
		changed = false
		for _, r := range reads {
			if paths[r.dst] && !paths[r.src] {
				paths[r.dst], changed = false, true
			}
		}
	}
	return paths
}

// scan runs the block of s once for each element of its source.
func (m *machine) scan(s *stmt, frame, rest []ast.Value) (int, error) {
	out := normal
	visit := func(k, v ast.Value) (bool, error) {
		frame[s.target], frame[s.target2] = k, v
		brk, err := m.block(s.block, frame, rest)
		switch {
		case err != nil:
			return false, err
		case brk == returned:
			out = brk
			return false, nil
		case brk <= 0: // end of body, or a failed statement: next element
			return true, nil
		case brk == 1: // leaves the scan
			return false, nil
		default:
			out = brk - 2
			return false, nil
		}
	}
	switch src := frame[s.a.local].(type) {
	case *ast.Array:
		for i := 0; i < src.Len(); i++ {
			more, err := visit(ast.InternedValue(i), src.Elem(i).Value)
			if err != nil || !more {
				return out, err
			}
		}
	case ast.Object:
		for _, k := range src.Keys() {
			more, err := visit(k.Value, src.Get(k).Value)
			if err != nil || !more {
				return out, err
			}
		}
	case ast.Set:
		for _, e := range src.Slice() {
			more, err := visit(e.Value, e.Value)
			if err != nil || !more {
				return out, err
			}
		}
	}
	return out, nil
}

// call runs a planned function, from the memo when it is a rule already
// evaluated.
func (m *machine) call(s *stmt, frame, rest []ast.Value) (ast.Value, error) {
	fn := s.fn
	if fn.memo >= 0 && m.done[fn.memo] {
		return m.memo[fn.memo], nil
	}
	if m.calls++; m.calls%cancelEvery == 0 && m.ctx.Err() != nil {
		return nil, &topdown.Error{Code: topdown.CancelErr, Message: "caller cancelled query execution"}
	}
	callee := rest[:fn.frame]
	clear(callee)
	// An undefined argument is passed on undefined, as the Wasm compiler
	// passes it: a rule is called with the input even when there is none,
	// and only the statements that read it fail.
	for i, p := range fn.params {
		callee[p] = m.read(&s.args[i], frame)
	}
	v, err := m.run(fn, callee, rest[fn.frame:])
	if err != nil {
		return nil, err
	}
	if fn.memo >= 0 {
		m.memo[fn.memo], m.done[fn.memo] = v, true
	}
	return v, nil
}

// builtin calls one of topdown's built-in functions. As in topdown without
// strict built-in errors, an error makes the call undefined, except a halt.
func (m *machine) builtin(s *stmt, frame []ast.Value) (ast.Value, error) {
	if s.bi.inline != nil {
		vals := m.vals[:0]
		for i := range s.args {
			v := m.read(&s.args[i], frame)
			if v == nil {
				return nil, nil
			}
			vals = append(vals, v)
		}
		out := s.bi.inline(m, vals)
		clear(vals)
		m.vals = vals
		return out, nil
	}
	args := m.args[:0]
	for i := range s.args {
		t := m.term(&s.args[i], frame)
		if t == nil {
			return nil, nil
		}
		args = append(args, t)
	}
	m.out = nil
	var err error
	var out ast.Value
	if s.bi.relation {
		var outs []*ast.Term
		err = s.bi.f(m.bctx, args, func(t *ast.Term) error { outs = append(outs, t); return nil })
		out = ast.NewArray(outs...)
	} else {
		err = s.bi.f(m.bctx, args, m.iter)
		out = m.out
		m.out = nil
	}
	clear(args)
	m.args = args
	if err != nil {
		var halt topdown.Halt
		if errors.As(err, &halt) {
			return nil, halt.Err
		}
		return nil, nil
	}
	return out, nil
}

func conflict(s *stmt, msg string) error {
	return &topdown.Error{Code: topdown.ConflictErr, Message: msg, Location: s.loc}
}
