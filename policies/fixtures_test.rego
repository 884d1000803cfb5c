# Fixtures for the policy tests: one valid record per route, the services
# they go to, and helpers to decide and read decisions. A test states only
# what it changes, by merging a patch into a valid record (object.union) or
# removing a field (json.remove).
package referral_test

import data.referral

decision_time := "2026-11-19T14:05:00Z"

# --- Services (as in gateway.example.yaml) ------------------------------------

u_cope := {
	"id": "u-cope",
	"name": "U-COPE self-harm pathway",
	"organization": {"name": "Mersey Care NHS Foundation Trust", "odsCode": "RW4"},
	"endpoint": "http://127.0.0.1:8081/fhir",
	"target": {"system": "https://fhir.nhs.uk/Id/dos-service-id", "value": "2000010001"},
	"dataCategories": ["demographics", "contact", "gp", "needs", "risk-formulation", "safety-plan", "context"],
	"eligibility": {
		"institutions": ["10006842", "10003957"],
		"needsAnyOf": ["self-harm"],
		"excludedNeeds": ["psychosis-concern"],
		"excludeUnderSecondaryCare": true,
		"routes": ["consent"],
	},
}

liverpool_liaison := {
	"id": "liverpool-liaison",
	"name": "Liverpool student mental health liaison service",
	"organization": {"name": "Mersey Care NHS Foundation Trust", "odsCode": "RW4"},
	"endpoint": "http://127.0.0.1:8081/fhir",
	"target": {"system": "https://fhir.nhs.uk/Id/dos-service-id", "value": "2000010002"},
	"dataCategories": ["demographics", "contact", "gp", "needs", "risk-formulation", "safety-plan", "trusted-contact", "context"],
	"eligibility": {"institutions": ["10006842", "10003957"]},
}

gm_student_mhs := {
	"id": "gm-student-mhs",
	"name": "Greater Manchester student mental health service",
	"organization": {"name": "Greater Manchester Mental Health NHS Foundation Trust", "odsCode": "RXV"},
	"endpoint": "http://127.0.0.1:8081/fhir",
	"target": {"system": "https://fhir.nhs.uk/Id/dos-service-id", "value": "2000010003"},
	"dataCategories": ["demographics", "contact", "gp", "needs", "risk-formulation", "safety-plan", "trusted-contact", "context"],
	"eligibility": {"institutions": ["10007798", "10004180", "10005791", "10006841"], "minAge": 18},
}

# --- Records ----------------------------------------------------------------

# A third-year Liverpool student who self-harms, referred to U-COPE with
# consent (docs: examples/case-record.liverpool-u-cope.json).
consent_record := {
	"schemaVersion": "1",
	"caseId": "UOL-SS-2026-04417",
	"institution": {"name": "University of Liverpool", "ukprn": "10006842"},
	"referrer": {
		"name": "Priya Raman",
		"role": "mental-health-adviser",
		"registration": {"body": "BACP", "number": "412907"},
	},
	"student": {
		"nhsNumber": "9000000009",
		"name": {"given": ["Jordan"], "family": "Okafor"},
		"dateOfBirth": "2004-09-30",
		"gender": "male",
		"contact": {"email": "j.okafor@student.liverpool.example"},
		"address": {"lines": ["Room 14, Crown Place"], "city": "Liverpool", "postcode": "L7 3QL"},
		"gpPractice": {"odsCode": "N82054"},
	},
	"referral": {
		"service": "u-cope",
		"priority": "routine",
		"presentingNeeds": [{"code": "self-harm", "text": "I burn myself when I feel overwhelmed"}],
		"summary": "Third-year student, self-harm since the summer.",
		"riskFormulation": "Self-harm relieves shame after setbacks; no intent to die; friends protective.",
		"safetyPlan": {"status": "in-place", "summary": "Texts Shout, tells his flatmate."},
		"currentSupport": ["university-counselling"],
		"underSecondaryCare": false,
		"studentWishes": "Would like the U-COPE course.",
	},
	"consent": {
		"decision": "given",
		"recipients": ["u-cope"],
		"purposes": ["direct-care"],
		"dataCategories": ["demographics", "contact", "gp", "needs", "risk-formulation", "safety-plan"],
		"recordedAt": "2026-11-18T11:20:00Z",
		"expiresAt": "2027-05-18T00:00:00Z",
		"method": "electronic",
		"recordedBy": "Priya Raman",
		"capacity": {"status": "presumed"},
	},
}

# The same student, an adult at risk who cannot be reached, shared with the
# liaison service under the safeguarding condition.
override_record := object.union(object.remove(consent_record, {"consent"}), {
	"referral": {
		"service": "liverpool-liaison",
		"priority": "urgent",
		"riskAssessment": {"assessedOn": "2026-11-19", "reference": "RA-1021", "seriousConcern": true},
	},
	"consent": {"decision": "not-sought"},
	"override": {
		"ground": "safeguarding",
		"adultAtRisk": true,
		"grounds": "Disclosed a plan to end his life this weekend and is not answering.",
		"consentSought": {"attempted": true, "at": "2026-11-19T13:40:00Z", "outcome": "unreachable"},
		"decidedBy": {"name": "Priya Raman", "role": "mental-health-adviser"},
		"approvedBy": {"name": "Helen Doyle", "role": "safeguarding-lead"},
		"decidedAt": "2026-11-19T13:55:00Z",
		"lawfulBasis": {"article6": "6(1)(e)", "article9": "9(2)(g)", "dpaSchedule1": "para-18"},
		"studentInformed": {"status": "will-inform", "reasonDelayed": "He is not answering; he will be told when the crisis team reaches him."},
	},
})

