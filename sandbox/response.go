package sandbox

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/samply/golang-fhir-models/fhir-models/fhir"
	"github.com/student-mh-referrals/gateway/gateway"
	"go.uber.org/zap"
)

// EventResponse is the BaRS event of a receiver's answer to a referral, and
// Software how the sandbox names itself as its source.
const (
	EventResponse = "servicerequest-response"
	Software      = "student-mh-referral-gateway sandbox receiver"
)

// softwareHeader is the sandbox's NHSD-Requesting-Software: base64 of a
// Device naming it.
var softwareHeader = base64.StdEncoding.EncodeToString([]byte(
	`{"deviceName":[{"name":"` + Software + `","type":"manufacturer-name"}],"resourceType":"Device"}`))

// Callback is what the sandbox keeps of one response message it posts to
// the gateway.
type Callback struct {
	// RequestID is the X-Request-Id of the referral message answered, and
	// BundleID its Bundle id (which the response names).
	RequestID string `json:"requestId"`
	BundleID  string `json:"bundleId,omitempty"`
	// ResponseID is the response Bundle's id, also the X-Request-Id of the
	// post (the same on every retry).
	ResponseID string `json:"responseId,omitempty"`
	// Step is the step the response reports (accepted, rejected, booked,
	// …).
	Step     string `json:"step"`
	Attempts int    `json:"attempts"`
	// Status is the gateway's last HTTP status (0 when it did not answer).
	Status int    `json:"status,omitempty"`
	Error  string `json:"error,omitempty"`
	// Done is set once the post succeeded or was given up.
	Done bool `json:"done"`
}

// Callbacks lists the response messages posted or being posted, oldest
// first.
func (rc *Receiver) Callbacks() []Callback { return snapshot(rc, &rc.callbacks) }

// respond answers a referral it accepted: it keeps what later steps need
// (its journey) and posts the acceptance, or the rejection, in the
// background after the callback delay.
func (rc *Receiver) respond(req request, accept bool, reason string) {
	if rc.opt.CallbackURL == "" {
		return
	}
	spec := StepSpec{Step: StepAccepted}
	if !accept {
		spec = StepSpec{Step: StepRejected, Reason: reason}
	}
	o, err := originOf(req)
	if err == nil {
		rc.keepJourney(req.bundleID, o)
	}
	i := rc.prepare(o, err, spec)
	rc.cbs.Go(func() { rc.deliver(i, rc.opt.CallbackDelay) })
}

// prepare builds the response message reporting spec about the referral of
// o (whose journey it advances), and lists it among the callbacks; it
// returns the callback's index. A message that cannot be built is listed
// done, with the error.
func (rc *Receiver) prepare(o *origin, err error, spec StepSpec) int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	cb := Callback{Step: spec.Step}
	var p pending
	if err == nil {
		cb.RequestID, cb.BundleID, p.correlationID = o.requestID, o.bundleID, o.correlationID
		p.body, p.info, err = o.message(spec, rc.opt.Now())
		cb.ResponseID = p.info.id
	}
	if err != nil {
		cb.Done, cb.Error = true, "cannot build the response message: "+err.Error()
	}
	rc.callbacks = append(rc.callbacks, cb)
	rc.pending = append(rc.pending, p)
	return len(rc.callbacks) - 1
}

// pending is a response message waiting to be posted.
type pending struct {
	body          []byte
	info          responseInfo
	correlationID string
}

// deliver posts the prepared response message i after wait, and up to 4
// times again with backoff while the gateway is unreachable or answers 408,
// 429 or 5xx.
func (rc *Receiver) deliver(i int, wait time.Duration) {
	rc.mu.Lock()
	p, done := rc.pending[i], rc.callbacks[i].Done
	rc.pending[i] = pending{} // the body is not kept once posted
	rc.mu.Unlock()
	if done {
		return
	}
	msg := ""
	for attempt := 1; attempt <= 5; attempt++ {
		if !sleep(rc.ctx, wait) {
			msg = "the receiver stopped before the response was posted"
			break
		}
		status, perr := rc.postResponse(p.body, p.info, p.correlationID)
		rc.mu.Lock()
		rc.callbacks[i].Attempts, rc.callbacks[i].Status = attempt, status
		rc.mu.Unlock()
		switch {
		case status >= 200 && status < 300, status == http.StatusConflict:
			msg = ""
		case perr != nil:
			msg = "the gateway did not answer: " + perr.Error()
		default:
			msg = fmt.Sprintf("the gateway answered %d", status)
		}
		if msg == "" || perr == nil && status != http.StatusRequestTimeout && status != http.StatusTooManyRequests && status < 500 {
			break
		}
		wait = 500 * time.Millisecond << (attempt - 1)
	}
	rc.mu.Lock()
	cb := &rc.callbacks[i]
	cb.Done, cb.Error = true, msg
	rc.mu.Unlock()
	rc.opt.Logger.Info("response message", zap.String("request_id", cb.RequestID), zap.String("response_id", p.info.id),
		zap.String("step", cb.Step), zap.String("error", msg))
}

