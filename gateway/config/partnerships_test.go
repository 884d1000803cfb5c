package config

import (
	"strings"
	"testing"
)

func TestPartnershipsRejected(t *testing.T) {
	base := string(Example)
	tests := []struct {
		name, from, to, want string
	}{
		{"evaluator with an institution", "    partnership: demo-pathways\n", "    partnership: demo-pathways\n    institution: \"10007164\"\n", "not an institution"},
		{"evaluator without a partnership", "    partnership: demo-pathways\n", "", "bound to one partnership"},
		{"evaluator of an unknown partnership", "    partnership: demo-pathways\n", "    partnership: elsewhere\n", "not a configured partnership"},
		{"evaluator with another role", "roles: [partnership-evaluator]", "roles: [partnership-evaluator, submitter]", "holds no other role"},
		{"partnership on an auditor", "    roles: [ig-auditor]\n", "    roles: [ig-auditor]\n    partnership: demo-pathways\n", "holds no other role"},
		{"unknown service", "services: [u-cope, liverpool-liaison, gm-student-mhs", "services: [nowhere, liverpool-liaison, gm-student-mhs", "not in the registry"},
		{"bad UKPRN", `institutions: ["10007164", "10006842"]`, `institutions: ["10007164", "1234"]`, "not a UKPRN"},
		{"no institutions", `institutions: ["10007164", "10006842"]`, `institutions: []`, "list the UKPRNs"},
		{"no name", "    name: Demo student mental-health pathways (UWE and Liverpool)\n", "", "name: required"},
		{"duplicate id", "partnerships:\n  - id: demo-pathways\n", "partnerships:\n  - id: demo-pathways\n    name: again\n    institutions: [\"10007164\"]\n    services: [u-cope]\n  - id: demo-pathways\n", "duplicate id"},
	}
	for _, tt := range tests {
		changed := strings.Replace(base, tt.from, tt.to, 1)
		if changed == base {
			t.Fatalf("%s: fixture text %q not in the example", tt.name, tt.from)
		}
		if _, err := Parse([]byte(changed)); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: error %v, want one mentioning %q", tt.name, err, tt.want)
		}
	}
}

func TestExamplePartnership(t *testing.T) {
	ps := mustParse(t, string(Example)).EvaluationPartnerships()
	if len(ps) != 1 || ps[0].ID != "demo-pathways" || strings.Join(ps[0].Institutions, ",") != "10007164,10006842" || len(ps[0].Services) != 6 {
		t.Fatalf("partnerships %+v", ps)
	}
}
