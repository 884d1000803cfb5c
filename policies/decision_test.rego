# Tests of the decision document: its shape, order and what an allow and a
# deny carry.
package referral_test

test_consent_record_is_allowed_with_the_whole_document if {
	d := decide(consent_case({}))
	d.allow == true
	d.route == "consent"
	rule_ids(d) == consent_rules
	d.lawfulBases == {"article6": "6(1)(a)", "article9": "9(2)(a)"}
	d.dataCategories == {"demographics", "contact", "gp", "needs", "risk-formulation", "safety-plan"}
	d.recipient == {"service": "u-cope", "odsCode": "RW4", "name": "U-COPE self-harm pathway"}
}

test_override_record_is_allowed_with_the_whole_document if {
	d := decide(override_case({}))
	d.allow == true
	d.route == "safeguarding"
	rule_ids(d) == override_rules
	d.lawfulBases == {"article6": "6(1)(e)", "article9": "9(2)(g)", "dpaSchedule1": "para-18"}
	d.recipient.service == "liverpool-liaison"
}

test_allow_lists_satisfied_rules_and_no_deny if {
	d := decide(consent_case({}))
	d.deny == set()
	{r.id | some r in d.satisfied} == consent_rules
}

test_allow_lists_allow_and_obligation_effects if {
	d := decide(consent_case({}))
	{effect(d, id) | some id in rule_ids(d)} == {"allow", "obligation"}
	effect(d, "M-01") == "obligation"
	effect(d, "T-01") == "obligation"
	effect(d, "C-01") == "allow"
}

test_obligations_name_their_rule_and_type if {
	d := decide(consent_case({
		"student": {"trustedContact": {"name": "Grace Okafor", "relationship": "parent"}},
		"referral": {"riskAssessment": {"score": 14}},
	}))
	{[o.rule, o.type] | some o in d.obligations} == {
		["C-04", "drop-trusted-contact"],
		["M-01", "keep-categories"],
		["T-01", "notify-student"],
		["X-01", "strip-fields"],
	}
}

test_deny_lists_every_failing_rule_once_with_every_message if {
	d := decide(consent_case({
		"referral": {"priority": "emergency"},
		"consent": {"method": "fax", "recordedBy": " "},
	}))
	d.allow == false
	d.route == "consent"
	deny_ids(d) == {"C-02", "E-01"}
	effect(d, "E-01") == "deny"
	d.satisfied == set()
	contains(message(d, "C-02"), "consent.method")
	contains(message(d, "C-02"), "consent.recordedBy")
}

test_deny_carries_no_obligations_categories_or_bases if {
	d := decide(consent_case({"referral": {"priority": "emergency"}}))
	d.allow == false
	d.obligations == set()
	d.dataCategories == set()
	d.lawfulBases == {}
	d.recipient.service == "u-cope"
}

test_deny_names_the_route_it_tried if {
	d := decide(override_case({"override": {"ground": "vital-interests"}}))
	d.allow == false
	d.route == "vital-interests"
}

test_deny_lists_only_rules_of_the_route_tried if {
	# An override that fails is not also judged by the consent rules C-02..C-04.
	d := decide(override_case({"override": {"approvedBy": {"role": "personal-tutor"}}}))
	deny_ids(d) == {"O-01"}
	not "C-02" in rule_ids(d)
}

test_no_route_without_consent_or_override if {
	d := decide(consent_case({"consent": {"decision": "not-sought"}}))
	d.allow == false
	d.route == "consent"
	"C-01" in deny_ids(d)
}

test_decision_needs_an_input_time if {
	denied_for(at(consent_case({}), "yesterday"), "R-01", "input.at")
	denied_for(object.remove(consent_case({}), {"at"}), "R-01", "input.at")
}

test_decision_needs_a_service if {
	d := decide(object.remove(consent_case({}), {"service"}))
	d.allow == false
	{"M-01", "P-01"} & deny_ids(d) == {"M-01", "P-01"}
	d.recipient == {"service": "", "odsCode": "", "name": ""}
}

test_missing_record_denies if {
	d := decide({"service": u_cope, "at": decision_time})
	d.allow == false
	count(d.deny) > 0
}

test_has_holds_for_a_key_whatever_its_value if {
	data.referral.has({"a": false}, "a")
	data.referral.has({"a": null}, "a")
	data.referral.has({"a": 0}, "a")
	not data.referral.has({"b": 1}, "a")
}
