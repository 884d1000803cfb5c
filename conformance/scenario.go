package conformance

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Scenario is one scenario file: a request to $evaluate and what must come
// back. The JSON form is documented in docs/conformance-suite.md.
type Scenario struct {
	// Name is the file's base name without .json; it names the scenario in
	// every report.
	Name        string `json:"name"`
	Description string `json:"description"`
	// CaseRecord is the record, inline (an object) or as a path (a string)
	// relative to the scenario file's directory or to any directory above
	// it, e.g. "testdata/cases/allow-liverpool-u-cope.json".
	CaseRecord json.RawMessage `json:"caseRecord,omitempty"`
	// Patch is a JSON merge patch (RFC 7386) applied to the case record, so
	// that a variant states only what it changes; null removes a field.
	Patch json.RawMessage `json:"patch,omitempty"`
	// Body, instead of CaseRecord, is sent byte for byte (malformed input).
	Body *string `json:"body,omitempty"`
	// Client is the UKPRN of the institution whose client posts the
	// record; by default the record's own institution.ukprn.
	Client string `json:"client,omitempty"`
	// At is the decision time (RFC 3339), sent as ?at=.
	At     string `json:"at"`
	Expect Expect `json:"expect"`

	// File is where the scenario was read from.
	File string `json:"-"`
	// Request is the body that is posted: the case record after the patch.
	Request []byte `json:"-"`
	// Institution is the UKPRN whose client posts it (Client, or the
	// record's institution).
	Institution string `json:"-"`

	assertions []assertion
}

// Expect is what the answer must hold. Absent fields are not checked.
type Expect struct {
	// Status is the HTTP status; by default 200 for allow and deny, 422 for
	// invalid.
	Status int `json:"status,omitempty"`
	// Outcome is allow, deny or invalid.
	Outcome string `json:"outcome,omitempty"`
	Allow   *bool  `json:"allow,omitempty"`
	Route   string `json:"route,omitempty"`
	// Service is the decision's recipient service id.
	Service string      `json:"service,omitempty"`
	Rules   RuleExpect  `json:"rules"`
	Oblige  []Obligated `json:"obligations,omitempty"`
	// DataCategories is the exact list the decision lets leave, in order.
	DataCategories []string `json:"dataCategories,omitempty"`
	// LawfulBases is compared key by key (article6, article9, dpaSchedule1).
	LawfulBases map[string]string `json:"lawfulBases,omitempty"`
	// Messages maps rule ids to text that the rule's message must contain.
	Messages map[string]string `json:"messages,omitempty"`
	// Issues are expected in the answer's OperationOutcome: each matches an
	// issue's expression, code or details code.
	Issues []string `json:"issues,omitempty"`
	// Bundle holds assertions on the message Bundle (see assert.go).
	Bundle []string `json:"bundle,omitempty"`
}

// RuleExpect is what the decision's rules must say.
type RuleExpect struct {
	// Deny is the exact set of rules that refuse the share (each rule id
	// once). An empty list asserts that no rule denies.
	Deny []string `json:"deny,omitempty"`
	// Allow are rules that must have been checked and passed (effect allow
	// or obligation).
	Allow []string `json:"allow,omitempty"`
	// Obligation are rules that must have imposed an obligation.
	Obligation []string `json:"obligation,omitempty"`
}

// Obligated is an obligation the decision must carry. Categories and Fields,
// when given, must match exactly.
type Obligated struct {
	Type       string   `json:"type"`
	Rule       string   `json:"rule"`
	Categories []string `json:"categories,omitempty"`
	Fields     []string `json:"fields,omitempty"`
}

// Builtin returns the scenarios shipped with the gateway
// (conformance/testdata/scenarios, embedded).
func Builtin() ([]Scenario, error) {
	return Load(Scenarios, "testdata/scenarios")
}

// LoadDir reads the scenarios of a directory on disk; case-record paths are
// looked up from the directory upwards.
func LoadDir(dir string) ([]Scenario, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	root := filepath.VolumeName(abs) + string(filepath.Separator)
	rel, err := filepath.Rel(root, abs)
	if err != nil {
		return nil, err
	}
	return Load(os.DirFS(root), filepath.ToSlash(rel))
}

// Load reads every *.json file of dir in fsys as a scenario, sorted by
// name, and checks it completely (the case record resolves and patches, the
// expectations and assertions parse), so that a broken scenario is an error
// before anything is sent.
func Load(fsys fs.FS, dir string) ([]Scenario, error) {
	names, err := fs.Glob(fsys, path.Join(dir, "*.json"))
	if err != nil {
		return nil, err
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("no scenario files (*.json) in %s", dir)
	}
	slices.Sort(names)
	out := make([]Scenario, 0, len(names))
	var errs []error
	for _, name := range names {
		s, err := loadScenario(fsys, name)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
			continue
		}
		out = append(out, s)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}

// outcomes are the values of Expect.Outcome.
var outcomes = []string{"allow", "deny", "invalid"}

