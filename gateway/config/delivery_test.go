package config

import (
	"bytes"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/student-mh-referrals/gateway/gateway"
)

func TestDeliveryDefaults(t *testing.T) {
	c, err := Load("")
	if err != nil {
		t.Fatal(err)
	}
	want := Delivery{
		Workers: 4, MaxAttempts: 20, MaxAge: Duration(24 * time.Hour),
		BaseBackoff: Duration(10 * time.Second), MaxBackoff: Duration(30 * time.Minute),
		Timeout: Duration(30 * time.Second), Lease: Duration(2 * time.Minute), PollInterval: Duration(2 * time.Second),
	}
	if c.Delivery != want {
		t.Errorf("example delivery %+v, want %+v", c.Delivery, want)
	}
	// The example spells out the defaults; without the block they hold too.
	start := strings.Index(string(Example), "delivery:\n")
	end := strings.Index(string(Example), "  pollInterval: 2s\n") + len("  pollInterval: 2s\n")
	if start < 0 || end < start {
		t.Fatal("the example has no delivery block")
	}
	c, err = Parse([]byte(string(Example[:start]) + string(Example[end:])))
	if err != nil {
		t.Fatal(err)
	}
	if c.Delivery != want || (Delivery{}).WithDefaults() != want {
		t.Errorf("default delivery %+v, want %+v", c.Delivery, want)
	}
	if c.Sandbox.Callback.URL != "http://127.0.0.1:8080/fhir" || c.Sandbox.Callback.Token != "demo-sandbox-receiver" {
		t.Errorf("sandbox callback %+v", c.Sandbox.Callback)
	}
	tr := c.Transports()
	if len(tr) != len(c.Services) {
		t.Errorf("transports %v", tr)
	}
	if _, ok := tr["u-cope"]; !ok {
		t.Error("no transport for u-cope")
	}
}

func TestTransportAndDelivery(t *testing.T) {
	base := string(Example)
	const ucope = "    endpoint: http://127.0.0.1:8081/fhir\n    target: { system: https://fhir.nhs.uk/Id/dos-service-id, value: \"2000010001\" }\n"
	const transport = "    transport:\n      signedJWT: { tokenURL: http://127.0.0.1:8081/oauth2/token, clientID: demo-gateway-api-key, keyId: demo-1 }\n"
	// service rewrites u-cope's endpoint and transport (the first ones in
	// the example).
	service := func(endpoint, tr string) [][2]string {
		return [][2]string{
			{ucope, strings.Replace(ucope, "http://127.0.0.1:8081/fhir", endpoint, 1)},
			{transport, "    transport: " + tr + "\n"},
		}
	}
	oauth := func(tokenURL string) string {
		return "{ oauth2: { tokenURL: " + tokenURL + ", clientID: gw, clientSecretFile: /run/secret } }"
	}
	tests := []struct {
		name  string
		edits [][2]string
		want  string // "" accepts
	}{
		{"https with everything", service("https://nhs.example.org/fhir",
			"{ caFile: ca.pem, certFile: c.pem, keyFile: k.pem, oauth2: { tokenURL: https://auth.example.org/token, clientID: gw, clientSecretFile: s, scopes: [a, b] } }"), ""},
		{"plain http to a loopback name", service("http://localhost:9000/fhir", "{}"), ""},
		{"oauth2 token URL on loopback http", service("https://nhs.example.org/fhir", oauth("http://127.0.0.1:9999/token")), ""},
		{"plain http beyond loopback", service("http://nhs.example.org/fhir", "{}"), "plain http is allowed only to a loopback"},
		{"cert without key", service("https://nhs.example.org/fhir", "{ certFile: c.pem }"), "certFile and keyFile go together"},
		{"TLS settings on plain http", service("http://127.0.0.1:8081/fhir", "{ caFile: ca.pem }"), "need an https endpoint"},
		{"bearer token over plain http", service("http://127.0.0.1:8081/fhir", oauth("https://auth.example.org/token")), "bearer token needs an https endpoint"},
		{"oauth2 without a secret", service("https://nhs.example.org/fhir", "{ oauth2: { tokenURL: https://a.example.org, clientID: gw } }"), "clientSecretFile are required"},
		{"oauth2 token URL over http", service("https://nhs.example.org/fhir", oauth("http://auth.example.org/token")), "tokenURL"},
		{"unknown transport key", service("https://nhs.example.org/fhir", "{ caFiles: ca.pem }"), "unknown field"},
		{"signed JWT over loopback http in demo mode", service("http://127.0.0.1:8081/fhir", "{ signedJWT: { tokenURL: http://127.0.0.1:8081/oauth2/token, clientID: k, keyId: a } }"), ""},
		{"signed JWT without a kid", service("https://nhs.example.org/fhir", "{ signedJWT: { tokenURL: https://api.example.org/oauth2/token, clientID: k } }"), "keyId"},
		{"signed JWT token URL beyond loopback over http", service("https://nhs.example.org/fhir", "{ signedJWT: { tokenURL: http://api.example.org/oauth2/token, clientID: k, keyId: a } }"), "tokenURL"},
		{"both token flows", service("https://nhs.example.org/fhir", "{ oauth2: { tokenURL: https://a.example.org/t, clientID: gw, clientSecretFile: s }, signedJWT: { tokenURL: https://a.example.org/t, clientID: k, keyId: a } }"), "give one"},
		{"lease not above timeout", [][2]string{{"  lease: 2m\n", "  lease: 30s\n"}}, "delivery.lease"},
		{"backoff base above max", [][2]string{{"  baseBackoff: 10s\n", "  baseBackoff: 1h\n"}}, "delivery.baseBackoff"},
		{"too many workers", [][2]string{{"  workers: 4\n", "  workers: 1000\n"}}, "delivery.workers"},
		{"negative attempts", [][2]string{{"  maxAttempts: 20\n", "  maxAttempts: -1\n"}}, "delivery.maxAttempts"},
		{"negative duration", [][2]string{{"  maxAge: 24h\n", "  maxAge: -1h\n"}}, "must be positive"},
		{"duration without unit", [][2]string{{"  maxAge: 24h\n", "  maxAge: 86400\n"}}, "duration"},
		{"duration nonsense", [][2]string{{"  timeout: 30s\n", "  timeout: soon\n"}}, "duration"},
		{"callback without token", [][2]string{{"    token: demo-sandbox-receiver\n", ""}}, "sandbox.callback.token"},
		{"callback not a URL", [][2]string{{"    url: http://127.0.0.1:8080/fhir\n", "    url: ftp://x\n"}}, "sandbox.callback.url"},
		{"no callback", [][2]string{{"  callback:\n    url: http://127.0.0.1:8080/fhir\n    token: demo-sandbox-receiver\n", ""}}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc := base
			for _, e := range tt.edits {
				if !strings.Contains(doc, e[0]) {
					t.Fatalf("fixture text %q not in the example", e[0])
				}
				doc = strings.Replace(doc, e[0], e[1], 1)
			}
			if !strings.Contains(base, transport) {
				t.Fatal("the example has no transport block")
			}
			c, err := Parse([]byte(doc))
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("error %v, want one mentioning %q", err, tt.want)
			case tt.want == "" && tt.name == "https with everything":
				tr := c.Transports()["u-cope"]
				if tr.CAFile != "ca.pem" || tr.KeyFile != "k.pem" || tr.OAuth2 == nil || strings.Join(tr.OAuth2.Scopes, " ") != "a b" {
					t.Errorf("transport %+v", tr)
				}
			}
		})
	}
}

