package http

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"slices"
	"strings"

	"github.com/student-mh-referrals/gateway/gateway"
)

// DemoTokens are the bearer tokens that the README publishes for the demo
// clients of gateway.example.yaml. They are refused unless the configuration
// says it is a demo, whatever client they are attached to, so that a copied
// example configuration cannot open a real deployment.
var DemoTokens = []string{
	"demo-uwe-submitter", "demo-liverpool-submitter", "demo-uwe-auditor", "demo-admin", "demo-sandbox-receiver",
	"demo-partnership-evaluator",
}

// Credential binds a client to the hash of its bearer token or client
// certificate. Plain credentials are never held.
type Credential struct {
	Client      gateway.Client
	TokenSHA256 string
	CertSHA256  string
}

// Authenticator finds the client behind a request, by bearer token or by
// mTLS client certificate.
type Authenticator struct {
	byToken map[string]*gateway.Client
	byCert  map[string]*gateway.Client
	demo    bool
	isDemo  map[string]bool
}

// NewAuthenticator indexes the credentials. With demo false, the published
// demo tokens are refused.
func NewAuthenticator(creds []Credential, demo bool) *Authenticator {
	a := &Authenticator{byToken: map[string]*gateway.Client{}, byCert: map[string]*gateway.Client{}, demo: demo, isDemo: map[string]bool{}}
	for i := range creds {
		c := creds[i].Client
		if h := strings.ToLower(creds[i].TokenSHA256); h != "" {
			a.byToken[h] = &c
		}
		if h := strings.ToLower(creds[i].CertSHA256); h != "" {
			a.byCert[h] = &c
		}
	}
	for _, t := range DemoTokens {
		a.isDemo[hashHex([]byte(t))] = true
	}
	return a
}

func hashHex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// Authenticate returns the client of r or an EUNAUTHORIZED error. A bearer
// token takes precedence over a client certificate when both are present.
func (a *Authenticator) Authenticate(r *http.Request) (*gateway.Client, error) {
	if hs := r.Header.Values("Authorization"); len(hs) > 1 {
		// Two credentials are ambiguous (a proxy and the server could each
		// read a different one): refuse rather than pick.
		return nil, unauthorized("send one Authorization header")
	}
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, token, ok := strings.Cut(h, " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
			return nil, unauthorized("use Authorization: Bearer <token>")
		}
		sum := hashHex([]byte(token))
		if a.isDemo[sum] && !a.demo {
			return nil, unauthorized("demo tokens are refused: this gateway is not configured as a demo")
		}
		if c, ok := a.byToken[sum]; ok {
			return c, nil
		}
		return nil, unauthorized("the bearer token is not recognised")
	}
	if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
		if c, ok := a.byCert[hashHex(r.TLS.PeerCertificates[0].Raw)]; ok {
			return c, nil
		}
		return nil, unauthorized("the client certificate is not registered")
	}
	return nil, unauthorized("authenticate with a bearer token or a client certificate")
}

func unauthorized(msg string) error {
	return issueError(gateway.EUNAUTHORIZED, "unauthenticated", "login", "", msg)
}

// require wraps h so that only an authenticated client holding one of roles
// reaches it; the client is in the request's context.
func (s *Server) require(h http.HandlerFunc, roles ...string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if s.Auth == nil {
			Error(w, r, gateway.Internal(errors.New("no authenticator configured")))
			return
		}
		c, err := s.Auth.Authenticate(r)
		if err != nil {
			Error(w, r, err)
			return
		}
		if !slices.ContainsFunc(roles, c.Has) {
			Error(w, r, issueError(gateway.EFORBIDDEN, "forbidden", "forbidden", "",
				"client "+c.ID+" lacks the role this needs ("+strings.Join(roles, " or ")+")"))
			return
		}
		h(w, r.WithContext(gateway.WithClient(r.Context(), c)))
	}
}
