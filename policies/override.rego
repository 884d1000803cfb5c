# Sharing without consent (O-01..O-04) and lawful bases (L-01, L-02).
#
# An override is the exception: a serious concern, decided by one named
# practitioner and approved by a second, senior one (O-01). A student with
# capacity who refused keeps that refusal unless the safeguarding condition or
# a documented public interest applies (O-02). Vital interests need a student
# who cannot consent and a life-or-death matter (O-03); the safeguarding
# condition needs a child or an adult at risk and a reason consent is not
# relied on (O-04). Every share names its lawful bases (L-01), and the health
# and social care condition is for registered professionals only (L-02).
package referral

import rego.v2

import input.record.consent
import input.record.override
import input.record.override as overriding
import input.record.referral

# The senior roles that may approve an override (O-01).
approver_roles := {"head-of-wellbeing", "safeguarding-lead", "director-of-student-services"}

# The lawful basis the override claims; empty strings when not named.
claimed_article6 := object.get(input, ["record", "override", "lawfulBasis", "article6"], "")

claimed_article9 := object.get(input, ["record", "override", "lawfulBasis", "article9"], "")

claimed_schedule1 := object.get(input, ["record", "override", "lawfulBasis", "dpaSchedule1"], "")

# A serious concern for the student's safety, as the risk assessment records it.
serious_concern if referral.riskAssessment.seriousConcern == true

# The student refused, in the consent or when consent was sought again.
student_refused if consent.decision in {"refused", "withdrawn"}

student_refused if override.consentSought.outcome == "refused"

# --- O-01 -------------------------------------------------------------------

# METADATA
# title: Share without consent only for a serious concern, decided and approved
# description: >-
#   Sharing without consent is allowed only for a serious concern for the
#   student's safety (risk to life or of serious harm), and only when all hold:
#   a documented risk assessment sets out the grounds; the decision is made by
#   a named practitioner; it is approved by a second, named senior role (head
#   of wellbeing, safeguarding lead or director of student services); the
#   decision time is recorded.
# custom:
#   id: O-01
#   source: >-
#     DHSC, Information sharing and suicide prevention: consensus statement
#     (2021); UUK & PAPYRUS, Suicide-safer universities (2022)
deny contains {"id": "O-01", "message": msg} if {
	overriding
	not route in override_grounds
	msg := sprintf("override.ground is %v: name one of safeguarding, vital-interests, best-interests or public-interest", [shown(field("override.ground"))])
}

deny contains {"id": "O-01", "message": msg} if {
	overriding
	not serious_concern
	msg := "referral.riskAssessment.seriousConcern is not true: sharing without consent needs a serious concern for the student's safety (risk to life or of serious harm)"
}

deny contains {"id": "O-01", "message": msg} if {
	overriding
	not date_of(referral.riskAssessment.assessedOn)
	msg := "referral.riskAssessment.assessedOn is missing or not a date (YYYY-MM-DD): record the documented risk assessment behind the override"
}

deny contains {"id": "O-01", "message": msg} if {
	overriding
	not filled(override.grounds)
	msg := "override.grounds is missing: set out the grounds of the serious concern"
}

deny contains {"id": "O-01", "message": msg} if {
	overriding
	not filled(override.decidedBy.name)
	msg := "override.decidedBy.name is missing: the decision must be made by a named practitioner"
}

deny contains {"id": "O-01", "message": msg} if {
	overriding
	not filled(override.decidedBy.role)
	msg := "override.decidedBy.role is missing: record the role of the practitioner who decided"
}

deny contains {"id": "O-01", "message": msg} if {
	overriding
	not filled(override.approvedBy.name)
	msg := "override.approvedBy.name is missing: a second, named senior person must approve the decision"
}

deny contains {"id": "O-01", "message": msg} if {
	overriding
	not override.approvedBy.role in approver_roles
	msg := sprintf("override.approvedBy.role is %v: approval must come from a head-of-wellbeing, safeguarding-lead or director-of-student-services", [shown(field("override.approvedBy.role"))])
}

