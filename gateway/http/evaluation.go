package http

import (
	"bytes"
	"fmt"
	"html"
	"html/template"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/gorilla/mux"

	"github.com/student-mh-referrals/gateway/gateway"
)

// The evaluation figures (issue #16): GET /v1/evaluation as JSON, or CSV
// with Accept: text/csv, and the Evaluation page of the IG web page, whose
// charts are SVG drawn here on the server (the page's CSP allows no script)
// beside tables of the same numbers. Everything shown is the published,
// suppressed aggregate: no record, no pseudonym.

// evaluationRoutes adds GET /v1/evaluation for IG auditors and partnership
// evaluators; off without the figures.
func (s *Server) evaluationRoutes(r *mux.Router) {
	if s.Evaluations == nil {
		return
	}
	r.HandleFunc("/v1/evaluation", s.require(api(s.handleEvaluation), gateway.RoleAuditor, gateway.RolePartnershipEvaluator)).Methods(http.MethodGet)
}

// evaluationQuery reads the query parameters of the figures.
func (s *Server) evaluationQuery(r *http.Request) (gateway.EvaluationQuery, error) {
	v := r.URL.Query()
	return gateway.ParseEvaluationQuery(v.Get("from"), v.Get("to"), v.Get("groupBy"), v.Get("service"), s.now())
}

// report computes the figures for the request's client.
func (s *Server) report(r *http.Request) (*gateway.EvaluationReport, error) {
	q, err := s.evaluationQuery(r)
	if err != nil {
		return nil, err
	}
	return s.Evaluations.Report(r.Context(), gateway.ClientFrom(r.Context()), q)
}

// wantsCSV says whether the client asked for CSV before JSON.
func wantsCSV(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept"), ",") {
		mt, _, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		switch mt {
		case MediaCSV:
			return true
		case MediaJSON, "*/*", "application/*":
			return false
		}
	}
	return false
}

func (s *Server) handleEvaluation(w http.ResponseWriter, r *http.Request) error {
	w.Header().Set("Vary", "Accept")
	rep, err := s.report(r)
	if err != nil {
		return err
	}
	if wantsCSV(r) {
		return writeCSV(w, rep, false)
	}
	writeJSON(w, http.StatusOK, MediaJSON, rep)
	return nil
}

// writeCSV writes the figures as CSV, as a download when attachment.
func writeCSV(w http.ResponseWriter, rep *gateway.EvaluationReport, attachment bool) error {
	var buf bytes.Buffer
	if err := rep.WriteCSV(&buf); err != nil {
		return gateway.Internal(err)
	}
	w.Header().Set("Content-Type", MediaCSV+"; charset=utf-8; header=present")
	if attachment {
		w.Header().Set("Content-Disposition", `attachment; filename="evaluation-`+rep.From.Format("2006-01-02")+`-`+rep.To.Format("2006-01-02")+`.csv"`)
	}
	_, _ = w.Write(buf.Bytes())
	return nil
}

// evaluationData is the Evaluation page.
type evaluationData struct {
	Report                     *gateway.EvaluationReport
	From, To, GroupBy, Service string
	Groupings, Services        []option
	CSVURL                     string
	Periods                    []gateway.FigureGroup // the whole scope, a period a row
	Total                      gateway.Figures       // the whole scope over from–to
	Rows                       []gateway.FigureGroup // the total by institution and by service
	OutcomeChart, RouteChart   template.HTML
	WaitChart, RuleChart       template.HTML
	Outcomes                   []string
	AppointmentsUnavailable    bool
	ScopeHeader                string
}

