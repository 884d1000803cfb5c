// Package config is the gateway's typed configuration: one YAML file, decoded
// strictly (a misspelt key is an error, not a silently ignored setting) and
// checked before anything starts.
package config

import (
	_ "embed"
	"fmt"
	"net"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/student-mh-referrals/gateway/gateway"
)

// Example is gateway.example.yaml at the repository root, embedded so that
// `gateway evaluate` works from any directory. A test keeps the two
// identical.
//
//go:embed gateway.example.yaml
var Example []byte

// Config is the whole configuration.
type Config struct {
	// Listen is the address of the gateway's HTTP API.
	Listen string `json:"listen"`
	// Demo accepts the published demo credentials. Without it they are
	// refused, so a copied example cannot open a real deployment.
	Demo     bool           `json:"demo"`
	TLS      TLS            `json:"tls"`
	Clients  []Client       `json:"clients"`
	Sandbox  Sandbox        `json:"sandbox"`
	Log      Log            `json:"log"`
	Policies Policies       `json:"policies"`
	Source   gateway.Source `json:"source"`
	Limits   Limits         `json:"limits"`
	Delivery Delivery       `json:"delivery"`
	Services []Service      `json:"services"`
	// Institutions are the universities whose students the notices of
	// T-01 address, with their wellbeing contacts.
	Institutions []Institution `json:"institutions"`
	Store        Store         `json:"store"`
	// Conformance configures the validator of the output gate and of
	// `gateway validate`.
	Conformance Conformance `json:"conformance"`
	Audit       Audit       `json:"audit"`
	Retention   Retention   `json:"retention"`
	Debug       Debug       `json:"debug"`
	Metrics     Metrics     `json:"metrics"`
	// Partnerships are the partnerships whose evaluators see their
	// evaluation figures (partnerships.go).
	Partnerships []Partnership `json:"partnerships"`
}

// Debug holds what an operator turns on to measure the gateway, never in
// normal running.
type Debug struct {
	// PprofListen, when set, serves the Go runtime profiles
	// (net/http/pprof) on this address. Only a loopback address is
	// accepted: profiles expose the process's code and memory.
	PprofListen string `json:"pprofListen"`
}

// validate accepts an empty address or a loopback host:port.
func (d Debug) validate() error {
	if d.PprofListen == "" {
		return nil
	}
	host, _, err := net.SplitHostPort(d.PprofListen)
	if err != nil || !loopback(host) {
		return fmt.Errorf("debug.pprofListen %q: a loopback host:port such as 127.0.0.1:6060, or empty for off", d.PprofListen)
	}
	return nil
}

// TLS configures HTTPS and client certificates for the API.
type TLS struct {
	CertFile string `json:"certFile"`
	KeyFile  string `json:"keyFile"`
	// ClientCAFile, when set, makes the listener ask for client
	// certificates signed by these CAs (mTLS).
	ClientCAFile string `json:"clientCAFile"`
	// TerminatedUpstream states that TLS ends in front of the gateway (a
	// load balancer or proxy): only then may the API serve plain HTTP on a
	// non-loopback address, with a warning at every start.
	TerminatedUpstream bool `json:"terminatedUpstream"`
}

// Client is a calling system as configured: who it is, what it may do, and
// the hash of its credential.
type Client struct {
	ID          string   `json:"id"`
	Institution string   `json:"institution,omitempty"`
	Roles       []string `json:"roles"`
	Services    []string `json:"services,omitempty"`
	// Partnership binds a partnership evaluator to a partnership id.
	Partnership string `json:"partnership,omitempty"`
	// TokenSHA256 is the hex SHA-256 of the client's bearer token.
	TokenSHA256 string `json:"tokenSHA256,omitempty"`
	// CertSHA256 is the hex SHA-256 fingerprint of its client certificate.
	CertSHA256 string `json:"certSHA256,omitempty"`
	// Webhook, for a submitter, is where the gateway tells it of its
	// institution's referrals' changes (webhook.go).
	Webhook *Webhook `json:"webhook,omitempty"`
}