deny contains {"id": "O-01", "message": msg} if {
	overriding
	filled(override.approvedBy.name)
	lower(trim_space(override.approvedBy.name)) == lower(trim_space(override.decidedBy.name))
	msg := "override.approvedBy.name is the same as override.decidedBy.name: approval must come from a second person"
}

deny contains {"id": "O-01", "message": msg} if {
	overriding
	not valid_instant(override.decidedAt)
	msg := "override.decidedAt is missing or not an RFC 3339 time: record when the decision was made"
}

deny contains {"id": "O-01", "message": msg} if {
	overriding
	time.parse_rfc3339_ns(override.decidedAt) > at_ns
	msg := "override.decidedAt is after the decision time: record the time the override was actually decided"
}

satisfied contains {"id": "O-01", "message": msg} if {
	overriding
	msg := sprintf("a serious concern is documented (risk assessment and override.grounds), decided by a named %s and approved by a named %s at override.decidedAt", [override.decidedBy.role, override.approvedBy.role])
}

# --- O-02 -------------------------------------------------------------------

# METADATA
# title: A capable student's refusal stands
# description: >-
#   A student with capacity who refused, and who is a risk only to themself:
#   the refusal stands by default. An override in that case may not cite vital
#   interests (Art. 9(2)(c)); it needs the safeguarding condition (Art. 9(2)(g)
#   with DPA 2018 Sch. 1 para. 18) or a documented public-interest
#   justification.
# custom:
#   id: O-02
#   source: >-
#     ICO guidance on vital interests and on the safeguarding condition;
#     Mental Capacity Act 2005 s.1; DHSC consensus statement (2021)
deny contains {"id": "O-02", "message": msg} if {
	overriding
	student_refused
	student_has_capacity
	not route in {"safeguarding", "public-interest"}
	msg := sprintf("override.ground is %q but the student has capacity and refused: the refusal stands unless the safeguarding condition (ground safeguarding) or a documented public-interest justification (ground public-interest) applies", [route])
}

deny contains {"id": "O-02", "message": msg} if {
	overriding
	student_refused
	student_has_capacity
	claimed_article9 == "9(2)(c)"
	msg := "override.lawfulBasis.article9 is \"9(2)(c)\" but the student has capacity and refused: vital interests cannot override a capable refusal; rest on 9(2)(g) with para-18 (safeguarding) or a documented public interest"
}

satisfied contains {"id": "O-02", "message": msg} if {
	overriding
	not student_refused
	msg := "the student did not refuse: no capable refusal to respect"
}

satisfied contains {"id": "O-02", "message": msg} if {
	overriding
	student_refused
	not student_has_capacity
	msg := "the student refused but is not recorded as having capacity to decide"
}

satisfied contains {"id": "O-02", "message": msg} if {
	overriding
	student_refused
	student_has_capacity
	msg := sprintf("the capable student's refusal is overridden only on the %s ground, not on vital interests", [route])
}

# --- O-03 -------------------------------------------------------------------

# METADATA
# title: Vital interests only when incapable and life or death
# description: >-
#   Vital interests (Art. 9(2)(c)) is valid only when the student is incapable
#   of consenting (assessed as lacking capacity, see K-01) and the matter is
#   life or death (referral.riskAssessment.seriousConcern is true).
# custom:
#   id: O-03
#   source: UK GDPR Art. 9(2)(c); ICO guidance on vital interests
deny contains {"id": "O-03", "message": msg} if {
	overriding
	cites_vital_interests
	not lacks_capacity
	msg := sprintf("consent.capacity.status is %v: vital interests applies only to a student assessed as lacking capacity to consent (K-01)", [shown(field("consent.capacity.status"))])
}

deny contains {"id": "O-03", "message": msg} if {
	overriding
	cites_vital_interests
	not serious_concern
	msg := "referral.riskAssessment.seriousConcern is not true: vital interests applies only to a matter of life or death"
}

deny contains {"id": "O-03", "message": msg} if {
	overriding
	route == "vital-interests"
	claimed_article9 != "9(2)(c)"
	msg := sprintf("override.lawfulBasis.article9 is %v: the vital-interests ground rests on Art. 9(2)(c)", [shown(field("override.lawfulBasis.article9"))])
}

