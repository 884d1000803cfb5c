# Tests of the consent rules C-01..C-04.
package referral_test

# --- C-01 -------------------------------------------------------------------

test_c01_allows_a_given_consent if {
	d := decide(consent_case({}))
	effect(d, "C-01") == "allow"
}

test_c01_denies_without_agreement if {
	every decision in ["not-sought", "refused", "withdrawn"] {
		d := decide(consent_case({"consent": {"decision": decision}}))
		d.allow == false
		contains(message(d, "C-01"), "consent.decision")
	}
}

test_c01_denies_a_missing_consent_decision if {
	denied_for(without(consent_case({}), ["consent/decision"]), "C-01", "consent.decision is missing")
}

test_c01_allows_an_override_that_shows_consent_was_sought if {
	d := decide(override_case({}))
	d.allow == true
	contains(message(d, "C-01"), "unreachable")
}

test_c01_allows_an_override_where_asking_was_not_safe if {
	allowed(override_case({"override": {"consentSought": {"attempted": false, "outcome": "not-safe-to-ask", "reason": "Asking would warn the person harming him."}}}))
}

test_c01_not_safe_to_ask_needs_a_reason if {
	denied_by(override_case({"override": {"consentSought": {"attempted": false, "outcome": "not-safe-to-ask"}}}), "C-01", "override.consentSought.reason is missing")
}

test_c01_a_student_who_lacks_capacity_is_not_asked if {
	d := decide(best_interests_case({}))
	d.allow == true
	contains(message(d, "C-01"), "\"lacks-capacity\"")
	not contains(message(d, "C-01"), "agreement by default") # the message does not claim agreement
	denied_by(best_interests_case({"consent": {"capacity": {"status": "presumed"}}}), "C-01", "record the assessment that the student lacks capacity")
}

test_c01_denies_an_override_without_consent_sought if {
	# O-04 fails too: no reason is recorded why consent is not relied on.
	denied_by(without(override_case({}), ["override/consentSought"]), "C-01", "override.consentSought is missing")
	denied_by(replaced(override_case({}), "override/consentSought", null), "C-01", "override.consentSought is missing")
}

test_c01_denies_an_override_without_an_outcome if {
	denied_by(without(override_case({}), ["override/consentSought/outcome"]), "C-01", "override.consentSought.outcome is missing")
}

test_c01_denies_a_refusal_not_recorded_as_sought if {
	denied_for(without(override_case({}), ["override/consentSought/attempted"]), "C-01", "override.consentSought.attempted")
	denied_for(without(override_case({}), ["override/consentSought/at"]), "C-01", "override.consentSought.at")
}

test_c01_denies_a_given_consent_beside_an_override if {
	case := replaced(override_case({}), "consent", consent_record.consent)
	denied_for(case, "C-01", "a record takes one route")
}

# --- C-02 -------------------------------------------------------------------

test_c02_allows_an_explicit_current_consent if {
	every method in ["written", "verbal", "electronic"] {
		allowed(consent_case({"consent": {"method": method}}))
	}
}

test_c02_denies_refused_or_withdrawn_consent if {
	every decision in ["refused", "withdrawn"] {
		d := decide(consent_case({"consent": {"decision": decision}}))
		deny_ids(d) == {"C-01", "C-02"}
		contains(message(d, "C-02"), "never counts as consent")
	}
}

test_c02_denies_a_consent_not_recorded_explicitly if {
	denied_for(consent_case({"consent": {"method": "implied"}}), "C-02", "consent.method is \"implied\"")
	denied_for(without(consent_case({}), ["consent/method"]), "C-02", "consent.method is missing")
	denied_for(without(consent_case({}), ["consent/recordedBy"]), "C-02", "consent.recordedBy")
	denied_for(without(consent_case({}), ["consent/recordedAt"]), "C-02", "consent.recordedAt")
	denied_for(consent_case({"consent": {"recordedAt": "18/11/2026"}}), "C-02", "consent.recordedAt")
}

test_c02_denies_a_consent_recorded_after_the_decision if {
	denied_for(consent_case({"consent": {"recordedAt": "2026-11-19T14:05:01Z"}}), "C-02", "consent.recordedAt is after")
}

test_c02_allows_a_consent_recorded_at_the_decision_time if {
	allowed(consent_case({"consent": {"recordedAt": decision_time}}))
}

test_c02_consent_expiring_exactly_at_the_decision_time_is_expired if {
	denied_for(consent_case({"consent": {"expiresAt": decision_time}}), "C-02", "consent.expiresAt")
}