func loadScenario(fsys fs.FS, name string) (Scenario, error) {
	var s Scenario
	data, err := fs.ReadFile(fsys, name)
	if err != nil {
		return s, err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return s, fmt.Errorf("not a scenario: %w", err)
	}
	s.File = name
	base := strings.TrimSuffix(path.Base(name), ".json")
	switch {
	case s.Name != base:
		return s, fmt.Errorf("name %q must be the file's name without .json (%q)", s.Name, base)
	case strings.TrimSpace(s.Description) == "":
		return s, errors.New("description is missing: say what the scenario proves")
	case s.Expect.Status == 0 && s.Expect.Outcome == "":
		return s, errors.New("expect needs a status or an outcome")
	case s.Expect.Outcome != "" && !slices.Contains(outcomes, s.Expect.Outcome):
		return s, fmt.Errorf("expect.outcome %q: use allow, deny or invalid", s.Expect.Outcome)
	}
	if _, err := time.Parse(time.RFC3339, s.At); err != nil {
		return s, fmt.Errorf("at %q: an RFC 3339 instant is required, e.g. 2026-11-23T12:00:00Z", s.At)
	}
	if err := s.resolve(fsys, path.Dir(name)); err != nil {
		return s, err
	}
	for _, a := range s.Expect.Bundle {
		as, err := parseAssertion(a)
		if err != nil {
			return s, fmt.Errorf("expect.bundle %q: %w", a, err)
		}
		s.assertions = append(s.assertions, as)
	}
	if len(s.Expect.Bundle) > 0 && s.Expect.Outcome != "allow" {
		return s, errors.New("expect.bundle needs expect.outcome allow: only an allowed answer carries a Bundle")
	}
	for _, o := range s.Expect.Oblige {
		if o.Type == "" || o.Rule == "" {
			return s, errors.New("expect.obligations: each needs a type and a rule")
		}
	}
	return s, nil
}

// resolve builds the request body and finds the posting institution.
func (s *Scenario) resolve(fsys fs.FS, dir string) error {
	switch {
	case s.Body != nil && (len(s.CaseRecord) > 0 || len(s.Patch) > 0):
		return errors.New("body replaces caseRecord and patch: give one or the other")
	case s.Body != nil:
		s.Request = []byte(*s.Body)
	case len(s.CaseRecord) == 0:
		return errors.New("caseRecord is missing (an object, or a path to a case record file)")
	default:
		rec := []byte(s.CaseRecord)
		var p string
		if json.Unmarshal(s.CaseRecord, &p) == nil {
			b, err := readUp(fsys, dir, p)
			if err != nil {
				return fmt.Errorf("caseRecord: %w", err)
			}
			rec = b
		} else if !bytes.HasPrefix(bytes.TrimSpace(rec), []byte("{")) {
			return errors.New("caseRecord must be an object or a path")
		}
		if len(s.Patch) > 0 {
			patched, err := mergePatch(rec, s.Patch)
			if err != nil {
				return fmt.Errorf("patch: %w", err)
			}
			rec = patched
		}
		s.Request = rec
	}
	s.Institution = s.Client
	if s.Institution == "" {
		var r struct {
			Institution struct {
				UKPRN string `json:"ukprn"`
			} `json:"institution"`
		}
		_ = json.Unmarshal(s.Request, &r)
		s.Institution = r.Institution.UKPRN
	}
	if s.Institution == "" {
		return errors.New("the record names no institution.ukprn: set client to the UKPRN whose client posts it")
	}
	return nil
}

// readUp reads name relative to dir, or to the nearest directory above dir
// that holds it.
func readUp(fsys fs.FS, dir, name string) ([]byte, error) {
	if path.IsAbs(name) || strings.Contains(name, `\`) {
		return nil, fmt.Errorf("%q: use a relative path with forward slashes", name)
	}
	for d := dir; ; d = path.Dir(d) {
		b, err := fs.ReadFile(fsys, path.Join(d, name))
		if err == nil {
			return b, nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		if d == "." || d == "/" || d == "" {
			return nil, fmt.Errorf("%q is not in %s or any directory above it", name, dir)
		}
	}
}

// mergePatch applies an RFC 7386 JSON merge patch to a JSON object.
func mergePatch(doc, patch []byte) ([]byte, error) {
	var d, p any
	if err := decodeJSON(doc, &d); err != nil {
		return nil, fmt.Errorf("the case record is not JSON: %w", err)
	}
	if err := decodeJSON(patch, &p); err != nil {
		return nil, err
	}
	if _, ok := p.(map[string]any); !ok {
		return nil, errors.New("a patch is an object")
	}
	return json.Marshal(merge(d, p))
}

func merge(target, patch any) any {
	pm, ok := patch.(map[string]any)
	if !ok {
		return patch
	}
	tm, ok := target.(map[string]any)
	if !ok {
		tm = map[string]any{}
	}
	for k, v := range pm {
		if v == nil {
			delete(tm, k)
			continue
		}
		tm[k] = merge(tm[k], v)
	}
	return tm
}

// decodeJSON decodes keeping numbers as written.
func decodeJSON(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("more than one JSON value")
	}
	return nil
}
