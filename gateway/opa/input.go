package opa

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/student-mh-referrals/gateway/gateway"
)

// policyInput is the input document the policies read (documented at the top
// of policies/decision.rego): the record and the service exactly as they
// marshal to JSON, and the decision time in RFC 3339, UTC.
type policyInput struct {
	Record  *gateway.CaseRecord `json:"record"`
	Service *gateway.Service    `json:"service"`
	At      string              `json:"at"`
}

func newPolicyInput(in gateway.DecisionInput) policyInput {
	return policyInput{Record: in.Record, Service: in.Service, At: in.At.UTC().Format(time.RFC3339Nano)}
}

// inputValue converts the decision input straight into an OPA value, as
// Decide does but without the cache of registry entries. It walks the Go
// types with the same rules encoding/json follows (json tags, omitempty), so
// the policies see exactly the JSON that gateway.CaseRecord marshals to,
// without the bytes in between: BenchmarkInput measures it against the JSON
// round trip (inputValueJSON), and TestInputValue holds the two equal.
func inputValue(in gateway.DecisionInput) (ast.Value, error) {
	var fresh serviceValues
	return fresh.input(in)
}

// keyRecord and keyAt are keys of the input document, made once; keyService
// is shared with the decision's recipient (result.go).
var (
	keyRecord = ast.StringTerm("record")
	keyAt     = ast.StringTerm("at")
)

// serviceValues keeps the converted registry entries. A service comes from
// the registry, which the gateway never changes once loaded, so its value
// is the same for every decision about it: converting it once saves a
// third of the input's conversion. Keyed by the entry's address; a map that
// outgrows serviceCacheSize (a registry replaced many times, or tests that
// make a service per call) starts again empty.
type serviceValues struct {
	mu sync.Mutex
	m  map[*gateway.Service]ast.Value
}

const serviceCacheSize = 256

func (c *serviceValues) value(s *gateway.Service) (ast.Value, error) {
	c.mu.Lock()
	v, ok := c.m[s]
	c.mu.Unlock()
	if ok {
		return v, nil
	}
	v, err := toValue(reflect.ValueOf(s), &termSlab{})
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if c.m == nil || len(c.m) >= serviceCacheSize {
		c.m = make(map[*gateway.Service]ast.Value)
	}
	c.m[s] = v
	c.mu.Unlock()
	return v, nil
}

// input is inputValue with the service's value from the cache.
func (c *serviceValues) input(in gateway.DecisionInput) (ast.Value, error) {
	rec, err := toValue(reflect.ValueOf(in.Record), &termSlab{})
	if err != nil {
		return nil, fmt.Errorf("record: %w", err)
	}
	svc, err := c.value(in.Service)
	if err != nil {
		return nil, fmt.Errorf("service: %w", err)
	}
	p := newPolicyInput(in)
	return ast.NewObject(
		[2]*ast.Term{keyRecord, ast.NewTerm(rec)},
		[2]*ast.Term{keyService, ast.NewTerm(svc)},
		[2]*ast.Term{keyAt, ast.StringTerm(p.At)},
	), nil
}

// inputValueJSON is the plain conversion: marshal, decode, convert. It is
// kept as the reference that inputValue must match.
func inputValueJSON(in gateway.DecisionInput) (ast.Value, error) {
	b, err := json.Marshal(newPolicyInput(in))
	if err != nil {
		return nil, err
	}
	return ast.ValueFromReader(strings.NewReader(string(b)))
}

// toValue converts v as encoding/json would marshal it.
func toValue(v reflect.Value, ts *termSlab) (ast.Value, error) {
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			return ast.NullValue, nil
		}
		return toValue(v.Elem(), ts)
	case reflect.Struct:
		fields := fieldsOf(v.Type())
		obj := ast.NewObjectWithCapacity(len(fields))
		for _, f := range fields {
			fv := v.Field(f.index)
			if f.omitEmpty && isEmpty(fv) {
				continue
			}
			x, err := toValue(fv, ts)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", f.name, err)
			}
			obj.Insert(f.key, ts.term(x))
		}
		return obj, nil
	case reflect.Slice:
		if v.IsNil() {
			return ast.NullValue, nil
		}
		fallthrough
	case reflect.Array:
		terms := make([]*ast.Term, v.Len())
		for i := range terms {
			x, err := toValue(v.Index(i), ts)
			if err != nil {
				return nil, err
			}
			terms[i] = ts.term(x)
		}
		return ast.NewArray(terms...), nil
	case reflect.Map:
		if v.IsNil() {
			return ast.NullValue, nil
		}
		if v.Type().Key().Kind() != reflect.String {
			return nil, fmt.Errorf("unsupported map key type %s", v.Type().Key())
		}
		obj := ast.NewObjectWithCapacity(v.Len())
		it := v.MapRange()
		for it.Next() {
			x, err := toValue(it.Value(), ts)
			if err != nil {
				return nil, err
			}
			obj.Insert(ast.InternedTerm(it.Key().String()), ts.term(x))
		}
		return obj, nil
	case reflect.String:
		if v.Len() == 0 {
			return ast.InternedEmptyStringValue, nil
		}
		return ast.String(v.String()), nil
	case reflect.Bool:
		return ast.Boolean(v.Bool()), nil
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return ast.InternedTerm(int(v.Int())).Value, nil
	case reflect.Float32, reflect.Float64:
		return ast.FloatNumberTerm(v.Float()).Value, nil
	default:
		return nil, fmt.Errorf("unsupported type %s", v.Type())
	}
}

// termSlab hands out the terms of one conversion from a few allocations
// instead of one each: a record has about a hundred. The terms live as long
// as the value they are part of.
type termSlab struct{ free []ast.Term }

func (s *termSlab) term(v ast.Value) *ast.Term {
	if len(s.free) == 0 {
		s.free = make([]ast.Term, 64)
	}
	t := &s.free[0]
	s.free = s.free[1:]
	t.Value = v
	return t
}

// field is one JSON-visible struct field. Its key term is made once and
// shared by every input: OPA never changes a term it is given.
type field struct {
	name      string
	key       *ast.Term
	index     int
	omitEmpty bool
}

var fieldCache sync.Map // reflect.Type -> []field

// fieldsOf lists the exported, tagged fields of a struct type as
// encoding/json names them. The gateway's types have no embedded structs.
func fieldsOf(t reflect.Type) []field {
	if fs, ok := fieldCache.Load(t); ok {
		return fs.([]field)
	}
	var fs []field
	for i := range t.NumField() {
		sf := t.Field(i)
		if !sf.IsExported() {
			continue
		}
		tag := sf.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if name == "" {
			name = sf.Name
		}
		fs = append(fs, field{name: name, key: ast.StringTerm(name), index: i, omitEmpty: hasOption(opts, "omitempty")})
	}
	fieldCache.Store(t, fs)
	return fs
}

func hasOption(opts, want string) bool {
	for opts != "" {
		var o string
		o, opts, _ = strings.Cut(opts, ",")
		if o == want {
			return true
		}
	}
	return false
}

// isEmpty is encoding/json's test for omitempty.
func isEmpty(v reflect.Value) bool {
	switch v.Kind() {
	case reflect.Array, reflect.Map, reflect.Slice, reflect.String:
		return v.Len() == 0
	case reflect.Bool:
		return !v.Bool()
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return v.Int() == 0
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return v.Uint() == 0
	case reflect.Float32, reflect.Float64:
		return v.Float() == 0
	case reflect.Interface, reflect.Pointer:
		return v.IsNil()
	default:
		return false
	}
}
