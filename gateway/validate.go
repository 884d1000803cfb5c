package gateway

import (
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/go-playground/validator/v10"
)

// This file is the value half of ParseCaseRecord. The rule for each field is
// its `validate` tag in caserecord.go, read with go-playground/validator:
//
//	required       the field must be sent (the decoder checks this, since a
//	               Go value cannot tell absent from empty) and, unless it
//	               is an object, have a value ("" counts as missing)
//	text           at most 10,000 characters, no control characters, not
//	               only white space: anything that could never become a
//	               valid FHIR string is refused at the door
//	narrative      text that may also hold tabs and line breaks (free-text
//	               fields such as summaries and grounds)
//	vocab=NAME     one of the values of a vocabulary (see vocabularies)
//	date, instant  YYYY-MM-DD that is a real calendar date; RFC 3339 with a zone
//	nhsnumber, odscode, ukprn, article6, article9, dpaschedule1, schemaversion
//	               the identifiers and legal references of the contract
//	role           lower-case words joined by hyphens, at most 64 characters:
//	               which roles exist is for the policies (policies/lists.rego)
//	max=100        lists hold at most 100 items
//
// The rules that span fields (what a given or refused consent needs, a given
// consent with an override) are Go code in crossFieldFindings. Whether a
// record should be shared is never decided here: that is the policies' job,
// and a record that the policies will refuse is still a valid record.

// vocabularies are the lists that `vocab=NAME` tags name.
var vocabularies = map[string][]string{
	"gender":                Genders,
	"priority":              Priorities,
	"need":                  NeedCodes,
	"safetyPlanStatus":      SafetyPlanStatuses,
	"consentDecision":       ConsentDecisions,
	"consentMethod":         ConsentMethods,
	"purpose":               Purposes,
	"dataCategory":          DataCategories,
	"capacityStatus":        CapacityStatuses,
	"overrideGround":        OverrideGrounds,
	"consentSoughtOutcome":  ConsentSoughtOutcomes,
	"studentInformedStatus": StudentInformedStatuses,
	"contactChannel":        ContactChannels,
}

// Limits that keep every string and list able to become valid FHIR and keep
// a hostile body from growing the work that follows.
const (
	maxTextLength = 10000
	maxListItems  = 100
)

var (
	datePattern    = regexp.MustCompile(`^([0-9]{3}[1-9]|[0-9]{2}[1-9][0-9]|[0-9][1-9][0-9]{2}|[1-9][0-9]{3})-[0-9]{2}-[0-9]{2}$`)
	instantPattern = regexp.MustCompile(`^([0-9]{3}[1-9]|[0-9]{2}[1-9][0-9]|[0-9][1-9][0-9]{2}|[1-9][0-9]{3})-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?(Z|[+-](0[0-9]|1[0-3]):[0-5][0-9]|[+-]14:00)$`)
	// instantShape is an instant's outline with any year and offset, to
	// tell a client precisely what is wrong with one that fails
	// instantPattern.
	instantShape     = regexp.MustCompile(`^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?(Z|[+-][0-9]{2}:[0-9]{2})$`)
	zonelessPattern  = regexp.MustCompile(`^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]+)?)?$`)
	article6Pattern  = regexp.MustCompile(`^6\(1\)\([a-f]\)$`)
	article9Pattern  = regexp.MustCompile(`^9\(2\)\([a-j]\)$`)
	schedule1Pattern = regexp.MustCompile(`^para-[1-9][0-9]?$`)
	rolePattern      = regexp.MustCompile(`^[a-z]+(-[a-z]+)*$`)
)

// maxRoleLength bounds a role, which the contract checks for form only.
const maxRoleLength = 64

