package policies_test

import (
	"context"
	"io/fs"
	"strings"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
	"github.com/open-policy-agent/opa/v1/tester"

	// The policies take dates in Europe/London; the embedded zone database
	// makes the tests pass on machines without one.
	_ "time/tzdata"

	"github.com/student-mh-referrals/gateway/policies"
)

// minTests guards against a test file silently dropping out of the embedded
// set (a renamed package, a pattern that stopped matching): the Rego suite
// must keep at least this many tests.
const minTests = 150

// TestRego runs every Rego test of the embedded policy set, as `opa test
// policies/` does, one named subtest per Rego test.
func TestRego(t *testing.T) {
	modules := map[string]*ast.Module{}
	err := fs.WalkDir(policies.FS, ".", func(name string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() || !strings.HasSuffix(name, ".rego") {
			return err
		}
		b, err := fs.ReadFile(policies.FS, name)
		if err != nil {
			return err
		}
		m, err := ast.ParseModuleWithOpts(name, string(b), ast.ParserOptions{ProcessAnnotation: true, RegoVersion: ast.RegoV1})
		if err != nil {
			return err
		}
		modules[name] = m
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	ch, err := tester.NewRunner().SetStore(inmem.New()).SetModules(modules).RunTests(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	ran := 0
	var failed []string
	for r := range ch {
		ran++
		t.Run(r.Name, func(t *testing.T) {
			switch {
			case r.Error != nil:
				failed = append(failed, r.Name)
				t.Errorf("%s: error: %v", r.Location, r.Error)
			case r.Fail:
				failed = append(failed, r.Name)
				t.Errorf("%s: failed at %v", r.Location, r.FailedAt)
			case r.Skip:
				t.Skipf("%s: skipped (todo_test_)", r.Location)
			}
		})
	}
	if len(failed) > 0 {
		t.Errorf("%d of %d Rego tests failed:\n  %s", len(failed), ran, strings.Join(failed, "\n  "))
	}
	if ran < minTests {
		t.Errorf("ran %d Rego tests; want at least %d", ran, minTests)
	}
}