// Conformance configures FHIR validation.
type Conformance struct {
	// Definitions is a directory of FHIR definitions (R4 core bundles, UK
	// Core snapshots, package folders) or a rules file written by
	// `gateway validate --write-rules`; empty uses the built-in rule set.
	Definitions string `json:"definitions"`
}

// Sandbox configures the sandbox NHS receiver that `make run` starts.
type Sandbox struct {
	Listen string `json:"listen"`
	// Callback is where the sandbox posts its response messages, as a real
	// receiver posts them to the sender's $process-message.
	Callback SandboxCallback `json:"callback"`
}

// Log configures logging.
type Log struct {
	// Level is debug, info, warn or error.
	Level string `json:"level"`
}

// Policies says where the Rego policies come from.
type Policies struct {
	// Dir, when set, loads policies from that directory instead of the
	// embedded set.
	Dir string `json:"dir"`
	// CandidatesDir, when set, holds candidate policy sets, one per
	// subdirectory, that an operator placed there for an IG lead to replay
	// against the retained decisions from the web page (/ui/replay).
	CandidatesDir string `json:"candidatesDir,omitempty"`
	// Engine is accepted and ignored: decisions run on OPA's own evaluator.
	// A configuration that sets it still loads, and Warnings names it.
	Engine string `json:"engine,omitempty"`
}

// Limits bounds what a client may send.
type Limits struct {
	// MaxBodyBytes is the largest request body accepted (413 beyond).
	MaxBodyBytes int64 `json:"maxBodyBytes"`
	// MaxInFlight is how many submissions and dry runs are served at once;
	// beyond it a request gets 503 with Retry-After, so that a burst is
	// refused cleanly rather than queued until memory runs out.
	MaxInFlight int `json:"maxInFlight"`
}

// Load reads and checks a configuration file; an empty path means the
// embedded example.
func Load(path string) (*Config, error) {
	data := Example
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("read configuration: %w", err)
		}
		data = b
	}
	c, err := Parse(data)
	if err != nil {
		name := path
		if name == "" {
			name = "embedded gateway.example.yaml"
		}
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return c, nil
}

// DemoMode says whether the configuration at path (the embedded example
// when empty) sets demo: true, without checking the rest: commands that
// write invented data refuse a live configuration before anything else.
func DemoMode(path string) (bool, error) {
	data := Example
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return false, fmt.Errorf("read configuration: %w", err)
		}
		data = b
	}
	var c struct {
		Demo bool `json:"demo" yaml:"demo"`
	}
	if err := yaml.Unmarshal(data, &c); err != nil {
		return false, fmt.Errorf("decode configuration: %w", err)
	}
	return c.Demo, nil
}

// Parse decodes and checks a configuration.
func Parse(data []byte) (*Config, error) {
	c := &Config{}
	if err := yaml.UnmarshalStrict(data, c); err != nil {
		return nil, fmt.Errorf("decode configuration: %w", err)
	}
	c.defaults()
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *Config) defaults() {
	if c.Listen == "" {
		c.Listen = "127.0.0.1:8080"
	}
	if c.Sandbox.Listen == "" {
		c.Sandbox.Listen = "127.0.0.1:8081"
	}
	if c.Log.Level == "" {
		c.Log.Level = "info"
	}
	if c.Limits.MaxInFlight == 0 {
		c.Limits.MaxInFlight = 64
	}
	if c.Limits.MaxBodyBytes == 0 {
		c.Limits.MaxBodyBytes = 256 << 10
	}
	c.Store.defaults()
	if c.Source.Software == "" {
		c.Source.Software = "student-mh-referral-gateway"
	}
	c.Delivery.defaults()
	c.Retention.defaults()
	c.Audit.defaults(c.Store)
	if c.Metrics.Listen == "" {
		c.Metrics.Listen = "127.0.0.1:9090"
	}
}

