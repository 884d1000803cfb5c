# Tests of what is shared (M-01, X-01, X-02, P-01, E-01).
package referral_test

# A consent-route referral to the liaison service, which sets no criteria on
# needs or routes, so that content rules can be tested alone.
liaison_case(patch) := to(consent_case(object.union({"consent": {"recipients": ["liverpool-liaison"]}}, patch)), liverpool_liaison)

# --- M-01 -------------------------------------------------------------------

test_m01_keeps_the_intersection_of_service_consent_and_purpose if {
	d := decide(consent_case({"consent": {"dataCategories": ["needs", "trusted-contact", "context", "demographics"]}}))
	d.allow == true
	[o.categories | some o in obligations(d, "keep-categories")] == [["demographics", "needs", "context"]]
	d.dataCategories == {"demographics", "needs", "context"}
	effect(d, "M-01") == "obligation"
}

test_m01_an_override_never_sends_the_trusted_contact if {
	d := decide(override_case({"student": {"trustedContact": {"name": "Dana Carter", "relationship": "friend"}}}))
	contains(obligations(d, "drop-trusted-contact")[0].message, "only with the student's consent")
	not "trusted-contact" in d.dataCategories
}

test_m01_an_override_keeps_what_the_service_needs_but_the_trusted_contact if {
	d := decide(override_case({}))
	obligations(d, "keep-categories")[0].categories == [c | some c in liverpool_liaison.dataCategories; c != "trusted-contact"]
	contains(message(d, "M-01"), "only what the service needs for direct care leaves")
}

test_m01_categories_sent_are_those_with_data if {
	# The liaison service may receive a trusted contact, but the record has none.
	d := decide(override_case({}))
	d.dataCategories == {"demographics", "contact", "gp", "needs", "risk-formulation", "safety-plan", "context"}
}

test_m01_categories_follow_the_vocabulary_order if {
	service := object.union(liverpool_liaison, {"dataCategories": ["context", "needs", "demographics"]})
	d := decide(to(override_case({}), service))
	d.dataCategories == {"demographics", "needs", "context"}
}

test_m01_drops_a_trusted_contact_the_service_does_not_need if {
	d := decide(consent_case({
		"student": {"trustedContact": {"name": "Grace Okafor", "relationship": "parent"}},
		"consent": {"dataCategories": ["demographics", "needs", "trusted-contact"]},
	}))
	d.allow == true
	[o.rule | some o in obligations(d, "drop-trusted-contact")] == ["M-01"]
}

test_m01_denies_a_service_that_declares_no_categories if {
	# With nothing allowed, the needs cannot be sent either (X-02).
	d := decide(to(override_case({}), object.remove(liverpool_liaison, {"dataCategories"})))
	deny_ids(d) == {"M-01", "X-02"}
	contains(message(d, "M-01"), "dataCategories")
}

# --- M-01: the receiver's MessageDefinition ----------------------------------

definition_url := "https://receiver.example.org/MessageDefinition/referral"

# defined(case, focus) is case with a receiver's MessageDefinition demanding
# focus: [[code, min, max]...].
defined(case, focus) := object.union(case, {"definition": {
	"url": definition_url,
	"focus": [{"code": f[0], "min": f[1], "max": f[2]} | some f in focus],
}})

# What the U-COPE consent case sends: the GP practice is a third Organization,
# the consent a Consent, the safety plan a CarePlan; no safe contact, no Flag.
u_cope_message := [
	["Bundle", 1, "1"], ["MessageHeader", 1, "1"], ["ServiceRequest", 1, "1"], ["Patient", 1, "1"],
	["Organization", 3, "3"], ["Consent", 1, "1"], ["CarePlan", 1, "1"], ["Flag", 0, "0"],
	["PractitionerRole", 1, "1"], ["Practitioner", 1, "1"],
]

test_m01_a_definition_the_message_meets if {
	d := decide(defined(consent_case({}), u_cope_message))
	d.allow == true
	contains(message(d, "M-01"), sprintf("the message meets the MessageDefinition %q of service \"u-cope\"", [definition_url]))
}

test_m01_no_definition_no_definition_check if {
	d := decide(consent_case({}))
	d.allow == true
	not contains(message(d, "M-01"), "MessageDefinition")
}

test_m01_denies_a_definition_demanding_a_resource_never_sent if {
	d := decide(defined(consent_case({}), [["Patient", 1, "1"], ["Encounter", 1, "1"]]))
	deny_ids(d) == {"M-01"}
	message(d, "M-01") == sprintf("service \"u-cope\" requires, by its MessageDefinition %q, at least 1 Encounter; the message the sharing policies allow for this referral carries 0, and no more is sent to meet a definition", [definition_url])
}

