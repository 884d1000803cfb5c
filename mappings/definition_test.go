package mappings

import (
	"reflect"
	"strings"
	"testing"

	"github.com/student-mh-referrals/gateway/gateway"
)

// TestParseMessageDefinition: of a receiver's answer the active
// servicerequest-request definition is taken, in a searchset or alone.
func TestParseMessageDefinition(t *testing.T) {
	def := func(url, status, event, focus string) string {
		return `{"resourceType":"MessageDefinition","url":"` + url + `","status":"` + status +
			`","eventCoding":{"system":"https://fhir.nhs.uk/CodeSystem/message-events-bars","code":"` + event + `"},"focus":[` + focus + `]}`
	}
	bundle := func(defs ...string) string {
		entries := make([]string, len(defs))
		for i, d := range defs {
			entries[i] = `{"resource":` + d + `}`
		}
		return `{"resourceType":"Bundle","type":"searchset","entry":[` + strings.Join(entries, ",") + `]}`
	}
	const focus = `{"code":"Patient","min":1,"max":"1"},{"code":"Consent"}`
	want := &gateway.MessageDefinition{URL: "https://r.example/MD/a", Focus: []gateway.DefinitionFocus{{Code: "Patient", Min: 1, Max: "1"}, {Code: "Consent", Min: 0, Max: "*"}}}
	tests := []struct {
		name, body string
		want       *gateway.MessageDefinition
		err        string
	}{
		{"alone", def("https://r.example/MD/a", "active", "servicerequest-request", focus), want, ""},
		{"in a searchset, after a retired one and a booking one", bundle(
			def("https://r.example/MD/old", "retired", "servicerequest-request", ""),
			def("https://r.example/MD/b", "active", "booking-request", ""),
			def("https://r.example/MD/a", "active", "servicerequest-request", focus)), want, ""},
		{"none for referrals", bundle(def("https://r.example/MD/b", "active", "booking-request", "")), nil, "no active MessageDefinition"},
		{"a focus without a code", def("https://r.example/MD/a", "active", "servicerequest-request", `{"min":1}`), nil, "without a code"},
		{"not JSON", "<xml/>", nil, "not JSON"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseMessageDefinition([]byte(tt.body))
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}
