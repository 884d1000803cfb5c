package gateway

import (
	"cmp"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// noticeFixture is the registry and institutions the notice goldens are
// written against (testdata/notices/registry.json).
type noticeFixture struct {
	Services     []Service            `json:"services"`
	Institutions []InstitutionProfile `json:"institutions"`
}

// noticeVariant is a case made from an allowed case of the testdata where
// no case takes a route or basis the notice must cover
// (testdata/notices/variants.json).
type noticeVariant struct {
	Name        string                 `json:"name"`
	From        string                 `json:"from"`
	Why         string                 `json:"why"`
	Route       string                 `json:"route"`
	LawfulBases *LawfulBasis           `json:"lawfulBases"`
	Informed    *StudentInformedRecord `json:"informed"`
	Service     string                 `json:"service"`
}

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// shareOf is the share of an allowed case of the testdata, as the store
// would return it once delivered: the decision from the evaluate golden,
// the institution and case id from the case.
func shareOf(t *testing.T, name string) Share {
	t.Helper()
	var golden struct{ Decision Decision }
	readJSON(t, filepath.Join("..", "testdata", "evaluate", name+".json"), &golden)
	var rec CaseRecord
	readJSON(t, filepath.Join("..", "testdata", "cases", name+".json"), &rec)
	d := golden.Decision
	e := DecisionEntry{DecisionID: d.ID, Allow: d.Allow, Route: d.Route, Rules: d.Rules, Obligations: d.Obligations,
		LawfulBases: d.LawfulBases, DataCategories: d.DataCategories, Recipient: d.Recipient,
		Institution: rec.Institution.UKPRN, CaseID: rec.CaseID}
	if d.Route != "consent" {
		e.Override = &OverrideEntry{Ground: d.Route, StudentInformed: rec.Override.StudentInformed.Status}
	}
	return Share{
		Referral:    StoredReferral{ID: ReferralID(rec.Institution.UKPRN, rec.CaseID, "golden"), Institution: rec.Institution.UKPRN, CaseID: rec.CaseID, ServiceID: d.Recipient.Service, Status: StatusDelivered},
		DeliveredAt: time.Date(2026, 11, 24, 10, 15, 0, 0, time.UTC),
		Decision:    e,
	}
}

// TestStudentNotices writes the notice of every allowed case of the
// testdata, and of the variants, and compares it with its golden text
// (testdata/notices/NAME.txt; -update rewrites them).
func TestStudentNotices(t *testing.T) {
	var fx noticeFixture
	readJSON(t, filepath.Join("testdata", "notices", "registry.json"), &fx)
	reg, err := NewRegistry(fx.Services)
	if err != nil {
		t.Fatal(err)
	}
	insts, err := NewInstitutions(fx.Institutions)
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string]Share{}
	services := map[string]string{}
	allowed, _ := filepath.Glob(filepath.Join("..", "testdata", "evaluate", "allow-*.json"))
	for _, p := range allowed {
		name := strings.TrimSuffix(filepath.Base(p), ".json")
		cases[name] = shareOf(t, name)
	}
	var variants []noticeVariant
	readJSON(t, filepath.Join("testdata", "notices", "variants.json"), &variants)
	for _, v := range variants {
		sh := shareOf(t, v.From)
		if v.Route != "" {
			sh.Decision.Route, sh.Decision.Override.Ground = v.Route, v.Route
		}
		if v.LawfulBases != nil {
			sh.Decision.LawfulBases = *v.LawfulBases
		}
		sh.Informed = v.Informed
		services[v.Name] = v.Service
		cases[v.Name] = sh
	}
	if len(cases) < 15 {
		t.Fatalf("%d cases: the testdata moved", len(cases))
	}
	for name, sh := range cases {
		t.Run(name, func(t *testing.T) {
			svc, _ := reg.Lookup(cmp.Or(services[name], sh.Referral.ServiceID))
			inst, _ := insts.Lookup(sh.Referral.Institution)
			n, err := NewStudentNotice(sh, svc, inst, nil)
			if err != nil {
				t.Fatal(err)
			}
			checkNotice(t, sh, n)
			golden := filepath.Join("testdata", "notices", name+".txt")
			if updating() {
				if err := os.WriteFile(golden, []byte(n.Text), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to write it)", err)
			}
			if n.Text != string(want) {
				t.Errorf("the notice differs from %s (-update rewrites it):\n%s", golden, n.Text)
			}
		})
	}
}

