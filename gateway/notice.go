package gateway

import (
	"bytes"
	"cmp"
	"context"
	"html/template"
	"slices"
	"strings"
	"time"
	_ "time/tzdata" // Europe/London for the notice date, whatever the host has
)

// noticeZone is the zone of the dates a student reads.
var noticeZone, _ = time.LoadLocation("Europe/London")

// InformMethods are the ways a university tells a student of a share (POST
// /v1/referrals/{id}/$student-informed); codes, never free text.
var InformMethods = []string{"email", "letter", "in-person", "phone"}

// StudentInformedRecord is when and how the university told the student of
// a delivered share (T-01).
type StudentInformedRecord struct {
	At     time.Time `json:"at"`
	Method string    `json:"method"`
}

// HeldBack says why a notice may not yet be given: the override records that
// the student is not to be told yet. It holds codes and the policy's own
// words, never the case record's reason, which is free text.
type HeldBack struct {
	// Status is override.studentInformed.status ("not-informed").
	Status string `json:"status"`
	// Rule and Obligation are the notify-student obligation of the decision
	// (T-01) and its message.
	Rule       string `json:"rule"`
	Obligation string `json:"obligation"`
}

// StudentNotice is what the student is told of a delivered share (T-01): what
// was shared, with whom, why and on what lawful basis, the rights that basis
// gives, what the university will hear back and whom to contact. It is built
// from the decision record, the registry and the configured institution,
// never from the case record's free text.
type StudentNotice struct {
	ReferralID  string      `json:"referralId"`
	CaseID      string      `json:"caseId"`
	Institution string      `json:"institution"`
	Route       string      `json:"route"`
	Categories  []string    `json:"categories"`
	Recipient   Recipient   `json:"recipient"`
	Trust       string      `json:"trust"`
	LawfulBases LawfulBasis `json:"lawfulBases"`
	// Rights are codes: withdraw-consent (Art. 7(3)), object (Art. 21),
	// access (Art. 15), complain (to the ICO).
	Rights          []string               `json:"rights"`
	DeliveredAt     time.Time              `json:"deliveredAt"`
	StudentInformed *StudentInformedRecord `json:"studentInformed,omitempty"`
	Text            string                 `json:"text"`
	HTML            string                 `json:"html"`
}

// Share is a referral as T-01 sees it: when it was delivered (zero: never)
// and whether the student has been told. Decision is the body of its decision
// record.
type Share struct {
	Referral    StoredReferral
	DeliveredAt time.Time
	Informed    *StudentInformedRecord
	Decision    DecisionEntry
}

// HeldBack returns why the share's notice is held back, or nil. A notice is
// held back while the override says the student is not to be told and the
// university has not recorded telling them.
func (s Share) HeldBack() *HeldBack {
	o := s.Decision.Override
	if s.Informed != nil || o == nil || o.StudentInformed != "not-informed" {
		return nil
	}
	h := &HeldBack{Status: o.StudentInformed, Rule: "T-01"}
	if ob, ok := s.Decision.NotifyObligation(); ok {
		h.Rule, h.Obligation = ob.Rule, ob.Message
	}
	return h
}

// NotifyObligation is the decision's obligation to tell the student
// (notify-student, T-01), if it has one.
func (e DecisionEntry) NotifyObligation() (Obligation, bool) {
	for _, ob := range e.Obligations {
		if ob.Type == ObligationNotifyStudent {
			return ob, true
		}
	}
	return Obligation{}, false
}

// InformedRequest records that a student was told of a share; Action is the
// action record (ActionStudentInformed) appended in the same transaction.
type InformedRequest struct {
	Institution string
	ReferralID  string
	Informed    StudentInformedRecord
	Action      DecisionRecord
}

// Notices is what the store keeps for telling students (T-01). Every call
// is scoped to an institution: another's referral is ENOTFOUND.
type Notices interface {
	// Share returns a referral (without its content) as T-01 sees it.
	Share(ctx context.Context, institution, referralID string) (Share, error)
	// RecordInformed records that the student was told and appends the
	// action record, in one transaction. A share already recorded is
	// ECONFLICT, with the recorded time and method in the message.
	RecordInformed(ctx context.Context, req InformedRequest) (Share, error)
	// Untold lists the institution's delivered shares whose student has not
	// been recorded as told, oldest first, at most limit.
	Untold(ctx context.Context, institution string, limit int) ([]Share, error)
}

