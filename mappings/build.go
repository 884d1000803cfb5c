package mappings

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/samply/golang-fhir-models/fhir-models/fhir"

	"github.com/student-mh-referrals/gateway/gateway"
)

// builder assembles one message. rec is the record after strip-fields; cats
// the categories that may be sent. Every resource id is fixed up front so
// that references can be written in any order.
type builder struct {
	in   gateway.MessageInput
	rec  *gateway.CaseRecord
	cats map[string]bool
	list []string
	at   string

	bundleID, headerID, srID, patientID, consentID, carePlanID, flagID string
	senderID, receiverID, gpID, roleID, practitionerID                 string
}

func newBuilder(in gateway.MessageInput, rec *gateway.CaseRecord, cats []string) *builder {
	b := &builder{in: in, rec: rec, cats: map[string]bool{}, list: cats,
		at: in.At.UTC().Truncate(time.Second).Format(time.RFC3339)}
	for _, c := range cats {
		b.cats[c] = true
	}
	ukprn, caseID := rec.Institution.UKPRN, rec.CaseID
	b.bundleID, b.headerID = messageIDs(rec, in.ContentHash, in.Service, cats, in.Update, in.Revoke)
	b.srID = ServiceRequestID(ukprn, caseID)
	b.patientID = PatientID(ukprn, caseID)
	b.consentID = gateway.DeriveID("Consent", ukprn, caseID)
	b.carePlanID = gateway.DeriveID("CarePlan", ukprn, caseID)
	b.flagID = gateway.DeriveID("Flag", ukprn, caseID)
	b.senderID = orgID(SystemUKPRN, ukprn)
	b.receiverID = orgID(sysODS, in.Service.Organization.ODSCode)
	if gp := rec.Student.GPPractice; gp != nil && trim(gp.ODSCode) != "" {
		b.gpID = orgID(sysODS, trim(gp.ODSCode))
	}
	r := rec.Referrer
	reg := ""
	if r.Registration != nil {
		reg = r.Registration.Body + "|" + r.Registration.Number
	}
	b.practitionerID = gateway.DeriveID("Practitioner", ukprn, r.Name, reg)
	b.roleID = gateway.DeriveID("PractitionerRole", ukprn, r.Name, r.Role)
	return b
}

// meta is a resource's meta: its UK Core profile and, as the BaRS examples
// and guides require, lastUpdated (the message time: every resource is
// written for this message).
func (b *builder) meta(profileName string) *fhir.Meta {
	m := profile(profileName)
	m.LastUpdated = &b.at
	return m
}

// bundleMeta adds versionId to the Bundle's meta: the BaRS version the
// message follows.
func (b *builder) bundleMeta() *fhir.Meta {
	m := b.meta("UKCore-Bundle")
	m.VersionId = ptr(gateway.BaRSVersion)
	return m
}

// orgID is keyed by identifier, so that the same organisation in two roles
// (receiver and GP practice) is one resource.
func orgID(system, value string) string { return gateway.DeriveID("Organization", system, trim(value)) }

// entry is one Bundle entry before serialisation.
type entry struct {
	id       string
	resource any
}

func (b *builder) message() ([]byte, error) {
	entries := []entry{
		{b.headerID, b.messageHeader()},
		{b.srID, b.serviceRequest()},
		{b.patientID, b.patient()},
	}
	if f := b.flag(); f != nil {
		entries = append(entries, entry{b.flagID, f})
	}
	if c := b.consent(); c != nil {
		entries = append(entries, entry{b.consentID, c})
	}
	if cp := b.carePlan(); cp != nil {
		entries = append(entries, entry{b.carePlanID, cp})
	}
	seen := map[string]bool{}
	for _, o := range b.organizations() {
		if !seen[*o.Id] {
			seen[*o.Id] = true
			entries = append(entries, entry{*o.Id, o})
		}
	}
	entries = append(entries, entry{b.roleID, b.practitionerRole()}, entry{b.practitionerID, b.practitioner()})

	bundle := fhir.Bundle{
		Id:         ptr(b.bundleID),
		Meta:       b.bundleMeta(),
		Identifier: &fhir.Identifier{System: ptr(sysBundleID), Value: ptr("urn:uuid:" + b.bundleID)},
		Type:       fhir.BundleTypeMessage,
		Timestamp:  ptr(b.at),
	}
	head, err := resourceJSON(bundle)
	if err != nil {
		return nil, err
	}
	// The entries are written into the Bundle here rather than by
	// encoding/json, which would re-scan (compact) every resource once per
	// level of nesting: that was most of the mapping's time. The bytes are
	// the same: entry is the last member the Bundle has (no signature), and
	// a BundleEntry writes fullUrl then resource.
	out := make([]byte, 0, 12<<10)
	out = append(out, head[:len(head)-1]...)
	out = append(out, `,"entry":[`...)
	for i, e := range entries {
		raw, err := resourceJSON(e.resource)
		if err != nil {
			return nil, err
		}
		if i > 0 {
			out = append(out, ',')
		}
		// e.id is a derived UUID: nothing in it needs escaping.
		out = append(out, `{"fullUrl":"urn:uuid:`...)
		out = append(out, e.id...)
		out = append(out, `","resource":`...)
		out = append(out, raw...)
		out = append(out, '}')
	}
	return append(out, ']', '}'), nil
}

