package fhirvalidator

import "github.com/student-mh-referrals/gateway/gateway"

// ValidateMessage makes a Validator the gateway's output gate
// (gateway.MessageValidator): every message is checked before it is stored
// or sent.
func (v *Validator) ValidateMessage(bundle []byte) []gateway.Issue {
	return v.Validate(bundle).GatewayIssues()
}

var _ gateway.MessageValidator = (*Validator)(nil)
