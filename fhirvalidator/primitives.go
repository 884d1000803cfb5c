package fhirvalidator

import (
	"encoding/xml"
	"io"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Primitive formats follow the R4 regexes
// (https://hl7.org/fhir/R4/datatypes.html), plus the calendar rules that a
// regex cannot express: 2017-02-30 matches R4's date regex but is no date.
// Dates are scanned by hand to say which part is wrong.

// primitiveJSON is the JSON type each FHIR primitive takes.
var primitiveJSON = map[string]kind{
	"boolean": kBool, "integer": kNumber, "positiveInt": kNumber, "unsignedInt": kNumber,
	"decimal": kNumber, "integer64": kString,
	"string": kString, "markdown": kString, "code": kString, "id": kString, "uri": kString,
	"url": kString, "canonical": kString, "oid": kString, "uuid": kString, "date": kString,
	"dateTime": kString, "instant": kString, "time": kString, "base64Binary": kString, "xhtml": kString,
}

// space is what R4's \s matches (Go's \s leaves out \v).
const space = `[ \t\n\r\f\v]`

var (
	codeRE   = regexp.MustCompile(`^[^ \t\n\r\f\v]+(` + space + `[^ \t\n\r\f\v]+)*$`)
	idRE     = regexp.MustCompile(`^[A-Za-z0-9.-]{1,64}$`)
	oidRE    = regexp.MustCompile(`^urn:oid:[0-2](\.(0|[1-9][0-9]*))+$`)
	uuidRE   = regexp.MustCompile(`^urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)
	timeRE   = regexp.MustCompile(`^([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\.[0-9]+)?$`)
	base64RE = regexp.MustCompile(`^` + space + `*([0-9a-zA-Z+/=]{4}` + space + `*)+$`)
)

// checkPrimitive returns a message when the JSON value n is not a valid
// value of primitive type code (whose JSON kind is want), or "".
func checkPrimitive(code string, want kind, n *node) string {
	if n.k != want {
		return "must be a JSON " + want.String() + " (FHIR " + code + "), not a " + n.k.String()
	}
	switch want {
	case kBool:
		return ""
	case kNumber:
		return checkNumber(code, n.s)
	}
	s := n.s
	if strings.TrimSpace(s) == "" {
		return "must not be empty or only whitespace"
	}
	if len(s) > 1<<20 {
		return "is longer than 1 MB"
	}
	switch code {
	case "string", "markdown":
		for i := 0; i < len(s); i++ {
			if c := s[i]; c < 0x20 && c != '\t' && c != '\r' && c != '\n' {
				return "contains a control character"
			}
		}
	case "code":
		if !codeRE.MatchString(s) {
			return "is not a valid code (no leading, trailing or repeated whitespace)"
		}
	case "id":
		if !idRE.MatchString(s) {
			return "is not a valid id (1-64 of A-Z a-z 0-9 - .)"
		}
	case "uri", "url", "canonical":
		if strings.ContainsAny(s, " \t\r\n") {
			return "is not a valid " + code + " (contains whitespace)"
		}
	case "oid":
		if !oidRE.MatchString(s) {
			return "is not a valid oid (urn:oid:…)"
		}
	case "uuid":
		if !uuidRE.MatchString(s) {
			return "is not a valid uuid (urn:uuid: and lower-case hex)"
		}
	case "date":
		return checkDateTime(s, code, false, false)
	case "dateTime":
		return checkDateTime(s, code, true, false)
	case "instant":
		return checkDateTime(s, code, true, true)
	case "time":
		if !timeRE.MatchString(s) {
			return "is not a valid time (hh:mm:ss)"
		}
	case "base64Binary":
		if !base64RE.MatchString(s) {
			return "is not valid base64"
		}
	case "xhtml":
		return checkXHTML(s)
	case "integer64":
		if _, err := strconv.ParseInt(s, 10, 64); err != nil {
			return "is not a valid integer64"
		}
	}
	return ""
}

func checkNumber(code, lit string) string {
	if code == "decimal" {
		return ""
	}
	// R4 integer: -?([0]|([1-9][0-9]*)); no fraction, no exponent.
	if strings.ContainsAny(lit, ".eE") {
		return "must be a whole number (" + code + ")"
	}
	i, err := strconv.ParseInt(lit, 10, 32)
	if err != nil {
		return "is out of range for a 32-bit " + code
	}
	switch {
	case code == "positiveInt" && i < 1:
		return "must be 1 or more (positiveInt)"
	case code == "unsignedInt" && i < 0:
		return "must not be negative (unsignedInt)"
	}
	return ""
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// digits reads n digits at s[i:], returning the value and true.
func digits(s string, i, n int) (int, bool) {
	if i+n > len(s) {
		return 0, false
	}
	v := 0
	for _, c := range []byte(s[i : i+n]) {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + int(c-'0')
	}
	return v, true
}

func daysIn(year, month int) int {
	return time.Date(year, time.Month(month)+1, 0, 0, 0, 0, 0, time.UTC).Day()
}

// checkDateTime checks a date, dateTime or instant: YYYY[-MM[-DD[Thh:mm:ss[.f+](Z|±hh:mm)]]].
// A dateTime with a time must have seconds and a time zone (R4); an instant
// must have everything.
func checkDateTime(s, code string, timeAllowed, full bool) string {
	bad := "is not a valid " + code
	year, ok := digits(s, 0, 4)
	if !ok || year == 0 {
		return bad + " (year)"
	}
	i := 4
	if i == len(s) && !full {
		return ""
	}
	if i >= len(s) || s[i] != '-' {
		return bad
	}
	month, ok := digits(s, i+1, 2)
	if !ok || month < 1 || month > 12 {
		return bad + " (month)"
	}
	i += 3
	if i == len(s) && !full {
		return ""
	}
	if i >= len(s) || s[i] != '-' {
		return bad
	}
	day, ok := digits(s, i+1, 2)
	if !ok || day < 1 || day > 31 {
		return bad + " (day)"
	}
	if day > daysIn(year, month) {
		// the value may be a date of birth: say what is wrong, not what it is
		return bad + ": no such day in that month"
	}
	i += 3
	if i == len(s) && !full {
		return ""
	}
	if !timeAllowed || i >= len(s) || s[i] != 'T' {
		return bad
	}
	i++
	j := i
	for j < len(s) && s[j] != 'Z' && s[j] != '+' && s[j] != '-' {
		j++
	}
	if !timeRE.MatchString(s[i:j]) {
		return bad + " (time)"
	}
	if j == len(s) {
		return bad + ": a time needs a time zone (Z or ±hh:mm)"
	}
	if s[j] == 'Z' {
		if j+1 != len(s) {
			return bad
		}
		return ""
	}
	tz := s[j+1:]
	h, ok1 := digits(tz, 0, 2)
	m, ok2 := digits(tz, 3, 2)
	if len(tz) != 5 || tz[2] != ':' || !ok1 || !ok2 || m > 59 || h > 14 || (h == 14 && m != 0) {
		return bad + " (time zone)"
	}
	return ""
}

// checkXHTML applies the parts of R4's narrative rules (txt-1, txt-2) that do
// not need a schema: well-formed XML, a div root in the XHTML namespace, no
// active content (script, forms, event handler attributes), and some
// non-whitespace content.
func checkXHTML(s string) string {
	if !utf8.ValidString(s) {
		return "is not valid UTF-8"
	}
	d := xml.NewDecoder(strings.NewReader(s))
	d.Strict = true
	d.Entity = xml.HTMLEntity
	depth, roots := 0, 0
	text := false
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return "is not well-formed XHTML (txt-1): " + err.Error()
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if depth == 0 {
				roots++
				if t.Name.Local != "div" || t.Name.Space != "http://www.w3.org/1999/xhtml" {
					return "must be a div in the XHTML namespace (txt-1)"
				}
			}
			switch strings.ToLower(t.Name.Local) {
			case "script", "form", "input", "button", "iframe", "object", "embed", "applet", "frame", "frameset", "base", "link", "meta", "style":
				return "must not contain <" + t.Name.Local + "> (txt-1)"
			case "img":
				text = true
			}
			for _, a := range t.Attr {
				if strings.HasPrefix(strings.ToLower(a.Name.Local), "on") {
					return "must not contain event handler attributes (txt-1)"
				}
			}
			depth++
		case xml.EndElement:
			depth--
		case xml.CharData:
			if depth == 0 && strings.TrimSpace(string(t)) != "" {
				return "has text outside the div (txt-1)"
			}
			if strings.TrimSpace(string(t)) != "" {
				text = true
			}
		}
	}
	if roots != 1 {
		return "must be a single div element (txt-1)"
	}
	if !text {
		return "must have some non-whitespace content (txt-2)"
	}
	return ""
}