// resourceJSON serialises a resource compactly with resourceType as its first
// member. The samply models write resourceType last; moving it changes no
// meaning and makes the documents readable. A model's own MarshalJSON is
// called directly: json.Marshal would only re-scan its output, which is
// already compact and escaped (it comes from json.Marshal).
func resourceJSON(v any) ([]byte, error) {
	var data []byte
	var err error
	if m, ok := v.(json.Marshaler); ok {
		data, err = m.MarshalJSON()
	} else {
		data, err = json.Marshal(v)
	}
	if err != nil {
		return nil, gateway.Internal(fmt.Errorf("mappings: encode %T: %w", v, err))
	}
	i := bytes.LastIndex(data, []byte(`,"resourceType":"`))
	if i < 0 || data[len(data)-1] != '}' || bytes.IndexByte(data[i+17:len(data)-2], '"') >= 0 {
		return data, nil
	}
	rt := data[i+1 : len(data)-1]
	out := make([]byte, 0, len(data))
	out = append(out, '{')
	out = append(out, rt...)
	out = append(out, ',')
	out = append(out, data[1:i]...)
	return append(out, '}'), nil
}

// messageHeader mirrors the R4 MessageHeader members the message uses. The
// samply model cannot be used here: it always writes eventUri, which would be
// an empty string and a second value of the event[x] choice.
type messageHeader struct {
	ResourceType string                          `json:"resourceType"`
	ID           string                          `json:"id"`
	Meta         *fhir.Meta                      `json:"meta,omitempty"`
	EventCoding  fhir.Coding                     `json:"eventCoding"`
	Destination  []fhir.MessageHeaderDestination `json:"destination"`
	Sender       *fhir.Reference                 `json:"sender"`
	Source       fhir.MessageHeaderSource        `json:"source"`
	Reason       *fhir.CodeableConcept           `json:"reason"`
	Focus        []fhir.Reference                `json:"focus"`
	Definition   *string                         `json:"definition,omitempty"`
}

func (b *builder) messageHeader() messageHeader {
	svc, src := b.in.Service, b.in.Source
	reason := "new"
	if b.in.Update || b.in.Revoke {
		reason = "update"
	}
	return messageHeader{
		ResourceType: "MessageHeader",
		ID:           b.headerID,
		Meta:         b.meta("UKCore-MessageHeader"),
		EventCoding:  coding(sysBaRSEvents, eventRequest, ""),
		Destination: []fhir.MessageHeaderDestination{{
			Name:     str(svc.Name),
			Endpoint: trim(svc.Target.System) + "|" + trim(svc.Target.Value),
			Receiver: ref(b.receiverID),
		}},
		Sender: ref(b.senderID),
		Source: fhir.MessageHeaderSource{
			Name:     str(src.Name),
			Software: str(src.Software),
			Version:  str(src.Version),
			Contact:  sourceContact(src.Contact),
			Endpoint: trim(src.Endpoint),
		},
		Reason:     ptr(concept(sysBaRSReason, reason, "")),
		Focus:      []fhir.Reference{*ref(b.srID)},
		Definition: str(b.in.Definition),
	}
}

// contactSystems are the ContactPoint systems a source contact may use
// (the configuration allows these three).
var contactSystems = map[string]fhir.ContactPointSystem{
	"phone": fhir.ContactPointSystemPhone,
	"email": fhir.ContactPointSystemEmail,
	"url":   fhir.ContactPointSystemUrl,
}

