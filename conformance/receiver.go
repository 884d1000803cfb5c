package conformance

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/student-mh-referrals/gateway/fhirvalidator"
	"github.com/student-mh-referrals/gateway/gateway"
)

// BaRSHeaders are the headers the gateway sends with every message and a
// BaRS receiver must insist on; CheckReceiver leaves each out in turn.
var BaRSHeaders = []string{
	"X-Request-Id",
	"X-Correlation-Id",
	"NHSD-Target-Identifier",
	"NHSD-End-User-Organisation",
	"NHSD-Requesting-Software",
}

// ErrorCodeSystem is the BaRS code system of HTTP error codes that a
// receiver's OperationOutcome names in issue.details.coding.
const ErrorCodeSystem = "https://fhir.nhs.uk/Codesystem/http-error-codes"

// statusCodes are the BaRS receiver error code of each HTTP status
// (the BaRS examples, OperationOutcome/REC).
var statusCodes = map[int]string{
	400: "REC_BAD_REQUEST",
	401: "REC_UNAUTHORIZED",
	403: "REC_FORBIDDEN",
	404: "REC_NOT_FOUND",
	406: "REC_NOT_ACCEPTABLE",
	408: "REC_TIMEOUT",
	409: "REC_CONFLICT",
	422: "REC_UNPROCESSABLE_ENTITY",
	500: "REC_SERVER_ERROR",
	501: "REC_NOT_IMPLEMENTED",
	503: "REC_SERVICE_UNAVAILABLE",
}

// Message is a valid message to post: the Bundle and its headers
// (Content-Type, Accept and the BaRS headers). X-Request-Id and
// X-Correlation-Id are replaced on every post, and so is the Bundle's id,
// so that a receiver that has seen the message before (an earlier run)
// takes it as new.
type Message struct {
	Bundle []byte
	Header http.Header
	// Service is the registry id of the service the message is addressed
	// to; Scenario the scenario whose record it maps.
	Service  string
	Scenario string
}

// Receiver is an NHS receiver under test.
type Receiver struct {
	// Endpoint is its FHIR base URL ({Endpoint}/$process-message is
	// posted to) or the $process-message URL itself.
	Endpoint string
	// Token, when set, is sent as a bearer token.
	Token string
	// Client sends the requests (an *http.Client, or the gateway's own
	// delivery client with the service's TLS and OAuth2 settings); nil uses
	// an *http.Client with a 30 s timeout.
	Client  Doer
	Message Message
	// Callbacks, when set, collects the response messages the receiver
	// posts back (it must be configured to post to where they are
	// served): the response-message check then waits up to CallbackWait
	// (default 30 s) for its answer to the accepted referral.
	Callbacks    *Callbacks
	CallbackWait time.Duration
}

// Doer sends one HTTP request.
type Doer interface {
	Do(*http.Request) (*http.Response, error)
}

// ProcessMessageURL is where messages to endpoint go.
func ProcessMessageURL(endpoint string) string {
	if strings.HasSuffix(endpoint, "/$process-message") {
		return endpoint
	}
	return strings.TrimRight(endpoint, "/") + "/$process-message"
}

// ExampleMessage builds a valid message for service with the gateway's own
// evaluation and mapping: the first allowed scenario for that service is
// evaluated at its time, and the headers are the ones the delivery worker
// sends.
func ExampleMessage(ctx context.Context, ev *gateway.Evaluator, scenarios []Scenario, service string) (Message, error) {
	svc, ok := ev.Registry.Lookup(service)
	if !ok {
		return Message{}, fmt.Errorf("service %q is not in the registry; use one of: %s", service, strings.Join(ev.Registry.IDs(), ", "))
	}
	var with []string
	for _, s := range scenarios {
		if s.Expect.Outcome != "allow" || s.Body != nil {
			continue
		}
		if s.Expect.Service != service {
			with = append(with, s.Expect.Service)
			continue
		}
		at, _ := time.Parse(time.RFC3339, s.At)
		e, err := ev.Evaluate(ctx, s.Request, at)
		if err != nil {
			return Message{}, fmt.Errorf("scenario %s: %w", s.Name, err)
		}
		if e.Outcome != gateway.OutcomeAllow {
			return Message{}, fmt.Errorf("scenario %s: the gateway's answer is %s, not allow", s.Name, e.Outcome)
		}
		m := gateway.OutboxMessage{
			RequestID: uuid.NewString(), Body: e.Bundle, Institution: s.Institution, ServiceID: svc.ID,
			Sender: gateway.SenderOf(e.Record.Institution),
		}
		h := gateway.Headers(m, *svc, ev.Source)
		return Message{Bundle: e.Bundle, Header: h, Service: svc.ID, Scenario: s.Name}, nil
	}
	slices.Sort(with)
	return Message{}, fmt.Errorf("no allowed scenario refers to service %q; the scenarios have messages for: %s", service, strings.Join(slices.Compact(with), ", "))
}