// Validate checks what decoding cannot: that every service is complete and
// uses the contract's vocabularies.
func (c *Config) Validate() error {
	if !slices.Contains([]string{"debug", "info", "warn", "error"}, c.Log.Level) {
		return fmt.Errorf("log.level %q: use debug, info, warn or error", c.Log.Level)
	}
	if c.Limits.MaxInFlight < 1 {
		return fmt.Errorf("limits.maxInFlight %d: must be at least 1", c.Limits.MaxInFlight)
	}
	if c.Limits.MaxBodyBytes < 1024 {
		return fmt.Errorf("limits.maxBodyBytes %d: must be at least 1024", c.Limits.MaxBodyBytes)
	}
	if len(c.Services) == 0 {
		return fmt.Errorf("services: at least one receiving service is needed")
	}
	seen := map[string]bool{}
	for i, s := range c.Services {
		at := fmt.Sprintf("services[%d]", i)
		if s.ID == "" {
			return fmt.Errorf("%s.id: required", at)
		}
		at = fmt.Sprintf("services[%d] (%s)", i, s.ID)
		if seen[s.ID] {
			return fmt.Errorf("%s: duplicate id", at)
		}
		seen[s.ID] = true
		switch {
		case s.Name == "":
			return fmt.Errorf("%s.name: required", at)
		case s.Organization.Name == "" || s.Organization.ODSCode == "":
			return fmt.Errorf("%s.organization: name and odsCode are required", at)
		case !gateway.ValidODSCode(s.Organization.ODSCode):
			return fmt.Errorf("%s.organization.odsCode %q: not an ODS code", at, s.Organization.ODSCode)
		case s.Target.System == "" || s.Target.Value == "":
			return fmt.Errorf("%s.target: system and value are required", at)
		case slices.ContainsFunc(s.ReturnSteps, func(st gateway.Step) bool { return !st.Valid() }):
			return fmt.Errorf("%s.returnSteps: unknown step; use %v", at, gateway.Steps)
		case len(s.DataCategories) == 0:
			return fmt.Errorf("%s.dataCategories: list the categories the service needs", at)
		}
		u, err := url.Parse(s.Endpoint)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("%s.endpoint %q: an http or https URL is required", at, s.Endpoint)
		}
		if err := s.Transport.validate(u, c.Demo); err != nil {
			return fmt.Errorf("%s.%w", at, err)
		}
		for _, dc := range s.DataCategories {
			if !slices.Contains(gateway.DataCategories, dc) {
				return fmt.Errorf("%s.dataCategories: unknown category %q", at, dc)
			}
		}
		el := s.Eligibility
		for _, n := range append(append([]string{}, el.NeedsAnyOf...), el.ExcludedNeeds...) {
			if !slices.Contains(gateway.NeedCodes, n) {
				return fmt.Errorf("%s.eligibility: unknown need %q", at, n)
			}
		}
		for _, r := range el.Routes {
			if r != "consent" && !slices.Contains(gateway.OverrideGrounds, r) {
				return fmt.Errorf("%s.eligibility.routes: unknown route %q", at, r)
			}
		}
		for _, u := range el.Institutions {
			if !gateway.ValidUKPRN(u) {
				return fmt.Errorf("%s.eligibility.institutions: %q is not a UKPRN", at, u)
			}
		}
	}
	if err := c.validateSource(); err != nil {
		return err
	}
	if err := c.Store.validate(); err != nil {
		return err
	}
	if _, err := c.InstitutionRegistry(); err != nil {
		return err
	}
	if (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		return fmt.Errorf("tls: certFile and keyFile go together")
	}
	if c.TLS.ClientCAFile != "" && c.TLS.CertFile == "" {
		return fmt.Errorf("tls.clientCAFile: client certificates need TLS (certFile and keyFile)")
	}
	if err := c.Delivery.validate(); err != nil {
		return err
	}
	if err := c.Retention.validate(); err != nil {
		return err
	}
	if err := c.Audit.validate(c.Demo); err != nil {
		return err
	}
	if err := c.Sandbox.Callback.validate(); err != nil {
		return err
	}
	if err := c.Debug.validate(); err != nil {
		return err
	}
	if err := c.validateListeners(); err != nil {
		return err
	}
	if err := c.validatePartnerships(seen); err != nil {
		return err
	}
	return c.validateClients(seen)
}

