# Tests of record and tell (R-01, T-01, S-01, N-01).
package referral_test

# --- R-01 -------------------------------------------------------------------

test_r01_every_allowed_decision_is_recorded if {
	d := decide(consent_case({}))
	contains(message(d, "R-01"), "recorded")
	d.route == "consent"
	d.recipient.service == "u-cope"
}

test_r01_the_referrer_role_is_one_the_ig_lead_lists if {
	d := decide(consent_case({"referrer": {"role": "personal-tutor"}}))
	deny_ids(d) == {"R-01"}
	contains(message(d, "R-01"), "referrer.role is missing or not a role the IG lead lists")
	not contains(message(d, "R-01"), "personal-tutor")
	allowed(consent_case({"referrer": {"role": "personal-tutor"}})) with data.referral.lists.roles as {"personal-tutor": {"approves": false}}
}

test_r01_denies_what_it_could_not_record if {
	denied_for(without(consent_case({}), ["caseId"]), "R-01", "caseId")
	denied_for(without(consent_case({}), ["referrer/name"]), "R-01", "referrer.name")
	denied_for(to(liaison_case({"institution": {"ukprn": ""}}), object.remove(liverpool_liaison, {"eligibility"})), "R-01", "institution.ukprn")
	denied_for(at(consent_case({}), "2026-11-19 14:05"), "R-01", "input.at")
}

# --- T-01 -------------------------------------------------------------------

test_t01_a_consenting_student_is_told if {
	d := decide(consent_case({}))
	[o.rule | some o in obligations(d, "notify-student")] == ["T-01"]
	contains(obligations(d, "notify-student")[0].message, "before the share")
}

test_t01_a_student_who_will_be_told_is_told_when_safe if {
	d := decide(override_case({}))
	contains(obligations(d, "notify-student")[0].message, "as soon as it is safe")
	effect(d, "T-01") == "obligation"
}

test_t01_a_student_already_informed_needs_no_notice if {
	d := decide(override_case({"override": {"studentInformed": {"status": "informed"}}}))
	d.allow == true
	obligations(d, "notify-student") == []
	effect(d, "T-01") == "allow"
}

test_t01_will_inform_needs_a_reason_for_the_delay if {
	denied_for(replaced(override_case({}), "override/studentInformed", {"status": "will-inform"}), "T-01", "override.studentInformed.reasonDelayed is missing but override.studentInformed.status is \"will-inform\"")
	allowed(override_case({"override": {"studentInformed": {"status": "informed"}}}))
}

test_t01_a_delay_needs_a_reason if {
	denied_for(replaced(override_case({}), "override/studentInformed", {"status": "not-informed"}), "T-01", "override.studentInformed.reasonDelayed")
	d := decide(override_case({"override": {"studentInformed": {"status": "not-informed", "reasonDelayed": "Telling him now would raise the risk."}}}))
	d.allow == true
	count(obligations(d, "notify-student")) == 1
}

test_t01_a_share_without_consent_records_whether_the_student_was_told if {
	denied_for(without(override_case({}), ["override/studentInformed"]), "T-01", "override.studentInformed.status is missing")
	denied_for(override_case({"override": {"studentInformed": {"status": "later"}}}), "T-01", "override.studentInformed.status is \"later\"")
}

# --- S-01 -------------------------------------------------------------------

optional_fields := [
	"student/nhsNumber", "student/gender", "student/contact", "student/address",
	"student/gpPractice", "referral/summary", "referral/underSecondaryCare",
]

test_s01_a_referral_is_not_refused_for_optional_fields if {
	d := decide(without(consent_case({}), optional_fields))
	d.allow == true
	contains(message(d, "S-01"), "student.nhsNumber")
	contains(message(d, "S-01"), "student.gpPractice")
	d.dataCategories == {"demographics", "needs", "risk-formulation", "safety-plan"}
}

test_s01_an_override_is_not_refused_for_optional_fields if {
	allowed(without(override_case({}), optional_fields))
}

test_s01_notes_when_nothing_optional_is_missing if {
	message(decide(consent_case({})), "S-01") == "no optional field is missing"
}

# --- N-01 -------------------------------------------------------------------

test_n01_the_opt_out_does_not_apply_to_direct_care if {
	d := decide(consent_case({}))
	d.allow == true
	message(d, "N-01") == "a direct-care referral: the national data opt-out does not apply"
	allowed(override_case({}))
}

test_n01_reuse_for_research_would_be_subject_to_the_opt_out if {
	d := decide(consent_case({"consent": {"purposes": ["direct-care", "research"]}}))
	d.allow == true
	contains(message(d, "N-01"), "evaluation or research")
}
