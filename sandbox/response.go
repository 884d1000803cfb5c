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
	// RequestID is the X-Request-Id of the referral message answered.
	RequestID string `json:"requestId"`
	// ResponseID is the response Bundle's id, also the X-Request-Id of the
	// post (the same on every retry).
	ResponseID string `json:"responseId,omitempty"`
	Accepted   bool   `json:"accepted"`
	Attempts   int    `json:"attempts"`
	// Status is the gateway's last HTTP status (0 when it did not answer).
	Status int    `json:"status,omitempty"`
	Error  string `json:"error,omitempty"`
	// Done is set once the post succeeded or was given up.
	Done bool `json:"done"`
}

// Callbacks lists the response messages posted or being posted, oldest
// first.
func (rc *Receiver) Callbacks() []Callback { return snapshot(rc, &rc.callbacks) }

// respond posts the response message to an accepted referral in the
// background: after the delay, and up to 4 times again with backoff while
// the gateway is unreachable or answers 408, 429 or 5xx.
func (rc *Receiver) respond(req request, accept bool, reason string) {
	if rc.opt.CallbackURL == "" {
		return
	}
	body, info, err := responseTo(req, accept, reason, rc.opt.Now())
	rc.mu.Lock()
	i := len(rc.callbacks)
	rc.callbacks = append(rc.callbacks, Callback{RequestID: req.requestID, ResponseID: info.id, Accepted: accept})
	rc.mu.Unlock()
	rc.cbs.Go(func() {
		msg, wait := "", rc.opt.CallbackDelay
		if err != nil {
			msg = "cannot build the response message: " + err.Error()
		}
		for attempt := 1; err == nil && attempt <= 5; attempt++ {
			if !sleep(rc.ctx, wait) {
				msg = "the receiver stopped before the response was posted"
				break
			}
			status, perr := rc.postResponse(body, info, req.correlationID)
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
		rc.callbacks[i].Done, rc.callbacks[i].Error = true, msg
		rc.mu.Unlock()
		rc.opt.Logger.Info("response message", zap.String("request_id", req.requestID), zap.String("response_id", info.id), zap.String("error", msg))
	})
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

// responseTo builds the BaRS response message to a referral readMessage
// has read, as a receiver posts it to the sender's $process-message. Its
// MessageHeader answers the request's (response.code ok, whatever the
// decision), from the receiving Organization to the request's source. The
// ServiceRequest keeps the request's id and identifiers and is active when
// accepted, revoked with the reason in a note when not; the Patient carries
// its id only, no personal data. Ids derive from the request's
// MessageHeader id and the decision, so that a re-sent response is the same
// message.
func responseTo(req request, accept bool, reason string, at time.Time) ([]byte, responseInfo, error) {
	mh := req.mh
	if mh.ID == "" || len(mh.Destination) == 0 || mh.Destination[0].Endpoint == "" || mh.Destination[0].Receiver == nil ||
		mh.Source.Endpoint == "" || mh.Sender == nil || req.sr.ID == "" {
		return nil, responseInfo{}, errors.New("the request needs a MessageHeader with an id, a destination endpoint and receiver, " +
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
	recvOrg, sendOrg := find(mh.Destination[0].Receiver.Reference, "Organization"), find(mh.Sender.Reference, "Organization")
	patEntry := find(req.sr.Subject.Reference, "Patient")
	var pat struct {
		ID string `json:"id"`
	}
	if json.Unmarshal(patEntry.Resource, &pat) != nil || pat.ID == "" {
		missing = append(missing, "Patient id")
	}
	if missing != nil {
		return nil, responseInfo{}, fmt.Errorf("the request has no %s", strings.Join(missing, ", "))
	}

	decision := "accept"
	if !accept {
		decision = "reject"
	}
	bundleID := gateway.DeriveID("sandbox-response-bundle", mh.ID, decision)
	headerID := gateway.DeriveID("sandbox-response-header", mh.ID, decision)
	srURL := mh.Focus[0].Reference
	sr := req.sr
	sr.head, sr.Status, sr.Performer, sr.Note = newHead("ServiceRequest", sr.ID), "active", []reference{{recvOrg.FullURL}}, nil
	if sr.Intent == "" {
		sr.Intent = "order"
	}
	if !accept {
		sr.Status, sr.Note = "revoked", []fhir.Annotation{{Text: "Rejected by the receiving service"}}
		if reason != "" {
			sr.Note[0].Text += ": " + reason
		}
	}
	b := outBundle{
		head:       newHead("Bundle", bundleID),
		Identifier: fhir.Identifier{System: new("urn:ietf:rfc:3986"), Value: new("urn:uuid:" + bundleID)},
		Type:       "message", Timestamp: at.UTC().Format(time.RFC3339),
		Entry: []outEntry{
			{"urn:uuid:" + headerID, outMessageHeader{
				head:        newHead("MessageHeader", headerID),
				EventCoding: fhir.Coding{System: new(EventSystem), Code: new(EventResponse)},
				Destination: []fhir.MessageHeaderDestination{{Endpoint: mh.Source.Endpoint, Receiver: &fhir.Reference{Reference: &sendOrg.FullURL}}},
				Sender:      reference{recvOrg.FullURL},
				Source:      fhir.MessageHeaderSource{Name: new("Sandbox NHS receiver"), Software: new(Software), Endpoint: mh.Destination[0].Endpoint},
				Reason:      fhir.CodeableConcept{Coding: []fhir.Coding{{System: new(ReasonSystem), Code: new("new")}}},
				Response:    fhir.MessageHeaderResponse{Identifier: mh.ID, Code: fhir.ResponseTypeOk},
				Focus:       []reference{{srURL}},
			}},
			{srURL, sr},
			{patEntry.FullURL, newHead("Patient", pat.ID)},
			{recvOrg.FullURL, recvOrg.Resource},
		},
	}
	if sendOrg.FullURL != recvOrg.FullURL {
		b.Entry = append(b.Entry, outEntry{sendOrg.FullURL, sendOrg.Resource})
	}
	body, err := json.Marshal(b)
	return body, responseInfo{id: bundleID, receiver: recvOrg.Resource}, err
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