// sourceContact is MessageHeader.source.contact, as the BaRS examples give
// it; nil when none is configured.
func sourceContact(c gateway.SourceContact) *fhir.ContactPoint {
	sys, ok := contactSystems[trim(c.System)]
	if !ok || trim(c.Value) == "" {
		return nil
	}
	return &fhir.ContactPoint{System: &sys, Value: str(c.Value)}
}

func (b *builder) serviceRequest() fhir.ServiceRequest {
	rec := b.rec
	status := fhir.RequestStatusActive
	if b.in.Revoke {
		status = fhir.RequestStatusRevoked
	}
	sr := fhir.ServiceRequest{
		Id:        ptr(b.srID),
		Meta:      b.meta("UKCore-ServiceRequest"),
		Extension: []fhir.Extension{b.decisionExtension()},
		Identifier: []fhir.Identifier{
			{System: ptr(CaseIDSystem(trim(rec.Institution.UKPRN))), Value: ptr(trim(rec.CaseID))},
			{System: ptr(SystemReferralID), Value: ptr(b.srID)},
		},
		Status: status,
		// intent and category as the BaRS request examples have them: a
		// plan, and the one BaRS category of what is asked (a referral).
		Intent:     fhir.RequestIntentPlan,
		Category:   []fhir.CodeableConcept{concept(sysBaRSCategory, categoryReferral, "")},
		Priority:   ptr(priorities[rec.Referral.Priority]),
		Code:       ptr(concept(sysSNOMED, sctMHTeamReferral, "Referral to mental health team")),
		Subject:    *ref(b.patientID),
		AuthoredOn: ptr(b.at),
		Requester:  ref(b.roleID),
		Performer:  []fhir.Reference{*ref(b.receiverID)},
	}
	if b.cats["needs"] {
		sr.ReasonCode = reasonCodes(rec.Referral.PresentingNeeds)
	}
	if b.consent() != nil {
		sr.SupportingInfo = append(sr.SupportingInfo, *ref(b.consentID))
	}
	if b.carePlan() != nil {
		sr.SupportingInfo = append(sr.SupportingInfo, *ref(b.carePlanID))
	}
	if b.flag() != nil {
		sr.SupportingInfo = append(sr.SupportingInfo, *ref(b.flagID))
	}
	sr.Note = b.notes()
	return sr
}

// reasonCodes sends each presenting need as its SNOMED CT finding (from
// needs.csv) with the student's words as the text; a need without a code is
// sent as text alone.
func reasonCodes(needs []gateway.Need) []fhir.CodeableConcept {
	var out []fhir.CodeableConcept
	for _, n := range needs {
		var cc fhir.CodeableConcept
		nc, known := needCodes[n.Code]
		if known && nc.Code != "" {
			cc.Coding = []fhir.Coding{coding(sysSNOMED, nc.Code, nc.Display)}
		}
		cc.Text = str(n.Text)
		if cc.Text == nil && cc.Coding == nil {
			cc.Text = str(needLabel(n.Code))
		}
		if cc.Text != nil || cc.Coding != nil {
			out = append(out, cc)
		}
	}
	return out
}

// needLabel is the words for an uncoded need the student did not describe.
func needLabel(code string) string {
	code = trim(code)
	if code == "" {
		return ""
	}
	if code == "other" {
		return "Other presenting need"
	}
	w := strings.ReplaceAll(code, "-", " ")
	return strings.ToUpper(w[:1]) + w[1:]
}

// notes are, first, what a clinician must read before acting (M-02): the
// safe-contact warning, the override disclosure (always sent when the share
// is without consent, because the receiver must know why it holds the data)
// and the categories the student's consent withheld; then the narrative
// parts, each sent only with its category.
func (b *builder) notes() []fhir.Annotation {
	r := b.rec.Referral
	var texts []string
	add := func(label, text string) {
		if t := trim(text); t != "" {
			texts = append(texts, label+t)
		}
	}
	add("", b.safeContact())
	add("", b.overrideNote())
	if w := b.withheld(); len(w) > 0 {
		add("Withheld by the student's consent, not absent: ", strings.Join(w, "; ")+". The record holds "+
			"them but the student did not consent to share them: their absence is not evidence of no risk.")
	}
	if b.cats["needs"] {
		add("Summary: ", r.Summary)
		add("What the student wants: ", r.StudentWishes)
	}
	if b.cats["risk-formulation"] {
		add("Safety formulation: ", r.RiskFormulation)
	}
	if b.cats["context"] {
		var support []string
		for _, s := range r.CurrentSupport {
			if t := trim(s); t != "" {
				support = append(support, t)
			}
		}
		if len(support) > 0 {
			add("Current support: ", strings.Join(support, ", ")+".")
		}
		if r.UnderSecondaryCare != nil {
			add("Under secondary mental health care: ", map[bool]string{true: "yes.", false: "no."}[*r.UnderSecondaryCare])
		}
	}
	var out []fhir.Annotation
	for _, t := range texts {
		out = append(out, fhir.Annotation{Text: t})
	}
	return out
}

