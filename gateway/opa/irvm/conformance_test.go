package irvm

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
	"github.com/open-policy-agent/opa/v1/test/cases"
	"github.com/open-policy-agent/opa/v1/test/cases/testdata"
	"github.com/open-policy-agent/opa/v1/topdown"
	"github.com/open-policy-agent/opa/v1/types"
	"github.com/open-policy-agent/opa/v1/util"
)

// The kinds of difference between irvm and topdown that are not bugs, and
// that TestOPAConformance accepts wherever they occur; acceptedDifferences
// says why. Nothing else is accepted, short of a knownDifferences entry.
const (
	// diffErrorWording: both engines fail, in different words.
	diffErrorWording = "error wording"
	// diffStrictOnly: topdown fails only with strict built-in errors.
	diffStrictOnly = "strict-only built-in error"
)

var acceptedDifferences = map[string]string{
	diffErrorWording: "irvm reports a failure (a conflict, a halting built-in error) in its own words and with the plan's " +
		"locations; what must agree is that both engines fail, and the error code where both give a topdown.Error",
	diffStrictOnly: "the case's error (strict_error) is a built-in error topdown raises only with strict built-in errors; " +
		"irvm implements the non-strict mode (an erring built-in is undefined), as OPA's Wasm target does, so it is held " +
		"to topdown's non-strict answer instead, as OPA's own Wasm conformance runner holds Wasm",
}

// knownDifferences are the conformance cases (by subtest name, file/note)
// on which irvm may answer otherwise than topdown, each with the reason the
// difference is not a bug. A listed case still runs; only a disagreement on
// it is forgiven, and an entry whose case agrees is reported as stale, so
// that the table never hides more than it says. It is empty: every case
// irvm runs agrees with topdown.
var knownDifferences = map[string]string{}

// conformanceStats counts the outcomes of TestOPAConformance.
type conformanceStats struct {
	mu          sync.Mutex
	run         int
	agreed      int
	bothFailed  int            // agreed: both engines fail
	accepted    map[string]int // agreed with an accepted difference, by kind
	known       int            // disagreed, as knownDifferences allows
	failed      int
	unsupported map[string]int // by reason
}

func (s *conformanceStats) count(f func(s *conformanceStats)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(s)
}

// TestOPAConformance runs OPA's own conformance cases (the YAML files of
// package test/cases, which topdown and OPA's Wasm runtime are tested
// against) through irvm and through topdown. For each case whose plan irvm
// runs, both engines must give the same result set, or both fail; where the
// case states the result it wants, irvm's must be that one. Plans irvm
// refuses (ErrUnsupported) are counted by reason, not failed: the gateway
// keeps topdown for those.
func TestOPAConformance(t *testing.T) {
	registerTestSleep()
	set := loadConformanceCases(t)
	st := &conformanceStats{unsupported: map[string]int{}, accepted: map[string]int{}}
	seen := map[string]bool{}
	t.Run("cases", func(t *testing.T) {
		for _, tc := range set {
			name := tc.Filename + "/" + tc.Note
			if _, ok := knownDifferences[name]; ok {
				seen[name] = true
			}
			t.Run(name, func(t *testing.T) {
				// The cases share nothing but the counts, and the engines
				// are safe for concurrent use. A case that sets environment
				// variables (none does at present) runs alone: it runs
				// while the parallel ones wait, and restores them after.
				if len(tc.Env) == 0 {
					t.Parallel()
				}
				for k, v := range tc.Env {
					t.Setenv(k, v)
				}
				runConformanceCase(t, name, tc, st)
			})
		}
	})
	for name := range knownDifferences {
		if !seen[name] {
			t.Errorf("knownDifferences names %q, which is not a conformance case", name)
		}
	}
	unsupported := 0
	reasons := make([]string, 0, len(st.unsupported))
	for r, n := range st.unsupported {
		unsupported += n
		reasons = append(reasons, r)
	}
	sort.Slice(reasons, func(i, j int) bool {
		if a, b := st.unsupported[reasons[i]], st.unsupported[reasons[j]]; a != b {
			return a > b
		}
		return reasons[i] < reasons[j]
	})
	t.Logf("conformance cases: %d in all; %d run on both engines: %d agreed (%d of them by both failing), %d known differences, %d failed; %d skipped as unsupported",
		len(set), st.run, st.agreed, st.bothFailed, st.known, st.failed, unsupported)
	for _, kind := range []string{diffErrorWording, diffStrictOnly} {
		t.Logf("  accepted %4d  %s: %s", st.accepted[kind], kind, acceptedDifferences[kind])
	}
	for _, r := range reasons {
		t.Logf("  unsupported %4d  %s", st.unsupported[r], r)
	}
}

