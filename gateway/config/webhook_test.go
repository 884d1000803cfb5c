package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestWebhookRules: a webhook is HTTPS (plain http only to loopback in demo
// mode), belongs to a submitter bound to an institution, and names a
// secret file; its events are known ones.
func TestWebhookRules(t *testing.T) {
	const uwe = "  - id: uwe-cms\n    institution: \"10007164\" # University of the West of England\n    roles: [submitter]\n"
	for _, tt := range []struct {
		name, client, webhook string
		demo                  bool
		want                  string // "" for accepted
	}{
		{"https", uwe, "{url: 'https://uni.example.ac.uk/hooks/gateway?t=1', secretFile: s.hex}", false, ""},
		{"every option", uwe, "{url: 'https://uni.example.ac.uk/h', secretFile: s.hex, maxAttempts: 12, events: [referral.status]}", false, ""},
		{"loopback http in demo", uwe, "{url: 'http://127.0.0.1:8081/hook', secretFile: s.hex}", true, ""},
		{"loopback http outside demo", uwe, "{url: 'http://127.0.0.1:8081/hook', secretFile: s.hex}", false, "https is required"},
		{"public http in demo", uwe, "{url: 'http://uni.example.ac.uk/hook', secretFile: s.hex}", true, "https is required"},
		{"another scheme", uwe, "{url: 'ftp://uni.example.ac.uk/hook', secretFile: s.hex}", false, "https is required"},
		{"relative", uwe, "{url: '/hook', secretFile: s.hex}", false, "absolute https URL"},
		{"credentials in the URL", uwe, "{url: 'https://u:p@uni.example.ac.uk/hook', secretFile: s.hex}", false, "no credentials"},
		{"no secret", uwe, "{url: 'https://uni.example.ac.uk/hook'}", false, "secretFile: required"},
		{"too many attempts", uwe, "{url: 'https://uni.example.ac.uk/hook', secretFile: s.hex, maxAttempts: 99}", false, "maxAttempts 99"},
		{"unknown event", uwe, "{url: 'https://uni.example.ac.uk/hook', secretFile: s.hex, events: [referral.deleted]}", false, "unknown event"},
		{"an auditor", "  - id: uwe-cms\n    institution: \"10007164\"\n    roles: [ig-auditor]\n", "{url: 'https://uni.example.ac.uk/hook', secretFile: s.hex}", false, "only a submitter"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			y := string(Example)
			if !tt.demo {
				y = strings.Replace(y, "demo: true", "demo: false", 1)
				// Outside demo mode the receivers are reached over TLS.
				y = strings.ReplaceAll(y, "http://127.0.0.1:8081/", "https://receiver.example.nhs.uk/")
				y = strings.ReplaceAll(y, "keyId: demo-1 }", "keyId: demo-1, privateKeyFile: jwt.pem }")
			}
			y = strings.Replace(y, uwe, tt.client+"    webhook: "+tt.webhook+"\n", 1)
			c, err := Parse([]byte(y))
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				if subs := c.WebhookSubscribers()["10007164"]; len(subs) != 1 || subs[0].ClientID != "uwe-cms" {
					t.Fatalf("subscribers %+v", subs)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), "clients[0] (uwe-cms).webhook") || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want one naming the webhook and %q", err, tt.want)
			}
		})
	}
}

// TestWebhookSecret: the secret file holds a random key of at least 32
// bytes; maxAttempts defaults to 8.
func TestWebhookSecret(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := "3f9a1c7e5b2d8f4a6c0e1b3d5f7a9c2e4b6d8f0a1c3e5b7d9f2a4c6e8b0d1f3a"
	for _, tt := range []struct{ name, file, want string }{
		{"random", write("good", good+"\n"), ""},
		{"short", write("short", "3f9a1c7e5b2d8f4a"), "at least 32 bytes"},
		{"not random", write("zero", strings.Repeat("00", 32)), "distinct byte values"},
		{"missing", filepath.Join(dir, "none"), "no such file"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := &Config{Clients: []Client{{ID: "uwe-cms", Institution: "10007164", Webhook: &Webhook{URL: "https://x.example", SecretFile: tt.file}}}}
			eps, err := c.WebhookEndpoints()
			if tt.want == "" {
				if err != nil || len(eps) != 1 || len(eps[0].Secret) != 32 || eps[0].MaxAttempts != DefaultWebhookMaxAttempts {
					t.Fatalf("endpoints %+v, %v", eps, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), "webhook.secretFile") || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want one naming webhook.secretFile and %q", err, tt.want)
			}
		})
	}
}
