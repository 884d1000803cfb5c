package main

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"text/tabwriter"
	"time"

	"go.uber.org/zap"

	"github.com/student-mh-referrals/gateway/gateway"
	"github.com/student-mh-referrals/gateway/gateway/config"
	gwhttp "github.com/student-mh-referrals/gateway/gateway/http"
)

// exitTampered is the exit status of `gateway audit verify` when a chain is
// broken, so that a cron job or a monitor can alert on it.
const exitTampered = 4

// cmdAudit is `gateway audit verify|checkpoint`.
func cmdAudit(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	const use = "usage: gateway audit verify [--config FILE] [--institution UKPRN|gateway] [--checkpoints DIR] [--json]\n" +
		"       gateway audit checkpoint [--config FILE]"
	if len(args) > 0 {
		switch args[0] {
		case "verify":
			return cmdAuditVerify(ctx, args[1:], use, stdout, stderr)
		case "checkpoint":
			return cmdAuditCheckpoint(ctx, args[1:], use, stdout, stderr)
		}
	}
	fmt.Fprintln(stderr, use)
	return &exitStatus{code: exitFailure}
}

// cmdAuditVerify walks every decision chain the store holds, the
// configuration names or the newest checkpoint lists, names the first
// record that was altered, removed or reordered, and holds each chain to
// the newest signed checkpoint.
func cmdAuditVerify(ctx context.Context, args []string, use string, stdout, stderr io.Writer) error {
	fs := newFlags("audit verify", stderr)
	cfgPath := fs.String("config", "", "configuration `file`")
	inst := fs.String("institution", "", "verify only this institution's chain (a UKPRN, or \"gateway\" for the gateway's own)")
	cpDir := fs.String("checkpoints", "", "hold the chains to the checkpoints in this `directory` (default: audit.checkpointDir), e.g. a copy kept off the host, which audit.checkpointDir must still hold")
	asJSON := fs.Bool("json", false, "print JSON")
	cfg, store, err := flagsAndStore(ctx, fs, args, cfgPath, use+"\n", stderr)
	if err != nil {
		return err
	}
	defer store.Close()
	hostDir := cfg.Audit.CheckpointDir
	if *cpDir != "" {
		cfg.Audit.CheckpointDir = *cpDir
	}
	cps, err := checkpointDir(cfg)
	if err != nil {
		return err
	}
	var cp *gateway.Checkpoint
	cpNote := "no checkpoint directory: the chain heads are not checked"
	broken := false
	if cps != nil {
		switch cp, err = cps.Latest(); {
		case err != nil:
			cpNote, broken = "checkpoints in "+cps.Dir+" are not intact: "+err.Error(), true
		case cp == nil:
			cpNote = "no checkpoint in " + cps.Dir + ": the chain heads are not checked"
		default:
			cpNote = fmt.Sprintf("held to checkpoint %d of %s in %s (signed by %s)", cp.Number, cp.Time.Format(time.RFC3339), cps.Dir, cp.PublicKey)
			if hostDir != "" && filepath.Clean(hostDir) != filepath.Clean(cps.Dir) {
				if err := cps.ContainedIn(hostDir); err != nil {
					cpNote, broken = err.Error(), true
				}
			}
		}
	}
	chains := []string{*inst}
	if *inst == "" {
		if chains, err = gateway.ChainNames(ctx, store, cp, knownChains(cfg)...); err != nil {
			return err
		}
	}
	var out []gwhttp.ChainStatus
	for _, c := range chains {
		v, err := store.Verify(ctx, c)
		if err == nil {
			err = cp.Check(ctx, store, &v)
		}
		if err != nil {
			return err
		}
		out = append(out, gwhttp.StatusOf(v))
		broken = broken || !v.OK
	}
	if *asJSON {
		b, err := gwhttp.MarshalDocument(map[string]any{"chains": out, "checkpoints": cpNote})
		if err != nil {
			return err
		}
		if _, err := stdout.Write(b); err != nil {
			return err
		}
	} else {
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "CHAIN\tRECORDS\tSTATUS\tFIRST BAD RECORD\tDETAIL")
		for _, s := range out {
			status, bad := "ok", "-"
			if !s.OK {
				status, bad = s.Problem, fmt.Sprint(s.BadSeq)
			}
			fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\n", s.Institution, s.HeadSeq, status, bad, s.Detail)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		fmt.Fprintln(stdout, "checkpoints:", cpNote)
	}
	if broken {
		return &exitStatus{code: exitTampered, err: fmt.Errorf("a decision chain or the checkpoints are broken: see above")}
	}
	return nil
}