var sha256Hex = regexp.MustCompile(`^[0-9a-f]{64}$`)

// validateClients checks each client's binding and credential; services is
// the set of service ids in the registry.
func (c *Config) validateClients(services map[string]bool) error {
	ids, creds := map[string]bool{}, map[string]string{}
	for i, cl := range c.Clients {
		at := fmt.Sprintf("clients[%d]", i)
		if cl.ID == "" {
			return fmt.Errorf("%s.id: required", at)
		}
		at = fmt.Sprintf("clients[%d] (%s)", i, cl.ID)
		if ids[cl.ID] {
			return fmt.Errorf("%s: duplicate id", at)
		}
		ids[cl.ID] = true
		if len(cl.Roles) == 0 {
			return fmt.Errorf("%s.roles: at least one of %s", at, strings.Join(gateway.Roles, ", "))
		}
		for _, r := range cl.Roles {
			if !slices.Contains(gateway.Roles, r) {
				return fmt.Errorf("%s.roles: unknown role %q; use %s", at, r, strings.Join(gateway.Roles, ", "))
			}
		}
		receiver := slices.Contains(cl.Roles, gateway.RoleReceiver)
		evaluator := slices.Contains(cl.Roles, gateway.RolePartnershipEvaluator) || cl.Partnership != ""
		if evaluator {
			if err := c.validateEvaluator(at, cl); err != nil {
				return err
			}
		}
		switch {
		case receiver && len(cl.Roles) > 1:
			return fmt.Errorf("%s.roles: a receiver holds no other role", at)
		case receiver && len(cl.Services) == 0:
			return fmt.Errorf("%s.services: a receiver is bound to services (ids, or \"*\")", at)
		case receiver && cl.Institution != "":
			return fmt.Errorf("%s.institution: a receiver is bound to services, not an institution", at)
		case !receiver && len(cl.Services) > 0:
			return fmt.Errorf("%s.services: only receivers are bound to services", at)
		case !receiver && !evaluator && cl.Institution == "" && !slices.Equal(cl.Roles, []string{gateway.RoleAdmin}):
			return fmt.Errorf("%s.institution: submitters and IG auditors are bound to one institution (UKPRN)", at)
		case cl.Institution != "" && !gateway.ValidUKPRN(cl.Institution):
			return fmt.Errorf("%s.institution %q: not a UKPRN", at, cl.Institution)
		case cl.TokenSHA256 == "" && cl.CertSHA256 == "":
			return fmt.Errorf("%s: give tokenSHA256 or certSHA256", at)
		}
		if err := validateWebhook(at, cl, c.Demo); err != nil {
			return err
		}
		for _, s := range cl.Services {
			if s != "*" && !services[s] {
				return fmt.Errorf("%s.services: %q is not in the registry", at, s)
			}
		}
		for _, h := range []string{cl.TokenSHA256, cl.CertSHA256} {
			if h == "" {
				continue
			}
			if !sha256Hex.MatchString(h) {
				return fmt.Errorf("%s: credential hashes are 64 lower-case hex digits (SHA-256)", at)
			}
			if other, dup := creds[h]; dup {
				return fmt.Errorf("%s: the same credential as client %s", at, other)
			}
			creds[h] = cl.ID
		}
	}
	return nil
}

// Registry builds the service registry.
func (c *Config) Registry() (*gateway.Registry, error) {
	services := make([]gateway.Service, len(c.Services))
	for i, s := range c.Services {
		services[i] = s.Service
	}
	return gateway.NewRegistry(services)
}

// Transports returns each service's transport by service id, for the
// delivery worker.
func (c *Config) Transports() map[string]Transport {
	out := make(map[string]Transport, len(c.Services))
	for _, s := range c.Services {
		out[s.ID] = s.Transport
	}
	return out
}
