package http

import "testing"

// TestPreferred: the notice's media type follows the Accept header's
// ranking; a header that names none of the offers, or is malformed, gets
// JSON.
func TestPreferred(t *testing.T) {
	offers := []string{MediaJSON, mediaText, mediaHTML}
	for _, tt := range []struct{ accept, want string }{
		{"", MediaJSON},
		{"text/plain", mediaText},
		{"text/html", mediaHTML},
		{"text/plain;q=0.5, text/html", mediaHTML},
		{"text/*", mediaText},
		{"*/*", MediaJSON},
		{"application/json;q=0.1, text/plain;q=0.2", mediaText},
		{"image/png", MediaJSON},
		{"text/plain;q=nonsense", MediaJSON},
		{";;;", MediaJSON},
	} {
		if got := preferred(tt.accept, offers...); got != tt.want {
			t.Errorf("preferred(%q) = %s, want %s", tt.accept, got, tt.want)
		}
	}
}

func TestThousands(t *testing.T) {
	for n, want := range map[int]string{0: "0", 999: "999", 1000: "1,000", 5000: "5,000", 1234567: "1,234,567"} {
		if got := thousands(n); got != want {
			t.Errorf("thousands(%d) = %s, want %s", n, got, want)
		}
	}
}