test_m01_denies_a_definition_demanding_a_category_the_consent_withholds if {
	case := consent_case({"consent": {"dataCategories": ["demographics", "contact", "gp", "needs", "risk-formulation"]}})
	allowed(case)
	d := decide(defined(case, [["CarePlan", 1, "1"]]))
	deny_ids(d) == {"M-01"}
	contains(message(d, "M-01"), "at least 1 CarePlan; the message the sharing policies allow for this referral carries 0")
}

test_m01_denies_a_definition_allowing_fewer_than_sent if {
	d := decide(defined(consent_case({}), [["Organization", 1, "2"]]))
	deny_ids(d) == {"M-01"}
	message(d, "M-01") == sprintf("service \"u-cope\" allows, by its MessageDefinition %q, at most 2 Organization; the message the sharing policies allow for this referral carries 3", [definition_url])
}

test_m01_an_unbounded_focus_has_no_maximum if {
	allowed(defined(consent_case({}), [["Organization", 1, "*"]]))
}

test_m01_a_safe_contact_sent_with_contact_details_is_a_flag if {
	allowed(defined(consent_case({"student": {"safeContact": {"instructions": "Email only."}}}), [["Flag", 1, "1"]]))
	allowed(defined(consent_case({"student": {"safeContact": {"avoid": ["post"]}}}), [["Flag", 1, "1"]]))
	allowed(defined(consent_case({"student": {"safeContact": {"instructions": " "}}}), [["Flag", 0, "0"]]))
}

test_m01_no_flag_without_contact_details_sent if {
	case := consent_case({
		"student": {"safeContact": {"instructions": "Email only."}},
		"consent": {"dataCategories": ["demographics", "gp", "needs", "risk-formulation", "safety-plan"]},
	})
	allowed(defined(case, [["Flag", 0, "0"]]))
}

test_m01_no_consent_resource_when_consent_was_not_sought if {
	allowed(defined(override_case({}), [["Consent", 0, "0"], ["Organization", 3, "3"]]))
}

test_m01_a_gp_practice_that_is_the_receiver_is_one_organization if {
	allowed(defined(consent_case({"student": {"gpPractice": {"odsCode": "RW4"}}}), [["Organization", 2, "2"]]))
}

# --- X-01 -------------------------------------------------------------------

test_x01_no_score_nothing_to_strip if {
	d := decide(consent_case({}))
	message(d, "X-01") == "the record holds no risk score or level"
	obligations(d, "strip-fields") == []
}

test_x01_strips_score_and_level if {
	d := decide(consent_case({"referral": {"riskAssessment": {"score": 14, "level": "high"}}}))
	d.allow == true
	[o.fields | some o in obligations(d, "strip-fields")] == [["referral.riskAssessment.level", "referral.riskAssessment.score"]]
	effect(d, "X-01") == "obligation"
}

test_x01_strips_only_what_is_there if {
	d := decide(consent_case({"referral": {"riskAssessment": {"score": 0}}}))
	[o.fields | some o in obligations(d, "strip-fields")] == [["referral.riskAssessment.score"]]
}

test_x01_score_and_level_do_not_decide if {
	low := decide(override_case({"referral": {"riskAssessment": {"score": 1, "level": "low"}}}))
	high := decide(override_case({"referral": {"riskAssessment": {"score": 40, "level": "high"}}}))
	none := decide(override_case({}))
	low.allow == true
	[d.allow | some d in [low, high, none]] == [true, true, true]
	{d.dataCategories | some d in [low, high, none]} == {none.dataCategories}
	object.remove(low, {"rules", "obligations"}) == object.remove(high, {"rules", "obligations"})
	refused_low := decide(override_case({"referral": {"riskAssessment": {"seriousConcern": false, "level": "high"}}}))
	refused_low.allow == false
}

test_x01_refuses_a_score_as_the_only_clinical_content if {
	case := replaced(consent_case({}), "referral", {"service": "u-cope", "priority": "routine", "riskAssessment": {"score": 14, "level": "high"}})
	d := decide(case)
	d.allow == false
	"X-01" in deny_ids(d)
	contains(message(d, "X-01"), "referral.riskAssessment.level and referral.riskAssessment.score")
}

test_x01_a_score_beside_other_content_is_not_refused_by_x01 if {
	case := replaced(liaison_case({}), "referral", {"service": "liverpool-liaison", "priority": "routine", "summary": "Low mood.", "riskAssessment": {"level": "high"}})
	d := decide(case)
	not "X-01" in deny_ids(d)
	"X-02" in deny_ids(d)
}