deny contains {"id": "O-03", "message": msg} if {
	overriding
	route != "vital-interests"
	claimed_article9 == "9(2)(c)"
	msg := sprintf("override.lawfulBasis.article9 is \"9(2)(c)\" but override.ground is %q: cite vital interests only on the vital-interests ground", [route])
}

cites_vital_interests if {
	overriding
	route == "vital-interests"
}

cites_vital_interests if {
	overriding
	claimed_article9 == "9(2)(c)"
}

satisfied contains {"id": "O-03", "message": "vital interests (Art. 9(2)(c)) is not cited"} if {
	overriding
	not cites_vital_interests
}

satisfied contains {"id": "O-03", "message": msg} if {
	overriding
	cites_vital_interests
	msg := "vital interests: the student is assessed as lacking capacity and the matter is life or death"
}

# --- O-04 -------------------------------------------------------------------

# METADATA
# title: The safeguarding condition
# description: >-
#   The safeguarding condition (Art. 9(2)(g) with DPA 2018 Sch. 1 para. 18)
#   needs: the student is under 18, or an adult at risk; sharing protects them
#   from harm (a serious concern, O-01); and a recorded reason why consent is
#   not relied on (unreachable: it cannot reasonably be obtained;
#   not-safe-to-ask: asking would prejudice their protection; for a student
#   under 18, a refusal also counts).
# custom:
#   id: O-04
#   source: >-
#     UK GDPR Art. 9(2)(g); Data Protection Act 2018 Sch. 1 para. 18; ICO
#     guidance on the safeguarding condition
deny contains {"id": "O-04", "message": msg} if {
	overriding
	cites_safeguarding
	not under_18
	not override.adultAtRisk == true
	msg := "override.adultAtRisk is not true and the student is 18 or over: the safeguarding condition needs a student under 18 or an adult at risk"
}

deny contains {"id": "O-04", "message": msg} if {
	overriding
	cites_safeguarding
	not serious_concern
	msg := "referral.riskAssessment.seriousConcern is not true: the safeguarding condition needs sharing to protect the student from harm"
}

deny contains {"id": "O-04", "message": msg} if {
	overriding
	cites_safeguarding
	not consent_not_relied_on
	msg := sprintf("override.consentSought.outcome is %v: record why consent is not relied on: unreachable, or not-safe-to-ask (refused counts only for a student under 18)", [shown(field("override.consentSought.outcome"))])
}

deny contains {"id": "O-04", "message": msg} if {
	overriding
	route == "safeguarding"
	claimed_article9 != "9(2)(g)"
	msg := sprintf("override.lawfulBasis.article9 is %v: the safeguarding ground rests on Art. 9(2)(g)", [shown(field("override.lawfulBasis.article9"))])
}

deny contains {"id": "O-04", "message": msg} if {
	overriding
	route == "safeguarding"
	claimed_schedule1 != "para-18"
	msg := sprintf("override.lawfulBasis.dpaSchedule1 is %v: the safeguarding ground needs DPA 2018 Sch. 1 para-18", [shown(field("override.lawfulBasis.dpaSchedule1"))])
}

cites_safeguarding if {
	overriding
	route == "safeguarding"
}

cites_safeguarding if {
	overriding
	claimed_schedule1 == "para-18"
}

consent_not_relied_on if override.consentSought.outcome in {"unreachable", "not-safe-to-ask"}

consent_not_relied_on if {
	override.consentSought.outcome == "refused"
	under_18
}

satisfied contains {"id": "O-04", "message": "the safeguarding condition (Art. 9(2)(g), para-18) is not cited"} if {
	overriding
	not cites_safeguarding
}

satisfied contains {"id": "O-04", "message": msg} if {
	overriding
	cites_safeguarding
	msg := sprintf("the safeguarding condition holds: a student under 18 or an adult at risk, a serious concern, and consent not relied on (%s)", [override.consentSought.outcome])
}

