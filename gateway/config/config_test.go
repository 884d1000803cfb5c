package config

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The binary embeds a copy of the root gateway.example.yaml; they must not
// drift apart.
func TestExampleIsEmbeddedVerbatim(t *testing.T) {
	root, err := os.ReadFile(filepath.Join("..", "..", "gateway.example.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(root, Example) {
		t.Fatal("gateway/config/gateway.example.yaml differs from the root gateway.example.yaml; copy the root file over it")
	}
}

func TestExampleRegistry(t *testing.T) {
	c, err := Load("")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"u-cope": "RW4", "liverpool-liaison": "RW4", "gm-student-mhs": "RXV",
		"icope-camden": "TAF", "bristol-awp": "RVN", "sheffield-shsc": "TAH",
	}
	reg, err := c.Registry()
	if err != nil {
		t.Fatal(err)
	}
	for id, ods := range want {
		t.Run(id, func(t *testing.T) {
			s, ok := reg.Lookup(id)
			if !ok {
				t.Fatalf("service %s missing", id)
			}
			if s.Organization.ODSCode != ods {
				t.Errorf("ODS code %s, want %s", s.Organization.ODSCode, ods)
			}
			if s.Target.System != "https://fhir.nhs.uk/Id/dos-service-id" || s.Target.Value == "" {
				t.Errorf("target %+v", s.Target)
			}
		})
	}
	ucope, _ := reg.Lookup("u-cope")
	el := ucope.Eligibility
	if strings.Join(el.Institutions, ",") != "10006842,10003957" || strings.Join(el.Routes, ",") != "consent" ||
		!el.ExcludeUnderSecondaryCare || strings.Join(el.ExcludedNeeds, ",") != "psychosis-concern" ||
		strings.Join(el.NeedsAnyOf, ",") != "self-harm" {
		t.Errorf("u-cope eligibility %+v", el)
	}
}

func TestParseRejects(t *testing.T) {
	base := string(Example)
	tests := []struct {
		name, from, to, want string
	}{
		{"unknown key", "listen:", "lisen:", "unknown field"},
		{"bad log level", "level: info", "level: loud", "log.level"},
		{"unknown category", "dataCategories: [demographics, contact, gp, needs, risk-formulation, safety-plan, context]", "dataCategories: [demographics, shoe-size]", "unknown category"},
		{"bad endpoint", "endpoint: http://127.0.0.1:8081/fhir\n    target: { system: https://fhir.nhs.uk/Id/dos-service-id, value: \"2000010001\" }", "endpoint: ftp://x\n    target: { system: https://fhir.nhs.uk/Id/dos-service-id, value: \"2000010001\" }", "endpoint"},
		{"bad ODS code", "odsCode: RW4 }", "odsCode: rw4 }", "odsCode"},
		{"unknown need", "needsAnyOf: [self-harm]", "needsAnyOf: [sadness]", "unknown need"},
		{"bad UKPRN", `"10006842", "10003957"]`, `"1234", "10003957"]`, "UKPRN"},
		{"duplicate service", "id: liverpool-liaison", "id: u-cope", "duplicate"},
		{"unknown route", "routes: [consent]\n\n  - id: liverpool-liaison", "routes: [asked-nicely]\n\n  - id: liverpool-liaison", "unknown route"},
		{"no intake slots", "maxInFlight: 64", "maxInFlight: -1", "limits.maxInFlight"},
		{"unknown return step", "returnSteps: [accepted, rejected, booked,", "returnSteps: [accepted, rejected, gossiped,", "returnSteps"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !strings.Contains(base, tt.from) {
				t.Fatalf("fixture text %q not in the example", tt.from)
			}
			_, err := Parse([]byte(strings.Replace(base, tt.from, tt.to, 1)))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want one mentioning %q", err, tt.want)
			}
		})
	}
}

func TestClientsRejected(t *testing.T) {
	base := string(Example)
	tests := []struct {
		name, from, to, want string
	}{
		{"unknown role", "roles: [ig-auditor]", "roles: [viewer]", "unknown role"},
		{"submitter without institution", "  - id: uwe-cms\n    institution: \"10007164\" # University of the West of England\n", "  - id: uwe-cms\n", "bound to one institution"},
		{"receiver without services", "    services: [\"*\"]\n", "", "bound to services"},
		{"receiver with unknown service", `services: ["*"]`, `services: [nowhere]`, "not in the registry"},
		{"plain token instead of hash", "tokenSHA256: cce7a2cf1ae045989cfc914fb95a41526f167a838b3c7d33745143614abace7c", "tokenSHA256: demo-admin", "64 lower-case hex"},
		{"shared credential", "tokenSHA256: cce7a2cf1ae045989cfc914fb95a41526f167a838b3c7d33745143614abace7c", "tokenSHA256: 05a05c108ff340d3ef2e13f64ecdf08c497cf650660d40583c273f2aa1c134c7", "same credential"},
		{"key without cert", `keyFile: ""`, `keyFile: "k.pem"`, "go together"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !strings.Contains(base, tt.from) {
				t.Fatalf("fixture text %q not in the example", tt.from)
			}
			_, err := Parse([]byte(strings.Replace(base, tt.from, tt.to, 1)))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want one mentioning %q", err, tt.want)
			}
		})
	}
}

// TestEngineIgnored: a configuration that still names a policy engine loads,
// whatever the engine, and the setting comes back as a warning.
func TestEngineIgnored(t *testing.T) {
	if w := mustParse(t, string(Example)).Warnings(); len(w) != 0 {
		t.Errorf("the example gives warnings %q", w)
	}
	for _, engine := range []string{"plan", "topdown", "fast"} {
		c := mustParse(t, strings.Replace(string(Example), "  dir: \"\"\n", "  dir: \"\"\n  engine: "+engine+"\n", 1))
		if w := c.Warnings(); len(w) != 1 || !strings.Contains(w[0], "policies.engine is ignored") {
			t.Errorf("engine %s: warnings %q; want one about policies.engine", engine, w)
		}
	}
}

func mustParse(t *testing.T, yaml string) *Config {
	t.Helper()
	c, err := Parse([]byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	return c
}
