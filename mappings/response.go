package mappings

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/go-json-experiment/json/jsontext"
	"github.com/student-mh-referrals/gateway/gateway"
)

// EventServiceRequestResponse is the BaRS event of a receiver's answer to a
// referral.
const EventServiceRequestResponse = "servicerequest-response"

// ParseResponse reads a BaRS response message that an NHS receiver posts to
// the gateway's $process-message: a message Bundle whose MessageHeader has the
// event servicerequest-response and whose focus is the ServiceRequest the
// gateway sent, identified by the case-id identifier. The service took the
// referral on when the response code is "ok" and the ServiceRequest is still
// active; anything else is a rejection. Each problem is an EINVALID issue
// naming its element, so a receiver's developer can fix their message.
func ParseResponse(body []byte) (gateway.ReceiverResponse, error) {
	var b struct {
		ResourceType string `json:"resourceType"`
		Type         string `json:"type"`
		Entry        []struct {
			FullURL  string          `json:"fullUrl"`
			Resource json.RawMessage `json:"resource"`
		} `json:"entry"`
	}
	if err := checkInbound(body); err != nil {
		return gateway.ReceiverResponse{}, err
	}
	bad := func(expr, msg string) error {
		return &gateway.Error{Code: gateway.EINVALID, Message: "not a BaRS response message", Issues: []gateway.Issue{{
			Severity: "error", Type: "structure", Expression: expr, Message: msg,
		}}}
	}
	if err := json.Unmarshal(body, &b); err != nil {
		return gateway.ReceiverResponse{}, bad("Bundle", "the body is not a FHIR Bundle: an element has the wrong JSON type")
	}
	if b.ResourceType != "Bundle" || b.Type != "message" {
		return gateway.ReceiverResponse{}, bad("Bundle.type", "the body must be a Bundle of type message")
	}
	if len(b.Entry) == 0 {
		return gateway.ReceiverResponse{}, bad("Bundle.entry", "the message has no entries")
	}
	var mh struct {
		ResourceType string `json:"resourceType"`
		EventCoding  struct {
			Code string `json:"code"`
		} `json:"eventCoding"`
		Response *struct {
			Code string `json:"code"`
		} `json:"response"`
		Focus []struct {
			Reference string `json:"reference"`
		} `json:"focus"`
	}
	if err := json.Unmarshal(b.Entry[0].Resource, &mh); err != nil || mh.ResourceType != "MessageHeader" {
		return gateway.ReceiverResponse{}, bad("Bundle.entry[0].resource", "the first entry must be the MessageHeader")
	}
	if mh.EventCoding.Code != EventServiceRequestResponse {
		return gateway.ReceiverResponse{}, bad("MessageHeader.eventCoding.code", "the gateway takes only "+EventServiceRequestResponse+" messages")
	}
	if mh.Response == nil || mh.Response.Code == "" {
		return gateway.ReceiverResponse{}, bad("MessageHeader.response.code", "a response message needs response.code (ok, transient-error or fatal-error)")
	}
	if len(mh.Focus) == 0 {
		return gateway.ReceiverResponse{}, bad("MessageHeader.focus", "the focus must reference the ServiceRequest")
	}
	var sr struct {
		ResourceType string `json:"resourceType"`
		Status       string `json:"status"`
		Identifier   []struct {
			System string `json:"system"`
			Value  string `json:"value"`
		} `json:"identifier"`
	}
	for i, e := range b.Entry {
		if e.FullURL == mh.Focus[0].Reference {
			if err := json.Unmarshal(e.Resource, &sr); err != nil || sr.ResourceType != "ServiceRequest" {
				return gateway.ReceiverResponse{}, bad("Bundle.entry["+strconv.Itoa(i)+"].resource", "the focus must be a ServiceRequest")
			}
			break
		}
	}
	if sr.ResourceType == "" {
		return gateway.ReceiverResponse{}, bad("MessageHeader.focus", "the focus does not resolve to an entry of the Bundle")
	}
	prefix := CaseIDSystem("")
	out := gateway.ReceiverResponse{Message: append(json.RawMessage(nil), body...)}
	for _, id := range sr.Identifier {
		if ukprn, ok := strings.CutPrefix(id.System, prefix); ok && gateway.ValidUKPRN(ukprn) && id.Value != "" {
			out.Institution, out.CaseID = ukprn, id.Value
		}
	}
	if out.CaseID == "" {
		return gateway.ReceiverResponse{}, bad("ServiceRequest.identifier", "the ServiceRequest must carry the case-id identifier the gateway sent ("+prefix+"{ukprn})")
	}
	out.Accepted = mh.Response.Code == "ok" && sr.Status == "active"
	return out, nil
}

