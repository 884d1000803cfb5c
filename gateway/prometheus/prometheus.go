// Package prometheus exposes the gateway's metrics in the Prometheus text
// format at /metrics: requests and their latency, decisions by outcome and by
// rule, deliveries, the outbox queue, webhook calls and their queue, and
// messages stopped by the output gate.
// Operators alert on these; none carries personal data, only route
// templates, rule ids, service ids and counts.
package prometheus

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/student-mh-referrals/gateway/gateway"
)

// Metrics holds the gateway's collectors in their own registry, so tests
// can make as many as they like.
type Metrics struct {
	reg *prometheus.Registry

	requests        *prometheus.CounterVec
	latency         *prometheus.HistogramVec
	decisions       *prometheus.CounterVec
	ruleDenials     *prometheus.CounterVec
	deliveries      *prometheus.CounterVec
	webhooks        *prometheus.CounterVec
	invalidMessages prometheus.Counter
}

// QueueStats reports the outbox for the queue gauges; it is read at scrape
// time so the figures are never stale.
type QueueStats func(ctx context.Context) (depth int, oldest time.Duration, err error)

// New registers the collectors. queue may be nil when there is no store.
func New(queue QueueStats) *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry()}
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "gateway_http_requests_total", Help: "HTTP requests by route template, method and status.",
	}, []string{"route", "method", "status"})
	m.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "gateway_http_request_duration_seconds", Help: "HTTP request latency by route template.",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
	}, []string{"route"})
	m.decisions = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "gateway_decisions_total", Help: "Sharing decisions by outcome (allow, deny, invalid), route and whether a dry run.",
	}, []string{"outcome", "route", "dry_run"})
	m.ruleDenials = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "gateway_rule_denials_total", Help: "Denying rule results by rule id.",
	}, []string{"rule"})
	m.deliveries = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "gateway_deliveries_total", Help: "Delivery attempts by service and result (delivered, retry, failed, dead-lettered).",
	}, []string{"service", "result"})
	m.webhooks = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "gateway_webhook_calls_total", Help: "Webhook call attempts by result (delivered, retry, dead).",
	}, []string{"result"})
	m.invalidMessages = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "gateway_output_gate_rejections_total", Help: "Messages the gateway built that failed validation and were not sent (a mapping bug).",
	})
	m.reg.MustRegister(m.requests, m.latency, m.decisions, m.ruleDenials, m.deliveries, m.webhooks, m.invalidMessages,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if queue != nil {
		m.reg.MustRegister(&queueCollector{stats: queue,
			depth:  prometheus.NewDesc("gateway_outbox_depth", "Messages waiting in the outbox.", nil, nil),
			oldest: prometheus.NewDesc("gateway_outbox_oldest_age_seconds", "Age of the oldest waiting message.", nil, nil),
		})
	}
	return m
}

// Handler serves the metrics.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// ObserveRequest counts one served request.
func (m *Metrics) ObserveRequest(route, method string, status int, d time.Duration) {
	m.requests.WithLabelValues(route, method, strconv.Itoa(status)).Inc()
	m.latency.WithLabelValues(route).Observe(d.Seconds())
}

// ObserveEvaluation counts a decision and each rule that denied.
func (m *Metrics) ObserveEvaluation(ev *gateway.Evaluation, dryRun bool) {
	route := ""
	if ev.Decision != nil {
		route = ev.Decision.Route
		for _, r := range ev.Decision.Rules {
			if r.Effect == gateway.EffectDeny {
				m.ruleDenials.WithLabelValues(r.ID).Inc()
			}
		}
	}
	m.decisions.WithLabelValues(ev.Outcome, route, strconv.FormatBool(dryRun)).Inc()
}

// ObserveDelivery counts one delivery attempt's result.
func (m *Metrics) ObserveDelivery(service, result string) {
	m.deliveries.WithLabelValues(service, result).Inc()
}

// ObserveWebhook counts one webhook call attempt's result.
func (m *Metrics) ObserveWebhook(result string) { m.webhooks.WithLabelValues(result).Inc() }

// WebhookCounts reports the webhook queue for its gauges, read at scrape
// time.
type WebhookCounts func(ctx context.Context) (pending, dead int, err error)

// WatchWebhooks adds the gauges of the webhook queue: the calls waiting and
// the dead letter, which an operator alerts on (a university's system is
// not being told of its referrals' changes).
func (m *Metrics) WatchWebhooks(counts WebhookCounts) {
	m.reg.MustRegister(&webhookCollector{counts: counts,
		desc: prometheus.NewDesc("gateway_webhook_queue", "Webhook calls by state (pending, dead).", []string{"state"}, nil)})
}

type webhookCollector struct {
	counts WebhookCounts
	desc   *prometheus.Desc
}

func (w *webhookCollector) Describe(ch chan<- *prometheus.Desc) { ch <- w.desc }

func (w *webhookCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	pending, dead, err := w.counts(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(w.desc, err)
		return
	}
	ch <- prometheus.MustNewConstMetric(w.desc, prometheus.GaugeValue, float64(pending), "pending")
	ch <- prometheus.MustNewConstMetric(w.desc, prometheus.GaugeValue, float64(dead), "dead")
}

// ObserveInvalidMessage counts a message stopped by the output gate.
func (m *Metrics) ObserveInvalidMessage([]gateway.Issue) { m.invalidMessages.Inc() }

type queueCollector struct {
	stats         QueueStats
	depth, oldest *prometheus.Desc
}

func (q *queueCollector) Describe(ch chan<- *prometheus.Desc) { ch <- q.depth; ch <- q.oldest }

func (q *queueCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	depth, oldest, err := q.stats(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(q.depth, err)
		return
	}
	ch <- prometheus.MustNewConstMetric(q.depth, prometheus.GaugeValue, float64(depth))
	ch <- prometheus.MustNewConstMetric(q.oldest, prometheus.GaugeValue, oldest.Seconds())
}