// cmdAuditCheckpoint writes a signed checkpoint of every chain head now.
func cmdAuditCheckpoint(ctx context.Context, args []string, use string, stdout, stderr io.Writer) error {
	fs := newFlags("audit checkpoint", stderr)
	cfgPath := fs.String("config", "", "configuration `file`")
	cfg, store, err := flagsAndStore(ctx, fs, args, cfgPath, use+"\n", stderr)
	if err != nil {
		return err
	}
	defer store.Close()
	keys, err := cfg.SigningKeys()
	if err != nil {
		return err
	}
	if cfg.Audit.CheckpointDir == "" {
		return fmt.Errorf("audit.checkpointDir: set it to write checkpoints")
	}
	cp, err := checkpoint(ctx, store, cfg.Audit.CheckpointDir, keys, time.Now())
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "checkpoint %d of %s: %d chains, %s, signed by %s\n", cp.Number, cp.Time.Format(time.RFC3339), len(cp.Chains),
		filepath.Join(cfg.Audit.CheckpointDir, cp.Name), cp.PublicKey)
	return nil
}

// knownChains lists the chains the configuration knows of: every
// institution a client or a service's eligibility names, and the gateway's
// own.
func knownChains(cfg *config.Config) []string {
	var out []string
	add := func(s string) {
		if s != "" && !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	for _, c := range cfg.Clients {
		add(c.Institution)
	}
	for _, s := range cfg.Services {
		for _, u := range s.Eligibility.Institutions {
			add(u)
		}
	}
	slices.Sort(out)
	return append(out, gateway.GatewayChain)
}

// cmdRetention is `gateway retention run`: delete now the clinical content
// that the retention policy says has been kept long enough.
func cmdRetention(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	const use = "usage: gateway retention run [--config FILE] [--by NAME]"
	if len(args) == 0 || args[0] != "run" {
		fmt.Fprintln(stderr, use)
		return &exitStatus{code: exitFailure}
	}
	fs := newFlags("retention run", stderr)
	cfgPath := fs.String("config", "", "configuration `file`")
	by := fs.String("by", "", "who (default: the operating-system user)")
	cfg, store, err := flagsAndStore(ctx, fs, args[1:], cfgPath, use+"\n", stderr)
	if err != nil {
		return err
	}
	defer store.Close()
	now := time.Now().UTC()
	n, err := purge(ctx, store, cfg.Retention, operator(*by), now)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "deleted the clinical content of %d referrals last changed before %s (retention.contentDays %d); their status and decision records are kept\n",
		n, cfg.Retention.Cutoff(now).Format(time.RFC3339), cfg.Retention.ContentDays)
	return nil
}

// purge runs the retention policy once and records a run that deleted
// anything in the gateway chain.
func purge(ctx context.Context, store gateway.Store, r config.Retention, by string, now time.Time) (int, error) {
	n, err := store.PurgeContent(ctx, r.Cutoff(now), now)
	if err != nil || n == 0 {
		return n, err
	}
	_, err = gateway.AppendAction(ctx, store, gateway.ActionEntry{
		Action: gateway.ActionRetentionPurge, By: by, Institution: gateway.GatewayChain, Count: n,
	}, now)
	return n, err
}

// runRetention is the server's scheduled retention: once at start, then
// every r.Interval, until ctx ends. A failed run is logged and tried again
// at the next tick; it never stops the server.
func runRetention(ctx context.Context, log *zap.Logger, store gateway.Store, r config.Retention) error {
	return runRetentionWith(ctx, log, store, r, time.Now)
}

// runRetentionWith is runRetention on a given clock, for tests.
func runRetentionWith(ctx context.Context, log *zap.Logger, store gateway.Store, r config.Retention, now func() time.Time) error {
	every(ctx, r.Interval.D(), func() {
		n, err := purge(ctx, store, r, "gateway:retention", now().UTC())
		switch {
		case err != nil && ctx.Err() == nil:
			log.Warn("retention run failed", zap.Error(err))
		case n > 0:
			log.Info("retention run", zap.Int("purged", n), zap.Int("content_days", r.ContentDays))
		}
	})
	return nil
}

// every calls fn at once, then every d, until ctx ends: the server's
// scheduled work, which logs its failures and tries again at the next tick.
func every(ctx context.Context, d time.Duration, fn func()) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		fn()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// recordOutboxAction records an operator's retry or drop of a message in
// the chain of the message's institution. The operator's free-text reason
// stays on the message, not in the chain.
func recordOutboxAction(ctx context.Context, store gateway.Store, verb, messageID string, op gateway.OperatorAction) error {
	msg, err := store.Message(ctx, messageID)
	if err != nil {
		return err
	}
	action := gateway.ActionOutboxRetry
	if verb == "drop" {
		action = gateway.ActionOutboxDrop
	}
	_, err = gateway.AppendAction(ctx, store, gateway.ActionEntry{
		Action: action, By: op.By, Institution: msg.Institution, CaseID: msg.CaseID,
		ReferralID: msg.ReferralID, MessageID: msg.ID, Service: msg.ServiceID,
	}, op.At)
	return err
}
