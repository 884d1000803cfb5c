package mappings

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/go-json-experiment/json/jsontext"
	"github.com/student-mh-referrals/gateway/gateway"
)

// EventServiceRequestResponse is the BaRS event of a receiver's answer to a
// referral.
const EventServiceRequestResponse = "servicerequest-response"

// ParseResponse reads a BaRS response message that an NHS receiver posts to
// the gateway's $process-message: a message Bundle (with an id and a
// timestamp) whose MessageHeader has the event servicerequest-response,
// names the request Bundle it answers in response.identifier, and has as
// its focus the ServiceRequest the gateway sent, identified by the case-id
// identifier. The step it reports is read from the resources it carries, as
// docs/fhir-mapping.md tabulates (readStep). Each problem is an EINVALID
// issue naming its element, so a receiver's developer can fix their message.
func ParseResponse(body []byte) (gateway.ReceiverResponse, error) {
	var b struct {
		ResourceType string `json:"resourceType"`
		ID           string `json:"id"`
		Type         string `json:"type"`
		Timestamp    string `json:"timestamp"`
		Entry        []struct {
			FullURL  string          `json:"fullUrl"`
			Resource json.RawMessage `json:"resource"`
		} `json:"entry"`
	}
	if err := checkInbound(body); err != nil {
		return gateway.ReceiverResponse{}, err
	}
	if err := json.Unmarshal(body, &b); err != nil {
		return gateway.ReceiverResponse{}, badResponse("Bundle", "the body is not a FHIR Bundle: an element has the wrong JSON type")
	}
	if b.ResourceType != "Bundle" || b.Type != "message" {
		return gateway.ReceiverResponse{}, badResponse("Bundle.type", "the body must be a Bundle of type message")
	}
	if len(b.Entry) == 0 {
		return gateway.ReceiverResponse{}, badResponse("Bundle.entry", "the message has no entries")
	}
	var mh struct {
		ResourceType string `json:"resourceType"`
		EventCoding  struct {
			Code string `json:"code"`
		} `json:"eventCoding"`
		Response *struct {
			Identifier string `json:"identifier"`
			Code       string `json:"code"`
		} `json:"response"`
		Focus []struct {
			Reference string `json:"reference"`
		} `json:"focus"`
	}
	if err := json.Unmarshal(b.Entry[0].Resource, &mh); err != nil || mh.ResourceType != "MessageHeader" {
		return gateway.ReceiverResponse{}, badResponse("Bundle.entry[0].resource", "the first entry must be the MessageHeader")
	}
	if mh.EventCoding.Code != EventServiceRequestResponse {
		return gateway.ReceiverResponse{}, badResponse("MessageHeader.eventCoding.code", "the gateway takes only "+EventServiceRequestResponse+" messages")
	}
	if mh.Response == nil || mh.Response.Code == "" {
		return gateway.ReceiverResponse{}, badResponse("MessageHeader.response.code", "a response message needs response.code (ok, transient-error or fatal-error)")
	}
	if len(mh.Focus) == 0 {
		return gateway.ReceiverResponse{}, badResponse("MessageHeader.focus", "the focus must reference the ServiceRequest")
	}
	res := stepEntries{}
	for i, e := range b.Entry {
		var head struct {
			ResourceType string `json:"resourceType"`
		}
		if json.Unmarshal(e.Resource, &head) != nil {
			return gateway.ReceiverResponse{}, badResponse("Bundle.entry["+strconv.Itoa(i)+"].resource", "an entry's resource must be a FHIR resource")
		}
		if e.FullURL == mh.Focus[0].Reference {
			if head.ResourceType != "ServiceRequest" {
				return gateway.ReceiverResponse{}, badResponse("Bundle.entry["+strconv.Itoa(i)+"].resource", "the focus must be a ServiceRequest")
			}
			res.focus = e.Resource
		}
		switch head.ResourceType {
		case "Appointment", "Encounter":
			if res.byType[head.ResourceType] != nil {
				return gateway.ReceiverResponse{}, badResponse("Bundle.entry["+strconv.Itoa(i)+"].resource", "a response reports one step: at most one "+head.ResourceType)
			}
			if res.byType == nil {
				res.byType = map[string]json.RawMessage{}
			}
			res.byType[head.ResourceType] = e.Resource
		}
	}
	if res.focus == nil {
		return gateway.ReceiverResponse{}, badResponse("MessageHeader.focus", "the focus does not resolve to an entry of the Bundle")
	}
	var sr struct {
		Status     string `json:"status"`
		Identifier []struct {
			System string `json:"system"`
			Value  string `json:"value"`
		} `json:"identifier"`
	}
	if err := json.Unmarshal(res.focus, &sr); err != nil {
		return gateway.ReceiverResponse{}, badResponse("ServiceRequest", "the ServiceRequest has an element of the wrong JSON type")
	}
	prefix := CaseIDSystem("")
	out := gateway.ReceiverResponse{Message: append(json.RawMessage(nil), body...)}
	for _, id := range sr.Identifier {
		if ukprn, ok := strings.CutPrefix(id.System, prefix); ok && gateway.ValidUKPRN(ukprn) && id.Value != "" {
			out.Institution, out.CaseID = ukprn, id.Value
		}
	}
	if out.CaseID == "" {
		return gateway.ReceiverResponse{}, badResponse("ServiceRequest.identifier", "the ServiceRequest must carry the case-id identifier the gateway sent ("+prefix+"{ukprn})")
	}
	switch {
	case b.ID == "" || len(b.ID) > 64:
		return gateway.ReceiverResponse{}, badResponse("Bundle.id", "the response Bundle needs an id (at most 64 characters): a second message with the same id is a duplicate")
	case mh.Response.Identifier == "":
		return gateway.ReceiverResponse{}, badResponse("MessageHeader.response.identifier", "response.identifier must be the id of the request Bundle the gateway sent")
	}
	stamp, err := instant(b.Timestamp)
	if err != nil {
		return gateway.ReceiverResponse{}, badResponse("Bundle.timestamp", "a response message needs its timestamp (a FHIR instant with a time zone)")
	}
	out.ResponseID, out.RequestBundleID, out.At = b.ID, mh.Response.Identifier, stamp
	out.Codes = []gateway.StepCode{
		{Element: "MessageHeader.response.code", System: "http://hl7.org/fhir/response-code", Code: mh.Response.Code},
		{Element: "ServiceRequest.status", System: "http://hl7.org/fhir/request-status", Code: sr.Status},
	}
	if err := readStep(&out, mh.Response.Code, sr.Status, res.byType); err != nil {
		return gateway.ReceiverResponse{}, err
	}
	out.Codes = slices.DeleteFunc(out.Codes, func(c gateway.StepCode) bool { return c.Code == "" })
	for _, c := range out.Codes {
		if !codeToken.MatchString(c.Code) || len(c.System) > 200 || strings.ContainsAny(c.System, " \t\n") {
			return gateway.ReceiverResponse{}, badResponse(c.Element, "a code is a token (letters, digits and . - _ : /, at most 64) and a system a URI: the gateway keeps codes, never text")
		}
	}
	return out, nil
}

