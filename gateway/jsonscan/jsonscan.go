// Package jsonscan walks JSON text without decoding it: one pass over the
// bytes that validates them exactly as encoding/json does (json.Valid) and
// reports each token with its position. It exists for the hot paths that only
// need to find a few elements of a large document, or to check its keys,
// where encoding/json's byte-at-a-time state machine (and Decoder.Token's
// allocation per token) cost several times the work itself: the delivery
// worker locating a Bundle's sender, the inbound response checks, and the
// stores' check that what they write is JSON (Valid is about five times
// json.Valid's speed, BenchmarkValid). It lives under gateway, beside the
// domain, because the domain and every adapter use it and it uses nothing.
package jsonscan

// Kind is the kind of a token.
type Kind uint8

// Token kinds. Key and String spans include their quotes.
const (
	BeginObject Kind = iota + 1
	EndObject
	BeginArray
	EndArray
	Key
	String
	Number
	Literal // true, false or null
)

// MaxDepth is encoding/json's nesting limit: deeper text is invalid there,
// so it is here.
const MaxDepth = 10000

// Visit is told of each token in document order: its kind, its span
// data[start:end] and its depth (the containers around it; a container's
// own Begin and End tokens have the depth of the container itself, outside
// it). Returning false stops the walk.
type Visit func(k Kind, start, end, depth int) bool

// Valid reports whether data is one JSON value with nothing but whitespace
// around it, exactly as json.Valid does.
func Valid(data []byte) bool {
	ok, _ := Walk(data, nil)
	return ok
}

// Walk validates data as Valid does and, when visit is not nil, calls it for
// each token up to the first error. valid reports whether the text walked
// was well formed; stopped whether visit ended the walk early (valid then
// says nothing about the rest of the text).
func Walk(data []byte, visit Visit) (valid, stopped bool) {
	// stack holds '{' or '[' per open container.
	var stackBuf [64]byte
	stack := stackBuf[:0]
	i := ws(data, 0)
	for {
		// A value is expected at i.
		if i >= len(data) {
			return false, false
		}
		depth := len(stack)
		switch c := data[i]; {
		case c == '{' || c == '[':
			if depth+1 > MaxDepth {
				return false, false
			}
			k := BeginObject
			if c == '[' {
				k = BeginArray
			}
			if visit != nil && !visit(k, i, i+1, depth) {
				return true, true
			}
			stack = append(stack, c)
			i = ws(data, i+1)
			if i < len(data) && data[i] == c+2 { // '}' is '{'+2, ']' is '['+2
				stack = stack[:depth]
				if visit != nil && !visit(k+1, i, i+1, depth) {
					return true, true
				}
				i++
				goto next
			}
			if c == '{' {
				var ok bool
				if i, ok = key(data, i, depth+1, visit); !ok {
					return i < 0, i < 0
				}
			}
			continue
		case c == '"':
			end := str(data, i)
			if end < 0 {
				return false, false
			}
			if visit != nil && !visit(String, i, end, depth) {
				return true, true
			}
			i = end
		case c == '-' || (c >= '0' && c <= '9'):
			end := num(data, i)
			if end < 0 {
				return false, false
			}
			if visit != nil && !visit(Number, i, end, depth) {
				return true, true
			}
			i = end
		case c == 't' || c == 'f' || c == 'n':
			end := lit(data, i)
			if end < 0 {
				return false, false
			}
			if visit != nil && !visit(Literal, i, end, depth) {
				return true, true
			}
			i = end
		default:
			return false, false
		}
	next:
		// After a value: close containers, or a comma and the next value.
		for {
			i = ws(data, i)
			depth := len(stack)
			if depth == 0 {
				return i == len(data), false
			}
			if i >= len(data) {
				return false, false
			}
			c, open := data[i], stack[depth-1]
			if c == ',' {
				i = ws(data, i+1)
				if open == '{' {
					var ok bool
					if i, ok = key(data, i, depth, visit); !ok {
						return i < 0, i < 0
					}
				}
				break
			}
			if c != open+2 {
				return false, false
			}
			stack = stack[:depth-1]
			k := EndObject
			if open == '[' {
				k = EndArray
			}
			if visit != nil && !visit(k, i, i+1, depth-1) {
				return true, true
			}
			i++
		}
	}
}

// key reads an object key at i and the colon after it and returns where the
// value starts. On failure ok is false and i is -1 when visit stopped the
// walk, else the text is invalid.
func key(data []byte, i, depth int, visit Visit) (int, bool) {
	if i >= len(data) || data[i] != '"' {
		return len(data), false
	}
	end := str(data, i)
	if end < 0 {
		return len(data), false
	}
	if visit != nil && !visit(Key, i, end, depth) {
		return -1, false
	}
	j := ws(data, end)
	if j >= len(data) || data[j] != ':' {
		return len(data), false
	}
	return ws(data, j+1), true
}

func ws(data []byte, i int) int {
	for i < len(data) {
		switch data[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// str returns the end of the string starting at data[i] == '"', or -1.
// Like encoding/json it takes any byte from 0x20 up, valid UTF-8 or not.
func str(data []byte, i int) int {
	for i++; i < len(data); i++ {
		switch c := data[i]; {
		case c == '"':
			return i + 1
		case c < 0x20:
			return -1
		case c == '\\':
			i++
			if i >= len(data) {
				return -1
			}
			switch data[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if i+4 >= len(data) {
					return -1
				}
				for _, h := range data[i+1 : i+5] {
					if !isHex(h) {
						return -1
					}
				}
				i += 4
			default:
				return -1
			}
		}
	}
	return -1
}

func isHex(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

// num returns the end of the number starting at i, or -1.
func num(data []byte, i int) int {
	if data[i] == '-' {
		i++
	}
	switch {
	case i >= len(data):
		return -1
	case data[i] == '0':
		i++
	case data[i] >= '1' && data[i] <= '9':
		i = digits(data, i+1)
	default:
		return -1
	}
	if i < len(data) && data[i] == '.' {
		j := digits(data, i+1)
		if j == i+1 {
			return -1
		}
		i = j
	}
	if i < len(data) && (data[i] == 'e' || data[i] == 'E') {
		i++
		if i < len(data) && (data[i] == '+' || data[i] == '-') {
			i++
		}
		j := digits(data, i)
		if j == i {
			return -1
		}
		i = j
	}
	return i
}

func digits(data []byte, i int) int {
	for i < len(data) && data[i] >= '0' && data[i] <= '9' {
		i++
	}
	return i
}

// lit returns the end of true, false or null at i, or -1.
func lit(data []byte, i int) int {
	for _, w := range [...]string{"true", "false", "null"} {
		if len(data)-i >= len(w) && string(data[i:i+len(w)]) == w {
			return i + len(w)
		}
	}
	return -1
}

// Plain reports whether the string token s (quotes included) has no escape
// and only ASCII from 0x20 up, so that s[1:len(s)-1] is its value as
// encoding/json would decode it.
func Plain(s []byte) bool {
	for _, c := range s[1 : len(s)-1] {
		if c == '\\' || c >= 0x80 {
			return false
		}
	}
	return true
}
