package gateway

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"

	"github.com/student-mh-referrals/gateway/gateway/bundlescan"
)

// Media types of a BaRS post. BaRS asks senders to name the version of
// BaRS Core they speak in Accept.
const (
	ContentType = "application/fhir+json"
	Accept      = "application/fhir+json; version=1.4.0"
)

// UKPRNSystem is the identifier system of a UK Provider Reference Number in
// what the gateway emits.
const UKPRNSystem = FHIRBase + "/Id/ukprn"

// DeviceSystem is the identifier system of the gateway as requesting
// software (NHSD-Requesting-Software).
const DeviceSystem = FHIRBase + "/Id/software"

// Headers returns the BaRS headers of one post of m to svc: the request
// and correlation ids fixed when the message was queued (the same on every
// retry, so that the receiver drops duplicates), the target, the sending
// university and the gateway as software. The header values are base64 of
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
	h.Set("NHSD-End-User-Organisation", OrganisationHeader(m.Body, m.Institution))
	h.Set("NHSD-Requesting-Software", SoftwareHeader(src))
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
// Organization with the identifiers and name of the message's sender (the
// MessageHeader's sender, resolved in the bundle), so that the header and
// the message cannot disagree. A bundle without one falls back to the
// institution's UKPRN.
func OrganisationHeader(bundle []byte, institution string) string {
	org := map[string]any{"resourceType": "Organization"}
	if ids, name, ok := sender(bundle); ok {
		if len(ids) > 0 {
			org["identifier"] = ids
		}
		if name != "" {
			org["name"] = name
		}
	} else {
		org["identifier"] = []Identifier{{System: UKPRNSystem, Value: institution}}
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

// sender finds the Organization that the first entry's MessageHeader.sender
// references and returns its identifiers and name.
//
// It runs on every delivery attempt, and decoding the whole Bundle for it
// (senderDecode) was a tenth of the drain's CPU time: it now walks the
// Bundle once (bundlescan, validating it as encoding/json would) to find the
// entries, and decodes only the MessageHeader and the entry it references.
// Where the Bundle holds anything encoding/json might read differently from
// that walk (an escaped or differently cased element name, a repeated one,
// an element of another type), it decodes as before, so the header is the
// same as senderDecode's for every body (FuzzSender holds the two equal).
func sender(bundle []byte) ([]Identifier, string, bool) {
	entries, ok := bundleEntries(bundle)
	if !ok {
		return senderDecode(bundle)
	}
	if entries == nil {
		return nil, "", false
	}
	var mh messageHeader
	if json.Unmarshal(entries[0].resource, &mh) != nil || mh.ResourceType != "MessageHeader" || mh.Sender == nil || mh.Sender.Reference == "" {
		return nil, "", false
	}
	ref := mh.Sender.Reference
	byID := strings.HasPrefix(ref, "Organization/")
	for _, e := range entries[1:] {
		// Only a matching fullUrl, or a relative reference by id, can match.
		if e.fullURL != ref && !byID {
			continue
		}
		if ids, name, ok, found := senderOrg(e.fullURL, e.resource, ref); found {
			return ids, name, ok
		}
	}
	return nil, "", false
}

// entry is one Bundle entry as bundleEntries finds it.
type entry struct {
	fullURL  string
	resource []byte
}

// bundleEntries validates bundle and finds its entries with one walk
// (bundlescan). ok is false when the bundle is not plainly a JSON object
// whose entry element is a list of objects, each with one string fullUrl
// and one object resource (senderDecode then decides). A valid object
// without entries gives nil and true; invalid JSON gives nil and false.
func bundleEntries(bundle []byte) (out []entry, ok bool) {
	b, ok := bundlescan.Scan(bundle)
	if !ok {
		return nil, false
	}
	if len(b.Entries) == 0 {
		return nil, true
	}
	out = make([]entry, 0, len(b.Entries))
	for _, e := range b.Entries {
		if !e.HasFullURL {
			return nil, false
		}
		out = append(out, entry{fullURL: e.FullURL, resource: e.Resource})
	}
	return out, true
}

// messageHeader is what sender reads of a MessageHeader.
type messageHeader struct {
	ResourceType string `json:"resourceType"`
	Sender       *struct {
		Reference string `json:"reference"`
	} `json:"sender"`
}

// senderOrg reads one entry as the sender's Organization: found when it is
// an Organization that ref names, ok when it also has identifiers or a name.
func senderOrg(fullURL string, resource []byte, ref string) (ids []Identifier, name string, ok, found bool) {
	var org struct {
		ResourceType string       `json:"resourceType"`
		ID           string       `json:"id"`
		Identifier   []Identifier `json:"identifier"`
		Name         string       `json:"name"`
	}
	if json.Unmarshal(resource, &org) != nil || org.ResourceType != "Organization" {
		return nil, "", false, false
	}
	if fullURL != ref && (org.ID == "" || ref != "Organization/"+org.ID) {
		return nil, "", false, false
	}
	for _, id := range org.Identifier {
		if id.System != "" && id.Value != "" {
			ids = append(ids, id)
		}
	}
	return ids, org.Name, len(ids) > 0 || org.Name != "", true
}

// senderDecode is sender by decoding the whole Bundle, as it was done
// before: the reference for bodies that bundleEntries leaves to it.
func senderDecode(bundle []byte) ([]Identifier, string, bool) {
	var b struct {
		Entry []struct {
			FullURL  string          `json:"fullUrl"`
			Resource json.RawMessage `json:"resource"`
		} `json:"entry"`
	}
	if json.Unmarshal(bundle, &b) != nil || len(b.Entry) == 0 {
		return nil, "", false
	}
	var mh messageHeader
	if json.Unmarshal(b.Entry[0].Resource, &mh) != nil || mh.ResourceType != "MessageHeader" || mh.Sender == nil || mh.Sender.Reference == "" {
		return nil, "", false
	}
	ref := mh.Sender.Reference
	for _, e := range b.Entry[1:] {
		var org struct {
			ResourceType string       `json:"resourceType"`
			ID           string       `json:"id"`
			Identifier   []Identifier `json:"identifier"`
			Name         string       `json:"name"`
		}
		if json.Unmarshal(e.Resource, &org) != nil || org.ResourceType != "Organization" {
			continue
		}
		if e.FullURL != ref && (org.ID == "" || ref != "Organization/"+org.ID) {
			continue
		}
		var ids []Identifier
		for _, id := range org.Identifier {
			if id.System != "" && id.Value != "" {
				ids = append(ids, id)
			}
		}
		return ids, org.Name, len(ids) > 0 || org.Name != ""
	}
	return nil, "", false
}