func (u *ui) handleEvaluation(w http.ResponseWriter, r *http.Request, sess *uiSession) error {
	rep, err := u.s.report(r)
	if err != nil {
		return err
	}
	if r.URL.Query().Get("format") == "csv" {
		return writeCSV(w, rep, true)
	}
	v := r.URL.Query()
	d := evaluationData{
		Report: rep, GroupBy: rep.GroupBy, Service: v.Get("service"),
		From: rep.From.Format("2006-01-02"), To: rep.To.Format("2006-01-02"),
		AppointmentsUnavailable: slices.Contains(rep.Unavailable, gateway.FigureTimeToFirstAppointment),
	}
	for _, g := range gateway.PeriodGroupings {
		d.Groupings = append(d.Groupings, option{g, strings.ReplaceAll(g, "-", " ")})
	}
	scope, _ := u.s.Evaluations.Scope(&sess.client) // report succeeded, so the scope did
	for _, svc := range scope.Services {
		d.Services = append(d.Services, option{svc, svc})
	}
	csv := url.Values{"from": {d.From}, "to": {d.To}, "groupBy": {d.GroupBy}, "format": {"csv"}}
	if d.Service != "" {
		csv.Set("service", d.Service)
	}
	d.CSVURL = "/ui/evaluation?" + csv.Encode()
	for _, g := range rep.Groups {
		switch {
		case g.Institution != "" || g.Service != "":
			if g.Period == gateway.TotalPeriod {
				d.Rows = append(d.Rows, g)
			}
		case g.Period == gateway.TotalPeriod:
			d.Total = g.Figures
		default:
			d.Periods = append(d.Periods, g)
		}
	}
	// The outcome chart and its table show the outcomes that occur: one
	// whose total is 0 is 0 in every period, and a legend for it would
	// only crowd the chart.
	d.Total.Outcomes = slices.DeleteFunc(slices.Clone(d.Total.Outcomes), func(o gateway.Named) bool { return o.Display == "0" })
	for _, o := range d.Total.Outcomes {
		d.Outcomes = append(d.Outcomes, o.Name)
	}
	for i := range d.Periods {
		d.Periods[i].Figures.Outcomes = slices.DeleteFunc(slices.Clone(d.Periods[i].Figures.Outcomes), func(o gateway.Named) bool { return !slices.Contains(d.Outcomes, o.Name) })
	}
	d.ScopeHeader = scopeHeader(rep.Scope)
	d.OutcomeChart = outcomeChart(d.Periods)
	d.RouteChart = barChart("route-chart", "Route mix: consent and each override ground", "Referrals by the route of their latest decision, "+d.From+" to "+d.To+".", d.Total.Routes)
	d.RuleChart = barChart("rule-chart", "Refusals by rule", "Refused referrals by the rule that refused them (a refusal may cite several rules), "+d.From+" to "+d.To+".", d.Total.RefusalsByRule)
	d.WaitChart = waitChart(d.Periods, d.AppointmentsUnavailable)
	u.render(w, r, sess, http.StatusOK, "evaluation.html", page{Title: "Evaluation", Nav: "evaluation", Data: d})
	return nil
}

// scopeHeader says whose figures these are.
func scopeHeader(s gateway.EvaluationScope) string {
	who := "UKPRN " + strings.Join(s.Institutions, ", UKPRN ")
	if s.Partnership != "" {
		who = s.Name + " (" + who + ")"
	}
	return who + "; services: " + strings.Join(s.Services, ", ")
}

// Patterns tell the series of a chart apart in greyscale and in colour;
// each series is also labelled directly or in a legend of the same fills.
// There are as many as there are outcomes (gateway.CaseOutcomes), so
// that no two series of the outcome chart share one.
var chartFills = []string{"url(#p-solid)", "url(#p-diag)", "url(#p-dots)", "url(#p-light)", "url(#p-cross)", "url(#p-horiz)",
	"url(#p-vert)", "url(#p-grid)", "url(#p-back)", "url(#p-spots)", "url(#p-check)", "url(#p-white)"}

