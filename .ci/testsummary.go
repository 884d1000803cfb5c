// Command testsummary reads `go test -json` on standard input and prints
// what a plain `go test` prints (a line per package, the output of failing
// tests), then every skipped test grouped by its reason, so that a passing
// `make test` also says what it did not run and why (a database that does
// not answer, a missing browser).
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
)

// event is what testsummary reads of one `go test -json` line.
type event struct {
	Action, Package, Test, Output string
}

// logLine is a test's log line: "    file_test.go:12: message".
var logLine = regexp.MustCompile(`^    (?:\S+\.go:\d+: )?(.*)$`)

func main() {
	out := map[string][]string{}   // "package test" -> output so far
	skips := map[string][]string{} // reason -> "package.Test"
	sc := bufio.NewScanner(os.Stdin)
	sc.Buffer(nil, 16<<20)
	for sc.Scan() {
		var e event
		if json.Unmarshal(sc.Bytes(), &e) != nil {
			fmt.Println(sc.Text())
			continue
		}
		key := e.Package + " " + e.Test
		switch {
		case e.Action == "build-output" || (e.Action == "output" && e.Test == "" && e.Output != "PASS\n"):
			fmt.Print(e.Output)
		case e.Action == "output":
			out[key] = append(out[key], e.Output)
		case e.Action == "fail" && e.Test != "":
			for _, l := range out[key] {
				if !strings.HasPrefix(l, "=== ") {
					fmt.Print(l)
				}
			}
		case e.Action == "skip" && e.Test != "":
			var why []string
			for _, l := range out[key] {
				if m := logLine.FindStringSubmatch(strings.TrimRight(l, "\n")); m != nil {
					why = append(why, strings.TrimSpace(m[1]))
				}
			}
			reason := strings.Join(why, " ")
			skips[reason] = append(skips[reason], e.Package[strings.LastIndex(e.Package, "/")+1:]+"."+e.Test)
		}
		if e.Action == "pass" || e.Action == "fail" || e.Action == "skip" {
			delete(out, key)
		}
	}
	reasons := make([]string, 0, len(skips))
	for r := range skips {
		reasons = append(reasons, r)
	}
	slices.Sort(reasons)
	for _, r := range reasons {
		fmt.Printf("skipped %d: %s\n    %s\n", len(skips[r]), r, strings.Join(skips[r], " "))
	}
}
