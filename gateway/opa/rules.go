package opa

import (
	"maps"
	"path"
	"regexp"
	"slices"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/student-mh-referrals/gateway/gateway"
)

// RuleInfo describes one sharing rule as its METADATA annotation states it,
// so that `gateway policy rules` and GET /v1/policy/rules show an IG lead the
// rules in force, read from the same source that decides.
type RuleInfo = gateway.PolicyRule

// Rules lists every rule of the policy set in force, sorted by id.
func (d *Decider) Rules() []RuleInfo { return append([]RuleInfo(nil), d.cur.Load().rules...) }

// rulesOf collects the annotations that carry a custom id. A rule whose id is
// annotated twice is listed once, from the first file and line.
func rulesOf(modules map[string]*ast.Module) []RuleInfo {
	seen := map[string]bool{}
	var out []RuleInfo
	for _, name := range slices.Sorted(maps.Keys(modules)) {
		m := modules[name]
		for _, a := range m.Annotations {
			id, _ := a.Custom["id"].(string)
			if id == "" || seen[id] {
				continue
			}
			seen[id] = true
			source, _ := a.Custom["source"].(string)
			out = append(out, RuleInfo{
				ID:          id,
				Title:       a.Title,
				Description: strings.TrimSpace(a.Description),
				Source:      strings.TrimSpace(source),
				File:        name,
				Theme:       themeOf(m, name),
			})
		}
	}
	slices.SortFunc(out, func(a, b RuleInfo) int { return strings.Compare(a.ID, b.ID) })
	return out
}

var parenthetical = regexp.MustCompile(`\s*\([^)]*\)`)

// themeOf is the first line of a policy file's leading comment without its
// list of rule ids ("# Consent: the default route (C-01..C-04)." gives
// "Consent: the default route"), or the file's name without .rego.
func themeOf(m *ast.Module, name string) string {
	for _, c := range m.Comments {
		if c.Location.Row != 1 {
			break
		}
		t := strings.TrimSpace(string(c.Text))
		t = strings.TrimSuffix(parenthetical.ReplaceAllString(t, ""), ".")
		if t != "" {
			return t
		}
	}
	return strings.TrimSuffix(path.Base(name), ".rego")
}
