package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestPlainHTTPOnAPublicInterface: the API may serve plain HTTP only on a
// loopback address, unless the configuration states that TLS ends in front
// of the gateway, which is then warned about at every start.
func TestPlainHTTPOnAPublicInterface(t *testing.T) {
	tests := []struct {
		name, listen, tls string
		refused           bool
		warning           string
	}{
		{"loopback", "127.0.0.1:8080", "", false, ""},
		{"localhost", "localhost:8080", "", false, ""},
		{"IPv6 loopback", "[::1]:8080", "", false, ""},
		{"every interface", "0.0.0.0:8080", "", true, ""},
		{"every interface, no host", ":8080", "", true, ""},
		{"every IPv6 interface", "[::]:8080", "", true, ""},
		{"a private address", "10.0.0.5:8080", "", true, ""},
		{"a host name", "gateway.internal:8080", "", true, ""},
		{"TLS ends upstream", "0.0.0.0:8080", "  terminatedUpstream: true\n", false, "plain HTTP on 0.0.0.0:8080"},
		{"TLS served by the gateway", "0.0.0.0:8443", "  certFile: c.pem\n  keyFile: k.pem\n", false, ""},
		{"not host:port", "8080", "", true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			y := strings.Replace(string(Example), "listen: 127.0.0.1:8080", "listen: \""+tt.listen+"\"", 1)
			y = strings.Replace(y, "tls:\n  certFile: \"\"\n  keyFile: \"\"\n", "tls:\n"+tt.tls, 1)
			y = strings.Replace(y, "  terminatedUpstream: false\n", "", 1)
			c, err := Parse([]byte(y))
			if tt.refused {
				if err == nil || !strings.Contains(err.Error(), "listen \""+tt.listen+"\"") {
					t.Fatalf("error %v, want a refusal naming listen", err)
				}
				if tt.listen != "8080" && !strings.Contains(err.Error(), "tls.terminatedUpstream") {
					t.Fatalf("the refusal does not say how to state that TLS ends upstream: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			w := strings.Join(c.Warnings(), "\n")
			if (tt.warning == "") != (w == "") || !strings.Contains(w, tt.warning) {
				t.Fatalf("warnings %q, want one mentioning %q", w, tt.warning)
			}
		})
	}
}

// TestMetricsListener: /metrics has its own address, loopback by default; a
// non-loopback one is accepted with a warning; one shared with the API, or
// not host:port, is refused.
func TestMetricsListener(t *testing.T) {
	c, err := Load("")
	if err != nil {
		t.Fatal(err)
	}
	if c.Metrics.Listen != "127.0.0.1:9090" || len(c.Warnings()) != 0 {
		t.Fatalf("metrics.listen %q, warnings %q", c.Metrics.Listen, c.Warnings())
	}
	without, err := Parse([]byte(strings.Replace(string(Example), "metrics:\n  listen: 127.0.0.1:9090\n", "", 1)))
	if err != nil || without.Metrics.Listen != "127.0.0.1:9090" {
		t.Fatalf("default: %v %+v", err, without)
	}
	tests := []struct{ name, listen, want string }{
		{"every interface", "0.0.0.0:9090", "warning"},
		{"the API's address", "127.0.0.1:8080", "its own listener"},
		{"not host:port", "9090", "host:port"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse([]byte(strings.Replace(string(Example), "listen: 127.0.0.1:9090", "listen: \""+tt.listen+"\"", 1)))
			if tt.want == "warning" {
				if err != nil || !strings.Contains(strings.Join(c.Warnings(), "\n"), "/metrics is served without a login on the non-loopback address "+tt.listen) {
					t.Fatalf("%v: warnings %q", err, c.Warnings())
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), "metrics.listen") || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want one naming metrics.listen (%s)", err, tt.want)
			}
		})
	}
}

// TestPseudonymKeyEntropy: a key that was not drawn at random (all zero,
// one byte value, a short pattern repeated) is refused, naming the setting,
// as are a short key and one not in hex; a random key is read.
func TestPseudonymKeyEntropy(t *testing.T) {
	const random = "3aca4bf82a91897f9957e76680656fdbec7660d190ca3d90ddc01494153a6165" // openssl rand -hex 32
	tests := []struct {
		name, file, want string
	}{
		{"random", random, ""},
		{"random, with a newline", random + "\n", ""},
		{"all zero", strings.Repeat("00", 32), "distinct byte values"},
		{"one byte value", strings.Repeat("ab", 64), "distinct byte values"},
		{"a 16-byte pattern twice", strings.Repeat("000102030405060708090a0b0c0d0e0f", 2), "distinct byte values"},
		{"too short", random[:62], "at least 32 bytes"},
		{"not hex", strings.Repeat("zz", 32), "at least 32 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "pseudonym.key")
			if err := os.WriteFile(path, []byte(tt.file), 0o600); err != nil {
				t.Fatal(err)
			}
			c := &Config{Audit: Audit{PseudonymKeyFile: path}}
			key, err := c.PseudonymKey()
			if tt.want == "" {
				if err != nil || len(key) != 32 {
					t.Fatalf("%v: key of %d bytes", err, len(key))
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), "audit.pseudonymKeyFile") || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want one naming audit.pseudonymKeyFile (%s)", err, tt.want)
			}
		})
	}
}
