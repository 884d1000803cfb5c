package fhirvalidator_test

import (
	"fmt"

	"github.com/student-mh-referrals/gateway/fhirvalidator"
	"github.com/student-mh-referrals/gateway/mappings"
)

// The gateway checks what it emits with the built-in rules; a document with
// errors becomes a gateway error that renders as an OperationOutcome.
func ExampleValidator_Validate() {
	doc := []byte(`{"resourceType": "Patient", "gender": "M", "birthDate": "2017-02-30"}`)
	r := fhirvalidator.Builtin().Validate(doc)
	for _, is := range r.Issues {
		fmt.Println(is)
	}
	oo := mappings.OperationOutcome(r.Err())
	fmt.Println(len(oo.Issue), "issues in the OperationOutcome")
	// Output:
	// error [binding] Patient.gender: code "M" is not in the required value set http://hl7.org/fhir/ValueSet/administrative-gender
	// error [format] Patient.birthDate: is not a valid date: no such day in that month
	// 2 issues in the OperationOutcome
}