// postResponse posts one response message with the BaRS headers, the
// referral's correlation id and the receiving organisation among them.
func (rc *Receiver) postResponse(body []byte, info responseInfo, correlationID string) (int, error) {
	url := strings.TrimRight(rc.opt.CallbackURL, "/") + "/$process-message"
	req, err := http.NewRequestWithContext(rc.ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/fhir+json")
	req.Header.Set("Accept", "application/fhir+json")
	req.Header.Set("Authorization", "Bearer "+rc.opt.CallbackToken)
	req.Header.Set("X-Request-Id", info.id)
	req.Header.Set("X-Correlation-Id", correlationID)
	req.Header.Set("NHSD-End-User-Organisation", base64.StdEncoding.EncodeToString(info.receiver))
	req.Header.Set("NHSD-Requesting-Software", softwareHeader)
	resp, err := rc.hc.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, nil
}

// sleep waits d or until ctx ends; it reports whether the wait ran out.
func sleep(ctx context.Context, d time.Duration) bool {
	select {
	case <-time.After(d):
		return true
	case <-ctx.Done():
		return false
	}
}

// responseInfo is what the callback needs beside the body.
type responseInfo struct {
	id       string          // Bundle id, also the callback's X-Request-Id
	receiver json.RawMessage // the receiving Organization, for its header
}

// origin is what the sandbox keeps of a referral it accepted, so that it
// can report each step of the student's journey later: ids, endpoints, the
// ServiceRequest's identifiers and the two organisations, never the
// student's data.
type origin struct {
	requestID, correlationID, bundleID, headerID string
	source, destination                          string // the request's source and destination endpoints
	srURL                                        string
	sr                                           serviceRequest
	recvOrg, sendOrg                             rawEntry
	patURL, patID                                string
	// The journey so far: responses built, and the latest booking.
	sent      int
	apptID    string
	apptStart time.Time
}

// originOf reads what answering req needs, from a referral readMessage has
// read.
func originOf(req request) (*origin, error) {
	mh := req.mh
	if mh.ID == "" || len(mh.Destination) == 0 || mh.Destination[0].Endpoint == "" || mh.Destination[0].Receiver == nil ||
		mh.Source.Endpoint == "" || mh.Sender == nil || req.sr.ID == "" {
		return nil, errors.New("the request needs a MessageHeader with an id, a destination endpoint and receiver, " +
			"a source endpoint and a sender, and a ServiceRequest with an id")
	}
	var missing []string
	find := func(ref, resourceType string) rawEntry {
		for _, e := range req.msg.Entry {
			if e.FullURL == ref && resourceType == resourceTypeOf(e.Resource) {
				return e
			}
		}
		missing = append(missing, fmt.Sprintf("%s at %q", resourceType, ref))
		return rawEntry{}
	}
	o := &origin{
		requestID: req.requestID, correlationID: req.correlationID, bundleID: req.msg.ID, headerID: mh.ID,
		source: mh.Source.Endpoint, destination: mh.Destination[0].Endpoint, srURL: mh.Focus[0].Reference, sr: req.sr,
		recvOrg: find(mh.Destination[0].Receiver.Reference, "Organization"), sendOrg: find(mh.Sender.Reference, "Organization"),
	}
	patEntry := find(req.sr.Subject.Reference, "Patient")
	var pat struct {
		ID string `json:"id"`
	}
	if json.Unmarshal(patEntry.Resource, &pat) != nil || pat.ID == "" {
		missing = append(missing, "Patient id")
	}
	if missing != nil {
		return nil, fmt.Errorf("the request has no %s", strings.Join(missing, ", "))
	}
	o.patURL, o.patID = patEntry.FullURL, pat.ID
	return o, nil
}

// responseTo builds the BaRS response message reporting spec about a
// referral readMessage has read (the first response to it).
func responseTo(req request, spec StepSpec, at time.Time) ([]byte, responseInfo, error) {
	o, err := originOf(req)
	if err != nil {
		return nil, responseInfo{}, err
	}
	return o.message(spec, at)
}

// message builds the BaRS response message reporting spec, as a receiver
// posts it to the sender's $process-message, and advances the journey. Its
// MessageHeader answers the request Bundle (response.identifier is the
// request Bundle's id, response.code ok), from the receiving Organization to
// the request's source. The ServiceRequest keeps the request's id and
// identifiers; the step is told as docs/fhir-mapping.md tabulates: the
// ServiceRequest's status, an Appointment, an Encounter. The Patient carries
// its id only, no personal data. Ids derive from the request's MessageHeader
// id, the step and the journey's count, so that a re-sent response is the
// same message. at is when the step happened unless spec says.
func (o *origin) message(spec StepSpec, now time.Time) ([]byte, responseInfo, error) {
	if err := spec.check(); err != nil {
		return nil, responseInfo{}, err
	}
	at := spec.At
	if at.IsZero() {
		at = now
	}
	n := strconv.Itoa(o.sent)
	if spec.Step == StepAccepted || spec.Step == StepRejected {
		n = "" // the first answer keeps the id it always had
	}
	decision := map[string]string{StepAccepted: "accept", StepRejected: "reject"}[spec.Step]
	if decision == "" {
		decision = spec.Step
	}
	bundleID := gateway.DeriveID("sandbox-response-bundle", o.headerID, decision+n)
	headerID := gateway.DeriveID("sandbox-response-header", o.headerID, decision+n)
	sr := o.sr
	sr.head, sr.Status, sr.Performer, sr.Note = newHead("ServiceRequest", sr.ID), "active", []reference{{o.recvOrg.FullURL}}, nil
	if sr.Intent == "" {
		sr.Intent = "order"
	}
	extra, err := o.stepResources(spec, &sr, at, bundleID)
	if err != nil {
		return nil, responseInfo{}, err
	}
	stamp := now // when the message was assembled; an answer is timed by it
	if spec.Step == StepAccepted || spec.Step == StepRejected {
		stamp = at
	}
	b := outBundle{
		head:       newHead("Bundle", bundleID),
		Identifier: fhir.Identifier{System: new("urn:ietf:rfc:3986"), Value: new("urn:uuid:" + bundleID)},
		Type:       "message", Timestamp: stamp.UTC().Format(instant),
		Entry: []outEntry{
			{"urn:uuid:" + headerID, outMessageHeader{
				head:        newHead("MessageHeader", headerID),
				EventCoding: fhir.Coding{System: new(EventSystem), Code: new(EventResponse)},
				Destination: []fhir.MessageHeaderDestination{{Endpoint: o.source, Receiver: &fhir.Reference{Reference: &o.sendOrg.FullURL}}},
				Sender:      reference{o.recvOrg.FullURL},
				Source:      fhir.MessageHeaderSource{Name: new("Sandbox NHS receiver"), Software: new(Software), Endpoint: o.destination},
				Reason:      fhir.CodeableConcept{Coding: []fhir.Coding{{System: new(ReasonSystem), Code: new("new")}}},
				Response:    fhir.MessageHeaderResponse{Identifier: o.bundleID, Code: fhir.ResponseTypeOk},
				Focus:       []reference{{o.srURL}},
			}},
			{o.srURL, sr},
			{o.patURL, newHead("Patient", o.patID)},
			{o.recvOrg.FullURL, o.recvOrg.Resource},
		},
	}
	if o.sendOrg.FullURL != o.recvOrg.FullURL {
		b.Entry = append(b.Entry, outEntry{o.sendOrg.FullURL, o.sendOrg.Resource})
	}
	b.Entry = append(b.Entry, extra...)
	body, err := json.Marshal(b)
	if err == nil {
		o.sent++
	}
	return body, responseInfo{id: bundleID, receiver: o.recvOrg.Resource}, err
}

// head is the start of every resource of the response message, which
// claims the UK Core profiles as the gateway's own messages do.
type head struct {
	ResourceType string    `json:"resourceType"`
	ID           string    `json:"id"`
	Meta         fhir.Meta `json:"meta"`
}

func newHead(resourceType, id string) head {
	return head{resourceType, id, fhir.Meta{Profile: []string{"https://fhir.hl7.org.uk/StructureDefinition/UKCore-" + resourceType}}}
}

type outBundle struct {
	head
	Identifier fhir.Identifier `json:"identifier"`
	Type       string          `json:"type"`
	Timestamp  string          `json:"timestamp"`
	Entry      []outEntry      `json:"entry"`
}

type outEntry struct {
	FullURL  string `json:"fullUrl"`
	Resource any    `json:"resource"`
}

type outMessageHeader struct {
	head
	EventCoding fhir.Coding                     `json:"eventCoding"`
	Destination []fhir.MessageHeaderDestination `json:"destination"`
	Sender      reference                       `json:"sender"`
	Source      fhir.MessageHeaderSource        `json:"source"`
	Reason      fhir.CodeableConcept            `json:"reason"`
	Response    fhir.MessageHeaderResponse      `json:"response"`
	Focus       []reference                     `json:"focus"`
}
