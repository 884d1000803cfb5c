package mappings

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/student-mh-referrals/gateway/gateway"
)

var update = flag.Bool("update", false, "rewrite the golden Bundles in testdata/golden")

// TestGolden maps every allow-* case with its decision fixture and compares
// the Bundle with testdata/golden/<case>.bundle.json (go test -update to
// rewrite after a reviewed change).
func TestGolden(t *testing.T) {
	for _, name := range allowCases(t) {
		t.Run(name, func(t *testing.T) {
			got := canonical(t, message(t, input(t, name)))
			path := filepath.Join("testdata", "golden", name+".bundle.json")
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test ./mappings -update to create it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("Bundle differs from %s (go test ./mappings -update after review):\n%s", path, firstDiff(want, got))
			}
		})
	}
}

func firstDiff(want, got []byte) string {
	w, g := strings.Split(string(want), "\n"), strings.Split(string(got), "\n")
	for i := 0; i < len(w) || i < len(g); i++ {
		var a, b string
		if i < len(w) {
			a = w[i]
		}
		if i < len(g) {
			b = g[i]
		}
		if a != b {
			return "line " + strconv.Itoa(i+1) + ":\n  want: " + a + "\n  got:  " + b
		}
	}
	return "(no line differs)"
}

// TestNoEmptyValues checks every golden case and a set of stripped variants
// for the empty strings, arrays, objects and nulls that R4 JSON forbids (the
// samply models write non-pointer fields even when they are empty).
func TestNoEmptyValues(t *testing.T) {
	for _, name := range allowCases(t) {
		base := input(t, name)
		variants := map[string]func(*gateway.MessageInput){
			"as decided":        func(*gateway.MessageInput) {},
			"no categories":     func(in *gateway.MessageInput) { in.Decision.DataCategories = nil },
			"revoke":            func(in *gateway.MessageInput) { in.Revoke = true },
			"no consent sought": func(in *gateway.MessageInput) { in.Record.Consent = gateway.Consent{Decision: "not-sought"} },
			"blank strings": func(in *gateway.MessageInput) {
				s := &in.Record.Student
				s.Name.Given = []string{" "}
				s.DateOfBirth = " "
				if s.Contact != nil {
					s.Contact.Phone = ""
				}
				if s.Address != nil {
					s.Address.Lines = []string{""}
					s.Address.City = ""
					s.Address.Postcode = ""
				}
				in.Record.Referral.PresentingNeeds = append(in.Record.Referral.PresentingNeeds, gateway.Need{Code: ""})
				in.Record.Referral.CurrentSupport = []string{" "}
				in.Record.Referrer.Registration = &gateway.Registration{}
			},
		}
		for vname, change := range variants {
			t.Run(name+"/"+vname, func(t *testing.T) {
				in := cloneInput(t, base)
				change(&in)
				empties, err := emptyValues(message(t, in))
				if err != nil {
					t.Fatal(err)
				}
				if len(empties) > 0 {
					t.Errorf("empty values in the Bundle:\n%s", strings.Join(empties, "\n"))
				}
			})
		}
	}
}

