package prometheus

import (
	"context"
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/student-mh-referrals/gateway/gateway"
)

func TestExposition(t *testing.T) {
	m := New(func(context.Context) (int, time.Duration, error) { return 7, 90 * time.Second, nil })
	m.ObserveRequest("/v1/referrals", "POST", 202, 3*time.Millisecond)
	m.ObserveEvaluation(&gateway.Evaluation{Outcome: gateway.OutcomeDeny, Decision: &gateway.Decision{Route: "consent", Rules: []gateway.RuleResult{
		{ID: "C-02", Effect: gateway.EffectDeny}, {ID: "C-03", Effect: gateway.EffectDeny}, {ID: "E-01", Effect: gateway.EffectAllow},
	}}}, false)
	m.ObserveDelivery("u-cope", "delivered")
	m.ObserveInvalidMessage(nil)
	m.ObserveWebhook("retry")
	m.WatchWebhooks(func(context.Context) (int, int, error) { return 3, 2, nil })
	rr := httptest.NewRecorder()
	m.Handler().ServeHTTP(rr, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rr.Body)
	for _, want := range []string{
		`gateway_http_requests_total{method="POST",route="/v1/referrals",status="202"} 1`,
		`gateway_http_request_duration_seconds_bucket{route="/v1/referrals",le="0.005"} 1`,
		`gateway_decisions_total{dry_run="false",outcome="deny",route="consent"} 1`,
		`gateway_rule_denials_total{rule="C-02"} 1`,
		`gateway_rule_denials_total{rule="C-03"} 1`,
		`gateway_deliveries_total{result="delivered",service="u-cope"} 1`,
		`gateway_output_gate_rejections_total 1`,
		`gateway_outbox_depth 7`,
		`gateway_outbox_oldest_age_seconds 90`,
		`gateway_webhook_calls_total{result="retry"} 1`,
		`gateway_webhook_queue{state="pending"} 3`,
		`gateway_webhook_queue{state="dead"} 2`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if strings.Contains(string(body), `rule="E-01"`) {
		t.Error("an allowing rule was counted as a denial")
	}
}
