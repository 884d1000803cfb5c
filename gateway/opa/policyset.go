package opa

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
	"github.com/open-policy-agent/opa/v1/tester"
	"sigs.k8s.io/yaml"

	"github.com/student-mh-referrals/gateway/gateway"
)

// policySet is one compiled policy set: what Decide evaluates. A set is
// never changed once built, so an evaluation that started on it finishes on
// it whatever a reload does meanwhile.
type policySet struct {
	// query is the decision prepared for OPA's evaluator.
	query    rego.PreparedEvalQuery
	revision string
	rules    []RuleInfo
}

// decide evaluates the decision document for input; nil means it is
// undefined.
func (s *policySet) decide(ctx context.Context, input ast.Value) (ast.Value, error) {
	rs, err := s.query.Eval(ctx, rego.EvalParsedInput(input))
	if err != nil {
		return nil, err
	}
	if len(rs) != 1 || len(rs[0].Expressions) != 1 {
		return nil, nil
	}
	t, ok := rs[0].Expressions[0].Value.(*ast.Term)
	if !ok {
		return nil, fmt.Errorf("the decision is %T, not a term", rs[0].Expressions[0].Value)
	}
	return t.Value, nil
}

// source is what load reads from a file system: the parsed policy and test
// modules, the data document and the revision.
type source struct {
	modules  map[string]*ast.Module
	tests    map[string]*ast.Module
	data     map[string]any
	revision string
}

// compile turns a source into a prepared query for data.referral.decision.
func compile(ctx context.Context, src *source, strict bool) (*policySet, error) {
	if len(src.modules) == 0 {
		return nil, policyError("the policy set has no Rego files", nil)
	}
	modules := copyModules(src.modules)
	compiler := ast.NewCompiler().WithStrict(strict).WithEnablePrintStatements(false)
	compiler.Compile(modules)
	if compiler.Failed() {
		return nil, policyError("the policy set does not compile", compiler.Errors)
	}
	if len(compiler.GetRules(ast.MustParseRef(Query))) == 0 {
		return nil, policyError("the policy set does not define "+Query, nil)
	}
	pq, err := rego.New(
		rego.Query(Query),
		rego.Compiler(compiler),
		rego.Store(inmem.NewFromObject(src.data)),
		rego.GenerateJSON(rawTerm),
	).PrepareForEval(ctx)
	if err != nil {
		return nil, policyError("the policy query cannot be prepared", err)
	}
	return &policySet{query: pq, revision: src.revision, rules: rulesOf(src.modules)}, nil
}

// copyModules copies modules for a compiler, which rewrites what it is given.
func copyModules(ms map[string]*ast.Module) map[string]*ast.Module {
	out := make(map[string]*ast.Module, len(ms))
	for name, m := range ms {
		out[name] = m.Copy()
	}
	return out
}

// rawTerm hands the evaluated decision over as the OPA term it is, so that
// decisionOf reads it without a conversion to map[string]any first.
func rawTerm(t *ast.Term, _ *rego.EvalContext) (any, error) { return t, nil }

// policyError is a policy set that cannot serve: invalid input to New or
// Reload, with the cause (compiler errors, failing test names) in Err.
func policyError(msg string, err error) *gateway.Error {
	return &gateway.Error{Code: gateway.EINVALID, Message: msg, Err: err}
}

// testSet runs the Rego tests of a source (its *_test.rego files) against its
// policies and data, as `opa test` does, and returns how many ran. Any test
// that fails or errors makes the set unfit to serve: the error names the
// failing tests by package and rule name (test names, never test data).
func testSet(ctx context.Context, src *source) (int, error) {
	if len(src.tests) == 0 {
		return 0, nil
	}
	modules := copyModules(src.modules)
	for name, m := range src.tests {
		modules[name] = m.Copy()
	}
	runner := tester.NewRunner().
		SetStore(inmem.NewFromObject(src.data)).
		SetModules(modules).
		CapturePrintOutput(true)
	ch, err := runner.RunTests(ctx, nil)
	if err != nil {
		return 0, policyError("the policy tests cannot run", err)
	}
	ran := 0
	var failed []string
	for r := range ch {
		ran++
		if r.Fail || r.Error != nil {
			failed = append(failed, strings.TrimPrefix(r.Package, "data.")+"."+r.Name)
		}
	}
	if err := ctx.Err(); err != nil {
		return ran, policyError("the policy tests did not finish", err)
	}
	if len(failed) > 0 {
		sort.Strings(failed)
		return ran, policyError(fmt.Sprintf("%d of %d policy tests fail", len(failed), ran),
			errors.New("failing: "+strings.Join(failed, ", ")))
	}
	return ran, nil
}

