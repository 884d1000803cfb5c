// Package http is the gateway's HTTP adapter: it decodes requests, calls the
// domain, and renders the answer. It holds no business rule; every error
// leaves through Error, the one function that turns a *gateway.Error into an
// HTTP status and a FHIR OperationOutcome.
package http

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"go.uber.org/zap"

	"github.com/student-mh-referrals/gateway/gateway"
	"github.com/student-mh-referrals/gateway/mappings"
)

// Media types the API speaks.
const (
	MediaJSON     = "application/json"
	MediaFHIRJSON = "application/fhir+json"
	MediaCSV      = "text/csv"
)

// eMethodNotAllowed is the code of a request whose path exists but not with
// its method (405, with an Allow header). It is the HTTP layer's own: the
// domain never sees methods.
const eMethodNotAllowed = "method-not-allowed"

// statuses maps each error code to its HTTP status.
var statuses = map[string]int{
	eMethodNotAllowed:     http.StatusMethodNotAllowed,
	gateway.EMALFORMED:    http.StatusBadRequest,
	gateway.EINVALID:      http.StatusUnprocessableEntity,
	gateway.EDENIED:       http.StatusForbidden,
	gateway.EFORBIDDEN:    http.StatusForbidden,
	gateway.EUNAUTHORIZED: http.StatusUnauthorized,
	gateway.ENOTFOUND:     http.StatusNotFound,
	gateway.ECONFLICT:     http.StatusConflict,
	gateway.ETOOLARGE:     http.StatusRequestEntityTooLarge,
	gateway.EMEDIATYPE:    http.StatusUnsupportedMediaType,
	gateway.EUNAVAILABLE:  http.StatusServiceUnavailable,
	gateway.EINTERNAL:     http.StatusInternalServerError,
}

// Status returns the HTTP status of an error code.
func Status(code string) int {
	if s, ok := statuses[code]; ok {
		return s
	}
	return http.StatusInternalServerError
}

// Error writes err as an OperationOutcome with its status. An internal error
// is logged with its cause and shown to the client only as the request id;
// an unavailable one (503) is logged with its cause, never shown.
func Error(w http.ResponseWriter, r *http.Request, err error) {
	e := gateway.AsError(err)
	if e.Code == gateway.EINTERNAL {
		ref := RequestID(r.Context())
		logFrom(r.Context()).Error("internal error", zap.Error(e.Err), zap.String("ref", ref))
		e = &gateway.Error{Code: gateway.EINTERNAL, Message: "internal error", Ref: ref}
	}
	if e.Code == gateway.EUNAVAILABLE && e.Err != nil {
		// The operator needs the cause (a full disk, a refused connection);
		// the client gets only the code and the message.
		logFrom(r.Context()).Warn("unavailable", zap.Error(e.Err))
	}
	if e.RetryAfter > 0 && w.Header().Get("Retry-After") == "" {
		w.Header().Set("Retry-After", strconv.Itoa(int(e.RetryAfter.Round(time.Second)/time.Second)))
	}
	if e.Code == gateway.EUNAUTHORIZED {
		w.Header().Set("WWW-Authenticate", `Bearer realm="gateway"`)
	}
	writeJSON(w, Status(e.Code), MediaFHIRJSON, mappings.OperationOutcome(e))
}

// api adapts a handler that returns its error, which Error then writes, so
// that every refusal leaves the same way.
func api(h func(http.ResponseWriter, *http.Request) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := h(w, r); err != nil {
			Error(w, r, err)
		}
	}
}

// issueError is an error of code with one issue, the shape of most of this
// layer's refusals.
func issueError(code, msg, typ, expr, text string) *gateway.Error {
	return &gateway.Error{Code: code, Message: msg, Issues: []gateway.Issue{{Severity: "error", Type: typ, Expression: expr, Message: text}}}
}

// writeJSON writes v as indented JSON with a trailing newline, the one JSON
// rendering of the API, so that the CLI and the API give the same bytes.
func writeJSON(w http.ResponseWriter, status int, mediaType string, v any) {
	b, err := MarshalDocument(v)
	if err != nil {
		// Only a bug can get here: every value written is a plain struct.
		http.Error(w, `{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"exception"}]}`, http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", mediaType+"; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// MarshalDocument renders a response document: two-space indented JSON with
// a trailing newline and no HTML escaping. `gateway evaluate` prints exactly
// these bytes.
func MarshalDocument(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
