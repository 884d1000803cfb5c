package gateway

// SchemaVersion is the only case-record contract version this gateway accepts.
// A new contract version is a new value here and a new set of types, so that
// integrators on the old one keep working.
const SchemaVersion = "1"

// CaseRecord is what a university case-management system posts: one student,
// one referral to one NHS service, and the grounds (consent or an override) on
// which it may be shared. The contract is docs/case-record.md; field names and
// optionality follow it exactly, because integrators build against it.
//
// Optional scalars that have a meaningful zero value (booleans, numbers) are
// pointers so that "absent" and "false" stay distinct for the policies.
type CaseRecord struct {
	SchemaVersion string      `json:"schemaVersion" validate:"required,schemaversion"`
	CaseID        string      `json:"caseId" validate:"required,text"`
	Institution   Institution `json:"institution" validate:"required"`
	Referrer      Referrer    `json:"referrer" validate:"required"`
	Student       Student     `json:"student" validate:"required"`
	Referral      Referral    `json:"referral" validate:"required"`
	Consent       Consent     `json:"consent" validate:"required"`
	Override      *Override   `json:"override,omitempty"`
}

// Institution is the university that refers; with CaseID its UKPRN forms the
// idempotency key, and it is the tenant that owns the referral.
type Institution struct {
	Name    string `json:"name" validate:"required,text"`
	UKPRN   string `json:"ukprn" validate:"required,ukprn"`
	ODSCode string `json:"odsCode,omitempty" validate:"omitempty,odscode"`
}

// Referrer is the university practitioner making the referral; their role and
// registration decide which lawful bases may be claimed (L-02).
type Referrer struct {
	Name         string        `json:"name" validate:"required,text"`
	Role         string        `json:"role" validate:"required,role"`
	Registration *Registration `json:"registration,omitempty"`
	Email        string        `json:"email,omitempty" validate:"omitempty,text"`
	Phone        string        `json:"phone,omitempty" validate:"omitempty,text"`
}

// Registration is a professional registration (BACP, HCPC, NMC, …); only
// registered professionals are under the duty of confidentiality that
// Art. 9(2)(h) needs.
type Registration struct {
	Body   string `json:"body" validate:"required,text"`
	Number string `json:"number" validate:"required,text"`
}

// Student is the person referred. Every field here is personal data: none of
// it may reach a log line.
type Student struct {
	NHSNumber      string          `json:"nhsNumber,omitempty" validate:"omitempty,nhsnumber"`
	StudentID      string          `json:"studentId,omitempty" validate:"omitempty,text"`
	Name           HumanName       `json:"name" validate:"required"`
	DateOfBirth    string          `json:"dateOfBirth" validate:"required,date"`
	Gender         string          `json:"gender,omitempty" validate:"omitempty,vocab=gender"`
	Contact        *Contact        `json:"contact,omitempty"`
	Address        *Address        `json:"address,omitempty"`
	GPPractice     *GPPractice     `json:"gpPractice,omitempty"`
	TrustedContact *TrustedContact `json:"trustedContact,omitempty"`
	SafeContact    *SafeContact    `json:"safeContact,omitempty"`
}

// SafeContact is how the student may safely be contacted, and the channels
// to avoid; it travels with any contact details or trusted contact that are
// sent (M-02), so that a service does not put the student at risk by how it
// gets in touch.
type SafeContact struct {
	Instructions string   `json:"instructions,omitempty" validate:"omitempty,narrative"`
	Avoid        []string `json:"avoid,omitempty" validate:"max=100,dive,vocab=contactChannel"`
}

// HumanName is a student's name as the university holds it.
type HumanName struct {
	Given  []string `json:"given,omitempty" validate:"max=100,dive,text"`
	Family string   `json:"family" validate:"required,text"`
}

// Contact is how the NHS service can reach the student (data category
// "contact").
type Contact struct {
	Email string `json:"email,omitempty" validate:"omitempty,text"`
	Phone string `json:"phone,omitempty" validate:"omitempty,text"`
}

// Address is the student's term-time address (data category "contact").
type Address struct {
	Lines    []string `json:"lines,omitempty" validate:"max=100,dive,text"`
	City     string   `json:"city,omitempty" validate:"omitempty,text"`
	Postcode string   `json:"postcode,omitempty" validate:"omitempty,text"`
}

// GPPractice is the student's registered GP (data category "gp").
type GPPractice struct {
	ODSCode string `json:"odsCode" validate:"required,odscode"`
	Name    string `json:"name,omitempty" validate:"omitempty,text"`
}

