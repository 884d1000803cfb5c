package http

import "bytes"

// indentCompact appends src, one compact JSON value as encoding/json's
// encoder writes it (no whitespace outside strings), to dst with two-space
// indentation: the same bytes as json.Indent(dst, src, "", "  ") gives for
// such input (TestIndentCompact, FuzzIndentCompact). json.Indent runs
// encoding/json's scanner over every byte, a function call each: it was
// 60 % of rendering an accepted referral's answer, which is 2.4 % of the
// gateway's CPU at flat-out intake. Here strings are copied whole and only
// the punctuation between them is looked at.
func indentCompact(dst, src []byte) []byte {
	depth := 0
	needIndent := false // after { or [: indent unless it is closed at once
	newline := func(d int) {
		dst = append(dst, '\n')
		for range d {
			dst = append(dst, ' ', ' ')
		}
	}
	for i := 0; i < len(src); {
		c := src[i]
		if needIndent && c != '}' && c != ']' {
			needIndent = false
			depth++
			newline(depth)
		}
		switch c {
		case '"':
			j := i + 1
			for {
				k := bytes.IndexAny(src[j:], `"\`)
				if k < 0 {
					// Not reachable for encoder output; keep the rest.
					return append(dst, src[i:]...)
				}
				j += k
				if src[j] == '\\' {
					j += 2
					continue
				}
				break
			}
			dst = append(dst, src[i:j+1]...)
			i = j + 1
			continue
		case '{', '[':
			needIndent = true
			dst = append(dst, c)
		case ',':
			dst = append(dst, c)
			newline(depth)
		case ':':
			dst = append(dst, c, ' ')
		case '}', ']':
			if needIndent {
				needIndent = false
			} else {
				depth--
				newline(depth)
			}
			dst = append(dst, c)
		default:
			// A number or a literal: up to the next punctuation.
			j := i + 1
			for j < len(src) && !isPunct(src[j]) {
				j++
			}
			dst = append(dst, src[i:j]...)
			i = j
			continue
		}
		i++
	}
	return dst
}

func isPunct(c byte) bool {
	switch c {
	case ',', ':', '{', '}', '[', ']', '"':
		return true
	}
	return false
}
