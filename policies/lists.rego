# The lists that an information-governance (IG) lead and the clinical safety
# officer keep. The rules read them from here and never spell them out
# themselves, so that adding a register, a role, a Schedule 1 paragraph or a
# risk pattern is an edit to this file and its tests (lists_test.rego), not
# to a rule.
package referral.lists

import rego.v2

# The recognised professional registers (L-02). A referrer may claim Art.
# 9(2)(h) only when referrer.registration.body is a register's code or one of
# its aliases (matched without regard to case) and referrer.registration.number
# matches the register's number pattern. `kind` is the limb of DPA 2018
# s. 11(1) that makes its registrants owe a duty of confidentiality:
# "statutory-regulator" (s. 11(1)(a), a health or social work professional)
# or "psa-accredited" (s. 11(1)(b), a register accredited by the Professional
# Standards Authority, whose registrants owe a duty of confidentiality).
registers := [
	{
		"code": "GMC",
		"aliases": ["General Medical Council"],
		"kind": "statutory-regulator",
		"number": `^[0-9]{7}$`,
		"examples": {"valid": ["1234567"], "invalid": ["123456", "GMC1234567"]},
	},
	{
		"code": "NMC",
		"aliases": ["Nursing and Midwifery Council"],
		"kind": "statutory-regulator",
		"number": `^[0-9]{2}[A-Z][0-9]{4}[A-Z]$`,
		"examples": {"valid": ["12A3456E"], "invalid": ["123456"]},
	},
	{
		"code": "HCPC",
		"aliases": ["Health and Care Professions Council"],
		"kind": "statutory-regulator",
		"number": `^[A-Z]{2,3}[0-9]{5,6}$`,
		"examples": {"valid": ["PYL12345", "OT123456"], "invalid": ["12345"]},
	},
	{
		"code": "SWE",
		"aliases": ["Social Work England"],
		"kind": "statutory-regulator",
		"number": `^SW[0-9]{1,6}$`,
		"examples": {"valid": ["SW123456"], "invalid": ["123456"]},
	},
	{
		"code": "BACP",
		"aliases": ["British Association for Counselling and Psychotherapy"],
		"kind": "psa-accredited",
		"number": `^[0-9]{5,7}$`,
		"examples": {"valid": ["123456", "412907"], "invalid": ["pending", "12"]},
	},
	{
		"code": "UKCP",
		"aliases": ["UK Council for Psychotherapy", "United Kingdom Council for Psychotherapy"],
		"kind": "psa-accredited",
		"number": `^[0-9]{4,8}$`,
		"examples": {"valid": ["2009123"], "invalid": ["n/a"]},
	},
	{
		"code": "BABCP",
		"aliases": ["British Association for Behavioural and Cognitive Psychotherapies"],
		"kind": "psa-accredited",
		"number": `^[0-9]{4,7}$`,
		"examples": {"valid": ["123456"], "invalid": ["member"]},
	},
	{
		"code": "NCPS",
		"aliases": ["National Counselling and Psychotherapy Society", "National Counselling Society"],
		"kind": "psa-accredited",
		"number": `^(NCS)?[0-9]{2}-?[0-9]{4,6}$`,
		"examples": {"valid": ["NCS12-03002", "1203002"], "invalid": ["x"]},
	},
]

# What each kind of register means in a decision: the limb of DPA 2018
# s. 11(1) that applies.
register_kinds := {
	"statutory-regulator": "a statutory regulator (DPA 2018 s. 11(1)(a))",
	"psa-accredited": "a register accredited by the Professional Standards Authority (DPA 2018 s. 11(1)(b))",
}

# The roles of the people who refer, decide and approve (O-01, R-01), and
# whether a role may approve a share without consent. The contract checks a
# role for its form only; a role not listed here is judged by the policies.
roles := {
	"mental-health-adviser": {"approves": false},
	"counsellor": {"approves": false},
	"wellbeing-practitioner": {"approves": false},
	"clinician": {"approves": false},
	"disability-adviser": {"approves": false},
	"other": {"approves": false},
	"head-of-wellbeing": {"approves": true},
	"safeguarding-lead": {"approves": true},
	"director-of-student-services": {"approves": true},
}

# The DPA 2018 Sch. 1 Part 2 paragraphs that the public-interest ground may
# rest on with Art. 9(2)(g) (L-01).
public_interest_paragraphs := {
	"para-10": "preventing or detecting unlawful acts",
	"para-17": "counselling",
	"para-18": "safeguarding of children and of individuals at risk",
}

# Risk categories and risk scores written into narrative fields (X-01). Each
# pattern is matched without regard to case; its examples must match and its
# counter-examples must not (lists_test.rego checks both). Symptom-severity
# scores and words such as "low mood" are not risk categories.
risk_patterns := [
	{
		"name": "risk category",
		"pattern": `(?i)\b(low|medium|moderate|high|very high|severe)[ -]risk\b`,
		"matches": ["HIGH RISK (score 21/27)", "assessed as medium-risk", "a low risk of harm"],
		"ignores": ["low mood", "PHQ-9 total 18", "exam mark 62%", "risk of harm is rising"],
	},
	{
		"name": "risk level",
		"pattern": `(?i)\brisk[ -]?(level|category|rating|status)\s*(:|=|is|of)?\s*(low|medium|moderate|high|severe)\b`,
		"matches": ["risk level: high", "Risk category = medium", "risk rating high"],
		"ignores": ["low mood", "the risk level is hard to judge", "PHQ-9 total 18"],
	},
	{
		"name": "risk score",
		"pattern": `(?i)\brisk[ -]?score\s*(:|=|is|of)?\s*[0-9]`,
		"matches": ["risk score 14", "Risk score: 21/27"],
		"ignores": ["PHQ-9 total 18", "exam mark 62%", "low mood"],
	},
]

# The FHIR resources of a referral message, as the mapping writes them
# (mappings/build.go), and what puts each in it, so that M-01 can refuse a
# receiver's MessageDefinition that demands what the policies would not send.
# A type carries:
#   always      how many every message holds (the Bundle itself counts as
#               one, as MessageDefinition.focus counts it);
#   categories  one more when any of these data categories is sent...
#   with        ...and the record has this (content.rego, message_fact):
#               "consent-decided" the student gave, refused or withdrew
#               consent (none when it was not sought); "safe-contact" the
#               student's safe-contact instructions or channels to avoid;
#               "gp-not-receiver" the GP practice is not the receiving
#               organisation (one Organization plays both roles).
# mappings' TestResourcesTable checks this table against every golden case.
# The Patient is always sent: the demographics category fills it in.
message_resources := {
	"Bundle": {"always": 1},
	"MessageHeader": {"always": 1},
	"ServiceRequest": {"always": 1},
	"Patient": {"always": 1},
	"PractitionerRole": {"always": 1},
	"Practitioner": {"always": 1},
	"Organization": {"always": 2, "categories": ["gp"], "with": "gp-not-receiver"},
	"Consent": {"with": "consent-decided"},
	"Flag": {"categories": ["contact", "trusted-contact"], "with": "safe-contact"},
	"CarePlan": {"categories": ["safety-plan"]},
}
