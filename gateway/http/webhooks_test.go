package http

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/student-mh-referrals/gateway/gateway"
	"github.com/student-mh-referrals/gateway/gateway/sqlite"
)

// TestWebhookDeadLetter: each university's clients see their own
// institution's dead webhook calls, an admin sees all and retries them.
func TestWebhookDeadLetter(t *testing.T) {
	ctx := context.Background()
	db, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "gateway.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	db.SetWebhookClients(map[string][]gateway.WebhookSubscriber{instA: {{ClientID: "cms-a"}}, instB: {{ClientID: "cms-b"}}})
	at := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	for _, inst := range []string{instA, instB} {
		if err := db.EnqueueWebhooks(ctx, gateway.WebhookEvent{Institution: inst, ReferralID: "ref-" + inst, CaseID: "C1",
			Event: gateway.WebhookEventStatus, Status: "rejected", At: at}); err != nil {
			t.Fatal(err)
		}
	}
	calls, err := db.ClaimWebhooks(ctx, 10, at, time.Minute)
	if err != nil || len(calls) != 2 {
		t.Fatalf("claimed %d, %v", len(calls), err)
	}
	ids := map[string]string{}
	for _, c := range calls {
		ids[c.Institution] = c.ID
		if err := db.DeadLetterWebhook(ctx, c.ID, c.LeaseID, at, "http-500"); err != nil {
			t.Fatal(err)
		}
	}
	hash := func(s string) string { return hashHex([]byte(s)) }
	s := &Server{
		Intake: &gateway.Intake{Store: db},
		Auth: NewAuthenticator([]Credential{
			{Client: gateway.Client{ID: "cms-a", Institution: instA, Roles: []string{gateway.RoleSubmitter}}, TokenSHA256: hash("tok-cms-a")},
			{Client: gateway.Client{ID: "ig-b", Institution: instB, Roles: []string{gateway.RoleAuditor}}, TokenSHA256: hash("tok-ig-b")},
			{Client: gateway.Client{ID: "ops", Roles: []string{gateway.RoleAdmin}}, TokenSHA256: hash("tok-ops")},
			{Client: gateway.Client{ID: "nhs", Roles: []string{gateway.RoleReceiver}, Services: []string{"*"}}, TokenSHA256: hash("tok-nhs")},
		}, false),
		Now: func() time.Time { return at.Add(time.Hour) },
	}
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	do := func(method, path, token string) (int, []string) {
		req, _ := http.NewRequest(method, srv.URL+path, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body deadWebhooks
		_ = json.NewDecoder(resp.Body).Decode(&body)
		var got []string
		for _, c := range body.Calls {
			got = append(got, c.Institution)
		}
		return resp.StatusCode, got
	}
	for _, tt := range []struct {
		name, method, path, token string
		status                    int
		institutions              []string
	}{
		{"a submitter sees its own", "GET", "/v1/webhooks/dead", "tok-cms-a", 200, []string{instA}},
		{"an auditor sees its own", "GET", "/v1/webhooks/dead", "tok-ig-b", 200, []string{instB}},
		{"never another's", "GET", "/v1/webhooks/dead?institution=" + instB, "tok-cms-a", 403, nil},
		{"an admin sees all", "GET", "/v1/webhooks/dead", "tok-ops", 200, []string{instA, instB}},
		{"an admin filters", "GET", "/v1/webhooks/dead?institution=" + instB, "tok-ops", 200, []string{instB}},
		{"a bad limit", "GET", "/v1/webhooks/dead?limit=0", "tok-ops", 422, nil},
		{"a receiver sees none", "GET", "/v1/webhooks/dead", "tok-nhs", 403, nil},
		{"only an admin retries", "POST", "/v1/webhooks/" + ids[instA] + "/$retry", "tok-cms-a", 403, nil},
		{"an admin retries", "POST", "/v1/webhooks/" + ids[instA] + "/$retry", "tok-ops", 202, nil},
		{"once", "POST", "/v1/webhooks/" + ids[instA] + "/$retry", "tok-ops", 409, nil},
		{"an unknown call", "POST", "/v1/webhooks/nope/$retry", "tok-ops", 404, nil},
		{"the retried call has left the dead letter", "GET", "/v1/webhooks/dead", "tok-ops", 200, []string{instB}},
	} {
		status, got := do(tt.method, tt.path, tt.token)
		if status != tt.status || len(got) != len(tt.institutions) {
			t.Fatalf("%s: %d %v, want %d %v", tt.name, status, got, tt.status, tt.institutions)
		}
		for i := range got {
			if got[i] != tt.institutions[i] {
				t.Fatalf("%s: %v, want %v", tt.name, got, tt.institutions)
			}
		}
	}
}
