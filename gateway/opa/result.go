package opa

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/student-mh-referrals/gateway/gateway"
)

// errUndefined is a policy set whose decision did not evaluate: a bug in the
// policies or an input they could not handle, never a deny and never an
// allow.
var errUndefined = errors.New("the decision is undefined")

// decisionOf maps the policies' result to a gateway.Decision, checking its
// shape strictly: every field present with the right type, rules with ids,
// known obligation types and data categories, an allow with no deny and at
// least one satisfied rule, and a deny that names at least one failing rule
// and carries nothing to send. Anything else is an error, so that a broken
// policy can never let data out. The result holds the decision as an OPA term
// (rawTerm), read here without converting it to Go maps first.
func decisionOf(v ast.Value) (*gateway.Decision, error) {
	if v == nil {
		return nil, errUndefined
	}
	doc, ok := v.(ast.Object)
	if !ok {
		return nil, fmt.Errorf("the decision is %s, not an object", ast.ValueName(v))
	}
	r := reader{}
	deny := r.results(doc, "deny")
	satisfied := r.results(doc, "satisfied")
	d := &gateway.Decision{
		Allow:          r.boolean(doc, "", "allow"),
		Route:          r.str(doc, "", "route"),
		Obligations:    r.obligations(doc),
		LawfulBases:    r.lawfulBases(doc),
		DataCategories: r.categories(doc, "dataCategories"),
		Recipient:      r.recipient(doc),
	}
	if get(doc, "withheldCategories") != nil { // optional: a set that names none withholds none
		d.WithheldCategories = r.categories(doc, "withheldCategories")
	}
	if r.err != nil {
		return nil, r.err
	}
	if d.Route == "" {
		return nil, errors.New("route is empty")
	}
	switch {
	case d.Allow && len(deny) > 0:
		return nil, errors.New("allow is true but a rule denies")
	case d.Allow && len(satisfied) == 0:
		return nil, errors.New("allow is true but no rule allowed")
	case !d.Allow && len(satisfied) > 0:
		return nil, errors.New("a deny lists satisfied rules")
	case d.Allow && (d.LawfulBases.Article6 == "" || d.LawfulBases.Article9 == ""):
		return nil, errors.New("allow is true but the lawful bases are not named (L-01)")
	case !d.Allow && len(deny) == 0:
		return nil, errors.New("allow is false but no rule denies")
	case !d.Allow && (len(d.Obligations) > 0 || len(d.DataCategories) > 0 || len(d.WithheldCategories) > 0):
		return nil, errors.New("a deny carries obligations or data categories")
	}
	if d.Allow {
		d.Rules = ruleList(satisfied, true, d.Obligations)
	} else {
		d.Rules = ruleList(deny, false, nil)
	}
	return d, nil
}

// result is one member of the policies' deny or satisfied set.
type result struct{ id, message string }

// ruleList presents a deny or satisfied set as the decision lists its rules:
// one entry per rule id, in id order, its messages in order joined with "; ".
// The effect is "deny" for a deny set, and for a satisfied set "obligation"
// where one of the obligations names the rule, otherwise "allow".
// Presentation only: which rules fail, hold or oblige is the policies' call.
func ruleList(results []result, allow bool, obligations []gateway.Obligation) []gateway.RuleResult {
	slices.SortFunc(results, func(a, b result) int {
		if c := strings.Compare(a.id, b.id); c != 0 {
			return c
		}
		return strings.Compare(a.message, b.message)
	})
	out := make([]gateway.RuleResult, 0, len(results))
	for _, res := range results {
		if n := len(out); n > 0 && out[n-1].ID == res.id {
			out[n-1].Message += "; " + res.message
			continue
		}
		effect := gateway.EffectDeny
		if allow {
			effect = gateway.EffectAllow
			if slices.ContainsFunc(obligations, func(o gateway.Obligation) bool { return o.Rule == res.id }) {
				effect = gateway.EffectObligation
			}
		}
		out = append(out, gateway.RuleResult{ID: res.id, Effect: effect, Message: res.message})
	}
	return out
}

// reader extracts typed fields from the decision, keeping the first error.
// Each field is read by its parent's path in the decision and its name, so
// that an error names it in full, such as obligations[2].type.
type reader struct {
	err error
}

// get is the field name of obj, or nil.
func get(obj ast.Object, name string) *ast.Term { return obj.Get(ast.StringTerm(name)) }

// pathOf is the path of the field name of the object at parent.
func pathOf(parent, name string) string {
	if parent == "" {
		return name
	}
	return parent + "." + name
}

// elem is the path of the i-th element of the collection at p.
func elem(p string, i int) string { return fmt.Sprintf("%s[%d]", p, i) }

func (r *reader) fail(path, want string, got *ast.Term) {
	if r.err == nil {
		name := "missing"
		if got != nil {
			name = ast.ValueName(got.Value)
		}
		r.err = fmt.Errorf("%s is %s, not %s", path, name, want)
	}
}

// field reads the field name of obj as a T, recording an error naming it
// (as want) when it is missing or of another type.
func field[T ast.Value](r *reader, obj ast.Object, parent, name, want string) (T, bool) {
	t := get(obj, name)
	if t != nil {
		if v, ok := t.Value.(T); ok {
			return v, true
		}
	}
	r.fail(pathOf(parent, name), want, t)
	var zero T
	return zero, false
}

