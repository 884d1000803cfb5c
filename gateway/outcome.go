package gateway

import (
	"encoding/json"

	"github.com/samply/golang-fhir-models/fhir-models/fhir"
)

// issueTypes is the FHIR IssueType that an error code implies when an issue
// does not name its own.
var issueTypes = map[string]fhir.IssueType{
	EMALFORMED:    fhir.IssueTypeStructure,
	EINVALID:      fhir.IssueTypeInvalid,
	EDENIED:       fhir.IssueTypeBusinessRule,
	EFORBIDDEN:    fhir.IssueTypeSecurity,
	EUNAUTHORIZED: fhir.IssueTypeLogin,
	ENOTFOUND:     fhir.IssueTypeNotFound,
	ECONFLICT:     fhir.IssueTypeConflict,
	ETOOLARGE:     fhir.IssueTypeTooLong,
	EMEDIATYPE:    fhir.IssueTypeNotSupported,
	EUNAVAILABLE:  fhir.IssueTypeTransient,
	EINTERNAL:     fhir.IssueTypeException,
}

// OperationOutcome renders an error as the FHIR OperationOutcome a client
// sees: one issue per problem, each naming its field by JSON path. An internal
// error shows only its reference id, never its cause.
func OperationOutcome(err error) fhir.OperationOutcome {
	e := AsError(err)
	if e.Code == EINTERNAL {
		msg := "internal error"
		if e.Ref != "" {
			msg += "; reference " + e.Ref
		}
		return fhir.OperationOutcome{Issue: []fhir.OperationOutcomeIssue{{
			Severity: fhir.IssueSeverityError, Code: fhir.IssueTypeException, Diagnostics: &msg,
		}}}
	}
	def := issueTypes[e.Code]
	issues := e.Issues
	if len(issues) == 0 {
		issues = []Issue{{Severity: "error", Message: e.Message}}
	}
	oo := fhir.OperationOutcome{Issue: make([]fhir.OperationOutcomeIssue, 0, len(issues))}
	for _, is := range issues {
		out := fhir.OperationOutcomeIssue{Severity: fhir.IssueSeverityError, Code: def}
		switch is.Severity {
		case "warning":
			out.Severity = fhir.IssueSeverityWarning
		case "information":
			out.Severity = fhir.IssueSeverityInformation
		}
		if is.Type != "" {
			var t fhir.IssueType
			if err := json.Unmarshal([]byte(`"`+is.Type+`"`), &t); err == nil {
				out.Code = t
			}
		}
		msg := is.Message
		out.Diagnostics = &msg
		if is.Expression != "" {
			out.Expression = []string{is.Expression}
		}
		if is.DetailsCode != "" {
			c := fhir.Coding{Code: &is.DetailsCode}
			if is.DetailsSystem != "" {
				c.System = &is.DetailsSystem
			}
			out.Details = &fhir.CodeableConcept{Coding: []fhir.Coding{c}, Text: &msg}
		}
		oo.Issue = append(oo.Issue, out)
	}
	return oo
}

// EvaluationDocument is the JSON document that `gateway evaluate` prints and
// POST /v1/referrals/$evaluate returns. Bundle is present only when allowed
// and OperationOutcome only when invalid.
type EvaluationDocument struct {
	Outcome          string                 `json:"outcome"`
	Decision         *Decision              `json:"decision,omitempty"`
	Bundle           json.RawMessage        `json:"bundle,omitempty"`
	OperationOutcome *fhir.OperationOutcome `json:"operationOutcome,omitempty"`
}

// Document renders the evaluation as its public document.
func (ev *Evaluation) Document() EvaluationDocument {
	doc := EvaluationDocument{Outcome: ev.Outcome, Decision: ev.Decision, Bundle: ev.Bundle}
	if ev.Err != nil {
		oo := OperationOutcome(ev.Err)
		doc.OperationOutcome = &oo
	}
	return doc
}
