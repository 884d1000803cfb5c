package gateway

import "regexp"

var (
	odsPattern   = regexp.MustCompile(`^[A-Z0-9]{3,10}$`)
	ukprnPattern = regexp.MustCompile(`^1[0-9]{7}$`)
)

// ValidNHSNumber reports whether s is ten digits whose Modulus 11 check digit
// holds. A mistyped NHS number would attach a referral to the wrong person's
// record, so it is refused at the door.
func ValidNHSNumber(s string) bool {
	if len(s) != 10 {
		return false
	}
	sum := 0
	for i := 0; i < 10; i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return false
		}
		if i < 9 {
			sum += int(c-'0') * (10 - i)
		}
	}
	check := 11 - sum%11
	if check == 11 {
		check = 0
	}
	if check == 10 {
		return false
	}
	return check == int(s[9]-'0')
}

// ValidODSCode reports whether s has the shape of an ODS organisation code:
// 3 to 10 upper-case letters and digits (trusts RW4, practices L81012, sites
// RW4X1).
func ValidODSCode(s string) bool { return odsPattern.MatchString(s) }

// ValidUKPRN reports whether s is a UK Provider Reference Number: eight digits,
// starting with 1.
func ValidUKPRN(s string) bool { return ukprnPattern.MatchString(s) }
