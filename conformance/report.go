package conformance

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// Status is the result of one case.
type Status string

// Statuses of a case.
const (
	Pass Status = "pass"
	Fail Status = "fail"
	// Skip is a case that could not be tried (no token for its
	// institution); it is reported, never counted as passed.
	Skip Status = "skip"
)

// Check is one thing verified about an answer, e.g. "status 200" or one
// Bundle assertion. Message says what was found when it failed.
type Check struct {
	Name    string `json:"name"`
	OK      bool   `json:"ok"`
	Message string `json:"message,omitempty"`
}

// Case is one scenario (Run) or one receiver check (CheckReceiver).
type Case struct {
	Name        string        `json:"name"`
	Description string        `json:"description"`
	Status      Status        `json:"status"`
	Checks      []Check       `json:"checks"`
	Reason      string        `json:"reason,omitempty"` // why it was skipped or could not run
	Duration    time.Duration `json:"duration"`
}

// Failures are the checks that failed, with what was found.
func (c Case) Failures() []string {
	var out []string
	if c.Status == Fail && c.Reason != "" {
		out = append(out, c.Reason)
	}
	for _, ch := range c.Checks {
		if !ch.OK {
			out = append(out, ch.String())
		}
	}
	return out
}

// String is the check's name, with what was found when there is a message.
func (ch Check) String() string {
	if ch.Message == "" {
		return ch.Name
	}
	return ch.Name + ": " + ch.Message
}

// finish sets the status from the checks.
func (c *Case) finish(start time.Time) {
	c.Duration = time.Since(start)
	if c.Status != Skip {
		c.Status = Pass
		if c.Reason != "" || slices.ContainsFunc(c.Checks, func(ch Check) bool { return !ch.OK }) {
			c.Status = Fail
		}
	}
}

// Report is the result of a run or a receiver check.
type Report struct {
	// ID identifies the report (the TestReport's id).
	ID string `json:"id"`
	// Kind is "run" (scenarios against a gateway) or "receiver".
	Kind string `json:"kind"`
	// Target is the gateway's base URL, "in-process", or the receiver's
	// $process-message URL.
	Target   string        `json:"target"`
	Started  time.Time     `json:"started"`
	Duration time.Duration `json:"duration"`
	Cases    []Case        `json:"cases"`
}

// Count returns how many cases have the status.
func (r *Report) Count(s Status) int {
	n := 0
	for _, c := range r.Cases {
		if c.Status == s {
			n++
		}
	}
	return n
}

// OK reports whether no case failed.
func (r *Report) OK() bool { return r.Count(Fail) == 0 }

// Title names the report in every output.
func (r *Report) Title() string {
	if r.Kind == "receiver" {
		return "gateway conformance receiver"
	}
	return "gateway conformance run"
}

// Summary is the closing line: counts and time.
func (r *Report) Summary() string {
	noun := "scenarios"
	if r.Kind == "receiver" {
		noun = "checks"
	}
	s := fmt.Sprintf("%s: %d %s against %s: %d passed, %d failed", r.Title(), len(r.Cases), noun, r.Target, r.Count(Pass), r.Count(Fail))
	if n := r.Count(Skip); n > 0 {
		s += fmt.Sprintf(", %d skipped", n)
	}
	return s + fmt.Sprintf(" (%s)", r.Duration.Round(time.Millisecond))
}

// Printer writes a line per case as it finishes: ✓ and ✗ on a terminal,
// PASS and FAIL otherwise (logs and CI, where symbols may not render), with
// each failed check indented below.
type Printer struct {
	W   io.Writer
	TTY bool
}

// Case prints one finished case.
func (p Printer) Case(c Case) {
	mark := map[Status]string{Pass: "PASS", Fail: "FAIL", Skip: "SKIP"}[c.Status]
	if p.TTY {
		mark = map[Status]string{Pass: "✓", Fail: "✗", Skip: "-"}[c.Status]
	}
	line := fmt.Sprintf("%s %s", mark, c.Name)
	if c.Status == Skip {
		line += " (" + c.Reason + ")"
	} else {
		line += fmt.Sprintf(" (%s)", c.Duration.Round(time.Millisecond))
	}
	fmt.Fprintln(p.W, line)
	for _, f := range c.Failures() {
		fmt.Fprintln(p.W, "    "+strings.ReplaceAll(f, "\n", "\n    "))
	}
}
