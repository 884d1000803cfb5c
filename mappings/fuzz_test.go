package mappings

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/student-mh-referrals/gateway/gateway"
)

// FuzzMessage mutates valid case records (and the set of categories
// allowed) and checks that the mapping never panics, and that whatever it
// returns is either a gateway error or a JSON Bundle with no empty values.
func FuzzMessage(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join(casesDir, "*.json"))
	for i, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data, uint8(0xff), uint8(i%4))
	}
	reg := registry(f)
	services := reg.Services()
	f.Fuzz(func(t *testing.T, data []byte, mask, flags uint8) {
		rec := &gateway.CaseRecord{}
		if json.Unmarshal(data, rec) != nil {
			return
		}
		svc, ok := reg.Lookup(rec.Referral.Service)
		if !ok {
			svc = services[int(mask)%len(services)]
		}
		d := &gateway.Decision{ID: "fuzz", Allow: true, Route: "consent", PolicyRevision: "fuzz"}
		if rec.Override != nil {
			d.Route = "safeguarding"
		}
		for i, c := range gateway.DataCategories {
			if mask&(1<<i) != 0 {
				d.DataCategories = append(d.DataCategories, c)
			}
		}
		if flags&4 != 0 {
			d.Obligations = append(d.Obligations, gateway.Obligation{Type: gateway.ObligationStripFields,
				Fields: []string{"referral.riskAssessment.score", "student.contact", "referral.presentingNeeds[*].text"}})
		}
		if flags&8 != 0 {
			d.Obligations = append(d.Obligations, gateway.Obligation{Type: gateway.ObligationDropTrustedContact})
		}
		in := gateway.MessageInput{Record: rec, Decision: d, Service: svc, Source: testSource, At: testAt,
			Update: flags&1 != 0, Revoke: flags&2 != 0}
		out, err := New().Message(context.Background(), in)
		if err != nil {
			var ge *gateway.Error
			if !errors.As(err, &ge) || out != nil {
				t.Fatalf("error %v (bytes %d): want a *gateway.Error and no output", err, len(out))
			}
			return
		}
		empties, err := emptyValues(out)
		if err != nil {
			t.Fatalf("output is not JSON: %v", err)
		}
		if len(empties) > 0 {
			t.Fatalf("empty values: %v", empties)
		}
	})
}
