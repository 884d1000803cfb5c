package gateway

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// The JSON Schema is hand-written for integrators; these tests keep it
// telling the truth about the Go contract and ParseCaseRecord.

func TestSchemaPublishedCopyIsIdentical(t *testing.T) {
	docs, err := os.ReadFile(filepath.Join("..", "docs", "case-record.schema.json"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(docs, CaseRecordSchema) {
		t.Error("docs/case-record.schema.json differs from gateway/caserecord.schema.json; copy it over")
	}
}

// schemaDoc is the schema as plain JSON, for walking.
func schemaDoc(t *testing.T) map[string]any {
	t.Helper()
	var doc map[string]any
	if err := json.Unmarshal(CaseRecordSchema, &doc); err != nil {
		t.Fatal(err)
	}
	return doc
}

// resolve follows a local $ref, keeping the referring node's own keywords.
func resolve(t *testing.T, root, node map[string]any) map[string]any {
	t.Helper()
	ref, ok := node["$ref"].(string)
	if !ok {
		return node
	}
	name, ok := strings.CutPrefix(ref, "#/$defs/")
	if !ok {
		t.Fatalf("unexpected $ref %q", ref)
	}
	def, ok := root["$defs"].(map[string]any)[name].(map[string]any)
	if !ok {
		t.Fatalf("$ref %q points nowhere", ref)
	}
	out := map[string]any{}
	for k, v := range resolve(t, root, def) {
		out[k] = v
	}
	for k, v := range node {
		out[k] = v
	}
	return out
}

// rule is what a validate tag says about a field's value, beyond
// required/omitempty and the list bound.
func rule(tag string) string {
	parts := strings.Split(tag, ",")
	parts = slices.DeleteFunc(parts, func(p string) bool {
		return p == "required" || p == "omitempty" || p == "dive" || p == "max=100" || p == ""
	})
	if len(parts) > 1 {
		return strings.Join(parts, ",") // the test below fails on it
	}
	if len(parts) == 0 {
		return ""
	}
	return parts[0]
}

// TestSchemaMatchesGoTypes walks the Go types and the schema side by side:
// every field on both sides, the same JSON types, the same required fields
// (those whose validate tag says "required"), the same vocabularies and the
// same rule for each string.
func TestSchemaMatchesGoTypes(t *testing.T) {
	root := schemaDoc(t)
	defRefs := map[string]string{
		"text": "#/$defs/text", "narrative": "#/$defs/narrative", "date": "#/$defs/date",
		"instant": "#/$defs/instant", "odscode": "#/$defs/odsCode",
	}
	patterns := map[string]*regexp.Regexp{
		"ukprn": ukprnPattern, "role": rolePattern, "article6": article6Pattern, "article9": article9Pattern,
		"dpaschedule1": schedule1Pattern,
	}
	var walk func(p string, gt reflect.Type, node map[string]any, vtag string)
	walk = func(p string, gt reflect.Type, node map[string]any, vtag string) {
		raw := node
		node = resolve(t, root, node)
		if gt.Kind() == reflect.Pointer {
			gt = gt.Elem()
		}
		if d, _ := node["description"].(string); d == "" && gt.Kind() != reflect.Bool {
			t.Errorf("%s: no description in the schema", p)
		}
		want := map[reflect.Kind]string{reflect.String: "string", reflect.Bool: "boolean", reflect.Float64: "number", reflect.Slice: "array", reflect.Struct: "object"}[gt.Kind()]
		if node["type"] != want {
			t.Errorf("%s: schema type %v, Go type %s wants %q", p, node["type"], gt, want)
			return
		}
		switch gt.Kind() {
		case reflect.Slice:
			if strings.Contains(vtag, "max=100") != (node["maxItems"] == 100.0) {
				t.Errorf("%s: Go max=100 and schema maxItems %v disagree", p, node["maxItems"])
			}
			items, _ := node["items"].(map[string]any)
			walk(p+"[]", gt.Elem(), items, vtag)
			return
		case reflect.Struct:
			if node["additionalProperties"] != false {
				t.Errorf("%s: additionalProperties must be false", p)
			}
			props, _ := node["properties"].(map[string]any)
			info := structInfoOf(gt)
			var goNames, goRequired, schemaRequired []string
			for _, f := range info.fields {
				goNames = append(goNames, f.name)
				if f.required {
					goRequired = append(goRequired, f.name)
				}
				sf := gt.Field(f.index)
				vt := sf.Tag.Get("validate")
				if omit := strings.Contains(sf.Tag.Get("json"), ",omitempty"); omit == f.required {
					t.Errorf("%s.%s: the validate tag (required=%v) and the json tag (omitempty=%v) disagree", p, f.name, f.required, omit)
				}
				sub, ok := props[f.name].(map[string]any)
				if !ok {
					t.Errorf("%s.%s: in Go, not in the schema", p, f.name)
					continue
				}
				walk(strings.TrimPrefix(p+"."+f.name, "."), sf.Type, sub, vt)
			}
			for name := range props {
				if !slices.Contains(goNames, name) {
					t.Errorf("%s.%s: in the schema, not in Go", p, name)
				}
			}
			for _, r := range asList(node["required"]) {
				schemaRequired = append(schemaRequired, r.(string))
			}
			sort.Strings(goRequired)
			sort.Strings(schemaRequired)
			if !slices.Equal(goRequired, schemaRequired) {
				t.Errorf("%s: required fields differ: Go %q, schema %q", p, goRequired, schemaRequired)
			}
			return
		}
		// A scalar: the rule of its validate tag must show in the schema.
		r := rule(vtag)
		vocab, isVocab := strings.CutPrefix(r, "vocab=")
		enum := asList(node["enum"])
		switch {
		case isVocab:
			var got []string
			for _, e := range enum {
				got = append(got, e.(string))
			}
			if words, ok := vocabularies[vocab]; !ok || !slices.Equal(got, words) {
				t.Errorf("%s: schema enum %q, Go vocabulary %q = %q", p, got, vocab, words)
			}
		case enum != nil:
			t.Errorf("%s: schema has an enum, Go has rule %q", p, r)
		case defRefs[r] != "":
			if raw["$ref"] != defRefs[r] {
				t.Errorf("%s: Go rule %q wants $ref %s, schema has %v", p, r, defRefs[r], raw["$ref"])
			}
		case patterns[r] != nil:
			if node["pattern"] != patterns[r].String() {
				t.Errorf("%s: schema pattern %v, Go pattern %s", p, node["pattern"], patterns[r])
			}
		case r == "nhsnumber":
			if node["pattern"] != "^[0-9]{10}$" {
				t.Errorf("%s: schema pattern %v for an NHS number", p, node["pattern"])
			}
		case r == "schemaversion":
			if node["const"] != SchemaVersion {
				t.Errorf("%s: schema const %v, Go SchemaVersion %q", p, node["const"], SchemaVersion)
			}
		case r == "" && gt.Kind() != reflect.String:
		default:
			t.Errorf("%s: no schema counterpart known for Go rule %q", p, r)
		}
	}
	walk("", reflect.TypeFor[CaseRecord](), root, "")

	defs := root["$defs"].(map[string]any)
	for name, re := range map[string]*regexp.Regexp{"date": datePattern, "instant": instantPattern, "odsCode": odsPattern} {
		if got := defs[name].(map[string]any)["pattern"]; got != re.String() {
			t.Errorf("$defs/%s pattern %v, Go %s", name, got, re)
		}
	}
	for name, limit := range map[string]float64{"text": maxTextLength, "narrative": maxTextLength, "textList": maxListItems} {
		d := defs[name].(map[string]any)
		if d["maxLength"] != limit && d["maxItems"] != limit {
			t.Errorf("$defs/%s does not carry the limit %v", name, limit)
		}
	}
}

func asList(v any) []any {
	l, _ := v.([]any)
	return l
}

// TestSchemaTextRulesMatchGo compares the schema's text patterns with
// textProblem rune by rune over the Basic Multilingual Plane.
func TestSchemaTextRulesMatchGo(t *testing.T) {
	defs := schemaDoc(t)["$defs"].(map[string]any)
	for _, name := range []string{"text", "narrative"} {
		t.Run(name, func(t *testing.T) {
			d := defs[name].(map[string]any)
			allowed := regexp.MustCompile(d["pattern"].(string))
			blank := regexp.MustCompile(d["not"].(map[string]any)["pattern"].(string))
			schemaOK := func(s string) bool { return allowed.MatchString(s) && !blank.MatchString(s) }
			bad := 0
			for r := rune(0); r <= 0xFFFF && bad < 10; r++ {
				if r >= 0xD800 && r <= 0xDFFF {
					continue // surrogates are not characters
				}
				for _, s := range []string{string(r), "a" + string(r) + "b"} {
					if goOK := textProblem(s, name == "narrative") == ""; goOK != schemaOK(s) {
						t.Errorf("%q: Go says ok=%v, the schema ok=%v", s, goOK, schemaOK(s))
						bad++
					}
				}
			}
		})
	}
}

// goOnly lists the cases that the schema cannot see as invalid, and why. The
// test fails if the schema starts rejecting one, so the list stays honest.
var goOnly = map[string]string{
	"nhs-number-check-digit":     "Modulus 11 check digit",
	"nhs-number-check-digit-ten": "Modulus 11 check digit",
	"duplicate-key":              "duplicate keys are gone once the JSON is parsed",
	"duplicate-top-level-key":    "duplicate keys are gone once the JSON is parsed",
	"invalid-utf8":               "broken UTF-8 is replaced with U+FFFD when the JSON is parsed",
	"lone-surrogate":             "a lone \\u surrogate escape is replaced with U+FFFD when the JSON is parsed",
	"number-out-of-range":        "a number too large for 64 bits is still a JSON number",
}

func compiledSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(CaseRecordSchema))
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	c.AssertFormat() // date and date-time are assertions here, as the docs say
	if err := c.AddResource("case-record.schema.json", doc); err != nil {
		t.Fatal(err)
	}
	sch, err := c.Compile("case-record.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	return sch
}

// TestSchemaAgreesWithParse validates every test case with a JSON Schema
// validator and checks that it reaches the same verdict as ParseCaseRecord.
func TestSchemaAgreesWithParse(t *testing.T) {
	sch := compiledSchema(t)
	for _, dir := range []string{"valid", "invalid"} {
		for _, file := range cases(t, dir) {
			name := caseName(file)
			t.Run(dir+"/"+name, func(t *testing.T) {
				data, err := os.ReadFile(file)
				if err != nil {
					t.Fatal(err)
				}
				_, parseErr := ParseCaseRecord(data)
				schemaErr := func() error {
					inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
					if err != nil {
						return err
					}
					return sch.Validate(inst)
				}()
				goAccepts, schemaAccepts := parseErr == nil, schemaErr == nil
				if why, ok := goOnly[name]; ok {
					if goAccepts || !schemaAccepts {
						t.Errorf("listed as a Go-only check (%s), but Go accepts=%v and the schema accepts=%v: %v", why, goAccepts, schemaAccepts, schemaErr)
					}
					return
				}
				if goAccepts != schemaAccepts {
					t.Errorf("ParseCaseRecord accepts=%v (%v), the schema accepts=%v (%v)", goAccepts, parseErr, schemaAccepts, schemaErr)
				}
			})
		}
	}
}

// TestSchemaAgreesOnConditionalRequirements sweeps the "what is required
// when" table: for every consent decision, a record missing (or emptying)
// each consent field in turn, and for an override, a record missing each
// override field in turn, must get the same verdict from the schema and
// from ParseCaseRecord.
func TestSchemaAgreesOnConditionalRequirements(t *testing.T) {
	sch := compiledSchema(t)
	base, err := os.ReadFile(filepath.Join("testdata", "parse", "valid", "override-safeguarding.json"))
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(base, &doc); err != nil {
		t.Fatal(err)
	}
	override := doc["override"]
	fullConsent := map[string]any{
		"decision": "given", "recipients": []any{"u-cope"}, "purposes": []any{"direct-care"},
		"dataCategories": []any{"needs"}, "recordedAt": "2026-11-18T11:20:00Z", "expiresAt": "2027-05-18T00:00:00Z",
		"method": "written", "recordedBy": "Priya Raman", "capacity": map[string]any{"status": "presumed"},
		"competenceAssessed": false,
	}
	check := func(t *testing.T, consent map[string]any, over any) {
		t.Helper()
		d := map[string]any{}
		for k, v := range doc {
			d[k] = v
		}
		d["consent"] = consent
		delete(d, "override")
		if over != nil {
			d["override"] = over
		}
		data, err := json.Marshal(d)
		if err != nil {
			t.Fatal(err)
		}
		_, parseErr := ParseCaseRecord(data)
		inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		schemaErr := sch.Validate(inst)
		if (parseErr == nil) != (schemaErr == nil) {
			t.Errorf("ParseCaseRecord: %v\nschema: %v", parseErr, schemaErr)
		}
	}
	for _, decision := range ConsentDecisions {
		for _, f := range structInfoOf(reflect.TypeFor[Consent]()).fields {
			if f.name == "decision" {
				continue
			}
			variants := map[string]any{"missing": nil}
			if _, isList := fullConsent[f.name].([]any); isList {
				variants["empty"] = []any{}
			}
			for how, v := range variants {
				for _, withOverride := range []bool{false, true} {
					name := decision + "/" + f.name + "-" + how
					if withOverride {
						name += "/with-override"
					}
					t.Run(name, func(t *testing.T) {
						c := map[string]any{}
						for k, x := range fullConsent {
							c[k] = x
						}
						c["decision"] = decision
						delete(c, f.name)
						if v != nil {
							c[f.name] = v
						}
						var over any
						if withOverride {
							over = override
						}
						check(t, c, over)
					})
				}
			}
		}
	}
	refused := map[string]any{"decision": "refused", "recordedAt": "2026-11-18T11:20:00Z", "method": "verbal", "recordedBy": "Priya Raman"}
	for _, f := range structInfoOf(reflect.TypeFor[Override]()).fields {
		t.Run("override/"+f.name+"-missing", func(t *testing.T) {
			o := map[string]any{}
			for k, x := range override.(map[string]any) {
				o[k] = x
			}
			delete(o, f.name)
			check(t, refused, o)
		})
	}
}

// TestEarlierExamplesStayValid parses every example case record of the
// first release of contract v1 (testdata/earlier-cases holds them as they
// were before the optional additions: safeContact, riskToOthers,
// consentSought.reason, lacks-capacity, competenceAssessedBy/On, optional
// capacity, roles by form): each must still be valid, and valid by the
// schema too, since schemaVersion "1" stays.
func TestEarlierExamplesStayValid(t *testing.T) {
	sch := compiledSchema(t)
	files, _ := filepath.Glob(filepath.Join("testdata", "earlier-cases", "*.json"))
	if len(files) < 12 {
		t.Fatalf("found %d earlier examples, want 12", len(files))
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := ParseCaseRecord(data); err != nil {
				t.Errorf("no longer valid: %v", err)
			}
			inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
			if err != nil {
				t.Fatal(err)
			}
			if err := sch.Validate(inst); err != nil {
				t.Errorf("no longer valid by the schema: %v", err)
			}
		})
	}
}
