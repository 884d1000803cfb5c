package jsonscan

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkValid compares Valid with encoding/json's on the golden Bundles,
// which is what the stores check before they write.
func BenchmarkValid(b *testing.B) {
	files, _ := filepath.Glob("../../mappings/testdata/golden/*.json")
	if len(files) == 0 {
		b.Skip("no golden Bundles")
	}
	data, err := os.ReadFile(files[0])
	if err != nil {
		b.Fatal(err)
	}
	b.Run("jsonscan", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			if !Valid(data) {
				b.Fatal("invalid")
			}
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			if !json.Valid(data) {
				b.Fatal("invalid")
			}
		}
	})
}
