package config

import (
	"fmt"
	"slices"

	"github.com/student-mh-referrals/gateway/gateway"
)

// Partnership is a set of institutions and services that evaluate a
// pathway together (issue #16): a partnership evaluator client is bound to
// one and sees its evaluation figures, never a record.
type Partnership struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	// Institutions are UKPRNs.
	Institutions []string `json:"institutions"`
	// Services are ids of the service registry.
	Services []string `json:"services"`
}

// validatePartnerships checks every partnership: a unique id, a name, and
// institutions and services that exist. services is the registry's ids.
func (c *Config) validatePartnerships(services map[string]bool) error {
	ids := map[string]bool{}
	for i, p := range c.Partnerships {
		at := fmt.Sprintf("partnerships[%d]", i)
		if p.ID == "" {
			return fmt.Errorf("%s.id: required", at)
		}
		at = fmt.Sprintf("partnerships[%d] (%s)", i, p.ID)
		switch {
		case ids[p.ID]:
			return fmt.Errorf("%s: duplicate id", at)
		case p.Name == "":
			return fmt.Errorf("%s.name: required", at)
		case len(p.Institutions) == 0:
			return fmt.Errorf("%s.institutions: list the UKPRNs of its institutions", at)
		case len(p.Services) == 0:
			return fmt.Errorf("%s.services: list the ids of its services", at)
		}
		ids[p.ID] = true
		for _, u := range p.Institutions {
			if !gateway.ValidUKPRN(u) {
				return fmt.Errorf("%s.institutions: %q is not a UKPRN", at, u)
			}
		}
		for _, s := range p.Services {
			if !services[s] {
				return fmt.Errorf("%s.services: %q is not in the registry", at, s)
			}
		}
	}
	return nil
}

// validateEvaluator checks the binding of a client that holds the
// partnership-evaluator role or names a partnership: that role only, bound
// to exactly one configured partnership and to no institution.
func (c *Config) validateEvaluator(at string, cl Client) error {
	switch {
	case !slices.Equal(cl.Roles, []string{gateway.RolePartnershipEvaluator}):
		return fmt.Errorf("%s.roles: a partnership is bound to a partnership-evaluator, which holds no other role", at)
	case cl.Institution != "":
		return fmt.Errorf("%s.institution: a partnership evaluator is bound to a partnership, not an institution", at)
	case cl.Partnership == "":
		return fmt.Errorf("%s.partnership: a partnership evaluator is bound to one partnership (an id of partnerships)", at)
	case !slices.ContainsFunc(c.Partnerships, func(p Partnership) bool { return p.ID == cl.Partnership }):
		return fmt.Errorf("%s.partnership %q: not a configured partnership", at, cl.Partnership)
	}
	return nil
}

// EvaluationPartnerships are the partnerships as the evaluation figures
// take them.
func (c *Config) EvaluationPartnerships() []gateway.Partnership {
	out := make([]gateway.Partnership, len(c.Partnerships))
	for i, p := range c.Partnerships {
		out[i] = gateway.Partnership{ID: p.ID, Name: p.Name, Institutions: p.Institutions, Services: p.Services}
	}
	return out
}
