package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

// institution is a university that a demo token posts for.
type institution struct {
	Name  string `json:"name"`
	UKPRN string `json:"ukprn"`
	token string
}

var (
	uwe       = institution{"University of the West of England", "10007164", "demo-uwe-submitter"}
	liverpool = institution{"University of Liverpool", "10006842", "demo-liverpool-submitter"}
)

// postedBy is, for each service of the example registry that the demo
// institutions may refer to, the institution that posts its example cases.
// The examples for other services are not posted.
var postedBy = map[string]institution{
	"u-cope": liverpool, "liverpool-liaison": liverpool, "bristol-awp": uwe, "icope-camden": uwe,
}

// examplesAsOf is the day the example cases are written as of: every date in
// them is moved by the days from it to today, so that a consent stays current,
// an expired one expired, and a student's age what it was.
var examplesAsOf = time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)

var dateRE = regexp.MustCompile(`\d{4}-\d{2}-\d{2}`)

// caseIDPlaceholder stands for the case id in a Case's body; each post
// writes a new id in its place.
const caseIDPlaceholder = "LOADGEN-CASE-ID"

// Case is one example case record, ready to post under any case id.
type Case struct {
	Name        string      // its file name in testdata/cases, without .json
	Institution institution // who posts it
	Expect      string      // the outcome the policies give it: allow or deny (from its name)
	body        []byte
}

// Body is the record with caseID in place of the placeholder.
func (c *Case) Body(caseID string) []byte {
	return bytes.Replace(c.body, []byte(caseIDPlaceholder), []byte(caseID), 1)
}

// loadCases reads the example cases in dir as of now, in the order a load
// run cycles through them: each allowed case on the consent route ten
// times, the safeguarding override twice and each refused case once (about
// 85 % consent, 4 % overrides and 11 % refused by a rule), shuffled.
func loadCases(dir string, now time.Time) ([]*Case, error) {
	files, _ := filepath.Glob(filepath.Join(dir, "*.json"))
	days := int(now.Sub(examplesAsOf) / (24 * time.Hour))
	var out []*Case
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		b = dateRE.ReplaceAllFunc(b, func(d []byte) []byte {
			t, err := time.Parse(time.DateOnly, string(d))
			if err != nil {
				return d
			}
			return t.AddDate(0, 0, days).AppendFormat(nil, time.DateOnly)
		})
		var rec map[string]any
		if err := json.Unmarshal(b, &rec); err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		ref, _ := rec["referral"].(map[string]any)
		inst, ok := postedBy[fmt.Sprint(ref["service"])]
		if !ok {
			continue
		}
		rec["institution"], rec["caseId"] = inst, caseIDPlaceholder
		c := &Case{Name: strings.TrimSuffix(filepath.Base(f), ".json"), Institution: inst, Expect: "allow"}
		if c.body, err = json.Marshal(rec); err != nil {
			return nil, err
		}
		n := 10
		switch {
		case strings.HasPrefix(c.Name, "deny-"):
			c.Expect, n = "deny", 1
		case rec["override"] != nil:
			n = 2
		}
		for range n {
			out = append(out, c)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no example case in %s for the demo institutions' services", dir)
	}
	rand.New(rand.NewPCG(1, 2)).Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out, nil
}
