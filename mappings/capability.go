package mappings

import (
	"encoding/json"
)

// CapabilityStatement describes the gateway's own FHIR endpoint for NHS
// receivers: it takes BaRS response messages at $process-message. Served at
// GET /fhir/metadata so that a receiver's tooling can discover it.
func CapabilityStatement(version string) []byte {
	cs := map[string]any{
		"resourceType": "CapabilityStatement",
		"id":           "student-mh-referral-gateway",
		"url":          "https://student-mh-referrals.github.io/gateway/fhir/CapabilityStatement/gateway",
		"name":         "StudentMentalHealthReferralGateway",
		"title":        "Student mental-health referral gateway: inbound BaRS messages",
		"status":       "active",
		"date":         "2026-11-23",
		"publisher":    "student-mh-referrals",
		"kind":         "instance",
		"software":     map[string]any{"name": "student-mh-referral-gateway", "version": version},
		"implementation": map[string]any{
			"description": "Receives BaRS servicerequest-response messages from NHS receiving services",
		},
		"fhirVersion": "4.0.1",
		"format":      []string{"application/fhir+json"},
		"rest": []map[string]any{{
			"mode": "server",
			"security": map[string]any{
				"description": "Bearer token or mTLS client certificate of a client registered with the role receiver",
			},
			"operation": []map[string]any{{
				"name":          "process-message",
				"definition":    "http://hl7.org/fhir/OperationDefinition/MessageHeader-process-message",
				"documentation": "Takes a message Bundle whose MessageHeader.eventCoding is https://fhir.nhs.uk/CodeSystem/message-events-bars#servicerequest-response and whose focus is the ServiceRequest the gateway sent",
			}},
		}},
		"messaging": []map[string]any{{
			"supportedMessage": []map[string]any{{
				"mode":       "receiver",
				"definition": "https://fhir.nhs.uk/MessageDefinition/bars-message-servicerequest-response",
			}},
		}},
	}
	b, err := json.MarshalIndent(cs, "", "  ")
	if err != nil {
		panic(err) // a literal of maps and strings always marshals
	}
	return append(b, '\n')
}
