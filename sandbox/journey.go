package sandbox

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/samply/golang-fhir-models/fhir-models/fhir"
	"github.com/student-mh-referrals/gateway/gateway"
)

// Steps the sandbox can report, as the gateway names them (gateway.Step).
const (
	StepAccepted     = string(gateway.StepAccepted)
	StepRejected     = string(gateway.StepRejected)
	StepBooked       = string(gateway.StepBooked)
	StepRebooked     = string(gateway.StepRebooked)
	StepDidNotAttend = string(gateway.StepDidNotAttend)
	StepSeen         = string(gateway.StepSeen)
	StepRedirected   = string(gateway.StepRedirected)
	StepDischarged   = string(gateway.StepDischarged)
)

// StepSpec is one step the sandbox is told to report about a referral it
// accepted (POST /sandbox/referrals/{bundleId}/steps, or one of a
// journey's).
type StepSpec struct {
	Step string `json:"step"`
	// At is when the step happened; zero means when it is posted.
	At time.Time `json:"at,omitzero"`
	// AppointmentStart is the start of a booked or rebooked appointment;
	// zero means a day after At.
	AppointmentStart time.Time `json:"appointmentStart,omitzero"`
	// Reason is a rejection's note (the gateway keeps it with the message
	// and never shows it to the university).
	Reason string `json:"reason,omitempty"`
}

// DefaultJourney is the journey POST /sandbox/journeys plays when given no
// steps, after the acceptance the sandbox posts by itself: booked, missed,
// rebooked, seen, discharged.
var DefaultJourney = []StepSpec{{Step: StepBooked}, {Step: StepDidNotAttend}, {Step: StepRebooked}, {Step: StepSeen}, {Step: StepDischarged}}

func (s StepSpec) check() error {
	if !gateway.Step(s.Step).Valid() {
		names := make([]string, len(gateway.Steps))
		for i, st := range gateway.Steps {
			names[i] = string(st)
		}
		return fmt.Errorf("step %q: use one of %s", s.Step, strings.Join(names, ", "))
	}
	return nil
}

// instant is how the sandbox writes a FHIR instant: to the millisecond, so
// that a step is never placed before the referral was taken in.
const instant = "2006-01-02T15:04:05.000Z07:00"

// Discharge dispositions (FHIR R4's discharge-disposition code system): home
// for a discharge, other-hcf (another healthcare facility) for a
// redirection.
const dischargeSystem = "http://terminology.hl7.org/CodeSystem/discharge-disposition"

type outAppointment struct {
	head
	Status          string               `json:"status"`
	AppointmentType outConcept           `json:"appointmentType"`
	Start           string               `json:"start,omitempty"`
	End             string               `json:"end,omitempty"`
	Created         string               `json:"created,omitempty"`
	BasedOn         []reference          `json:"basedOn"`
	Participant     []outApptParticipant `json:"participant"`
}

type outApptParticipant struct {
	Actor  reference `json:"actor"`
	Status string    `json:"status"`
}

type outConcept struct {
	Coding []outCoding `json:"coding"`
}

type outCoding struct {
	System string `json:"system"`
	Code   string `json:"code"`
}

type outEncounter struct {
	head
	Status          string              `json:"status"`
	Class           outCoding           `json:"class"`
	Subject         reference           `json:"subject"`
	BasedOn         []reference         `json:"basedOn"`
	Period          map[string]string   `json:"period,omitempty"`
	Hospitalization *outHospitalization `json:"hospitalization,omitempty"`
}

type outHospitalization struct {
	DischargeDisposition outConcept `json:"dischargeDisposition"`
}

// stepResources sets the ServiceRequest's status for spec and returns the
// Appointment or Encounter that tells the step, as the gateway reads them.
func (o *origin) stepResources(spec StepSpec, sr *serviceRequest, at time.Time, bundleID string) ([]outEntry, error) {
	stamp := func(t time.Time) string { return t.UTC().Format(instant) }
	appt := func(status string, start time.Time) outEntry {
		a := outAppointment{
			head: newHead("Appointment", o.apptID), Status: status,
			AppointmentType: outConcept{[]outCoding{{"http://terminology.hl7.org/CodeSystem/v2-0276", "ROUTINE"}}},
			Start:           stamp(start), End: stamp(start.Add(50 * time.Minute)),
			BasedOn:     []reference{{o.srURL}},
			Participant: []outApptParticipant{{Actor: reference{o.patURL}, Status: "accepted"}},
		}
		if status == "booked" {
			a.Created = stamp(at)
		}
		return outEntry{"urn:uuid:" + o.apptID, a}
	}
	enc := func(period map[string]string, disposition string) outEntry {
		e := outEncounter{
			head: newHead("Encounter", gateway.DeriveID("sandbox-encounter", bundleID)), Status: "finished",
			Class:   outCoding{"http://terminology.hl7.org/CodeSystem/v3-ActCode", "AMB"},
			Subject: reference{o.patURL}, BasedOn: []reference{{o.srURL}}, Period: period,
		}
		if disposition != "" {
			e.Hospitalization = &outHospitalization{outConcept{[]outCoding{{dischargeSystem, disposition}}}}
		}
		return outEntry{"urn:uuid:" + e.ID, e}
	}
	switch spec.Step {
	case StepRejected:
		sr.Status, sr.Note = "revoked", []fhir.Annotation{{Text: "Rejected by the receiving service"}}
		if spec.Reason != "" {
			sr.Note[0].Text += ": " + spec.Reason
		}
	case StepBooked, StepRebooked:
		start := spec.AppointmentStart
		if start.IsZero() {
			start = at.Add(24 * time.Hour)
		}
		o.apptID, o.apptStart = gateway.DeriveID("sandbox-appointment", bundleID), start.UTC()
		return []outEntry{appt("booked", o.apptStart)}, nil
	case StepDidNotAttend:
		if o.apptID == "" {
			return nil, fmt.Errorf("did-not-attend needs a booking first")
		}
		return []outEntry{appt("noshow", o.apptStart)}, nil
	case StepSeen:
		seen := enc(map[string]string{"start": stamp(at), "end": stamp(at.Add(50 * time.Minute))}, "")
		if o.apptID == "" { // a walk-in
			return []outEntry{seen}, nil
		}
		return []outEntry{appt("fulfilled", o.apptStart), seen}, nil
	case StepDischarged, StepRedirected:
		sr.Status = "completed"
		disposition := "home"
		if spec.Step == StepRedirected {
			disposition = "other-hcf"
		}
		return []outEntry{enc(map[string]string{"end": stamp(at)}, disposition)}, nil
	}
	return nil, nil
}

