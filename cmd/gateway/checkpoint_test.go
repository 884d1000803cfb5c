package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	gwhttp "github.com/student-mh-referrals/gateway/gateway/http"
)

// TestAuditCheckpoints: `gateway audit checkpoint` writes a signed
// checkpoint; `gateway audit verify` and GET /v1/audit/verify hold the
// chains to it; an IG lead downloads it from the web page; a chain cut back
// below it, or deleted with its head, is named and exits 4; a copy of the
// checkpoints kept off the host shows one deleted on the host.
func TestAuditCheckpoints(t *testing.T) {
	env := newAuditEnv(t)
	seed(t, env)
	code, out, errOut := env.cli(t, "audit", "checkpoint", "--config", env.cfg)
	if code != 0 || !strings.Contains(out, "checkpoint 1 of ") || !strings.Contains(out, "signed by ") {
		t.Fatalf("audit checkpoint: exit %d\n%s%s", code, out, errOut)
	}
	want, err := os.ReadFile(filepath.Join(filepath.Dir(env.db), "checkpoints", "checkpoint-00000001.json"))
	if err != nil {
		t.Fatal(err)
	}
	if code, out, _ := env.cli(t, "audit", "verify", "--config", env.cfg); code != 0 || !strings.Contains(out, "checkpoints: held to checkpoint 1 of ") {
		t.Fatalf("verify: exit %d\n%s", code, out)
	}
	apiVerify := func() (st gwhttp.ChainStatus) {
		a := call(t, env.srv, apiCall{method: "GET", path: "/v1/audit/verify", token: auditor})
		if a.status != 200 || json.Unmarshal(a.body, &st) != nil {
			t.Fatalf("API: status %d: %s", a.status, a.body)
		}
		return st
	}
	if st := apiVerify(); !st.OK || st.Checkpoint != 5 {
		t.Fatalf("API: %+v, want ok up to checkpointed record 5", st)
	}

	t.Run("the IG lead downloads it", func(t *testing.T) {
		jar, _ := cookiejar.New(nil)
		c := &http.Client{Jar: jar}
		get := func(path string) (*http.Response, string) {
			resp, err := c.Get(env.srv.URL + path)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			return resp, string(b)
		}
		_, login := get("/ui/")
		csrf := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(login)
		if csrf == nil {
			t.Fatalf("no sign-in form: %.300s", login)
		}
		resp, err := c.PostForm(env.srv.URL+"/ui/login", url.Values{"token": {auditor}, "csrf": {csrf[1]}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if _, page := get("/ui/decisions"); !strings.Contains(page, `href="/ui/checkpoint"`) {
			t.Fatalf("no checkpoint link on the decisions page: %.300s", page)
		}
		resp, body := get("/ui/checkpoint")
		if resp.StatusCode != 200 || body != string(want) || !strings.Contains(resp.Header.Get("Content-Disposition"), "checkpoint-00000001.json") {
			t.Fatalf("download: status %d, %q:\n%.300s", resp.StatusCode, resp.Header.Get("Content-Disposition"), body)
		}
	})

	t.Run("a copy kept off the host shows the newest checkpoint deleted", func(t *testing.T) {
		host := filepath.Join(filepath.Dir(env.db), "checkpoints")
		copyDir := t.TempDir()
		if err := os.WriteFile(filepath.Join(copyDir, "checkpoint-00000001.json"), want, 0o644); err != nil {
			t.Fatal(err)
		}
		if code, out, _ := env.cli(t, "audit", "verify", "--config", env.cfg, "--checkpoints", copyDir); code != 0 {
			t.Fatalf("verify against an intact copy: exit %d\n%s", code, out)
		}
		os.Rename(filepath.Join(host, "checkpoint-00000001.json"), filepath.Join(copyDir, "aside"))
		defer os.Rename(filepath.Join(copyDir, "aside"), filepath.Join(host, "checkpoint-00000001.json"))
		code, out, _ := env.cli(t, "audit", "verify", "--config", env.cfg, "--checkpoints", copyDir)
		if code != exitTampered || !strings.Contains(out, "checkpoint 1 of the copy is missing from "+host) {
			t.Fatalf("verify against the copy after the host's checkpoint was deleted: exit %d\n%s", code, out)
		}
	})

	// UWE's chain cut back below the checkpoint; Liverpool's deleted with
	// its head and its referral.
	tamperSQL(t, env.db, []string{
		`DELETE FROM decision_records WHERE institution = '10007164' AND seq > 3`,
		`UPDATE decision_chains SET seq = 3, hash = (SELECT hash FROM decision_records WHERE institution = '10007164' AND seq = 3) WHERE institution = '10007164'`,
		`DELETE FROM decision_records WHERE institution = '10006842'`,
		`DELETE FROM decision_chains WHERE institution = '10006842'`,
		`DELETE FROM outbox_messages WHERE institution = '10006842'`,
		`DELETE FROM referrals WHERE institution = '10006842'`,
	})
	code, out, _ = env.cli(t, "audit", "verify", "--config", env.cfg)
	table := strings.Join(strings.Fields(out), " ")
	if code != exitTampered || !strings.Contains(table, "10007164 3 removed 4 the chain ends at record 3 but had 5 records") ||
		!strings.Contains(table, "10006842 0 missing 1 the chain is missing: it had 1 records") {
		t.Fatalf("verify after tampering: exit %d\n%s", code, out)
	}
	if st := apiVerify(); st.OK || st.Problem != "removed" || st.BadSeq != 4 {
		t.Fatalf("API after tampering: %+v", st)
	}

}