// receiverCheck is one named check of CheckReceiver.
type receiverCheck struct {
	name, description string
	run               func(p *poster) Case
}

// CheckReceiver posts to the receiver's $process-message what the gateway's
// delivery worker relies on, one case per check. It stops early only when
// ctx ends.
func CheckReceiver(ctx context.Context, rc Receiver, o Options) *Report {
	var client Doer = &http.Client{Timeout: 30 * time.Second}
	if rc.Client != nil {
		client = rc.Client
	}
	url := ProcessMessageURL(rc.Endpoint)
	p := &poster{ctx: ctx, client: client, url: url, token: rc.Token, msg: rc.Message, validator: o.validator(),
		callbacks: rc.Callbacks, callbackWait: rc.CallbackWait}
	if p.callbackWait <= 0 {
		p.callbackWait = 30 * time.Second
	}
	all := receiverChecks(rc.Callbacks != nil)
	return runCases(ctx, "receiver", url, o, len(all), func(i int) Case {
		start := time.Now()
		c := all[i].run(p)
		c.Name, c.Description = all[i].name, all[i].description
		c.finish(start)
		return c
	})
}

// ReceiverCheckNames lists the checks CheckReceiver makes, in order;
// withCallbacks, those it makes when it collects response messages.
func ReceiverCheckNames(withCallbacks bool) []string {
	var out []string
	for _, ch := range receiverChecks(withCallbacks) {
		out = append(out, ch.name)
	}
	return out
}

func receiverChecks(withCallbacks bool) []receiverCheck {
	checks := []receiverCheck{
		{"accepts-valid-message", "A valid BaRS message (the gateway's mapping of an example case, with the BaRS headers the gateway sends) is accepted with a 2xx.", (*poster).acceptsValid},
		{"repeat-is-idempotent", "The same message again with the same X-Request-Id, as the gateway sends it after a lost answer, is not processed a second time: 409 with a duplicate OperationOutcome (REC_CONFLICT), or a 2xx that replays the first answer.", (*poster).repeat},
	}
	for _, m := range malformedBodies {
		checks = append(checks, receiverCheck{"malformed-bundle/" + m.name, "A body that " + m.what + " is refused with 400 or 422 and an OperationOutcome with a BaRS error code.",
			refused(func(q *post) { q.body = m.body(q.body) }, "answered 400 or 422", http.StatusBadRequest, http.StatusUnprocessableEntity)})
	}
	for _, h := range BaRSHeaders {
		checks = append(checks, receiverCheck{"missing-header/" + h, "A valid message without the " + h + " header is refused with 400 and an OperationOutcome with a BaRS error code.",
			refused(func(q *post) { q.header.Del(h) }, "answered 400", http.StatusBadRequest)})
	}
	if withCallbacks {
		checks = append(checks, receiverCheck{"response-message", "The receiver answers the accepted referral with a BaRS response message posted to the sender's $process-message: " +
			"a message Bundle whose MessageHeader has the event servicerequest-response, response.identifier naming the request and response.code ok, transient-error or fatal-error, " +
			"focused on the ServiceRequest with the referral's identifiers, with the BaRS headers and the referral's X-Correlation-Id.", (*poster).responseMessage})
	}
	return checks
}

