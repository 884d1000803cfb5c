package opa

import (
	"errors"
	"fmt"
	"slices"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"

	"github.com/student-mh-referrals/gateway/gateway"
)

// errUndefined is a policy set whose decision did not evaluate: a bug in the
// policies or an input they could not handle, never a deny and never an
// allow.
var errUndefined = errors.New("the decision is undefined")

// decisionOf maps the policies' result to a gateway.Decision, checking its
// shape strictly: every field present with the right type, known effects and
// obligation types, an allow with no deny in it and a deny that names at
// least one failing rule. Anything else is an error, so that a broken policy
// can never let data out. The result holds the decision as an OPA term
// (rawTerm), read here without converting it to Go maps first.
func decisionOf(rs rego.ResultSet) (*gateway.Decision, error) {
	if len(rs) != 1 || len(rs[0].Expressions) != 1 {
		return nil, errUndefined
	}
	t, ok := rs[0].Expressions[0].Value.(*ast.Term)
	if !ok {
		return nil, fmt.Errorf("the decision is %T, not a term", rs[0].Expressions[0].Value)
	}
	doc, ok := t.Value.(ast.Object)
	if !ok {
		return nil, fmt.Errorf("the decision is %s, not an object", ast.ValueName(t.Value))
	}
	r := reader{}
	d := &gateway.Decision{
		Allow:          r.boolean(doc, keyAllow, at("allow")),
		Route:          r.str(doc, keyRoute, at("route")),
		Rules:          r.rules(doc),
		Obligations:    r.obligations(doc),
		LawfulBases:    r.lawfulBases(doc),
		DataCategories: r.strings(doc, keyDataCategories, at("dataCategories")),
		Recipient:      r.recipient(doc),
	}
	if r.err != nil {
		return nil, r.err
	}
	if d.Route == "" {
		return nil, errors.New("route is empty")
	}
	denied := slices.ContainsFunc(d.Rules, func(rr gateway.RuleResult) bool { return rr.Effect == gateway.EffectDeny })
	switch {
	case d.Allow && denied:
		return nil, errors.New("allow is true but a rule denies")
	case d.Allow && len(d.Rules) == 0:
		return nil, errors.New("allow is true but no rule allowed")
	case d.Allow && (d.LawfulBases.Article6 == "" || d.LawfulBases.Article9 == ""):
		return nil, errors.New("allow is true but the lawful bases are not named (L-01)")
	case !d.Allow && !denied:
		return nil, errors.New("allow is false but no rule denies")
	case !d.Allow && (len(d.Obligations) > 0 || len(d.DataCategories) > 0):
		return nil, errors.New("a deny carries obligations or data categories")
	}
	return d, nil
}

// The keys of the decision document, made once.
var (
	keyAllow          = ast.StringTerm("allow")
	keyRoute          = ast.StringTerm("route")
	keyRules          = ast.StringTerm("rules")
	keyObligations    = ast.StringTerm("obligations")
	keyLawfulBases    = ast.StringTerm("lawfulBases")
	keyDataCategories = ast.StringTerm("dataCategories")
	keyRecipient      = ast.StringTerm("recipient")
	keyID             = ast.StringTerm("id")
	keyEffect         = ast.StringTerm("effect")
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

var effects = []string{gateway.EffectAllow, gateway.EffectDeny, gateway.EffectObligation}

func (r *reader) rules(doc ast.Object) []gateway.RuleResult {
	a := r.array(doc, keyRules, at("rules"))
	out := make([]gateway.RuleResult, 0, a.Len())
	for i := range a.Len() {
		p := fieldPath{parent: "rules", index: i}
		o, ok := a.Elem(i).Value.(ast.Object)
		if !ok {
			r.fail(p, "an object", a.Elem(i))
			continue
		}
		rr := gateway.RuleResult{
			ID:      r.str(o, keyID, p.with("id")),
			Effect:  r.str(o, keyEffect, p.with("effect")),
			Message: r.str(o, keyMessage, p.with("message")),
		}
		if r.err == nil && (rr.ID == "" || !slices.Contains(effects, rr.Effect)) {
			r.err = fmt.Errorf("%s has id %q and effect %q", p, rr.ID, rr.Effect)
		}
		out = append(out, rr)
	}
	return out
}

var obligationTypes = []string{
	gateway.ObligationStripFields, gateway.ObligationKeepCategories,
	gateway.ObligationDropTrustedContact, gateway.ObligationNotifyStudent,
}

func (r *reader) obligations(doc ast.Object) []gateway.Obligation {
	a := r.array(doc, keyObligations, at("obligations"))
	out := make([]gateway.Obligation, 0, a.Len())
	for i := range a.Len() {
		p := fieldPath{parent: "obligations", index: i}
		o, ok := a.Elem(i).Value.(ast.Object)
		if !ok {
			r.fail(p, "an object", a.Elem(i))
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
