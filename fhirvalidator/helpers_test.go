package fhirvalidator

import (
	"flag"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

var update = flag.Bool("update", false, "rewrite builtin.rules and the golden files under testdata/validator from ../shared")

// moduleDir is the directory holding go.mod, above the test's directory.
func moduleDir(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the working directory")
		}
		dir = parent
	}
}

// sharedDir returns ../shared (the FHIR definitions, examples and
// fhircheck), or skips the test when it is missing; under CI=true a missing
// folder fails the test instead.
func sharedDir(t testing.TB) string {
	t.Helper()
	dir := filepath.Join(moduleDir(t), "..", "shared")
	if _, err := os.Stat(filepath.Join(dir, "fhir", "r4", "profiles-resources.json")); err != nil {
		msg := "this test needs the FHIR definitions in " + dir + "/fhir (see ../shared/fhir/README.md)"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return dir
}

var (
	fullOnce sync.Once
	full     *Validator
	fullErr  error
)

// fullValidator loads R4, UK Core, the US Core profiles of fhircheck and the
// project's own definitions (docs/fhir) once per test binary.
func fullValidator(t testing.TB) *Validator {
	t.Helper()
	shared := sharedDir(t)
	fullOnce.Do(func() {
		full, fullErr = Load(filepath.Join(shared, "fhir", "r4"), filepath.Join(shared, "fhir", "ukcore"),
			filepath.Join(shared, "fhircheck", "profiles", "uscore"), filepath.Join(moduleDir(t), "docs", "fhir"))
	})
	if fullErr != nil {
		t.Fatal(fullErr)
	}
	return full
}
