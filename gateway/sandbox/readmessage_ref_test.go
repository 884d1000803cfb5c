package sandbox

import (
	"encoding/json"
	"net/http"

	"github.com/samply/golang-fhir-models/fhir-models/fhir"
)

// readMessageRef is readMessage as it was before it walked the body with
// jsonscan: the whole Bundle decoded with encoding/json, then each entry's
// resource again for its type and the focus again for its status. It is
// frozen here as the reference that readMessage must agree with on every
// body (TestReadMessageMatchesRef, FuzzReadMessageEquiv).
func readMessageRef(req *request) *problem {
	var b message
	if err := json.Unmarshal(req.body, &b); err != nil {
		return badRequest(fhir.IssueTypeStructure, "the body is not a JSON FHIR resource")
	}
	if b.ResourceType != "Bundle" || b.Type != "message" || len(b.Entry) == 0 {
		return badRequest(fhir.IssueTypeStructure, "the body must be a message Bundle whose first entry is a MessageHeader with an eventCoding")
	}
	var mh messageHeader
	if json.Unmarshal(b.Entry[0].Resource, &mh) != nil || mh.ResourceType != "MessageHeader" || mh.EventCoding == nil || mh.EventCoding.Code == nil {
		return badRequest(fhir.IssueTypeStructure, "the body must be a message Bundle whose first entry is a MessageHeader with an eventCoding")
	}
	if b.ID == "" {
		return badRequest(fhir.IssueTypeRequired, "Bundle.id is required")
	}
	types := map[string]string{}
	for _, e := range b.Entry {
		var r struct {
			ResourceType string `json:"resourceType"`
		}
		if e.FullURL == "" || json.Unmarshal(e.Resource, &r) != nil || r.ResourceType == "" {
			return badRequest(fhir.IssueTypeStructure, "every Bundle.entry needs a fullUrl and a resource")
		}
		types[e.FullURL] = r.ResourceType
	}
	req.bundleID, req.event = b.ID, *mh.EventCoding.Code
	req.msg, req.mh = b, mh
	if mh.EventCoding.System == nil || *mh.EventCoding.System != EventSystem || req.event != "servicerequest-request" {
		return &problem{http.StatusUnprocessableEntity, fhir.IssueTypeNotSupported, "REC_UNPROCESSABLE_ENTITY",
			"the sandbox takes only " + EventSystem + "#servicerequest-request messages"}
	}
	if mh.Reason != nil {
		for _, c := range mh.Reason.Coding {
			if c.System != nil && *c.System == ReasonSystem && c.Code != nil {
				req.reason = *c.Code
			}
		}
	}
	matched := len(mh.Destination) == 0
	for _, d := range mh.Destination {
		matched = matched || d.Endpoint == req.target
	}
	if !matched {
		return badRequest(fhir.IssueTypeValue, "MessageHeader.destination.endpoint does not name the NHSD-Target-Identifier")
	}
	if len(mh.Focus) == 0 || types[mh.Focus[0].Reference] != "ServiceRequest" {
		return badRequest(fhir.IssueTypeInvalid, "MessageHeader.focus must reference a ServiceRequest in the Bundle")
	}
	for _, e := range b.Entry {
		if e.FullURL != mh.Focus[0].Reference {
			continue
		}
		var sr struct {
			Status string `json:"status"`
		}
		_ = json.Unmarshal(e.Resource, &sr)
		if sr.Status != "active" && sr.Status != "revoked" {
			return badRequest(fhir.IssueTypeValue, "ServiceRequest.status must be active (a referral) or revoked (a cancellation)")
		}
		req.status = sr.Status
	}
	return nil
}