// HearBack is the notice's sentence on what the university will hear back
// from the service, from the service's allowed return steps (accepted,
// rejected, booked, seen, did-not-attend, rebooked, discharged,
// redirected). With none configured the university hears only whether the
// referral was accepted.
func HearBack(steps []string) string {
	words := map[string]string{
		"accepted": "whether it accepted the referral", "rejected": "whether it declined the referral",
		"booked": "when an appointment is booked", "seen": "when you have been seen",
		"did-not-attend": "if you miss an appointment", "rebooked": "if an appointment is rebooked",
		"discharged": "when you are discharged from the service", "redirected": "if it refers you on to another service",
	}
	var parts []string
	for _, s := range steps {
		if w, ok := words[s]; ok && !slices.Contains(parts, w) {
			parts = append(parts, w)
		}
	}
	what := "whether the service accepted or declined the referral"
	switch n := len(parts); {
	case n == 1:
		what = parts[0]
	case n > 1:
		what = strings.Join(parts[:n-1], ", ") + " and " + parts[n-1]
	}
	return "The university will hear back from the service only " + what + "."
}

// categoryWords says what each data category holds, for a student.
var categoryWords = map[string]string{
	"demographics":     "your name, date of birth, gender and NHS number",
	"contact":          "how to contact you: phone, email and term-time address, with any instructions on how to contact you safely",
	"gp":               "your GP practice",
	"needs":            "why you were referred: what you are finding difficult, in your own words where the university had them, and what you would like to happen",
	"risk-formulation": "the university's account of what may put your safety at risk",
	"safety-plan":      "whether you have a safety plan, and what it says",
	"trusted-contact":  "the person you named to be contacted in a crisis",
	"context":          "the support you already have, and whether you are under NHS mental health care",
}

// whyWords says why a share was made, by route.
var whyWords = map[string]string{
	"consent":         "You agreed to this referral. This notice is the written record of what you agreed the university would share.",
	"safeguarding":    "The university shared this without your agreement because it was seriously concerned for your safety, and sharing it helps protect you from harm (safeguarding).",
	"vital-interests": "The university shared this without your agreement because your life was at risk at a time when you could not give consent.",
	"best-interests":  "The university shared this without your agreement because you were not able to make this decision at the time, and sharing it was in your best interests (Mental Capacity Act 2005).",
	"public-interest": "The university shared this without your agreement because it was necessary for a reason of substantial public interest that the law recognises.",
}

// Article6Texts, Article9Texts and Schedule1Texts name the lawful bases in
// words, for notices and the web page.
var (
	Article6Texts = map[string]string{
		"6(1)(a)": "consent", "6(1)(b)": "contract", "6(1)(c)": "legal obligation",
		"6(1)(d)": "vital interests", "6(1)(e)": "public task", "6(1)(f)": "legitimate interests",
	}
	Article9Texts = map[string]string{
		"9(2)(a)": "explicit consent", "9(2)(b)": "employment and social protection law", "9(2)(c)": "vital interests of someone who cannot consent",
		"9(2)(d)": "not-for-profit body", "9(2)(e)": "made public by the student", "9(2)(f)": "legal claims",
		"9(2)(g)": "substantial public interest", "9(2)(h)": "health or social care", "9(2)(i)": "public health",
		"9(2)(j)": "archiving, research or statistics",
	}
	Schedule1Texts = map[string]string{
		"para-2": "health or social care purposes", "para-6": "statutory and government purposes",
		"para-10": "preventing or detecting unlawful acts", "para-17": "counselling",
		"para-18": "safeguarding of children and of individuals at risk",
	}
)

// basisWords is the lawful basis as a sentence.
func basisWords(lb LawfulBasis) string {
	var parts []string
	if lb.Article6 != "" {
		parts = append(parts, "UK GDPR Article "+lb.Article6+" ("+Article6Texts[lb.Article6]+")")
	}
	if lb.Article9 != "" {
		s := "Article " + lb.Article9 + " (" + Article9Texts[lb.Article9] + ")"
		if lb.DPASchedule1 != "" {
			s += ", with the Data Protection Act 2018, Schedule 1, " + strings.Replace(lb.DPASchedule1, "para-", "paragraph ", 1) + " (" + Schedule1Texts[lb.DPASchedule1] + ")"
		}
		parts = append(parts, s)
	}
	if len(parts) == 0 {
		return "The decision recorded no lawful basis."
	}
	return "The law that allows it: " + strings.Join(parts, "; ") + "."
}

// noticeSection is one heading of a notice, rendered as text and HTML.
type noticeSection struct {
	Heading string
	Paras   []string
	Items   []string
}