func (b *builder) patient() fhir.Patient {
	st := b.rec.Student
	p := fhir.Patient{Id: ptr(b.patientID), Meta: b.meta("UKCore-Patient")}
	if b.cats["demographics"] {
		if nhs := trim(st.NHSNumber); nhs != "" {
			p.Identifier = []fhir.Identifier{{
				System: ptr(sysNHSNumber),
				Value:  ptr(nhs),
			}}
			// A university cannot trace against the national demographics
			// service: the number is present but not traced (02).
			p.Identifier[0].Extension = []fhir.Extension{{
				Url:                  extVerification,
				ValueCodeableConcept: ptr(concept(sysVerification, "02", "Number present but not traced")),
			}}
		} else {
			p.Extension = []fhir.Extension{{
				Url:                  extNoNHSNumber,
				ValueCodeableConcept: ptr(concept(sysNoNHSNumber, "nhs-number-not-known", "NHS number not known")),
			}}
		}
		if n := humanName(st.Name); n != nil {
			p.Name = []fhir.HumanName{*n}
		}
		if g, ok := genders[st.Gender]; ok {
			p.Gender = ptr(g)
		}
		p.BirthDate = str(st.DateOfBirth)
	}
	if b.cats["contact"] {
		if c := st.Contact; c != nil {
			p.Telecom = telecoms(c.Phone, c.Email, nil)
		}
		if a := st.Address; a != nil {
			addr := fhir.Address{Use: ptr(fhir.AddressUseTemp), City: str(a.City), PostalCode: str(a.Postcode)}
			for _, l := range a.Lines {
				if t := str(l); t != nil {
					addr.Line = append(addr.Line, *t)
				}
			}
			if addr.Line != nil || addr.City != nil || addr.PostalCode != nil {
				p.Address = []fhir.Address{addr}
			}
		}
	}
	if b.cats["gp"] && b.gpID != "" {
		p.GeneralPractitioner = []fhir.Reference{*ref(b.gpID)}
	}
	if b.cats["trusted-contact"] && st.TrustedContact != nil {
		if c := trustedContact(st.TrustedContact); c != nil {
			p.Contact = []fhir.PatientContact{*c}
		}
	}
	return p
}

func humanName(n gateway.HumanName) *fhir.HumanName {
	hn := fhir.HumanName{Use: ptr(fhir.NameUseOfficial), Family: str(n.Family)}
	for _, g := range n.Given {
		if t := str(g); t != nil {
			hn.Given = append(hn.Given, *t)
		}
	}
	if hn.Family == nil && hn.Given == nil {
		return nil
	}
	return &hn
}

// telecoms lists a phone and an email; use is set only where the record
// says what the number is (a referrer's work contact).
func telecoms(phone, email string, use *fhir.ContactPointUse) []fhir.ContactPoint {
	var out []fhir.ContactPoint
	if v := str(phone); v != nil {
		out = append(out, fhir.ContactPoint{System: ptr(fhir.ContactPointSystemPhone), Value: v, Use: use})
	}
	if v := str(email); v != nil {
		out = append(out, fhir.ContactPoint{System: ptr(fhir.ContactPointSystemEmail), Value: v, Use: use})
	}
	return out
}

// trustedContact is the person the student named to be told in a crisis,
// sent as an emergency contact (v2-0131 EP) with the relationship in words.
// R4 pat-1 needs a name, telecom, address or organisation; without one
// there is no contact to send.
func trustedContact(tc *gateway.TrustedContact) *fhir.PatientContact {
	c := fhir.PatientContact{
		Relationship: []fhir.CodeableConcept{{
			Coding: []fhir.Coding{coding(sysContactRole, "EP", "Emergency contact person")},
			Text:   ptr("Trusted contact"),
		}},
		Telecom: telecoms(tc.Phone, "", nil),
	}
	if rel := str(tc.Relationship); rel != nil {
		c.Relationship = append(c.Relationship, fhir.CodeableConcept{Text: rel})
	}
	if n := str(tc.Name); n != nil {
		c.Name = &fhir.HumanName{Text: n}
	}
	if c.Name == nil && c.Telecom == nil {
		return nil
	}
	return &c
}

