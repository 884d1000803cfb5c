package fhirvalidator

import (
	"os"
	"path/filepath"
	"testing"
)

// referralBundles are message Bundles like the gateway's output, from the
// test fixtures.
func referralBundles(b *testing.B) [][]byte {
	b.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", "validator", "cases", "valid-*.json"))
	if err != nil || len(files) == 0 {
		b.Fatalf("no fixtures (%v)", err)
	}
	var out [][]byte
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			b.Fatal(err)
		}
		out = append(out, data)
	}
	return out
}

func benchValidate(b *testing.B, v *Validator) {
	docs := referralBundles(b)
	size := 0
	for _, d := range docs {
		size += len(d)
	}
	b.SetBytes(int64(size / len(docs)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if r := v.Validate(docs[i%len(docs)]); !r.OK() {
			b.Fatal(r.String())
		}
	}
}

// BenchmarkValidateBuiltin measures one referral Bundle against the
// built-in rules.
func BenchmarkValidateBuiltin(b *testing.B) { benchValidate(b, Builtin()) }

// BenchmarkValidateFull measures the same against R4 and UK Core.
func BenchmarkValidateFull(b *testing.B) { benchValidate(b, fullValidator(b)) }

// BenchmarkBuiltin measures parsing the built-in rule set (start-up).
func BenchmarkBuiltin(b *testing.B) {
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := parseRules(builtinRules, "builtin"); err != nil {
			b.Fatal(err)
		}
	}
}
