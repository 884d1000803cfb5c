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
	deny := r.results(doc, keyDeny, "deny")
	satisfied := r.results(doc, keySatisfied, "satisfied")
	d := &gateway.Decision{
		Allow:          r.boolean(doc, keyAllow, at("allow")),
		Route:          r.str(doc, keyRoute, at("route")),
		Obligations:    r.obligations(doc),
		LawfulBases:    r.lawfulBases(doc),
		DataCategories: r.categories(doc),
		Recipient:      r.recipient(doc),
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
	case !d.Allow && (len(d.Obligations) > 0 || len(d.DataCategories) > 0):
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
	for i := 0; i < len(results); {
		j := i + 1
		for j < len(results) && results[j].id == results[i].id {
			j++
		}
		msgs := make([]string, 0, j-i)
		for _, r := range results[i:j] {
			msgs = append(msgs, r.message)
		}
		effect := gateway.EffectDeny
		if allow {
			effect = gateway.EffectAllow
			if slices.ContainsFunc(obligations, func(o gateway.Obligation) bool { return o.Rule == results[i].id }) {
				effect = gateway.EffectObligation
			}
		}
		out = append(out, gateway.RuleResult{ID: results[i].id, Effect: effect, Message: strings.Join(msgs, "; ")})
		i = j
	}
	return out
}

// The keys of the decision document, made once.
var (
	keyAllow          = ast.StringTerm("allow")
	keyRoute          = ast.StringTerm("route")
	keyDeny           = ast.StringTerm("deny")
	keySatisfied      = ast.StringTerm("satisfied")
	keyObligations    = ast.StringTerm("obligations")
	keyLawfulBases    = ast.StringTerm("lawfulBases")
	keyDataCategories = ast.StringTerm("dataCategories")
	keyRecipient      = ast.StringTerm("recipient")
	keyID             = ast.StringTerm("id")
	keyMessage        = ast.StringTerm("message")
	keyType           = ast.StringTerm("type")
	keyRule           = ast.StringTerm("rule")
	keyFields         = ast.StringTerm("fields")
	keyCategories     = ast.StringTerm("categories")
	keyArticle6       = ast.StringTerm("article6")
	keyArticle9       = ast.StringTerm("article9")
	keyDPASchedule1   = ast.StringTerm("dpaSchedule1")
	keyService        = ast.StringTerm("service")
	keyODSCode        = ast.StringTerm("odsCode")
	keyName           = ast.StringTerm("name")
)

// fieldPath names a field of the decision in an error, such as rules[2].effect;
// it is formatted only when there is an error to report.
type fieldPath struct {
	parent string
	index  int // -1: no index
	field  string
}

func at(field string) fieldPath { return fieldPath{field: field, index: -1} }

func (p fieldPath) String() string {
	s := p.parent
	if p.index >= 0 {
		s = fmt.Sprintf("%s[%d]", s, p.index)
	}
	if p.field != "" {
		if s != "" {
			s += "."
		}
		s += p.field
	}
	return s
}

// with names a field of the element or object at p; p has no field itself.
func (p fieldPath) with(field string) fieldPath {
	return fieldPath{parent: p.parent, index: p.index, field: field}
}

// in names a field of a top-level object of the decision.
func in(parent, field string) fieldPath { return fieldPath{parent: parent, index: -1, field: field} }

// reader extracts typed fields from the decision, keeping the first error.
type reader struct {
	err error
}

func (r *reader) fail(p fieldPath, want string, got *ast.Term) {
	if r.err == nil {
		name := "missing"
		if got != nil {
			name = ast.ValueName(got.Value)
		}
		r.err = fmt.Errorf("%s is %s, not %s", p, name, want)
	}
}

func (r *reader) boolean(obj ast.Object, key *ast.Term, p fieldPath) bool {
	t := obj.Get(key)
	if t != nil {
		if b, ok := t.Value.(ast.Boolean); ok {
			return bool(b)
		}
	}
	r.fail(p, "a boolean", t)
	return false
}

// str reads a required string; optStr an optional one.
func (r *reader) str(obj ast.Object, key *ast.Term, p fieldPath) string {
	t := obj.Get(key)
	if t != nil {
		if s, ok := t.Value.(ast.String); ok {
			return string(s)
		}
	}
	r.fail(p, "a string", t)
	return ""
}

func (r *reader) optStr(obj ast.Object, key *ast.Term, p fieldPath) string {
	if obj.Get(key) == nil {
		return ""
	}
	return r.str(obj, key, p)
}

