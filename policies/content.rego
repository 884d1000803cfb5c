# What is shared (M-01, X-01, X-02, P-01, E-01).
#
# Only the minimum leaves: what the service needs, the student consented to and
# the purpose requires (M-01). Risk scores and levels never leave and never
# decide (X-01); a referral carries needs-based content instead (X-02). Each
# service's eligibility is data in its registry entry (P-01). The gateway is
# not an emergency channel (E-01).
package referral

import rego.v2

import data.referral.lists
import input.record.consent
import input.record.override
import input.record.override as overriding
import input.record.referral
import input.record.student
import input.service
import input.service.eligibility

# --- Data categories ------------------------------------------------------------

# The data categories, in the order decisions list them.
category_order := ["demographics", "contact", "gp", "needs", "risk-formulation", "safety-plan", "trusted-contact", "context"]

# What each purpose may carry. A direct-care referral may carry every category;
# the service's needs and the consent narrow it. (A literal, not a
# comprehension over category_order: OPA folds a literal once, at compile time.)
purpose_categories := {"direct-care": {"demographics", "contact", "gp", "needs", "risk-formulation", "safety-plan", "trusted-contact", "context"}}

service_categories := {c | some c in service.dataCategories}

consented_categories := {c | some c in consent.dataCategories}

# The categories that may leave: on the consent route the intersection of the
# service's needs, the consent and the purpose (C-04, M-01); on an override,
# what the service needs for the purpose, less the trusted contact, which
# leaves only with the student's consent (M-01, M-02).
allowed_categories := (service_categories & consented_categories) & purpose_categories["direct-care"] if on_consent_route

allowed_categories := (service_categories & purpose_categories["direct-care"]) - {"trusted-contact"} if overriding

# The categories for which the record holds data.
present_categories contains "demographics" if student.name

present_categories contains "contact" if student.contact

present_categories contains "contact" if student.address

present_categories contains "gp" if student.gpPractice

present_categories contains "needs" if count(referral.presentingNeeds) > 0

present_categories contains "needs" if filled(referral.summary)

present_categories contains "needs" if filled(referral.studentWishes)

present_categories contains "risk-formulation" if filled(referral.riskFormulation)

present_categories contains "safety-plan" if referral.safetyPlan

present_categories contains "trusted-contact" if student.trustedContact

present_categories contains "context" if count(referral.currentSupport) > 0

present_categories contains "context" if has(referral, "underSecondaryCare")

# What will actually be sent.
sent_categories := allowed_categories & present_categories

# The categories that may leave, in the vocabulary's order.
allowed_in_order := [c | some c in category_order; c in allowed_categories]

# --- M-01 -------------------------------------------------------------------

# METADATA
# title: Minimum necessary
# description: >-
#   Each receiving service declares the data categories it needs; the referral
#   carries only the intersection of what the service needs, what the student
#   consented to (C-04) and what the purpose requires. Counselling session
#   notes and third-party information are never sent. A receiver's
#   MessageDefinition that demands a resource the allowed message would not
#   carry (or allows fewer than it carries) is refused, naming the service
#   and the definition: no more is sent to meet a definition.
# custom:
#   id: M-01
#   source: >-
#     Caldicott Principles (2020), principles 2 and 3; UK GDPR Art. 5(1)(c)
#     (data minimisation)
deny contains {"id": "M-01", "message": msg} if {
	count(service_categories) == 0
	msg := sprintf("the registry entry of service %q declares no dataCategories: a receiving service must declare the categories it needs", [service_id])
}

obligation contains {
	"type": "keep-categories",
	"rule": "M-01",
	"categories": allowed_in_order,
	"message": "send only these data categories; counselling session notes and third-party information are never sent",
} if count(service_categories) > 0

obligation contains {
	"type": "drop-trusted-contact",
	"rule": "M-01",
	"message": "student.trustedContact is not sent: the service does not need the trusted-contact category",
} if {
	student.trustedContact
	on_consent_route
	not "trusted-contact" in allowed_categories
	not trusted_contact_not_consented
}

obligation contains {
	"type": "drop-trusted-contact",
	"rule": "M-01",
	"message": "student.trustedContact is not sent: a trusted contact leaves only with the student's consent, never on a share without it",
} if {
	overriding
	student.trustedContact
}

satisfied contains {"id": "M-01", "message": msg} if {
	count(service_categories) > 0
	on_consent_route
	msg := sprintf("only what the service needs, the student consented to and direct care requires leaves: %s", [concat(", ", allowed_in_order)])
}

satisfied contains {"id": "M-01", "message": msg} if {
	count(service_categories) > 0
	overriding
	msg := sprintf("only what the service needs for direct care leaves: %s", [concat(", ", allowed_in_order)])
}

