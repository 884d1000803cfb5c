package fhirvalidator

import (
	"fmt"
	"strings"

	"github.com/student-mh-referrals/gateway/gateway"
)

// Issue is one finding. Location is a FHIRPath-like path into the checked
// document, e.g. "Bundle.entry[2].resource.ServiceRequest.status": inside a
// Bundle entry or a contained resource the path names the resource type
// again, so that a reader can tell which resource the element belongs to.
type Issue struct {
	// Severity is "error" or "warning"; only errors make a document invalid.
	Severity string `json:"severity"`
	// Code is the FHIR IssueType (structure, required, value, code-invalid,
	// invariant, not-found, not-supported, informational).
	Code string `json:"code"`
	// Location is the path of the element concerned; empty for the document.
	Location string `json:"location,omitempty"`
	// Message says what is wrong in terms a sender can act on.
	Message string `json:"message"`
	// Rule names the check: a FHIR invariant key such as "bdl-7", or one of
	// json, unknown-element, type, cardinality, choice, format, fixed,
	// pattern, binding, slice, reference-type, resource-type, profile, or a
	// gateway rule ("gw-…") documented in docs/conformance.md.
	Rule string `json:"rule"`
}

// Severities of an Issue.
const (
	SeverityError   = "error"
	SeverityWarning = "warning"
)

func (i Issue) String() string {
	if i.Location == "" {
		return fmt.Sprintf("%s [%s] %s", i.Severity, i.Rule, i.Message)
	}
	return fmt.Sprintf("%s [%s] %s: %s", i.Severity, i.Rule, i.Location, i.Message)
}

// Result is the outcome of validating one document.
type Result struct {
	Issues []Issue `json:"issues"`
}

// OK reports whether the document has no errors; warnings do not count.
func (r Result) OK() bool {
	for _, i := range r.Issues {
		if i.Severity == SeverityError {
			return false
		}
	}
	return true
}

// Errors returns the error issues only.
func (r Result) Errors() []Issue {
	var out []Issue
	for _, i := range r.Issues {
		if i.Severity == SeverityError {
			out = append(out, i)
		}
	}
	return out
}

// GatewayIssues converts the issues for gateway.Error, whose rendering as an
// OperationOutcome names each problem by its path and rule.
func (r Result) GatewayIssues() []gateway.Issue {
	out := make([]gateway.Issue, 0, len(r.Issues))
	for _, i := range r.Issues {
		out = append(out, gateway.Issue{
			Severity:    i.Severity,
			Type:        i.Code,
			Expression:  i.Location,
			Message:     i.Message,
			DetailsCode: i.Rule,
		})
	}
	return out
}

// Err returns nil when the document is valid, else a *gateway.Error with code
// EINVALID carrying every issue (warnings included), ready for
// mappings.OperationOutcome.
func (r Result) Err() error {
	if r.OK() {
		return nil
	}
	n := len(r.Errors())
	msg := "the FHIR document is not valid: 1 error"
	if n != 1 {
		msg = fmt.Sprintf("the FHIR document is not valid: %d errors", n)
	}
	return &gateway.Error{Code: gateway.EINVALID, Message: msg, Issues: r.GatewayIssues()}
}

// String lists the issues one per line, for logs and test failures.
func (r Result) String() string {
	var b strings.Builder
	for _, i := range r.Issues {
		b.WriteString(i.String())
		b.WriteByte('\n')
	}
	return b.String()
}