test_c02_consent_is_valid_until_the_instant_it_expires if {
	allowed(at(consent_case({"consent": {"expiresAt": decision_time}}), "2026-11-19T14:04:59Z"))
}

test_c02_expiry_compares_instants_across_zones if {
	# 15:05 in UTC+01:00 is 14:05 UTC: expired at the decision time.
	denied_for(consent_case({"consent": {"expiresAt": "2026-11-19T15:05:00+01:00"}}), "C-02", "consent.expiresAt")
	allowed(consent_case({"consent": {"expiresAt": "2026-11-19T15:05:01+01:00"}}))
}

test_c02_a_consent_without_expiry_does_not_expire if {
	allowed(at(without(consent_case({}), ["consent/expiresAt"]), "2036-01-01T00:00:00Z"))
}

test_c02_denies_an_unreadable_expiry if {
	denied_for(consent_case({"consent": {"expiresAt": "next May"}}), "C-02", "consent.expiresAt is not an RFC 3339 time")
}

test_c02_a_consent_without_capacity_is_read_as_presumed if {
	# K-01: capacity is presumed from 16; the record is never refused for it.
	d := decide(without(consent_case({}), ["consent/capacity"]))
	d.allow == true
	contains(message(d, "C-02"), "given with capacity (presumed)")
	denied_for(without(consent_case({"student": {"dateOfBirth": "2011-01-01"}}), ["consent/capacity"]), "A-01", "consent.competenceAssessed is not true")
}

test_c02_denies_consent_from_a_student_who_lacks_capacity if {
	case := consent_case({"consent": {"capacity": {"status": "lacks-capacity", "assessedBy": "Dr Alex Reed", "assessedOn": "2026-11-19"}}})
	denied_for(case, "C-02", "best-interests")
}

# --- C-03 -------------------------------------------------------------------

test_c03_allows_the_consented_service_id if {
	d := decide(consent_case({}))
	effect(d, "C-03") == "allow"
}

test_c03_an_ods_code_covers_every_service_of_the_organisation if {
	allowed(consent_case({"consent": {"recipients": ["RW4"]}}))
}

test_c03_denies_a_service_the_student_did_not_name if {
	denied_for(consent_case({"consent": {"recipients": ["liverpool-liaison", "RXV"]}}), "C-03", "consent.recipients")
}

test_c03_denies_a_purpose_other_than_direct_care if {
	denied_for(consent_case({"consent": {"purposes": ["research"]}}), "C-03", "consent.purposes")
	denied_for(without(consent_case({}), ["consent/purposes"]), "C-03", "consent.purposes")
}

# --- C-04 -------------------------------------------------------------------

test_c04_categories_not_consented_are_removed if {
	d := decide(consent_case({"consent": {"dataCategories": ["demographics", "needs"]}}))
	d.allow == true
	d.dataCategories == {"demographics", "needs"}
	obligations(d, "keep-categories")[0].categories == ["demographics", "needs"]
	contains(message(d, "C-04"), "leaves out contact, gp, risk-formulation, safety-plan, context")
}

test_c04_allows_a_consent_covering_everything_the_service_needs if {
	d := decide(consent_case({"consent": {"dataCategories": u_cope.dataCategories}}))
	message(d, "C-04") == "consent.dataCategories covers every category the service needs"
}

test_c04_drops_a_trusted_contact_not_consented if {
	d := decide(to(
		consent_case({
			"student": {"trustedContact": {"name": "Grace Okafor", "relationship": "parent"}},
			"consent": {"recipients": ["liverpool-liaison"]},
		}),
		liverpool_liaison,
	))
	d.allow == true
	not "trusted-contact" in d.dataCategories
	[o.rule | some o in obligations(d, "drop-trusted-contact")] == ["C-04"]
	effect(d, "C-04") == "obligation"
}

test_c04_sends_a_consented_trusted_contact if {
	d := decide(to(
		consent_case({
			"student": {"trustedContact": {"name": "Grace Okafor", "relationship": "parent"}},
			"consent": {"recipients": ["liverpool-liaison"], "dataCategories": ["demographics", "needs", "trusted-contact"]},
		}),
		liverpool_liaison,
	))
	d.dataCategories == {"demographics", "needs", "trusted-contact"}
	obligations(d, "drop-trusted-contact") == []
}

test_c04_denies_a_consent_naming_no_categories if {
	d := decide(consent_case({"consent": {"dataCategories": []}}))
	d.allow == false
	contains(message(d, "C-04"), "consent.dataCategories is empty")
}
