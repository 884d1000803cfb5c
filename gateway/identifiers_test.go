package gateway

import "testing"

func TestValidNHSNumber(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want bool
	}{
		{"valid", "9434765919", true},
		{"valid test number", "9000000009", true},
		{"check digit 0 from remainder 0", "9434765870", true},
		{"wrong check digit", "9434765918", false},
		{"check digit computes to 10", "9434765030", false},
		{"nine digits", "943476591", false},
		{"eleven digits", "94347659190", false},
		{"spaces", "943 476 5919", false},
		{"letters", "94347659X9", false},
		{"empty", "", false},
		{"non-ASCII digits", "９４３４７６５９１９", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ValidNHSNumber(tt.in); got != tt.want {
				t.Errorf("ValidNHSNumber(%q) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}

func TestValidODSCode(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want bool
	}{
		{"trust", "RW4", true},
		{"practice", "L81012", true},
		{"site", "RW4X1", true},
		{"ten characters", "ABCDE12345", true},
		{"too short", "RW", false},
		{"too long", "ABCDE123456", false},
		{"lower case", "l81012", false},
		{"space", "L81 012", false},
		{"empty", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ValidODSCode(tt.in); got != tt.want {
				t.Errorf("ValidODSCode(%q) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}

func TestValidUKPRN(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want bool
	}{
		{"UWE", "10007164", true},
		{"Liverpool", "10006842", true},
		{"seven digits", "1000716", false},
		{"nine digits", "100071640", false},
		{"not starting with 1", "20007164", false},
		{"letters", "1000716A", false},
		{"empty", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ValidUKPRN(tt.in); got != tt.want {
				t.Errorf("ValidUKPRN(%q) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}
