package gateway

import (
	"cmp"
	"context"
	"slices"
	"strings"
	"time"
)

// informSkew is how far ahead of the gateway's clock a confirmation's time
// may be: clocks of case systems drift a little, not by minutes.
const informSkew = time.Minute

// StudentNotice returns the notice of a delivered share of c's institution
// (T-01). A share never delivered is ECONFLICT; one whose notice is held
// back is ECONFLICT naming the coded reason.
func (in *Intake) StudentNotice(ctx context.Context, c *Client, referralID string) (*StudentNotice, error) {
	s, err := in.deliveredShare(ctx, c, referralID)
	if err != nil {
		return nil, err
	}
	if h := s.HeldBack(); h != nil {
		return nil, HeldBackError(h)
	}
	svc, _ := in.Evaluator.Registry.Lookup(s.Referral.ServiceID)
	inst, _ := in.Institutions.Lookup(s.Referral.Institution)
	return NewStudentNotice(s, svc, inst, ReturnSteps(svc))
}

// ReturnSteps are the steps the notice tells the student the university
// will hear of: those the service's data-sharing agreement lets it report
// (ReturnStepsOf), as codes for HearBack.
func ReturnSteps(svc *Service) []string {
	if svc == nil {
		return nil
	}
	var out []string
	for _, st := range ReturnStepsOf(svc) {
		out = append(out, string(st))
	}
	return out
}

// HeldBackError is the answer for a notice that may not yet be given.
func HeldBackError(h *HeldBack) *Error {
	return &Error{Code: ECONFLICT, Message: "the student notice is held back", Issues: []Issue{
		{Severity: "error", Type: "business-rule", Expression: "override.studentInformed.status",
			Message:     "the override records that the student is not yet to be told (" + h.Status + "): the notice is held back until the university records telling them ($student-informed); a new version of the case that lets them be told has a notice of its own",
			DetailsCode: h.Status, DetailsSystem: FHIRBase + "/CodeSystem/student-informed-status"},
		{Severity: "information", Type: "business-rule",
			Message:     h.Rule + ": " + cmp.Or(h.Obligation, "tell the student as soon as it is safe"),
			DetailsCode: h.Rule, DetailsSystem: FHIRBase + "/CodeSystem/sharing-rule"},
	}}
}

// Untold lists, for an IG auditor or submitter of an institution, the
// delivered shares whose student has not yet been told (T-01), oldest first,
// at most limit; a client bound to no institution (a partnership
// evaluator) sees no record. Without a store there is nothing to list.
func (in *Intake) Untold(ctx context.Context, c *Client, limit int) ([]Share, error) {
	inst, err := institutionOf(c)
	if err != nil || in == nil || in.Store == nil {
		return nil, err
	}
	return in.Store.Untold(ctx, inst, limit)
}

// deliveredShare is c's share, refused unless it reached the service.
func (in *Intake) deliveredShare(ctx context.Context, c *Client, referralID string) (Share, error) {
	s, err := in.Store.Share(ctx, c.Institution, referralID)
	if err != nil {
		return s, err
	}
	if s.DeliveredAt.IsZero() {
		return s, Errorf(ECONFLICT, "referral %s was not delivered to the service (it is %s): a student is told only of a share that reached the NHS", s.Referral.ID, s.Referral.Status)
	}
	return s, nil
}

// RecordStudentInformed records that the student of a delivered share was
// told, at when and by method (one of InformMethods), as an action in the
// audit trail and on the referral. Recording the same time and method again
// returns the share unchanged; a different one is ECONFLICT.
func (in *Intake) RecordStudentInformed(ctx context.Context, c *Client, referralID string, at time.Time, method string) (Share, error) {
	bad := func(field, msg string) error {
		return &Error{Code: EINVALID, Message: "invalid confirmation", Issues: []Issue{{Severity: "error", Type: "value", Expression: field, Message: msg}}}
	}
	now := in.now()
	switch {
	case !slices.Contains(InformMethods, method):
		return Share{}, bad("method", "method must be one of "+strings.Join(InformMethods, ", "))
	case at.After(now.Add(informSkew)):
		return Share{}, bad("at", "at is in the future: record that the student was told once they have been")
	}
	s, err := in.deliveredShare(ctx, c, referralID)
	if err != nil {
		return s, err
	}
	at = at.UTC().Truncate(time.Second)
	if at.Before(s.Referral.AcceptedAt.Truncate(time.Second)) {
		return Share{}, bad("at", "at is before the referral was accepted ("+s.Referral.AcceptedAt.UTC().Format(time.RFC3339)+"): the notice is of this share")
	}
	if s.Informed != nil {
		return s, in.alreadyInformed(s, at, method)
	}
	rec, err := NewActionRecord(ActionEntry{
		Action: ActionStudentInformed, By: c.ID, Institution: s.Referral.Institution, CaseID: s.Referral.CaseID,
		ReferralID: s.Referral.ID, Service: s.Referral.ServiceID, Reason: method, InformedAt: at.Format(time.RFC3339),
	}, now)
	if err != nil {
		return Share{}, err
	}
	out, err := in.Store.RecordInformed(ctx, InformedRequest{
		Institution: s.Referral.Institution, ReferralID: s.Referral.ID,
		Informed: StudentInformedRecord{At: at, Method: method}, Action: rec,
	})
	if ErrorCode(err) == ECONFLICT && out.Informed != nil {
		return out, in.alreadyInformed(out, at, method)
	}
	return out, err
}

// alreadyInformed is nil when s was recorded with the same time and method
// (a repeat), else ECONFLICT naming what is on record.
func (in *Intake) alreadyInformed(s Share, at time.Time, method string) error {
	if s.Informed.At.Equal(at) && s.Informed.Method == method {
		return nil
	}
	return Errorf(ECONFLICT, "the student was already recorded as told, at %s by %s; a share is confirmed once", s.Informed.At.UTC().Format(time.RFC3339), s.Informed.Method)
}
