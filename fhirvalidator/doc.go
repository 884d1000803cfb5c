// Package fhirvalidator is the gateway's own FHIR validator: the check, at run
// time, that every message the gateway emits conforms to R4 and to the UK
// Core profiles it claims, because the samply models it builds them with
// validate nothing. It is also `gateway validate`, for integrators checking
// their own messages.
//
// A Validator is built from StructureDefinitions (Load: R4 core bundles, UK
// Core snapshots, FHIR package folders) or, with no definitions at hand, from
// the compact built-in rule set (Builtin), which holds the facts of the
// profiles for the resources the gateway emits.
//
// Its tests also run the independent cross-check: the golden Bundles of
// package mappings, the evaluation documents and the definitions the project
// publishes (docs/fhir) go through fhircheck, a validation harness of
// third-party FHIR tools (Medplum, fhirpath.js, FHIR.js) that the gateway's
// developers did not write, so that a misreading of the specification shared
// by the mapping and its own tests still gets caught; and the two validators'
// verdicts are compared file by file (docs/conformance.md).
package fhirvalidator