# --- Inputs -------------------------------------------------------------------

# consent_case(patch) is the consent-route input with patch merged into the
# record; override_case(patch) the same for the override route.
consent_case(patch) := {"record": object.union(consent_record, patch), "service": u_cope, "at": decision_time}

override_case(patch) := {"record": object.union(override_record, patch), "service": liverpool_liaison, "at": decision_time}

# The other override grounds, each valid as it stands: a student assessed as
# lacking capacity (best interests, vital interests), and a capable student
# who refused (public interest).
lacking_capacity := {"status": "lacks-capacity", "assessedBy": "Dr Alex Reed", "assessedOn": "2026-11-19"}

best_interests_case(patch) := object.union(
	replaced(
		override_case({
			"consent": {"capacity": lacking_capacity},
			"override": {"ground": "best-interests", "consentSought": {"attempted": false, "outcome": "lacks-capacity"}},
		}),
		"override/lawfulBasis", {"article6": "6(1)(e)", "article9": "9(2)(h)"},
	),
	{"record": patch},
)

vital_interests_case(patch) := object.union(
	replaced(
		override_case({
			"consent": {"capacity": lacking_capacity},
			"override": {"ground": "vital-interests", "adultAtRisk": false},
		}),
		"override/lawfulBasis", {"article6": "6(1)(d)", "article9": "9(2)(c)"},
	),
	{"record": patch},
)

public_interest_case(patch) := object.union(
	replaced(
		override_case({
			"consent": {"decision": "refused", "recordedAt": "2026-11-19T13:40:00Z", "method": "verbal", "recordedBy": "Priya Raman"},
			"override": {"ground": "public-interest", "adultAtRisk": false, "consentSought": {"outcome": "refused"}},
		}),
		"override/lawfulBasis", {"article6": "6(1)(e)", "article9": "9(2)(g)", "dpaSchedule1": "para-10"},
	),
	{"record": patch},
)

# at(case, instant) decides the case at another time; to(case, service) sends
# it to another service.
at(case, instant) := object.union(case, {"at": instant})

to(case, service) := object.union(object.remove(case, {"service"}), {
	"service": service,
	"record": {"referral": {"service": service.id}},
})

# without(case, paths) removes fields of the record ("consent/expiresAt").
without(case, paths) := json.remove(case, [concat("/", ["record", p]) | some p in paths])

# replaced(case, path, value) sets a field of the record whole, where
# object.union would merge into it.
replaced(case, path, value) := json.patch(case, [{"op": "add", "path": concat("/", ["/record", path]), "value": value}])

# --- Reading decisions --------------------------------------------------------

decide(case) := d if {
	d := referral.decision with input as case
}

# The decision holds sets (decision.rego); these read them as the gateway
# presents them: one message per rule id, its messages joined with "; ".
results(d) := d.deny | d.satisfied

rule_ids(d) := {r.id | some r in results(d)}

deny_ids(d) := {r.id | some r in d.deny}

message(d, id) := concat("; ", messages) if {
	messages := [r.message | some r in results(d); r.id == id]
	count(messages) > 0
}

effect(d, id) := "deny" if id in deny_ids(d)

effect(d, id) := "obligation" if {
	some r in d.satisfied
	r.id == id
	some o in d.obligations
	o.rule == id
}

effect(d, id) := "allow" if {
	some r in d.satisfied
	r.id == id
	not obligated(d, id)
}

obligated(d, id) if {
	some o in d.obligations
	o.rule == id
}

# denied_for(case, id, field) holds when the case is denied by exactly the
# rule id, with a message naming field.
denied_for(case, id, field) if {
	d := decide(case)
	d.allow == false
	deny_ids(d) == {id}
	contains(message(d, id), field)
}

# denied_by(case, id, field) holds when the case is denied, the rule id among
# the failing rules, with a message naming field.
denied_by(case, id, field) if {
	d := decide(case)
	d.allow == false
	id in deny_ids(d)
	contains(message(d, id), field)
}

# allowed(case) holds when the case is allowed.
allowed(case) if decide(case).allow == true

obligations(d, type) := [o | some o in d.obligations; o.type == type]

# Every rule id a consent-route allow lists, and an override-route allow.
consent_rules := {"A-01", "C-01", "C-02", "C-03", "C-04", "E-01", "K-01", "K-02", "L-01", "L-02", "M-01", "N-01", "P-01", "R-01", "S-01", "T-01", "X-01", "X-02"}

override_rules := {"A-01", "C-01", "E-01", "K-01", "K-02", "L-01", "L-02", "M-01", "N-01", "O-01", "O-02", "O-03", "O-04", "P-01", "R-01", "S-01", "T-01", "X-01", "X-02"}