# --- M-01: the receiver's MessageDefinition ----------------------------------

# input.definition is what the receiver's MessageDefinition demands: its url
# and focus, [{"code": resource type, "min": n, "max": "n" or "*"}]. The
# message the policies allow must meet it: the gateway never sends more than
# they allow to satisfy a definition, and the receiver rejects a message that
# does not adhere to it.
deny contains {"id": "M-01", "message": msg} if {
	some f in input.definition.focus
	n := message_count(f.code)
	n < f.min
	msg := sprintf("service %q requires, by its MessageDefinition %q, at least %d %s; the message the sharing policies allow for this referral carries %d, and no more is sent to meet a definition", [service_id, input.definition.url, f.min, f.code, n])
}

deny contains {"id": "M-01", "message": msg} if {
	some f in input.definition.focus
	f.max != "*"
	n := message_count(f.code)
	n > to_number(f.max)
	msg := sprintf("service %q allows, by its MessageDefinition %q, at most %s %s; the message the sharing policies allow for this referral carries %d", [service_id, input.definition.url, f.max, f.code, n])
}

satisfied contains {"id": "M-01", "message": msg} if {
	input.definition.url
	msg := sprintf("the message meets the MessageDefinition %q of service %q", [input.definition.url, service_id])
}

# message_count(type) is how many resources of a FHIR type the message the
# policies allow would carry (lists.message_resources).
message_count(type) := object.get(lists.message_resources, [type, "always"], 0) + message_extra(type)

# message_extra(type) is the one resource more that a type's categories and
# fact add when they hold, else 0; a type with neither (only "always") or not
# in the table has none.
message_extra(type) := 1 if {
	spec := lists.message_resources[type]
	count(object.keys(spec) & {"categories", "with"}) > 0
	message_category_sent(spec)
	message_fact(object.get(spec, "with", "always"))
} else := 0

message_category_sent(spec) if not spec.categories

message_category_sent(spec) if {
	some c in spec.categories
	c in sent_categories
}

message_fact("always")

message_fact("consent-decided") if consent.decision in {"given", "refused", "withdrawn"}

message_fact("safe-contact") if filled(student.safeContact.instructions)

message_fact("safe-contact") if count(student.safeContact.avoid) > 0

message_fact("gp-not-receiver") if trim_space(student.gpPractice.odsCode) != trim_space(service.organization.odsCode)

# --- X-01 -------------------------------------------------------------------

# METADATA
# title: No risk scores or levels
# description: >-
#   No risk score or low/medium/high risk category is ever sent, and none may
#   drive a decision. Such fields are stripped from the outgoing referral; a
#   referral whose only clinical content is a score or category is refused.
#   A narrative field that is sent (the grounds of an override included) and
#   states a risk category or a risk score is refused with the field named,
#   so that the referrer rewrites it as a formulation: the gateway never
#   edits clinical text. The patterns are lists.risk_patterns. No other rule
#   reads referral.riskAssessment.score or .level.
# custom:
#   id: X-01
#   source: >-
#     NICE NG225, Self-harm: assessment, management and preventing recurrence
#     (2022), recommendations 1.6.1 and 1.6.2
deny contains {"id": "X-01", "message": msg} if {
	count(risk_score_fields) > 0
	not clinical_content
	msg := sprintf("the only clinical content is %s: a risk score or level is never sent and cannot carry a referral; record the presenting needs (referral.presentingNeeds), a safety formulation (referral.riskFormulation) and the safety plan (referral.safetyPlan)", [concat(" and ", risk_score_fields)])
}

deny contains {"id": "X-01", "message": msg} if {
	some name, text in sent_narratives
	some p in lists.risk_patterns
	regex.match(p.pattern, text)
	msg := sprintf("%s states a %s: a risk score or category is never sent (NICE NG225 1.6); rewrite it as a narrative formulation of needs and safety", [name, p.name])
}

# The narrative fields that leave with the referral, by name: those of the
# categories that are sent, and on an override the texts that explain it.
sent_narratives["referral.summary"] := referral.summary if "needs" in sent_categories

sent_narratives["referral.studentWishes"] := referral.studentWishes if "needs" in sent_categories

sent_narratives["referral.riskFormulation"] := referral.riskFormulation if "risk-formulation" in sent_categories

sent_narratives[name] := text if {
	"needs" in sent_categories
	some i, need in referral.presentingNeeds
	text := need.text
	name := sprintf("referral.presentingNeeds[%d].text", [i])
}

sent_narratives["referral.safetyPlan.summary"] := referral.safetyPlan.summary if "safety-plan" in sent_categories