// journeyRoutes adds the endpoints that play a referral's journey on
// command.
func (rc *Receiver) journeyRoutes(mux *http.ServeMux) {
	mux.HandleFunc("POST /sandbox/referrals/{bundleId}/steps", rc.postStep)
	mux.HandleFunc("POST /sandbox/journeys", rc.postJourney)
}

// maxJourneys is how many referrals' journeys the sandbox keeps for steps
// on command: the latest, so that a backlog of thousands does not grow the
// process that serves it.
const maxJourneys = 1024

// keepJourney keeps what later steps about the referral of bundleID need,
// forgetting the oldest journey beyond maxJourneys.
func (rc *Receiver) keepJourney(bundleID string, o *origin) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if _, ok := rc.journeys[bundleID]; !ok {
		rc.journeyOrder = append(rc.journeyOrder, bundleID)
	}
	rc.journeys[bundleID] = o
	if len(rc.journeyOrder) > maxJourneys {
		delete(rc.journeys, rc.journeyOrder[0])
		rc.journeyOrder = rc.journeyOrder[1:]
	}
}

// journeyOf is the journey of the referral whose Bundle id is bundleID.
func (rc *Receiver) journeyOf(w http.ResponseWriter, bundleID string) *origin {
	rc.mu.Lock()
	o := rc.journeys[bundleID]
	rc.mu.Unlock()
	if o == nil {
		controlError(w, http.StatusNotFound, "the sandbox accepted no referral with Bundle id "+bundleID+" (see GET /sandbox/messages)")
	}
	return o
}

// postStep is POST /sandbox/referrals/{bundleId}/steps: report one step
// now. It answers 202 with the callback, which GET /sandbox/callbacks
// follows.
func (rc *Receiver) postStep(w http.ResponseWriter, r *http.Request) {
	var spec StepSpec
	if !decodeControl(w, r, &spec) {
		return
	}
	if err := spec.check(); err != nil {
		controlError(w, http.StatusUnprocessableEntity, err.Error())
		return
	}
	o := rc.journeyOf(w, r.PathValue("bundleId"))
	if o == nil {
		return
	}
	cbs := rc.play(o, []StepSpec{spec}, 0)
	writeJSON(w, http.StatusAccepted, "application/json", map[string]any{"callbacks": cbs})
}

// postJourney is POST /sandbox/journeys {"bundleId", "steps"}: report the
// steps one after another, the callback delay apart (DefaultJourney when
// none are given).
func (rc *Receiver) postJourney(w http.ResponseWriter, r *http.Request) {
	var j struct {
		BundleID string     `json:"bundleId"`
		Steps    []StepSpec `json:"steps"`
	}
	if !decodeControl(w, r, &j) {
		return
	}
	if len(j.Steps) == 0 {
		j.Steps = DefaultJourney
	}
	for _, s := range j.Steps {
		if err := s.check(); err != nil {
			controlError(w, http.StatusUnprocessableEntity, err.Error())
			return
		}
	}
	o := rc.journeyOf(w, j.BundleID)
	if o == nil {
		return
	}
	writeJSON(w, http.StatusAccepted, "application/json", map[string]any{"bundleId": j.BundleID, "steps": rc.play(o, j.Steps, rc.opt.CallbackDelay)})
}

// play posts the steps in order in the background, each gap after the one
// before has been posted (or given up), and returns them as they are
// listed among the callbacks so far.
func (rc *Receiver) play(o *origin, steps []StepSpec, gap time.Duration) []StepSpec {
	steps = slices.Clone(steps)
	rc.cbs.Go(func() {
		for i, s := range steps {
			wait := gap
			if i == 0 {
				wait = 0
			}
			if !sleep(rc.ctx, wait) {
				return
			}
			if (s.Step == StepBooked || s.Step == StepRebooked) && s.AppointmentStart.IsZero() && i+1 < len(steps) {
				// A journey runs in seconds: the appointment is due
				// when the next step is reported, so that it can be
				// missed or attended.
				s.AppointmentStart = rc.opt.Now().Add(gap)
			}
			rc.deliver(rc.prepare(o, nil, s), 0)
		}
	})
	return steps
}

// decodeControl reads a control endpoint's JSON body into v.
func decodeControl(w http.ResponseWriter, r *http.Request, v any) bool {
	d := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		controlError(w, http.StatusBadRequest, "the body must be JSON as documented: "+err.Error())
		return false
	}
	return true
}

// controlError answers a control endpoint's error.
func controlError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, "application/json", map[string]string{"error": msg})
}
