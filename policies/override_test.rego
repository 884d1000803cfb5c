# Tests of sharing without consent (O-01..O-04) and lawful bases (L-01, L-02).
package referral_test

# --- O-01 -------------------------------------------------------------------

test_o01_allows_a_documented_approved_override if {
	d := decide(override_case({}))
	d.allow == true
	contains(message(d, "O-01"), "approved by a named safeguarding-lead")
}

test_o01_every_override_ground_is_allowed_when_valid if {
	allowed(best_interests_case({}))
	allowed(vital_interests_case({}))
	allowed(public_interest_case({}))
}

test_o01_denies_an_unknown_ground if {
	denied_for(override_case({"override": {"ground": "duty-of-care"}}), "O-01", "override.ground is \"duty-of-care\"")
	denied_by(without(override_case({}), ["override/ground"]), "O-01", "override.ground is missing")
}

test_o01_denies_without_a_serious_concern if {
	# The safeguarding condition (O-04) needs one too.
	denied_by(override_case({"referral": {"riskAssessment": {"seriousConcern": false}}}), "O-01", "referral.riskAssessment.seriousConcern")
	denied_by(without(override_case({}), ["referral/riskAssessment"]), "O-01", "referral.riskAssessment.seriousConcern")
}

test_o01_best_interests_also_needs_a_serious_concern if {
	denied_for(best_interests_case({"referral": {"riskAssessment": {"seriousConcern": false}}}), "O-01", "referral.riskAssessment.seriousConcern")
}

test_o01_denies_without_a_documented_assessment if {
	denied_for(without(override_case({}), ["referral/riskAssessment/assessedOn"]), "O-01", "referral.riskAssessment.assessedOn")
	denied_for(override_case({"referral": {"riskAssessment": {"assessedOn": "last week"}}}), "O-01", "referral.riskAssessment.assessedOn")
}

test_o01_denies_without_grounds if {
	denied_for(without(override_case({}), ["override/grounds"]), "O-01", "override.grounds")
	denied_for(override_case({"override": {"grounds": "  "}}), "O-01", "override.grounds")
}

test_o01_denies_without_a_named_decider if {
	denied_for(without(override_case({}), ["override/decidedBy/name"]), "O-01", "override.decidedBy.name")
	denied_for(without(override_case({}), ["override/decidedBy/role"]), "O-01", "override.decidedBy.role")
	d := decide(replaced(override_case({}), "override/decidedBy", null))
	deny_ids(d) == {"O-01"}
	contains(message(d, "O-01"), "override.decidedBy.name")
	contains(message(d, "O-01"), "override.decidedBy.role")
}

test_o01_denies_without_a_senior_approver if {
	denied_for(without(override_case({}), ["override/approvedBy"]), "O-01", "override.approvedBy.name")
	denied_for(replaced(override_case({}), "override/approvedBy", null), "O-01", "override.approvedBy.role is missing")
	d := decide(override_case({"override": {"approvedBy": {"role": "personal-tutor"}}}))
	deny_ids(d) == {"O-01"}
	contains(message(d, "O-01"), "not a role that may approve")
	not contains(message(d, "O-01"), "personal-tutor") # R-01: no value from the record
}

test_o01_roles_are_the_ig_leads_list if {
	# A role the IG lead adds to lists.roles may decide or approve; one that
	# is not listed is refused by the policies, not the contract.
	roles := object.union(data.referral.lists.roles, {"deputy-head-of-wellbeing": {"approves": true}})
	allowed(override_case({"override": {"approvedBy": {"role": "deputy-head-of-wellbeing"}}})) with data.referral.lists.roles as roles
	denied_for(override_case({"override": {"decidedBy": {"role": "personal-tutor"}}}), "O-01", "override.decidedBy.role is missing or not a role")
	allowed(override_case({"override": {"decidedBy": {"role": "personal-tutor"}}})) with data.referral.lists.roles as object.union(roles, {"personal-tutor": {"approves": false}})
}

