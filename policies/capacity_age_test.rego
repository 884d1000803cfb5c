# Tests of capacity and age (K-01, K-02, A-01), with the time boundaries:
# birthdays at midnight in London under GMT and BST, and 29 February.
package referral_test

import data.referral

# age_at(born, instant) is the student's age as the policies compute it.
age_at(born, instant) := a if {
	a := referral.age with input as at(consent_case({"student": {"dateOfBirth": born}}), instant)
}

# A Manchester student referred to a service for those 18 and over.
manchester_case(patch) := to(
	consent_case(object.union(
		{
			"institution": {"name": "University of Manchester", "ukprn": "10007798"},
			"consent": {"recipients": ["gm-student-mhs"]},
		},
		patch,
	)),
	gm_student_mhs,
)

# --- Age ----------------------------------------------------------------------

test_age_turns_at_midnight_gmt if {
	age_at("2008-11-20", "2026-11-19T23:59:59Z") == 17
	age_at("2008-11-20", "2026-11-20T00:00:00Z") == 18
}

test_age_turns_at_midnight_bst_which_is_23_00_utc if {
	age_at("2008-06-15", "2026-06-14T22:59:59Z") == 17
	age_at("2008-06-15", "2026-06-14T23:00:00Z") == 18
	age_at("2008-06-15", "2026-06-14T23:30:00Z") == 18
}

test_age_around_the_clock_changes if {
	# 29 March 2026 01:00 UTC clocks go forward: 23:30 UTC on the 28th is
	# still the 28th in London; on 24 October (BST) 23:30 UTC is the 25th.
	age_at("2008-03-29", "2026-03-28T23:30:00Z") == 17
	age_at("2008-10-25", "2026-10-24T23:30:00Z") == 18
}

test_age_29_february_birthday_counts_from_1_march if {
	age_at("2008-02-29", "2026-02-28T23:59:59Z") == 17
	age_at("2008-02-29", "2026-03-01T00:00:00Z") == 18
}

test_age_29_february_birthday_in_a_leap_year if {
	age_at("2008-02-29", "2028-02-28T12:00:00Z") == 19
	age_at("2008-02-29", "2028-02-29T00:00:00Z") == 20
}

test_age_birthday_today_decides_service_eligibility if {
	case := manchester_case({"student": {"dateOfBirth": "2008-06-15"}, "consent": {"recordedAt": "2026-06-01T10:00:00Z"}})
	denied_for(at(case, "2026-06-14T22:59:59Z"), "P-01", "eligibility.minAge")
	allowed(at(case, "2026-06-14T23:00:00Z"))
}

# --- A-01 -------------------------------------------------------------------

test_a01_reports_the_age_band if {
	message(decide(consent_case({})), "A-01") == "the student is 18 or over at the decision time (Europe/London)"
	message(decide(override_case({"student": {"dateOfBirth": "2009-02-28"}})), "A-01") == "the student is 16 or 17 at the decision time (Europe/London)"
	message(decide(consent_case({"student": {"dateOfBirth": "2011-01-01"}, "consent": competent})), "A-01") == "the student is under 16 at the decision time (Europe/London)"
}

test_a01_denies_a_missing_or_malformed_date_of_birth if {
	denied_for(without(consent_case({}), ["student/dateOfBirth"]), "A-01", "student.dateOfBirth is missing")
	denied_for(consent_case({"student": {"dateOfBirth": "30/09/2004"}}), "A-01", "student.dateOfBirth")
	denied_for(consent_case({"student": {"dateOfBirth": "2005-02-29"}}), "A-01", "student.dateOfBirth")
}

test_a01_denies_a_date_of_birth_after_the_decision if {
	denied_for(consent_case({"student": {"dateOfBirth": "2026-11-20"}}), "A-01", "after the decision date")
}

test_a01_under_16_consent_needs_a_competence_assessment if {
	case := consent_case({"student": {"dateOfBirth": "2010-11-20"}})
	denied_for(case, "A-01", "consent.competenceAssessed")
	denied_for(consent_case({"student": {"dateOfBirth": "2010-11-20"}, "consent": {"competenceAssessed": false}}), "A-01", "consent.competenceAssessed")
	allowed(consent_case({"student": {"dateOfBirth": "2010-11-20"}, "consent": competent}))
}