func (r *reader) boolean(obj ast.Object, parent, name string) bool {
	b, _ := field[ast.Boolean](r, obj, parent, name, "a boolean")
	return bool(b)
}

// str reads a required string; optStr an optional one.
func (r *reader) str(obj ast.Object, parent, name string) string {
	s, _ := field[ast.String](r, obj, parent, name, "a string")
	return string(s)
}

func (r *reader) optStr(obj ast.Object, parent, name string) string {
	if get(obj, name) == nil {
		return ""
	}
	return r.str(obj, parent, name)
}

func (r *reader) object(obj ast.Object, parent, name string) ast.Object {
	if o, ok := field[ast.Object](r, obj, parent, name, "an object"); ok {
		return o
	}
	return ast.NewObject()
}

func (r *reader) strings(obj ast.Object, parent, name string) []string {
	a, ok := field[*ast.Array](r, obj, parent, name, "an array")
	if !ok {
		return nil
	}
	out := make([]string, 0, a.Len())
	for i := range a.Len() {
		s, ok := a.Elem(i).Value.(ast.String)
		if !ok {
			r.fail(elem(pathOf(parent, name), i), "a string", a.Elem(i))
		}
		out = append(out, string(s))
	}
	return out
}

// elems reads a collection of the decision: a set, as the policies make
// them, or an array, in the order OPA's canonical order of terms gives.
func (r *reader) elems(obj ast.Object, name string) []*ast.Term {
	t := get(obj, name)
	if t != nil {
		switch v := t.Value.(type) {
		case ast.Set:
			return v.Slice() // sorted
		case *ast.Array:
			out := make([]*ast.Term, 0, v.Len())
			for i := range v.Len() {
				out = append(out, v.Elem(i))
			}
			return out
		}
	}
	r.fail(name, "a set", t)
	return nil
}

// objects calls fn with each object of the collection name of doc and its
// path, and records an error for each element that is not an object.
func (r *reader) objects(doc ast.Object, name string, fn func(p string, o ast.Object)) {
	for i, t := range r.elems(doc, name) {
		if o, ok := t.Value.(ast.Object); ok {
			fn(elem(name, i), o)
		} else {
			r.fail(elem(name, i), "an object", t)
		}
	}
}

// results reads the deny or the satisfied set: {"id", "message"} objects.
func (r *reader) results(doc ast.Object, name string) []result {
	var out []result
	r.objects(doc, name, func(p string, o ast.Object) {
		res := result{id: r.str(o, p, "id"), message: r.str(o, p, "message")}
		if r.err == nil && res.id == "" {
			r.err = fmt.Errorf("%s has an empty id", p)
		}
		out = append(out, res)
	})
	return out
}

// categories reads a set of data categories (those that leave, or those
// withheld), in the order of the contract's vocabulary; a category outside
// it is a broken policy.
func (r *reader) categories(doc ast.Object, key string) []string {
	ts := r.elems(doc, key)
	seen := make(map[string]bool, len(ts))
	for i, t := range ts {
		s, ok := t.Value.(ast.String)
		if !ok || !slices.Contains(gateway.DataCategories, string(s)) {
			r.fail(elem(key, i), "a data category", t)
			return nil
		}
		seen[string(s)] = true
	}
	out := make([]string, 0, len(seen))
	for _, c := range gateway.DataCategories {
		if seen[c] {
			out = append(out, c)
		}
	}
	return out
}

var obligationTypes = []string{
	gateway.ObligationStripFields, gateway.ObligationKeepCategories,
	gateway.ObligationDropTrustedContact, gateway.ObligationNotifyStudent,
}

func (r *reader) obligations(doc ast.Object) []gateway.Obligation {
	out := []gateway.Obligation{}
	r.objects(doc, "obligations", func(p string, o ast.Object) {
		ob := gateway.Obligation{
			Type:    r.str(o, p, "type"),
			Rule:    r.str(o, p, "rule"),
			Message: r.optStr(o, p, "message"),
		}
		if get(o, "fields") != nil {
			ob.Fields = r.strings(o, p, "fields")
		}
		if get(o, "categories") != nil {
			ob.Categories = r.strings(o, p, "categories")
		}
		if r.err == nil && (ob.Rule == "" || !slices.Contains(obligationTypes, ob.Type)) {
			r.err = fmt.Errorf("%s has type %q and rule %q", p, ob.Type, ob.Rule)
		}
		out = append(out, ob)
	})
	// By rule, then type; the set's own order breaks ties.
	slices.SortStableFunc(out, func(a, b gateway.Obligation) int {
		if c := strings.Compare(a.Rule, b.Rule); c != 0 {
			return c
		}
		return strings.Compare(a.Type, b.Type)
	})
	return out
}

func (r *reader) lawfulBases(doc ast.Object) gateway.LawfulBasis {
	o := r.object(doc, "", "lawfulBases")
	return gateway.LawfulBasis{
		Article6:     r.optStr(o, "lawfulBases", "article6"),
		Article9:     r.optStr(o, "lawfulBases", "article9"),
		DPASchedule1: r.optStr(o, "lawfulBases", "dpaSchedule1"),
	}
}

func (r *reader) recipient(doc ast.Object) gateway.Recipient {
	o := r.object(doc, "", "recipient")
	return gateway.Recipient{
		Service: r.str(o, "recipient", "service"),
		ODSCode: r.str(o, "recipient", "odsCode"),
		Name:    r.str(o, "recipient", "name"),
	}
}
