package mappings

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/student-mh-referrals/gateway/gateway"
)

// TestOperationOutcomeKeepsIssueTypes renders the rejection of every invalid
// case record of the parse tests and checks that each issue keeps its type,
// path and message: every issue type the contract uses is a FHIR IssueType
// code.
func TestOperationOutcomeKeepsIssueTypes(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "gateway", "testdata", "parse", "invalid", "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no invalid case records (%v)", err)
	}
	seen := map[string]bool{}
	for _, file := range files {
		if strings.HasSuffix(file, ".golden.json") {
			continue
		}
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		_, err = gateway.ParseCaseRecord(data)
		e := gateway.AsError(err)
		oo := OperationOutcome(e)
		if len(e.Issues) == 0 {
			continue
		}
		if len(oo.Issue) != len(e.Issues) {
			t.Fatalf("%s: %d issues became %d", file, len(e.Issues), len(oo.Issue))
		}
		for i, is := range e.Issues {
			got := oo.Issue[i]
			seen[is.Type] = true
			if got.Code.Code() != is.Type || *got.Diagnostics != is.Message || is.Expression != "" && got.Expression[0] != is.Expression {
				t.Errorf("%s: issue %+v rendered as %s %q %v", file, is, got.Code.Code(), *got.Diagnostics, got.Expression)
			}
		}
	}
	for _, typ := range []string{"required", "value", "structure", "too-long", "invariant"} {
		if !seen[typ] {
			t.Errorf("no invalid case has an issue of type %q", typ)
		}
	}
}

// TestOperationOutcomeHidesInternalCause checks that an internal error shows
// its reference and never its cause.
func TestOperationOutcomeHidesInternalCause(t *testing.T) {
	e := gateway.Internal(errors.New("disk on fire at /var/lib/gateway"))
	e.Ref = "req-123"
	oo := OperationOutcome(e)
	if len(oo.Issue) != 1 || *oo.Issue[0].Diagnostics != "internal error; reference req-123" || oo.Issue[0].Code.Code() != "exception" {
		t.Errorf("internal error rendered as %+v", oo.Issue)
	}
}
