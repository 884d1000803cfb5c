package gateway

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
)

// BaRSVersion is the version of BaRS the gateway's messages follow: the
// Bundle's meta.versionId and the version named in Accept.
const BaRSVersion = "1.4.0"

// Media types of a BaRS post. BaRS asks senders to name the version of
// BaRS Core they speak in Accept.
const (
	ContentType = "application/fhir+json"
	Accept      = "application/fhir+json; version=" + BaRSVersion
)

// DefaultUseContext is the use-context header of a service whose registry
// entry sets none. The BaRS API requires the header on $process-message for
// the usage statistics of the BaRS proxy; its example reads
// "a4t2|validation|servicerequest-response|new" (use case, category, event,
// reason). The default names this use case, a referral, and the event; the
// value NHS England assigns at onboarding goes in services[].useContext.
const DefaultUseContext = "student-mh-referral|referral|servicerequest-request"

// UseContext is the use-context header value for svc.
func UseContext(svc Service) string {
	if v := strings.TrimSpace(svc.UseContext); v != "" {
		return v
	}
	return DefaultUseContext
}

// UKPRNSystem is the identifier system of a UK Provider Reference Number in
// what the gateway emits.
const UKPRNSystem = FHIRBase + "/Id/ukprn"

// DeviceSystem is the identifier system of the gateway as requesting
// software (NHSD-Requesting-Software).
const DeviceSystem = FHIRBase + "/Id/software"

// Headers returns the BaRS headers of one post of m to svc: the request
// and correlation ids fixed when the message was queued (the same on every
// retry, so that the receiver drops duplicates), the target, the sending
// university (with its ODS code when it has one) and the gateway as
// software, and the use-context the BaRS API requires. Authorization is the
// delivery client's: it holds the token. The header values are base64 of
// JSON, as BaRS defines them.
func Headers(m OutboxMessage, svc Service, src Source) http.Header {
	h := http.Header{}
	h.Set("Content-Type", ContentType)
	h.Set("Accept", Accept)
	h.Set("X-Request-Id", m.RequestID)
	corr := m.CorrelationID
	if corr == "" {
		corr = m.RequestID
	}
	h.Set("X-Correlation-Id", corr)
	h.Set("NHSD-Target-Identifier", TargetHeader(svc.Target))
	h.Set("NHSD-End-User-Organisation", OrganisationHeader(m.Sender, m.Institution))
	h.Set("NHSD-Requesting-Software", SoftwareHeader(src))
	h.Set("use-context", UseContext(svc))
	if src.Software != "" {
		ua := src.Software
		if src.Version != "" {
			ua += "/" + src.Version
		}
		h.Set("User-Agent", ua)
	}
	return h
}

// TargetHeader is NHSD-Target-Identifier: base64 of {"system", "value"}.
func TargetHeader(id Identifier) string {
	return encode(map[string]string{"system": id.System, "value": id.Value})
}

// OrganisationHeader is NHSD-End-User-Organisation: base64 of an
// Organization with the identifiers and name of the message's sender, stored
// with the message when it was queued from what the Bundle's
// MessageHeader.sender names, so that the header and the message agree. A
// message without one (queued before senders were stored, its Bundle naming
// none) names the institution by its UKPRN.
func OrganisationHeader(sender Sender, institution string) string {
	org := map[string]any{"resourceType": "Organization"}
	var ids []Identifier
	for _, id := range sender.Identifier {
		if id.System != "" && id.Value != "" {
			ids = append(ids, id)
		}
	}
	switch {
	case len(ids) == 0 && sender.Name == "":
		org["identifier"] = []Identifier{{System: UKPRNSystem, Value: institution}}
	case len(ids) > 0:
		org["identifier"] = ids
	}
	if sender.Name != "" {
		org["name"] = sender.Name
	}
	return encode(org)
}

// SoftwareHeader is NHSD-Requesting-Software: base64 of a FHIR R4 Device
// naming the gateway and its version. (The BaRS example writes deviceName
// and version as single objects; R4 has them as lists, and a receiver that
// reads the header as a Device gets them as lists.)
func SoftwareHeader(src Source) string {
	name := src.Software
	if name == "" {
		name = "student-mh-referral-gateway"
	}
	dev := map[string]any{
		"resourceType": "Device",
		"identifier":   []Identifier{{System: DeviceSystem, Value: name}},
		"deviceName":   []map[string]string{{"name": name, "type": "manufacturer-name"}},
	}
	if src.Version != "" {
		dev["version"] = []map[string]string{{"value": src.Version}}
	}
	return encode(dev)
}

func encode(v any) string {
	b, _ := json.Marshal(v) // maps of strings and slices cannot fail
	return base64.StdEncoding.EncodeToString(b)
}
