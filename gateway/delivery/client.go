package delivery

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

// Transport is how the worker reaches one receiver: which CAs to trust, the
// client certificate for mTLS, and OAuth2 client credentials. Every field
// is optional; the zero value is HTTPS with the system's roots (or plain
// HTTP to a sandbox on a loopback address). cmd/gateway fills it from the
// configuration, which checks it against the endpoint.
type Transport struct {
	// CAFile is a PEM bundle of the CAs that sign the receiver's
	// certificate; empty trusts the system's roots.
	CAFile string
	// CertFile and KeyFile are the gateway's client certificate and key
	// (PEM) for a receiver that requires mTLS.
	CertFile, KeyFile string
	// OAuth2, when set, gets a bearer token by the client-credentials grant
	// and sends it with every message.
	OAuth2 *OAuth2
	// SignedJWT, when set, gets the bearer token with a signed JWT client
	// assertion, as the NHS API platform does.
	SignedJWT *SignedJWT
}

// OAuth2 is the client-credentials grant for one receiver. The secret is
// read from a file so that it never sits in the configuration.
type OAuth2 struct {
	TokenURL, ClientID, ClientSecretFile string
	Scopes                               []string
}

// Client posts to one receiver: an HTTP client with the receiver's TLS
// settings (TLS 1.2 at least, its CAs, the gateway's client certificate for
// mTLS) and, when configured, bearer tokens (OAuth2 client credentials or a
// signed JWT client assertion), cached until they expire.
type Client struct {
	http   *http.Client
	tokens bearer
}

// bearer is where a client's access tokens come from.
type bearer interface {
	token(ctx context.Context) (string, error)
	invalidate(access string)
}

// NewClient builds the client for one receiver's transport. timeout bounds
// each request (and each token request). Files are read now, so a missing
// certificate or secret stops the gateway at start, not at the first
// referral.
func NewClient(t Transport, timeout time.Duration) (*Client, error) {
	tlsCfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("transport.caFile: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("transport.caFile %s: no PEM certificate in it", t.CAFile)
		}
		tlsCfg.RootCAs = pool
	}
	if t.CertFile != "" || t.KeyFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("transport.certFile/keyFile: %w", err)
		}
		tlsCfg.Certificates = []tls.Certificate{cert}
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = tlsCfg
	tr.MaxIdleConnsPerHost = 16
	hc := &http.Client{
		Transport: tr,
		Timeout:   timeout,
		// A redirect is not followed: the message and its bearer token go
		// only where the configuration says.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	c := &Client{http: hc}
	if o := t.OAuth2; o != nil {
		secret, err := os.ReadFile(o.ClientSecretFile)
		if err != nil {
			return nil, fmt.Errorf("transport.oauth2.clientSecretFile: %w", err)
		}
		s := strings.TrimSpace(string(secret))
		if s == "" {
			return nil, fmt.Errorf("transport.oauth2.clientSecretFile %s: empty", o.ClientSecretFile)
		}
		c.tokens = &tokenSource{
			cfg:  &clientcredentials.Config{ClientID: o.ClientID, ClientSecret: s, TokenURL: o.TokenURL, Scopes: o.Scopes},
			http: hc,
		}
	}
	if j := t.SignedJWT; j != nil {
		src, err := newJWTSource(*j, hc)
		if err != nil {
			return nil, err
		}
		c.tokens = src
	}
	return c, nil
}

// OAuth2 reports whether the client sends bearer tokens.
func (c *Client) OAuth2() bool { return c.tokens != nil }

// Do sends req, with a bearer token when the receiver uses one. A 401
// answer drops the cached token, so the next attempt fetches a new one.
func (c *Client) Do(req *http.Request) (*http.Response, error) {
	var access string
	if c.tokens != nil {
		tok, err := c.tokens.token(req.Context())
		if err != nil {
			return nil, err
		}
		access = tok
		req.Header.Set("Authorization", "Bearer "+access)
	}
	resp, err := c.http.Do(req)
	if err == nil && resp.StatusCode == http.StatusUnauthorized && c.tokens != nil {
		c.tokens.invalidate(access)
	}
	return resp, err
}

// CloseIdleConnections closes the client's idle connections (at shutdown).
func (c *Client) CloseIdleConnections() { c.http.CloseIdleConnections() }

// tokenSource caches one client-credentials token until it expires (less
// the oauth2 package's ten-second margin). One fetch serves every worker:
// the lock is held while fetching.
type tokenSource struct {
	cfg  *clientcredentials.Config
	http *http.Client // the receiver's client: the token endpoint gets the same TLS settings

	mu  sync.Mutex
	tok *oauth2.Token
}

// tokenError is a failure to get a token, so that it is reported as such.
type tokenError struct{ err error }

func (e *tokenError) Error() string { return "oauth2 token: " + e.err.Error() }
func (e *tokenError) Unwrap() error { return e.err }

func (s *tokenSource) token(ctx context.Context) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tok.Valid() {
		return s.tok.AccessToken, nil
	}
	tok, err := s.cfg.Token(context.WithValue(ctx, oauth2.HTTPClient, s.http))
	if err != nil {
		return "", &tokenError{err}
	}
	s.tok = tok
	return tok.AccessToken, nil
}

func (s *tokenSource) invalidate(access string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tok != nil && s.tok.AccessToken == access {
		s.tok = nil
	}
}
