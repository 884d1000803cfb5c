# The sharing decision about one case record.
#
# Every rule of the sharing principles (docs: sharing-principles.md) lives in
# one of the theme files of this package and adds to three sets:
#
#   deny        {"id", "message"}: a principle that fails; one deny stops the share
#   satisfied   {"id", "message"}: a principle that was checked and holds
#   obligation  {"type", "rule", ...}: what the gateway must do before sending
#
# This file turns those sets into the decision document. It holds no sharing
# rule of its own.
#
# INPUT (built by the gateway's OPA adapter, gateway/opa):
#
#   input.record   the case record exactly as gateway.CaseRecord marshals it to
#                  JSON: camelCase names, optional fields absent rather than
#                  empty (docs: case-record.md). `student`, `referral` and
#                  `consent` are objects; `override` is absent on the consent
#                  route and an object on the override route.
#   input.service  the registry entry of the service named in
#                  record.referral.service, as gateway.Service marshals it:
#                  {"id", "name", "organization": {"name", "odsCode"},
#                   "dataCategories": [...], "eligibility": {"institutions",
#                   "needsAnyOf", "excludedNeeds", "excludeUnderSecondaryCare",
#                   "routes", "minAge", "maxAge"}, ...}
#   input.at       the decision time, RFC 3339 in UTC ("2026-11-19T14:05:00Z").
#                  Ages and dates are taken in Europe/London at this instant.
#   input.definition  what the receiver's MessageDefinition demands:
#                  {"url", "focus": [{"code": FHIR resource type, "min": n,
#                   "max": "n" or "*"}]}; absent when there is none or only
#                  its URL is known (a definition pinned in the registry).
#
# OUTPUT: data.referral.decision
#
#   {"allow": bool, "route": "consent" | override ground,
#    "deny": {{"id", "message"}},          every failing rule; empty on an allow
#    "satisfied": {{"id", "message"}},     every rule checked; empty on a deny
#    "obligations": {{"type", "rule", "fields"?, "categories"?, "message"?}},
#    "lawfulBases": {"article6", "article9", "dpaSchedule1"?},
#    "dataCategories": {...}, "withheldCategories": {...},
#    "recipient": {"service", "odsCode", "name"}}
#
# The document holds sets, as the rules make them. The gateway presents them
# (gateway/opa, result.go): one entry per rule id in id order, its messages
# joined with "; ", effect "deny", "allow" or "obligation" (a rule that
# imposed an obligation); obligations sorted by rule then type; the data
# categories in the vocabulary's order. Grouping and sorting are not sharing
# rules, and in Rego they cost more than the rules themselves.
#
package referral

import rego.v2

# The parts of the input the rules read by name: `consent.method` is
# input.record.consent.method. A field the record leaves out is undefined, and
# `not` holds for it: `not consent.method in consent_methods` holds when the
# record has no consent.method (rego.v2 negation).
import input.record.consent
import input.record.override

# `overriding` in a rule: the record takes the override route (it has an
# override). Being a name for input.record.override, it lets OPA skip the
# override route's rules on the consent route without evaluating them.
import input.record.override as overriding

# --- Shared facts about the input ---------------------------------------

# The route is "consent" when there is no override, otherwise its ground.
default route := "consent"

route := object.get(override, "ground", "") if overriding

on_consent_route if not overriding

# The grounds an override may name.
override_grounds := {"safeguarding", "vital-interests", "best-interests", "public-interest"}

# A route exists when the student gave consent on the consent route, or the
# override names a known ground. Whether the route holds is for the rules.
route_exists if {
	on_consent_route
	consent.decision == "given"
}

route_exists if {
	overriding
	route in override_grounds
}

# The decision time in nanoseconds since the epoch; undefined when input.at is
# missing or not RFC 3339, which R-01 denies.
at_ns := time.parse_rfc3339_ns(input.at)

# Today's date in Europe/London at the decision time, as [year, month, day].
london_today := time.date([at_ns, "Europe/London"])

# filled(s) holds for a string with something other than white space in it.
# A missing field is not filled: `not filled(consent.recordedBy)` holds when
# the record leaves consent.recordedBy out.
filled(s) if {
	is_string(s)
	trim_space(s) != ""
}

# has(obj, key) holds when obj has key, whatever its value (false and null
# included), as `key in object.keys(obj)` does without building the set of
# keys.
has(obj, key) if {
	_ = obj[key]
}

# valid_instant(s) holds for an RFC 3339 time.
valid_instant(s) if {
	is_string(s)
	time.parse_rfc3339_ns(s)
}

# date_of(s) is [year, month, day] of a YYYY-MM-DD date; undefined otherwise.
date_of(s) := time.date(time.parse_ns("2006-01-02", s)) if {
	is_string(s)
	regex.match(`^[0-9]{4}-[0-9]{2}-[0-9]{2}$`, s)
}

# field(path) is the record's value at a dotted path ("consent.method"), or
# null when it is absent; messages quote it with shown(field(path)).
field(path) := object.get(input, array.concat(["record"], split(path, ".")), null)

# shown(x) is how a message quotes a field's value.
shown(x) := "missing" if x == null

shown(x) := json.marshal(x) if x != null

# --- The decision -----------------------------------------------------------

# METADATA
# title: The sharing decision
# description: >-
#   The document the gateway acts on and records (R-01): allow only when a
#   route exists and no rule denies.
# entrypoint: true
decision := {
	"allow": allow,
	"route": route,
	"deny": deny,
	"satisfied": satisfied_on_allow,
	"obligations": obligations_on_allow,
	"lawfulBases": lawful_bases,
	"dataCategories": data_categories,
	"withheldCategories": withheld_on_allow,
	"recipient": recipient,
}

default allow := false

allow if {
	route_exists
	count(deny) == 0
}

# An allow lists every rule checked; a deny only the rules that failed.
default satisfied_on_allow := set()

satisfied_on_allow := satisfied if allow

# Obligations bind only an allow: on a deny nothing is sent.
default obligations_on_allow := set()

obligations_on_allow := obligation if allow

# The lawful bases the share rests on (L-01); none on a deny.
default lawful_bases := {}

lawful_bases := {"article6": "6(1)(a)", "article9": "9(2)(a)"} if {
	allow
	on_consent_route
}

lawful_bases := object.filter(override.lawfulBasis, {"article6", "article9", "dpaSchedule1"}) if {
	allow
	overriding
}

# The categories that will actually leave; none on a deny.
default data_categories := set()

data_categories := sent_categories if allow

# The categories the service needs and the record holds that the student's
# consent withholds (M-02); the referral says so. None on a deny.
default withheld_on_allow := set()

withheld_on_allow := withheld_categories if allow

recipient := {
	"service": object.get(input, ["service", "id"], ""),
	"odsCode": object.get(input, ["service", "organization", "odsCode"], ""),
	"name": object.get(input, ["service", "name"], ""),
}
