package mappings

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/samply/golang-fhir-models/fhir-models/fhir"

	"github.com/student-mh-referrals/gateway/gateway"
)

// Identifier and code systems of the audit export. The gateway's own live
// under gateway.FHIRBase; the others are the ones the IHE Basic Audit Log
// Patterns (BALP) use.
var (
	// SystemStudentPseudonym identifies a student by the keyed pseudonym of
	// the decision records: an IG lead who holds the key can find every
	// decision about a student, and no one else can tell who it is.
	SystemStudentPseudonym = gateway.FHIRBase + "/Id/student-pseudonym"
	// SystemDecisionID identifies a sharing decision (Decision.id).
	SystemDecisionID = gateway.FHIRBase + "/Id/decision"
	// SystemClientID identifies a calling system by its configured id.
	SystemClientID = gateway.FHIRBase + "/Id/client"
	// SystemOperator identifies an operator who acted through the CLI.
	SystemOperator = gateway.FHIRBase + "/Id/operator"
	// CodeSystemAuditAction holds the action codes of action records
	// (gateway.ActionReferralCancel etc.).
	CodeSystemAuditAction = gateway.FHIRBase + "/CodeSystem/audit-action"
)

const (
	sysDICOM        = "http://dicom.nema.org/resources/ontology/DCM"
	sysBALPAuthZ    = "https://profiles.ihe.net/ITI/BALP/CodeSystem/AuthZsubType"
	sysEntityType   = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
	sysObjectRole   = "http://terminology.hl7.org/CodeSystem/object-role"
	sysSourceType   = "http://terminology.hl7.org/CodeSystem/security-source-type"
	sysSecurityRole = "http://terminology.hl7.org/CodeSystem/extra-security-role-type"
)

// AuditExport says who exports and when, for the Bundle's identity and the
// AuditEvents' source.
type AuditExport struct {
	Source gateway.Source
	At     time.Time
}

// auditEvent mirrors the R4 AuditEvent members the export uses. The samply
// model cannot be used: its entity.detail always writes both valueString and
// valueBase64Binary, two values of one choice.
type auditEvent struct {
	ResourceType   string                 `json:"resourceType"`
	ID             string                 `json:"id"`
	Type           fhir.Coding            `json:"type"`
	Subtype        []fhir.Coding          `json:"subtype,omitempty"`
	Action         string                 `json:"action"`
	Recorded       string                 `json:"recorded"`
	Outcome        string                 `json:"outcome"`
	OutcomeDesc    string                 `json:"outcomeDesc,omitempty"`
	PurposeOfEvent []fhir.CodeableConcept `json:"purposeOfEvent,omitempty"`
	Agent          []auditAgent           `json:"agent"`
	Source         auditSource            `json:"source"`
	Entity         []auditEntity          `json:"entity,omitempty"`
}

type auditAgent struct {
	Type      *fhir.CodeableConcept `json:"type,omitempty"`
	Who       *fhir.Reference       `json:"who,omitempty"`
	Name      string                `json:"name,omitempty"`
	Requestor bool                  `json:"requestor"`
	Policy    []string              `json:"policy,omitempty"`
}

type auditSource struct {
	Site     string         `json:"site,omitempty"`
	Observer fhir.Reference `json:"observer"`
	Type     []fhir.Coding  `json:"type,omitempty"`
}

type auditEntity struct {
	What        *fhir.Reference `json:"what,omitempty"`
	Type        *fhir.Coding    `json:"type,omitempty"`
	Role        *fhir.Coding    `json:"role,omitempty"`
	Name        string          `json:"name,omitempty"`
	Description string          `json:"description,omitempty"`
	Detail      []auditDetail   `json:"detail,omitempty"`
}

type auditDetail struct {
	Type        string `json:"type"`
	ValueString string `json:"valueString"`
}