// TestStrippedDataAbsent proves that what may not leave does not leave: each
// case changes the input and lists strings that must not appear anywhere in
// the serialised Bundle, and strings that must (so that the test can fail).
func TestStrippedDataAbsent(t *testing.T) {
	const score, level = 987.5, "SENTINEL-LEVEL"
	withScore := func(in *gateway.MessageInput) {
		s := score
		in.Record.Referral.RiskAssessment = &gateway.RiskAssessment{AssessedOn: "2026-11-19", Score: &s, Level: level}
	}
	dropCategory := func(c string) func(*gateway.MessageInput) {
		return func(in *gateway.MessageInput) {
			in.Decision.DataCategories = slices.DeleteFunc(in.Decision.DataCategories, func(x string) bool { return x == c })
			in.Decision.Obligations = nil
		}
	}
	tests := []struct {
		name    string
		caseID  string
		change  func(*gateway.MessageInput)
		absent  []string
		present []string
	}{
		{
			name: "risk score and level are never mapped, even without an X-01 obligation", caseID: "allow-uwe-bristol-awp-trusted-contact",
			change: func(in *gateway.MessageInput) { withScore(in); in.Decision.Obligations = nil },
			absent: []string{"987.5", level, `"score"`, `"level"`}, present: []string{"Amy"},
		},
		{
			name: "unconsented contact and gp stay behind", caseID: "allow-gm-limited-categories",
			absent:  []string{"+44 7700 900222", "m.ashworth@student.manchester.example", "Owens Park", "M14 6HD", "P84009", "Fallowfield", `"address"`, `"generalPractitioner"`},
			present: []string{"Ashworth", "9990000018", "Skipping meals"},
		},
		{
			name: "trusted contact is not sent without its category", caseID: "allow-gm-limited-categories",
			absent: []string{"Jamie Ashworth", "+44 7700 900223", `"contact":[`, "Emergency contact person"},
		},
		{
			name: "trusted contact is sent when consented", caseID: "allow-uwe-bristol-awp-trusted-contact",
			present: []string{"Helen Jones", "+44 7700 900002", "Emergency contact person", "parent"},
		},
		{
			name: "drop-trusted-contact obligation removes it", caseID: "allow-uwe-bristol-awp-trusted-contact",
			change: func(in *gateway.MessageInput) {
				in.Decision.Obligations = append(in.Decision.Obligations, gateway.Obligation{Type: gateway.ObligationDropTrustedContact, Rule: "M-01"})
			},
			absent: []string{"Helen Jones", "+44 7700 900002", "Emergency contact person"}, present: []string{"Amy"},
		},
		{
			name: "keep-categories obligation narrows the decision", caseID: "allow-uwe-bristol-awp-trusted-contact",
			change: func(in *gateway.MessageInput) {
				in.Decision.Obligations = []gateway.Obligation{{Type: gateway.ObligationKeepCategories, Rule: "M-01", Categories: []string{"demographics", "needs"}}}
			},
			absent:  []string{"+44 7700 900000", "Coldharbour", "L81012", "Helen Jones", "Thoughts of suicide rise", "Samaritans", `"CarePlan"`, "university-counselling"},
			present: []string{"Amy", "6471006", "Second-year student"},
		},
		{
			name: "strip-fields obligation removes one field only", caseID: "allow-uwe-bristol-awp-trusted-contact",
			change: func(in *gateway.MessageInput) {
				in.Decision.Obligations = append(in.Decision.Obligations, gateway.Obligation{Type: gateway.ObligationStripFields, Rule: "X-01",
					Fields: []string{"student.contact.phone", "$.referral.presentingNeeds[*].text", "student.trustedContact.phone"}})
			},
			absent:  []string{"+44 7700 900000", "better off without me", "Everything feels flat", "+44 7700 900002"},
			present: []string{"amy.jones@student.uwe.example", "6471006", "366979004", "Helen Jones"},
		},
		{
			name: "without needs: no reasonCode, summary or wishes", caseID: "allow-liverpool-u-cope", change: dropCategory("needs"),
			absent:  []string{`"reasonCode"`, "248062006", "I burn myself", "Third-year student", "U-COPE course"},
			present: []string{"Self-harm relieves"},
		},
		{
			name: "without risk-formulation: no formulation", caseID: "allow-liverpool-u-cope", change: dropCategory("risk-formulation"),
			absent: []string{"Self-harm relieves", "Safety formulation"}, present: []string{"I burn myself"},
		},
		{
			name: "without safety-plan: no CarePlan", caseID: "allow-liverpool-u-cope", change: dropCategory("safety-plan"),
			absent: []string{`"CarePlan"`, "Texts Shout"}, present: []string{"I burn myself"},
		},
		{
			name: "without context: no current support or secondary care", caseID: "allow-uwe-bristol-awp-trusted-contact", change: dropCategory("context"),
			absent: []string{"university-counselling", "Current support", "secondary mental health care"}, present: []string{"Amy"},
		},
		{
			name: "context is sent when decided", caseID: "allow-uwe-bristol-awp-trusted-contact",
			present: []string{"Current support: university-counselling, gp.", "Under secondary mental health care: no."},
		},
		{
			name: "without demographics: no NHS number, name, birth date or gender", caseID: "allow-liverpool-u-cope", change: dropCategory("demographics"),
			absent: []string{"9000000009", "Okafor", "Jordan", "2004-09-30", `"gender"`, "nhs-number"}, present: []string{"I burn myself"},
		},
		{
			name: "the student id is never sent", caseID: "allow-uwe-bristol-awp-trusted-contact",
			absent: []string{"23012345"}, present: []string{"9434765919"},
		},
		{
			name: "override: the score is stripped and the share disclosed", caseID: "allow-uwe-safeguarding-override",
			absent:  []string{`"score"`, `"level"`},
			present: []string{"Riley", "Shared without the student's consent on the safeguarding route", "Jo Whitfield (safeguarding-lead)"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := cloneInput(t, input(t, tc.caseID))
			if tc.change != nil {
				tc.change(&in)
			}
			out := string(message(t, in))
			for _, s := range tc.absent {
				if strings.Contains(out, s) {
					t.Errorf("the Bundle contains %q", s)
				}
			}
			for _, s := range tc.present {
				if !strings.Contains(out, s) {
					t.Errorf("the Bundle lacks %q", s)
				}
			}
		})
	}
}