# --- L-01 -------------------------------------------------------------------

# METADATA
# title: Every share names an Art. 6 basis and an Art. 9 condition
# description: >-
#   Every share records both an Art. 6 lawful basis and an Art. 9 condition
#   (and the DPA Sch. 1 paragraph where one applies). On the consent route they
#   are consent, Art. 6(1)(a) and Art. 9(2)(a) (explicit consent), and the
#   decision records them; an override must name both in
#   override.lawfulBasis, or it is a deny.
# custom:
#   id: L-01
#   source: UK GDPR Art. 6 and 9; Data Protection Act 2018 s.10 and Sch. 1
deny contains {"id": "L-01", "message": msg} if {
	overriding
	not regex.match(`^6\(1\)\([a-f]\)$`, claimed_article6)
	msg := sprintf("override.lawfulBasis.article6 is %v: name the Art. 6 lawful basis, e.g. 6(1)(e)", [shown(field("override.lawfulBasis.article6"))])
}

deny contains {"id": "L-01", "message": msg} if {
	overriding
	not regex.match(`^9\(2\)\([a-j]\)$`, claimed_article9)
	msg := sprintf("override.lawfulBasis.article9 is %v: name the Art. 9 condition, e.g. 9(2)(g)", [shown(field("override.lawfulBasis.article9"))])
}

deny contains {"id": "L-01", "message": msg} if {
	overriding
	some basis in [claimed_article6, claimed_article9]
	basis in {"6(1)(a)", "9(2)(a)"}
	msg := sprintf("override.lawfulBasis cites consent (%s) but an override shares without consent: name the basis the share actually rests on", [basis])
}

deny contains {"id": "L-01", "message": msg} if {
	overriding
	claimed_article9 == "9(2)(g)"
	not regex.match(`^para-[0-9]+$`, claimed_schedule1)
	msg := sprintf("override.lawfulBasis.dpaSchedule1 is %v: Art. 9(2)(g) needs the DPA 2018 Sch. 1 paragraph it rests on, e.g. para-18", [shown(field("override.lawfulBasis.dpaSchedule1"))])
}

satisfied contains {"id": "L-01", "message": "the consent route rests on Art. 6(1)(a) and Art. 9(2)(a) (explicit consent)"} if on_consent_route

satisfied contains {"id": "L-01", "message": msg} if {
	overriding
	claimed_schedule1 == ""
	msg := sprintf("override.lawfulBasis names Art. %s and Art. %s", [claimed_article6, claimed_article9])
}

satisfied contains {"id": "L-01", "message": msg} if {
	overriding
	claimed_schedule1 != ""
	msg := sprintf("override.lawfulBasis names Art. %s and Art. %s with DPA 2018 Sch. 1 %s", [claimed_article6, claimed_article9, claimed_schedule1])
}

# --- L-02 -------------------------------------------------------------------

# METADATA
# title: Health and social care condition only for registered professionals
# description: >-
#   Art. 9(2)(h) (health or social care) is claimed only when the referrer is a
#   registered professional under a duty of confidentiality, not, for example,
#   a personal tutor.
# custom:
#   id: L-02
#   source: UK GDPR Art. 9(2)(h) and 9(3); Data Protection Act 2018 s.11(1)
deny contains {"id": "L-02", "message": msg} if {
	overriding
	claimed_article9 == "9(2)(h)"
	not registered_referrer
	msg := "referrer.registration is missing: Art. 9(2)(h) may be claimed only by a registered professional under a duty of confidentiality; record the referrer's registration (body, number) or rest on another condition"
}

registered_referrer if {
	filled(input.record.referrer.registration.body)
	filled(input.record.referrer.registration.number)
}

satisfied contains {"id": "L-02", "message": "Art. 9(2)(h) is not claimed"} if claimed_article9 != "9(2)(h)"

satisfied contains {"id": "L-02", "message": msg} if {
	overriding
	claimed_article9 == "9(2)(h)"
	registered_referrer
	msg := sprintf("Art. 9(2)(h) is claimed by a registered professional (%s)", [input.record.referrer.registration.body])
}
