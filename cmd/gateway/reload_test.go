package main

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/student-mh-referrals/gateway/gateway"
	"github.com/student-mh-referrals/gateway/gateway/config"
	"github.com/student-mh-referrals/gateway/policies"
)

// TestPolicyReloadIsRecorded: with policies.dir set, an edited set is
// compiled, tested, swapped in and recorded in the gateway's decision chain;
// a set that does not compile is refused and the old one keeps deciding.
func TestPolicyReloadIsRecorded(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	entries, err := policies.FS.ReadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".rego") {
			continue
		}
		b, err := policies.FS.ReadFile(e.Name())
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, e.Name()), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cfgPath := filepath.Join(t.TempDir(), "gateway.yaml")
	y := strings.Replace(string(config.Example), "policies:\n  dir: \"\"", "policies:\n  dir: "+dir, 1)
	if y == string(config.Example) {
		t.Fatal("policies.dir not found in the example configuration")
	}
	if err := os.WriteFile(cfgPath, []byte(y), 0o600); err != nil {
		t.Fatal(err)
	}
	a, err := newApp(ctx, cfgPath, io.Discard, "error")
	if err != nil {
		t.Fatal(err)
	}
	store, err := openStore(ctx, testStore(t, "sqlite"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	a.audit = &gateway.Audit{Log: store}
	before := a.decider.Revision()

	// An edit that keeps the set valid: a new comment changes the hash.
	f := filepath.Join(dir, "consent.rego")
	b, _ := os.ReadFile(f)
	if err := os.WriteFile(f, append(b, []byte("\n# reviewed by the IG lead\n")...), 0o600); err != nil {
		t.Fatal(err)
	}
	after, err := a.decider.Reload(ctx, os.DirFS(dir))
	if err != nil || after == before || a.decider.Revision() != after {
		t.Fatalf("reload: revision %s → %s (in force %s), err %v", before, after, a.decider.Revision(), err)
	}
	recs, err := store.Decisions(ctx, "gateway", 0, 10)
	if err != nil || len(recs) != 1 || !strings.Contains(string(recs[0].Body), after) || !strings.Contains(string(recs[0].Body), before) {
		t.Fatalf("the reload was not recorded with both revisions: %v %v", recs, err)
	}

	// A broken set is refused; the one in force keeps deciding.
	if err := os.WriteFile(f, []byte("package referral\n\nthis is not rego\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := a.decider.Reload(ctx, os.DirFS(dir)); err == nil {
		t.Fatal("a set that does not compile was accepted")
	}
	if a.decider.Revision() != after {
		t.Fatalf("the revision in force changed to %s after a refused reload", a.decider.Revision())
	}
	var out strings.Builder
	if err := run(ctx, []string{"evaluate", "--config", cfgPath, "--at", goldenAt, filepath.Join("..", "..", "testdata", "cases", "allow-liverpool-u-cope.json")}, nil, &out, io.Discard); err == nil {
		t.Fatal("a fresh start on the broken directory must refuse to run")
	}
}
