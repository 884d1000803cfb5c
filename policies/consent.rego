# Consent: the default route (C-01..C-04).
#
# On the consent route a referral leaves only when the student agreed (C-01),
# the consent is valid (C-02), it names this recipient and direct care (C-03),
# and then only with the data categories it names (C-04). C-01 also applies to
# the override route: a share without consent shows that consent was sought,
# or why asking was not safe.
package referral

import rego.v2

import input.record.consent
import input.record.override
import input.record.override as overriding
import input.service

consent_given if consent.decision == "given"

# The ways a consent may be recorded (C-02).
consent_methods := {"written", "verbal", "electronic"}

# --- C-01 -------------------------------------------------------------------

# METADATA
# title: Share with the student's agreement, or show why not
# description: >-
#   Share only with the student's agreement by default. A share that goes
#   ahead without it must show that consent was sought (when, outcome) or why
#   it was not: the student lacks capacity to decide (lacks-capacity, with
#   K-01's assessment), could not be reached, or asking was not safe, in
#   which case the reason is recorded (override.consentSought.reason).
# custom:
#   id: C-01
#   source: >-
#     Universities UK & PAPYRUS, Suicide-safer universities: sharing
#     information with trusted contacts (2022); DHSC, Information sharing and
#     suicide prevention: consensus statement (2021)
deny contains {"id": "C-01", "message": msg} if {
	on_consent_route
	not consent_given
	msg := sprintf(
		"consent.decision is %v: share only with the student's agreement; record a given consent, or take an override route (override.ground) that shows consent was sought",
		[shown(field("consent.decision"))],
	)
}

deny contains {"id": "C-01", "message": msg} if {
	overriding
	consent.decision == "given"
	msg := "consent.decision is \"given\" and an override is present: a record takes one route; remove the override or record what the student actually decided"
}

deny contains {"id": "C-01", "message": msg} if {
	overriding
	not is_object(override.consentSought)
	msg := "override.consentSought is missing: record when consent was sought and the outcome (refused, unreachable), or why it was not (lacks-capacity, not-safe-to-ask)"
}

deny contains {"id": "C-01", "message": msg} if {
	overriding
	is_object(override.consentSought)
	not override.consentSought.outcome in {"refused", "unreachable", "not-safe-to-ask", "lacks-capacity"}
	msg := sprintf(
		"override.consentSought.outcome is %v: record refused or unreachable (consent was sought), or why it was not: lacks-capacity (the student cannot decide) or not-safe-to-ask (asking would not have been safe)",
		[shown(field("override.consentSought.outcome"))],
	)
}

deny contains {"id": "C-01", "message": msg} if {
	overriding
	override.consentSought.outcome == "not-safe-to-ask"
	not filled(override.consentSought.reason)
	msg := "override.consentSought.reason is missing: record why asking the student was not safe"
}

deny contains {"id": "C-01", "message": msg} if {
	overriding
	override.consentSought.outcome == "lacks-capacity"
	not lacks_capacity
	msg := sprintf("override.consentSought.outcome is \"lacks-capacity\" but consent.capacity.status is %v: record the assessment that the student lacks capacity in consent.capacity (K-01)", [shown(field("consent.capacity.status"))])
}

deny contains {"id": "C-01", "message": msg} if {
	overriding
	outcome := override.consentSought.outcome
	outcome in {"refused", "unreachable"}
	not override.consentSought.attempted == true
	msg := sprintf("override.consentSought.attempted is not true but the outcome is %q: record that consent was sought (attempted: true, at)", [outcome])
}

deny contains {"id": "C-01", "message": msg} if {
	overriding
	override.consentSought.outcome in {"refused", "unreachable"}
	not valid_instant(override.consentSought.at)
	msg := "override.consentSought.at is missing or not an RFC 3339 time: record when consent was sought"
}

satisfied contains {"id": "C-01", "message": "consent.decision is \"given\": the student agreed to this share"} if {
	on_consent_route
	consent.decision == "given"
}

satisfied contains {"id": "C-01", "message": msg} if {
	overriding
	outcome := override.consentSought.outcome
	msg := sprintf("override.consentSought.outcome is %q: the share goes ahead without the student's agreement, and the record shows that consent was sought or why it was not", [outcome])
}

# --- C-02 -------------------------------------------------------------------

# METADATA
# title: Consent is explicit, current and given with capacity
# description: >-
#   Consent is valid only if explicit (written, verbal or electronic, recorded
#   by a named person, with a time), not withdrawn, not expired, and given by a
#   student with capacity (see K-01). Withdrawn or refused consent never counts
#   as consent.
# custom:
#   id: C-02
#   source: >-
#     UK GDPR Art. 4(11), 7 and 9(2)(a); ICO guidance on consent and on
#     special-category data; Mental Capacity Act 2005 s.1
deny contains {"id": "C-02", "message": msg} if {
	on_consent_route
	consent.decision in {"refused", "withdrawn"}
	msg := sprintf("consent.decision is %q: withdrawn or refused consent never counts as consent; the refusal stands unless an override applies (override.ground)", [consent.decision])
}

deny contains {"id": "C-02", "message": msg} if {
	on_consent_route
	consent.decision == "given"
	not consent.method in consent_methods
	msg := sprintf("consent.method is %v: record how the consent was given (written, verbal or electronic)", [shown(field("consent.method"))])
}

