package sandbox

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/student-mh-referrals/gateway/gateway"
)

// EventResponse is the BaRS event of a receiver's answer to a referral.
const EventResponse = "servicerequest-response"

// UK Core profiles the response message claims, as the gateway's own
// messages do.
const (
	profileBundle         = "https://fhir.hl7.org.uk/StructureDefinition/UKCore-Bundle"
	profileMessageHeader  = "https://fhir.hl7.org.uk/StructureDefinition/UKCore-MessageHeader"
	profileServiceRequest = "https://fhir.hl7.org.uk/StructureDefinition/UKCore-ServiceRequest"
	profilePatient        = "https://fhir.hl7.org.uk/StructureDefinition/UKCore-Patient"
)

// Software is how the sandbox names itself as a message source.
const Software = "student-mh-referral-gateway sandbox receiver"

// ResponseMessage builds the BaRS response message (event
// servicerequest-response) that a receiver posts to the sender's
// $process-message about the referral message request, so that the
// gateway's inbound handler and its tests have a message of the shape the
// sandbox sends:
//
//   - Bundle: type message, a new id (derived from the request's
//     MessageHeader id and the decision, so that a re-sent response is the
//     same message), identifier urn:uuid:{id}, timestamp now.
//   - MessageHeader (first entry): eventCoding
//     https://fhir.nhs.uk/CodeSystem/message-events-bars#servicerequest-response;
//     reason message-reason-bars#new; response.identifier = the request's
//     MessageHeader.id and response.code = ok (the message was processed,
//     whatever the decision); sender = the receiving Organization;
//     destination = the request's source endpoint, received by the sending
//     Organization; source.endpoint = the receiving service (system|value);
//     focus → the ServiceRequest.
//   - ServiceRequest: the request's id, fullUrl and identifiers (the case id
//     under the institution's system and the gateway's referral id), intent,
//     category and code; status active when accept, revoked when not, with
//     the reason in a note ("Rejected by the receiving service: …");
//     subject → Patient; performer → the receiving Organization.
//   - Patient: the request's id and fullUrl only, no identifier, name or
//     other personal data: the ServiceRequest needs a subject, and the
//     gateway knows who it is.
//   - Organization: the receiving and the sending Organization, copied from
//     the request.
//
// A gateway reading it takes accept as response.code ok with the
// ServiceRequest active; anything else is a rejection.
func ResponseMessage(request []byte, accept bool, reason string) ([]byte, error) {
	b, _, err := responseMessage(request, accept, reason, time.Now())
	return b, err
}

// responseInfo is what the callback needs beside the body.
type responseInfo struct {
	id       string          // Bundle id, also the callback's X-Request-Id
	receiver json.RawMessage // the receiving Organization, for its header
}

type rawEntry struct {
	FullURL  string          `json:"fullUrl"`
	Resource json.RawMessage `json:"resource"`
}

func responseMessage(request []byte, accept bool, reason string, at time.Time) ([]byte, responseInfo, error) {
	var req message
	if err := json.Unmarshal(request, &req); err != nil || req.ResourceType != "Bundle" || req.Type != "message" || len(req.Entry) == 0 {
		return nil, responseInfo{}, errors.New("the request is not a message Bundle")
	}
	var mh messageHeader
	if json.Unmarshal(req.Entry[0].Resource, &mh) != nil {
		return nil, responseInfo{}, errors.New("the request's first entry is not a MessageHeader with an id")
	}
	return responseTo(req, mh, accept, reason, at)
}