test_o01_approval_comes_from_a_second_person if {
	denied_for(override_case({"override": {"approvedBy": {"name": " priya raman"}}}), "O-01", "second person")
}

test_o01_every_approver_role_is_accepted if {
	every role in ["head-of-wellbeing", "safeguarding-lead", "director-of-student-services"] {
		allowed(override_case({"override": {"approvedBy": {"role": role}}}))
	}
}

test_o01_denies_without_a_decision_time if {
	denied_for(without(override_case({}), ["override/decidedAt"]), "O-01", "override.decidedAt is missing")
	denied_for(override_case({"override": {"decidedAt": "2026-11-19T14:05:01Z"}}), "O-01", "override.decidedAt is after the decision time")
}

# --- O-02 -------------------------------------------------------------------

test_o02_does_not_apply_without_a_refusal if {
	d := decide(override_case({}))
	message(d, "O-02") == "the student did not refuse: no capable refusal to respect"
}

test_o02_allows_a_documented_public_interest_against_a_capable_refusal if {
	d := decide(public_interest_case({}))
	d.allow == true
	contains(message(d, "O-02"), "public-interest")
}

test_o02_allows_safeguarding_after_an_earlier_refusal if {
	# The student refused last month; today they cannot be reached.
	d := decide(override_case({"consent": {"decision": "refused", "recordedAt": "2026-10-01T10:00:00Z", "method": "written", "recordedBy": "Priya Raman"}}))
	d.allow == true
	contains(message(d, "O-02"), "safeguarding")
}

test_o02_a_capable_refusal_is_not_overridden_on_vital_interests if {
	case := vital_interests_case({
		"consent": {"decision": "refused", "capacity": {"status": "presumed"}},
		"override": {"consentSought": {"outcome": "refused"}},
	})
	d := decide(case)
	d.allow == false
	deny_ids(d) == {"O-02", "O-03"}
	contains(message(d, "O-02"), "override.lawfulBasis.article9 is \"9(2)(c)\"")
	contains(message(d, "O-02"), "override.ground is \"vital-interests\"")
}

test_o02_a_capable_refusal_is_not_overridden_in_best_interests if {
	case := best_interests_case({
		"consent": {"capacity": {"status": "has-capacity"}},
		"override": {"consentSought": {"attempted": true, "at": "2026-11-19T13:40:00Z", "outcome": "refused"}},
	})
	denied_by(case, "O-02", "override.ground is \"best-interests\"")
}

test_o02_a_risk_to_others_lifts_only_the_refusal_rule if {
	refused := {
		"consent": {"decision": "refused", "recordedAt": "2026-11-19T13:00:00Z", "method": "verbal", "recordedBy": "Priya Raman"},
		"override": {"ground": "best-interests", "consentSought": {"outcome": "refused"}},
	}
	denied_by(override_case(refused), "O-02", "the student has capacity and refused")
	d := decide(override_case(object.union(refused, {"referral": {"riskToOthers": true}})))
	not "O-02" in deny_ids(d)
	"K-02" in deny_ids(d) # every other condition still applies
	message(decide(public_interest_case({"referral": {"riskToOthers": true}})), "O-02") == "the capable student refused, but referral.riskToOthers is true: the student is not a risk only to themself"
	denied_by(override_case(object.union(refused, {"referral": {"riskToOthers": false}})), "O-02", "the student has capacity and refused")
}

test_o02_a_refusal_by_a_student_without_capacity_is_judged_elsewhere if {
	d := decide(vital_interests_case({"consent": {"decision": "refused"}}))
	d.allow == true
	contains(message(d, "O-02"), "not recorded as having capacity")
}

# --- O-03 -------------------------------------------------------------------

test_o03_allows_vital_interests_for_a_student_lacking_capacity if {
	d := decide(vital_interests_case({}))
	d.allow == true
	d.route == "vital-interests"
	d.lawfulBases == {"article6": "6(1)(d)", "article9": "9(2)(c)"}
	contains(message(d, "O-03"), "life or death")
}