// contractValidator is built once: validator caches what it learns about
// each struct type, and registering rules is not safe for concurrent use.
var contractValidator = sync.OnceValue(func() *validator.Validate {
	// Without WithRequiredStructEnabled, "required" on an object field
	// (institution, student.name, …) asks only that it be sent, which the
	// decoder checks; the validator then judges the fields inside it, so
	// that `"institution": {}` gets "institution.name is required" and
	// "institution.ukprn is required" rather than one vaguer issue.
	v := validator.New()
	// Namespaces in errors become JSON paths: student.nhsNumber, not
	// Student.NHSNumber.
	v.RegisterTagNameFunc(func(f reflect.StructField) string {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" {
			return ""
		}
		return name
	})
	str := func(ok func(string) bool) validator.Func {
		return func(fl validator.FieldLevel) bool { return ok(fl.Field().String()) }
	}
	rules := map[string]validator.Func{
		"textchars":      str(func(s string) bool { return textProblem(s, false) == "" }),
		"narrativechars": str(func(s string) bool { return textProblem(s, true) == "" }),
		"nhsnumber":      str(ValidNHSNumber),
		"odscode":        str(ValidODSCode),
		"ukprn":          str(ValidUKPRN),
		"date":           str(validDate),
		"instant":        str(validInstant),
		"article6":       str(article6Pattern.MatchString),
		"article9":       str(article9Pattern.MatchString),
		"dpaschedule1":   str(schedule1Pattern.MatchString),
		"schemaversion":  str(func(s string) bool { return s == SchemaVersion }),
		"role":           str(func(s string) bool { return len(s) <= maxRoleLength && rolePattern.MatchString(s) }),
		"vocab": func(fl validator.FieldLevel) bool {
			return slices.Contains(vocabularies[fl.Param()], fl.Field().String())
		},
	}
	for tag, fn := range rules {
		if err := v.RegisterValidation(tag, fn); err != nil {
			panic(err) // a bad tag name is a programming error
		}
	}
	v.RegisterAlias("text", fmt.Sprintf("max=%d,textchars", maxTextLength))
	v.RegisterAlias("narrative", fmt.Sprintf("max=%d,narrativechars", maxTextLength))
	return v
})

// textProblem says what is wrong with a string for a text field, or "". A
// narrative may hold tabs and line breaks; nothing may hold other control
// characters, and a string that is only white space says nothing.
func textProblem(s string, narrative bool) string {
	for _, r := range s {
		if !unicode.IsControl(r) || narrative && (r == '\t' || r == '\n' || r == '\r') {
			continue
		}
		if narrative {
			return fmt.Sprintf("contains a control character (U+%04X); only tabs and line breaks are allowed", r)
		}
		return fmt.Sprintf("contains a control character (U+%04X); remove it", r)
	}
	if strings.TrimFunc(s, unicode.IsSpace) == "" {
		return "is empty or only white space"
	}
	return ""
}

// validDate takes YYYY-MM-DD dates that FHIR can carry: a real calendar
// date, and not in year 0000, which FHIR's date type has no place for.
func validDate(s string) bool {
	if !datePattern.MatchString(s) || strings.HasPrefix(s, "0000") {
		return false
	}
	_, err := time.Parse(time.DateOnly, s)
	return err == nil
}

// validInstant takes RFC 3339 instants with a zone that FHIR can carry as a
// dateTime: not in year 0000, and with an offset of at most 14:00 either
// way, as FHIR's dateTime allows (real offsets run from -12:00 to +14:00).
// time.Parse would take offsets up to 99:59, and RFC 3339 up to 23:59; a
// record that passed with one of those would be refused by the output gate
// as an internal error.
func validInstant(s string) bool {
	m := instantPattern.FindStringSubmatch(s)
	if m == nil || strings.HasPrefix(s, "0000") {
		return false
	}
	_, err := time.Parse(time.RFC3339Nano, s)
	return err == nil
}

// validationFindings checks every field's tag rules and turns the failures
// into issues with plain-English messages.
func validationFindings(r *CaseRecord) ([]finding, error) {
	err := contractValidator().Struct(r)
	if err == nil {
		return nil, nil
	}
	var errs validator.ValidationErrors
	if !errors.As(err, &errs) {
		return nil, Internal(err)
	}
	out := make([]finding, 0, len(errs))
	for _, fe := range errs {
		_, expr, _ := strings.Cut(fe.Namespace(), ".") // drop "CaseRecord."
		typ, msg := describeFailure(fe, expr)
		out = append(out, finding{
			Issue: Issue{Severity: "error", Type: typ, Expression: expr, Message: msg},
			key:   keyFor(expr),
		})
	}
	return out, nil
}

