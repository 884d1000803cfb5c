// Package gateway is the domain of the student mental-health referral gateway:
// the case record that a university posts, the sharing decision that the
// policies make about it, the registry of NHS services that may receive it, and
// the one error type that every layer speaks.
//
// It holds no transport, storage or policy engine. Adapters (HTTP, OPA,
// SQLite, PostgreSQL) live in sub-packages and depend on this package, never
// the other way round, so the rules of the domain can be read and tested
// without any of them.
package gateway

// FHIRBase is the canonical base of everything the gateway defines in FHIR:
// its identifier systems and the extension that carries a sharing decision.
// Receivers see it in every message, so it never changes.
const FHIRBase = "https://student-mh-referrals.github.io/gateway/fhir"
