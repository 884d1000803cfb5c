# Capacity and age (K-01, K-02, A-01).
#
# Capacity is presumed from 16; a finding that a student lacks it needs a
# named, dated assessment (K-01). A student who lacks capacity may be referred
# in their best interests (K-02). Age is taken at the decision time in
# Europe/London: under 18, a share without consent is a safeguarding matter;
# under 16, consent needs a competence (Gillick) assessment (A-01).
package referral

import rego.v2

import input.record.consent
import input.record.override
import input.record.override as overriding

# --- Age at the decision time -------------------------------------------------

# The date of birth as [year, month, day]; undefined when it is not a date.
birth_date := date_of(input.record.student.dateOfBirth)

# Age in whole years on today's date in Europe/London. Comparing [month, day]
# pairs makes a 29 February birthday count from 1 March in other years.
age := years if {
	years := london_today[0] - birth_date[0]
	[london_today[1], london_today[2]] >= [birth_date[1], birth_date[2]]
} else := (london_today[0] - birth_date[0]) - 1

under_16 if age < 16

under_18 if age < 18

# --- Capacity -----------------------------------------------------------------

capacity_status := object.get(input, ["record", "consent", "capacity", "status"], "")

lacks_capacity if capacity_status == "lacks-capacity"

competence_assessed if consent.competenceAssessed == true

# A student has capacity when assessed so, when it is presumed (from 16, K-01),
# or when a student under 16 was assessed as competent (A-01).
student_has_capacity if capacity_status == "has-capacity"

student_has_capacity if {
	not lacks_capacity
	age >= 16
}

student_has_capacity if {
	not lacks_capacity
	competence_assessed
}

# --- K-01 -------------------------------------------------------------------

# METADATA
# title: Capacity is presumed; a lack of it is assessed and recorded
# description: >-
#   Capacity is presumed from age 16 (age at the decision time): a record of
#   a student aged 16 or over that says nothing about capacity is read as
#   presumed, never refused for it. A finding that the student lacks capacity
#   needs a recorded, decision-specific assessment by a named assessor, with
#   its date.
# custom:
#   id: K-01
#   source: Mental Capacity Act 2005 s.1(2) and s.2-3; MCA Code of Practice
deny contains {"id": "K-01", "message": msg} if {
	consent.capacity.status == "lacks-capacity"
	not filled(consent.capacity.assessedBy)
	msg := "consent.capacity.assessedBy is missing: a finding that the student lacks capacity needs a named assessor"
}

deny contains {"id": "K-01", "message": msg} if {
	consent.capacity.status == "lacks-capacity"
	not date_of(consent.capacity.assessedOn)
	msg := "consent.capacity.assessedOn is missing or not a date (YYYY-MM-DD): record when the decision-specific capacity assessment was made"
}

deny contains {"id": "K-01", "message": msg} if {
	consent.capacity.status == "lacks-capacity"
	date_of(consent.capacity.assessedOn) > london_today
	msg := "consent.capacity.assessedOn is after the decision date: record the assessment that was actually made for this decision"
}

satisfied contains {"id": "K-01", "message": msg} if {
	consent.capacity.status == "lacks-capacity"
	msg := "consent.capacity records a named, dated assessment that the student lacks capacity for this decision"
}

satisfied contains {"id": "K-01", "message": msg} if {
	not lacks_capacity
	msg := "no finding that the student lacks capacity: capacity is presumed from 16 or recorded as present"
}

# --- K-02 -------------------------------------------------------------------

# METADATA
# title: Best interests when the student lacks capacity
# description: >-
#   When a student lacks capacity, sharing in their best interests is allowed,
#   with the justification recorded on each occasion.
# custom:
#   id: K-02
#   source: Mental Capacity Act 2005 s.1(5) and s.4
deny contains {"id": "K-02", "message": msg} if {
	route == "best-interests"
	overriding
	not lacks_capacity
	msg := sprintf("consent.capacity.status is %v: best interests applies only to a student assessed as lacking capacity (K-01); a student with capacity decides for themself", [shown(field("consent.capacity.status"))])
}

deny contains {"id": "K-02", "message": msg} if {
	route == "best-interests"
	overriding
	not filled(override.grounds)
	msg := "override.grounds is missing: record the best-interests justification for this occasion"
}

satisfied contains {"id": "K-02", "message": "the best-interests route is not taken"} if route != "best-interests"

satisfied contains {"id": "K-02", "message": msg} if {
	overriding
	route == "best-interests"
	msg := "best interests: the student lacks capacity and the justification for this occasion is recorded in override.grounds"
}

# --- A-01 -------------------------------------------------------------------

# METADATA
# title: Age at the decision time decides the route
# description: >-
#   Age is computed from the date of birth at the time of the decision (in
#   Europe/London). Under 18: a share without consent goes through the
#   safeguarding route (O-04). Under 16: consent counts only with a recorded
#   competence (Gillick) assessment, by a named assessor
#   (consent.competenceAssessedBy), with its date
#   (consent.competenceAssessedOn).
# custom:
#   id: A-01
#   source: >-
#     Gillick v West Norfolk and Wisbech AHA [1986]; Mental Capacity Act 2005
#     s.2(5); Data Protection Act 2018 Sch. 1 para. 18
deny contains {"id": "A-01", "message": msg} if {
	not birth_date
	msg := "student.dateOfBirth is missing or not a date (YYYY-MM-DD): age is computed from it at the decision time"
}

deny contains {"id": "A-01", "message": msg} if {
	birth_date > london_today
	msg := "student.dateOfBirth is after the decision date: record the student's date of birth"
}

deny contains {"id": "A-01", "message": msg} if {
	on_consent_route
	consent.decision == "given"
	under_16
	not competence_assessed
	msg := "consent.competenceAssessed is not true and the student is under 16 at the decision time: consent counts only with a recorded competence (Gillick) assessment"
}

deny contains {"id": "A-01", "message": msg} if {
	overriding
	under_18
	route != "safeguarding"
	msg := sprintf("override.ground is %q and the student is under 18 at the decision time: a share without consent goes through the safeguarding route (O-04)", [route])
}

deny contains {"id": "A-01", "message": msg} if {
	on_consent_route
	consent.decision == "given"
	under_16
	competence_assessed
	not filled(consent.competenceAssessedBy)
	msg := "consent.competenceAssessedBy is missing and the student is under 16: record who assessed the student's competence (Gillick)"
}

deny contains {"id": "A-01", "message": msg} if {
	on_consent_route
	consent.decision == "given"
	under_16
	competence_assessed
	not date_of(consent.competenceAssessedOn)
	msg := "consent.competenceAssessedOn is missing or not a date (YYYY-MM-DD) and the student is under 16: record when the competence (Gillick) assessment was made"
}

deny contains {"id": "A-01", "message": msg} if {
	on_consent_route
	consent.decision == "given"
	under_16
	date_of(consent.competenceAssessedOn) > london_today
	msg := "consent.competenceAssessedOn is after the decision date: record the competence assessment that was actually made"
}

satisfied contains {"id": "A-01", "message": msg} if {
	age >= 0
	msg := sprintf("the student is %s at the decision time (Europe/London)", [age_band])
}

# The age band named in messages: an exact age is not needed to explain a
# decision, and the audit record keeps no more personal data than it must.
default age_band := "18 or over"

age_band := "under 16" if under_16

age_band := "16 or 17" if {
	under_18
	not under_16
}