sent_narratives["student.safeContact.instructions"] := student.safeContact.instructions if {
	some c in {"contact", "trusted-contact"}
	c in sent_categories
}

sent_narratives["override.grounds"] := override.grounds if overriding

sent_narratives["override.consentSought.reason"] := override.consentSought.reason if overriding

sent_narratives["override.studentInformed.reasonDelayed"] := override.studentInformed.reasonDelayed if overriding

# The score and level fields the record holds (X-01 is the only rule that
# looks at them, and only to strip them).
risk_score_fields contains "referral.riskAssessment.level" if has(referral.riskAssessment, "level")

risk_score_fields contains "referral.riskAssessment.score" if has(referral.riskAssessment, "score")

# Clinical content other than a score or level.
clinical_content if count(referral.presentingNeeds) > 0

clinical_content if filled(referral.summary)

clinical_content if filled(referral.riskFormulation)

clinical_content if referral.safetyPlan

clinical_content if filled(referral.studentWishes)

obligation contains {
	"type": "strip-fields",
	"rule": "X-01",
	"fields": sort(risk_score_fields),
	"message": "risk scores and levels are never sent",
} if count(risk_score_fields) > 0

satisfied contains {"id": "X-01", "message": "the record holds no risk score or level"} if count(risk_score_fields) == 0

satisfied contains {"id": "X-01", "message": msg} if {
	count(risk_score_fields) > 0
	msg := sprintf("%s is stripped before sending and played no part in the decision", [concat(" and ", risk_score_fields)])
}

# --- X-02 -------------------------------------------------------------------

# METADATA
# title: Needs-based content
# description: >-
#   A referral must carry needs-based content: presenting needs (in the
#   student's words where possible), a narrative safety formulation, the
#   safety-plan status, and context (what the student wants, current support).
#   The record must hold all of them; what is sent is what M-01 and C-04
#   allow, and the needs must be among it. Where the student's consent
#   withholds the formulation, safety plan or context, the share goes ahead
#   (S-01) and says so (M-02); the message states exactly what is sent.
# custom:
#   id: X-02
#   source: >-
#     NICE NG225 (2022), recommendations 1.6 and 1.11 (psychosocial assessment
#     and safety planning); Mersey Care U-COPE referral criteria
deny contains {"id": "X-02", "message": msg} if {
	not count(referral.presentingNeeds) > 0
	msg := "referral.presentingNeeds is empty: record the presenting needs, in the student's words where possible"
}

deny contains {"id": "X-02", "message": msg} if {
	not filled(referral.riskFormulation)
	msg := "referral.riskFormulation is missing: record a narrative safety formulation (not a score)"
}

deny contains {"id": "X-02", "message": msg} if {
	not referral.safetyPlan.status in {"in-place", "declined", "not-yet"}
	msg := "referral.safetyPlan.status is missing: record whether a safety plan is in-place, declined or not-yet"
}

deny contains {"id": "X-02", "message": msg} if {
	not filled(referral.studentWishes)
	not count(referral.currentSupport) > 0
	msg := "referral.studentWishes and referral.currentSupport are both missing: record what the student wants from the referral or the support they have now"
}

deny contains {"id": "X-02", "message": msg} if {
	not "needs" in allowed_categories
	not consent_route_without_consent # C-01 refuses it: nothing is consented to send
	msg := "the needs category would not be sent (consent.dataCategories or the service's dataCategories leave it out): a referral must carry the presenting needs"
}

consent_route_without_consent if {
	on_consent_route
	not consent_given
}

satisfied contains {"id": "X-02", "message": msg} if {
	sent := [x02_content[c] | some c in x02_order; c in sent_categories]
	withheld := [x02_content[c] | some c in x02_order; c in withheld_categories]
	unneeded := [x02_content[c] | some c in x02_order; not c in service_categories]
	clauses := [sprintf("%s: %s", [label, concat(", ", items)]) |
		some [label, items] in [
			["withheld by the student's consent (consent.dataCategories), and the referral says so", withheld],
			["not needed by the service (its dataCategories)", unneeded],
		]
		count(items) > 0
	]
	msg := concat("; ", array.concat([sprintf("the record holds the needs-based content; the referral carries %s", [concat(", ", sent)])], clauses))
}

# The needs-based content of X-02, by data category, as messages name it.
x02_content := {"needs": "presenting needs", "risk-formulation": "the safety formulation", "safety-plan": "the safety-plan status", "context": "context"}

x02_order := ["needs", "risk-formulation", "safety-plan", "context"]

# The categories the service needs and the record holds that the student's
# consent withholds (M-02): the referral says they were withheld.
default withheld_categories := set()