test_o03_is_not_cited_elsewhere if {
	message(decide(override_case({})), "O-03") == "vital interests (Art. 9(2)(c)) is not cited"
}

test_o03_denies_vital_interests_for_a_student_with_capacity if {
	denied_for(vital_interests_case({"consent": {"capacity": {"status": "presumed"}}}), "O-03", "consent.capacity.status is \"presumed\"")
	denied_for(without(vital_interests_case({}), ["consent/capacity"]), "O-03", "consent.capacity.status is missing")
}

test_o03_denies_vital_interests_without_a_life_or_death_matter if {
	d := decide(vital_interests_case({"referral": {"riskAssessment": {"seriousConcern": false}}}))
	deny_ids(d) == {"O-01", "O-03"}
}

test_o03_vital_interests_rests_on_article_9_2_c if {
	d := decide(vital_interests_case({"override": {"lawfulBasis": {"article9": "9(2)(h)"}}}))
	deny_ids(d) == {"O-03", "L-01"}
	contains(message(d, "O-03"), "override.lawfulBasis.article9 is \"9(2)(h)\"")
}

# O-03 limits when 9(2)(c) may be cited; it adds no other restriction: the
# safeguarding and best-interests grounds may cite it where O-03 holds.
test_o03_article_9_2_c_on_other_grounds_where_o03_holds if {
	vital := {"article6": "6(1)(d)", "article9": "9(2)(c)"}
	safeguarding := replaced(override_case({"consent": {"capacity": lacking_capacity}}), "override/lawfulBasis", vital)
	d := decide(safeguarding)
	d.allow == true
	contains(message(d, "O-03"), "lacking capacity")
	best := replaced(best_interests_case({}), "override/lawfulBasis", vital)
	allowed(best)
	denied_for(replaced(override_case({}), "override/lawfulBasis", vital), "O-03", "consent.capacity.status is missing")
	denied_by(replaced(best_interests_case({"referral": {"riskAssessment": {"seriousConcern": false}}}), "override/lawfulBasis", vital), "O-03", "life or death")
}

test_o03_article_9_2_c_is_not_a_public_interest_condition if {
	case := public_interest_case({
		"consent": {"decision": "not-sought", "capacity": lacking_capacity},
		"override": {"consentSought": {"outcome": "lacks-capacity"}, "lawfulBasis": {"article9": "9(2)(c)"}},
	})
	denied_for(without(case, ["override/lawfulBasis/dpaSchedule1"]), "L-01", "override.ground \"public-interest\" may cite only 9(2)(g)")
}

# --- O-04 -------------------------------------------------------------------

test_o04_allows_safeguarding_an_adult_at_risk if {
	d := decide(override_case({}))
	d.allow == true
	contains(message(d, "O-04"), "unreachable")
}

test_o04_allows_safeguarding_a_student_under_18 if {
	allowed(override_case({"student": {"dateOfBirth": "2009-02-28"}, "override": {"adultAtRisk": false}}))
}

test_o04_a_refusal_counts_for_a_student_under_18_only_with_a_reason if {
	child := {"student": {"dateOfBirth": "2009-02-28"}, "override": {"consentSought": {"outcome": "refused"}}}
	denied_for(override_case(child), "O-04", "override.consentSought.outcome is \"refused\"")
	allowed(override_case(object.union(child, {"override": {"consentSought": {"reason": "Relying on the refusal would leave him without protection tonight."}}})))
}

test_o04_lacks_capacity_is_a_reason_consent_is_not_relied_on if {
	lacking := {"consent": {"capacity": lacking_capacity}, "override": {"consentSought": {"attempted": false, "outcome": "lacks-capacity"}}}
	d := decide(override_case(lacking))
	d.allow == true
	contains(message(d, "O-04"), "lacks-capacity")
	d2 := decide(override_case(object.union(lacking, {"consent": {"capacity": {"status": "presumed"}}})))
	"O-04" in deny_ids(d2)
	"C-01" in deny_ids(d2)
}

