package config

import (
	"fmt"
	"net"
)

// Metrics configures the Prometheus endpoint. It has its own listener, not
// the API's: the counts it shows (decisions by route, overrides among them)
// are operational data that no API client should read without a login.
type Metrics struct {
	// Listen is the address of /metrics, 127.0.0.1:9090 by default. A
	// non-loopback address is accepted with a warning at every start: the
	// endpoint is plain HTTP without a login, for a private network only.
	Listen string `json:"listen"`
}

// validateListeners refuses plain HTTP on a non-loopback API address unless
// TLS ends in front of the gateway, and checks the metrics address.
func (c *Config) validateListeners() error {
	host, _, err := net.SplitHostPort(c.Listen)
	if err != nil {
		return fmt.Errorf("listen %q: a host:port such as 127.0.0.1:8080", c.Listen)
	}
	if !loopback(host) && c.TLS.CertFile == "" && !c.TLS.TerminatedUpstream {
		return fmt.Errorf("listen %q: plain HTTP on a non-loopback address would carry tokens and referrals unencrypted; "+
			"set tls.certFile and tls.keyFile, or tls.terminatedUpstream: true if TLS ends at a proxy in front of the gateway", c.Listen)
	}
	if _, port, err := net.SplitHostPort(c.Metrics.Listen); err != nil || port == "" {
		return fmt.Errorf("metrics.listen %q: a host:port such as 127.0.0.1:9090", c.Metrics.Listen)
	}
	if c.Metrics.Listen == c.Listen {
		return fmt.Errorf("metrics.listen %q: /metrics has its own listener, not the API's", c.Metrics.Listen)
	}
	return nil
}

// Warnings are what an operator must hear at every start: settings that are
// allowed but weaken how the gateway is exposed, and settings that are
// accepted but have no effect.
func (c *Config) Warnings() []string {
	var out []string
	if c.Policies.Engine != "" {
		out = append(out, "policies.engine is ignored: decisions run on OPA's own evaluator")
	}
	if host, _, _ := net.SplitHostPort(c.Listen); !loopback(host) && c.TLS.CertFile == "" {
		out = append(out, "the API serves plain HTTP on "+c.Listen+" (tls.terminatedUpstream): make sure that only the TLS proxy in front of the gateway can reach it")
	}
	if host, _, _ := net.SplitHostPort(c.Metrics.Listen); !loopback(host) {
		out = append(out, "/metrics is served without a login on the non-loopback address "+c.Metrics.Listen+" (metrics.listen): keep it on a private network")
	}
	if c.Audit.CheckpointDir == "" {
		out = append(out, "audit.checkpointDir is not set: no checkpoints of the decision chains are written, so a chain cut back or deleted in the database goes unseen")
	}
	return append(out, c.institutionWarnings()...)
}
