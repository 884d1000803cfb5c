package mappings

import (
	"encoding/json"

	"github.com/samply/golang-fhir-models/fhir-models/fhir"

	"github.com/student-mh-referrals/gateway/gateway"
)

// issueTypes is the FHIR IssueType that an error code implies when an issue
// does not name its own.
var issueTypes = map[string]fhir.IssueType{
	gateway.EMALFORMED:    fhir.IssueTypeStructure,
	gateway.EINVALID:      fhir.IssueTypeInvalid,
	gateway.EDENIED:       fhir.IssueTypeBusinessRule,
	gateway.EFORBIDDEN:    fhir.IssueTypeSecurity,
	gateway.EUNAUTHORIZED: fhir.IssueTypeLogin,
	gateway.ENOTFOUND:     fhir.IssueTypeNotFound,
	gateway.ECONFLICT:     fhir.IssueTypeConflict,
	gateway.ETOOLARGE:     fhir.IssueTypeTooLong,
	gateway.EMEDIATYPE:    fhir.IssueTypeNotSupported,
	gateway.EUNAVAILABLE:  fhir.IssueTypeTransient,
	gateway.EINTERNAL:     fhir.IssueTypeException,
}

// OperationOutcome renders an error as the FHIR OperationOutcome a client
// sees: one issue per problem, each naming its field by JSON path. An internal
// error shows only its reference id, never its cause. It lives here, with the
// rest of the gateway's FHIR, so that the domain's error stays free of it;
// the HTTP adapter pairs it with a status.
func OperationOutcome(err error) fhir.OperationOutcome {
	e := gateway.AsError(err)
	if e.Code == gateway.EINTERNAL {
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
		issues = []gateway.Issue{{Severity: "error", Message: e.Message}}
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