// describeFailure writes the message for one failed rule. It echoes a value
// only where the value is a vocabulary code or a version: names, dates of
// birth, NHS numbers, contact details and free text never appear in a
// message, because messages reach logs and other systems.
func describeFailure(fe validator.FieldError, expr string) (typ, msg string) {
	s, _ := fe.Value().(string)
	switch fe.ActualTag() {
	case "required":
		return issueRequired, expr + " is required"
	case "max":
		if fe.Kind() == reflect.Slice {
			return issueTooLong, fmt.Sprintf("%s has %d items; at most %d are allowed", expr, reflect.ValueOf(fe.Value()).Len(), maxListItems)
		}
		return issueTooLong, fmt.Sprintf("%s is longer than %s characters", expr, "10,000")
	case "textchars":
		return issueValue, expr + " " + textProblem(s, false)
	case "narrativechars":
		return issueValue, expr + " " + textProblem(s, true)
	case "vocab":
		return issueValue, fmt.Sprintf("%s %q is not a known value; use one of: %s", expr, clip(s), strings.Join(vocabularies[fe.Param()], ", "))
	case "schemaversion":
		return issueValue, fmt.Sprintf("schemaVersion %q is not supported; this gateway accepts %q", clip(s), SchemaVersion)
	case "nhsnumber":
		if len(s) != 10 || strings.Trim(s, "0123456789") != "" {
			return issueValue, expr + " must be 10 digits with no spaces"
		}
		return issueValue, expr + " fails the NHS number check digit (Modulus 11); check it for a typing error"
	case "odscode":
		return issueValue, expr + " is not an ODS code: 3 to 10 upper-case letters and digits, e.g. L81012"
	case "ukprn":
		return issueValue, expr + " is not a UKPRN: 8 digits starting with 1, e.g. 10007164"
	case "date":
		if strings.HasPrefix(s, "0000") {
			return issueValue, expr + " is in year 0000, which FHIR cannot carry; use YYYY-MM-DD from 0001"
		}
		if datePattern.MatchString(s) {
			return issueValue, expr + " is not a calendar date; use YYYY-MM-DD"
		}
		return issueValue, expr + " is not a date in the form YYYY-MM-DD"
	case "instant":
		if m := instantShape.FindStringSubmatch(s); m != nil && strings.HasPrefix(s, "0000") {
			return issueValue, expr + " is in year 0000, which FHIR cannot carry"
		} else if m != nil && m[2] != "Z" && m[2][1:] > "14:00" && m[2][1:3] <= "23" && m[2][4:6] <= "59" {
			return issueValue, expr + " has a time-zone offset beyond ±14:00, which FHIR cannot carry, e.g. 2026-11-19T14:02:00Z"
		}
		if zonelessPattern.MatchString(s) {
			return issueValue, expr + " has no time zone; give an RFC 3339 instant with Z or an offset, e.g. 2026-11-19T14:02:00Z"
		}
		return issueValue, expr + " is not an RFC 3339 instant with a time zone, e.g. 2026-11-19T14:02:00Z"
	case "article6":
		return issueValue, expr + " is not a UK GDPR Art. 6 basis; write it like 6(1)(e) (letters a to f)"
	case "article9":
		return issueValue, expr + " is not a UK GDPR Art. 9 condition; write it like 9(2)(g) (letters a to j)"
	case "role":
		return issueValue, fmt.Sprintf("%s is not a role: write lower-case words joined by hyphens, at most %d characters, e.g. mental-health-adviser", expr, maxRoleLength)
	case "dpaschedule1":
		return issueValue, expr + " is not a DPA 2018 Schedule 1 paragraph; write it like para-18"
	}
	return issueValue, expr + " is not valid"
}

// crossFieldFindings checks the rules of the contract that span fields: what
// each consent decision needs recorded, and that a record takes one route.
// These say what a record must contain to be read at all; whether its
// consent or override is good enough to share on is for the policies.
func crossFieldFindings(r *CaseRecord) []finding {
	var out []finding
	add := func(expr, typ, msg string) {
		out = append(out, finding{Issue: Issue{Severity: "error", Type: typ, Expression: expr, Message: msg}, key: keyFor(expr)})
	}
	c := &r.Consent
	need := func(present bool, field string) {
		if !present {
			expr := "consent." + field
			add(expr, issueRequired, fmt.Sprintf("%s is required when consent.decision is %q", expr, c.Decision))
		}
	}
	switch c.Decision {
	case "given":
		need(len(c.Recipients) > 0, "recipients")
		need(len(c.Purposes) > 0, "purposes")
		need(len(c.DataCategories) > 0, "dataCategories")
		need(c.RecordedAt != "", "recordedAt")
		need(c.Method != "", "method")
		need(c.RecordedBy != "", "recordedBy")
		if r.Override != nil {
			add("override", issueInvariant, `the record has both a given consent and an override; choose one route: `+
				`remove the override to share on consent, or record the consent decision as "refused", "withdrawn" or "not-sought" to share on the override`)
		}
	case "refused", "withdrawn":
		need(c.RecordedAt != "", "recordedAt")
		need(c.Method != "", "method")
		need(c.RecordedBy != "", "recordedBy")
	}
	return out
}
