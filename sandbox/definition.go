package sandbox

import (
	"net/http"
	"strings"

	"github.com/samply/golang-fhir-models/fhir-models/fhir"
)

// DefinitionURL is the canonical URL of the MessageDefinition the sandbox
// publishes for a referral (servicerequest-request). The BaRS example
// definition is for urgent care (it demands an Encounter, medication and
// allergies); this one asks for what a student mental-health referral
// carries, so the gateway's messages adhere to it.
const DefinitionURL = "https://student-mh-referrals.github.io/gateway/fhir/MessageDefinition/sandbox-servicerequest-request"

// definitionFocus is what the sandbox's definition requires: the resource,
// its minimum and its maximum ("*" unbounded). Consent, CarePlan and Flag
// travel when the case and the decision have them.
var definitionFocus = []struct {
	code, profile string
	min           int
	max           string
}{
	{"Bundle", "UKCore-Bundle", 1, "1"},
	{"MessageHeader", "UKCore-MessageHeader", 1, "1"},
	{"ServiceRequest", "UKCore-ServiceRequest", 1, "1"},
	{"Patient", "UKCore-Patient", 1, "1"},
	{"Organization", "UKCore-Organization", 2, "*"},
	{"PractitionerRole", "UKCore-PractitionerRole", 1, "1"},
	{"Practitioner", "UKCore-Practitioner", 1, "1"},
	{"Consent", "UKCore-Consent", 0, "1"},
	{"CarePlan", "UKCore-CarePlan", 0, "1"},
	{"Flag", "UKCore-Flag", 0, "1"},
}

// messageDefinition is GET /fhir/MessageDefinition?context=system|value:
// a searchset Bundle with the sandbox's referral MessageDefinition for the
// service named, as the BaRS API describes (the sender asks before building
// a payload). It asks for a bearer token like $process-message.
func (rc *Receiver) messageDefinition(w http.ResponseWriter, r *http.Request) {
	if !rc.authorised(r) {
		fail(w, http.StatusUnauthorized, fhir.IssueTypeLogin, "a bearer access token from the token endpoint is required")
		return
	}
	context := r.URL.Query().Get("context")
	if context == "" {
		fail(w, http.StatusBadRequest, fhir.IssueTypeRequired, "the context query parameter (the service identifier, system|value) is required")
		return
	}
	system, value, ok := strings.Cut(context, "|")
	if !ok {
		system, value = "https://fhir.nhs.uk/Id/dos-service-id", context
	}
	focus := make([]map[string]any, 0, len(definitionFocus))
	for _, f := range definitionFocus {
		focus = append(focus, map[string]any{
			"code": f.code, "profile": "https://fhir.hl7.org.uk/StructureDefinition/" + f.profile, "min": f.min, "max": f.max,
		})
	}
	def := map[string]any{
		"resourceType": "MessageDefinition",
		"id":           "sandbox-servicerequest-request",
		"url":          DefinitionURL,
		"name":         "SandboxServiceRequestRequest",
		"title":        "Sandbox receiver: student mental-health referral (servicerequest-request)",
		"status":       "active",
		"date":         "2026-12-07",
		"eventCoding":  map[string]string{"system": EventSystem, "code": "servicerequest-request"},
		"useContext": []map[string]any{{
			"code":                 map[string]string{"system": system, "code": value},
			"valueCodeableConcept": map[string]any{"coding": []map[string]string{{"system": "http://terminology.hl7.org/CodeSystem/variant-state", "code": "positive"}}},
		}},
		"focus": focus,
	}
	writeJSON(w, http.StatusOK, "application/fhir+json", map[string]any{
		"resourceType": "Bundle", "type": "searchset", "total": 1,
		"entry": []map[string]any{{"fullUrl": "urn:uuid:5b0c6bd4-5f0b-4d41-9a7e-0d7f6b1f0c11", "resource": def}},
	})
}
