package fhirvalidator

import (
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// TestConcurrentValidate validates the cases from several goroutines at
// once with one Validator (run with -race): a Validator is shared by the
// gateway's request handlers.
func TestConcurrentValidate(t *testing.T) {
	cases := readCases(t)
	want := make([]string, len(cases))
	docs := make([][]byte, len(cases))
	for i, tc := range cases {
		data, err := os.ReadFile(filepath.Join("testdata", "validator", "cases", tc.File))
		if err != nil {
			t.Fatal(err)
		}
		docs[i] = data
		want[i] = Builtin().ValidateWith(data, Options{Profiles: tc.Profiles}).String()
	}
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for round := 0; round < 5; round++ {
				for i, tc := range cases {
					if got := Builtin().ValidateWith(docs[i], Options{Profiles: tc.Profiles}).String(); got != want[i] {
						t.Errorf("%s: concurrent result differs:\n%s\nwant:\n%s", tc.Name, got, want[i])
						return
					}
				}
			}
		}()
	}
	wg.Wait()
}