func (r *reader) object(obj ast.Object, key *ast.Term, p fieldPath) ast.Object {
	t := obj.Get(key)
	if t != nil {
		if o, ok := t.Value.(ast.Object); ok {
			return o
		}
	}
	r.fail(p, "an object", t)
	return ast.NewObject()
}

func (r *reader) array(obj ast.Object, key *ast.Term, p fieldPath) *ast.Array {
	t := obj.Get(key)
	if t != nil {
		if a, ok := t.Value.(*ast.Array); ok {
			return a
		}
	}
	r.fail(p, "an array", t)
	return ast.NewArray()
}

func (r *reader) strings(obj ast.Object, key *ast.Term, p fieldPath) []string {
	a := r.array(obj, key, p)
	out := make([]string, 0, a.Len())
	for i := range a.Len() {
		t := a.Elem(i)
		s, ok := t.Value.(ast.String)
		if !ok {
			r.fail(fieldPath{parent: p.String(), index: i}, "a string", t) // only on failure
		}
		out = append(out, string(s))
	}
	return out
}

// elems reads a collection of the decision: a set, as the policies make
// them, or an array, in the order OPA's canonical order of terms gives.
func (r *reader) elems(obj ast.Object, key *ast.Term, p fieldPath) []*ast.Term {
	t := obj.Get(key)
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
	r.fail(p, "a set", t)
	return nil
}

// results reads the deny or the satisfied set: {"id", "message"} objects.
func (r *reader) results(doc ast.Object, key *ast.Term, name string) []result {
	ts := r.elems(doc, key, at(name))
	out := make([]result, 0, len(ts))
	for i, t := range ts {
		p := fieldPath{parent: name, index: i}
		o, ok := t.Value.(ast.Object)
		if !ok {
			r.fail(p, "an object", t)
			continue
		}
		res := result{id: r.str(o, keyID, p.with("id")), message: r.str(o, keyMessage, p.with("message"))}
		if r.err == nil && res.id == "" {
			r.err = fmt.Errorf("%s has an empty id", p)
		}
		out = append(out, res)
	}
	return out
}

// categories reads the data categories that leave, in the order of the
// contract's vocabulary; a category outside it is a broken policy.
func (r *reader) categories(doc ast.Object) []string {
	p := at("dataCategories")
	ts := r.elems(doc, keyDataCategories, p)
	seen := make(map[string]bool, len(ts))
	for i, t := range ts {
		s, ok := t.Value.(ast.String)
		if !ok || !slices.Contains(gateway.DataCategories, string(s)) {
			r.fail(fieldPath{parent: p.String(), index: i}, "a data category", t)
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
	ts := r.elems(doc, keyObligations, at("obligations"))
	out := make([]gateway.Obligation, 0, len(ts))
	for i, t := range ts {
		p := fieldPath{parent: "obligations", index: i}
		o, ok := t.Value.(ast.Object)
		if !ok {
			r.fail(p, "an object", t)
			continue
		}
		ob := gateway.Obligation{
			Type:    r.str(o, keyType, p.with("type")),
			Rule:    r.str(o, keyRule, p.with("rule")),
			Message: r.optStr(o, keyMessage, p.with("message")),
		}
		if o.Get(keyFields) != nil {
			ob.Fields = r.strings(o, keyFields, p.with("fields"))
		}
		if o.Get(keyCategories) != nil {
			ob.Categories = r.strings(o, keyCategories, p.with("categories"))
		}
		if r.err == nil && (ob.Rule == "" || !slices.Contains(obligationTypes, ob.Type)) {
			r.err = fmt.Errorf("%s has type %q and rule %q", p, ob.Type, ob.Rule)
		}
		out = append(out, ob)
	}
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
	o := r.object(doc, keyLawfulBases, at("lawfulBases"))
	return gateway.LawfulBasis{
		Article6:     r.optStr(o, keyArticle6, in("lawfulBases", "article6")),
		Article9:     r.optStr(o, keyArticle9, in("lawfulBases", "article9")),
		DPASchedule1: r.optStr(o, keyDPASchedule1, in("lawfulBases", "dpaSchedule1")),
	}
}

func (r *reader) recipient(doc ast.Object) gateway.Recipient {
	o := r.object(doc, keyRecipient, at("recipient"))
	return gateway.Recipient{
		Service: r.str(o, keyService, in("recipient", "service")),
		ODSCode: r.str(o, keyODSCode, in("recipient", "odsCode")),
		Name:    r.str(o, keyName, in("recipient", "name")),
	}
}
