package config

import (
	"fmt"
	"net/url"
	"slices"
	"strings"

	"github.com/student-mh-referrals/gateway/gateway"
)

// Webhook is a client's optional notification: the operator's HTTPS URL
// that the gateway calls, signed with the secret, at every change of the
// client's institution's referrals, so that the university's system need
// not poll. Clients never register URLs themselves: a URL set by a caller
// would let it make the gateway call any address (server-side request
// forgery).
type Webhook struct {
	// URL is where the calls are posted: https, or http to a loopback
	// address in demo mode.
	URL string `json:"url"`
	// SecretFile holds the signing secret: at least 32 random bytes in hex
	// (`openssl rand -hex 32`), shared with the receiver out of band.
	SecretFile string `json:"secretFile"`
	// MaxAttempts is how many times a call is tried before it goes to the
	// dead letter (default 8, spanning about 20 minutes).
	MaxAttempts int `json:"maxAttempts,omitempty"`
	// Events are the event types sent (referral.status, referral.step);
	// empty sends all.
	Events []string `json:"events,omitempty"`
}

// DefaultWebhookMaxAttempts is a webhook's maxAttempts when none is set.
const DefaultWebhookMaxAttempts = 8

// validateWebhook checks the webhook of client cl, named at in errors.
func validateWebhook(at string, cl Client, demo bool) error {
	w := cl.Webhook
	if w == nil {
		return nil
	}
	at += ".webhook"
	if cl.Institution == "" || !slices.Contains(cl.Roles, gateway.RoleSubmitter) {
		return fmt.Errorf("%s: only a submitter bound to an institution has a webhook (it is told of its institution's referrals)", at)
	}
	u, err := url.Parse(w.URL)
	switch {
	case err != nil || u.Host == "" || u.Opaque != "":
		return fmt.Errorf("%s.url %q: an absolute https URL is required", at, w.URL)
	case u.User != nil:
		return fmt.Errorf("%s.url: no credentials in the URL; the signature (secretFile) authenticates the gateway", at)
	case u.Fragment != "":
		return fmt.Errorf("%s.url: no fragment", at)
	case u.Scheme == "http" && !(demo && loopback(u.Hostname())):
		return fmt.Errorf("%s.url %q: https is required (plain http only to a loopback address in demo mode)", at, u.Redacted())
	case u.Scheme != "https" && u.Scheme != "http":
		return fmt.Errorf("%s.url: https is required", at)
	case w.SecretFile == "":
		return fmt.Errorf("%s.secretFile: required (a file holding at least 32 random bytes in hex, e.g. from `openssl rand -hex 32`)", at)
	case w.MaxAttempts < 0 || w.MaxAttempts > 50:
		return fmt.Errorf("%s.maxAttempts %d: between 1 and 50 (0 for the default, %d)", at, w.MaxAttempts, DefaultWebhookMaxAttempts)
	}
	for _, e := range w.Events {
		if !slices.Contains(gateway.WebhookEventTypes, e) {
			return fmt.Errorf("%s.events: unknown event %q; use %s", at, e, strings.Join(gateway.WebhookEventTypes, ", "))
		}
	}
	return nil
}

// WebhookEndpoint is a client's webhook with its secret read and its
// defaults filled, as the dispatcher takes it.
type WebhookEndpoint struct {
	ClientID    string
	URL         string
	Secret      []byte
	MaxAttempts int
}

// WebhookEndpoints reads every configured webhook's secret, held to the
// same entropy rule as the audit keys.
func (c *Config) WebhookEndpoints() ([]WebhookEndpoint, error) {
	var out []WebhookEndpoint
	for i, cl := range c.Clients {
		if cl.Webhook == nil {
			continue
		}
		field := fmt.Sprintf("clients[%d] (%s).webhook.secretFile", i, cl.ID)
		keys, err := c.keyFile(field, cl.Webhook.SecretFile, nil)
		if err != nil {
			return nil, err
		}
		n := cl.Webhook.MaxAttempts
		if n == 0 {
			n = DefaultWebhookMaxAttempts
		}
		out = append(out, WebhookEndpoint{ClientID: cl.ID, URL: cl.Webhook.URL, Secret: keys[0], MaxAttempts: n})
	}
	return out, nil
}

// WebhookSubscribers are the clients with a webhook by institution, as the
// store takes them (SetWebhookClients).
func (c *Config) WebhookSubscribers() map[string][]gateway.WebhookSubscriber {
	out := map[string][]gateway.WebhookSubscriber{}
	for _, cl := range c.Clients {
		if cl.Webhook != nil {
			out[cl.Institution] = append(out[cl.Institution], gateway.WebhookSubscriber{ClientID: cl.ID, Events: cl.Webhook.Events})
		}
	}
	return out
}