const chartDefs = `<defs>
<pattern id="p-solid" width="6" height="6" patternUnits="userSpaceOnUse"><rect width="6" height="6" fill="#1d3f5e"/></pattern>
<pattern id="p-diag" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)"><rect width="6" height="6" fill="#d2e2f1"/><rect width="3" height="6" fill="#1d70b8"/></pattern>
<pattern id="p-dots" width="6" height="6" patternUnits="userSpaceOnUse"><rect width="6" height="6" fill="#fde8c8"/><circle cx="3" cy="3" r="1.6" fill="#6b4100"/></pattern>
<pattern id="p-light" width="6" height="6" patternUnits="userSpaceOnUse"><rect width="6" height="6" fill="#9fc1a8"/></pattern>
<pattern id="p-cross" width="8" height="8" patternUnits="userSpaceOnUse"><rect width="8" height="8" fill="#f4d4d0"/><path d="M0 0L8 8M8 0L0 8" stroke="#942514" stroke-width="1.5"/></pattern>
<pattern id="p-horiz" width="6" height="6" patternUnits="userSpaceOnUse"><rect width="6" height="6" fill="#e5dcf2"/><rect width="6" height="2" fill="#4c2c92"/></pattern>
<pattern id="p-vert" width="6" height="6" patternUnits="userSpaceOnUse"><rect width="6" height="6" fill="#ffffff"/><rect width="2" height="6" fill="#505a5f"/></pattern>
<pattern id="p-grid" width="8" height="8" patternUnits="userSpaceOnUse"><rect width="8" height="8" fill="#ffffff"/><path d="M0 0H8M0 0V8" stroke="#00703c" stroke-width="2"/></pattern>
<pattern id="p-back" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(-45)"><rect width="6" height="6" fill="#ffdd00"/><rect width="2" height="6" fill="#0b0c0c"/></pattern>
<pattern id="p-spots" width="8" height="8" patternUnits="userSpaceOnUse"><rect width="8" height="8" fill="#28a197"/><circle cx="4" cy="4" r="2" fill="#ffffff"/></pattern>
<pattern id="p-check" width="8" height="8" patternUnits="userSpaceOnUse"><rect width="8" height="8" fill="#f3f2f1"/><rect width="4" height="4" fill="#d4351c"/><rect x="4" y="4" width="4" height="4" fill="#d4351c"/></pattern>
<pattern id="p-white" width="6" height="6" patternUnits="userSpaceOnUse"><rect width="6" height="6" fill="#ffffff"/></pattern>
<pattern id="p-hidden" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(-45)"><rect width="6" height="6" fill="#ffffff"/><rect width="1" height="6" fill="#858686"/></pattern>
</defs>`

// svg opens a chart with its accessible name and description.
func svg(b *strings.Builder, id string, w, h int, title, desc string) {
	fmt.Fprintf(b, `<svg class="chart" id="%s" viewBox="0 0 %d %d" width="100%%" role="img" aria-labelledby="%[1]s-t %[1]s-d" xmlns="http://www.w3.org/2000/svg" font-family="Arial, sans-serif" font-size="13">`, id, w, h)
	fmt.Fprintf(b, `<title id="%[1]s-t">%[2]s</title><desc id="%[1]s-d">%[3]s</desc>%[4]s`, id, html.EscapeString(title), html.EscapeString(desc), chartDefs)
}

func text(b *strings.Builder, x, y int, anchor, s string) {
	fmt.Fprintf(b, `<text x="%d" y="%d" text-anchor="%s" fill="#0b0c0c">%s</text>`, x, y, anchor, html.EscapeString(s))
}

func value(c gateway.Cell) int {
	if c.Value == nil {
		return 0
	}
	return *c.Value
}