// TestDeterminism: the same input gives the same bytes; changed content gives
// a new message (Bundle and MessageHeader ids) about the same referral
// (ServiceRequest and Patient ids); time alone changes no id.
func TestDeterminism(t *testing.T) {
	base := input(t, "allow-liverpool-u-cope")
	first := message(t, base)
	ids := func(data []byte) (bundle, header, sr, patient string) {
		b := parseBundle(t, data)
		return b.ID, only(t, data, "MessageHeader")["id"].(string), only(t, data, "ServiceRequest")["id"].(string), only(t, data, "Patient")["id"].(string)
	}
	b0, h0, sr0, p0 := ids(first)

	t.Run("a given content hash changes nothing", func(t *testing.T) {
		for _, name := range allowCases(t) {
			in := input(t, name)
			want := message(t, in)
			in.ContentHash = gateway.ContentHash(in.Record)
			if got := message(t, in); !bytes.Equal(got, want) {
				t.Fatalf("%s: the Bundle differs when the caller gives the record's hash", name)
			}
		}
	})
	t.Run("same input, same bytes", func(t *testing.T) {
		for i := 0; i < 5; i++ {
			if got := message(t, cloneInput(t, base)); !bytes.Equal(got, first) {
				t.Fatalf("run %d differs", i)
			}
		}
	})
	tests := []struct {
		name          string
		change        func(*gateway.MessageInput)
		newMessage    bool
		wantReason    string
		wantSRStatus  string
		wantTimestamp string
	}{
		{name: "changed summary", change: func(in *gateway.MessageInput) { in.Record.Referral.Summary += " Seen again on 2026-11-22." }, newMessage: true, wantReason: "new", wantSRStatus: "active"},
		{name: "changed categories", change: func(in *gateway.MessageInput) {
			in.Decision.DataCategories = in.Decision.DataCategories[:3]
			in.Decision.Obligations = nil
		}, newMessage: true, wantReason: "new", wantSRStatus: "active"},
		{name: "update", change: func(in *gateway.MessageInput) { in.Update = true }, newMessage: true, wantReason: "update", wantSRStatus: "active"},
		{name: "revoke", change: func(in *gateway.MessageInput) { in.Revoke = true }, newMessage: true, wantReason: "update", wantSRStatus: "revoked"},
		{name: "later time only", change: func(in *gateway.MessageInput) { in.At = in.At.Add(36e11) }, newMessage: false, wantReason: "new", wantSRStatus: "active", wantTimestamp: "2026-11-23T13:00:00Z"},
		{name: "new decision id only", change: func(in *gateway.MessageInput) { in.Decision.ID = "00000000-0000-5000-8000-000000000001" }, newMessage: false, wantReason: "new", wantSRStatus: "active"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := cloneInput(t, base)
			tc.change(&in)
			out := message(t, in)
			b, h, sr, p := ids(out)
			if tc.newMessage == (b == b0) || tc.newMessage == (h == h0) {
				t.Errorf("bundle id %s / header id %s vs %s / %s: new message = %v wanted", b, h, b0, h0, tc.newMessage)
			}
			if sr != sr0 || p != p0 {
				t.Errorf("ServiceRequest or Patient id changed: %s %s vs %s %s", sr, p, sr0, p0)
			}
			if got := reasonCode(t, out); got != tc.wantReason {
				t.Errorf("reason %q, want %q", got, tc.wantReason)
			}
			if got := only(t, out, "ServiceRequest")["status"]; got != tc.wantSRStatus {
				t.Errorf("status %v, want %s", got, tc.wantSRStatus)
			}
			if tc.wantTimestamp != "" && parseBundle(t, out).Timestamp != tc.wantTimestamp {
				t.Errorf("timestamp %s, want %s", parseBundle(t, out).Timestamp, tc.wantTimestamp)
			}
		})
	}
	t.Run("another case, another referral", func(t *testing.T) {
		_, _, sr, p := ids(message(t, input(t, "allow-uwe-bristol-awp-trusted-contact")))
		if sr == sr0 || p == p0 {
			t.Error("two cases share an id")
		}
	})
	t.Run("ids are the exported derivations", func(t *testing.T) {
		rec := base.Record
		if sr0 != ServiceRequestID(rec.Institution.UKPRN, rec.CaseID) || p0 != PatientID(rec.Institution.UKPRN, rec.CaseID) {
			t.Error("ServiceRequestID or PatientID disagrees with the message")
		}
	})
}