test_o04_denies_an_adult_not_at_risk if {
	denied_for(override_case({"override": {"adultAtRisk": false}}), "O-04", "override.adultAtRisk")
	denied_for(without(override_case({}), ["override/adultAtRisk"]), "O-04", "override.adultAtRisk")
}

test_o04_a_refusal_does_not_count_for_an_adult if {
	denied_for(override_case({"override": {"consentSought": {"outcome": "refused"}}}), "O-04", "override.consentSought.outcome is \"refused\"")
}

test_o04_not_safe_to_ask_counts_with_a_reason if {
	allowed(override_case({"override": {"consentSought": {"attempted": false, "outcome": "not-safe-to-ask", "reason": "Asking would warn the person harming him."}}}))
	d := decide(override_case({"override": {"consentSought": {"attempted": false, "outcome": "not-safe-to-ask"}}}))
	deny_ids(d) == {"C-01", "O-04"}
}

test_o04_denies_without_a_serious_concern if {
	denied_by(override_case({"referral": {"riskAssessment": {"seriousConcern": false}}}), "O-04", "referral.riskAssessment.seriousConcern")
}

test_l01_safeguarding_rests_on_9_2_g_and_para_18_or_9_2_c if {
	denied_for(override_case({"override": {"lawfulBasis": {"dpaSchedule1": "para-6"}}}), "L-01", "override.lawfulBasis.dpaSchedule1 is \"para-6\": Art. 9(2)(g) on the safeguarding ground rests on DPA 2018 Sch. 1 para-18")
	case := replaced(override_case({}), "override/lawfulBasis", {"article6": "6(1)(e)", "article9": "9(2)(h)"})
	denied_for(case, "L-01", "override.ground \"safeguarding\" may cite only 9(2)(c) or 9(2)(g)")
}

test_o04_citing_para_18_on_another_ground_needs_its_conditions if {
	denied_for(public_interest_case({"override": {"lawfulBasis": {"dpaSchedule1": "para-18"}}}), "O-04", "override.adultAtRisk")
	denied_by(best_interests_case({"override": {"adultAtRisk": false, "lawfulBasis": {"article9": "9(2)(g)", "dpaSchedule1": "para-18"}}}), "O-04", "override.adultAtRisk")
	allowed(best_interests_case({"override": {"adultAtRisk": true, "lawfulBasis": {"article9": "9(2)(g)", "dpaSchedule1": "para-18"}}}))
}

# --- L-01 -------------------------------------------------------------------

test_l01_consent_route_records_consent_bases if {
	d := decide(consent_case({}))
	d.lawfulBases == {"article6": "6(1)(a)", "article9": "9(2)(a)"}
	contains(message(d, "L-01"), "6(1)(a)")
}

test_l01_override_records_its_bases if {
	d := decide(override_case({}))
	message(d, "L-01") == "override.lawfulBasis names Art. 6(1)(e) and Art. 9(2)(g) with DPA 2018 Sch. 1 para-18, which the safeguarding ground may cite"
	message(decide(best_interests_case({})), "L-01") == "override.lawfulBasis names Art. 6(1)(e) and Art. 9(2)(h), which the best-interests ground may cite"
}

test_l01_denies_an_override_without_bases if {
	d := decide(replaced(public_interest_case({}), "override/lawfulBasis", null))
	d.allow == false
	deny_ids(d) == {"L-01"}
	contains(message(d, "L-01"), "override.lawfulBasis.article6 is missing")
	contains(message(d, "L-01"), "override.lawfulBasis.article9 is missing")
}

test_l01_denies_a_malformed_basis if {
	denied_for(public_interest_case({"override": {"lawfulBasis": {"article6": "public task"}}}), "L-01", "override.lawfulBasis.article6 is \"public task\"")
}