// stepEntries are the entries a step is read from.
type stepEntries struct {
	focus  json.RawMessage            // the ServiceRequest
	byType map[string]json.RawMessage // the Appointment and Encounter, if any
}

// codeToken is what a code may be: the gateway shows receivers' codes to
// universities, so nothing that could be free text passes.
var codeToken = regexp.MustCompile(`^[A-Za-z0-9.\-_:/]{1,64}$`)

func badResponse(expr, msg string) error {
	return &gateway.Error{Code: gateway.EINVALID, Message: "not a BaRS response message", Issues: []gateway.Issue{{
		Severity: "error", Type: "structure", Expression: expr, Message: msg,
	}}}
}

// instant reads a FHIR instant (or a dateTime with a time and zone).
func instant(s string) (time.Time, error) {
	return time.Parse(time.RFC3339Nano, s)
}

type inCoding struct {
	System string `json:"system"`
	Code   string `json:"code"`
}

type inConcept struct {
	Coding []inCoding `json:"coding"`
}

// readStep reads the step a response reports from its response code, the
// ServiceRequest's status and its Appointment or Encounter (the table in
// docs/fhir-mapping.md), with the step's own time and its coded values.
// What matches no row is refused: a message the gateway cannot place is
// never guessed at, so a did-not-attend can never read as a rejection.
func readStep(out *gateway.ReceiverResponse, code, srStatus string, byType map[string]json.RawMessage) error {
	var appt struct {
		ID              string      `json:"id"`
		Status          string      `json:"status"`
		Start           string      `json:"start"`
		Created         string      `json:"created"`
		AppointmentType inConcept   `json:"appointmentType"`
		ServiceType     []inConcept `json:"serviceType"`
	}
	var enc struct {
		Status string   `json:"status"`
		Class  inCoding `json:"class"`
		Period struct {
			Start string `json:"start"`
			End   string `json:"end"`
		} `json:"period"`
		Hospitalization struct {
			DischargeDisposition inConcept `json:"dischargeDisposition"`
		} `json:"hospitalization"`
	}
	hasAppt, hasEnc := byType["Appointment"] != nil, byType["Encounter"] != nil
	if hasAppt && json.Unmarshal(byType["Appointment"], &appt) != nil {
		return badResponse("Appointment", "the Appointment has an element of the wrong JSON type")
	}
	if hasEnc && json.Unmarshal(byType["Encounter"], &enc) != nil {
		return badResponse("Encounter", "the Encounter has an element of the wrong JSON type")
	}
	add := func(element, system, code string) {
		if code != "" {
			out.Codes = append(out.Codes, gateway.StepCode{Element: element, System: system, Code: code})
		}
	}
	addConcept := func(element string, c inConcept) {
		for _, cd := range c.Coding {
			add(element, cd.System, cd.Code)
		}
	}
	if hasAppt {
		add("Appointment.status", "http://hl7.org/fhir/appointmentstatus", appt.Status)
		addConcept("Appointment.appointmentType", appt.AppointmentType)
		for _, st := range appt.ServiceType {
			addConcept("Appointment.serviceType", st)
		}
	}
	if hasEnc {
		add("Encounter.status", "http://hl7.org/fhir/encounter-status", enc.Status)
		add("Encounter.class", enc.Class.System, enc.Class.Code)
		addConcept("Encounter.hospitalization.dischargeDisposition", enc.Hospitalization.DischargeDisposition)
	}
	// at is the first of the given times that is set; a set time must be
	// an instant.
	var bad string
	at := func(times ...[2]string) time.Time {
		for _, t := range times {
			if t[1] == "" {
				continue
			}
			v, err := instant(t[1])
			if err != nil {
				bad = t[0]
				return time.Time{}
			}
			return v
		}
		return out.At
	}
	disposition := ""
	if c := enc.Hospitalization.DischargeDisposition.Coding; len(c) > 0 {
		disposition = c[0].Code
	}
	switch {
	case code == "fatal-error" || code == "ok" && srStatus == "revoked" && !hasAppt && !hasEnc:
		out.Step = gateway.StepRejected
	case code != "ok":
		return badResponse("MessageHeader.response.code", "response.code must be ok, or fatal-error for a referral the service cannot take on")
	case srStatus == "completed" && disposition == "other-hcf":
		out.Step, out.At = gateway.StepRedirected, at([2]string{"Encounter.period.end", enc.Period.End})
	case srStatus == "completed":
		out.Step, out.At = gateway.StepDischarged, at([2]string{"Encounter.period.end", enc.Period.End})
	case srStatus != "active":
		return badResponse("ServiceRequest.status", "the ServiceRequest's status must be active (accepted and under way), completed (discharged or redirected) or revoked (rejected)")
	case hasAppt && appt.Status == "booked":
		out.Step, out.AppointmentID = gateway.StepBooked, appt.ID
		out.AppointmentStart = at([2]string{"Appointment.start", appt.Start})
		out.At = at([2]string{"Appointment.created", appt.Created})
		if appt.Start == "" {
			return badResponse("Appointment.start", "a booked Appointment needs its start")
		}
	case hasAppt && appt.Status == "noshow":
		out.Step, out.AppointmentID = gateway.StepDidNotAttend, appt.ID
		out.At = at([2]string{"Appointment.start", appt.Start})
	case hasAppt && slices.Contains([]string{"fulfilled", "arrived", "checked-in"}, appt.Status),
		!hasAppt && hasEnc && slices.Contains([]string{"arrived", "in-progress", "finished"}, enc.Status):
		out.Step, out.AppointmentID = gateway.StepSeen, appt.ID
		out.At = at([2]string{"Encounter.period.start", enc.Period.Start}, [2]string{"Appointment.start", appt.Start})
	case hasAppt:
		return badResponse("Appointment.status", "an Appointment reports booked, noshow (did not attend) or fulfilled, arrived, checked-in (seen)")
	case hasEnc:
		return badResponse("Encounter.status", "an Encounter without an Appointment reports arrived, in-progress or finished (seen, as a walk-in)")
	default:
		out.Step = gateway.StepAccepted
	}
	if bad != "" {
		return badResponse(bad, "a time must be a FHIR instant with a time zone")
	}
	return nil
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
	"id", "timestamp", "start", "end", "created", "appointmentType", "serviceType", "coding",
	"class", "period", "hospitalization", "dischargeDisposition",
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