type auditBundle struct {
	ResourceType string        `json:"resourceType"`
	ID           string        `json:"id"`
	Type         string        `json:"type"`
	Timestamp    string        `json:"timestamp"`
	Entry        []auditBEntry `json:"entry,omitempty"`
}

type auditBEntry struct {
	FullURL  string     `json:"fullUrl"`
	Resource auditEvent `json:"resource"`
}

func conceptRef(system, code, display string) *fhir.CodeableConcept {
	return ptr(concept(system, code, display))
}

func identified(system, value, display string) *fhir.Reference {
	r := &fhir.Reference{Identifier: &fhir.Identifier{System: ptr(system), Value: ptr(value)}}
	if display != "" {
		r.Display = ptr(display)
	}
	return r
}

// AuditEventID is the id of the AuditEvent of one chain record: derived
// from the chain position, because one decision id can be recorded twice.
func AuditEventID(institution string, seq int64) string {
	return gateway.DeriveID("AuditEvent", institution, strconv.FormatInt(seq, 10))
}

// auditEventOf renders one audit record as a FHIR R4 AuditEvent shaped after
// the IHE Basic Audit Log Patterns: a decision follows the authorization
// decision pattern (AuthZconsent: DICOM 110113, subtype AuthZ-Consent,
// action E, outcome 0 for a permit and 8 for a deny, as BALP's deny example
// has it), with the requesting system, the institution (custodian), the
// recipient and the gateway (authorization server, under the policy
// revision) as agents, and the student (by pseudonym), the case and the
// decision as entities; an action is DICOM 110100 Application Activity
// with its code as subtype. It does not claim a BALP profile in
// meta.profile: the BALP package is not part of the definitions the gateway
// validates against.
func auditEventOf(r gateway.AuditRecord, src gateway.Source) (auditEvent, error) {
	software := src.Software
	if software == "" {
		software = "student-mh-referral-gateway"
	}
	observer := software
	if src.Version != "" {
		observer += " " + src.Version
	}
	ev := auditEvent{
		ResourceType: "AuditEvent",
		ID:           AuditEventID(r.Institution, r.Seq),
		Recorded:     r.RecordedAt.UTC().Format("2006-01-02T15:04:05.000000Z"),
		Outcome:      "0",
		Source: auditSource{
			Site:     software,
			Observer: fhir.Reference{Display: ptr(observer)},
			Type:     []fhir.Coding{coding(sysSourceType, "4", "Application Server")},
		},
	}
	chain := []auditDetail{
		{"chain-seq", strconv.FormatInt(r.Seq, 10)},
		{"chain-hash", r.Hash},
		{"chain-prev-hash", r.PrevHash},
	}
	switch {
	case r.Decision != nil:
		decisionEvent(&ev, r, software, chain)
	case r.Action != nil:
		actionEvent(&ev, r, chain)
	default:
		return ev, gateway.Internal(fmt.Errorf("mappings: audit record %s/%d has no body", r.Institution, r.Seq))
	}
	return ev, nil
}

