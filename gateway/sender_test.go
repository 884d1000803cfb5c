package gateway_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/student-mh-referrals/gateway/gateway"
)

// TestSenderOfMatchesTheMessage holds SenderOf, which the intake stores with
// each message for delivery's NHSD-End-User-Organisation header, to the
// Organization that the mapping's golden Bundles name as
// MessageHeader.sender, so that the header and the message agree.
func TestSenderOfMatchesTheMessage(t *testing.T) {
	cases, err := filepath.Glob("../testdata/cases/allow-*.json")
	if err != nil || len(cases) == 0 {
		t.Fatalf("no allow-* cases (%v)", err)
	}
	for _, c := range cases {
		name := strings.TrimSuffix(filepath.Base(c), ".json")
		t.Run(name, func(t *testing.T) {
			raw, err := os.ReadFile(c)
			if err != nil {
				t.Fatal(err)
			}
			rec, err := gateway.ParseCaseRecord(raw)
			if err != nil {
				t.Fatal(err)
			}
			bundle, err := os.ReadFile(filepath.Join("../mappings/testdata/golden", name+".bundle.json"))
			if err != nil {
				t.Fatal(err)
			}
			if got, want := gateway.SenderOf(rec.Institution), bundleSender(t, bundle); !reflect.DeepEqual(got, want) {
				t.Errorf("SenderOf = %+v; the Bundle's sender is %+v", got, want)
			}
		})
	}
}

// bundleSender is the Organization entry that the first entry's
// MessageHeader.sender references.
func bundleSender(t *testing.T, bundle []byte) gateway.Sender {
	t.Helper()
	var b struct {
		Entry []struct {
			FullURL  string          `json:"fullUrl"`
			Resource json.RawMessage `json:"resource"`
		} `json:"entry"`
	}
	var header struct {
		Sender struct {
			Reference string `json:"reference"`
		} `json:"sender"`
	}
	if err := json.Unmarshal(bundle, &b); err != nil || len(b.Entry) == 0 || json.Unmarshal(b.Entry[0].Resource, &header) != nil {
		t.Fatalf("not a message Bundle: %v", err)
	}
	for _, e := range b.Entry[1:] {
		var org struct {
			ResourceType string `json:"resourceType"`
			gateway.Sender
		}
		if e.FullURL == header.Sender.Reference && json.Unmarshal(e.Resource, &org) == nil && org.ResourceType == "Organization" {
			return org.Sender
		}
	}
	t.Fatal("the MessageHeader's sender is not in the Bundle")
	return gateway.Sender{}
}
