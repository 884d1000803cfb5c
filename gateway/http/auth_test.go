package http

import (
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/student-mh-referrals/gateway/gateway"
)

func TestAuthenticate(t *testing.T) {
	cert := &x509.Certificate{Raw: []byte("a client certificate in DER")}
	creds := []Credential{
		{Client: gateway.Client{ID: "uwe-cms", Institution: "10007164", Roles: []string{gateway.RoleSubmitter}}, TokenSHA256: hashHex([]byte("demo-uwe-submitter"))},
		{Client: gateway.Client{ID: "real", Institution: "10006842", Roles: []string{gateway.RoleSubmitter}}, TokenSHA256: hashHex([]byte("s3cret-token"))},
		{Client: gateway.Client{ID: "nhs", Roles: []string{gateway.RoleReceiver}, Services: []string{"u-cope"}}, CertSHA256: hashHex(cert.Raw)},
	}
	tests := []struct {
		name   string
		demo   bool
		header string
		cert   *x509.Certificate
		want   string // client id, or "" for a 401
	}{
		{"token", false, "Bearer s3cret-token", nil, "real"},
		{"scheme is case-insensitive", false, "bearer s3cret-token", nil, "real"},
		{"demo token in demo mode", true, "Bearer demo-uwe-submitter", nil, "uwe-cms"},
		{"demo token refused outside demo mode", false, "Bearer demo-uwe-submitter", nil, ""},
		{"unknown token", true, "Bearer guess", nil, ""},
		{"basic auth", true, "Basic dXNlcjpwYXNz", nil, ""},
		{"empty bearer", true, "Bearer ", nil, ""},
		{"client certificate", false, "", cert, "nhs"},
		{"unknown certificate", false, "", &x509.Certificate{Raw: []byte("other")}, ""},
		{"nothing", false, "", nil, ""},
		{"two Authorization headers", false, "Bearer s3cret-token\nBearer s3cret-token", nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := NewAuthenticator(creds, tt.demo)
			r := httptest.NewRequest("GET", "/", nil)
			if tt.header != "" {
				r.Header["Authorization"] = strings.Split(tt.header, "\n")
			}
			if tt.cert != nil {
				r.TLS = &tls.ConnectionState{PeerCertificates: []*x509.Certificate{tt.cert}}
			}
			c, err := a.Authenticate(r)
			switch {
			case tt.want == "" && gateway.ErrorCode(err) != gateway.EUNAUTHORIZED:
				t.Fatalf("got client %v, err %v; want unauthorized", c, err)
			case tt.want != "" && (err != nil || c.ID != tt.want):
				t.Fatalf("got client %v, err %v; want %s", c, err, tt.want)
			}
		})
	}
}

// require confines each route to its roles: 401 without a client, 403 with
// the wrong role.
func TestRequire(t *testing.T) {
	s := &Server{Auth: NewAuthenticator([]Credential{
		{Client: gateway.Client{ID: "sub", Institution: "10007164", Roles: []string{gateway.RoleSubmitter}}, TokenSHA256: hashHex([]byte("t-sub"))},
		{Client: gateway.Client{ID: "aud", Institution: "10007164", Roles: []string{gateway.RoleAuditor}}, TokenSHA256: hashHex([]byte("t-aud"))},
	}, false)}
	var seen *gateway.Client
	h := s.require(func(w http.ResponseWriter, r *http.Request) { seen = gateway.ClientFrom(r.Context()) }, gateway.RoleSubmitter)
	for _, tt := range []struct {
		name, token string
		status      int
	}{
		{"submitter", "t-sub", 200},
		{"auditor may not submit", "t-aud", 403},
		{"anonymous", "", 401},
	} {
		t.Run(tt.name, func(t *testing.T) {
			seen = nil
			r := httptest.NewRequest("POST", "/", nil)
			if tt.token != "" {
				r.Header.Set("Authorization", "Bearer "+tt.token)
			}
			rr := httptest.NewRecorder()
			h(rr, r)
			if rr.Code != tt.status {
				t.Fatalf("status %d, want %d: %s", rr.Code, tt.status, rr.Body)
			}
			if tt.status == 200 && (seen == nil || seen.ID != "sub") {
				t.Errorf("handler did not get the client: %v", seen)
			}
			if tt.status == 401 && rr.Header().Get("WWW-Authenticate") == "" {
				t.Error("401 without WWW-Authenticate")
			}
		})
	}
}
