package gateway

import (
	"errors"
	"fmt"
	"time"
)

// Error codes. Each maps to one HTTP status (gateway/http) and one FHIR issue
// type (mappings.OperationOutcome); the domain only says what went wrong, not
// how to transport it.
const (
	EMALFORMED    = "malformed"    // the body is not parseable JSON (400)
	EINVALID      = "invalid"      // the body breaks the contract (422)
	EDENIED       = "denied"       // a policy refused the share (403)
	EFORBIDDEN    = "forbidden"    // the caller may not act on this (403, security)
	EUNAUTHORIZED = "unauthorized" // no or bad credentials (401)
	ENOTFOUND     = "not-found"    // no such thing for this caller (404)
	ECONFLICT     = "conflict"     // the state does not allow it (409)
	ETOOLARGE     = "too-large"    // the body exceeds the limit (413)
	EMEDIATYPE    = "media-type"   // wrong Content-Type (415)
	EUNAVAILABLE  = "unavailable"  // a dependency is down; try again (503)
	EINTERNAL     = "internal"     // a bug or an unexpected failure (500)
)

// Error is the one error type of the gateway. Code and Message are safe to
// show to a client; Issues name each problem by its JSON path so that an
// integrator can fix every one in a single round trip. Err is the internal
// cause: it is logged by the edge and never rendered.
type Error struct {
	Code    string
	Message string
	Issues  []Issue
	// Ref is a reference id that the edge shows a client for an internal
	// error, so that an operator can find the log line without the client
	// seeing the cause.
	Ref string
	// RetryAfter, on an EUNAVAILABLE error, is when the client should try
	// again (the Retry-After header); zero lets the edge choose.
	RetryAfter time.Duration
	Err        error
}

// Issue is one problem, rendered as one OperationOutcome.issue.
type Issue struct {
	// Severity is "error" or "warning" (FHIR IssueSeverity).
	Severity string
	// Type is a FHIR IssueType code ("required", "value", "structure",
	// "business-rule", …); empty means it follows from the error's Code.
	Type string
	// Expression is the JSON path of the field concerned, e.g.
	// "student.nhsNumber"; empty when the problem is the whole body.
	Expression string
	// Message is plain English that a person can act on.
	Message string
	// DetailsCode, when set, is a machine-readable code for the issue's
	// details (a rule id such as "C-02" on a deny).
	DetailsCode   string
	DetailsSystem string
}

// Error implements error. It gives the client-safe message and the internal
// cause, for logs; the edge renders only Code, Message and Issues.
func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Message, e.Err)
	}
	return fmt.Sprintf("%s: %s", e.Code, e.Message)
}

// Unwrap gives the internal cause to errors.Is and errors.As.
func (e *Error) Unwrap() error { return e.Err }

// Errorf is shorthand for an Error with a code and a client-safe message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Internal wraps an unexpected failure. Its message never carries the cause.
func Internal(err error) *Error {
	return &Error{Code: EINTERNAL, Message: "internal error", Err: err}
}

// ErrorCode returns the code of err, EINTERNAL for any error that is not an
// *Error, and "" for nil.
func ErrorCode(err error) string {
	var e *Error
	switch {
	case err == nil:
		return ""
	case errors.As(err, &e):
		return e.Code
	default:
		return EINTERNAL
	}
}

// AsError returns err as an *Error, wrapping anything else as an internal
// error so that callers never render a raw Go error to a client.
func AsError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return Internal(err)
}
