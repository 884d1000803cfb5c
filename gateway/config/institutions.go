package config

import "github.com/student-mh-referrals/gateway/gateway"

// Institution is a university as configured: its UKPRN, name, ODS code where
// it has one, and the wellbeing contact that the notices to its students name
// (T-01). The domain checks it (gateway.NewInstitutions).
type Institution = gateway.InstitutionProfile

// InstitutionRegistry builds the registry of the configured universities.
func (c *Config) InstitutionRegistry() (*gateway.Institutions, error) {
	return gateway.NewInstitutions(c.Institutions)
}
