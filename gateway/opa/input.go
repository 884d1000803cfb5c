package opa

import (
	"bytes"
	"encoding/json"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/student-mh-referrals/gateway/gateway"
)

// policyInput is the input document the policies read (documented at the top
// of policies/decision.rego): the record and the service exactly as they
// marshal to JSON, the decision time in RFC 3339, UTC, and what the
// receiver's MessageDefinition demands.
type policyInput struct {
	Record     *gateway.CaseRecord `json:"record"`
	Service    *gateway.Service    `json:"service"`
	At         string              `json:"at"`
	Definition *policyDefinition   `json:"definition,omitempty"`
}

// policyDefinition is input.definition: the definition's URL and its focus
// entries, for M-01 to refuse a definition that demands what the policies
// would not send.
type policyDefinition struct {
	URL   string        `json:"url"`
	Focus []policyFocus `json:"focus"`
}

// policyFocus is one entry of input.definition.focus: a FHIR resource type
// and how many of it the message must carry (max "*" for no bound).
type policyFocus struct {
	Code string `json:"code"`
	Min  int    `json:"min"`
	Max  string `json:"max"`
}

// definitionInput is input.definition for d: nil (absent from the input)
// when there is no definition or it is only a URL, which demands nothing.
func definitionInput(d *gateway.MessageDefinition) *policyDefinition {
	if d == nil || len(d.Focus) == 0 {
		return nil
	}
	out := &policyDefinition{URL: d.URL, Focus: make([]policyFocus, len(d.Focus))}
	for i, f := range d.Focus {
		out.Focus[i] = policyFocus(f)
	}
	return out
}

// inputValue is the input document of one decision as an OPA value, built
// once per decision from the JSON the record and the service marshal to, so
// that the policies see exactly that JSON.
func inputValue(in gateway.DecisionInput) (ast.Value, error) {
	b, err := json.Marshal(policyInput{Record: in.Record, Service: in.Service, At: in.At.UTC().Format(time.RFC3339Nano), Definition: definitionInput(in.Definition)})
	if err != nil {
		return nil, err
	}
	return ast.ValueFromReader(bytes.NewReader(b))
}
