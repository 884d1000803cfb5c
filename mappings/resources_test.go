package mappings

import (
	"context"
	"encoding/json"
	"io/fs"
	"maps"
	"slices"
	"strconv"
	"testing"

	"github.com/open-policy-agent/opa/v1/rego"

	"github.com/student-mh-referrals/gateway/gateway"
	"github.com/student-mh-referrals/gateway/gateway/opa"
	"github.com/student-mh-referrals/gateway/policies"
)

// TestResourcesTable proves that the policies' table of the resources a
// message carries (lists.message_resources, which M-01 judges a receiver's
// MessageDefinition by) matches what this mapping writes. For every allow
// case the real policies decide, the message is built from that decision,
// and the same case is decided again with a definition that demands exactly
// what the message holds: at least and at most as many of each resource type
// it carries, and none of every other type the table names. Any resource type
// the table does not know, or counts differently, makes the policies refuse
// it, and this test fail.
func TestResourcesTable(t *testing.T) {
	ctx := context.Background()
	decider, err := opa.New(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	table := tableTypes(t)
	for _, name := range allowCases(t) {
		t.Run(name, func(t *testing.T) {
			in := input(t, name)
			d, err := decider.Decide(ctx, gateway.DecisionInput{Record: in.Record, Service: in.Service, At: testAt})
			if err != nil || !d.Allow {
				t.Fatalf("the policies do not allow the case (%v): %+v", err, d.Rules)
			}
			d.ID = in.Decision.ID // the fixture's: the mapping names the decision
			in.Decision = d
			counts := resourceCounts(t, message(t, in))
			def := &gateway.MessageDefinition{URL: "https://receiver.example.org/MessageDefinition/exact"}
			for _, code := range slices.Sorted(maps.Keys(counts)) {
				if !table[code] {
					t.Errorf("the message carries %s, which lists.message_resources does not name", code)
				}
			}
			for code := range table {
				counts[code] += 0
			}
			for _, code := range slices.Sorted(maps.Keys(counts)) {
				def.Focus = append(def.Focus, gateway.DefinitionFocus{Code: code, Min: counts[code], Max: strconv.Itoa(counts[code])})
			}
			again, err := decider.Decide(ctx, gateway.DecisionInput{Record: in.Record, Service: in.Service, At: testAt, Definition: def})
			if err != nil {
				t.Fatal(err)
			}
			if !again.Allow {
				t.Errorf("the policies count the message's resources differently from the mapping (message: %v): %+v", counts, again.Rules)
			}
		})
	}
}

// tableTypes is the set of resource types lists.message_resources names.
func tableTypes(t *testing.T) map[string]bool {
	t.Helper()
	src, err := fs.ReadFile(policies.FS, "lists.rego")
	if err != nil {
		t.Fatal(err)
	}
	rs, err := rego.New(rego.Query("data.referral.lists.message_resources"), rego.Module("lists.rego", string(src))).Eval(context.Background())
	if err != nil || len(rs) != 1 {
		t.Fatalf("lists.message_resources: %v (%d results)", err, len(rs))
	}
	out := map[string]bool{}
	for code := range rs[0].Expressions[0].Value.(map[string]any) {
		out[code] = true
	}
	return out
}

// resourceCounts counts a Bundle's entries by resource type, the Bundle
// itself as one, as a MessageDefinition's focus counts them.
func resourceCounts(t *testing.T, bundle []byte) map[string]int {
	t.Helper()
	var b struct {
		Entry []struct {
			Resource struct {
				ResourceType string `json:"resourceType"`
			} `json:"resource"`
		} `json:"entry"`
	}
	if err := json.Unmarshal(bundle, &b); err != nil {
		t.Fatal(err)
	}
	counts := map[string]int{"Bundle": 1}
	for _, e := range b.Entry {
		counts[e.Resource.ResourceType]++
	}
	return counts
}
