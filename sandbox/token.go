package sandbox

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strings"
	"time"
)

// TokenClient is an application the sandbox's token endpoint knows, as the
// NHS API platform knows a registered application: its API key (client id),
// the kid and public key of its signing key, and the token URL it must name
// as the assertion's audience.
type TokenClient struct {
	ClientID  string
	KeyID     string
	PublicKey *rsa.PublicKey
	Audience  string
}

// tokenLifetime is how long an access token the sandbox issues lasts (the
// NHS platform's last 599 s).
const tokenLifetime = 599 * time.Second

// tokenError answers a token request the OAuth 2.0 way (RFC 6749 5.2).
func tokenError(w http.ResponseWriter, status int, code, desc string) {
	writeJSON(w, status, "application/json", map[string]string{"error": code, "error_description": desc})
}

// token is POST /oauth2/token: the client-credentials grant with a signed
// JWT client assertion, checked as the NHS API platform checks it: RS512
// signature under the kid's public key, iss = sub = a known client id, aud
// the token URL, exp in the future and at most five minutes ahead, and a
// jti never seen before.
func (rc *Receiver) token(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		tokenError(w, http.StatusBadRequest, "invalid_request", "the body is not a form")
		return
	}
	switch {
	case r.PostForm.Get("grant_type") != "client_credentials":
		tokenError(w, http.StatusBadRequest, "unsupported_grant_type", "grant_type must be client_credentials")
		return
	case r.PostForm.Get("client_assertion_type") != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer":
		tokenError(w, http.StatusBadRequest, "invalid_request", "client_assertion_type must be urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
		return
	}
	reason := rc.checkAssertion(r.PostForm.Get("client_assertion"))
	if reason != "" {
		rc.opt.Logger.Info("token refused: " + reason)
		tokenError(w, http.StatusUnauthorized, "invalid_client", reason)
		return
	}
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	access := hex.EncodeToString(b)
	now := rc.opt.Now()
	rc.mu.Lock()
	for t, exp := range rc.tokens {
		if exp.Before(now) {
			delete(rc.tokens, t)
		}
	}
	rc.tokens[access] = now.Add(tokenLifetime)
	rc.mu.Unlock()
	writeJSON(w, http.StatusOK, "application/json", map[string]any{
		"access_token": access, "token_type": "Bearer", "expires_in": int(tokenLifetime / time.Second), "issued_at": now.UnixMilli(),
	})
}

// checkAssertion returns why assertion is refused, or "".
func (rc *Receiver) checkAssertion(assertion string) string {
	parts := strings.Split(assertion, ".")
	if len(parts) != 3 {
		return "client_assertion is not a signed JWT"
	}
	var head struct{ Alg, Kid string }
	var claims struct {
		Iss, Sub, Aud, Jti string
		Exp                int64
	}
	if decodePart(parts[0], &head) != nil || decodePart(parts[1], &claims) != nil {
		return "client_assertion is not a JWT"
	}
	if head.Alg != "RS512" {
		return "the assertion must be signed with RS512"
	}
	var client *TokenClient
	for i := range rc.opt.TokenClients {
		if c := &rc.opt.TokenClients[i]; c.ClientID == claims.Iss && c.KeyID == head.Kid {
			client = c
		}
	}
	if client == nil {
		return "unknown iss or kid"
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	sum := sha512.Sum512([]byte(parts[0] + "." + parts[1]))
	if err != nil || rsa.VerifyPKCS1v15(client.PublicKey, crypto.SHA512, sum[:], sig) != nil {
		return "the signature does not verify under the kid's public key"
	}
	now := rc.opt.Now()
	switch {
	case claims.Sub != claims.Iss:
		return "sub must equal iss (the API key)"
	case claims.Aud != client.Audience:
		return "aud must be the token URL"
	case claims.Jti == "":
		return "jti is required"
	case claims.Exp <= now.Unix():
		return "the assertion has expired"
	case claims.Exp > now.Add(5*time.Minute+5*time.Second).Unix():
		return "exp is more than five minutes ahead"
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if _, replay := rc.jtis[claims.Jti]; replay {
		return "jti has been used before"
	}
	rc.jtis[claims.Jti] = time.Unix(claims.Exp, 0)
	for j, exp := range rc.jtis {
		if exp.Before(now) {
			delete(rc.jtis, j)
		}
	}
	return ""
}

func decodePart(s string, v any) error {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

// authorised reports whether r carries an access token the sandbox issued
// and that has not expired. Without token clients the sandbox asks for no
// token, as the tests that post to it directly expect.
func (rc *Receiver) authorised(r *http.Request) bool {
	if len(rc.opt.TokenClients) == 0 {
		return true
	}
	access, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		return false
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	exp, known := rc.tokens[access]
	return known && rc.opt.Now().Before(exp)
}
