package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// MessageDefinition is what the gateway needs of a receiver's BaRS
// MessageDefinition: BaRS has the sender ask the receiver for it before
// building a payload, and the receiver rejects a payload that does not
// adhere to it.
type MessageDefinition struct {
	// URL is the definition's canonical URL (MessageHeader.definition).
	URL string
	// Focus lists the resources the receiver requires in the message, with
	// their cardinality. Empty when only the URL is known (a definition
	// pinned in the registry): there is nothing to check then.
	Focus []DefinitionFocus
}

// DefinitionFocus is one MessageDefinition.focus: a resource type and how
// many of it the message must carry (Max "*" for no bound).
type DefinitionFocus struct {
	Code string
	Min  int
	Max  string
}

// DefinitionSource resolves the MessageDefinition of a service: the one its
// registry entry pins, or the receiver's own, fetched and cached. An
// unreachable receiver is EUNAVAILABLE, so that the university retries.
type DefinitionSource interface {
	Definition(ctx context.Context, svc *Service) (*MessageDefinition, error)
}

// DefinitionRetryAfter is how long a university is asked to wait when a
// receiver's MessageDefinition cannot be had (503 with Retry-After).
const DefinitionRetryAfter = 30 * time.Second

// DefinitionUnavailable is the error of a definition that cannot be had
// now; cause is logged by the edge, never shown.
func DefinitionUnavailable(svc *Service, cause error) *Error {
	return &Error{
		Code:       EUNAVAILABLE,
		Message:    fmt.Sprintf("the MessageDefinition of service %q cannot be had from the receiver now; the referral was not accepted: retry later", svc.ID),
		RetryAfter: DefinitionRetryAfter,
		Err:        cause,
	}
}

// definition resolves the definition of svc: through Definitions when set,
// else the registry's pinned URL (or none).
func (e *Evaluator) definition(ctx context.Context, svc *Service) (*MessageDefinition, error) {
	if e.Definitions == nil {
		return &MessageDefinition{URL: strings.TrimSpace(svc.MessageDefinition)}, nil
	}
	d, err := e.Definitions.Definition(ctx, svc)
	if err != nil {
		if ge := AsError(err); ge.Code == EUNAVAILABLE || ge.Code == EINTERNAL {
			return nil, DefinitionUnavailable(svc, err)
		}
		return nil, err
	}
	return d, nil
}

// Unmet lists the focus entries of d that bundle does not satisfy: too few
// (or too many) resources of that type. The Bundle itself counts as one
// "Bundle". A definition without focus entries is always met.
func (d *MessageDefinition) Unmet(bundle []byte) ([]string, error) {
	if len(d.Focus) == 0 {
		return nil, nil
	}
	entries, err := entriesOf(bundle)
	if err != nil {
		return nil, Internal(fmt.Errorf("definition check: %w", err))
	}
	count := map[string]int{"Bundle": 1}
	for _, e := range entries {
		count[e.Resource.ResourceType]++
	}
	var out []string
	for _, f := range d.Focus {
		n := count[f.Code]
		max, bounded := strconv.Atoi(f.Max)
		switch {
		case n < f.Min:
			out = append(out, fmt.Sprintf("at least %d %s (the message has %d)", f.Min, f.Code, n))
		case bounded == nil && n > max:
			out = append(out, fmt.Sprintf("at most %d %s (the message has %d)", max, f.Code, n))
		}
	}
	return out, nil
}

// assertMet checks the built message against d after the policies allowed
// it. The policies refuse a definition that the message they allow cannot
// meet (M-01), so a message that still misses it is a bug in the gateway (the
// policies' table of resources and the mapping disagree): an internal error,
// logged with the resource types and counts only, never a refusal.
func (d *MessageDefinition) assertMet(bundle []byte) error {
	unmet, err := d.Unmet(bundle)
	if err != nil || len(unmet) == 0 {
		return err
	}
	return Internal(fmt.Errorf("the policies allowed a message that does not meet the MessageDefinition %s: it needs %s", d.URL, strings.Join(unmet, "; ")))
}

// definitionSent is the MessageHeader.definition of a message the gateway
// built (its first entry), "" when it named none or cannot be read.
func definitionSent(bundle []byte) string {
	entries, err := entriesOf(bundle)
	if err != nil || len(entries) == 0 {
		return ""
	}
	return entries[0].Resource.Definition
}

// bundleEntry is what the definition checks read of a Bundle's entry: the
// resource's type, and the definition a MessageHeader names.
type bundleEntry struct {
	Resource struct {
		ResourceType string `json:"resourceType"`
		Definition   string `json:"definition"`
	} `json:"resource"`
}

// entriesOf reads the entries of a Bundle the gateway built.
func entriesOf(bundle []byte) ([]bundleEntry, error) {
	var b struct {
		Entry []bundleEntry `json:"entry"`
	}
	err := json.Unmarshal(bundle, &b)
	return b.Entry, err
}