// load reads, parses and hashes the policy, test and data files of fsys. A
// file system that cannot be read, and a file that does not parse, are
// policy errors; with the latter, load still returns the source so that a
// refusal can name the revision that was refused.
func load(fsys fs.FS) (*source, error) {
	src := &source{modules: map[string]*ast.Module{}, tests: map[string]*ast.Module{}, data: map[string]any{}}
	files, err := readPolicyFiles(fsys)
	if err != nil {
		return nil, policyError("the policy set cannot be read", err)
	}
	src.revision = revisionOf(files)
	for _, f := range files {
		var err error
		if !strings.HasSuffix(f.name, ".rego") {
			err = mergeData(src.data, f.name, f.content)
		} else if m, perr := parseModule(f); perr != nil {
			err = perr
		} else if isTestFile(f.name) {
			src.tests[f.name] = m
		} else {
			src.modules[f.name] = m
		}
		if err != nil {
			return src, policyError("the policy set does not parse", err)
		}
	}
	return src, nil
}

func parseModule(f file) (*ast.Module, error) {
	return ast.ParseModuleWithOpts(f.name, string(f.content), ast.ParserOptions{ProcessAnnotation: true, RegoVersion: ast.RegoV1})
}

// file is one file of a policy set.
type file struct {
	name    string
	content []byte
}

// readPolicyFiles returns the Rego, test and data files of fsys, sorted by
// name.
func readPolicyFiles(fsys fs.FS) ([]file, error) {
	var files []file
	err := fs.WalkDir(fsys, ".", func(name string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if e.IsDir() || !(isPolicyFile(name) || isTestFile(name)) {
			return nil
		}
		b, err := fs.ReadFile(fsys, name)
		if err != nil {
			return err
		}
		files = append(files, file{name: name, content: b})
		return nil
	})
	if err != nil {
		return nil, err
	}
	sort.Slice(files, func(i, j int) bool { return files[i].name < files[j].name })
	return files, nil
}

// revisionOf is "sha256:" and the first 16 hex digits of a hash over the
// name and content of every policy and data file, tests excluded, in name
// order.
func revisionOf(files []file) string {
	return "sha256:" + hashFiles(files, isPolicyFile)[:16]
}

// fingerprintOf hashes every file, tests included, so that Watch notices a
// change to the tests of a refused set as well as to its policies.
func fingerprintOf(files []file) string {
	return hashFiles(files, func(string) bool { return true })
}

func hashFiles(files []file, keep func(name string) bool) string {
	h := sha256.New()
	for _, f := range files {
		if keep(f.name) {
			h.Write([]byte(f.name))
			h.Write([]byte{0})
			h.Write(f.content)
			h.Write([]byte{0})
		}
	}
	return hex.EncodeToString(h.Sum(nil))
}

// isPolicyFile reports whether a file belongs to the policy set in force:
// Rego that is not a test, and bundle data files.
func isPolicyFile(name string) bool {
	base := path.Base(name)
	switch {
	case strings.HasSuffix(base, "_test.rego"):
		return false
	case strings.HasSuffix(base, ".rego"):
		return true
	default:
		return base == "data.json" || base == "data.yaml" || base == "data.yml"
	}
}

// isTestFile reports whether a file holds Rego tests.
func isTestFile(name string) bool { return strings.HasSuffix(path.Base(name), "_test.rego") }

// mergeData puts a data file's document under the data path of its
// directory (a/b/data.json is data.a.b), as OPA bundles do.
func mergeData(root map[string]any, name string, b []byte) error {
	if !strings.HasSuffix(name, ".json") {
		var err error
		if b, err = yaml.YAMLToJSON(b); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	var doc map[string]any
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&doc); err != nil {
		return fmt.Errorf("%s: a data file must hold one JSON object: %w", name, err)
	}
	node := root
	if dir := path.Dir(name); dir != "." {
		for _, key := range strings.Split(dir, "/") {
			next, ok := node[key].(map[string]any)
			if !ok {
				if _, taken := node[key]; taken {
					return fmt.Errorf("%s: data path %q is already a value", name, key)
				}
				next = map[string]any{}
				node[key] = next
			}
			node = next
		}
	}
	for k, v := range doc {
		if _, dup := node[k]; dup {
			return fmt.Errorf("%s: data key %q is defined twice", name, k)
		}
		node[k] = v
	}
	return nil
}