// NewStudentNotice builds the notice of a delivered share. svc is the
// registry's entry for the recipient (nil when it has left the registry: the
// decision's recipient is used) and inst the configured institution (nil:
// the notice says to contact the university's wellbeing service).
func NewStudentNotice(s Share, svc *Service, inst *InstitutionProfile, returnSteps []string) (*StudentNotice, error) {
	d := s.Decision
	n := &StudentNotice{
		ReferralID: s.Referral.ID, CaseID: s.Referral.CaseID, Institution: s.Referral.Institution,
		Route: d.Route, Categories: d.DataCategories, Recipient: d.Recipient, LawfulBases: d.LawfulBases,
		DeliveredAt: s.DeliveredAt.UTC(), StudentInformed: s.Informed,
	}
	service, trust := d.Recipient.Name, d.Recipient.Name
	if svc != nil {
		service, trust = svc.Name, svc.Organization.Name
	}
	n.Trust = trust
	uni := "Your university"
	if inst != nil {
		uni = inst.Name
	}
	when := s.DeliveredAt.In(noticeZone).Format("2 January 2006")
	var shared []string
	for _, c := range d.DataCategories {
		shared = append(shared, cmp.Or(categoryWords[c], c))
	}
	secs := []noticeSection{
		{Heading: "What was shared", Paras: []string{"On " + when + " " + uni + " sent a referral about you to " + service + ", part of " + trust + " (ODS code " + d.Recipient.ODSCode + "), so that the NHS can offer you mental health care. It contained, where the university held it:"}, Items: shared},
		{Heading: "Why, and on what lawful basis", Paras: []string{cmp.Or(whyWords[d.Route], "The university shared this on the route "+d.Route+"."), basisWords(d.LawfulBases)}},
	}
	var rights []string
	if d.LawfulBases.Article6 == "6(1)(a)" {
		n.Rights = append(n.Rights, "withdraw-consent")
		rights = append(rights, "You may withdraw your consent at any time (UK GDPR Article 7(3)). Tell the university's contact below; nothing more will be shared on the strength of it. Withdrawing does not undo what was shared before.")
	}
	if d.LawfulBases.Article6 == "6(1)(e)" || d.LawfulBases.Article6 == "6(1)(f)" {
		n.Rights = append(n.Rights, "object")
		rights = append(rights, "You have the right to object to this use of your information (UK GDPR Article 21). The university must then stop, unless it can show compelling reasons, such as your safety, that override your objection.")
	}
	n.Rights = append(n.Rights, "access", "complain")
	rights = append(rights,
		"You may ask for a copy of the information held about you, from the university and from "+trust+" (UK GDPR Article 15).",
		"If you are unhappy with how your information was handled, tell the university's contact below or its data protection officer. You may also complain to the Information Commissioner's Office (ico.org.uk, 0303 123 1113).")
	secs = append(secs,
		noticeSection{Heading: "Your rights", Items: rights},
		noticeSection{Heading: "What the university will hear back", Paras: []string{HearBack(returnSteps)}},
		contactSection(inst),
		noticeSection{Heading: "Reference", Paras: []string{"Referral " + s.Referral.ID + "."}},
	)
	title := "How " + uni + " shared information about you"
	n.Text = noticeText(title, secs)
	var b bytes.Buffer
	if err := noticeHTML.Execute(&b, map[string]any{"Title": title, "Sections": secs}); err != nil {
		return nil, Internal(err)
	}
	n.HTML = b.String()
	return n, nil
}

func contactSection(inst *InstitutionProfile) noticeSection {
	sec := noticeSection{Heading: "Whom to contact"}
	if inst == nil {
		sec.Paras = []string{"Contact your university's wellbeing service."}
		return sec
	}
	c := inst.WellbeingContact
	sec.Paras = []string{c.Name + ", " + inst.Name + ":"}
	for _, ch := range [][2]string{{"Email", c.Email}, {"Phone", c.Phone}, {"Web", c.URL}} {
		if ch[1] != "" {
			sec.Items = append(sec.Items, ch[0]+": "+ch[1])
		}
	}
	return sec
}

func noticeText(title string, secs []noticeSection) string {
	var b strings.Builder
	b.WriteString(title + "\n" + strings.Repeat("=", len(title)) + "\n")
	for _, s := range secs {
		b.WriteString("\n" + s.Heading + "\n" + strings.Repeat("-", len(s.Heading)) + "\n")
		for _, p := range s.Paras {
			b.WriteString(p + "\n")
		}
		for _, it := range s.Items {
			b.WriteString("- " + it + "\n")
		}
	}
	return b.String()
}

var noticeHTML = template.Must(template.New("notice").Parse(`<article class="student-notice">
<h1>{{.Title}}</h1>
{{- range .Sections}}
<section>
<h2>{{.Heading}}</h2>
{{- range .Paras}}
<p>{{.}}</p>
{{- end}}
{{- if .Items}}
<ul>
{{- range .Items}}
<li>{{.}}</li>
{{- end}}
</ul>
{{- end}}
</section>
{{- end}}
</article>
`))