# A recorded competence (Gillick) assessment, by a named assessor, with its date.
competent := {"competenceAssessed": true, "competenceAssessedBy": "Dr Ana Ruiz", "competenceAssessedOn": "2026-11-18"}

test_a01_a_competence_assessment_names_its_assessor_and_date if {
	child := {"student": {"dateOfBirth": "2010-11-20"}}
	denied_for(consent_case(object.union(child, {"consent": {"competenceAssessed": true}})), "A-01", "consent.competenceAssessedBy is missing")
	d := decide(consent_case(object.union(child, {"consent": {"competenceAssessed": true}})))
	contains(message(d, "A-01"), "consent.competenceAssessedOn is missing")
	denied_for(consent_case(object.union(child, {"consent": object.union(competent, {"competenceAssessedOn": "2026-11-20"})})), "A-01", "consent.competenceAssessedOn is after the decision date")
}

test_a01_at_16_capacity_is_presumed_from_midnight_in_london if {
	case := consent_case({"student": {"dateOfBirth": "2010-11-20"}})
	denied_for(at(case, "2026-11-19T23:59:59Z"), "A-01", "consent.competenceAssessed")
	allowed(at(case, "2026-11-20T00:00:00Z"))
}

test_a01_under_18_without_consent_goes_through_safeguarding if {
	denied_for(best_interests_case({"student": {"dateOfBirth": "2009-02-28"}}), "A-01", "override.ground is \"best-interests\"")
	allowed(override_case({"student": {"dateOfBirth": "2009-02-28"}}))
}

test_a01_18_today_may_take_another_override_route if {
	case := best_interests_case({
		"student": {"dateOfBirth": "2008-11-19"},
		"consent": {"capacity": {"assessedOn": "2026-11-18"}},
		"override": {"decidedAt": "2026-11-18T20:00:00Z"},
	})
	allowed(case)
	denied_for(at(case, "2026-11-18T23:59:59Z"), "A-01", "under 18")
}

# --- K-01 -------------------------------------------------------------------

test_k01_capacity_is_presumed if {
	d := decide(consent_case({}))
	contains(message(d, "K-01"), "presumed")
}

test_k01_allows_a_recorded_assessment_of_lacking_capacity if {
	d := decide(best_interests_case({}))
	d.allow == true
	contains(message(d, "K-01"), "named, dated assessment")
}

test_k01_lacking_capacity_needs_a_named_assessor if {
	denied_for(without(best_interests_case({}), ["consent/capacity/assessedBy"]), "K-01", "consent.capacity.assessedBy")
}

test_k01_lacking_capacity_needs_an_assessment_date if {
	denied_for(without(best_interests_case({}), ["consent/capacity/assessedOn"]), "K-01", "consent.capacity.assessedOn is missing")
	denied_for(best_interests_case({"consent": {"capacity": {"assessedOn": "today"}}}), "K-01", "consent.capacity.assessedOn")
}

test_k01_assessment_may_not_postdate_the_decision_in_london if {
	case := best_interests_case({"consent": {"capacity": {"assessedOn": "2026-06-15"}}, "override": {"decidedAt": "2026-06-14T22:00:00Z"}, "referral": {"riskAssessment": {"assessedOn": "2026-06-14"}}})
	denied_for(at(case, "2026-06-14T22:59:59Z"), "K-01", "consent.capacity.assessedOn is after the decision date")
	allowed(at(case, "2026-06-14T23:30:00Z"))
}

# --- K-02 -------------------------------------------------------------------

test_k02_allows_best_interests_for_a_student_lacking_capacity if {
	d := decide(best_interests_case({}))
	d.allow == true
	d.route == "best-interests"
	contains(message(d, "K-02"), "best interests")
}

test_k02_is_not_taken_on_other_routes if {
	message(decide(consent_case({})), "K-02") == "the best-interests route is not taken"
}

test_k02_best_interests_needs_a_lack_of_capacity if {
	denied_by(best_interests_case({"consent": {"capacity": {"status": "has-capacity"}}}), "K-02", "consent.capacity.status is \"has-capacity\"")
	denied_by(without(best_interests_case({}), ["consent/capacity"]), "K-02", "consent.capacity.status is missing")
}

test_k02_best_interests_needs_the_justification_recorded if {
	denied_by(without(best_interests_case({}), ["override/grounds"]), "K-02", "override.grounds")
}
