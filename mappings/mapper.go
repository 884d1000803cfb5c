// Package mappings turns an allowed case record into the FHIR R4 message that
// an NHS service receives through the Booking and Referral Standard (BaRS):
// a Bundle of type message whose MessageHeader focuses a ServiceRequest, with
// the Patient, Consent, safety plan, safe-contact Flag, organisations and
// referrer it points at.
//
// The mapping is where the sharing decision becomes bytes, so it carries out
// the decision and nothing else: only the data categories the decision lets
// go are mapped, its obligations (keep-categories, drop-trusted-contact,
// strip-fields) are applied first, the categories it says consent withheld
// are named, risk scores and levels are never read, and
// nothing is sent that the case record does not hold. It makes no sharing
// decision of its own (those live in the Rego policies).
//
// Output is deterministic (same input, same bytes) so that what is validated,
// stored, signed and sent is one thing, and ids follow docs/fhir-mapping.md
// ("Identity across versions") so that receivers can tell a new message from a
// re-send and a new case from a new version of one.
//
// It also renders the gateway's errors as FHIR OperationOutcomes
// (OperationOutcome), beside the rest of the FHIR the gateway writes, so that
// the domain holds no FHIR.
package mappings

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/student-mh-referrals/gateway/gateway"
)

// Canonical URLs the gateway defines under gateway.FHIRBase. They are part of
// the wire format: receivers key on them, so they never change.
var (
	// ExtensionSharingDecision is the complex extension on the
	// ServiceRequest that records the sharing decision behind the message
	// (docs/fhir/StructureDefinition-sharing-decision.json).
	ExtensionSharingDecision = gateway.FHIRBase + "/StructureDefinition/sharing-decision"
	// CodeSystemDataCategory holds the gateway's data categories, used in
	// Consent.provision.code for what the student agreed to share
	// (docs/fhir/CodeSystem-data-category.json).
	CodeSystemDataCategory = gateway.FHIRBase + "/CodeSystem/data-category"
	// SystemUKPRN identifies a university by its UK Provider Reference
	// Number; no NHS or HL7 UK identifier system exists for it.
	SystemUKPRN = gateway.FHIRBase + "/Id/ukprn"
	// SystemReferralID identifies a referral across all its versions: the
	// value is the ServiceRequest id (ServiceRequestID).
	SystemReferralID = gateway.FHIRBase + "/Id/referral-id"
)

// CaseIDSystem is the identifier system of an institution's case ids: case
// ids are unique only within one institution, so the system names it.
func CaseIDSystem(ukprn string) string { return gateway.FHIRBase + "/Id/case-id/" + ukprn }

// ServiceRequestID is the id of a case's ServiceRequest, stable across every
// version of the case so that an update or a cancellation names the same
// referral. It is also the gateway's referral id.
func ServiceRequestID(ukprn, caseID string) string {
	return gateway.DeriveID("ServiceRequest", ukprn, caseID)
}

// PatientID is the id of a case's Patient, stable across versions of the case.
func PatientID(ukprn, caseID string) string { return gateway.DeriveID("Patient", ukprn, caseID) }

// Mapper is the BaRS mapping. It holds no state: the needs table is embedded
// data loaded once, and everything else comes with each MessageInput.
type Mapper struct{}

// New returns the mapping the gateway uses.
func New() *Mapper { return &Mapper{} }

var _ gateway.Mapper = (*Mapper)(nil)

// Message builds the BaRS message Bundle for an allowed decision and returns
// it as compact JSON. It refuses (EINTERNAL) a denied decision or an input the
// gateway should never have passed, rather than send something half right.
func (m *Mapper) Message(ctx context.Context, in gateway.MessageInput) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := checkInput(in); err != nil {
		return nil, err
	}
	rec, err := stripFields(in.Record, in.Decision.Obligations)
	if err != nil {
		return nil, err
	}
	if rec != in.Record {
		// The Bundle is named by the hash of the record it carries, which
		// is the stripped copy, not the record the caller hashed.
		in.ContentHash = ""
	}
	cats := sentCategories(in.Decision)
	b := newBuilder(in, rec, cats)
	return b.message()
}

// checkInput refuses what would make an invalid or misleading message. Its
// messages name fields, never values: errors are logged.
func checkInput(in gateway.MessageInput) error {
	fail := func(format string, args ...any) error {
		return gateway.Internal(fmt.Errorf("mappings: "+format, args...))
	}
	switch {
	case in.Record == nil || in.Decision == nil || in.Service == nil:
		return fail("record, decision and service are all required")
	case !in.Decision.Allow:
		return fail("the decision does not allow the share")
	case trim(in.Decision.Route) == "":
		return fail("the decision names no route")
	case trim(in.Decision.ID) == "":
		// The message names its decision (extension and, on the override
		// route, a note); without an id it could not be traced.
		return fail("the decision has no id")
	case in.At.IsZero():
		return fail("the message time is not set")
	case trim(in.Source.Endpoint) == "":
		return fail("the gateway's source endpoint is not configured")
	case trim(in.Service.Target.System) == "" || trim(in.Service.Target.Value) == "":
		return fail("service %q has no BaRS target identifier", in.Service.ID)
	case trim(in.Service.Organization.ODSCode) == "":
		return fail("service %q has no ODS code", in.Service.ID)
	case trim(in.Record.Institution.UKPRN) == "" || trim(in.Record.CaseID) == "":
		return fail("the record has no institution UKPRN or case id")
	}
	if _, ok := priorities[in.Record.Referral.Priority]; !ok {
		// Emergencies are refused by E-01 before they get here; anything
		// else is outside the contract.
		return fail("referral.priority is not one the gateway sends")
	}
	return nil
}

// sentCategories is what the decision lets go: its data categories, narrowed
// by every keep-categories obligation and without the trusted contact when
// an obligation drops it. The result is in vocabulary order, so that it can
// be part of a derived id.
func sentCategories(d *gateway.Decision) []string {
	allowed := map[string]bool{}
	for _, c := range d.DataCategories {
		allowed[c] = true
	}
	for _, ob := range d.Obligations {
		switch ob.Type {
		case gateway.ObligationKeepCategories:
			for c := range allowed {
				if !slices.Contains(ob.Categories, c) {
					delete(allowed, c)
				}
			}
		case gateway.ObligationDropTrustedContact:
			delete(allowed, "trusted-contact")
		}
	}
	var out []string
	for _, c := range gateway.DataCategories {
		if allowed[c] {
			out = append(out, c)
		}
	}
	return out
}

// messageIDs derives the Bundle and MessageHeader ids from what the message
// says, never from the time: a changed case (or a different set of
// categories, or an update or cancellation) is a new message that a receiver
// will not drop as a duplicate, and a re-sent identical case is the same
// message. The content hash is of the record as mapped, after strip-fields.
func messageIDs(rec *gateway.CaseRecord, hash string, svc *gateway.Service, cats []string, update, revoke bool) (bundleID, headerID string) {
	if hash == "" {
		hash = gateway.ContentHash(rec)
	}
	bundleID = gateway.DeriveID("Bundle", hash, svc.ID,
		strings.Join(cats, ","), strconv.FormatBool(update), strconv.FormatBool(revoke))
	return bundleID, gateway.DeriveID("MessageHeader", bundleID)
}

func trim(s string) string { return strings.TrimSpace(s) }