func reasonCode(t testing.TB, data []byte) string {
	t.Helper()
	mh := only(t, data, "MessageHeader")
	return mh["reason"].(map[string]any)["coding"].([]any)[0].(map[string]any)["code"].(string)
}

// TestMessageShape checks the BaRS shape that the golden files would only
// show: MessageHeader first, every fullUrl a urn:uuid of its resource id,
// every reference resolving inside the Bundle, the focus the ServiceRequest,
// and the Bundle identifier and timestamp.
func TestMessageShape(t *testing.T) {
	for _, name := range allowCases(t) {
		t.Run(name, func(t *testing.T) {
			data := message(t, input(t, name))
			b := parseBundle(t, data)
			if b.Type != "message" || b.Timestamp != "2026-11-23T12:00:00Z" ||
				b.Identifier.System != "urn:ietf:rfc:3986" || b.Identifier.Value != "urn:uuid:"+b.ID {
				t.Errorf("bundle header: type %s timestamp %s identifier %+v id %s", b.Type, b.Timestamp, b.Identifier, b.ID)
			}
			full := map[string]string{}
			for i, e := range b.Entry {
				var r struct {
					ResourceType string `json:"resourceType"`
					ID           string `json:"id"`
					Meta         struct {
						LastUpdated string `json:"lastUpdated"`
					} `json:"meta"`
				}
				roundTrip(t, e.Resource, &r)
				if i == 0 && r.ResourceType != "MessageHeader" {
					t.Errorf("first entry is %s", r.ResourceType)
				}
				if e.FullURL != "urn:uuid:"+r.ID {
					t.Errorf("entry %d: fullUrl %s, id %s", i, e.FullURL, r.ID)
				}
				if _, dup := full[e.FullURL]; dup {
					t.Errorf("entry %d: fullUrl %s twice", i, e.FullURL)
				}
				full[e.FullURL] = r.ResourceType
				if r.Meta.LastUpdated != "2026-11-23T12:00:00Z" {
					t.Errorf("entry %d (%s): meta.lastUpdated %q, want the message time", i, r.ResourceType, r.Meta.LastUpdated)
				}
			}
			var bm struct {
				Meta struct{ VersionId, LastUpdated string } `json:"meta"`
			}
			if err := json.Unmarshal(data, &bm); err != nil {
				t.Fatal(err)
			}
			if bm.Meta.VersionId != gateway.BaRSVersion || bm.Meta.LastUpdated != "2026-11-23T12:00:00Z" {
				t.Errorf("Bundle.meta %+v: want versionId %s and lastUpdated", bm.Meta, gateway.BaRSVersion)
			}
			sr := only(t, data, "ServiceRequest")
			if cats := sr["category"].([]any); sr["intent"] != "plan" || len(cats) != 1 ||
				cats[0].(map[string]any)["coding"].([]any)[0].(map[string]any)["code"] != "referral" {
				t.Errorf("ServiceRequest intent %v category %v: want plan and the one BaRS referral category", sr["intent"], sr["category"])
			}
			for _, ref := range references(t, data) {
				if _, ok := full[ref]; !ok {
					t.Errorf("reference %s does not resolve in the Bundle", ref)
				}
			}
			mh := only(t, data, "MessageHeader")
			focus := mh["focus"].([]any)[0].(map[string]any)["reference"].(string)
			if full[focus] != "ServiceRequest" {
				t.Errorf("focus %s is a %s", focus, full[focus])
			}
			if got := mh["eventCoding"].(map[string]any)["code"]; got != "servicerequest-request" {
				t.Errorf("event %v", got)
			}
			dest := mh["destination"].([]any)[0].(map[string]any)
			if !strings.HasPrefix(dest["endpoint"].(string), "https://fhir.nhs.uk/Id/dos-service-id|") {
				t.Errorf("destination endpoint %v", dest["endpoint"])
			}
			src := mh["source"].(map[string]any)
			contact, _ := src["contact"].(map[string]any)
			if src["name"] != testSource.Name || src["software"] != testSource.Software || src["version"] != testSource.Version ||
				src["endpoint"] != testSource.Endpoint || contact["system"] != "email" || contact["value"] != testSource.Contact.Value {
				t.Errorf("source %v: want name, software, version, contact and endpoint as configured", src)
			}
		})
	}
}