# --- X-02 -------------------------------------------------------------------

test_x02_allows_needs_based_content if {
	d := decide(liaison_case({}))
	d.allow == true
	effect(d, "X-02") == "allow"
}

test_x02_denies_without_presenting_needs if {
	denied_for(liaison_case({"referral": {"presentingNeeds": []}}), "X-02", "referral.presentingNeeds")
	denied_for(without(liaison_case({}), ["referral/presentingNeeds"]), "X-02", "referral.presentingNeeds")
}

test_x02_denies_without_a_safety_formulation if {
	denied_for(without(liaison_case({}), ["referral/riskFormulation"]), "X-02", "referral.riskFormulation")
}

test_x02_denies_without_a_safety_plan_status if {
	denied_for(without(liaison_case({}), ["referral/safetyPlan"]), "X-02", "referral.safetyPlan.status")
	denied_for(liaison_case({"referral": {"safetyPlan": {"status": "maybe"}}}), "X-02", "referral.safetyPlan.status")
}

test_x02_every_safety_plan_status_counts if {
	every status in ["in-place", "declined", "not-yet"] {
		allowed(liaison_case({"referral": {"safetyPlan": {"status": status}}}))
	}
}

test_x02_needs_the_students_wishes_or_current_support if {
	denied_for(without(liaison_case({}), ["referral/studentWishes", "referral/currentSupport"]), "X-02", "referral.studentWishes and referral.currentSupport")
	allowed(without(liaison_case({}), ["referral/studentWishes"]))
	allowed(without(liaison_case({}), ["referral/currentSupport"]))
}

test_x02_says_truthfully_what_is_sent_and_what_consent_withholds if {
	categories := ["demographics", "contact", "gp", "needs", "risk-formulation", "safety-plan", "context"]
	d := decide(liaison_case({"consent": {"dataCategories": categories}}))
	message(d, "X-02") == "the record holds the needs-based content; the referral carries presenting needs, the safety formulation, the safety-plan status, context"
	withheld := decide(liaison_case({"consent": {"dataCategories": ["demographics", "needs"]}}))
	withheld.allow == true # S-01: the share goes ahead
	message(withheld, "X-02") == "the record holds the needs-based content; the referral carries presenting needs; withheld by the student's consent (consent.dataCategories), and the referral says so: the safety formulation, the safety-plan status, context"
	not contains(message(withheld, "X-02"), "carries presenting needs, the safety formulation")
}

test_x02_a_refused_consent_is_refused_by_c01_not_x02 if {
	d := decide(consent_case({"consent": {"decision": "refused", "dataCategories": []}}))
	"C-01" in deny_ids(d)
	not "X-02" in deny_ids(d)
}

test_x02_the_needs_must_be_sent if {
	denied_for(liaison_case({"consent": {"dataCategories": ["demographics", "contact"]}}), "X-02", "the needs category would not be sent")
}

# --- P-01 -------------------------------------------------------------------

test_p01_allows_an_eligible_referral if {
	message(decide(consent_case({})), "P-01") == "the referral meets the eligibility criteria of \"u-cope\""
}

test_p01_denies_a_student_of_another_university if {
	denied_for(consent_case({"institution": {"ukprn": "10007164"}}), "P-01", "institution.ukprn \"10007164\"")
}

test_p01_denies_without_an_accepted_need if {
	denied_for(consent_case({"referral": {"presentingNeeds": [{"code": "anxiety"}]}}), "P-01", "eligibility.needsAnyOf: self-harm")
}

test_p01_denies_an_excluded_need if {
	needs := [{"code": "self-harm"}, {"code": "psychosis-concern"}]
	denied_for(consent_case({"referral": {"presentingNeeds": needs}}), "P-01", "psychosis-concern")
}

test_p01_denies_a_student_under_secondary_care if {
	denied_for(consent_case({"referral": {"underSecondaryCare": true}}), "P-01", "referral.underSecondaryCare")
	allowed(without(consent_case({}), ["referral/underSecondaryCare"]))
}

test_p01_denies_a_route_the_service_does_not_accept if {
	denied_for(to(override_case({}), u_cope), "P-01", "accepts referrals only on the routes consent")
}

test_p01_denies_outside_the_age_range if {
	older := object.union(liverpool_liaison, {"eligibility": {"maxAge": 21}})
	denied_for(to(liaison_case({}), older), "P-01", "eligibility.maxAge")
	allowed(to(liaison_case({"student": {"dateOfBirth": "2005-11-20"}}), older))
}

