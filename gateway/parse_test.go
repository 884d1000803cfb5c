package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// The -update flag rewrites golden files. Another test file of the package
// may define it first; then this one reads that flag.
func init() {
	if flag.Lookup("update") == nil {
		flag.Bool("update", false, "rewrite the golden files under testdata/")
	}
}

func updating() bool {
	f := flag.Lookup("update")
	return f != nil && f.Value.String() == "true"
}

// goldenError is what an invalid case record must produce, as it is stored
// next to the case under testdata/parse/invalid.
type goldenError struct {
	Code    string        `json:"code"`
	Message string        `json:"message"`
	Issues  []goldenIssue `json:"issues"`
}

type goldenIssue struct {
	Expression string `json:"expression"`
	Type       string `json:"type"`
	Message    string `json:"message"`
}

// canonical is the golden-file form: 2-space indented, trailing newline.
func canonical(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return append(b, '\n')
}

// cases lists the .json cases in a testdata/parse folder, golden files aside.
func cases(t testing.TB, dir string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", "parse", dir, "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	files = slices.DeleteFunc(files, func(f string) bool { return strings.HasSuffix(f, ".golden.json") })
	if len(files) == 0 {
		t.Fatalf("no cases in testdata/parse/%s", dir)
	}
	return files
}

func caseName(file string) string { return strings.TrimSuffix(filepath.Base(file), ".json") }

func TestParseValid(t *testing.T) {
	for _, file := range cases(t, "valid") {
		t.Run(caseName(file), func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			rec, err := ParseCaseRecord(data)
			if err != nil {
				t.Fatalf("ParseCaseRecord: %v\n%s", err, canonical(t, AsError(err).Issues))
			}
			// A parsed record re-marshals to a record that parses to the
			// same thing: nothing is lost or invented on the way in.
			again, err := ParseCaseRecord(canonical(t, rec))
			if err != nil {
				t.Fatalf("re-parse: %v", err)
			}
			if a, b := canonical(t, rec), canonical(t, again); !bytes.Equal(a, b) {
				t.Errorf("round trip changed the record:\n%s\n%s", a, b)
			}
			// And it agrees with encoding/json on what the fields hold.
			var plain CaseRecord
			if err := json.Unmarshal(data, &plain); err != nil {
				t.Fatal(err)
			}
			if a, b := canonical(t, rec), canonical(t, &plain); !bytes.Equal(a, b) {
				t.Errorf("decoded differently from encoding/json:\n%s\n%s", a, b)
			}
		})
	}
}

func TestParseInvalid(t *testing.T) {
	for _, file := range cases(t, "invalid") {
		t.Run(caseName(file), func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			rec, err := ParseCaseRecord(data)
			if err == nil {
				t.Fatalf("ParseCaseRecord accepted an invalid record: %+v", rec)
			}
			if rec != nil {
				t.Errorf("ParseCaseRecord returned a record with an error")
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("error is %T, want *gateway.Error", err)
			}
			got := goldenError{Code: e.Code, Message: e.Message, Issues: []goldenIssue{}}
			for _, is := range e.Issues {
				got.Issues = append(got.Issues, goldenIssue{Expression: is.Expression, Type: is.Type, Message: is.Message})
			}
			goldenFile := strings.TrimSuffix(file, ".json") + ".golden.json"
			if updating() {
				if err := os.WriteFile(goldenFile, canonical(t, got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(goldenFile)
			if err != nil {
				t.Fatalf("%v (run go test ./gateway -run TestParse -update to create it)", err)
			}
			if g := canonical(t, got); !bytes.Equal(g, want) {
				t.Errorf("issues differ from %s (run with -update to accept):\ngot:\n%s", goldenFile, g)
			}
		})
	}
}

// TestParseIssueInvariants holds every rejection to the rules that the
// OperationOutcome and the people reading it rely on.
func TestParseIssueInvariants(t *testing.T) {
	types := []string{issueRequired, issueValue, issueStructure, issueTooLong, issueInvariant}
	for _, file := range cases(t, "invalid") {
		t.Run(caseName(file), func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			_, err = ParseCaseRecord(data)
			e := AsError(err)
			switch e.Code {
			case EMALFORMED:
				if len(e.Issues) != 0 || !strings.Contains(e.Message, "JSON") && !strings.Contains(e.Message, "empty") {
					t.Errorf("EMALFORMED should carry only a message about the JSON: %+v", e)
				}
			case EINVALID:
				if len(e.Issues) == 0 {
					t.Errorf("EINVALID without issues")
				}
			default:
				t.Errorf("code %q, want %q or %q", e.Code, EMALFORMED, EINVALID)
			}
			personal := personalValues(data)
			for _, is := range e.Issues {
				if is.Severity != "error" || !slices.Contains(types, is.Type) || is.Message == "" {
					t.Errorf("bad issue %+v", is)
				}
				for _, v := range personal {
					if strings.Contains(is.Message, v) {
						t.Errorf("message %q echoes the value %q", is.Message, v)
					}
				}
			}
		})
	}
}

// personalValues collects the string values of a body that a message must
// never repeat: everything but vocabulary codes and the schema version,
// which messages may echo to say what was wrong.
func personalValues(data []byte) []string {
	echoable := map[string]bool{
		"schemaVersion": true, "role": true, "gender": true, "priority": true, "code": true,
		"status": true, "decision": true, "purposes": true, "dataCategories": true,
		"method": true, "ground": true, "outcome": true, "avoid": true,
	}
	var doc any
	if json.Unmarshal(data, &doc) != nil {
		return nil
	}
	var out []string
	var walk func(key string, v any)
	walk = func(key string, v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				walk(k, x)
			}
		case []any:
			for _, x := range v {
				walk(key, x)
			}
		case string:
			if !echoable[key] && len(strings.TrimSpace(v)) >= 5 {
				out = append(out, v)
			}
		}
	}
	walk("", doc)
	return out
}