// TrustedContact is someone the student named to be told in a crisis; it is
// sent only when the student consented to the "trusted-contact" category.
type TrustedContact struct {
	Name         string `json:"name" validate:"required,text"`
	Relationship string `json:"relationship,omitempty" validate:"omitempty,text"`
	Phone        string `json:"phone,omitempty" validate:"omitempty,text"`
}

// Referral is the clinical content: why the student is referred and to whom.
type Referral struct {
	Service            string          `json:"service" validate:"required,text"`
	Priority           string          `json:"priority" validate:"required,vocab=priority"`
	PresentingNeeds    []Need          `json:"presentingNeeds,omitempty" validate:"max=100,dive"`
	Summary            string          `json:"summary,omitempty" validate:"omitempty,narrative"`
	RiskFormulation    string          `json:"riskFormulation,omitempty" validate:"omitempty,narrative"`
	SafetyPlan         *SafetyPlan     `json:"safetyPlan,omitempty"`
	RiskAssessment     *RiskAssessment `json:"riskAssessment,omitempty"`
	CurrentSupport     []string        `json:"currentSupport,omitempty" validate:"max=100,dive,text"`
	UnderSecondaryCare *bool           `json:"underSecondaryCare,omitempty"`
	RiskToOthers       *bool           `json:"riskToOthers,omitempty"`
	StudentWishes      string          `json:"studentWishes,omitempty" validate:"omitempty,narrative"`
}

// Need is one presenting need, coded from the gateway's needs vocabulary
// (NeedCodes) and, where possible, in the student's own words.
type Need struct {
	Code string `json:"code" validate:"required,vocab=need"`
	Text string `json:"text,omitempty" validate:"omitempty,narrative"`
}

// SafetyPlan records whether the student has a safety plan and what it says
// (data category "safety-plan").
type SafetyPlan struct {
	Status     string `json:"status" validate:"required,vocab=safetyPlanStatus"`
	Summary    string `json:"summary,omitempty" validate:"omitempty,narrative"`
	ReviewedOn string `json:"reviewedOn,omitempty" validate:"omitempty,date"`
}

// RiskAssessment is the university's documented assessment. Score and Level
// are accepted so that case systems can post what they hold, but they never
// leave the gateway and never drive a decision (X-01, NICE NG225 1.6).
type RiskAssessment struct {
	AssessedOn     string   `json:"assessedOn,omitempty" validate:"omitempty,date"`
	Reference      string   `json:"reference,omitempty" validate:"omitempty,text"`
	SeriousConcern *bool    `json:"seriousConcern,omitempty"`
	Tool           string   `json:"tool,omitempty" validate:"omitempty,text"`
	Score          *float64 `json:"score,omitempty"`
	Level          string   `json:"level,omitempty" validate:"omitempty,text"`
}

// Consent is what the student decided about sharing; it is the default route
// (C-01..C-04).
type Consent struct {
	Decision           string    `json:"decision" validate:"required,vocab=consentDecision"`
	Recipients         []string  `json:"recipients,omitempty" validate:"max=100,dive,text"`
	Purposes           []string  `json:"purposes,omitempty" validate:"max=100,dive,vocab=purpose"`
	DataCategories     []string  `json:"dataCategories,omitempty" validate:"max=100,dive,vocab=dataCategory"`
	RecordedAt         string    `json:"recordedAt,omitempty" validate:"omitempty,instant"`
	ExpiresAt          string    `json:"expiresAt,omitempty" validate:"omitempty,instant"`
	Method             string    `json:"method,omitempty" validate:"omitempty,vocab=consentMethod"`
	RecordedBy         string    `json:"recordedBy,omitempty" validate:"omitempty,text"`
	Capacity           *Capacity `json:"capacity,omitempty"`
	CompetenceAssessed *bool     `json:"competenceAssessed,omitempty"`
	// CompetenceAssessedBy and CompetenceAssessedOn say who assessed an
	// under-16's competence (Gillick) and when.
	CompetenceAssessedBy string `json:"competenceAssessedBy,omitempty" validate:"omitempty,text"`
	CompetenceAssessedOn string `json:"competenceAssessedOn,omitempty" validate:"omitempty,date"`
}