// checkNotice checks what every notice owes the student, whatever its
// wording: the rights its basis gives and no others, every category in
// words, the recipient, and the same content in the HTML.
func checkNotice(t *testing.T, sh Share, n *StudentNotice) {
	t.Helper()
	art6 := sh.Decision.LawfulBases.Article6
	if got, want := strings.Contains(n.Text, "Article 7(3)"), art6 == "6(1)(a)"; got != want || slices.Contains(n.Rights, "withdraw-consent") != want {
		t.Errorf("withdrawal of consent (Art. 7(3)) offered: %v, want %v on basis %s", got, want, art6)
	}
	if got, want := strings.Contains(n.Text, "Article 21"), art6 == "6(1)(e)" || art6 == "6(1)(f)"; got != want || slices.Contains(n.Rights, "object") != want {
		t.Errorf("the right to object (Art. 21) offered: %v, want %v on basis %s", got, want, art6)
	}
	for _, c := range sh.Decision.DataCategories {
		if !strings.Contains(n.Text, categoryWords[c]) {
			t.Errorf("category %s is not in words in the notice", c)
		}
	}
	for _, want := range []string{sh.Decision.Recipient.ODSCode, "Article 15", "Whom to contact", sh.Referral.ID, "whether the service accepted or declined the referral"} {
		if !strings.Contains(n.Text, want) {
			t.Errorf("the notice lacks %q", want)
		}
	}
	for _, want := range []string{"<h1>", "<h2>Your rights</h2>", "<li>"} {
		if !strings.Contains(n.HTML, want) {
			t.Errorf("the HTML lacks %q", want)
		}
	}
	if (n.StudentInformed != nil) != (sh.Informed != nil) {
		t.Errorf("studentInformed %+v, want %+v", n.StudentInformed, sh.Informed)
	}
}

func TestHearBack(t *testing.T) {
	for _, tt := range []struct {
		steps []string
		want  string
	}{
		{nil, "only whether the service accepted or declined the referral."},
		{[]string{"nonsense"}, "only whether the service accepted or declined the referral."},
		{[]string{"accepted"}, "only whether it accepted the referral."},
		{[]string{"accepted", "rejected", "booked", "accepted"}, "only whether it accepted the referral, whether it declined the referral and when an appointment is booked."},
		{[]string{"seen", "did-not-attend", "rebooked", "discharged", "redirected"}, "when you have been seen, if you miss an appointment, if an appointment is rebooked, when you are discharged from the service and if it refers you on to another service."},
	} {
		if got := HearBack(tt.steps); !strings.Contains(got, tt.want) {
			t.Errorf("HearBack(%q) = %q, want it to say %q", tt.steps, got, tt.want)
		}
	}
}

// TestHeldBack: a notice is held back only while an override says the
// student is not to be told and no one has recorded telling them; the
// reason is the code and the policy's obligation, never the record's words.
func TestHeldBack(t *testing.T) {
	sh := shareOf(t, "allow-uwe-safeguarding-override")
	if sh.HeldBack() != nil {
		t.Fatalf("held back with status %s", sh.Decision.Override.StudentInformed)
	}
	sh.Decision.Override.StudentInformed = "not-informed"
	sh.Decision.Obligations = append(sh.Decision.Obligations, Obligation{Type: ObligationNotifyStudent, Rule: "T-01", Message: "tell the student what was shared, with whom and why, as soon as it is safe"})
	h := sh.HeldBack()
	if h == nil || h.Status != "not-informed" || h.Rule != "T-01" || !strings.Contains(h.Obligation, "as soon as it is safe") {
		t.Fatalf("held back: %+v", h)
	}
	if e := HeldBackError(h); e.Code != ECONFLICT || len(e.Issues) != 2 || e.Issues[0].DetailsCode != "not-informed" || e.Issues[1].DetailsCode != "T-01" {
		t.Errorf("the answer: %+v", e)
	}
	sh.Informed = &StudentInformedRecord{At: sh.DeliveredAt, Method: "in-person"}
	if sh.HeldBack() != nil {
		t.Error("still held back once the student was told")
	}
	if shareOf(t, "allow-liverpool-u-cope").HeldBack() != nil {
		t.Error("a consent share held back")
	}
}