// TestParseIssueOrder checks that issues come in the contract's field order,
// whatever order the fields were sent in.
func TestParseIssueOrder(t *testing.T) {
	data := []byte(`{"consent": {"decision": "maybe"}, "zzz": 1, "schemaVersion": "2", "aaa": 2}`)
	_, err := ParseCaseRecord(data)
	var got []string
	for _, is := range AsError(err).Issues {
		got = append(got, is.Expression)
	}
	want := []string{"schemaVersion", "caseId", "institution", "referrer", "student", "referral", "consent.decision", "zzz", "aaa"}
	if !slices.Equal(got, want) {
		t.Errorf("order\n got %q\nwant %q", got, want)
	}
}

func TestParseIssueCap(t *testing.T) {
	var b strings.Builder
	b.WriteString(`{`)
	for i := range 250 {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `"x%d": 1`, i)
	}
	b.WriteString(`}`)
	_, err := ParseCaseRecord([]byte(b.String()))
	e := AsError(err)
	if len(e.Issues) != maxIssues {
		t.Errorf("%d issues, want the cap %d", len(e.Issues), maxIssues)
	}
	if !strings.Contains(e.Message, "257 problems; the first 100 are listed") {
		t.Errorf("message %q does not say how many were left out", e.Message)
	}
}

func BenchmarkParseCaseRecord(b *testing.B) {
	for _, name := range []string{"valid/liverpool-u-cope", "invalid/many-problems"} {
		data, err := os.ReadFile(filepath.Join("testdata", "parse", name+".json"))
		if err != nil {
			b.Fatal(err)
		}
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				_, _ = ParseCaseRecord(data)
			}
		})
	}
}

// TestParseDesignExample parses the contract's own example from the design
// folder, so that the contract and the code cannot drift apart unnoticed.
func TestParseDesignExample(t *testing.T) {
	file := filepath.Join("..", "..", "shared", "design", "examples", "case-record.liverpool-u-cope.json")
	data, err := os.ReadFile(file)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("the design example is missing: %v", err)
		}
		t.Skipf("the design example is not here (%v); it lives in shared/ beside the repository", err)
	}
	if _, err := ParseCaseRecord(data); err != nil {
		t.Fatalf("the design example does not parse: %v\n%s", err, canonical(t, AsError(err).Issues))
	}
}

// TestDefinedPath checks the split that keeps undefined key names out of
// logs: a path is defined up to the first name that the contract lacks.
func TestDefinedPath(t *testing.T) {
	for expr, want := range map[string]struct {
		defined string
		whole   bool
	}{
		"":                                 {"", true},
		"referral.presentingNeeds[1].code": {"referral.presentingNeeds[1].code", true},
		"override.lawfulBasis":             {"override.lawfulBasis", true},
		"referral.priorty":                 {"referral", false},
		"zzz":                              {"", false},
		`["Jordan Okafor NHS 9000000009"]`: {"", false},
		`student["Jordan Okafor"]`:         {"student", false},
		"student.name.nickname.first":      {"student.name", false},
		"consent.recipients[0].x":          {"consent.recipients[0]", false},
	} {
		if got, whole := DefinedPath(expr); got != want.defined || whole != want.whole {
			t.Errorf("DefinedPath(%q) = %q, %v; want %q, %v", expr, got, whole, want.defined, want.whole)
		}
	}
}
