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

import data.referral.lists
import input.record.consent
import input.record.override
import input.record.override as overriding
import input.record.referral

# The roles that may approve an override (O-01): lists.roles, kept by the IG
# lead.
approver_roles := {role | some role, r in lists.roles; r.approves == true}

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
	not lists.roles[override.decidedBy.role]
	msg := "override.decidedBy.role is missing or not a role the IG lead lists (lists.roles): record the role of the practitioner who decided"
}

deny contains {"id": "O-01", "message": msg} if {
	overriding
	not filled(override.approvedBy.name)
	msg := "override.approvedBy.name is missing: a second, named senior person must approve the decision"
}

deny contains {"id": "O-01", "message": msg} if {
	overriding
	not override.approvedBy.role in approver_roles
	msg := sprintf("override.approvedBy.role is missing or not a role that may approve: approval must come from one of %s (lists.roles)", [concat(", ", sort(approver_roles))])
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
#   the refusal stands by default (referral.riskToOthers true lifts only this
#   rule). An override in that case may not cite vital interests (Art.
#   9(2)(c)); it needs the safeguarding condition (Art. 9(2)(g) with DPA 2018
#   Sch. 1 para. 18) or a documented public-interest justification.
# custom:
#   id: O-02
#   source: >-
#     ICO guidance on vital interests and on the safeguarding condition;
#     Mental Capacity Act 2005 s.1; DHSC consensus statement (2021)
deny contains {"id": "O-02", "message": msg} if {
	overriding
	capable_refusal
	not route in {"safeguarding", "public-interest"}
	msg := sprintf("override.ground is %q but the student has capacity and refused: the refusal stands unless the safeguarding condition (ground safeguarding) or a documented public-interest justification (ground public-interest) applies", [route])
}

deny contains {"id": "O-02", "message": msg} if {
	overriding
	capable_refusal
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
	capable_refusal
	msg := sprintf("the capable student's refusal is overridden only on the %s ground, not on vital interests", [route])
}

satisfied contains {"id": "O-02", "message": msg} if {
	overriding
	student_refused
	student_has_capacity
	referral.riskToOthers == true
	msg := "the capable student refused, but referral.riskToOthers is true: the student is not a risk only to themself"
}

# A student with capacity who refused and is a risk only to themself (O-02).
capable_refusal if {
	student_refused
	student_has_capacity
	not referral.riskToOthers == true
}

# --- O-03 -------------------------------------------------------------------

# METADATA
# title: Vital interests only when incapable and life or death
# description: >-
#   Vital interests (Art. 9(2)(c)) is valid only when the student is incapable
#   of consenting (assessed as lacking capacity, see K-01) and the matter is
#   life or death (referral.riskAssessment.seriousConcern is true). These
#   conditions hold whatever the override's ground; which grounds may cite
#   9(2)(c) is L-01's table.
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
#   not relied on (lacks-capacity: it cannot be given, with K-01's
#   assessment; unreachable: it cannot reasonably be obtained;
#   not-safe-to-ask: asking would prejudice their protection, with a reason;
#   for a student under 18, a refusal counts only with a reason why relying
#   on it would prejudice their protection). The conditions apply whenever
#   para. 18 is cited, whatever the ground.
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
	msg := sprintf("override.consentSought.outcome is %v: record why consent is not relied on: lacks-capacity, unreachable or not-safe-to-ask (with override.consentSought.reason); refused counts only for a student under 18 and with override.consentSought.reason", [shown(field("override.consentSought.outcome"))])
}

# The safeguarding condition is cited when para. 18 is, or when the
# safeguarding ground does not rest on vital interests instead (L-01).
cites_safeguarding if {
	overriding
	route == "safeguarding"
	claimed_article9 != "9(2)(c)"
}

cites_safeguarding if {
	overriding
	claimed_schedule1 == "para-18"
}

consent_not_relied_on if override.consentSought.outcome == "unreachable"

consent_not_relied_on if {
	override.consentSought.outcome == "lacks-capacity"
	lacks_capacity
}

consent_not_relied_on if {
	override.consentSought.outcome == "not-safe-to-ask"
	filled(override.consentSought.reason)
}

consent_not_relied_on if {
	override.consentSought.outcome == "refused"
	under_18
	filled(override.consentSought.reason)
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
#   override.lawfulBasis, or it is a deny. Each ground may cite only the Art.
#   9 conditions of article9_by_ground: vital-interests 9(2)(c); safeguarding
#   9(2)(g) with para. 18, or 9(2)(c) where O-03 holds; best-interests
#   9(2)(c) where O-03 holds, 9(2)(g) with para. 18 where O-04 holds, or
#   9(2)(h) where L-02 holds; public-interest 9(2)(g) with a Sch. 1 Part 2
#   paragraph from lists.public_interest_paragraphs.
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
	regex.match(`^9\(2\)\([b-j]\)$`, claimed_article9)
	allowed := article9_by_ground[route]
	not claimed_article9 in allowed
	msg := sprintf("override.lawfulBasis.article9 is %q but override.ground %q may cite only %s", [claimed_article9, route, concat(" or ", sort(allowed))])
}