// outcomeChart is referrals a period, stacked by outcome; the suppressed
// outcomes of a period are drawn together, hatched, as the rest of its
// total.
func outcomeChart(periods []gateway.FigureGroup) template.HTML {
	if len(periods) == 0 {
		return ""
	}
	outcomes := periods[0].Figures.Outcomes
	const left, top, plotH, barW, gap = 48, 16, 240, 28, 14
	maxV := 5
	for _, p := range periods {
		maxV = max(maxV, value(p.Figures.Referrals))
	}
	width := left + len(periods)*(barW+gap) + 20
	legendTop := top + plotH + 48
	height := legendTop + ((len(outcomes)+1)/2+1)*22
	var b strings.Builder
	svg(&b, "outcome-chart", max(width, 560), height, "Referrals a period by outcome",
		"Stacked bars: referrals in each period, divided by how far each referral has gone. Figures under 8 are suppressed and drawn together, hatched. The table below gives the same numbers.")
	y := func(v int) int { return top + plotH - v*plotH/maxV }
	for _, tick := range []int{0, maxV / 2, maxV} {
		fmt.Fprintf(&b, `<line x1="%d" x2="%d" y1="%d" y2="%[3]d" stroke="#b1b4b6"/>`, left, width, y(tick))
		text(&b, left-6, y(tick)+4, "end", fmt.Sprint(tick))
	}
	for i, p := range periods {
		x, base, shown := left+gap/2+i*(barW+gap), 0, 0
		for k, o := range p.Figures.Outcomes {
			v := value(o.Cell)
			if v > 0 {
				fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%d" height="%d" fill="%s" stroke="#0b0c0c" stroke-width="0.5"><title>%s %s: %s</title></rect>`,
					x, y(base+v), barW, y(base)-y(base+v), chartFills[k%len(chartFills)], html.EscapeString(p.Period), html.EscapeString(o.Name), o.Display)
			}
			base += v
			shown += v
		}
		if rest := value(p.Figures.Referrals) - shown; rest > 0 {
			fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%d" height="%d" fill="url(#p-hidden)" stroke="#0b0c0c" stroke-width="0.5"><title>%s: suppressed outcomes</title></rect>`,
				x, y(base+rest), barW, y(base)-y(base+rest), html.EscapeString(p.Period))
		}
		text(&b, x+barW/2, y(max(value(p.Figures.Referrals), base))-4, "middle", p.Figures.Referrals.Display)
		fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="end" transform="rotate(-45 %[1]d %[2]d)" fill="#0b0c0c">%s</text>`, x+barW/2+4, top+plotH+16, html.EscapeString(p.Period))
	}
	for k, o := range append(slices.Clone(outcomes), gateway.Named{Name: "suppressed (<8 or *)"}) {
		fill := chartFills[k%len(chartFills)]
		if k == len(outcomes) {
			fill = "url(#p-hidden)"
		}
		lx, ly := left+(k%2)*260, legendTop+(k/2)*22
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="16" height="16" fill="%s" stroke="#0b0c0c"/>`, lx, ly, fill)
		text(&b, lx+22, ly+13, "start", o.Name)
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String()) // every datum in it is escaped above
}

// barChart is a horizontal bar a category, labelled directly with its
// name and published value.
func barChart(id, title, desc string, cells []gateway.Named) template.HTML {
	const left, barH, gap, plotW = 150, 20, 8, 330
	maxV := 5
	for _, c := range cells {
		maxV = max(maxV, value(c.Cell))
	}
	var b strings.Builder
	svg(&b, id, left+plotW+70, max(len(cells), 1)*(barH+gap)+10, title, desc+" Figures under 8 are suppressed and drawn as an empty bar marked <8. The table beside gives the same numbers.")
	if len(cells) == 0 {
		text(&b, 10, 20, "start", "None in this period.")
	}
	for i, c := range cells {
		y := 5 + i*(barH+gap)
		text(&b, left-8, y+barH-5, "end", c.Name)
		wid := value(c.Cell) * plotW / maxV
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%d" height="%d" fill="%s" stroke="#0b0c0c" stroke-width="0.5"/>`, left, y, max(wid, 1), barH, chartFills[i%len(chartFills)])
		text(&b, left+max(wid, 1)+6, y+barH-5, "start", c.Display)
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String()) // every datum in it is escaped above
}

