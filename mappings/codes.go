package mappings

import "github.com/samply/golang-fhir-models/fhir-models/fhir"

// Code systems, identifier systems and profiles of the message. Each was
// checked against the UK Core StructureDefinitions and the BaRS 1.4.0
// examples; where the two disagree the UK Core definition wins (see
// docs/fhir-mapping.md, "Deviations").
const (
	profileBase = "https://fhir.hl7.org.uk/StructureDefinition/"

	sysSNOMED        = "http://snomed.info/sct"
	sysLOINC         = "http://loinc.org"
	sysNHSNumber     = "https://fhir.nhs.uk/Id/nhs-number"
	sysODS           = "https://fhir.nhs.uk/Id/ods-organization-code"
	sysBaRSEvents    = "https://fhir.nhs.uk/CodeSystem/message-events-bars"
	sysBaRSReason    = "https://fhir.nhs.uk/CodeSystem/message-reason-bars"
	sysBaRSCategory  = "https://fhir.nhs.uk/CodeSystem/message-category-servicerequest"
	sysBaRSConsent   = "https://fhir.nhs.uk/CodeSystem/consent-categories-bars"
	sysConsentScope  = "http://terminology.hl7.org/CodeSystem/consentscope"
	sysActCode       = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
	sysActReason     = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
	sysParticipation = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
	sysContactRole   = "http://terminology.hl7.org/CodeSystem/v2-0131"
	sysFlagCategory  = "http://terminology.hl7.org/CodeSystem/flag-category"
	sysBundleID      = "urn:ietf:rfc:3986"

	extVerification   = "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-NHSNumberVerificationStatus"
	sysVerification   = "https://fhir.hl7.org.uk/CodeSystem/UKCore-NHSNumberVerificationStatusEngland"
	extNoNHSNumber    = "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-NHSNumberUnavailableReason"
	sysNoNHSNumber    = "https://fhir.hl7.org.uk/CodeSystem/UKCore-NHSNumberUnavailableReason"
	eventRequest      = "servicerequest-request"
	categoryReferral  = "referral"
	sctMHTeamReferral = "390866009"
)

// priorities maps the contract's priorities to FHIR. "emergency" is absent on
// purpose: the gateway is not an emergency channel (E-01).
var priorities = map[string]fhir.RequestPriority{
	"routine": fhir.RequestPriorityRoutine,
	"urgent":  fhir.RequestPriorityUrgent,
}

var genders = map[string]fhir.AdministrativeGender{
	"male":    fhir.AdministrativeGenderMale,
	"female":  fhir.AdministrativeGenderFemale,
	"other":   fhir.AdministrativeGenderOther,
	"unknown": fhir.AdministrativeGenderUnknown,
}

// consentStates maps the student's decision to Consent.status; "not-sought"
// has no Consent at all, because there is nothing the student decided.
var consentStates = map[string]fhir.ConsentState{
	"given":     fhir.ConsentStateActive,
	"refused":   fhir.ConsentStateRejected,
	"withdrawn": fhir.ConsentStateInactive,
}

// safetyPlanStates maps the safety-plan status to CarePlan.status: a plan in
// place is active, one not yet made is a draft, and one the student declined
// is revoked (ended before it was carried out); the description says which
// in words.
var safetyPlanStates = map[string]struct {
	status fhir.RequestStatus
	words  string
}{
	"in-place": {fhir.RequestStatusActive, "A safety plan is in place."},
	"not-yet":  {fhir.RequestStatusDraft, "No safety plan has been made yet."},
	"declined": {fhir.RequestStatusRevoked, "The student declined a safety plan."},
}

var referrerRoles = map[string]string{
	"mental-health-adviser":  "Mental health adviser",
	"counsellor":             "Counsellor",
	"wellbeing-practitioner": "Wellbeing practitioner",
	"clinician":              "Clinician",
	"disability-adviser":     "Disability adviser",
	"other":                  "Other university practitioner",
}

// categoryDisplays are the displays of CodeSystemDataCategory; the published
// CodeSystem (docs/fhir/CodeSystem-data-category.json) must agree, and a test
// checks that it does.
var categoryDisplays = map[string]string{
	"demographics":     "Demographics (name, date of birth, gender, NHS number)",
	"contact":          "Contact details (telephone, email, term address)",
	"gp":               "Registered GP practice",
	"needs":            "Presenting needs, summary and the student's wishes",
	"risk-formulation": "Narrative safety formulation",
	"safety-plan":      "Safety plan",
	"trusted-contact":  "Trusted contact",
	"context":          "Context (current support, secondary care)",
}

func profile(name string) *fhir.Meta { return &fhir.Meta{Profile: []string{profileBase + name}} }

func coding(system, code, display string) fhir.Coding {
	c := fhir.Coding{System: ptr(system), Code: ptr(code)}
	if display != "" {
		c.Display = ptr(display)
	}
	return c
}

func concept(system, code, display string) fhir.CodeableConcept {
	return fhir.CodeableConcept{Coding: []fhir.Coding{coding(system, code, display)}}
}

func ptr[T any](v T) *T { return &v }

// str returns a pointer to the trimmed string, or nil when nothing is left:
// R4 JSON forbids empty strings, so absent and blank are both "not sent".
func str(s string) *string {
	s = trim(s)
	if s == "" {
		return nil
	}
	return &s
}

func ref(id string) *fhir.Reference { return &fhir.Reference{Reference: ptr("urn:uuid:" + id)} }

// m02Words are the clinician's words for the contract's codes in the
// override note and the safe-contact warning (M-02), keyed "kind:code".
var m02Words = map[string]string{
	"outcome:refused":         "the student refused",
	"outcome:unreachable":     "the student could not be reached",
	"outcome:not-safe-to-ask": "asking the student was not safe",
	"outcome:lacks-capacity":  "the student lacks capacity to decide",
	"capacity:presumed":       "presumed",
	"capacity:has-capacity":   "has capacity to decide",
	"capacity:lacks-capacity": "lacks capacity to decide about this share",
	"informed:informed":       "yes, the student has been told",
	"informed:will-inform":    "not yet, the student will be told",
	"informed:not-informed":   "no, the student must not be told yet",
	"avoid:phone":             "phone calls",
	"avoid:sms":               "text messages",
	"avoid:post":              "post",
	"avoid:email":             "email",
	"avoid:trusted-contact":   "the trusted contact",
	"avoid:home-visit":        "home visits",
}

// word is the clinician's words for a code, or the code itself.
func word(kind, code string) string {
	if w, ok := m02Words[kind+":"+trim(code)]; ok {
		return w
	}
	return trim(code)
}
