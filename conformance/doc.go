// Package conformance is the conformance suite that integrators run against the
// gateway and against NHS receivers, so that "it works with the gateway" is
// something a university or a trust can prove on their own deployment rather
// than take on trust.
//
// Two halves:
//
//   - Run posts scenario files (a case record, the decision time, and what
//     must come back: outcome, route, rules, obligations, data categories and
//     assertions on the FHIR Bundle) to a gateway's
//     POST /v1/referrals/$evaluate, over HTTP or in-process, and checks every
//     answer, validating each Bundle with the built-in FHIR rules.
//   - CheckReceiver tests an NHS receiver's $process-message the way the
//     gateway's delivery worker relies on it: a valid message is accepted, a
//     repeated X-Request-Id is not processed twice, a malformed Bundle and a
//     missing BaRS header are refused with a BaRS OperationOutcome.
//
// Both return a Report, which prints as progress lines and writes JUnit XML
// (for CI) and a FHIR TestReport (for the record). docs/conformance-suite.md
// is the user's guide; the scenarios shipped with the gateway live in
// conformance/testdata/scenarios and are embedded as Scenarios.
package conformance