func references(t testing.TB, data []byte) []string {
	t.Helper()
	var out []string
	var walk func(v any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			for k, e := range x {
				if s, ok := e.(string); ok && k == "reference" {
					out = append(out, s)
				}
				walk(e)
			}
		case []any:
			for _, e := range x {
				walk(e)
			}
		}
	}
	for _, e := range parseBundle(t, data).Entry {
		var r any
		roundTrip(t, e.Resource, &r)
		walk(r)
	}
	return out
}

// TestConsent: the Consent shows what the student decided, on either route,
// and is absent when consent was not sought.
func TestConsent(t *testing.T) {
	tests := []struct {
		name      string
		caseID    string
		consent   *gateway.Consent
		status    string
		provision string
		none      bool
	}{
		{name: "given", caseID: "allow-liverpool-u-cope", status: "active", provision: "permit"},
		{name: "refused on the override route", caseID: "allow-uwe-safeguarding-override", status: "rejected", provision: "deny"},
		{name: "withdrawn on the override route", caseID: "allow-uwe-safeguarding-override",
			consent: &gateway.Consent{Decision: "withdrawn", RecordedAt: "2026-11-22T15:10:00Z", Method: "verbal", RecordedBy: "Sam Patel"},
			status:  "inactive", provision: "deny"},
		{name: "not sought", caseID: "allow-uwe-safeguarding-override", consent: &gateway.Consent{Decision: "not-sought"}, none: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := cloneInput(t, input(t, tc.caseID))
			if tc.consent != nil {
				in.Record.Consent = *tc.consent
			}
			data := message(t, in)
			cs := resources(t, data, "Consent")
			sr := only(t, data, "ServiceRequest")
			if tc.none {
				if len(cs) != 0 || strings.Contains(string(data), `"Consent"`) {
					t.Fatal("a Consent was sent although consent was not sought")
				}
				return
			}
			if len(cs) != 1 {
				t.Fatalf("%d Consents", len(cs))
			}
			c := cs[0]
			prov := c["provision"].(map[string]any)
			if c["status"] != tc.status || prov["type"] != tc.provision {
				t.Errorf("status %v provision %v, want %s %s", c["status"], prov["type"], tc.status, tc.provision)
			}
			actor := prov["actor"].([]any)[0].(map[string]any)
			if code := actor["role"].(map[string]any)["coding"].([]any)[0].(map[string]any)["code"]; code != "IRCP" {
				t.Errorf("actor role %v", code)
			}
			receiver := only(t, data, "MessageHeader")["destination"].([]any)[0].(map[string]any)["receiver"].(map[string]any)["reference"]
			if actor["reference"].(map[string]any)["reference"] != receiver {
				t.Error("the consent's recipient is not the receiving organisation")
			}
			var supports []string
			for _, s := range sr["supportingInfo"].([]any) {
				supports = append(supports, s.(map[string]any)["reference"].(string))
			}
			if !slices.Contains(supports, "urn:uuid:"+c["id"].(string)) {
				t.Error("the ServiceRequest does not point at the Consent")
			}
		})
	}
}

