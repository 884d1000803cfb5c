package fhirvalidator

import (
	_ "embed"
	"io"
	"sort"
	"strings"
	"sync"
)

// The built-in rule set lets the gateway check its own output when no
// definitions directory is configured. It holds the facts of the resources
// the gateway emits and of the UK Core profiles it claims, in the rule format
// of rules.go; it is not a copy of the definition files (which stay outside
// the repository), only what validation needs of them, plus the extensions
// the project publishes in docs/fhir. TestBuiltinRules regenerates it from
// ../shared/fhir and docs/fhir with -update and fails when it drifts.

//go:embed builtin.rules
var builtinRules []byte

// BuiltinResources are the resource types the built-in rule set covers: the
// ones the gateway emits.
var BuiltinResources = []string{
	"Bundle", "MessageHeader", "ServiceRequest", "Patient", "Consent", "Organization",
	"Practitioner", "PractitionerRole", "CarePlan", "OperationOutcome",
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
	"https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-NHSNumberVerificationStatus",
	"https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-NHSNumberUnavailableReason",
	"https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-SourceOfServiceRequest",
}

// projectCanonical is the base of the definitions the project publishes in
// docs/fhir (the sharing-decision extension); the built-in rules include
// every one of them.
const projectCanonical = "https://student-mh-referrals.github.io/gateway/fhir/"

var builtin = sync.OnceValue(func() *Validator {
	v, err := parseRules(builtinRules, "builtin")
	if err != nil {
		panic("fhirvalidator: the embedded builtin.rules is broken: " + err.Error())
	}
	return v
})

// Builtin returns the validator of the built-in rule set. It is parsed once,
// on first use, and shared: a Validator is safe for concurrent use.
func Builtin() *Validator { return builtin() }

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
	for _, t := range append([]string{"Resource", "DomainResource", "Element", "BackboneElement"}, BuiltinResources...) {
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