// poster sends the checks' requests and remembers the first post, which the
// repeat check sends again.
type poster struct {
	ctx       context.Context
	client    Doer
	url       string
	token     string
	msg       Message
	validator *fhirvalidator.Validator

	first     *post // the first valid post, when it was accepted
	firstBody []byte

	callbacks    *Callbacks // nil: response messages are not checked
	callbackWait time.Duration
}

// post is one request to send.
type post struct {
	header http.Header
	body   []byte
}

// reply is the receiver's answer.
type reply struct {
	status int
	header http.Header
	body   []byte
}

// fresh is the message with new request and correlation ids and a new
// Bundle id.
func (p *poster) fresh() *post {
	h := p.msg.Header.Clone()
	if h == nil {
		h = http.Header{}
	}
	h.Set("X-Request-Id", uuid.NewString())
	h.Set("X-Correlation-Id", uuid.NewString())
	return &post{header: h, body: renewBundleID(p.msg.Bundle)}
}

// send posts q; when no answer comes, that is the case's reason.
func (p *poster) send(c *Case, q *post) (reply, bool) {
	r, err := p.post(q)
	if err != nil {
		c.Reason = "no answer: " + err.Error()
	}
	return r, err == nil
}

func (p *poster) post(q *post) (reply, error) {
	req, err := http.NewRequestWithContext(p.ctx, http.MethodPost, p.url, bytes.NewReader(q.body))
	if err != nil {
		return reply{}, err
	}
	for k, vs := range q.header {
		req.Header[k] = slices.Clone(vs)
	}
	if p.token != "" {
		req.Header.Set("Authorization", "Bearer "+p.token)
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return reply{}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return reply{}, fmt.Errorf("reading the answer: %w", err)
	}
	return reply{status: resp.StatusCode, header: resp.Header, body: body}, nil
}

func (p *poster) acceptsValid() Case {
	var c Case
	cs := (*checks)(&c.Checks)
	res := p.validator.Validate(p.msg.Bundle)
	cs.add("the message sent is valid FHIR R4 (built-in rules)", res.OK(), errorsText(res))
	q := p.fresh()
	r, ok := p.send(&c, q)
	if !ok {
		return c
	}
	ok = r.status >= 200 && r.status < 300
	cs.add("answered 2xx", ok, answerText(r))
	if ok {
		p.first, p.firstBody = q, r.body
	}
	return c
}

func (p *poster) repeat() Case {
	var c Case
	if p.first == nil {
		c.Status, c.Reason = Skip, "the first message was not accepted, so a repeat cannot be judged"
		return c
	}
	r, ok := p.send(&c, p.first)
	if !ok {
		return c
	}
	cs := (*checks)(&c.Checks)
	switch {
	case r.status == http.StatusConflict:
		dup, code := duplicateOutcome(r.body)
		cs.add("409 carries an OperationOutcome with issue code duplicate and BaRS code REC_CONFLICT", dup, "got "+code)
	case r.status >= 200 && r.status < 300:
		cs.add("a 2xx to the repeat replays the first answer (not a second processing)", bytes.Equal(r.body, p.firstBody),
			fmt.Sprintf("answered %d with a different body than the first time: the message was processed a second time", r.status))
	default:
		cs.add("answered 409 duplicate or 2xx", false, answerText(r))
	}
	return c
}

// malformed is a body a receiver must refuse.
type malformed struct {
	name, what string
	body       func(bundle []byte) []byte
}

var malformedBodies = []malformed{
	{"not-json", "is not JSON", func([]byte) []byte { return []byte(`{"resourceType": "Bundle", "type": "message", "entry": [`) }},
	{"not-a-bundle", "is a FHIR resource but not a Bundle", func([]byte) []byte {
		return []byte(`{"resourceType": "Patient", "id": "` + uuid.NewString() + `", "gender": "unknown"}`)
	}},
	{"no-message-header", "is the message Bundle without its MessageHeader", dropMessageHeader},
}

// refused is a check that a valid message, spoiled, is refused with one of
// the statuses and a BaRS OperationOutcome.
func refused(spoil func(*post), name string, statuses ...int) func(p *poster) Case {
	return func(p *poster) Case {
		var c Case
		q := p.fresh()
		spoil(q)
		r, ok := p.send(&c, q)
		if !ok {
			return c
		}
		cs := (*checks)(&c.Checks)
		cs.add(name, slices.Contains(statuses, r.status), answerText(r))
		outcomeChecks(cs, r)
		return c
	}
}

