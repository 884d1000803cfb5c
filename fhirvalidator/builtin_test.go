package fhirvalidator

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// TestBuiltinRules checks that the embedded rule set is what the full
// definitions say about the covered resources and profiles; -update
// rewrites it.
func TestBuiltinRules(t *testing.T) {
	shared := sharedDir(t)
	full, err := Load(filepath.Join(shared, "fhir", "r4"), filepath.Join(shared, "fhir", "ukcore"),
		filepath.Join(moduleDir(t), "docs", "fhir"))
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := writeBuiltin(&buf, full); err != nil {
		t.Fatal(err)
	}
	if *update {
		if err := os.WriteFile("builtin.rules", buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if !bytes.Equal(buf.Bytes(), builtinRules) {
		t.Fatalf("builtin.rules is out of date with %s/fhir or docs/fhir; run go test ./fhirvalidator -run TestBuiltinRules -update", shared)
	}
}