// responseTo is responseMessage for a request already decoded: the
// receiver decodes each post once, to check it and to answer it.
func responseTo(req message, mh messageHeader, accept bool, reason string, at time.Time) ([]byte, responseInfo, error) {
	if req.ResourceType != "Bundle" || req.Type != "message" || len(req.Entry) == 0 {
		return nil, responseInfo{}, errors.New("the request is not a message Bundle")
	}
	if mh.ResourceType != "MessageHeader" || mh.ID == "" {
		return nil, responseInfo{}, errors.New("the request's first entry is not a MessageHeader with an id")
	}
	switch {
	case len(mh.Focus) == 0:
		return nil, responseInfo{}, errors.New("the request's MessageHeader has no focus")
	case len(mh.Destination) == 0 || mh.Destination[0].Endpoint == "" || mh.Destination[0].Receiver == nil:
		return nil, responseInfo{}, errors.New("the request's MessageHeader has no destination endpoint and receiver")
	case mh.Source.Endpoint == "":
		return nil, responseInfo{}, errors.New("the request's MessageHeader has no source endpoint to answer to")
	case mh.Sender == nil:
		return nil, responseInfo{}, errors.New("the request's MessageHeader has no sender")
	}
	find := func(ref, resourceType string) (rawEntry, error) {
		for _, e := range req.Entry {
			var r struct {
				ResourceType string `json:"resourceType"`
			}
			if e.FullURL == ref && json.Unmarshal(e.Resource, &r) == nil && r.ResourceType == resourceType {
				return e, nil
			}
		}
		return rawEntry{}, fmt.Errorf("the request has no %s at %q", resourceType, ref)
	}
	srEntry, err := find(mh.Focus[0].Reference, "ServiceRequest")
	if err != nil {
		return nil, responseInfo{}, err
	}
	recvOrg, err := find(mh.Destination[0].Receiver.Reference, "Organization")
	if err != nil {
		return nil, responseInfo{}, err
	}
	sendOrg, err := find(mh.Sender.Reference, "Organization")
	if err != nil {
		return nil, responseInfo{}, err
	}
	var sr struct {
		ID         string          `json:"id"`
		Identifier json.RawMessage `json:"identifier"`
		Intent     string          `json:"intent"`
		Category   json.RawMessage `json:"category"`
		Code       json.RawMessage `json:"code"`
		Subject    reference       `json:"subject"`
	}
	if err := json.Unmarshal(srEntry.Resource, &sr); err != nil || sr.ID == "" {
		return nil, responseInfo{}, errors.New("the request's ServiceRequest has no id")
	}
	patEntry, err := find(sr.Subject.Reference, "Patient")
	if err != nil {
		return nil, responseInfo{}, err
	}
	var pat struct {
		ID string `json:"id"`
	}
	if json.Unmarshal(patEntry.Resource, &pat) != nil || pat.ID == "" {
		return nil, responseInfo{}, errors.New("the request's Patient has no id")
	}

	decision := "accept"
	if !accept {
		decision = "reject"
	}
	bundleID := gateway.DeriveID("sandbox-response-bundle", mh.ID, decision)
	headerID := gateway.DeriveID("sandbox-response-header", mh.ID, decision)
	out := outServiceRequest{
		ResourceType: "ServiceRequest", ID: sr.ID, Meta: outMeta{Profile: []string{profileServiceRequest}},
		Identifier: sr.Identifier, Status: "active", Intent: sr.Intent, Category: sr.Category, Code: sr.Code,
		Subject:   reference{Reference: patEntry.FullURL},
		Performer: []reference{{Reference: recvOrg.FullURL}},
	}
	if out.Intent == "" {
		out.Intent = "order"
	}
	if !accept {
		out.Status = "revoked"
		text := "Rejected by the receiving service"
		if reason != "" {
			text += ": " + reason
		}
		out.Note = []outNote{{Text: text}}
	}
	b := outBundle{
		ResourceType: "Bundle", ID: bundleID, Meta: outMeta{Profile: []string{profileBundle}},
		Identifier: outIdentifier{System: "urn:ietf:rfc:3986", Value: "urn:uuid:" + bundleID},
		Type:       "message", Timestamp: at.UTC().Format(time.RFC3339),
		Entry: []outEntry{
			{FullURL: "urn:uuid:" + headerID, Resource: outMessageHeader{
				ResourceType: "MessageHeader", ID: headerID, Meta: outMeta{Profile: []string{profileMessageHeader}},
				EventCoding: outCoding{System: EventSystem, Code: EventResponse},
				Destination: []outDestination{{Endpoint: mh.Source.Endpoint, Receiver: &reference{Reference: sendOrg.FullURL}}},
				Sender:      &reference{Reference: recvOrg.FullURL},
				Source:      outSource{Name: "Sandbox NHS receiver", Software: Software, Endpoint: mh.Destination[0].Endpoint},
				Reason:      outCodeableConcept{Coding: []outCoding{{System: ReasonSystem, Code: "new"}}},
				Response:    outResponse{Identifier: mh.ID, Code: "ok"},
				Focus:       []reference{{Reference: srEntry.FullURL}},
			}},
			{FullURL: srEntry.FullURL, Resource: out},
			{FullURL: patEntry.FullURL, Resource: outPatient{ResourceType: "Patient", ID: pat.ID, Meta: outMeta{Profile: []string{profilePatient}}}},
			{FullURL: recvOrg.FullURL, Resource: recvOrg.Resource},
		},
	}
	if sendOrg.FullURL != recvOrg.FullURL {
		b.Entry = append(b.Entry, outEntry{FullURL: sendOrg.FullURL, Resource: sendOrg.Resource})
	}
	body, err := json.Marshal(b)
	if err != nil {
		return nil, responseInfo{}, err
	}
	return body, responseInfo{id: bundleID, receiver: recvOrg.Resource}, nil
}

