package gateway

import (
	"encoding/base64"
	"encoding/json"
	"reflect"
	"testing"
)

func decodeHeader(t *testing.T, v string) map[string]any {
	t.Helper()
	raw, err := base64.StdEncoding.DecodeString(v)
	if err != nil {
		t.Fatalf("%q is not standard base64: %v", v, err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("%s is not JSON: %v", raw, err)
	}
	return m
}

func TestHeaders(t *testing.T) {
	const institution, targetSys = "10007798", "https://fhir.nhs.uk/Id/dos-service-id"
	m := OutboxMessage{
		RequestID: "6f1e4a52-3c1b-4f3e-9a53-0d0b7c2f1a10", CorrelationID: "9562466f-c982-4bd5-bb0e-255e9f5e6689",
		Institution: institution, Body: []byte(`{"resourceType": "Bundle", "type": "message", "entry": [
			{"fullUrl": "urn:uuid:h", "resource": {"resourceType": "MessageHeader", "sender": {"reference": "urn:uuid:u"}}},
			{"fullUrl": "urn:uuid:u", "resource": {"resourceType": "Organization", "name": "The University of Manchester",
				"identifier": [{"system": "` + UKPRNSystem + `", "value": "` + institution + `"}]}}]}`),
		Sender: Sender{Identifier: []Identifier{{System: UKPRNSystem, Value: institution}}, Name: "The University of Manchester"},
	}
	svc := Service{Target: Identifier{System: targetSys, Value: "2000010003"}}
	src := Source{Software: "student-mh-referral-gateway", Version: "1.2.3"}
	h := Headers(m, svc, src)
	for name, want := range map[string]string{
		"Content-Type":     "application/fhir+json",
		"Accept":           "application/fhir+json; version=1.4.0",
		"X-Request-Id":     m.RequestID,
		"X-Correlation-Id": m.CorrelationID,
		"User-Agent":       "student-mh-referral-gateway/1.2.3",
		"use-context":      DefaultUseContext,
	} {
		if got := h.Get(name); got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
	if got, want := decodeHeader(t, h.Get("NHSD-Target-Identifier")), map[string]any{"system": targetSys, "value": "2000010003"}; !reflect.DeepEqual(got, want) {
		t.Errorf("NHSD-Target-Identifier %v, want %v", got, want)
	}
	org := decodeHeader(t, h.Get("NHSD-End-User-Organisation"))
	wantOrg := map[string]any{
		"resourceType": "Organization", "name": "The University of Manchester",
		"identifier": []any{map[string]any{"system": UKPRNSystem, "value": institution}},
	}
	if !reflect.DeepEqual(org, wantOrg) {
		t.Errorf("NHSD-End-User-Organisation %v, want %v", org, wantOrg)
	}
	dev := decodeHeader(t, h.Get("NHSD-Requesting-Software"))
	wantDev := map[string]any{
		"resourceType": "Device",
		"identifier":   []any{map[string]any{"system": DeviceSystem, "value": "student-mh-referral-gateway"}},
		"deviceName":   []any{map[string]any{"name": "student-mh-referral-gateway", "type": "manufacturer-name"}},
		"version":      []any{map[string]any{"value": "1.2.3"}},
	}
	if !reflect.DeepEqual(dev, wantDev) {
		t.Errorf("NHSD-Requesting-Software %v, want %v", dev, wantDev)
	}
}

// TestUseContext: the registry's useContext wins; without one the
// documented default is sent, never an empty header (the BaRS API requires
// it).
func TestUseContext(t *testing.T) {
	if got := Headers(OutboxMessage{}, Service{UseContext: " a4t2|referral "}, Source{}).Get("use-context"); got != "a4t2|referral" {
		t.Errorf("use-context %q, want the registry's", got)
	}
	if got := UseContext(Service{UseContext: "  "}); got != DefaultUseContext {
		t.Errorf("blank useContext gives %q, want the default", got)
	}
}

// TestSenderODSInHeader: the stored Sender of an institution with an ODS
// code puts it in NHSD-End-User-Organisation beside the UKPRN.
func TestSenderODSInHeader(t *testing.T) {
	s := SenderOf(Institution{UKPRN: "10007798", Name: "Uni", ODSCode: "EXA01"})
	got := decodeHeader(t, OrganisationHeader(s, "10007798"))
	want := []any{
		map[string]any{"system": UKPRNSystem, "value": "10007798"},
		map[string]any{"system": "https://fhir.nhs.uk/Id/ods-organization-code", "value": "EXA01"},
	}
	if !reflect.DeepEqual(got["identifier"], want) {
		t.Errorf("identifiers %v, want UKPRN and ODS %v", got["identifier"], want)
	}
}

func TestOrganisationHeader(t *testing.T) {
	ukprn := func(v string) map[string]any { return map[string]any{"system": UKPRNSystem, "value": v} }
	tests := []struct {
		name   string
		sender Sender
		want   map[string]any
	}{
		{"none: the institution's UKPRN", Sender{}, map[string]any{"resourceType": "Organization", "identifier": []any{ukprn("10000001")}}},
		{"identifiers and name", Sender{Identifier: []Identifier{{System: UKPRNSystem, Value: "10007798"}}, Name: "Uni"},
			map[string]any{"resourceType": "Organization", "identifier": []any{ukprn("10007798")}, "name": "Uni"}},
		{"a name alone", Sender{Name: "Uni"}, map[string]any{"resourceType": "Organization", "name": "Uni"}},
		{"only whole identifiers", Sender{Identifier: []Identifier{{System: "s", Value: "v"}, {Value: "no system"}}},
			map[string]any{"resourceType": "Organization", "identifier": []any{map[string]any{"system": "s", "value": "v"}}}},
		{"no whole identifier", Sender{Identifier: []Identifier{{Value: "no system"}}},
			map[string]any{"resourceType": "Organization", "identifier": []any{ukprn("10000001")}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := decodeHeader(t, OrganisationHeader(tt.sender, "10000001")); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestSoftwareHeaderWithoutVersion(t *testing.T) {
	dev := decodeHeader(t, SoftwareHeader(Source{}))
	if _, ok := dev["version"]; ok || dev["deviceName"] == nil {
		t.Errorf("device %v: want a name and no version", dev)
	}
}
