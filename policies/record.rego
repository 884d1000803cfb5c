# Record and tell (R-01, T-01, S-01, N-01).
#
# Every decision is recorded (R-01); the student is told what was shared
# (T-01); not sharing is a decision too, so a referral is never refused for a
# field no rule requires (S-01); and the national data opt-out does not apply
# to direct care (N-01).
package referral

import rego.v2

import input.record.consent
import input.record.override
import input.record.override as overriding

# --- R-01 -------------------------------------------------------------------

# METADATA
# title: Every decision is recorded
# description: >-
#   Every decision, to share and not to share, is recorded: who asked, on what
#   case, the outcome, the route (consent or which override), the lawful
#   bases, the rules that fired, the data categories sent, the recipient, the
#   policy revision, and when. Records are append-only and tamper-evident.
#   The policy refuses what it could not record.
# custom:
#   id: R-01
#   source: >-
#     UK GDPR Art. 5(2) and 30 (accountability, records of processing);
#     Caldicott Principles (2020), principle 6
deny contains {"id": "R-01", "message": msg} if {
	not at_ns
	msg := "input.at is missing or not an RFC 3339 time: the decision time must be recorded"
}

deny contains {"id": "R-01", "message": msg} if {
	not filled(input.record.caseId)
	msg := "caseId is missing: the decision must record which case it is about"
}

deny contains {"id": "R-01", "message": msg} if {
	not filled(input.record.institution.ukprn)
	msg := "institution.ukprn is missing: the decision must record which institution asked"
}

deny contains {"id": "R-01", "message": msg} if {
	not filled(input.record.referrer.name)
	msg := "referrer.name is missing: the decision must record who asked"
}

deny contains {"id": "R-01", "message": msg} if {
	not data.referral.lists.roles[input.record.referrer.role]
	msg := "referrer.role is missing or not a role the IG lead lists (lists.roles): the decision must record the role of who asked"
}

satisfied contains {"id": "R-01", "message": msg} if {
	msg := "this decision is recorded with who asked, the case, the outcome, the route, the lawful bases, the rules, the data categories, the recipient, the policy revision and the time"
}

# --- T-01 -------------------------------------------------------------------

# METADATA
# title: Tell the student
# description: >-
#   The student is told what was shared, with whom and why, before the share
#   or as soon as it is safe. A share without consent records whether the
#   student was told, or why telling is delayed (will-inform and not-informed
#   both need reasonDelayed).
# custom:
#   id: T-01
#   source: >-
#     UK GDPR Art. 13 and 14; Caldicott Principles (2020), principle 8 (inform
#     patients and service users about how their information is used)
deny contains {"id": "T-01", "message": msg} if {
	overriding
	not override.studentInformed.status in {"informed", "will-inform", "not-informed"}
	msg := sprintf("override.studentInformed.status is %v: record whether the student was told (informed), will be told (will-inform, with reasonDelayed), or not (not-informed, with reasonDelayed)", [shown(field("override.studentInformed.status"))])
}

deny contains {"id": "T-01", "message": msg} if {
	overriding
	status := override.studentInformed.status
	status in {"will-inform", "not-informed"}
	not filled(override.studentInformed.reasonDelayed)
	msg := sprintf("override.studentInformed.reasonDelayed is missing but override.studentInformed.status is %q: a student not yet told of a share without consent needs the reason telling is delayed", [status])
}

obligation contains {
	"type": "notify-student",
	"rule": "T-01",
	"message": "tell the student what was shared, with whom and why, before the share",
} if on_consent_route

obligation contains {
	"type": "notify-student",
	"rule": "T-01",
	"message": "tell the student what was shared, with whom and why, as soon as it is safe",
} if {
	overriding
	override.studentInformed.status in {"will-inform", "not-informed"}
}

satisfied contains {"id": "T-01", "message": "the student consented and is told what was shared, with whom and why"} if on_consent_route

satisfied contains {"id": "T-01", "message": msg} if {
	overriding
	msg := sprintf("override.studentInformed.status is %q: the record says whether the student was told, or why telling is delayed", [override.studentInformed.status])
}

# --- S-01 -------------------------------------------------------------------

# METADATA
# title: Not sharing is also a decision
# description: >-
#   A lawful direct-care referral is not refused for lack of a field that the
#   rules do not require (Caldicott 7: the duty to share is as important as
#   the duty to protect). No rule here denies: S-01 names the optional fields
#   a record left out so that an IG lead can see they did not stop the share.
# custom:
#   id: S-01
#   source: Caldicott Principles (2020), principle 7
satisfied contains {"id": "S-01", "message": msg} if {
	count(absent_optional_fields) == 0
	msg := "no optional field is missing"
}

satisfied contains {"id": "S-01", "message": msg} if {
	count(absent_optional_fields) > 0
	msg := sprintf("%s absent: no rule requires them, so the referral is not refused for their lack", [concat(", ", absent_optional_fields)])
}

# Optional fields of the contract that no rule requires.
optional_fields := {
	"student.nhsNumber": ["student", "nhsNumber"],
	"student.gender": ["student", "gender"],
	"student.contact": ["student", "contact"],
	"student.address": ["student", "address"],
	"student.gpPractice": ["student", "gpPractice"],
	"referral.summary": ["referral", "summary"],
	"referral.underSecondaryCare": ["referral", "underSecondaryCare"],
}

absent_optional_fields contains name if {
	some name, path in optional_fields
	object.get(input.record, path, null) == null
}

# --- N-01 -------------------------------------------------------------------

# METADATA
# title: The national data opt-out and direct care
# description: >-
#   The national data opt-out does not apply to direct-care referrals; it does
#   apply if the same data is reused for evaluation or research. The gateway
#   makes direct-care referrals only (C-03), so the opt-out never stops one;
#   no rule here denies.
# custom:
#   id: N-01
#   source: NHS England, National data opt-out operational policy guidance
satisfied contains {"id": "N-01", "message": msg} if {
	not reuse_consented
	msg := "a direct-care referral: the national data opt-out does not apply"
}

satisfied contains {"id": "N-01", "message": msg} if {
	reuse_consented
	msg := "a direct-care referral: the national data opt-out does not apply; it would apply to reuse for evaluation or research, which this referral is not"
}

reuse_consented if {
	some purpose in consent.purposes
	purpose in {"evaluation", "research"}
}
