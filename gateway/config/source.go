package config

import (
	"fmt"
	"net/url"
	"slices"
	"strings"
)

// validateSource checks how the gateway names itself in MessageHeader.source.
// The endpoint is the gateway's own target identifier as system|value (the
// form the BaRS examples use), under which a receiver routes its response
// messages back: a URL there, above all a loopback one, would send them
// nowhere. Outside demo mode a loopback system is refused outright.
func (c *Config) validateSource() error {
	src := c.Source
	system, value, ok := strings.Cut(strings.TrimSpace(src.Endpoint), "|")
	u, err := url.Parse(system)
	switch {
	case src.Endpoint == "":
		return fmt.Errorf("source.endpoint: required: the gateway's own target identifier as system|value (e.g. https://fhir.nhs.uk/Id/dos-service-id|2000099001)")
	case !ok || strings.TrimSpace(value) == "" || err != nil || u.Scheme == "" || u.Host == "":
		return fmt.Errorf("source.endpoint %q: the gateway's own target identifier as system|value, the system a URI (e.g. https://fhir.nhs.uk/Id/dos-service-id|2000099001)", src.Endpoint)
	case !c.Demo && loopback(u.Hostname()):
		return fmt.Errorf("source.endpoint %q: a loopback address cannot route a receiver's responses back; give the target identifier NHS England registered for the gateway", src.Endpoint)
	case strings.TrimSpace(src.Name) == "":
		return fmt.Errorf("source.name: required: the organisation that runs the gateway, as MessageHeader.source.name")
	}
	if ct := src.Contact; ct.System != "" || ct.Value != "" {
		if !slices.Contains([]string{"phone", "email", "url"}, ct.System) || strings.TrimSpace(ct.Value) == "" {
			return fmt.Errorf("source.contact: a system (phone, email or url) and a value")
		}
	}
	return nil
}
