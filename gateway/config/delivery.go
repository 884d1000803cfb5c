package config

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net"
	"net/url"
	"os"
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
	// SignedJWT, when set, gets the bearer token as the NHS API platform
	// does for application-restricted APIs: a JWT client assertion signed
	// with the gateway's private key, exchanged for an access token.
	SignedJWT *SignedJWT `json:"signedJWT,omitempty"`
}

// SignedJWT configures NHS England's "signed JWT authentication" for one
// receiver: the gateway signs a client assertion (RS512, kid in the header;
// iss and sub the client id, aud the token URL, a fresh jti, expiring
// within five minutes) with the private key whose public key NHS England
// holds under KeyID, and posts it to TokenURL for an access token.
type SignedJWT struct {
	// TokenURL is the OAuth 2.0 token endpoint, e.g.
	// https://api.service.nhs.uk/oauth2/token.
	TokenURL string `json:"tokenURL"`
	// ClientID is the application's API key (iss and sub of the assertion).
	ClientID string `json:"clientID"`
	// KeyID is the kid under which the public key is registered.
	KeyID string `json:"keyId"`
	// PrivateKeyFile is the RSA private key (PEM, PKCS#1 or PKCS#8) that
	// signs the assertions; it never leaves the gateway. In demo mode it
	// may be left out: the published demo key (DemoJWTKey) signs them then,
	// and the sandbox's token endpoint trusts it. Outside demo mode it is
	// required and the demo key is refused.
	PrivateKeyFile string `json:"privateKeyFile,omitempty"`
}

// DemoJWTKey is the published demo signing key (PEM) of the signed JWT flow
// in demo mode. Everyone has it: it is refused outside demo mode.
//
//go:embed demo/jwt-signing-demo.pem
var DemoJWTKey []byte

// KeyPEM returns the private key that signs j's assertions: the file's, or
// the demo key when the file is left out (demo mode only; Validate checks).
func (j SignedJWT) KeyPEM() ([]byte, error) {
	if j.PrivateKeyFile == "" {
		return DemoJWTKey, nil
	}
	b, err := os.ReadFile(j.PrivateKeyFile)
	if err != nil {
		return nil, fmt.Errorf("transport.signedJWT.privateKeyFile: %w", err)
	}
	return b, nil
}

// isDemoKey reports whether data holds the demo key's PEM block.
func isDemoKey(data []byte) bool {
	demo, _ := pem.Decode(DemoJWTKey)
	got, _ := pem.Decode(data)
	return got != nil && demo != nil && bytes.Equal(got.Bytes, demo.Bytes)
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
// data leaves only over HTTPS: plain HTTP is for a sandbox or a validating
// mock on a loopback address, in demo mode only, and never carries a
// certificate. A bearer token goes over plain HTTP only with a signed JWT in
// demo mode (the sandbox's token endpoint, so that the demo uses the real
// flow); an OAuth2 client secret never does.
func (t Transport) validate(endpoint *url.URL, demo bool) error {
	plain := endpoint.Scheme == "http"
	switch {
	case plain && !loopback(endpoint.Hostname()):
		return fmt.Errorf("endpoint %q: plain http is allowed only to a loopback address (a sandbox) in demo mode; use https", endpoint)
	case plain && !demo:
		return fmt.Errorf("endpoint %q: plain http is allowed only in demo mode (to a loopback sandbox); use https", endpoint)
	case (t.CertFile == "") != (t.KeyFile == ""):
		return fmt.Errorf("transport: certFile and keyFile go together")
	case plain && (t.CAFile != "" || t.CertFile != ""):
		return fmt.Errorf("transport: caFile, certFile and keyFile need an https endpoint")
	case t.OAuth2 != nil && t.SignedJWT != nil:
		return fmt.Errorf("transport: oauth2 and signedJWT are two ways to get the token; give one")
	}
	if o := t.OAuth2; o != nil {
		switch {
		case o.TokenURL == "" || o.ClientID == "" || o.ClientSecretFile == "":
			return fmt.Errorf("transport.oauth2: tokenURL, clientID and clientSecretFile are required")
		case plain:
			return fmt.Errorf("transport.oauth2: a bearer token needs an https endpoint")
		}
		if err := tokenURL("transport.oauth2", o.TokenURL, true); err != nil {
			return err
		}
	}
	if j := t.SignedJWT; j != nil {
		if j.TokenURL == "" || j.ClientID == "" || j.KeyID == "" || (j.PrivateKeyFile == "" && !demo) {
			return fmt.Errorf("transport.signedJWT: tokenURL, clientID, keyId and privateKeyFile are required (privateKeyFile may be left out in demo mode alone)")
		}
		if b, err := os.ReadFile(j.PrivateKeyFile); !demo && err == nil && isDemoKey(b) {
			return fmt.Errorf("transport.signedJWT.privateKeyFile %s: the published demo key, refused outside demo mode", j.PrivateKeyFile)
		}
		if err := tokenURL("transport.signedJWT", j.TokenURL, demo); err != nil {
			return err
		}
	}
	return nil
}

// tokenURL accepts an https token endpoint, or plain http to a loopback
// address where loopbackHTTP allows it.
func tokenURL(at, raw string, loopbackHTTP bool) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || (u.Scheme != "https" && !(u.Scheme == "http" && loopbackHTTP && loopback(u.Hostname()))) {
		return fmt.Errorf("%s.tokenURL %q: an https URL is required", at, raw)
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
