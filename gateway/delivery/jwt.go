package delivery

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha512"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
)

// SignedJWT is NHS England's "signed JWT authentication" for
// application-restricted APIs: a client assertion signed with RS512 under
// the key registered as KeyID (iss = sub = the API key, aud = the token
// URL, a fresh jti, exp at most five minutes ahead) is exchanged at
// TokenURL for an access token (grant_type client_credentials).
type SignedJWT struct {
	TokenURL, ClientID, KeyID string
	// PrivateKeyFile is the RSA private key (PEM); PrivateKeyPEM, when set,
	// is the key itself (the published demo key) and the file is not read.
	PrivateKeyFile string
	PrivateKeyPEM  []byte
}

// AssertionType is the client_assertion_type of a signed JWT client
// assertion (RFC 7523).
const AssertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// AssertionLifetime is how long a client assertion is valid: the NHS API
// platform accepts at most five minutes.
const AssertionLifetime = 5 * time.Minute

// ParseRSAPrivateKey reads an RSA private key in PEM (PKCS#1 or PKCS#8).
func ParseRSAPrivateKey(data []byte) (*rsa.PrivateKey, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("no PEM block")
	}
	if k, err := x509.ParsePKCS1PrivateKey(block.Bytes); err == nil {
		return k, nil
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("not an RSA private key: %w", err)
	}
	rk, ok := k.(*rsa.PrivateKey)
	if !ok {
		return nil, errors.New("not an RSA private key")
	}
	return rk, nil
}

// Assertion signs one client assertion for cfg at now.
func Assertion(cfg SignedJWT, key *rsa.PrivateKey, now time.Time) (string, error) {
	header, _ := json.Marshal(map[string]string{"alg": "RS512", "typ": "JWT", "kid": cfg.KeyID})
	claims, _ := json.Marshal(map[string]any{
		"iss": cfg.ClientID, "sub": cfg.ClientID, "aud": cfg.TokenURL,
		"jti": uuid.NewString(), "exp": now.Add(AssertionLifetime).Unix(),
	})
	enc := base64.RawURLEncoding
	signing := enc.EncodeToString(header) + "." + enc.EncodeToString(claims)
	sum := sha512.Sum512([]byte(signing))
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA512, sum[:])
	if err != nil {
		return "", err
	}
	return signing + "." + enc.EncodeToString(sig), nil
}

// jwtSource gets and caches the access token of one receiver's signed JWT
// flow. The token is cached until it expires (less a margin) and never
// logged; one fetch serves every worker.
type jwtSource struct {
	cfg  SignedJWT
	key  *rsa.PrivateKey
	http *http.Client
	now  func() time.Time

	mu      sync.Mutex
	access  string
	expires time.Time
}

func newJWTSource(cfg SignedJWT, hc *http.Client) (*jwtSource, error) {
	data := cfg.PrivateKeyPEM
	if data == nil {
		b, err := os.ReadFile(cfg.PrivateKeyFile)
		if err != nil {
			return nil, fmt.Errorf("transport.signedJWT.privateKeyFile: %w", err)
		}
		data = b
	}
	key, err := ParseRSAPrivateKey(data)
	if err != nil {
		return nil, fmt.Errorf("transport.signedJWT.privateKeyFile: %w", err)
	}
	return &jwtSource{cfg: cfg, key: key, http: hc, now: time.Now}, nil
}

// token returns a valid access token, fetching one when the cached one has
// expired or is about to (within 30 s).
func (s *jwtSource) token(ctx context.Context) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.access != "" && s.now().Add(30*time.Second).Before(s.expires) {
		return s.access, nil
	}
	assertion, err := Assertion(s.cfg, s.key, s.now())
	if err != nil {
		return "", &tokenError{err}
	}
	form := url.Values{
		"grant_type":            {"client_credentials"},
		"client_assertion_type": {AssertionType},
		"client_assertion":      {assertion},
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.cfg.TokenURL, strings.NewReader(form.Encode()))
	if err != nil {
		return "", &tokenError{err}
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := s.http.Do(req)
	if err != nil {
		return "", &tokenError{err}
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusOK {
		// The body names the error (invalid_client, …), never the token.
		var e struct {
			Error string `json:"error"`
		}
		_ = json.Unmarshal(body, &e)
		return "", &tokenError{fmt.Errorf("token endpoint answered %d %s", resp.StatusCode, e.Error)}
	}
	var tok struct {
		AccessToken string      `json:"access_token"`
		ExpiresIn   json.Number `json:"expires_in"`
	}
	if err := json.Unmarshal(body, &tok); err != nil || tok.AccessToken == "" {
		return "", &tokenError{errors.New("token endpoint answered without an access_token")}
	}
	secs, err := tok.ExpiresIn.Int64()
	if err != nil || secs <= 0 {
		secs = 300 // the NHS platform's tokens last 599 s; assume less
	}
	s.access, s.expires = tok.AccessToken, s.now().Add(time.Duration(secs)*time.Second)
	return s.access, nil
}

// invalidate drops the cached token when it is access (a 401 answered it).
func (s *jwtSource) invalidate(access string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.access == access {
		s.access = ""
	}
}
