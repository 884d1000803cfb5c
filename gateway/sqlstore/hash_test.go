package sqlstore_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/student-mh-referrals/gateway/gateway"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// TestDecisionHash pins the canonical encoding of decision records: a change
// would make every chain already written fail Verify, so it must show up as
// a golden-file diff, not pass unnoticed.
func TestDecisionHash(t *testing.T) {
	first := gateway.DecisionRecord{
		Institution: "10007788", Seq: 1, DecisionID: "0d8f0a4e-5b1c-5a9e-8f3a-2f1d6c7b8a90",
		At: time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC), PrevHash: gateway.GenesisHash,
		Body: json.RawMessage(`{"allow":true,"route":"consent","rules":["C-01"]}`),
	}
	second := first
	second.Seq, second.PrevHash = 2, gateway.DecisionHash(first)
	second.At = time.Date(2026, 11, 23, 12, 0, 1, 123456789, time.FixedZone("BST", 3600))
	second.Body = json.RawMessage(`{"allow":false,"route":"vital-interests","note":"é → ✓"}`)
	tests := []struct {
		name string
		rec  gateway.DecisionRecord
	}{
		{"first record of a chain", first},
		{"later record, zoned time with nanoseconds", second},
		{"empty body", gateway.DecisionRecord{Institution: "10000001", Seq: 7, DecisionID: "d", At: first.At, PrevHash: gateway.GenesisHash, Body: json.RawMessage(`{}`)}},
	}
	got := map[string]string{}
	for _, tt := range tests {
		got[tt.name] = gateway.DecisionHash(tt.rec)
	}
	b, err := json.MarshalIndent(got, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	b = append(b, '\n')
	golden := filepath.Join("testdata", "decision_hash.golden.json")
	if *update {
		if err := os.WriteFile(golden, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(b, want) {
		t.Fatalf("decision hashes changed:\n%s\nwant:\n%s", b, want)
	}

	// Every field is covered: changing any one changes the hash.
	changes := []struct {
		name   string
		change func(r *gateway.DecisionRecord)
	}{
		{"institution", func(r *gateway.DecisionRecord) { r.Institution = "10007789" }},
		{"seq", func(r *gateway.DecisionRecord) { r.Seq++ }},
		{"decision id", func(r *gateway.DecisionRecord) { r.DecisionID += "x" }},
		{"time", func(r *gateway.DecisionRecord) { r.At = r.At.Add(time.Microsecond) }},
		{"prev hash", func(r *gateway.DecisionRecord) { r.PrevHash = gateway.DecisionHash(first) }},
		{"body", func(r *gateway.DecisionRecord) {
			r.Body = json.RawMessage(`{"allow": true,"route":"consent","rules":["C-01"]}`)
		}},
		{"field boundary", func(r *gateway.DecisionRecord) {
			r.Institution, r.DecisionID = r.Institution+r.DecisionID[:1], r.DecisionID[1:]
		}},
	}
	for _, c := range changes {
		t.Run("changing the "+c.name, func(t *testing.T) {
			r := first
			c.change(&r)
			if gateway.DecisionHash(r) == gateway.DecisionHash(first) {
				t.Fatal("hash unchanged")
			}
		})
	}
}
