package conformance

import (
	"encoding/xml"
	"fmt"
	"io"
	"strings"
	"time"
)

// JUnit XML, the de facto format that CI systems (GitLab, Jenkins, GitHub
// test reporters) read: one testsuite per report, one testcase per case,
// <failure> with every failed check, <skipped> with the reason.
type junitSuites struct {
	XMLName  xml.Name     `xml:"testsuites"`
	Name     string       `xml:"name,attr"`
	Tests    int          `xml:"tests,attr"`
	Failures int          `xml:"failures,attr"`
	Skipped  int          `xml:"skipped,attr"`
	Time     string       `xml:"time,attr"`
	Suites   []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name      string          `xml:"name,attr"`
	Tests     int             `xml:"tests,attr"`
	Failures  int             `xml:"failures,attr"`
	Errors    int             `xml:"errors,attr"`
	Skipped   int             `xml:"skipped,attr"`
	Time      string          `xml:"time,attr"`
	Timestamp string          `xml:"timestamp,attr"`
	Props     []junitProperty `xml:"properties>property,omitempty"`
	Cases     []junitCase     `xml:"testcase"`
}

type junitProperty struct {
	Name  string `xml:"name,attr"`
	Value string `xml:"value,attr"`
}

type junitCase struct {
	Name      string        `xml:"name,attr"`
	Classname string        `xml:"classname,attr"`
	Time      string        `xml:"time,attr"`
	Failure   *junitMessage `xml:"failure,omitempty"`
	Skipped   *junitMessage `xml:"skipped,omitempty"`
	SystemOut string        `xml:"system-out,omitempty"`
}

type junitMessage struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr,omitempty"`
	Text    string `xml:",chardata"`
}

func seconds(d time.Duration) string { return fmt.Sprintf("%.3f", d.Seconds()) }

// WriteJUnit writes the report as JUnit XML.
func (r *Report) WriteJUnit(w io.Writer) error {
	class := "gateway.conformance." + r.Kind
	s := junitSuite{
		Name: r.Title(), Tests: len(r.Cases), Failures: r.Count(Fail), Skipped: r.Count(Skip),
		Time: seconds(r.Duration), Timestamp: r.Started.UTC().Format(time.RFC3339),
		Props: []junitProperty{{Name: "target", Value: r.Target}, {Name: "report-id", Value: r.ID}},
	}
	for _, c := range r.Cases {
		jc := junitCase{Name: c.Name, Classname: class, Time: seconds(c.Duration)}
		var out strings.Builder
		out.WriteString(c.Description + "\n")
		for _, ch := range c.Checks {
			fmt.Fprintf(&out, "%s %s\n", map[bool]string{true: "ok  ", false: "FAIL"}[ch.OK], ch.Name)
		}
		jc.SystemOut = out.String()
		switch c.Status {
		case Fail:
			f := c.Failures()
			jc.Failure = &junitMessage{Message: fmt.Sprintf("%d check(s) failed: %s", len(f), f[0]), Type: "conformance", Text: strings.Join(f, "\n")}
		case Skip:
			jc.Skipped = &junitMessage{Message: c.Reason}
		}
		s.Cases = append(s.Cases, jc)
	}
	doc := junitSuites{Name: r.Title(), Tests: s.Tests, Failures: s.Failures, Skipped: s.Skipped, Time: s.Time, Suites: []junitSuite{s}}
	b, err := xml.MarshalIndent(doc, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s%s\n", xml.Header, b)
	return err
}
