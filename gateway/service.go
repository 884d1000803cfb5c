package gateway

import "encoding/json"

// Service is one NHS receiving service in the registry. The registry is data in
// the configuration: adding a pathway is a configuration change, not a code or
// policy change (P-01).
type Service struct {
	// ID is the stable id that case records name in referral.service and that
	// consents name among their recipients.
	ID           string       `json:"id"`
	Name         string       `json:"name"`
	Description  string       `json:"description,omitempty"`
	Organization Organization `json:"organization"`
	// Endpoint is the base URL of the service's FHIR API; messages go to
	// {Endpoint}/$process-message.
	Endpoint string `json:"endpoint"`
	// Target is the BaRS target identifier (NHSD-Target-Identifier header and
	// MessageHeader.destination.endpoint as system|value).
	Target Identifier `json:"target"`
	// MessageDefinition is the canonical URL of the BaRS MessageDefinition the
	// service requires. Empty, the gateway asks the receiver for it
	// (GET {Endpoint}/MessageDefinition) when a referral is accepted and
	// caches the answer.
	MessageDefinition string `json:"messageDefinition,omitempty"`
	// UseContext is the BaRS use-context header sent with every message to
	// the service (usage statistics of the BaRS proxy); empty sends
	// DefaultUseContext.
	UseContext string `json:"useContext,omitempty"`
	// DataCategories are the categories the service needs (M-01): nothing
	// outside them is sent, whatever the consent allows.
	DataCategories []string `json:"dataCategories"`
	// Eligibility is the service's referral criteria, judged by P-01.
	Eligibility Eligibility `json:"eligibility"`
	// ReturnSteps are the steps the service may report back to the
	// university under its data-sharing agreement; empty means
	// DefaultReturnSteps. A response reporting any other step is refused.
	ReturnSteps []Step `json:"returnSteps,omitempty"`
}

// Organization is an NHS organisation identified by its ODS code.
type Organization struct {
	Name    string `json:"name"`
	ODSCode string `json:"odsCode"`
}

// Identifier is a FHIR-style system and value.
type Identifier struct {
	System string `json:"system"`
	Value  string `json:"value"`
}

// Eligibility is a service's referral criteria as data. An empty list means no
// restriction on that dimension.
type Eligibility struct {
	// Institutions are the UKPRNs of the partner universities it accepts.
	Institutions []string `json:"institutions,omitempty"`
	// NeedsAnyOf: at least one presenting need must be among these.
	NeedsAnyOf []string `json:"needsAnyOf,omitempty"`
	// ExcludedNeeds: a referral with any of these needs is not eligible.
	ExcludedNeeds []string `json:"excludedNeeds,omitempty"`
	// ExcludeUnderSecondaryCare refuses students already under secondary
	// mental-health care.
	ExcludeUnderSecondaryCare bool `json:"excludeUnderSecondaryCare,omitempty"`
	// Routes are the routes the service accepts ("consent", or an override
	// ground); U-COPE is voluntary and accepts consent only.
	Routes []string `json:"routes,omitempty"`
	// MinAge and MaxAge bound the student's age at the decision time.
	MinAge *int `json:"minAge,omitempty"`
	MaxAge *int `json:"maxAge,omitempty"`
}

// Registry is the set of receiving services, keyed by id.
type Registry struct {
	services  map[string]*Service
	order     []string
	snapshots map[string]ServiceSnapshot
}

// ServiceSnapshot is a registry entry as the policies see it (its JSON) and
// the hex SHA-256 of that JSON, taken once when the registry is built, so
// that every decision can keep the entry it was made on at the cost of a
// lookup.
type ServiceSnapshot struct {
	Hash string
	JSON json.RawMessage
}

// NewRegistry builds a registry; a duplicate id is an error because a case
// record must name exactly one service.
func NewRegistry(services []Service) (*Registry, error) {
	r := &Registry{services: make(map[string]*Service, len(services)), snapshots: make(map[string]ServiceSnapshot, len(services))}
	for i := range services {
		s := services[i]
		if _, dup := r.services[s.ID]; dup {
			return nil, Errorf(EINVALID, "service %q is defined twice in the registry", s.ID)
		}
		r.services[s.ID] = &s
		r.order = append(r.order, s.ID)
		b, err := json.Marshal(&s)
		if err != nil {
			return nil, Internal(err)
		}
		r.snapshots[s.ID] = ServiceSnapshot{Hash: hashCanonical(b), JSON: b}
	}
	return r, nil
}

// Lookup returns the service with the given id.
func (r *Registry) Lookup(id string) (*Service, bool) {
	s, ok := r.services[id]
	return s, ok
}

// Snapshot returns the entry of service id as a decision keeps it.
func (r *Registry) Snapshot(id string) (ServiceSnapshot, bool) {
	s, ok := r.snapshots[id]
	return s, ok
}

// Services returns every service in configuration order.
func (r *Registry) Services() []*Service {
	out := make([]*Service, 0, len(r.order))
	for _, id := range r.order {
		out = append(out, r.services[id])
	}
	return out
}

// IDs returns the service ids in configuration order, for error messages that
// list what is allowed.
func (r *Registry) IDs() []string { return append([]string(nil), r.order...) }
