package http

import (
	"html/template"
	"net/http"
	"slices"
	"strings"

	"github.com/gorilla/mux"

	"github.com/student-mh-referrals/gateway/gateway"
)

// The policy replay page (/ui/replay): an IG lead picks a candidate policy
// set that an operator placed in policies.candidatesDir and sees what it
// would decide otherwise than the set in force, over the institution's
// retained decisions. Nothing is stored or sent; the replay itself is
// recorded in the gateway's chain.

func init() {
	uiTemplates["replay.html"] = template.Must(template.New("replay.html").Funcs(template.FuncMap{"join": strings.Join, "routeLabel": routeLabel, "londonTime": londonTime, "slice3": func(a, b, c gateway.ReplayOutcome) []gateway.ReplayOutcome { return []gateway.ReplayOutcome{a, b, c} }}).
		ParseFS(uiFiles, "ui/layout.html", "ui/replay.html"))
}

// replayRoutes adds the replay page to the web page's routes.
func (u *ui) replayRoutes(r *mux.Router) {
	r.HandleFunc("/ui/replay", uiHeaders(u.signedIn(u.handleReplayPage))).Methods(http.MethodGet)
	r.HandleFunc("/ui/replay", uiHeaders(u.signedIn(u.handleReplay))).Methods(http.MethodPost)
}

// replayForm is the replay form as posted, shown again with the report.
type replayForm struct {
	Candidate, From, To string
	DryRuns             bool
}

// replayData is what replay.html shows.
type replayData struct {
	Candidates []string
	// Unavailable says why no replay can run here (no candidate directory
	// or no store).
	Unavailable string
	Form        replayForm
	Report      *gateway.ReplayReport
	ByRule      []replayCount
	ByRoute     []replayCount
	// Rules are the rules in force by id, whose titles the report gives
	// beside the ids.
	Rules map[string]gateway.PolicyRule
}

// replayCount is one row of the counts by rule or by route.
type replayCount struct {
	Key string
	gateway.ReplayChanges
}

func countsOf(m map[string]gateway.ReplayChanges) []replayCount {
	out := make([]replayCount, 0, len(m))
	for k, c := range m {
		out = append(out, replayCount{Key: k, ReplayChanges: c})
	}
	slices.SortFunc(out, func(a, b replayCount) int { return strings.Compare(a.Key, b.Key) })
	return out
}

// replayPage lists the candidates (or says why there are none) around d.
func (u *ui) replayPage(w http.ResponseWriter, r *http.Request, sess *uiSession, status int, d replayData, errMsg string) {
	names, err := u.s.Replayer.Candidates()
	if err != nil {
		d.Unavailable = gateway.AsError(err).Message
	}
	d.Candidates = names
	u.render(w, r, sess, status, "replay.html", page{Title: "Replay a policy change", Nav: "replay", Error: errMsg, Data: d})
}

func (u *ui) handleReplayPage(w http.ResponseWriter, r *http.Request, sess *uiSession) error {
	u.replayPage(w, r, sess, http.StatusOK, replayData{}, "")
	return nil
}

// handleReplay runs the posted replay and shows its report. A candidate
// that the policies' own checks refuse is shown with the reason, as a
// problem with the form.
func (u *ui) handleReplay(w http.ResponseWriter, r *http.Request, sess *uiSession) error {
	if !u.checkCSRF(w, r, sess) {
		return nil
	}
	f := replayForm{Candidate: r.PostForm.Get("candidate"), From: r.PostForm.Get("from"), To: r.PostForm.Get("to"), DryRuns: r.PostForm.Get("dryRuns") == "1"}
	var issues []gateway.Issue
	q := gateway.ReplayQuery{IncludeDryRuns: f.DryRuns}
	q.From = parseBound("from", f.From, false, &issues)
	q.To = parseBound("to", f.To, true, &issues)
	if len(issues) > 0 {
		u.replayPage(w, r, sess, http.StatusBadRequest, replayData{Form: f}, issues[0].Message)
		return nil
	}
	rep, err := u.s.Replayer.ReplayCandidate(r.Context(), gateway.ClientFrom(r.Context()), f.Candidate, q)
	if code := gateway.ErrorCode(err); code == gateway.EINVALID || code == gateway.ENOTFOUND {
		e := gateway.AsError(err)
		msg := e.Message
		if len(e.Issues) > 0 {
			msg = e.Issues[0].Message
		} else if e.Err != nil {
			// The compiler's messages or the failing tests' names: the
			// policies' own text, never a record's.
			msg += ": " + e.Err.Error()
		}
		u.replayPage(w, r, sess, http.StatusUnprocessableEntity, replayData{Form: f}, msg)
		return nil
	} else if err != nil {
		return err
	}
	u.replayPage(w, r, sess, http.StatusOK, replayData{Form: f, Report: rep, ByRule: countsOf(rep.ByRule), ByRoute: countsOf(rep.ByRoute), Rules: u.s.rulesByID()}, "")
	return nil
}
