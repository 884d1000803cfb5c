package conformance

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/student-mh-referrals/gateway/gateway/opa"
)

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

func TestLoadRefusesBrokenScenarios(t *testing.T) {
	var table []struct{ File, Error string }
	readJSON(t, filepath.Join("testdata", "bad-scenarios.json"), &table)
	files, _ := filepath.Glob(filepath.Join("testdata", "bad-scenarios", "*.json"))
	if len(files) != len(table) {
		t.Errorf("%d files in testdata/bad-scenarios, %d in the table", len(files), len(table))
	}
	fsys := os.DirFS("testdata")
	for _, tt := range table {
		t.Run(tt.File, func(t *testing.T) {
			_, err := loadScenario(fsys, "bad-scenarios/"+tt.File)
			if err == nil || !strings.Contains(err.Error(), tt.Error) {
				t.Errorf("error %v, want one containing %q", err, tt.Error)
			}
		})
	}
	t.Run("a directory reports every broken file", func(t *testing.T) {
		_, err := LoadDir(filepath.Join("testdata", "bad-scenarios"))
		if err == nil {
			t.Fatal("no error")
		}
		for _, tt := range table {
			if !strings.Contains(err.Error(), tt.File) {
				t.Errorf("the error does not name %s", tt.File)
			}
		}
	})
	t.Run("an empty directory", func(t *testing.T) {
		if _, err := LoadDir(t.TempDir()); err == nil || !strings.Contains(err.Error(), "no scenario files") {
			t.Errorf("error %v", err)
		}
	})
}

// TestLoadDirMatchesBuiltin reads the scenarios from disk as
// `gateway conformance run --scenarios` does: case paths resolve upwards, to
// the same records as in the embedded set.
func TestLoadDirMatchesBuiltin(t *testing.T) {
	disk, err := LoadDir(filepath.Join("testdata", "scenarios"))
	if err != nil {
		t.Fatal(err)
	}
	emb := builtinScenarios(t)
	if len(disk) != len(emb) {
		t.Fatalf("%d scenarios on disk, %d embedded", len(disk), len(emb))
	}
	for i := range disk {
		if disk[i].Name != emb[i].Name || !bytes.Equal(disk[i].Request, emb[i].Request) || disk[i].Institution != emb[i].Institution {
			t.Errorf("%s differs from the embedded scenario", disk[i].Name)
		}
	}
}

func TestMergePatch(t *testing.T) {
	tests := []struct{ name, doc, patch, want string }{
		{"replaces a value", `{"a":1,"b":2}`, `{"a":3}`, `{"a":3,"b":2}`},
		{"removes with null", `{"a":1,"b":2}`, `{"a":null}`, `{"b":2}`},
		{"merges objects", `{"a":{"x":1,"y":2}}`, `{"a":{"y":null,"z":3}}`, `{"a":{"x":1,"z":3}}`},
		{"replaces lists whole", `{"a":[1,2,3]}`, `{"a":[4]}`, `{"a":[4]}`},
		{"adds objects", `{}`, `{"a":{"b":{"c":true}}}`, `{"a":{"b":{"c":true}}}`},
		{"keeps numbers as written", `{"a":0.123456789012345678}`, `{"b":1}`, `{"a":0.123456789012345678,"b":1}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := mergePatch([]byte(tt.doc), []byte(tt.patch))
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Errorf("got %s, want %s", got, tt.want)
			}
		})
	}
}

// TestCaseCopiesAreVerbatim: conformance/testdata/cases holds copies of the
// example cases (go:embed cannot reach the repository's testdata), which
// must not drift from the originals.
func TestCaseCopiesAreVerbatim(t *testing.T) {
	copies, _ := filepath.Glob(filepath.Join("testdata", "cases", "*.json"))
	if len(copies) == 0 {
		t.Fatal("no case copies")
	}
	for _, c := range copies {
		t.Run(filepath.Base(c), func(t *testing.T) {
			got, err := os.ReadFile(c)
			if err != nil {
				t.Fatal(err)
			}
			want, err := os.ReadFile(filepath.Join("..", "testdata", "cases", filepath.Base(c)))
			if err != nil {
				t.Fatalf("the original is gone: %v; remove the copy", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("the copy differs from testdata/cases/%s: copy it again", filepath.Base(c))
			}
		})
	}
}

// TestCoverage: every policy rule refuses in at least one scenario, except
// the rules testdata/coverage.json explains (the contract or the
// configuration refuses first, or the rule never denies); every rule is
// checked on an allowed share too; and every service of the example
// registry is reached by an allowed scenario.
func TestCoverage(t *testing.T) {
	var cov struct {
		DenyUnreachable map[string]string `json:"denyUnreachable"`
	}
	readJSON(t, filepath.Join("testdata", "coverage.json"), &cov)
	ss := builtinScenarios(t)
	ev := evaluator(t)
	denied, mentioned, allowed := map[string]bool{}, map[string]bool{}, map[string]bool{}
	for _, s := range ss {
		e := s.Expect
		for _, id := range e.Rules.Deny {
			denied[id] = true
		}
		for _, id := range slices.Concat(e.Rules.Allow, e.Rules.Obligation) {
			mentioned[id] = true
		}
		for _, o := range e.Oblige {
			mentioned[o.Rule] = true
		}
		for id := range e.Messages {
			mentioned[id] = true
		}
		if e.Outcome == "allow" {
			allowed[e.Service] = true
		}
	}
	rules := ev.Decider.(*opa.Decider).Rules()
	if len(rules) < 20 {
		t.Fatalf("only %d rules in the policies", len(rules))
	}
	for _, r := range rules {
		t.Run(r.ID, func(t *testing.T) {
			why, unreachable := cov.DenyUnreachable[r.ID]
			switch {
			case unreachable && denied[r.ID]:
				t.Errorf("a scenario expects %s to deny, but coverage.json says it cannot (%s): update coverage.json", r.ID, why)
			case !unreachable && !denied[r.ID]:
				t.Errorf("no scenario expects %s to deny", r.ID)
			}
			if !mentioned[r.ID] {
				t.Errorf("no scenario checks %s on an allowed share (rules.allow, rules.obligation, obligations or messages)", r.ID)
			}
		})
	}
	for id := range cov.DenyUnreachable {
		if !slices.ContainsFunc(rules, func(r opa.RuleInfo) bool { return r.ID == id }) {
			t.Errorf("coverage.json names %s, which is not a policy rule", id)
		}
	}
	for _, svc := range ev.Registry.IDs() {
		if !allowed[svc] {
			t.Errorf("no allowed scenario reaches the service %s", svc)
		}
	}
}