// TestDecisionExtension: both routes carry the decision extension; the
// override route also names bases, decider and approver, and says so in a note.
func TestDecisionExtension(t *testing.T) {
	tests := []struct {
		caseID string
		want   map[string]string
		note   []string
	}{
		{caseID: "allow-liverpool-u-cope", want: map[string]string{"route": "consent", "decisionId": "", "policyRevision": "fixture-revision", "article6": "6(1)(a)", "article9": "9(2)(a)"}},
		{caseID: "allow-uwe-safeguarding-override", want: map[string]string{
			"route": "safeguarding", "decisionId": "", "policyRevision": "fixture-revision", "article6": "6(1)(e)", "article9": "9(2)(g)",
			"dpaSchedule1": "para-18", "decidedBy": "Sam Patel (mental-health-adviser)", "approvedBy": "Jo Whitfield (safeguarding-lead)",
		}, note: []string{"safeguarding route", "refused", "UK GDPR Art. 6(1)(e)", "DPA 2018 Sch. 1 para-18", "Approved by Jo Whitfield", "Sharing decision "}},
	}
	for _, tc := range tests {
		t.Run(tc.caseID, func(t *testing.T) {
			in := input(t, tc.caseID)
			tc.want["decisionId"] = in.Decision.ID
			data := message(t, in)
			sr := only(t, data, "ServiceRequest")
			var ext map[string]any
			for _, e := range sr["extension"].([]any) {
				if e.(map[string]any)["url"] == ExtensionSharingDecision {
					ext = e.(map[string]any)
				}
			}
			if ext == nil {
				t.Fatal("no sharing-decision extension")
			}
			got := map[string]string{}
			for _, s := range ext["extension"].([]any) {
				m := s.(map[string]any)
				for k, v := range m {
					if strings.HasPrefix(k, "value") {
						got[m["url"].(string)] = v.(string)
					}
				}
			}
			for k, v := range tc.want {
				if got[k] != v {
					t.Errorf("%s = %q, want %q", k, got[k], v)
				}
			}
			if len(got) != len(tc.want) {
				t.Errorf("sub-extensions %v, want exactly %v", got, tc.want)
			}
			notes := ""
			if n, ok := sr["note"].([]any); ok {
				for _, a := range n {
					notes += a.(map[string]any)["text"].(string) + "\n"
				}
			}
			for _, s := range tc.note {
				if !strings.Contains(notes, s) {
					t.Errorf("notes lack %q:\n%s", s, notes)
				}
			}
			if tc.note == nil && strings.Contains(notes, "without the student's consent") {
				t.Error("a consent-route message says it was shared without consent")
			}
		})
	}
}

