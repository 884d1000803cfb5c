package config

import (
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"time"

	"github.com/student-mh-referrals/gateway/gateway"
)

// Service is a registry entry as configured: the domain's gateway.Service
// (its fields sit at the same level in the YAML) and how to reach it. The
// transport stays out of the domain type because only the delivery worker
// needs it, and it names the files that hold secrets.
type Service struct {
	gateway.Service
	Transport Transport `json:"transport"`
}

// Transport is how the delivery worker reaches one receiver: which CAs to
// trust, the client certificate for mTLS, and OAuth2 client credentials.
// Every field is optional; the zero value is HTTPS with the system's roots
// (or plain HTTP to a sandbox on a loopback address).
type Transport struct {
	// CAFile is a PEM bundle of the CAs that sign the receiver's
	// certificate; empty trusts the system's roots.
	CAFile string `json:"caFile,omitempty"`
	// CertFile and KeyFile are the gateway's client certificate and key
	// (PEM) for a receiver that requires mTLS.
	CertFile string `json:"certFile,omitempty"`
	KeyFile  string `json:"keyFile,omitempty"`
	// OAuth2, when set, gets a bearer token by the client-credentials grant
	// and sends it with every message.
	OAuth2 *OAuth2 `json:"oauth2,omitempty"`
}

// OAuth2 configures the client-credentials grant for one receiver. The
// secret is read from a file so that it never sits in the configuration.
type OAuth2 struct {
	TokenURL         string   `json:"tokenURL"`
	ClientID         string   `json:"clientID"`
	ClientSecretFile string   `json:"clientSecretFile"`
	Scopes           []string `json:"scopes,omitempty"`
}

// Delivery tunes the outbox worker that posts messages to the receivers.
// A zero field takes the default noted on it.
type Delivery struct {
	// Workers is how many messages one gateway process posts at once
	// (default 4).
	Workers int `json:"workers"`
	// MaxAttempts is how many times a message is tried before it is dead
	// lettered (default 20).
	MaxAttempts int `json:"maxAttempts"`
	// MaxAge is how long after it was queued a message may still be tried;
	// then it is dead lettered (default 24h).
	MaxAge Duration `json:"maxAge"`
	// BaseBackoff and MaxBackoff bound the exponential backoff between
	// attempts (defaults 10s and 30m); a receiver's Retry-After wins when
	// it asks for longer.
	BaseBackoff Duration `json:"baseBackoff"`
	MaxBackoff  Duration `json:"maxBackoff"`
	// Timeout bounds one attempt, connection and answer included
	// (default 30s).
	Timeout Duration `json:"timeout"`
	// Lease is how long a claimed message stays with its worker before
	// another may take it (default 2m); it must exceed Timeout.
	Lease Duration `json:"lease"`
	// PollInterval is how often an idle worker looks for due messages
	// (default 2s).
	PollInterval Duration `json:"pollInterval"`
}

// Duration is a time.Duration written as Go duration text in the YAML
// ("30s", "15m", "72h"): a bare number would leave its unit to guesswork.
type Duration time.Duration

// UnmarshalJSON reads duration text.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("a duration is text such as \"30s\" or \"15m\"")
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("duration %q: %w", s, err)
	}
	*d = Duration(v)
	return nil
}

// MarshalJSON writes duration text.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// D returns the time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// WithDefaults returns d with every zero field set to its default, for
// callers that build a Delivery without Parse (tests, embedders).
func (d Delivery) WithDefaults() Delivery {
	d.defaults()
	return d
}

func (d *Delivery) defaults() {
	setInt := func(v *int, def int) {
		if *v == 0 {
			*v = def
		}
	}
	setDur := func(v *Duration, def time.Duration) {
		if *v == 0 {
			*v = Duration(def)
		}
	}
	setInt(&d.Workers, 4)
	setInt(&d.MaxAttempts, 20)
	setDur(&d.MaxAge, 24*time.Hour)
	setDur(&d.BaseBackoff, 10*time.Second)
	setDur(&d.MaxBackoff, 30*time.Minute)
	setDur(&d.Timeout, 30*time.Second)
	setDur(&d.Lease, 2*time.Minute)
	setDur(&d.PollInterval, 2*time.Second)
}

// Validate checks the settings after defaults; Parse calls it.
func (d Delivery) Validate() error { return d.validate() }

func (d Delivery) validate() error {
	switch {
	case d.Workers < 1 || d.Workers > 256:
		return fmt.Errorf("delivery.workers %d: between 1 and 256", d.Workers)
	case d.MaxAttempts < 1:
		return fmt.Errorf("delivery.maxAttempts %d: at least 1", d.MaxAttempts)
	case d.MaxAge < 0 || d.BaseBackoff < 0 || d.MaxBackoff < 0 || d.Timeout < 0 || d.Lease < 0 || d.PollInterval < 0:
		return fmt.Errorf("delivery: durations must be positive")
	case d.BaseBackoff > d.MaxBackoff:
		return fmt.Errorf("delivery.baseBackoff %s: more than delivery.maxBackoff %s", d.BaseBackoff.D(), d.MaxBackoff.D())
	case d.Lease <= d.Timeout:
		return fmt.Errorf("delivery.lease %s: must exceed delivery.timeout %s, or a message could be claimed again while its post is in flight",
			d.Lease.D(), d.Timeout.D())
	}
	return nil
}

// validate checks a receiver's transport against its endpoint. Clinical
// data leaves only over HTTPS: plain HTTP is for a sandbox on a loopback
// address, and never carries a bearer token or expects a certificate.
func (t Transport) validate(endpoint *url.URL) error {
	plain := endpoint.Scheme == "http"
	switch {
	case plain && !loopback(endpoint.Hostname()):
		return fmt.Errorf("endpoint %q: plain http is allowed only to a loopback address (a sandbox); use https", endpoint)
	case (t.CertFile == "") != (t.KeyFile == ""):
		return fmt.Errorf("transport: certFile and keyFile go together")
	case plain && (t.CAFile != "" || t.CertFile != ""):
		return fmt.Errorf("transport: caFile, certFile and keyFile need an https endpoint")
	}
	if o := t.OAuth2; o != nil {
		switch {
		case o.TokenURL == "" || o.ClientID == "" || o.ClientSecretFile == "":
			return fmt.Errorf("transport.oauth2: tokenURL, clientID and clientSecretFile are required")
		case plain:
			return fmt.Errorf("transport.oauth2: a bearer token needs an https endpoint")
		}
		u, err := url.Parse(o.TokenURL)
		if err != nil || u.Host == "" || (u.Scheme != "https" && !(u.Scheme == "http" && loopback(u.Hostname()))) {
			return fmt.Errorf("transport.oauth2.tokenURL %q: an https URL is required", o.TokenURL)
		}
	}
	return nil
}

// loopback reports whether host is this machine.
func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// SandboxCallback is the gateway's inbound FHIR base and the bearer token
// the sandbox presents there (a receiver client's token). An empty URL turns
// response messages off.
type SandboxCallback struct {
	URL   string `json:"url"`
	Token string `json:"token"`
}

func (cb SandboxCallback) validate() error {
	if cb.URL == "" {
		return nil
	}
	if u, err := url.Parse(cb.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("sandbox.callback.url %q: an http or https URL is required", cb.URL)
	}
	if cb.Token == "" {
		return fmt.Errorf("sandbox.callback.token: required with a callback url")
	}
	return nil
}
