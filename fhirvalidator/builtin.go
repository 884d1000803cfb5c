package fhirvalidator

import (
	_ "embed"
	"sync"
)

// The built-in rule set lets the gateway check its own output when no
// definitions directory is configured. It holds the facts of the resources
// the gateway emits and of the UK Core profiles it claims, in the rule format
// of rules.go, plus the extensions the project publishes in docs/fhir.
// TestBuiltinRules regenerates it from ../shared/fhir and docs/fhir with
// -update and fails when it drifts.

//go:embed builtin.rules
var builtinRules []byte

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