// TestTransportOutsideDemo: outside demo mode plain HTTP is refused even to
// a loopback address, the signed JWT needs its own key file, and the
// published demo key is refused.
func TestTransportOutsideDemo(t *testing.T) {
	demoFile := filepath.Join(t.TempDir(), "demo.pem")
	if err := os.WriteFile(demoFile, DemoJWTKey, 0o600); err != nil {
		t.Fatal(err)
	}
	https, _ := url.Parse("https://nhs.example.org/fhir")
	loop, _ := url.Parse("http://127.0.0.1:8081/fhir")
	jwt := func(file string) Transport {
		return Transport{SignedJWT: &SignedJWT{TokenURL: "https://api.example.org/oauth2/token", ClientID: "k", KeyID: "a", PrivateKeyFile: file}}
	}
	tests := []struct {
		name     string
		endpoint *url.URL
		tr       Transport
		want     string
	}{
		{"plain http to loopback", loop, Transport{}, "only in demo mode"},
		{"signed JWT without a key file", https, jwt(""), "privateKeyFile"},
		{"the demo key", https, jwt(demoFile), "published demo key"},
		{"a key file of its own", https, jwt("/etc/gateway/jwt.pem"), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.tr.validate(tt.endpoint, false)
			if (tt.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.want)) {
				t.Errorf("error %v, want %q", err, tt.want)
			}
		})
	}
	if k, err := (SignedJWT{}).KeyPEM(); err != nil || !bytes.Equal(k, DemoJWTKey) {
		t.Errorf("no key file gives %v, want the demo key", err)
	}
}

// TestSource: MessageHeader.source as configured: a name, a contact of a
// known system, and the gateway's own target identifier as system|value,
// never a loopback address outside demo mode.
func TestSource(t *testing.T) {
	good := gateway.Source{Name: "Gateway", Endpoint: "https://fhir.nhs.uk/Id/dos-service-id|2000099001",
		Contact: gateway.SourceContact{System: "email", Value: "ops@example.ac.uk"}}
	tests := []struct {
		name string
		demo bool
		edit func(*gateway.Source)
		want string
	}{
		{"as the example", false, func(*gateway.Source) {}, ""},
		{"no endpoint", false, func(s *gateway.Source) { s.Endpoint = "" }, "required"},
		{"a URL, not system|value", true, func(s *gateway.Source) { s.Endpoint = "http://127.0.0.1:8080/fhir" }, "system|value"},
		{"loopback outside demo", false, func(s *gateway.Source) { s.Endpoint = "http://127.0.0.1:8080/fhir|gw" }, "loopback"},
		{"loopback in demo", true, func(s *gateway.Source) { s.Endpoint = "http://127.0.0.1:8080/fhir|gw" }, ""},
		{"no value", false, func(s *gateway.Source) { s.Endpoint = "https://fhir.nhs.uk/Id/dos-service-id|" }, "system|value"},
		{"no name", false, func(s *gateway.Source) { s.Name = "" }, "source.name"},
		{"contact of an unknown system", false, func(s *gateway.Source) { s.Contact.System = "pager" }, "source.contact"},
		{"no contact", false, func(s *gateway.Source) { s.Contact = gateway.SourceContact{} }, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &Config{Demo: tt.demo, Source: good}
			tt.edit(&c.Source)
			err := c.validateSource()
			if (tt.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.want)) {
				t.Errorf("error %v, want %q", err, tt.want)
			}
		})
	}
}
