package conformance

import (
	"encoding/json"
	"path/filepath"
	"testing"
)

// TestAssertions evaluates testdata/assertions.json on the Bundle of the
// example Bristol referral (testdata/evaluate of the repository).
func TestAssertions(t *testing.T) {
	var doc struct {
		Bundle json.RawMessage `json:"bundle"`
	}
	readJSON(t, filepath.Join("..", "testdata", "evaluate", "allow-uwe-bristol-awp-trusted-contact.json"), &doc)
	var bundle any
	if err := decodeJSON(doc.Bundle, &bundle); err != nil {
		t.Fatal(err)
	}
	var table []struct{ Assertion, Want string }
	readJSON(t, filepath.Join("testdata", "assertions.json"), &table)
	for _, tt := range table {
		t.Run(tt.Assertion, func(t *testing.T) {
			a, err := parseAssertion(tt.Assertion)
			if tt.Want == "invalid" {
				if err == nil {
					t.Errorf("parsed as %+v; want an error", a)
				}
				return
			}
			if err != nil {
				t.Fatalf("does not parse: %v", err)
			}
			ok, msg := a.eval(bundle)
			if ok != (tt.Want == "pass") {
				t.Errorf("got %t (%s), want %s", ok, msg, tt.Want)
			}
			if !ok && msg == "" {
				t.Error("a failure without a message")
			}
		})
	}
}
