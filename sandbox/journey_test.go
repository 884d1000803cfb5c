package sandbox

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/student-mh-referrals/gateway/fhirvalidator"
	"github.com/student-mh-referrals/gateway/gateway"
	"github.com/student-mh-referrals/gateway/mappings"
)

// TestJourneyMessages builds the default journey's messages, and a walk-in
// and a redirection, and checks each against its golden file, the FHIR
// validator and the gateway's own reader, which must read the step the
// sandbox meant (a rebooking reads as a booking: the gateway tells the two
// apart by the referral's timeline).
func TestJourneyMessages(t *testing.T) {
	tests := []struct {
		name  string
		steps []StepSpec
		want  []gateway.Step
	}{
		{"default", append([]StepSpec{{Step: StepAccepted}}, DefaultJourney...), []gateway.Step{
			gateway.StepAccepted, gateway.StepBooked, gateway.StepDidNotAttend, gateway.StepBooked, gateway.StepSeen, gateway.StepDischarged}},
		{"walk-in", []StepSpec{{Step: StepAccepted}, {Step: StepSeen}}, []gateway.Step{gateway.StepAccepted, gateway.StepSeen}},
		{"redirected", []StepSpec{{Step: StepAccepted}, {Step: StepRedirected}}, []gateway.Step{gateway.StepAccepted, gateway.StepRedirected}},
	}
	v := r4Validator(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := originOf(readFixture(t, fixture(t)))
			if err != nil {
				t.Fatal(err)
			}
			ids := map[string]bool{}
			for i, spec := range tt.steps {
				at := t0.Add(time.Duration(i) * 24 * time.Hour)
				body, info, err := o.message(spec, at)
				if err != nil {
					t.Fatalf("step %d (%s): %v", i, spec.Step, err)
				}
				if ids[info.id] {
					t.Errorf("step %d: response id %s used before", i, info.id)
				}
				ids[info.id] = true
				if res := v.Validate(body); !res.OK() {
					t.Errorf("step %d (%s): not valid FHIR:\n%s", i, spec.Step, res)
				}
				got, err := mappings.ParseResponse(body)
				if err != nil || got.Step != tt.want[i] || got.At.IsZero() {
					t.Fatalf("step %d (%s): the gateway reads %+v, %v; want %s", i, spec.Step, got, err, tt.want[i])
				}
				if spec.Step == StepSeen || spec.Step == StepDidNotAttend || spec.Step == StepDischarged {
					golden := filepath.Join("testdata", "journey-"+tt.name+"-"+spec.Step+".golden.json")
					if *update {
						if err := os.WriteFile(golden, canonical(t, body), 0o644); err != nil {
							t.Fatal(err)
						}
					}
					want, err := os.ReadFile(golden)
					if err != nil {
						t.Fatal(err)
					}
					if !bytes.Equal(canonical(t, body), want) {
						t.Errorf("differs from %s (run with -update to accept)", golden)
					}
				}
			}
		})
	}
	o, _ := originOf(readFixture(t, fixture(t)))
	if _, _, err := o.message(StepSpec{Step: StepDidNotAttend}, t0); err == nil {
		t.Error("a did-not-attend without a booking was built")
	}
	if _, _, err := o.message(StepSpec{Step: "lost"}, t0); err == nil {
		t.Error("an unknown step was built")
	}
}

// TestJourneyEndpoints plays a journey through the control endpoints and
// checks what the gateway gets, in order; and refuses what it cannot play.
func TestJourneyEndpoints(t *testing.T) {
	gw := &gatewayStub{}
	gs := httptest.NewServer(gw)
	defer gs.Close()
	rc := NewReceiver(Options{CallbackURL: gs.URL + "/fhir", CallbackToken: "t", Now: func() time.Time { return t0 }})
	defer rc.Close()
	h := rc.Handler()
	do := func(method, path, body string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(method, path, strings.NewReader(body))
		rr := httptest.NewRecorder()
		h.ServeHTTP(rr, req)
		return rr
	}
	body := fixture(t)
	req := httptest.NewRequest(http.MethodPost, "/fhir/$process-message", bytes.NewReader(body))
	setGood(req.Header, "00000000-0000-4000-8000-000000000009")
	h.ServeHTTP(httptest.NewRecorder(), req)
	waitCallbacks(t, rc)
	bundleID := rc.Received()[0].BundleID

	for _, tt := range []struct {
		method, path, body string
		status             int
	}{
		{"POST", "/sandbox/referrals/no-such-bundle/steps", `{"step":"booked"}`, 404},
		{"POST", "/sandbox/referrals/" + bundleID + "/steps", `{"step":"lost"}`, 422},
		{"POST", "/sandbox/referrals/" + bundleID + "/steps", `{"step":"booked","when":"soon"}`, 400},
		{"POST", "/sandbox/journeys", `{"bundleId":"no-such-bundle"}`, 404},
		{"POST", "/sandbox/journeys", `{"bundleId":"` + bundleID + `"}`, 202},
	} {
		if rr := do(tt.method, tt.path, tt.body); rr.Code != tt.status {
			t.Errorf("%s %s %s: %d %s, want %d", tt.method, tt.path, tt.body, rr.Code, rr.Body, tt.status)
		}
	}
	for deadline := time.Now().Add(20 * time.Second); len(rc.Callbacks()) < 1+len(DefaultJourney); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("callbacks %+v", rc.Callbacks())
		}
	}
	waitCallbacks(t, rc)
	gw.mu.Lock()
	defer gw.mu.Unlock()
	var got []gateway.Step
	for _, b := range gw.bodies {
		r, err := mappings.ParseResponse(b)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, r.Step)
	}
	want := []gateway.Step{gateway.StepAccepted, gateway.StepBooked, gateway.StepDidNotAttend, gateway.StepBooked, gateway.StepSeen, gateway.StepDischarged}
	if len(got) != len(want) {
		t.Fatalf("the gateway got %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("the gateway got %v, want %v", got, want)
		}
	}
}

// r4Validator loads the R4 core definitions from ../shared/fhir/r4 (the
// builtin rules do not cover Appointment and Encounter), or skips (fails
// under CI=true).
func r4Validator(t *testing.T) *fhirvalidator.Validator {
	t.Helper()
	dir := filepath.Join("..", "..", "shared", "fhir", "r4")
	if _, err := os.Stat(dir); err != nil {
		msg := dir + " is missing: validating journey messages needs the R4 core definitions in ../shared/fhir/r4"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	v, err := fhirvalidator.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestJourneysAreBounded: the sandbox keeps the latest maxJourneys
// journeys, and forgets the oldest.
func TestJourneysAreBounded(t *testing.T) {
	rc := NewReceiver(Options{})
	defer rc.Close()
	for i := range maxJourneys + 2 {
		rc.keepJourney(fmt.Sprint("b", i), &origin{})
	}
	rc.keepJourney("b5", &origin{}) // again: not a new journey
	_, first := rc.journeys["b1"]
	_, last := rc.journeys[fmt.Sprint("b", maxJourneys+1)]
	if len(rc.journeys) != maxJourneys || len(rc.journeyOrder) != maxJourneys || first || !last {
		t.Fatalf("%d journeys kept (%d in order), oldest kept %v, newest kept %v", len(rc.journeys), len(rc.journeyOrder), first, last)
	}
}
