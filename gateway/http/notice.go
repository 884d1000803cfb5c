package http

import (
	"bytes"
	"encoding/json"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gorilla/mux"

	"github.com/student-mh-referrals/gateway/gateway"
)

// Media types a student notice is served as.
const (
	mediaText = "text/plain"
	mediaHTML = "text/html"
)

// handleStudentNotice is GET /v1/referrals/{id}/student-notice: the notice
// for the student of a delivered share (T-01), as JSON with text and html
// members, or as text/plain or text/html when the Accept header prefers it.
func (s *Server) handleStudentNotice(w http.ResponseWriter, r *http.Request) error {
	n, err := s.Intake.StudentNotice(r.Context(), gateway.ClientFrom(r.Context()), mux.Vars(r)["id"])
	if err != nil {
		return err
	}
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Add("Vary", "Accept")
	switch preferred(r.Header.Get("Accept"), MediaJSON, mediaText, mediaHTML) {
	case mediaText:
		writeText(w, mediaText, n.Text)
	case mediaHTML:
		// A page to print or forward as it is: nothing to load, nothing to run.
		w.Header().Set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'")
		writeText(w, mediaHTML, "<!DOCTYPE html>\n<html lang=\"en-GB\"><head><meta charset=\"utf-8\"><title>What was shared about you</title></head><body>\n"+n.HTML+"</body></html>\n")
	default:
		writeJSON(w, http.StatusOK, MediaJSON, n)
	}
	return nil
}

func writeText(w http.ResponseWriter, mediaType, body string) {
	w.Header().Set("Content-Type", mediaType+"; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	_, _ = w.Write([]byte(body))
}

// preferred picks the offer that an Accept header ranks highest (the first
// offer when the header is empty or names none of them); a tie goes to the
// offer listed first.
func preferred(accept string, offers ...string) string {
	best, bestQ := offers[0], 0.0
	for _, part := range strings.Split(accept, ",") {
		mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		q := 1.0
		if v, ok := params["q"]; ok {
			if q, err = strconv.ParseFloat(v, 64); err != nil {
				continue
			}
		}
		for _, o := range offers {
			if (mt == o || mt == "*/*" || mt == strings.Split(o, "/")[0]+"/*") && q > bestQ {
				best, bestQ = o, q
				break
			}
		}
	}
	return best
}

// informedBody is the body of POST /v1/referrals/{id}/$student-informed.
type informedBody struct {
	At     *string `json:"at"`
	Method *string `json:"method"`
}

// handleStudentInformed is POST /v1/referrals/{id}/$student-informed: the
// university records that it told the student of a delivered share, when
// and how. Sent again with the same time and method it answers the same.
func (s *Server) handleStudentInformed(w http.ResponseWriter, r *http.Request) error {
	b, err := s.readBody(w, r, MediaJSON)
	if err != nil {
		return err
	}
	const form = `the body must be one JSON object {"at": "<RFC 3339 instant>", "method": "` + "email|letter|in-person|phone" + `"}`
	if t := bytes.TrimSpace(b); json.Valid(t) && t[0] != '{' {
		return issueError(gateway.EINVALID, "bad confirmation", "structure", "", form)
	}
	var body informedBody
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil || dec.More() {
		return issueError(gateway.EMALFORMED, "malformed confirmation", "structure", "", form+", with no other members")
	}
	var issues []gateway.Issue
	if body.At == nil {
		issues = append(issues, gateway.Issue{Severity: "error", Type: "required", Expression: "at", Message: "at is required: when the student was told"})
	}
	if body.Method == nil {
		issues = append(issues, gateway.Issue{Severity: "error", Type: "required", Expression: "method", Message: "method is required: " + strings.Join(gateway.InformMethods, ", ")})
	}
	if len(issues) > 0 {
		return &gateway.Error{Code: gateway.EINVALID, Message: "incomplete confirmation", Issues: issues}
	}
	at, err := time.Parse(time.RFC3339, *body.At)
	if err != nil {
		return issueError(gateway.EINVALID, "bad confirmation", "value", "at", "at must be an RFC 3339 instant with a zone, e.g. 2026-11-23T12:00:00Z")
	}
	sh, err := s.Intake.RecordStudentInformed(r.Context(), gateway.ClientFrom(r.Context()), mux.Vars(r)["id"], at, *body.Method)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, MediaJSON, shareView(sh))
	return nil
}

// shareView is the referral document of a share, with its T-01 state.
func shareView(sh gateway.Share) ReferralView {
	v := viewOf(sh.Referral)
	v.StudentInformed = sh.Informed
	switch {
	case sh.DeliveredAt.IsZero():
	case sh.HeldBack() != nil:
		v.StudentNotice = "held-back"
	default:
		v.StudentNotice = "available"
	}
	return v
}