// consent is what the student decided, on either route: on the override
// route it shows the refusal (or withdrawal) that the share overrides. There
// is none when consent was not sought.
func (b *builder) consent() *fhir.Consent {
	cn := b.rec.Consent
	state, ok := consentStates[cn.Decision]
	if !ok {
		return nil
	}
	c := &fhir.Consent{
		Id:     ptr(b.consentID),
		Meta:   b.meta("UKCore-Consent"),
		Status: state,
		Scope:  concept(sysConsentScope, "patient-privacy", "Privacy Consent"),
		Category: []fhir.CodeableConcept{
			concept(sysLOINC, "59284-0", ""),
			concept(sysBaRSConsent, "DRC", "Direct Care"),
		},
		Patient:      ref(b.patientID),
		DateTime:     str(cn.RecordedAt),
		Performer:    []fhir.Reference{*ref(b.patientID)},
		Organization: []fhir.Reference{*ref(b.senderID)},
		PolicyRule:   ptr(concept(sysActCode, "OPTIN", "opt-in")),
	}
	prov := &fhir.ConsentProvision{
		Type: ptr(fhir.ConsentProvisionTypeDeny),
		Actor: []fhir.ConsentProvisionActor{{
			Role:      concept(sysParticipation, "IRCP", "information recipient"),
			Reference: *ref(b.receiverID),
		}},
		Purpose: []fhir.Coding{coding(sysActReason, "TREAT", "treatment")},
	}
	if cn.Decision == "given" {
		prov.Type = ptr(fhir.ConsentProvisionTypePermit)
		if start, end := str(cn.RecordedAt), str(cn.ExpiresAt); start != nil || end != nil {
			prov.Period = &fhir.Period{Start: start, End: end}
		}
		for _, dc := range gateway.DataCategories {
			for _, got := range cn.DataCategories {
				if got == dc {
					prov.Code = append(prov.Code, concept(CodeSystemDataCategory, dc, categoryDisplays[dc]))
					break
				}
			}
		}
	}
	c.Provision = prov
	return c
}

// safeContact is the student's safe-contact instructions and the channels
// to avoid, in one line, whenever contact details or a trusted contact are
// sent (M-02); empty otherwise.
func (b *builder) safeContact() string {
	st := b.rec.Student
	sc := st.SafeContact
	sent := b.cats["contact"] && (st.Contact != nil || st.Address != nil) ||
		b.cats["trusted-contact"] && st.TrustedContact != nil
	if sc == nil || !sent {
		return ""
	}
	var avoid []string
	for _, a := range sc.Avoid {
		if w := word("avoid", a); w != "" {
			avoid = append(avoid, w)
		}
	}
	line := trim(sc.Instructions)
	if len(avoid) > 0 {
		line = trim(line + " Do not use: " + strings.Join(avoid, ", ") + ".")
	}
	if line == "" {
		return ""
	}
	return "Safe contact: " + line
}

// flag is the safe-contact warning as a UK Core Flag on the Patient, so
// that it shows wherever the receiver shows the student's alerts.
func (b *builder) flag() *fhir.Flag {
	text := b.safeContact()
	if text == "" {
		return nil
	}
	return &fhir.Flag{
		Id:       ptr(b.flagID),
		Meta:     b.meta("UKCore-Flag"),
		Status:   fhir.FlagStatusActive,
		Category: []fhir.CodeableConcept{concept(sysFlagCategory, "contact", "Subject Contact")},
		Code:     fhir.CodeableConcept{Text: ptr(text)},
		Subject:  *ref(b.patientID),
	}
}

// withheld names, in words, the categories the decision says the student's
// consent withholds (M-02), so that their absence is not read as "no risk".
func (b *builder) withheld() []string {
	out := make([]string, 0, len(b.in.Decision.WithheldCategories))
	for _, c := range b.in.Decision.WithheldCategories {
		out = append(out, categoryDisplays[c])
	}
	return out
}

