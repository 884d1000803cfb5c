package gateway

import _ "embed"

// CaseRecordSchema is the JSON Schema (draft 2020-12) of the case-record
// contract, for integrators to validate against before they post and for the
// gateway to publish. It is hand-written so that it reads as documentation;
// schema_test.go holds it to the Go types and to ParseCaseRecord, which
// makes a few checks that a schema cannot (docs/case-record.md). A copy is
// published as docs/case-record.schema.json.
//
//go:embed caserecord.schema.json
var CaseRecordSchema []byte