// waitChart is the median and 90th percentile wait a period, to
// acknowledgement and (with the timeline) to the first appointment: a dot for
// the median, a bar up to the 90th percentile.
func waitChart(periods []gateway.FigureGroup, noAppointments bool) template.HTML {
	if len(periods) == 0 {
		return ""
	}
	series := []struct {
		name string
		wait func(gateway.Figures) gateway.Wait
	}{
		{"to acknowledgement", func(f gateway.Figures) gateway.Wait { return f.TimeToAcknowledgement }},
		{"to first appointment", func(f gateway.Figures) gateway.Wait { return f.TimeToFirstAppointment }},
	}
	if noAppointments {
		series = series[:1]
	}
	maxV := 1.0
	for _, p := range periods {
		for _, s := range series {
			if w := s.wait(p.Figures); w.P90 != nil {
				maxV = max(maxV, *w.P90)
			}
		}
	}
	const left, top, plotH, slot = 48, 16, 200, 44
	width := max(left+len(periods)*slot+20, 560)
	var b strings.Builder
	svg(&b, "wait-chart", width, top+plotH+90, "Waiting times in days",
		"For each period, the median (dot) and 90th percentile (top of the bar) of the days from referral to the service's first answer, and to the first appointment (its booked start, or when the student was seen without one). Periods with fewer than 8 cases are suppressed and left out. The table below gives the same numbers.")
	y := func(v float64) int { return top + plotH - int(v*plotH/maxV) }
	for _, tick := range []float64{0, maxV / 2, maxV} {
		fmt.Fprintf(&b, `<line x1="%d" x2="%d" y1="%d" y2="%[3]d" stroke="#b1b4b6"/>`, left, width, y(tick))
		text(&b, left-6, y(tick)+4, "end", fmt.Sprintf("%.0f", tick))
	}
	for i, p := range periods {
		for k, s := range series {
			x := left + i*slot + 10 + k*14
			w := s.wait(p.Figures)
			if w.Median == nil {
				text(&b, x+5, top+plotH-4, "middle", "–")
				continue
			}
			fmt.Fprintf(&b, `<rect x="%d" y="%d" width="10" height="%d" fill="%s" stroke="#0b0c0c" stroke-width="0.5"><title>%s %s: %s</title></rect>`,
				x, y(*w.P90), y(0)-y(*w.P90), chartFills[k+1], html.EscapeString(p.Period), s.name, w.Display)
			fmt.Fprintf(&b, `<circle cx="%d" cy="%d" r="4" fill="#0b0c0c"/>`, x+5, y(*w.Median))
		}
		fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="end" transform="rotate(-45 %[1]d %[2]d)" fill="#0b0c0c">%s</text>`, left+i*slot+24, top+plotH+16, html.EscapeString(p.Period))
	}
	ly := top + plotH + 70
	for k, s := range series {
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="16" height="16" fill="%s" stroke="#0b0c0c"/>`, left+k*240, ly, chartFills[k+1])
		text(&b, left+k*240+22, ly+13, "start", "90th percentile "+s.name)
	}
	fmt.Fprintf(&b, `<circle cx="%d" cy="%d" r="4" fill="#0b0c0c"/>`, left+len(series)*240+8, ly+8)
	text(&b, left+len(series)*240+18, ly+13, "start", "median")
	b.WriteString(`</svg>`)
	return template.HTML(b.String()) // every datum in it is escaped above
}

// evaluator says whether c is a partnership evaluator: it signs in to the
// Evaluation tab only, and never sees a record.
func evaluator(c *gateway.Client) bool {
	return c.Has(gateway.RolePartnershipEvaluator) && c.Partnership != ""
}

// homeOf is where a signed-in client starts: the decisions, or the
// figures for an evaluator.
func homeOf(c *gateway.Client) string {
	if evaluator(c) {
		return "/ui/evaluation"
	}
	return "/ui/decisions"
}
