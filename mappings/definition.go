package mappings

import (
	"encoding/json"
	"fmt"

	"github.com/student-mh-referrals/gateway/gateway"
)

// ParseMessageDefinition reads a receiver's answer to GET /MessageDefinition
// (a searchset Bundle, or one MessageDefinition) and returns the definition
// of a referral request (servicerequest-request): its canonical URL and the
// resources it requires. A retired definition, or one for another event, is
// passed over; none left is an error.
func ParseMessageDefinition(body []byte) (*gateway.MessageDefinition, error) {
	type definition struct {
		ResourceType string `json:"resourceType"`
		URL          string `json:"url"`
		Status       string `json:"status"`
		EventCoding  struct {
			System string `json:"system"`
			Code   string `json:"code"`
		} `json:"eventCoding"`
		Focus []struct {
			Code string `json:"code"`
			Min  *int   `json:"min"`
			Max  string `json:"max"`
		} `json:"focus"`
	}
	var doc struct {
		definition
		Entry []struct {
			Resource definition `json:"resource"`
		} `json:"entry"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return nil, fmt.Errorf("MessageDefinition: not JSON: %w", err)
	}
	candidates := []definition{doc.definition}
	if doc.ResourceType == "Bundle" {
		candidates = candidates[:0]
		for _, e := range doc.Entry {
			candidates = append(candidates, e.Resource)
		}
	}
	for _, d := range candidates {
		if d.ResourceType != "MessageDefinition" || d.Status == "retired" || d.URL == "" ||
			d.EventCoding.System != sysBaRSEvents || d.EventCoding.Code != eventRequest {
			continue
		}
		out := &gateway.MessageDefinition{URL: d.URL}
		for _, f := range d.Focus {
			if f.Code == "" {
				return nil, fmt.Errorf("MessageDefinition %s: a focus without a code", d.URL)
			}
			min := 0
			if f.Min != nil {
				min = *f.Min
			}
			max := f.Max
			if max == "" {
				max = "*"
			}
			out.Focus = append(out.Focus, gateway.DefinitionFocus{Code: f.Code, Min: min, Max: max})
		}
		return out, nil
	}
	return nil, fmt.Errorf("the receiver publishes no active MessageDefinition for %s", eventRequest)
}