withheld_categories := (service_categories & present_categories) - consented_categories if on_consent_route

# --- P-01 -------------------------------------------------------------------

# METADATA
# title: Service eligibility is data
# description: >-
#   Eligibility is per service and is data, not code (the service's
#   eligibility in the registry: partner institutions, needs accepted and
#   excluded, secondary care, routes, age). A referral that a service's
#   criteria exclude is refused with the criterion named.
# custom:
#   id: P-01
#   source: Mersey Care U-COPE referral criteria; the gateway's service registry
deny contains {"id": "P-01", "message": msg} if {
	not service.id
	msg := "the decision input has no service (input.service): the record's referral.service must name a service in the registry"
}

deny contains {"id": "P-01", "message": msg} if {
	count(eligibility.institutions) > 0
	not input.record.institution.ukprn in eligibility.institutions
	msg := sprintf("institution.ukprn %v is not among the partner institutions of %q (eligibility.institutions): refer to a service that accepts this university's students", [shown(field("institution.ukprn")), service_id])
}

deny contains {"id": "P-01", "message": msg} if {
	count(eligibility.needsAnyOf) > 0
	count(presenting_needs & {n | some n in eligibility.needsAnyOf}) == 0
	msg := sprintf("referral.presentingNeeds has none of the needs %q accepts (eligibility.needsAnyOf: %s)", [service_id, concat(", ", eligibility.needsAnyOf)])
}

deny contains {"id": "P-01", "message": msg} if {
	excluded := presenting_needs & {n | some n in eligibility.excludedNeeds}
	count(excluded) > 0
	msg := sprintf("referral.presentingNeeds includes %s, which %q does not accept (eligibility.excludedNeeds): refer to a service for that need", [concat(", ", excluded), service_id])
}

deny contains {"id": "P-01", "message": msg} if {
	eligibility.excludeUnderSecondaryCare == true
	referral.underSecondaryCare == true
	msg := sprintf("referral.underSecondaryCare is true: %q does not accept students already under secondary mental-health care (eligibility.excludeUnderSecondaryCare); contact the student's care team", [service_id])
}

deny contains {"id": "P-01", "message": msg} if {
	count(eligibility.routes) > 0
	not route in eligibility.routes
	msg := sprintf("the route is %q but %q accepts referrals only on the routes %s (eligibility.routes)", [route, service_id, concat(", ", eligibility.routes)])
}

deny contains {"id": "P-01", "message": msg} if {
	is_number(eligibility.minAge)
	not age_at_least(eligibility.minAge)
	msg := sprintf("student.dateOfBirth: the student is under %d at the decision time, the minimum age of %q (eligibility.minAge)", [eligibility.minAge, service_id])
}

deny contains {"id": "P-01", "message": msg} if {
	is_number(eligibility.maxAge)
	not age_at_most(eligibility.maxAge)
	msg := sprintf("student.dateOfBirth: the student is over %d at the decision time, the maximum age of %q (eligibility.maxAge)", [eligibility.maxAge, service_id])
}

# The service's criteria are input.service.eligibility (imported above as
# `eligibility`); a criterion the service leaves out is no restriction.

age_at_least(years) if age >= years

age_at_most(years) if age <= years

service_id := object.get(input, ["service", "id"], "")

presenting_needs := {n.code | some n in referral.presentingNeeds}

satisfied contains {"id": "P-01", "message": msg} if {
	msg := sprintf("the referral meets the eligibility criteria of %q", [service_id])
}

# --- E-01 -------------------------------------------------------------------

# METADATA
# title: Not an emergency channel
# description: >-
#   The gateway is not an emergency channel. A referral marked as an emergency
#   is refused with this guidance: call 999, or NHS 111 and choose the mental
#   health option.
# custom:
#   id: E-01
#   source: NHS England, NHS 111 mental health option; NICE NG225 (2022)
deny contains {"id": "E-01", "message": msg} if {
	referral.priority == "emergency"
	msg := "referral.priority is \"emergency\": the gateway is not an emergency channel; call 999, or NHS 111 and choose the mental health option; send a routine or urgent referral once the student is safe"
}

deny contains {"id": "E-01", "message": msg} if {
	not referral.priority in {"routine", "urgent", "emergency"}
	msg := sprintf("referral.priority is %v: use routine or urgent (an emergency is not referred through the gateway: call 999, or NHS 111 and choose the mental health option)", [shown(field("referral.priority"))])
}

satisfied contains {"id": "E-01", "message": msg} if {
	referral.priority in {"routine", "urgent"}
	msg := sprintf("referral.priority is %q, not an emergency", [referral.priority])
}
