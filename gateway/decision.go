package gateway

import (
	"context"
	"time"
)

// Rule effects in a decision.
const (
	EffectAllow      = "allow"
	EffectDeny       = "deny"
	EffectObligation = "obligation"
)

// Obligation types: what the gateway must do before anything leaves.
const (
	ObligationStripFields        = "strip-fields"
	ObligationKeepCategories     = "keep-categories"
	ObligationDropTrustedContact = "drop-trusted-contact"
	ObligationNotifyStudent      = "notify-student"
)

// Decision is the policies' answer about one case record: a document, not a
// boolean, so that an IG lead can trace it to the principles behind it. The
// policies produce everything but ID, Time and PolicyRevision, which the
// gateway adds.
type Decision struct {
	ID    string `json:"id"`
	Allow bool   `json:"allow"`
	// Route is "consent" or the override ground; named on a deny too.
	Route string `json:"route"`
	// Rules lists every rule that shaped the decision: on a deny every rule
	// that failed, each once.
	Rules       []RuleResult `json:"rules"`
	Obligations []Obligation `json:"obligations"`
	// LawfulBases are the Art. 6 basis and Art. 9 condition the share rests
	// on (L-01); empty on a deny that never reached them.
	LawfulBases LawfulBasis `json:"lawfulBases"`
	// DataCategories are the categories that will be sent (M-01, C-04).
	DataCategories []string `json:"dataCategories"`
	// WithheldCategories are those the service needs and the record holds
	// that the student's consent withholds: the referral names them, so that
	// their absence is not read as "no risk" (M-02).
	WithheldCategories []string  `json:"withheldCategories,omitempty"`
	Recipient          Recipient `json:"recipient"`
	Time               string    `json:"time"`
	PolicyRevision     string    `json:"policyRevision"`
}

// RuleResult is one rule's contribution to a decision.
type RuleResult struct {
	ID      string `json:"id"`
	Effect  string `json:"effect"`
	Message string `json:"message"`
}

// Obligation is something the gateway must carry out before sending.
type Obligation struct {
	Type string `json:"type"`
	// Rule is the id of the rule that imposed it.
	Rule string `json:"rule"`
	// Fields are JSON paths of the case record to strip (strip-fields).
	Fields []string `json:"fields,omitempty"`
	// Categories are the only data categories that may leave
	// (keep-categories).
	Categories []string `json:"categories,omitempty"`
	Message    string   `json:"message,omitempty"`
}

// Recipient is who the decision lets the data go to.
type Recipient struct {
	Service string `json:"service"`
	ODSCode string `json:"odsCode"`
	Name    string `json:"name"`
}

// DecisionInput is what the policies decide on. Service is the registry entry
// the record names; At is the decision time. Definition is the receiver's
// MessageDefinition, resolved before deciding so that the policies refuse a
// definition that demands what they would not send (M-01); nil when none.
type DecisionInput struct {
	Record     *CaseRecord
	Service    *Service
	At         time.Time
	Definition *MessageDefinition
}

// Decider makes sharing decisions. The only implementation that matters is
// the OPA adapter: no sharing rule is written in Go.
type Decider interface {
	Decide(ctx context.Context, in DecisionInput) (*Decision, error)
	// Revision is the content hash of the policies and data in force.
	Revision() string
}

// PolicyRule describes one rule of the policy set, from its metadata, so that
// an IG lead can go from a rule id in a decision to the principle behind it.
type PolicyRule struct {
	// ID is the stable rule id that decisions and audit records cite.
	ID          string `json:"id"`
	Title       string `json:"title"`
	Description string `json:"description"`
	// Source names the public source the rule rebuilds.
	Source string `json:"source"`
	// Theme is its file's heading, e.g. "Capacity and age"; File the file.
	Theme string `json:"theme"`
	File  string `json:"file"`
}
