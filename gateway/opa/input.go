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
// marshal to JSON, and the decision time in RFC 3339, UTC.
type policyInput struct {
	Record  *gateway.CaseRecord `json:"record"`
	Service *gateway.Service    `json:"service"`
	At      string              `json:"at"`
}

// inputValue is the input document of one decision as an OPA value, built
// once per decision from the JSON the record and the service marshal to, so
// that the policies see exactly that JSON.
func inputValue(in gateway.DecisionInput) (ast.Value, error) {
	b, err := json.Marshal(policyInput{Record: in.Record, Service: in.Service, At: in.At.UTC().Format(time.RFC3339Nano)})
	if err != nil {
		return nil, err
	}
	return ast.ValueFromReader(bytes.NewReader(b))
}
