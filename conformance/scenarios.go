package conformance

import "embed"

// Scenarios holds the conformance suite's scenario files
// (testdata/scenarios) and the example case records they name
// (testdata/cases, verbatim copies of the repository's testdata/cases), built
// into the binary so that `gateway conformance run` works from any directory.
// Package conformance reads and runs them; docs/conformance-suite.md
// describes the format.
//
//go:embed testdata/scenarios testdata/cases
var Scenarios embed.FS