// outcomeChecks checks that an error answer is a BaRS OperationOutcome:
// an OperationOutcome with an error issue whose details name a BaRS error
// code, the one that goes with the status.
func outcomeChecks(cs *checks, r reply) {
	issues, isOO := readOutcome(r)
	cs.add("the answer is an OperationOutcome", isOO, answerText(r))
	if !isOO {
		return
	}
	var codes []string
	for _, is := range issues {
		if is.Severity == "error" || is.Severity == "fatal" {
			codes = append(codes, is.codes(ErrorCodeSystem)...)
		}
	}
	cs.add("an error issue's details name a BaRS code ("+ErrorCodeSystem+")", len(codes) > 0, "no issue.details.coding in that system")
	if want, known := statusCodes[r.status]; known && len(codes) > 0 {
		cs.add(fmt.Sprintf("the BaRS code is %s for %d", want, r.status), slices.Contains(codes, want), "got "+strings.Join(codes, ", "))
	}
}

// readOutcome reads an answer as an OperationOutcome.
func readOutcome(r reply) ([]outcomeIssue, bool) {
	mt, _, _ := mime.ParseMediaType(r.header.Get("Content-Type"))
	var oo struct {
		ResourceType string         `json:"resourceType"`
		Issue        []outcomeIssue `json:"issue"`
	}
	if !strings.HasSuffix(mt, "json") || json.Unmarshal(r.body, &oo) != nil || oo.ResourceType != "OperationOutcome" || len(oo.Issue) == 0 {
		return nil, false
	}
	return oo.Issue, true
}

// duplicateOutcome reports whether a 409's body says the message was a
// duplicate: issue code duplicate with BaRS code REC_CONFLICT (or none).
func duplicateOutcome(body []byte) (bool, string) {
	issues, ok := readOutcome(reply{header: http.Header{"Content-Type": {"application/fhir+json"}}, body: body})
	if !ok {
		return false, "no OperationOutcome"
	}
	var seen []string
	for _, is := range issues {
		bars := ""
		if codes := is.codes(ErrorCodeSystem); len(codes) > 0 {
			bars = codes[len(codes)-1]
		}
		seen = append(seen, strings.TrimSpace(is.Code+" "+bars))
		if is.Code == "duplicate" && bars == "REC_CONFLICT" {
			return true, ""
		}
	}
	return false, strings.Join(seen, ", ")
}

// answerText describes an answer without quoting more than its start.
func answerText(r reply) string {
	s := fmt.Sprintf("answered %d", r.status)
	if ct := r.header.Get("Content-Type"); ct != "" {
		s += " (" + ct + ")"
	}
	if issues, ok := readOutcome(r); ok {
		var codes []string
		for _, is := range issues {
			codes = append(codes, strings.Join(append([]string{is.Code}, is.codes("")...), " "))
		}
		s += ": OperationOutcome " + strings.Join(codes, "; ")
	}
	return s
}

// renewBundleID gives the Bundle a new id (the id and the identifier that
// repeats it).
func renewBundleID(bundle []byte) []byte {
	var b struct {
		ID string `json:"id"`
	}
	if json.Unmarshal(bundle, &b) != nil || b.ID == "" {
		return bundle
	}
	return bytes.ReplaceAll(bundle, []byte(b.ID), []byte(uuid.NewString()))
}

// dropMessageHeader removes the Bundle's first entry (the MessageHeader).
func dropMessageHeader(bundle []byte) []byte {
	var b map[string]json.RawMessage
	var entries []json.RawMessage
	if json.Unmarshal(bundle, &b) != nil || json.Unmarshal(b["entry"], &entries) != nil || len(entries) < 2 {
		return []byte(`{"resourceType": "Bundle", "type": "message"}`)
	}
	rest, _ := json.Marshal(entries[1:])
	b["entry"] = rest
	out, _ := json.Marshal(b) // raw values that decoded re-encode
	return out
}
