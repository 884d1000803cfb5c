package gateway

import (
	"reflect"
	"testing"
)

func TestTextProblem(t *testing.T) {
	tests := []struct {
		name      string
		in        string
		narrative bool
		want      string
	}{
		{"plain", "Jordan", false, ""},
		{"accents and scripts", "Zoë 日本語", false, ""},
		{"inner spaces", "Flat 2, 10 Coldharbour Lane", false, ""},
		{"empty", "", false, "is empty or only white space"},
		{"spaces", "   ", false, "is empty or only white space"},
		{"non-breaking and ideographic spaces", "\u00a0\u3000", false, "is empty or only white space"},
		{"line break in text", "a\nb", false, "contains a control character (U+000A); remove it"},
		{"line break in narrative", "a\r\n\tb", true, ""},
		{"only line breaks in narrative", "\n\t\r", true, "is empty or only white space"},
		{"bell in narrative", "a\u0007b", true, "contains a control character (U+0007); only tabs and line breaks are allowed"},
		{"NUL", "a\u0000", false, "contains a control character (U+0000); remove it"},
		{"DEL", "a\u007f", false, "contains a control character (U+007F); remove it"},
		{"C1 next line", "a\u0085b", true, "contains a control character (U+0085); only tabs and line breaks are allowed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := textProblem(tt.in, tt.narrative); got != tt.want {
				t.Errorf("textProblem(%q, %v) = %q, want %q", tt.in, tt.narrative, got, tt.want)
			}
		})
	}
}

func TestValidDate(t *testing.T) {
	tests := []struct {
		in   string
		want bool
	}{
		{"2005-04-12", true},
		{"2004-02-29", true},
		{"2005-02-29", false},
		{"2005-02-30", false},
		{"2005-13-01", false},
		{"2005-4-12", false},
		{"12/04/2005", false},
		{"2005-04-12T00:00:00Z", false},
		{"", false},
		{"0001-01-01", true},
		{"0000-01-01", false}, // FHIR has no year 0000
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			if got := validDate(tt.in); got != tt.want {
				t.Errorf("validDate(%q) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}

func TestValidInstant(t *testing.T) {
	tests := []struct {
		in   string
		want bool
	}{
		{"2026-11-19T14:02:00Z", true},
		{"2026-11-19T14:02:00.123Z", true},
		{"2026-11-19T14:02:00+01:00", true},
		{"2026-11-19T14:02:00+14:00", true},
		{"2026-11-19T14:02:00-14:00", true},
		{"2026-11-19T14:02:00-00:00", true},
		{"0001-01-01T00:00:00Z", true},
		// FHIR's dateTime takes offsets up to 14:00 and no year 0000: the
		// output gate would refuse these as internal errors.
		{"2026-11-19T14:02:00-23:59", false},
		{"2026-11-19T14:02:00+15:00", false},
		{"2026-11-19T14:02:00+14:01", false},
		{"2026-11-19T14:02:00-14:30", false},
		{"0000-01-01T00:00:00Z", false},
		{"2026-11-19T14:02:00", false},
		{"2026-11-19T14:02Z", false},
		{"2026-11-19 14:02:00Z", false},
		{"2026-11-19t14:02:00z", false},
		{"2026-11-19T14:02:00+24:00", false},
		{"2026-11-19T14:02:00+01:60", false},
		{"2026-11-19T24:00:00Z", false},
		{"2026-02-30T14:02:00Z", false},
		{"2026-11-19", false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			if got := validInstant(tt.in); got != tt.want {
				t.Errorf("validInstant(%q) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}

func TestLevenshteinSuggestions(t *testing.T) {
	info := structInfoOf(reflect.TypeFor[Consent]())
	tests := []struct{ key, want string }{
		{"dataCatagories", `; did you mean "dataCategories"?`},
		{"recipient", `; did you mean "recipients"?`},
		{"RecordedAt", `; did you mean "recordedAt"?`},
		{"consentGiven", ""},
		{"x", ""},
	}
	for _, tt := range tests {
		t.Run(tt.key, func(t *testing.T) {
			if got := suggest(tt.key, info); got != tt.want {
				t.Errorf("suggest(%q) = %q, want %q", tt.key, got, tt.want)
			}
		})
	}
}