test_p01_a_new_pathway_is_data if {
	pathway := {
		"id": "eating-pathway",
		"name": "Student eating difficulties pathway",
		"organization": {"name": "Mersey Care NHS Foundation Trust", "odsCode": "RW4"},
		"dataCategories": ["demographics", "needs", "risk-formulation", "safety-plan"],
		"eligibility": {"needsAnyOf": ["eating-difficulties"], "routes": ["consent"]},
	}
	eating := {"referral": {"presentingNeeds": [{"code": "eating-difficulties"}]}, "consent": {"recipients": ["RW4"]}}
	allowed(to(consent_case(eating), pathway))
	denied_for(to(consent_case({"consent": {"recipients": ["RW4"]}}), pathway), "P-01", "eating-difficulties")
}

test_p01_denies_without_a_service if {
	denied_by(object.remove(consent_case({}), {"service"}), "P-01", "input.service")
}

# --- E-01 -------------------------------------------------------------------

test_e01_allows_routine_and_urgent if {
	every priority in ["routine", "urgent"] {
		d := decide(consent_case({"referral": {"priority": priority}}))
		d.allow == true
		contains(message(d, "E-01"), priority)
	}
}

test_e01_refuses_an_emergency_with_guidance if {
	case := consent_case({"referral": {"priority": "emergency"}})
	denied_for(case, "E-01", "call 999, or NHS 111 and choose the mental health option")
}

test_e01_refuses_an_unknown_priority if {
	denied_for(consent_case({"referral": {"priority": "asap"}}), "E-01", "referral.priority is \"asap\"")
	denied_for(without(consent_case({}), ["referral/priority"]), "E-01", "referral.priority is missing")
}

test_x01_refuses_a_risk_category_in_a_narrative_field if {
	d := decide(liaison_case({"referral": {"riskFormulation": "HIGH RISK (score 21/27). Isolated since the exam results."}}))
	deny_ids(d) == {"X-01"}
	contains(message(d, "X-01"), "referral.riskFormulation states a risk category")
	not contains(message(d, "X-01"), "HIGH") # R-01: the text is not quoted
	denied_for(liaison_case({"referral": {"summary": "Assessed as medium-risk."}}), "X-01", "referral.summary")
	denied_for(liaison_case({"referral": {"presentingNeeds": [{"code": "self-harm", "text": "risk level: high"}]}}), "X-01", "referral.presentingNeeds[0].text")
	denied_for(override_case({"override": {"grounds": "Risk score 14 on the local tool."}}), "X-01", "override.grounds states a risk score")
}

test_x01_judges_safe_contact_instructions_when_contact_is_sent if {
	denied_for(liaison_case({"student": {"safeContact": {"instructions": "HIGH RISK: email only."}}}), "X-01", "student.safeContact.instructions")
	allowed(liaison_case({"student": {"safeContact": {"instructions": "Email only; never phone."}}}))

	# Consent withholds contact details: the instructions do not travel.
	allowed(liaison_case({
		"student": {"safeContact": {"instructions": "HIGH RISK: email only."}},
		"consent": {"dataCategories": ["demographics", "needs", "risk-formulation", "safety-plan"]},
	}))
}

test_x01_symptom_scores_and_low_mood_are_not_risk_categories if {
	allowed(liaison_case({"referral": {"summary": "Low mood since October; PHQ-9 total 18; exam mark 62% this term."}}))
}

test_x01_a_narrative_that_is_not_sent_is_not_judged if {
	# Consent leaves the formulation out: it is withheld, not sent (C-04).
	allowed(liaison_case({"referral": {"riskFormulation": "HIGH RISK"}, "consent": {"dataCategories": ["demographics", "needs"]}}))
}

test_x01_any_other_clinical_content_is_not_score_only if {
	every content in [
		{"presentingNeeds": [{"code": "low-mood"}]},
		{"summary": "Low mood."},
		{"riskFormulation": "Isolated since the move."},
		{"safetyPlan": {"status": "not-yet"}},
		{"studentWishes": "Wants to talk to someone."},
	] {
		referral := object.union({"service": "liverpool-liaison", "priority": "routine", "riskAssessment": {"level": "high"}}, content)
		d := decide(replaced(liaison_case({}), "referral", referral))
		not "X-01" in deny_ids(d)
	}
}

test_direct_care_may_carry_every_category if {
	data.referral.purpose_categories["direct-care"] == {c | some c in data.referral.category_order}
}

test_context_is_present_when_secondary_care_is_recorded_even_as_false if {
	case := json.remove(consent_case({}), ["record/referral/currentSupport"])
	case.record.referral.underSecondaryCare == false
	"context" in data.referral.present_categories with input as case
	without := json.remove(case, ["record/referral/underSecondaryCare"])
	not "context" in data.referral.present_categories with input as without
}
