package gateway

import (
	"context"
	"slices"
)

// Roles a client may hold. A role confines what a client may do; the
// institution (or, for a receiver, the services) confines whose data.
const (
	RoleSubmitter = "submitter"  // posts and reads its institution's referrals
	RoleAuditor   = "ig-auditor" // reads its institution's decisions and audit trail
	RoleAdmin     = "admin"      // operates the gateway (outbox, reloads, retention)
	RoleReceiver  = "receiver"   // an NHS service posting BaRS response messages
	// RolePartnershipEvaluator reads the evaluation figures of one
	// partnership of institutions and services, and never a record.
	RolePartnershipEvaluator = "partnership-evaluator"
)

// Roles lists every role, for configuration checks and documentation.
var Roles = []string{RoleSubmitter, RoleAuditor, RoleAdmin, RoleReceiver, RolePartnershipEvaluator}

// Client is an authenticated calling system. University clients are bound to
// one institution by UKPRN; receivers are bound to receiving services.
type Client struct {
	ID string
	// Institution is the UKPRN whose data the client may touch; empty for
	// admins and receivers.
	Institution string
	Roles       []string
	// Services are the receiving-service ids a receiver answers for; "*"
	// means every service in the registry.
	Services []string
	// Partnership is the id of the partnership a partnership evaluator is
	// bound to (instead of an institution); empty for every other client.
	Partnership string
}

// Has reports whether the client holds role.
func (c *Client) Has(role string) bool { return c != nil && slices.Contains(c.Roles, role) }

// Serves reports whether a receiver client answers for the service.
func (c *Client) Serves(service string) bool {
	return c != nil && (slices.Contains(c.Services, "*") || slices.Contains(c.Services, service))
}

type clientKey struct{}

// WithClient returns a context carrying the authenticated client.
func WithClient(ctx context.Context, c *Client) context.Context {
	return context.WithValue(ctx, clientKey{}, c)
}

// ClientFrom returns the authenticated client of ctx, or nil.
func ClientFrom(ctx context.Context) *Client {
	c, _ := ctx.Value(clientKey{}).(*Client)
	return c
}