deny contains {"id": "C-02", "message": msg} if {
	on_consent_route
	consent.decision == "given"
	not filled(consent.recordedBy)
	msg := "consent.recordedBy is missing: record the named person who took the consent"
}

deny contains {"id": "C-02", "message": msg} if {
	on_consent_route
	consent.decision == "given"
	not valid_instant(consent.recordedAt)
	msg := "consent.recordedAt is missing or not an RFC 3339 time: record when the consent was given"
}

deny contains {"id": "C-02", "message": msg} if {
	on_consent_route
	consent.decision == "given"
	time.parse_rfc3339_ns(consent.recordedAt) > at_ns
	msg := "consent.recordedAt is after the decision time: a consent is relied on only once it has been recorded"
}

deny contains {"id": "C-02", "message": msg} if {
	on_consent_route
	consent.decision == "given"
	expires := consent.expiresAt # a consent without expiresAt does not expire
	not valid_instant(expires)
	msg := "consent.expiresAt is not an RFC 3339 time: record when the consent expires, or leave it out for no expiry"
}

deny contains {"id": "C-02", "message": msg} if {
	on_consent_route
	consent.decision == "given"
	time.parse_rfc3339_ns(consent.expiresAt) <= at_ns
	msg := "consent.expiresAt is not after the decision time: the consent has expired; record a fresh consent"
}

deny contains {"id": "C-02", "message": msg} if {
	on_consent_route
	consent.decision == "given"
	consent.capacity.status == "lacks-capacity"
	msg := "consent.capacity.status is \"lacks-capacity\": a student who lacks capacity cannot consent; share in their best interests instead (override.ground best-interests, K-02)"
}

satisfied contains {"id": "C-02", "message": msg} if {
	on_consent_route
	consent.decision == "given"
	msg := sprintf("consent is explicit (%s, recorded by a named person at consent.recordedAt), current at the decision time, and given with capacity (%s)", [consent.method, capacity_read])
}

# The capacity the consent was given with, as K-01 reads it: a record that
# says nothing about capacity is read as presumed (A-01 judges an under-16's
# competence).
default capacity_read := "presumed"

capacity_read := consent.capacity.status

# --- C-03 -------------------------------------------------------------------

# METADATA
# title: Consent covers only the recipients and purposes it names
# description: >-
#   Consent covers only the recipients and purposes it names. The destination
#   service (ODS code or service id) must be among the consented recipients and
#   the purpose must be direct care (referral). Anything else is a deny unless
#   an override applies.
# custom:
#   id: C-03
#   source: >-
#     Caldicott Principles (2020), principles 1 and 8; UK GDPR Art. 5(1)(b)
#     (purpose limitation)
deny contains {"id": "C-03", "message": msg} if {
	on_consent_route
	consent.decision == "given"
	not consented_recipient
	msg := sprintf(
		"consent.recipients names neither the service %q nor its organisation (ODS code %q): record the student's consent to share with this service, or refer to a service they agreed to",
		[service_id, object.get(input, ["service", "organization", "odsCode"], "")],
	)
}

deny contains {"id": "C-03", "message": msg} if {
	on_consent_route
	consent.decision == "given"
	not "direct-care" in consent.purposes
	msg := "consent.purposes does not include direct-care: a referral is direct care; record the student's consent for that purpose"
}

# A consented recipient is the service's id or its organisation's ODS code,
# which covers every service of that organisation.
consented_recipient if service.id in consent.recipients

consented_recipient if service.organization.odsCode in consent.recipients

satisfied contains {"id": "C-03", "message": msg} if {
	on_consent_route
	consent.decision == "given"
	msg := sprintf("consent.recipients covers the service %q and consent.purposes includes direct-care", [service.id])
}

# --- C-04 -------------------------------------------------------------------

# METADATA
# title: Consent covers only the data categories it names
# description: >-
#   Consent covers only the data categories it names (e.g. demographics,
#   needs, safety plan, risk formulation, trusted contact). Categories not
#   consented to are removed from the referral, not sent.
# custom:
#   id: C-04
#   source: >-
#     UUK & PAPYRUS (2022); Caldicott Principles (2020), principle 3 (use the
#     minimum necessary)
deny contains {"id": "C-04", "message": msg} if {
	on_consent_route
	consent.decision == "given"
	count(consented_categories) == 0
	msg := "consent.dataCategories is empty: the consent names no data that may be shared; record the categories the student agreed to"
}

satisfied contains {"id": "C-04", "message": msg} if {
	on_consent_route
	consent.decision == "given"
	count(consented_categories) > 0
	left_out := service_categories - consented_categories
	count(left_out) == 0
	msg := "consent.dataCategories covers every category the service needs"
}

satisfied contains {"id": "C-04", "message": msg} if {
	on_consent_route
	consent.decision == "given"
	count(consented_categories) > 0
	left_out := service_categories - consented_categories
	count(left_out) > 0
	msg := sprintf("consent.dataCategories leaves out %s: those categories are removed from the referral, not sent", [concat(", ", [c | some c in category_order; c in left_out])])
}

# The trusted contact leaves only with the student's consent to that category.
obligation contains {
	"type": "drop-trusted-contact",
	"rule": "C-04",
	"message": "student.trustedContact is not sent: the student did not consent to the trusted-contact category",
} if {
	input.record.student.trustedContact
	trusted_contact_not_consented
}

trusted_contact_not_consented if {
	on_consent_route
	not "trusted-contact" in consented_categories
}