type outBundle struct {
	ResourceType string        `json:"resourceType"`
	ID           string        `json:"id"`
	Meta         outMeta       `json:"meta"`
	Identifier   outIdentifier `json:"identifier"`
	Type         string        `json:"type"`
	Timestamp    string        `json:"timestamp"`
	Entry        []outEntry    `json:"entry"`
}

type outMeta struct {
	Profile []string `json:"profile"`
}

type outIdentifier struct {
	System string `json:"system"`
	Value  string `json:"value"`
}

type outEntry struct {
	FullURL  string `json:"fullUrl"`
	Resource any    `json:"resource"`
}

type outCoding struct {
	System string `json:"system"`
	Code   string `json:"code"`
}

type outCodeableConcept struct {
	Coding []outCoding `json:"coding"`
}

type outMessageHeader struct {
	ResourceType string             `json:"resourceType"`
	ID           string             `json:"id"`
	Meta         outMeta            `json:"meta"`
	EventCoding  outCoding          `json:"eventCoding"`
	Destination  []outDestination   `json:"destination"`
	Sender       *reference         `json:"sender,omitempty"`
	Source       outSource          `json:"source"`
	Reason       outCodeableConcept `json:"reason"`
	Response     outResponse        `json:"response"`
	Focus        []reference        `json:"focus"`
}

type outDestination struct {
	Endpoint string     `json:"endpoint"`
	Receiver *reference `json:"receiver,omitempty"`
}

type outSource struct {
	Name     string `json:"name"`
	Software string `json:"software"`
	Endpoint string `json:"endpoint"`
}

type outResponse struct {
	Identifier string `json:"identifier"`
	Code       string `json:"code"`
}

type outServiceRequest struct {
	ResourceType string          `json:"resourceType"`
	ID           string          `json:"id"`
	Meta         outMeta         `json:"meta"`
	Identifier   json.RawMessage `json:"identifier,omitempty"`
	Status       string          `json:"status"`
	Intent       string          `json:"intent"`
	Category     json.RawMessage `json:"category,omitempty"`
	Code         json.RawMessage `json:"code,omitempty"`
	Subject      reference       `json:"subject"`
	Performer    []reference     `json:"performer,omitempty"`
	Note         []outNote       `json:"note,omitempty"`
}

type outNote struct {
	Text string `json:"text"`
}

type outPatient struct {
	ResourceType string  `json:"resourceType"`
	ID           string  `json:"id"`
	Meta         outMeta `json:"meta"`
}