// carePlan is the safety plan, sent only with the safety-plan category.
func (b *builder) carePlan() *fhir.CarePlan {
	sp := b.rec.Referral.SafetyPlan
	if !b.cats["safety-plan"] || sp == nil {
		return nil
	}
	st, ok := safetyPlanStates[sp.Status]
	if !ok {
		return nil
	}
	desc := st.words
	if s := trim(sp.Summary); s != "" {
		desc += " " + s
	}
	cp := &fhir.CarePlan{
		Id:          ptr(b.carePlanID),
		Meta:        b.meta("UKCore-CarePlan"),
		Status:      st.status,
		Intent:      fhir.CarePlanIntentPlan,
		Category:    []fhir.CodeableConcept{{Text: ptr("Safety plan")}},
		Title:       ptr("Safety plan"),
		Description: ptr(desc),
		Subject:     *ref(b.patientID),
	}
	if d := str(sp.ReviewedOn); d != nil {
		cp.Note = []fhir.Annotation{{Time: d, Text: "Last reviewed with the student on " + *d + "."}}
	}
	return cp
}

func (b *builder) organizations() []fhir.Organization {
	inst := b.rec.Institution
	sender := fhir.Organization{
		Id:         ptr(b.senderID),
		Meta:       b.meta("UKCore-Organization"),
		Identifier: []fhir.Identifier{{System: ptr(SystemUKPRN), Value: ptr(trim(inst.UKPRN))}},
		Name:       str(inst.Name),
	}
	if ods := str(inst.ODSCode); ods != nil {
		sender.Identifier = append(sender.Identifier, fhir.Identifier{System: ptr(sysODS), Value: ods})
	}
	svc := b.in.Service.Organization
	out := []fhir.Organization{sender, {
		Id:         ptr(b.receiverID),
		Meta:       b.meta("UKCore-Organization"),
		Identifier: []fhir.Identifier{{System: ptr(sysODS), Value: ptr(trim(svc.ODSCode))}},
		Name:       str(svc.Name),
	}}
	if b.cats["gp"] && b.gpID != "" {
		gp := b.rec.Student.GPPractice
		out = append(out, fhir.Organization{
			Id:         ptr(b.gpID),
			Meta:       b.meta("UKCore-Organization"),
			Identifier: []fhir.Identifier{{System: ptr(sysODS), Value: ptr(trim(gp.ODSCode))}},
			Name:       str(gp.Name),
		})
	}
	return out
}

func (b *builder) practitionerRole() fhir.PractitionerRole {
	r := b.rec.Referrer
	pr := fhir.PractitionerRole{
		Id:           ptr(b.roleID),
		Meta:         b.meta("UKCore-PractitionerRole"),
		Practitioner: ref(b.practitionerID),
		Organization: ref(b.senderID),
		Telecom:      telecoms(r.Phone, r.Email, ptr(fhir.ContactPointUseWork)),
	}
	label := referrerRoles[r.Role]
	if label == "" {
		label = r.Role
	}
	if t := str(label); t != nil {
		pr.Code = []fhir.CodeableConcept{{Text: t}}
	}
	return pr
}

func (b *builder) practitioner() fhir.Practitioner {
	r := b.rec.Referrer
	p := fhir.Practitioner{Id: ptr(b.practitionerID), Meta: b.meta("UKCore-Practitioner")}
	if n := str(r.Name); n != nil {
		p.Name = []fhir.HumanName{{Text: n}}
	}
	if reg := r.Registration; reg != nil {
		body, number := str(reg.Body), str(reg.Number)
		if body != nil || number != nil {
			q := fhir.PractitionerQualification{Code: fhir.CodeableConcept{Text: ptr("Professional registration")}}
			if body != nil {
				q.Code.Text = ptr("Registered with " + *body)
				q.Issuer = &fhir.Reference{Display: body}
			}
			if number != nil {
				id := fhir.Identifier{Value: number}
				if body != nil {
					id.System = ptr(gateway.FHIRBase + "/Id/professional-registration/" + slug(*body))
				}
				q.Identifier = []fhir.Identifier{id}
			}
			p.Qualification = []fhir.PractitionerQualification{q}
		}
	}
	return p
}

// slug lower-cases a registration body's name into a URL path segment
// ("BACP" → "bacp", "Social Work England" → "social-work-england").
func slug(s string) string {
	var sb strings.Builder
	dash := false
	for _, r := range strings.ToLower(s) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			sb.WriteRune(r)
			dash = false
		case !dash && sb.Len() > 0:
			sb.WriteByte('-')
			dash = true
		}
	}
	out := strings.TrimSuffix(sb.String(), "-")
	if out == "" {
		return "unnamed"
	}
	return out
}