// maxInboundDepth bounds how deeply a response message may nest. A BaRS
// message nests about a dozen levels; the bound stops a hostile body from
// being stored and served back to a university.
const maxInboundDepth = 64

// readElements are the element names that ParseResponse reads. encoding/json
// matches names without regard to case, so a key that differs from one of
// these only in case ("ResourceType") is refused rather than silently read:
// FHIR element names are case-sensitive.
var readElements = []string{
	"resourceType", "type", "entry", "fullUrl", "resource", "eventCoding", "code",
	"response", "focus", "reference", "status", "identifier", "system", "value",
}

// checkInbound refuses what encoding/json would read ambiguously or change:
// bodies that are not UTF-8 JSON or escape a lone UTF-16 surrogate ("\ud800",
// which encoding/json would silently turn into U+FFFD) (EMALFORMED), and
// objects with a duplicate key (the decoder would silently keep the last:
// {"code":"fatal-error","code":"ok"} must not read as ok), a read element
// name in the wrong case, or nesting deeper than maxInboundDepth (EINVALID).
func checkInbound(body []byte) error {
	malformed := func(msg string) error {
		return &gateway.Error{Code: gateway.EMALFORMED, Message: "the body is not JSON", Issues: []gateway.Issue{{
			Severity: "error", Type: "structure", Message: msg,
		}}}
	}
	dups := jsontext.AllowDuplicateNames(true) // reported below, as EINVALID
	switch {
	case bytes.HasPrefix(body, []byte("\xef\xbb\xbf")):
		return malformed("the body starts with a byte order mark; send UTF-8 JSON without one")
	case !utf8.Valid(body):
		return malformed("the body is not valid UTF-8; FHIR JSON is UTF-8 without a byte order mark")
	case !jsontext.Value(body).IsValid(dups, jsontext.AllowInvalidUTF8(true)):
		return malformed("the body is not a JSON FHIR Bundle")
	case !jsontext.Value(body).IsValid(dups):
		return malformed("a string escapes a lone UTF-16 surrogate (such as \\ud800), which is not valid UTF-8 text")
	}
	invalid := func(msg string) error {
		return &gateway.Error{Code: gateway.EINVALID, Message: "not a BaRS response message", Issues: []gateway.Issue{{
			Severity: "error", Type: "structure", Message: msg,
		}}}
	}
	// The body is valid JSON, so the only error the walk can meet is a
	// duplicate key; the first problem in document order is reported.
	d := jsontext.NewDecoder(bytes.NewReader(body))
	for {
		tok, err := d.ReadToken()
		var se *jsontext.SyntacticError
		switch {
		case err == io.EOF:
			return nil
		case errors.As(err, &se) && errors.Is(err, jsontext.ErrDuplicateName):
			return invalid("an object has the element " + strconv.Quote(clipName(se.JSONPointer.LastToken())) + " twice; send each element once")
		case err != nil:
			return malformed("the body is not a JSON FHIR Bundle")
		}
		depth := d.StackDepth()
		switch kind, n := d.StackIndex(depth); {
		case (tok.Kind() == '{' || tok.Kind() == '[') && depth > maxInboundDepth:
			return invalid("the message nests more than " + strconv.Itoa(maxInboundDepth) + " levels deep")
		case tok.Kind() == '"' && kind == '{' && n%2 == 1: // an object's key
			key := tok.String()
			for _, name := range readElements {
				if key != name && strings.EqualFold(key, name) {
					return invalid("unknown element " + strconv.Quote(clipName(key)) + "; FHIR element names are case-sensitive (" + name + ")")
				}
			}
		}
	}
}

// clipName shortens a client-supplied element name for a message.
func clipName(s string) string {
	const max = 40
	if utf8.RuneCountInString(s) <= max {
		return s
	}
	return string([]rune(s)[:max]) + "…"
}