// TestRefusals: the mapping refuses, with an internal error and no Bundle,
// whatever it should never have been given.
func TestRefusals(t *testing.T) {
	tests := []struct {
		name   string
		change func(*gateway.MessageInput)
	}{
		{"denied decision", func(in *gateway.MessageInput) { in.Decision.Allow = false }},
		{"emergency", func(in *gateway.MessageInput) { in.Record.Referral.Priority = "emergency" }},
		{"no source endpoint", func(in *gateway.MessageInput) { in.Source.Endpoint = " " }},
		{"no target", func(in *gateway.MessageInput) { s := *in.Service; s.Target.Value = ""; in.Service = &s }},
		{"no time", func(in *gateway.MessageInput) { in.At = time.Time{} }},
		{"no decision", func(in *gateway.MessageInput) { in.Decision = nil }},
		{"decision without id", func(in *gateway.MessageInput) { in.Decision.ID = "" }},
		{"unparseable strip path", func(in *gateway.MessageInput) {
			in.Decision.Obligations = append(in.Decision.Obligations, gateway.Obligation{Type: gateway.ObligationStripFields, Fields: []string{"referral..summary"}})
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := cloneInput(t, input(t, "allow-liverpool-u-cope"))
			tc.change(&in)
			out, err := New().Message(context.Background(), in)
			var ge *gateway.Error
			if err == nil || out != nil || !errors.As(err, &ge) || ge.Code != gateway.EINTERNAL {
				t.Fatalf("got %d bytes, error %v; want an internal error and nothing", len(out), err)
			}
		})
	}
}

func TestStripPaths(t *testing.T) {
	tests := []struct {
		path string
		ok   bool
	}{
		{"referral.riskAssessment.score", true},
		{"$.student.contact.phone", true},
		{"referral.presentingNeeds[0].text", true},
		{"referral.presentingNeeds[*]", true},
		{"", false},
		{"referral..summary", false},
		{"referral.presentingNeeds[x]", false},
		{"student/contact", false},
	}
	for _, tc := range tests {
		t.Run(tc.path, func(t *testing.T) {
			_, err := parsePath(tc.path)
			if (err == nil) != tc.ok {
				t.Errorf("parsePath(%q) error %v, want ok=%v", tc.path, err, tc.ok)
			}
		})
	}
	t.Run("an element and everything under it", func(t *testing.T) {
		rec := loadCase(t, "allow-uwe-bristol-awp-trusted-contact")
		got, err := stripFields(rec, []gateway.Obligation{{Type: gateway.ObligationStripFields,
			Fields: []string{"referral.presentingNeeds[0]", "student.trustedContact", "referral.safetyPlan.summary", "not.there"}}})
		if err != nil {
			t.Fatal(err)
		}
		if len(got.Referral.PresentingNeeds) != 1 || got.Referral.PresentingNeeds[0].Code != "low-mood" ||
			got.Student.TrustedContact != nil || got.Referral.SafetyPlan.Summary != "" || got.Referral.SafetyPlan.Status != "in-place" {
			t.Errorf("stripped record: needs %+v trusted %+v plan %+v", got.Referral.PresentingNeeds, got.Student.TrustedContact, got.Referral.SafetyPlan)
		}
		if rec.Student.TrustedContact == nil || len(rec.Referral.PresentingNeeds) != 2 {
			t.Error("stripping changed the input record")
		}
	})
}

// BenchmarkMessage maps the largest example case (every category, trusted
// contact, safety plan).
func BenchmarkMessage(b *testing.B) {
	in := input(b, "allow-uwe-bristol-awp-trusted-contact")
	m := New()
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := m.Message(ctx, in); err != nil {
			b.Fatal(err)
		}
	}
}

// TestDefinition: the MessageDefinition resolved at intake is
// MessageHeader.definition; without one there is no definition member.
func TestDefinition(t *testing.T) {
	in := cloneInput(t, input(t, "allow-liverpool-u-cope"))
	if _, ok := only(t, message(t, in), "MessageHeader")["definition"]; ok {
		t.Error("a definition without one resolved")
	}
	in.Definition = "https://receiver.example.org/MessageDefinition/referral"
	if got := only(t, message(t, in), "MessageHeader")["definition"]; got != in.Definition {
		t.Errorf("definition %v, want %s", got, in.Definition)
	}
}
