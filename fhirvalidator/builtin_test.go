package fhirvalidator

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// TestBuiltinRules checks that the embedded rule set is what the full
// definitions say about the covered resources and profiles; -update
// rewrites it.
func TestBuiltinRules(t *testing.T) {
	shared := sharedDir(t)
	full, err := Load(filepath.Join(shared, "fhir", "r4"), filepath.Join(shared, "fhir", "ukcore"),
		filepath.Join(moduleDir(t), "docs", "fhir"))
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := writeBuiltin(&buf, full); err != nil {
		t.Fatal(err)
	}
	if *update {
		if err := os.WriteFile("builtin.rules", buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if !bytes.Equal(buf.Bytes(), builtinRules) {
		t.Fatalf("builtin.rules is out of date with %s/fhir or docs/fhir; run go test ./fhirvalidator -run TestBuiltinRules -update", shared)
	}
}

// builtinResources are the resource types the built-in rule set covers: the
// ones the gateway emits.
var builtinResources = []string{
	"Bundle", "MessageHeader", "ServiceRequest", "Patient", "Consent", "Organization",
	"Practitioner", "PractitionerRole", "CarePlan", "Flag", "OperationOutcome",
}

// builtinProfiles are the UK Core profiles (and the extensions they use) in
// the built-in rule set.
var builtinProfiles = []string{
	"https://fhir.hl7.org.uk/StructureDefinition/UKCore-Bundle",
	"https://fhir.hl7.org.uk/StructureDefinition/UKCore-MessageHeader",
	"https://fhir.hl7.org.uk/StructureDefinition/UKCore-ServiceRequest",
	"https://fhir.hl7.org.uk/StructureDefinition/UKCore-Patient",
	"https://fhir.hl7.org.uk/StructureDefinition/UKCore-Consent",
	"https://fhir.hl7.org.uk/StructureDefinition/UKCore-Organization",
	"https://fhir.hl7.org.uk/StructureDefinition/UKCore-Practitioner",
	"https://fhir.hl7.org.uk/StructureDefinition/UKCore-PractitionerRole",
	"https://fhir.hl7.org.uk/StructureDefinition/UKCore-CarePlan",
	"https://fhir.hl7.org.uk/StructureDefinition/UKCore-Flag",
	"https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-NHSNumberVerificationStatus",
	"https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-NHSNumberUnavailableReason",
	"https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-SourceOfServiceRequest",
}

// projectCanonical is the base of the definitions the project publishes in
// docs/fhir (the sharing-decision extension); the built-in rules include
// every one of them.
const projectCanonical = "https://student-mh-referrals.github.io/gateway/fhir/"

// writeBuiltin writes the built-in subset of a validator loaded from the full
// definitions: the covered resources and profiles, and every type they use.
func writeBuiltin(w io.Writer, full *Validator) error {
	want := map[*structDef]bool{}
	var queue []*structDef
	need := func(sd *structDef) {
		if sd != nil && !want[sd] {
			want[sd] = true
			queue = append(queue, sd)
		}
	}
	for _, t := range append([]string{"Resource", "DomainResource", "Element", "BackboneElement"}, builtinResources...) {
		need(full.types[t])
	}
	for _, u := range builtinProfiles {
		need(full.byURL[u])
	}
	for u, sd := range full.byURL {
		if strings.HasPrefix(u, projectCanonical) {
			need(sd)
		}
	}
	for t, sd := range full.types {
		if sd.kind == kindPrimitive {
			need(full.types[t])
		}
	}
	for len(queue) > 0 {
		sd := queue[0]
		queue = queue[1:]
		for _, e := range sd.elems {
			for _, t := range e.types {
				if d := full.types[t.code]; d != nil && d.kind != kindResource {
					need(d)
				}
				for _, p := range t.profiles {
					if d := full.byURL[p]; d != nil && d.kind != kindResource {
						need(d)
					}
				}
			}
		}
	}
	var defs []*structDef
	for _, sd := range full.defs {
		if want[sd] {
			defs = append(defs, sd)
		}
	}
	// base definitions first, in a stable order, then the profiles
	sort.SliceStable(defs, func(i, j int) bool {
		if defs[i].profile != defs[j].profile {
			return !defs[i].profile
		}
		return strings.Compare(defs[i].url, defs[j].url) < 0
	})
	return writeRules(w, full, defs)
}