// Capacity is the student's capacity to consent to this decision (K-01).
type Capacity struct {
	Status     string `json:"status" validate:"required,vocab=capacityStatus"`
	AssessedBy string `json:"assessedBy,omitempty" validate:"omitempty,text"`
	AssessedOn string `json:"assessedOn,omitempty" validate:"omitempty,date"`
}

// Override is present only when the university shares without consent; the
// policies judge whether its ground, approval and lawful bases suffice
// (O-01..O-04, L-01, L-02, K-02, T-01).
type Override struct {
	Ground          string           `json:"ground" validate:"required,vocab=overrideGround"`
	AdultAtRisk     *bool            `json:"adultAtRisk,omitempty"`
	Grounds         string           `json:"grounds" validate:"required,narrative"`
	ConsentSought   *ConsentSought   `json:"consentSought" validate:"required"`
	DecidedBy       *Person          `json:"decidedBy" validate:"required"`
	ApprovedBy      *Person          `json:"approvedBy,omitempty"`
	DecidedAt       string           `json:"decidedAt" validate:"required,instant"`
	LawfulBasis     *LawfulBasis     `json:"lawfulBasis" validate:"required"`
	StudentInformed *StudentInformed `json:"studentInformed,omitempty"`
}

// ConsentSought shows that consent was asked for, or why it was not, with
// the reason where asking was not safe (C-01, O-04).
type ConsentSought struct {
	Attempted *bool  `json:"attempted,omitempty"`
	At        string `json:"at,omitempty" validate:"omitempty,instant"`
	Outcome   string `json:"outcome,omitempty" validate:"omitempty,vocab=consentSoughtOutcome"`
	Reason    string `json:"reason,omitempty" validate:"omitempty,narrative"`
}

// Person is a named practitioner who decided or approved an override.
type Person struct {
	Name string `json:"name" validate:"required,text"`
	Role string `json:"role" validate:"required,role"`
}

// LawfulBasis names the UK GDPR Art. 6 basis, the Art. 9 condition and, where
// one applies, the DPA 2018 Schedule 1 paragraph (L-01). The same shape is
// used in a case record's override and in a decision.
type LawfulBasis struct {
	Article6     string `json:"article6,omitempty" validate:"omitempty,article6"`
	Article9     string `json:"article9,omitempty" validate:"omitempty,article9"`
	DPASchedule1 string `json:"dpaSchedule1,omitempty" validate:"omitempty,dpaschedule1"`
}

// StudentInformed records whether the student was told of a share without
// consent, or why telling is delayed (T-01).
type StudentInformed struct {
	Status        string `json:"status" validate:"required,vocab=studentInformedStatus"`
	ReasonDelayed string `json:"reasonDelayed,omitempty" validate:"omitempty,narrative"`
}

// Vocabularies of the contract. They are exported so that the validator, the
// JSON Schema test and the documentation draw on one list. Roles are not
// among them: which roles exist and which may approve is policy data
// (policies/lists.rego) that an IG lead edits, so the contract checks a role
// for its form only.
var (
	Genders                 = []string{"male", "female", "other", "unknown"}
	Priorities              = []string{"routine", "urgent", "emergency"}
	NeedCodes               = []string{"self-harm", "suicidal-thoughts", "low-mood", "anxiety", "eating-difficulties", "psychosis-concern", "substance-use", "trauma", "other"}
	SafetyPlanStatuses      = []string{"in-place", "declined", "not-yet"}
	ConsentDecisions        = []string{"given", "refused", "withdrawn", "not-sought"}
	ConsentMethods          = []string{"written", "verbal", "electronic"}
	Purposes                = []string{"direct-care", "evaluation", "research"}
	DataCategories          = []string{"demographics", "contact", "gp", "needs", "risk-formulation", "safety-plan", "trusted-contact", "context"}
	CapacityStatuses        = []string{"presumed", "has-capacity", "lacks-capacity"}
	OverrideGrounds         = []string{"safeguarding", "vital-interests", "best-interests", "public-interest"}
	ConsentSoughtOutcomes   = []string{"refused", "unreachable", "not-safe-to-ask", "lacks-capacity"}
	ContactChannels         = []string{"phone", "sms", "post", "email", "trusted-contact", "home-visit"}
	StudentInformedStatuses = []string{"informed", "will-inform", "not-informed"}
)

// Route is the route a record asks to be shared by: "consent" without an
// override, otherwise the override's ground. It is derived from the record,
// not decided, so the decision can always name the route it tried.
func (r *CaseRecord) Route() string {
	if r.Override != nil {
		return r.Override.Ground
	}
	return "consent"
}
