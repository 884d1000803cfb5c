package sandbox

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/student-mh-referrals/gateway/gateway"
)

// responseToRef is responseTo as it was before it took the entries' types
// from readMessage: each entry it looks for is found by decoding the
// resources again. It is frozen here as the reference that responseTo's
// bytes must equal (TestResponseToMatchesRef).
func responseToRef(req message, mh messageHeader, accept bool, reason string, at time.Time) ([]byte, responseInfo, error) {
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
