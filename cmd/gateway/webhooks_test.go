package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/student-mh-referrals/gateway/gateway"
	"github.com/student-mh-referrals/gateway/gateway/config"
	"github.com/student-mh-referrals/gateway/gateway/prometheus"
	"github.com/student-mh-referrals/gateway/gateway/webhook"
)

// TestWebhooksEndToEnd: with a webhook configured for UWE's submitter, a
// delivered referral reaches UWE's endpoint as a signed call that names it
// by ids and status alone.
func TestWebhooksEndToEnd(t *testing.T) {
	env := newAuditEnv(t)
	type got struct {
		header http.Header
		body   []byte
	}
	calls := make(chan got, 10)
	rc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		calls <- got{r.Header, b}
	}))
	defer rc.Close()
	const hexSecret = "3f9a1c7e5b2d8f4a6c0e1b3d5f7a9c2e4b6d8f0a1c3e5b7d9f2a4c6e8b0d1f3a"
	secretFile := filepath.Join(t.TempDir(), "uwe.hex")
	if err := os.WriteFile(secretFile, []byte(hexSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(env.cfg)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Clients[0].Webhook = &config.Webhook{URL: rc.URL + "/hook", SecretFile: secretFile}
	if err := cfg.Validate(); err != nil || cfg.Clients[0].ID != "uwe-cms" {
		t.Fatalf("%v (client %s)", err, cfg.Clients[0].ID)
	}
	ctx, cancel := context.WithCancel(context.Background())
	g, gctx := errgroup.WithContext(ctx)
	if err := startWebhooks(gctx, g, &app{cfg: cfg, log: zap.NewNop()}, env.store.(keyedStore), prometheus.New(nil)); err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); _ = g.Wait() }()

	sub := call(t, env.srv, apiCall{method: "POST", path: "/v1/referrals", token: uwe, body: readCase(t, "allow-uwe-bristol-awp-trusted-contact")})
	if sub.status != 202 {
		t.Fatalf("submit: %d", sub.status)
	}
	var accepted struct{ ID string }
	_ = json.Unmarshal(sub.body, &accepted)
	claimed, err := env.store.Claim(ctx, "test", 1, afterSeed, time.Minute)
	if err != nil || len(claimed) != 1 {
		t.Fatalf("claim: %v %d", err, len(claimed))
	}
	if err := env.store.RecordAttempt(ctx, claimed[0].ID, claimed[0].LeaseID, gateway.Attempt{Result: gateway.AttemptDelivered, At: afterSeed}); err != nil {
		t.Fatal(err)
	}
	var c got
	select {
	case c = <-calls:
	case <-time.After(30 * time.Second):
		t.Fatal("no webhook call within 30s")
	}
	secret, _ := hex.DecodeString(hexSecret)
	if !webhook.Verify(secret, c.header.Get("Webhook-Id"), c.header.Get("Webhook-Timestamp"), c.body, c.header.Get("Webhook-Signature"), time.Now(), time.Minute) {
		t.Fatalf("the call's signature does not verify: %v", c.header)
	}
	var p gateway.WebhookPayload
	if err := json.Unmarshal(c.body, &p); err != nil || p.ReferralID != accepted.ID || p.Status != "delivered" || p.Institution != uweUKPRN || p.Attempt != 1 {
		t.Fatalf("payload %s (%v), want referral %s delivered", c.body, err, accepted.ID)
	}
	for _, personal := range []string{"Riley", "Carter", "nhsNumber", "9990000018"} {
		if strings.Contains(string(c.body), personal) {
			t.Fatalf("the payload holds %q: %s", personal, c.body)
		}
	}
}

// TestWebhooksCLI: `gateway webhooks list` shows the dead letter and
// `gateway webhooks retry` queues a call again, once.
func TestWebhooksCLI(t *testing.T) {
	env := newAuditEnv(t)
	ctx := context.Background()
	store := env.store.(keyedStore)
	store.SetWebhookClients(map[string][]gateway.WebhookSubscriber{uweUKPRN: {{ClientID: "uwe-cms"}}})
	if err := store.EnqueueWebhooks(ctx, gateway.WebhookEvent{Institution: uweUKPRN, ReferralID: "ref-1", CaseID: "C1",
		Event: gateway.WebhookEventStatus, Status: "rejected", At: afterSeed}); err != nil {
		t.Fatal(err)
	}
	claimed, err := store.ClaimWebhooks(ctx, 1, afterSeed, time.Minute)
	if err != nil || len(claimed) != 1 {
		t.Fatalf("claim: %v %d", err, len(claimed))
	}
	if err := store.DeadLetterWebhook(ctx, claimed[0].ID, claimed[0].LeaseID, afterSeed, "http-500"); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := env.cli(t, "webhooks", "list", "--config", env.cfg)
	if code != 0 || !strings.Contains(out, claimed[0].ID) || !strings.Contains(out, "http-500") || !strings.Contains(out, "rejected") {
		t.Fatalf("list: exit %d\n%s%s", code, out, errOut)
	}
	if code, out, errOut := env.cli(t, "webhooks", "retry", claimed[0].ID, "--config", env.cfg); code != 0 {
		t.Fatalf("retry: exit %d\n%s%s", code, out, errOut)
	}
	if code, _, _ := env.cli(t, "webhooks", "retry", claimed[0].ID, "--config", env.cfg); code == 0 {
		t.Fatal("a second retry of the same call succeeded")
	}
	if code, _, _ := env.cli(t, "webhooks", "retry", "--config", env.cfg); code != exitFailure {
		t.Fatalf("retry without an id: exit %d", code)
	}
}
