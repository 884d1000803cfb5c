package gateway

import (
	"fmt"
	"slices"
)

// maxIssues bounds how many issues one rejection lists, so that a hostile
// body with thousands of bad fields cannot make a response of megabytes. A
// real record has a handful of problems; all of those are listed.
const maxIssues = 100

// ParseCaseRecord decodes and validates a posted case record. It is strict:
// unknown fields, wrong JSON types and duplicate keys are rejected, each named
// by its JSON path, and every contract violation is reported at once in one
// *Error (EMALFORMED for unparseable JSON, EINVALID otherwise), so that an
// integrator fixes everything in one round trip. It judges only the shape of
// the record; whether it may be shared is for the policies.
func ParseCaseRecord(data []byte) (*CaseRecord, error) {
	rec, w, err := decodeRecord(data)
	if err != nil {
		return nil, err
	}
	checked, err := validationFindings(rec)
	if err != nil {
		return nil, err
	}
	checked = append(checked, crossFieldFindings(rec)...)

	found := slices.Concat(w.found, unblocked(w.found, checked))
	reported := make(map[string]bool, len(found))
	for _, f := range found {
		reported[f.Expression] = true
	}
	// A present but empty optional string: validation cannot see it (it
	// looks the same as an absent one), so the walk remembered it.
	for _, p := range w.empty {
		if expr := string(p); !reported[expr] {
			reported[expr] = true
			found = append(found, finding{key: keyFor(expr), Issue: Issue{
				Severity: "error", Type: issueValue, Expression: expr,
				Message: expr + " is empty; send a value or omit the field",
			}})
		}
	}
	if len(found) == 0 {
		return rec, nil
	}

	sortFindings(found)
	msg := fmt.Sprintf("the case record does not meet the contract (%d problems)", len(found))
	if len(found) == 1 {
		msg = "the case record does not meet the contract (1 problem)"
	}
	if len(found) > maxIssues {
		msg = fmt.Sprintf("the case record does not meet the contract (%d problems; the first %d are listed)", len(found), maxIssues)
		found = found[:maxIssues]
	}
	issues := make([]Issue, len(found))
	for i, f := range found {
		issues[i] = f.Issue
	}
	return nil, &Error{Code: EINVALID, Message: msg, Issues: issues}
}

// unblocked drops the validation findings at or below a path whose JSON
// could not be decoded (null, wrong type, missing): the decode issue already
// says what is wrong there, and "required" on top of it would be noise.
func unblocked(decoded, checked []finding) []finding {
	blocked := map[string]bool{}
	for _, f := range decoded {
		if f.blocks {
			blocked[f.Expression] = true
		}
	}
	var out []finding
	for _, f := range checked {
		if !underAny(f.Expression, blocked) {
			out = append(out, f)
		}
	}
	return out
}

func underAny(expr string, paths map[string]bool) bool {
	if paths[expr] {
		return true
	}
	for i := len(expr) - 1; i > 0; i-- {
		if (expr[i] == '.' || expr[i] == '[') && paths[expr[:i]] {
			return true
		}
	}
	return false
}
