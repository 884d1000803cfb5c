package config

import (
	"slices"

	"github.com/student-mh-referrals/gateway/gateway"
)

// Institution is a university as configured: its UKPRN, name, ODS code where
// it has one, and the wellbeing contact that the notices to its students name
// (T-01). The domain checks it (gateway.NewInstitutions).
type Institution = gateway.InstitutionProfile

// InstitutionRegistry builds the registry of the configured universities.
func (c *Config) InstitutionRegistry() (*gateway.Institutions, error) {
	return gateway.NewInstitutions(c.Institutions)
}

// institutionWarnings names each institution a submitter is bound to that
// has no entry in institutions: its students' notices can name no contact
// but "your university's wellbeing service".
func (c *Config) institutionWarnings() []string {
	var out []string
	for _, cl := range c.Clients {
		known := slices.ContainsFunc(c.Institutions, func(i Institution) bool { return i.UKPRN == cl.Institution })
		if slices.Contains(cl.Roles, gateway.RoleSubmitter) && !known {
			out = append(out, "clients: "+cl.ID+" submits for institution "+cl.Institution+", which institutions does not list: its students' notices (T-01) name no wellbeing contact")
		}
	}
	return out
}