test_l01_an_override_cannot_cite_consent if {
	denied_for(public_interest_case({"override": {"lawfulBasis": {"article6": "6(1)(a)"}}}), "L-01", "cites consent (6(1)(a))")
}

test_l01_public_interest_rests_on_9_2_g_with_a_listed_paragraph if {
	every para in ["para-10", "para-17"] {
		allowed(public_interest_case({"override": {"lawfulBasis": {"dpaSchedule1": para}}}))
	}
	denied_for(public_interest_case({"override": {"lawfulBasis": {"article9": "9(2)(e)"}}}), "L-01", "override.ground \"public-interest\" may cite only 9(2)(g)")
	denied_for(public_interest_case({"override": {"lawfulBasis": {"dpaSchedule1": "para-6"}}}), "L-01", "on the public-interest ground rests on DPA 2018 Sch. 1 para-10 or para-17 or para-18")
	allowed(public_interest_case({"override": {"lawfulBasis": {"dpaSchedule1": "para-6"}}})) with data.referral.lists.public_interest_paragraphs as {"para-6": "statutory purposes"}
}

test_l01_article_9_2_g_needs_a_schedule_1_paragraph if {
	denied_for(without(public_interest_case({}), ["override/lawfulBasis/dpaSchedule1"]), "L-01", "override.lawfulBasis.dpaSchedule1 is missing")
}

# --- L-02 -------------------------------------------------------------------

test_l02_allows_9_2_h_for_a_registered_professional if {
	d := decide(best_interests_case({}))
	d.allow == true
	message(d, "L-02") == "Art. 9(2)(h) is claimed by a professional registered with BACP, a register accredited by the Professional Standards Authority (DPA 2018 s. 11(1)(b))"
	d2 := decide(best_interests_case({"referrer": {"registration": {"body": "general medical council", "number": "1234567"}}}))
	d2.allow == true
	contains(message(d2, "L-02"), "GMC, a statutory regulator (DPA 2018 s. 11(1)(a))")
}

test_l02_is_not_claimed_on_consent if {
	message(decide(consent_case({})), "L-02") == "Art. 9(2)(h) is not claimed"
}

test_l02_denies_9_2_h_for_an_unregistered_referrer if {
	denied_for(without(best_interests_case({"referrer": {"role": "other"}}), ["referrer/registration"]), "L-02", "referrer.registration")
	denied_for(best_interests_case({"referrer": {"registration": {"number": " "}}}), "L-02", "referrer.registration")
}

test_o02_a_competent_child_who_refused_is_overridden_only_by_safeguarding if {
	refused := {
		"student": {"dateOfBirth": "2011-01-01"},
		"consent": {"decision": "refused", "recordedAt": "2026-11-19T13:00:00Z", "method": "verbal", "recordedBy": "Priya Raman", "competenceAssessed": true},
		"override": {"adultAtRisk": false, "consentSought": {"outcome": "refused", "reason": "Relying on the refusal would leave her unprotected."}},
	}
	d := decide(override_case(refused))
	d.allow == true
	contains(message(d, "O-02"), "overridden only on the safeguarding ground")
	not_competent := decide(override_case(object.union(refused, {"consent": {"competenceAssessed": false}})))
	contains(message(not_competent, "O-02"), "not recorded as having capacity")
}

test_l02_needs_a_recognised_register_and_its_number_format if {
	d := decide(best_interests_case({"referrer": {"registration": {"body": "Acme Wellbeing Guild"}}}))
	deny_ids(d) == {"L-02"}
	contains(message(d, "L-02"), "referrer.registration.body is missing or names no recognised register")
	not contains(message(d, "L-02"), "Acme") # R-01: free text never quoted
	denied_for(best_interests_case({"referrer": {"registration": {"number": "pending"}}}), "L-02", "not in the format of a BACP registration number")
	denied_for(best_interests_case({"referrer": {"registration": {"body": "GMC"}}}), "L-02", "not in the format of a GMC registration number")
}