var sleepOnce sync.Once

// registerTestSleep registers test.sleep, the built-in function the case
// "time/time caching" calls: it is not one of OPA's, and OPA's own runners
// of these cases (topdown's, the Wasm SDK's, the IR case generator)
// register it the same way. Registering it is global, so it is done once.
func registerTestSleep() {
	sleepOnce.Do(func() {
		if _, ok := ast.BuiltinMap["test.sleep"]; ok {
			return
		}
		ast.RegisterBuiltin(&ast.Builtin{Name: "test.sleep", Decl: types.NewFunction(types.Args(types.S), types.NewNull())})
		topdown.RegisterBuiltinFunc("test.sleep", func(_ topdown.BuiltinContext, operands []*ast.Term, iter func(*ast.Term) error) error {
			s, ok := operands[0].Value.(ast.String)
			if !ok {
				return errors.New("test.sleep: operand must be a string")
			}
			d, err := time.ParseDuration(string(s))
			if err != nil {
				return err
			}
			time.Sleep(d)
			return iter(ast.NullTerm())
		})
	})
}

// loadConformanceCases reads the v1 cases from the file system OPA embeds
// them in, as cases.Load reads them from a directory.
func loadConformanceCases(t *testing.T) []cases.TestCase {
	t.Helper()
	var out []cases.TestCase
	err := fs.WalkDir(testdata.V1, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		bs, err := testdata.V1.ReadFile(path)
		if err != nil {
			return err
		}
		var s cases.Set
		if err := util.Unmarshal(bs, &s); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		for _, tc := range s.Cases {
			tc.Filename = path
			out = append(out, tc)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(out) == 0 {
		t.Fatal("no conformance cases found")
	}
	return out
}

// conformanceTimeout bounds one case on one engine; a case that needs more
// is a hang, not a slow case.
const conformanceTimeout = 20 * time.Second

// runConformanceCase plans and runs one case on both engines, as OPA's
// topdown runner sets it up: rego v1 modules (the v1 cases are written in
// it), the case's experimental keywords, data in an in-memory store (a
// value for irvm), input_term over input, and strict built-in errors where
// the case asks for them.
func runConformanceCase(t *testing.T, name string, tc cases.TestCase, st *conformanceStats) {
	ctx, cancel := context.WithTimeout(context.Background(), conformanceTimeout)
	defer cancel()

	popts := ast.ParserOptions{RegoVersion: ast.RegoV1}
	if tc.ExperimentalKeywords {
		popts.Capabilities = ast.CapabilitiesForThisVersion(ast.CapabilitiesExperimentalKeywords(true))
	}
	compilerFor := func() *ast.Compiler {
		modules := make(map[string]*ast.Module, len(tc.Modules))
		for i, src := range tc.Modules {
			file := fmt.Sprintf("test-%d.rego", i)
			m, err := ast.ParseModuleWithOpts(file, src, popts)
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			modules[file] = m
		}
		c := ast.NewCompiler()
		if popts.Capabilities != nil {
			c = c.WithCapabilities(popts.Capabilities)
		}
		if c.Compile(modules); c.Failed() {
			t.Fatalf("compile: %v", c.Errors)
		}
		return c
	}
	data := map[string]any{}
	if tc.Data != nil {
		data = *tc.Data
	}
	store := func() storage.Store { return inmem.NewFromObjectWithOpts(data, inmem.OptRoundTripOnWrite(false)) }
	var input ast.Value
	switch {
	case tc.InputTerm != nil:
		term, err := ast.ParseTerm(*tc.InputTerm)
		if err != nil {
			t.Fatalf("input_term: %v", err)
		}
		input = term.Value
	case tc.Input != nil:
		v, err := ast.InterfaceToValue(*tc.Input)
		if err != nil {
			t.Fatalf("input: %v", err)
		}
		input = v
	}
	dataValue, err := ast.InterfaceToValue(data)
	if err != nil {
		t.Fatalf("data: %v", err)
	}

	// The plan, or the reason irvm does not run it.
	plan, err := Plan(ctx, tc.Query, compilerFor(), rego.Store(store()))
	var prog *Program
	if err == nil {
		prog, err = Compile(plan, plan.Plans.Plans[0].Name)
	} else {
		err = fmt.Errorf("%w: planner: %v", ErrUnsupported, err)
	}
	if errors.Is(err, ErrUnsupported) {
		reason := err.Error()
		if i := strings.Index(reason, ErrUnsupported.Error()); i >= 0 {
			reason = strings.TrimPrefix(reason[i+len(ErrUnsupported.Error()):], ": ")
		}
		st.count(func(s *conformanceStats) { s.unsupported[reason]++ })
		t.Skipf("unsupported: %v", err)
	}
	if err != nil {
		t.Fatalf("irvm.Compile: %v", err)
	}

	topdownEval := func(strict bool) ([]ast.Value, error) {
		opts := []func(*rego.Rego){
			rego.Query(tc.Query),
			rego.Compiler(compilerFor()),
			rego.Store(store()),
			rego.GenerateJSON(func(t *ast.Term, _ *rego.EvalContext) (any, error) { return t, nil }),
			rego.StrictBuiltinErrors(strict),
		}
		if popts.Capabilities != nil {
			opts = append(opts, rego.Capabilities(popts.Capabilities))
		}
		if input != nil {
			opts = append(opts, rego.ParsedInput(input))
		}
		rs, err := rego.New(opts...).Eval(ctx)
		if err != nil {
			return nil, err
		}
		return topdownResults(rs)
	}
	want, werr := topdownEval(tc.StrictError)
	got, gerr := prog.Eval(ctx, input, dataValue)

	problem := compareResults(want, werr, got, gerr)
	var accepted string
	switch {
	case problem != "" && tc.StrictError && werr != nil && gerr == nil:
		want, werr = topdownEval(false)
		problem, accepted = compareResults(want, werr, got, gerr), diffStrictOnly
	case problem == "" && werr != nil && werr.Error() != gerr.Error():
		accepted = diffErrorWording
	}
	if problem == "" && tc.WantResult != nil && gerr == nil {
		problem = compareWanted(*tc.WantResult, got, tc.SortBindings, tc.IgnoreGeneratedVars)
	}

	reason, known := knownDifferences[name]
	st.count(func(s *conformanceStats) {
		s.run++
		switch {
		case problem == "":
			s.agreed++
			if gerr != nil {
				s.bothFailed++
			}
			if accepted != "" {
				s.accepted[accepted]++
			}
		case known:
			s.known++
		default:
			s.failed++
		}
	})
	switch {
	case problem != "" && known:
		t.Logf("known difference (%s): %s", reason, problem)
	case problem != "":
		t.Errorf("query %s\n%s", tc.Query, problem)
	case known:
		t.Errorf("stale knownDifferences entry (%s): irvm now agrees with topdown", reason)
	}
}

// topdownResults turns topdown's result set into the objects the plan adds
// to its result set: the query's variables, and the value of each
// expression rego captured, under the name the planner gives it (the
// capturing variable ^termN, N counting the captured expressions in order).
func topdownResults(rs rego.ResultSet) ([]ast.Value, error) {
	out := make([]ast.Value, 0, len(rs))
	for _, r := range rs {
		obj := ast.NewObject()
		for k, v := range r.Bindings {
			t, ok := v.(*ast.Term)
			if !ok {
				return nil, fmt.Errorf("binding %s is a %T", k, v)
			}
			obj.Insert(ast.StringTerm(k), t)
		}
		n := 0
		for _, e := range r.Expressions {
			if t, ok := e.Value.(*ast.Term); ok { // a captured value; true otherwise
				n++
				obj.Insert(ast.StringTerm("^term"+strconv.Itoa(n)), t)
			}
		}
		out = append(out, obj)
	}
	return out, nil
}

// compareResults says how irvm's answer differs from topdown's, "" when it
// does not: the same result sets (as multisets: the engines may order the
// results of a query that iterates differently), or both an error. Error
// messages are not compared (diffErrorWording); codes are, where both
// engines give a topdown.Error.
func compareResults(want []ast.Value, werr error, got []ast.Value, gerr error) string {
	switch {
	case werr != nil && gerr != nil:
		var we, ge *topdown.Error
		if errors.As(werr, &we) && errors.As(gerr, &ge) && we.Code != ge.Code {
			return fmt.Sprintf("error codes differ:\ntopdown: %v\nirvm:    %v", werr, gerr)
		}
		return ""
	case werr != nil:
		return fmt.Sprintf("topdown fails, irvm does not:\ntopdown: %v\nirvm:    %v", werr, got)
	case gerr != nil:
		return fmt.Sprintf("irvm fails, topdown does not:\ntopdown: %v\nirvm:    %v", want, gerr)
	}
	w, g := sortedValues(want), sortedValues(got)
	if !slices.EqualFunc(w, g, func(a, b ast.Value) bool { return ast.Compare(a, b) == 0 }) {
		return fmt.Sprintf("results differ:\ntopdown: %v\nirvm:    %v", w, g)
	}
	return ""
}

func sortedValues(vs []ast.Value) []ast.Value {
	out := slices.Clone(vs)
	slices.SortFunc(out, func(a, b ast.Value) int { return ast.Compare(a, b) })
	return out
}

// compareWanted holds irvm's results to the case's want_result, as OPA's
// topdown conformance runner does: bindings of the query's variables only
// (not the captured expression values), through JSON, so that sets compare
// as the arrays the case writes them as (sorted where the case says so).
func compareWanted(wantResult []map[string]any, got []ast.Value, sortBindings, ignoreGenerated bool) string {
	exp := ast.NewSet()
	for _, b := range wantResult {
		obj := ast.NewObject()
		for k, v := range b {
			val, err := ast.InterfaceToValue(v)
			if err != nil {
				return fmt.Sprintf("want_result: %v", err)
			}
			obj.Insert(ast.StringTerm(k), ast.NewTerm(val))
		}
		exp.Add(ast.NewTerm(obj))
	}
	act := ast.NewSet()
	for _, r := range got {
		obj := ast.NewObject()
		var err error
		r.(ast.Object).Foreach(func(k, v *ast.Term) {
			name := string(k.Value.(ast.String))
			if strings.HasPrefix(name, "^term") || (ignoreGenerated && strings.HasPrefix(name, "__localq")) {
				return
			}
			j, e := ast.JSON(v.Value)
			if e != nil {
				err = e
				return
			}
			if a, ok := j.([]any); ok && sortBindings {
				slices.SortFunc(a, util.Compare)
			}
			val, e := ast.InterfaceToValue(j)
			if e != nil {
				err = e
				return
			}
			obj.Insert(k, ast.NewTerm(val))
		})
		if err != nil {
			return fmt.Sprintf("irvm result %v: %v", r, err)
		}
		act.Add(ast.NewTerm(obj))
	}
	if exp.Compare(act) != 0 {
		return fmt.Sprintf("irvm differs from want_result:\nwant: %v\nirvm: %v", exp, act)
	}
	return ""
}
