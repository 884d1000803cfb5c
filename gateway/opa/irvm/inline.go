package irvm

import "github.com/open-policy-agent/opa/v1/ast"

// inlined are built-in functions the machine runs on values directly: the
// comparisons, count, membership and the type tests, which a decision calls
// hundreds of times. Each does exactly what topdown's function of the same
// name does (TestInlinedMatchTopdown holds them to it on every pairing of a
// table of values); an operand of the wrong type is undefined, as topdown's
// error is without strict built-in errors.
var inlined = map[string]func(m *machine, args []ast.Value) ast.Value{
	ast.GreaterThan.Name:   func(_ *machine, a []ast.Value) ast.Value { return boolean(a[0].Compare(a[1]) > 0) },
	ast.GreaterThanEq.Name: func(_ *machine, a []ast.Value) ast.Value { return boolean(a[0].Compare(a[1]) >= 0) },
	ast.LessThan.Name:      func(_ *machine, a []ast.Value) ast.Value { return boolean(a[0].Compare(a[1]) < 0) },
	ast.LessThanEq.Name:    func(_ *machine, a []ast.Value) ast.Value { return boolean(a[0].Compare(a[1]) <= 0) },
	ast.NotEqual.Name:      func(_ *machine, a []ast.Value) ast.Value { return boolean(!ast.ValueEqual(a[0], a[1])) },
	ast.Equal.Name:         func(_ *machine, a []ast.Value) ast.Value { return boolean(ast.ValueEqual(a[0], a[1])) },
	ast.Count.Name:         count,
	ast.Member.Name:        member,
	ast.IsString.Name:      func(_ *machine, a []ast.Value) ast.Value { _, ok := a[0].(ast.String); return boolean(ok) },
	ast.IsNumber.Name:      func(_ *machine, a []ast.Value) ast.Value { _, ok := a[0].(ast.Number); return boolean(ok) },
	ast.IsBoolean.Name:     func(_ *machine, a []ast.Value) ast.Value { _, ok := a[0].(ast.Boolean); return boolean(ok) },
	ast.IsArray.Name:       func(_ *machine, a []ast.Value) ast.Value { _, ok := a[0].(*ast.Array); return boolean(ok) },
	ast.IsSet.Name:         func(_ *machine, a []ast.Value) ast.Value { _, ok := a[0].(ast.Set); return boolean(ok) },
	ast.IsObject.Name:      func(_ *machine, a []ast.Value) ast.Value { _, ok := a[0].(ast.Object); return boolean(ok) },
	ast.IsNull.Name:        func(_ *machine, a []ast.Value) ast.Value { _, ok := a[0].(ast.Null); return boolean(ok) },
}

func boolean(b bool) ast.Value { return ast.InternedValue(b) }

func count(_ *machine, a []ast.Value) ast.Value {
	switch c := a[0].(type) {
	case *ast.Array:
		return ast.InternedValue(c.Len())
	case ast.Object:
		return ast.InternedValue(c.Len())
	case ast.Set:
		return ast.InternedValue(c.Len())
	case ast.String:
		return ast.InternedValue(len([]rune(c)))
	}
	return nil
}

// member is internal.member_2, the `x in collection` of Rego.
func member(m *machine, a []ast.Value) ast.Value {
	x := a[0]
	switch c := a[1].(type) {
	case ast.Set:
		m.key.Value = x
		ok := c.Contains(&m.key)
		m.key.Value = nil
		return boolean(ok)
	case *ast.Array:
		for i := range c.Len() {
			if ast.ValueEqual(x, c.Elem(i).Value) {
				return boolean(true)
			}
		}
		return boolean(false)
	case ast.Object:
		found := c.Until(func(_, v *ast.Term) bool { return ast.ValueEqual(x, v.Value) })
		return boolean(found)
	}
	return boolean(false)
}