func decisionEvent(ev *auditEvent, r gateway.AuditRecord, software string, chain []auditDetail) {
	d := r.Decision
	ev.Type = coding(sysDICOM, "110113", "Security Alert")
	ev.Subtype = []fhir.Coding{coding(sysBALPAuthZ, "AuthZ-Consent", "Authorization Decision using Roles and Consent")}
	ev.Action = "E"
	ev.PurposeOfEvent = []fhir.CodeableConcept{concept(sysActReason, "TREAT", "treatment")}
	prefix := ""
	if d.DryRun {
		prefix = "dry run, nothing sent: "
	}
	if d.Outcome == gateway.OutcomeDeny {
		ev.Outcome = "8"
		ev.OutcomeDesc = prefix + "share refused on route " + d.Route + " by " + strings.Join(r.DeniedBy(), ", ")
	} else {
		ev.OutcomeDesc = prefix + "share allowed on route " + d.Route + " to " + d.Recipient.Service
	}
	ev.Agent = append(ev.Agent,
		auditAgent{Type: conceptRef(sysDICOM, "110153", "Source Role ID"), Who: identified(SystemClientID, d.Client, d.Client), Requestor: true},
		auditAgent{Type: conceptRef(sysParticipation, "CST", "custodian"), Who: identified(SystemUKPRN, d.Institution, ""), Requestor: false},
	)
	if d.Recipient.ODSCode != "" {
		ev.Agent = append(ev.Agent, auditAgent{
			Type: conceptRef(sysDICOM, "110152", "Destination Role ID"), Who: identified(sysODS, d.Recipient.ODSCode, d.Recipient.Name), Requestor: false,
		})
	}
	gw := auditAgent{Type: conceptRef(sysSecurityRole, "authserver", "authorization server"), Who: &fhir.Reference{Display: ptr(software)}, Requestor: false}
	if d.PolicyRevision != "" {
		gw.Policy = []string{d.PolicyRevision}
	}
	ev.Agent = append(ev.Agent, gw)
	if o := d.Override; o != nil {
		if p := o.DecidedBy; p != nil {
			ev.Agent = append(ev.Agent, auditAgent{Type: conceptRef(sysParticipation, "AUT", "author (originator)"), Who: &fhir.Reference{Display: ptr(p.Name + " (" + p.Role + ")")}, Name: p.Name})
		}
		if p := o.ApprovedBy; p != nil {
			ev.Agent = append(ev.Agent, auditAgent{Type: conceptRef(sysParticipation, "VRF", "verifier"), Who: &fhir.Reference{Display: ptr(p.Name + " (" + p.Role + ")")}, Name: p.Name})
		}
	}
	if d.Student != "" {
		ev.Entity = append(ev.Entity, auditEntity{
			What: identified(SystemStudentPseudonym, d.Student, ""),
			Type: ptr(coding(sysEntityType, "1", "Person")), Role: ptr(coding(sysObjectRole, "1", "Patient")),
		})
	}
	if d.CaseID != "" {
		caseEntity := auditEntity{
			What: identified(CaseIDSystem(d.Institution), d.CaseID, ""),
			Type: ptr(coding(sysEntityType, "2", "System Object")), Role: ptr(coding(sysObjectRole, "4", "Domain Resource")),
			Description: "the case the referral is about",
		}
		if d.ReferralID != "" {
			caseEntity.Detail = []auditDetail{{"referral-id", d.ReferralID}}
		}
		ev.Entity = append(ev.Entity, caseEntity)
	}
	details := []auditDetail{
		{"outcome", d.Outcome},
		{"route", d.Route},
		{"decision-time", d.Time},
		{"dry-run", strconv.FormatBool(d.DryRun)},
	}
	for _, rr := range d.Rules {
		details = append(details, auditDetail{"rule", rr.ID + " " + rr.Effect + ": " + rr.Message})
	}
	for _, lb := range []struct{ name, v string }{
		{"lawful-basis-article6", d.LawfulBases.Article6},
		{"lawful-basis-article9", d.LawfulBases.Article9},
		{"lawful-basis-dpa-schedule1", d.LawfulBases.DPASchedule1},
	} {
		if lb.v != "" {
			details = append(details, auditDetail{lb.name, lb.v})
		}
	}
	for _, c := range d.DataCategories {
		details = append(details, auditDetail{"data-category", c})
	}
	if d.Recipient.Service != "" {
		details = append(details, auditDetail{"recipient-service", d.Recipient.Service})
	}
	if o := d.Override; o != nil {
		details = append(details, auditDetail{"override-ground", o.Ground})
		if o.DecidedAt != "" {
			details = append(details, auditDetail{"override-decided-at", o.DecidedAt})
		}
		informed := o.StudentInformed
		if informed == "" {
			informed = "not-recorded"
		}
		details = append(details, auditDetail{"student-informed", informed})
	}
	if d.PolicyRevision != "" {
		details = append(details, auditDetail{"policy-revision", d.PolicyRevision})
	}
	ev.Entity = append(ev.Entity, auditEntity{
		What: identified(SystemDecisionID, d.DecisionID, ""),
		Type: ptr(coding(sysEntityType, "2", "System Object")), Role: ptr(coding(sysObjectRole, "13", "Security Resource")),
		Description: "the sharing decision",
		Detail:      append(details, chain...),
	})
}