deny contains {"id": "L-01", "message": msg} if {
	overriding
	claimed_article9 == "9(2)(g)"
	allowed := schedule1_by_ground[route]
	not claimed_schedule1 in allowed
	msg := sprintf("override.lawfulBasis.dpaSchedule1 is %v: Art. 9(2)(g) on the %s ground rests on DPA 2018 Sch. 1 %s", [shown(field("override.lawfulBasis.dpaSchedule1")), route, concat(" or ", sort(allowed))])
}

# The Art. 9 conditions each override ground may cite. Citing one brings in
# its own rule: 9(2)(c) O-03, 9(2)(g) with para. 18 O-04, 9(2)(h) L-02.
article9_by_ground := {
	"vital-interests": {"9(2)(c)"},
	"safeguarding": {"9(2)(g)", "9(2)(c)"},
	"best-interests": {"9(2)(c)", "9(2)(g)", "9(2)(h)"},
	"public-interest": {"9(2)(g)"},
}

# The DPA 2018 Sch. 1 paragraphs that Art. 9(2)(g) may rest on, by ground;
# the public-interest list is the IG lead's (lists.public_interest_paragraphs).
schedule1_by_ground := {
	"safeguarding": {"para-18"},
	"best-interests": {"para-18"},
	"public-interest": {p | some p, _ in lists.public_interest_paragraphs},
}

satisfied contains {"id": "L-01", "message": "the consent route rests on Art. 6(1)(a) and Art. 9(2)(a) (explicit consent)"} if on_consent_route

satisfied contains {"id": "L-01", "message": msg} if {
	overriding
	claimed_schedule1 == ""
	msg := sprintf("override.lawfulBasis names Art. %s and Art. %s, which the %s ground may cite", [claimed_article6, claimed_article9, route])
}

satisfied contains {"id": "L-01", "message": msg} if {
	overriding
	claimed_schedule1 != ""
	msg := sprintf("override.lawfulBasis names Art. %s and Art. %s with DPA 2018 Sch. 1 %s, which the %s ground may cite", [claimed_article6, claimed_article9, claimed_schedule1, route])
}

# --- L-02 -------------------------------------------------------------------

# METADATA
# title: Health and social care condition only for registered professionals
# description: >-
#   Art. 9(2)(h) (health or social care) is claimed only when the referrer is
#   a health professional or another person under a duty of confidentiality
#   (DPA 2018 s. 11(1)), not, for example, a personal tutor: the registration
#   names a recognised register (lists.registers, by code or alias, without
#   regard to case) and carries a number in that register's format. The
#   decision records which limb of s. 11(1) applied.
# custom:
#   id: L-02
#   source: UK GDPR Art. 9(2)(h) and 9(3); Data Protection Act 2018 s.11(1)
deny contains {"id": "L-02", "message": msg} if {
	overriding
	claimed_article9 == "9(2)(h)"
	not registration_register
	msg := sprintf("referrer.registration.body is missing or names no recognised register (%s): Art. 9(2)(h) may be claimed only by a professional under a duty of confidentiality (DPA 2018 s. 11(1)); record the register, or rest on another condition", [concat(", ", [r.code | some r in lists.registers])])
}

deny contains {"id": "L-02", "message": msg} if {
	overriding
	claimed_article9 == "9(2)(h)"
	register := registration_register
	not regex.match(register.number, trim_space(input.record.referrer.registration.number))
	msg := sprintf("referrer.registration.number is missing or not in the format of a %s registration number: record the referrer's number in that register", [register.code])
}

# The recognised register that referrer.registration.body names, by code or
# alias, without regard to case; undefined when it names none.
registration_register := register if {
	body := lower(trim_space(input.record.referrer.registration.body))
	some register in lists.registers
	body in {lower(name) | some name in array.concat([register.code], register.aliases)}
}

satisfied contains {"id": "L-02", "message": "Art. 9(2)(h) is not claimed"} if claimed_article9 != "9(2)(h)"

satisfied contains {"id": "L-02", "message": msg} if {
	overriding
	claimed_article9 == "9(2)(h)"
	register := registration_register
	msg := sprintf("Art. 9(2)(h) is claimed by a professional registered with %s, %s", [register.code, lists.register_kinds[register.kind]])
}
