package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/student-mh-referrals/gateway/gateway/prometheus"
	"github.com/student-mh-referrals/gateway/gateway/webhook"
)

// startWebhooks tells the store which clients have a webhook, so that
// every status change queues their calls, and runs the dispatcher in g when
// any is configured. A secret that cannot be read stops the start.
func startWebhooks(ctx context.Context, g *errgroup.Group, a *app, store keyedStore, metrics *prometheus.Metrics) error {
	store.SetWebhookClients(a.cfg.WebhookSubscribers())
	metrics.WatchWebhooks(store.WebhookCounts)
	eps, err := a.cfg.WebhookEndpoints()
	if err != nil || len(eps) == 0 {
		return err
	}
	endpoints := make([]webhook.Endpoint, len(eps))
	for i, e := range eps {
		endpoints[i] = webhook.Endpoint{ClientID: e.ClientID, URL: e.URL, Secret: e.Secret, MaxAttempts: e.MaxAttempts}
	}
	d, err := webhook.New(webhook.Options{
		Store: store, Endpoints: endpoints, Settings: webhook.DefaultSettings(),
		Logger: a.log.With(zap.String("component", "webhooks")), Metrics: metrics,
	})
	if err != nil {
		return err
	}
	g.Go(func() error { return d.Run(ctx) })
	return nil
}

// cmdWebhooks is the operators' view of the webhook dead letter: list the
// calls given up on, queue one again.
func cmdWebhooks(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	const use = "usage: gateway webhooks list [--institution UKPRN] [--limit N] [--json] | retry ID  [--config FILE]"
	if len(args) == 0 || (args[0] != "list" && args[0] != "retry") {
		fmt.Fprintln(stderr, use)
		return &exitStatus{code: exitFailure}
	}
	fs := newFlags("webhooks "+args[0], stderr)
	cfgPath := fs.String("config", "", "configuration `file`")
	inst := fs.String("institution", "", "list only this institution's calls (UKPRN)")
	limit := fs.Int("limit", 100, "list at most `N` calls")
	asJSON := fs.Bool("json", false, "print JSON")
	pos, err := parseFlags(fs, args[1:])
	if err != nil {
		return err
	}
	if (args[0] == "retry") != (len(pos) == 1) || len(pos) > 1 {
		fmt.Fprintln(stderr, use)
		return &exitStatus{code: exitFailure}
	}
	_, store, err := configStore(ctx, *cfgPath)
	if err != nil {
		return err
	}
	defer store.Close()
	if args[0] == "retry" {
		if err := store.RequeueWebhook(ctx, pos[0], time.Now().UTC()); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s: queued again\n", pos[0])
		return nil
	}
	calls, err := store.DeadWebhooks(ctx, *inst, *limit)
	if err != nil {
		return err
	}
	if *asJSON {
		return json.NewEncoder(stdout).Encode(map[string]any{"calls": calls})
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tCLIENT\tINSTITUTION\tREFERRAL\tEVENT\tSTATUS\tATTEMPTS\tLAST ERROR")
	for _, c := range calls {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\n", c.ID, c.ClientID, c.Institution, c.ReferralID, c.Event, c.Status, c.Attempts, c.LastErrorClass)
	}
	return tw.Flush()
}