func actionEvent(ev *auditEvent, r gateway.AuditRecord, chain []auditDetail) {
	a := r.Action
	ev.Type = coding(sysDICOM, "110100", "Application Activity")
	ev.Subtype = []fhir.Coding{coding(CodeSystemAuditAction, a.Action, "")}
	switch a.Action {
	case gateway.ActionPolicyReload:
		ev.Action = "E"
	case gateway.ActionRetentionPurge:
		ev.Action = "D"
	default:
		ev.Action = "U"
	}
	ev.OutcomeDesc = a.Action + " by " + a.By
	who := auditAgent{Who: identified(SystemOperator, a.By, a.By), Requestor: true,
		Type: conceptRef(sysSecurityRole, "humanuser", "human user")}
	if slices.Contains([]string{gateway.ActionReferralCancel, gateway.ActionStudentInformed, gateway.ActionResponseStep, gateway.ActionResponseRefused}, a.Action) {
		who = auditAgent{Who: identified(SystemClientID, a.By, a.By), Requestor: true,
			Type: conceptRef(sysDICOM, "110150", "Application")}
	}
	ev.Agent = []auditAgent{who}
	var details []auditDetail
	for _, f := range []struct{ name, v string }{
		{"action", a.Action}, {"reason", a.Reason}, {"referral-id", a.ReferralID}, {"message-id", a.MessageID},
		{"service", a.Service}, {"policy-revision", a.PolicyRevision}, {"previous-policy-revision", a.PreviousRevision},
		{"action-time", a.Time}, {"informed-at", a.InformedAt},
	} {
		if f.v != "" {
			details = append(details, auditDetail{f.name, f.v})
		}
	}
	if a.Count > 0 {
		details = append(details, auditDetail{"count", strconv.Itoa(a.Count)})
	}
	if a.CaseID != "" && a.Institution != gateway.GatewayChain {
		ev.Entity = append(ev.Entity, auditEntity{
			What: identified(CaseIDSystem(a.Institution), a.CaseID, ""),
			Type: ptr(coding(sysEntityType, "2", "System Object")), Role: ptr(coding(sysObjectRole, "4", "Domain Resource")),
			Description: "the case acted on",
		})
	}
	ev.Entity = append(ev.Entity, auditEntity{
		Type: ptr(coding(sysEntityType, "2", "System Object")), Role: ptr(coding(sysObjectRole, "20", "Job")),
		Name: a.Action, Description: "the action",
		Detail: append(details, chain...),
	})
}

// AuditEventBundle renders audit records as a Bundle of type collection
// holding one AuditEvent each, in the order given. Its id is derived from
// the records and the export time, so the same export is the same Bundle.
func AuditEventBundle(recs []gateway.AuditRecord, x AuditExport) ([]byte, error) {
	parts := []string{"AuditExport", x.At.UTC().Format(time.RFC3339Nano)}
	b := auditBundle{ResourceType: "Bundle", Type: "collection", Timestamp: x.At.UTC().Format("2006-01-02T15:04:05Z")}
	for _, r := range recs {
		ev, err := auditEventOf(r, x.Source)
		if err != nil {
			return nil, err
		}
		b.Entry = append(b.Entry, auditBEntry{FullURL: "urn:uuid:" + ev.ID, Resource: ev})
		parts = append(parts, r.Hash)
	}
	b.ID = gateway.DeriveID(parts...)
	out, err := json.Marshal(b)
	if err != nil {
		return nil, gateway.Internal(fmt.Errorf("mappings: encode audit Bundle: %w", err))
	}
	return out, nil
}
