# Tests of the lists an IG lead and the clinical safety officer keep
# (lists.rego): each risk pattern against its examples, each register's
# number pattern against its examples, and the shape of every entry.
package referral.lists_test

import data.referral.lists

test_every_risk_pattern_matches_its_examples if {
	every p in lists.risk_patterns {
		count(p.matches) > 0
		every text in p.matches {
			regex.match(p.pattern, text)
		}
	}
}

test_no_risk_pattern_matches_a_counter_example if {
	every p in lists.risk_patterns {
		count(p.ignores) > 0
		every text in p.ignores {
			not regex.match(p.pattern, text)
		}
	}
}

# The examples the principles (X-01) name, against the patterns as a whole.
states_risk(text) if {
	some p in lists.risk_patterns
	regex.match(p.pattern, text)
}

test_the_principles_examples if {
	every text in ["HIGH RISK", "medium-risk", "risk level: high", "risk score 14", "HIGH RISK (score 21/27)"] {
		states_risk(text)
	}
	every text in ["low mood", "PHQ-9 total 18", "PHQ-9 total: 21/27", "exam mark 62%", "Exam mark 40/100"] {
		not states_risk(text)
	}
}

test_every_register_number_pattern_matches_its_examples if {
	every r in lists.registers {
		lists.register_kinds[r.kind]
		every number in r.examples.valid {
			regex.match(r.number, number)
		}
		every number in r.examples.invalid {
			not regex.match(r.number, number)
		}
	}
}

test_register_codes_and_aliases_are_unique if {
	names := [lower(n) | some r in lists.registers; some n in array.concat([r.code], r.aliases)]
	count(names) == count({n | some n in names})
}

test_roles_say_whether_they_approve if {
	every _, r in lists.roles {
		is_boolean(r.approves)
	}
	{role | some role, r in lists.roles; r.approves} == {"head-of-wellbeing", "safeguarding-lead", "director-of-student-services"}
}

test_public_interest_paragraphs_are_schedule_1_paragraphs if {
	every para, purpose in lists.public_interest_paragraphs {
		regex.match(`^para-[1-9][0-9]?$`, para)
		purpose != ""
	}
}

test_every_message_resource_names_known_categories_and_facts if {
	count(lists.message_resources) > 0
	every type, spec in lists.message_resources {
		object.keys(spec) - {"always", "categories", "with"} == set()
		every c in object.get(spec, "categories", []) {
			c in data.referral.category_order
		}
		object.get(spec, "with", "always") in {"always", "consent-decided", "safe-contact", "gp-not-receiver"}
		regex.match(`^[A-Z][A-Za-z]+$`, type)
	}
}
