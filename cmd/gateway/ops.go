package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/user"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/student-mh-referrals/gateway/gateway"
	"github.com/student-mh-referrals/gateway/gateway/config"
	"github.com/student-mh-referrals/gateway/gateway/sqlite"
)

// cmdOutbox is the operators' view of the delivery queue: list messages by
// state, retry a failed or dead-lettered one, drop one that must not go.
func cmdOutbox(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	const use = "usage: gateway outbox list [--state STATE] [--limit N] [--json] | retry ID --reason TEXT | drop ID --reason TEXT  [--config FILE]"
	if len(args) == 0 {
		fmt.Fprintln(stderr, use)
		return &exitStatus{code: exitFailure}
	}
	fs := newFlags("outbox "+args[0], stderr)
	cfgPath := fs.String("config", "", "configuration `file`")
	state := fs.String("state", "pending", "list messages in this `state` ("+strings.Join(messageStateNames(), ", ")+")")
	limit := fs.Int("limit", 100, "list at most `N` messages")
	asJSON := fs.Bool("json", false, "print JSON")
	reason := fs.String("reason", "", "why (recorded with the action)")
	by := fs.String("by", "", "who (default: the operating-system user)")
	pos, err := parseFlags(fs, args[1:])
	if err != nil {
		return err
	}
	if !slices.Contains(messageStates, gateway.MessageState(*state)) {
		return &exitStatus{code: exitFailure, err: fmt.Errorf("outbox %s --state %q: use one of %s", args[0], *state, strings.Join(messageStateNames(), ", "))}
	}
	_, store, err := configStore(ctx, *cfgPath)
	if err != nil {
		return err
	}
	defer store.Close()
	switch args[0] {
	case "list":
		msgs, err := store.Messages(ctx, gateway.MessageState(*state), *limit)
		if err != nil {
			return err
		}
		if *asJSON {
			return json.NewEncoder(stdout).Encode(map[string]any{"messages": msgs})
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tSTATE\tKIND\tSERVICE\tATTEMPTS\tDUE\tLAST ERROR")
		for _, m := range msgs {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\n", m.ID, m.State, m.Kind, m.ServiceID, m.Attempts, m.DueAt.Format(time.RFC3339), m.LastError)
		}
		return tw.Flush()
	case "retry", "drop":
		if len(pos) != 1 || *reason == "" {
			fmt.Fprintln(stderr, "gateway outbox "+args[0]+" needs a message id and --reason")
			return &exitStatus{code: exitFailure}
		}
		op := gateway.OperatorAction{By: operator(*by), Reason: *reason, At: time.Now().UTC()}
		if args[0] == "retry" {
			err = store.Retry(ctx, pos[0], op)
		} else {
			err = store.Drop(ctx, pos[0], op)
		}
		if err != nil {
			return err
		}
		if err := recordOutboxAction(ctx, store, args[0], pos[0], op); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s: %s by %s\n", pos[0], args[0], op.By)
		return nil
	default:
		fmt.Fprintln(stderr, use)
		return &exitStatus{code: exitFailure}
	}
}

// messageStates are the states `outbox list --state` takes.
var messageStates = []gateway.MessageState{gateway.MessagePending, gateway.MessageLeased, gateway.MessageDelivered,
	gateway.MessageFailed, gateway.MessageDead, gateway.MessageDropped}

func messageStateNames() []string {
	out := make([]string, len(messageStates))
	for i, s := range messageStates {
		out[i] = string(s)
	}
	return out
}

// operator names who acts: the flag, else the operating-system user.
func operator(by string) string {
	if by != "" {
		return by
	}
	if u, err := user.Current(); err == nil {
		return "os:" + u.Username
	}
	return "unknown"
}

// cmdBackup takes a consistent online copy of the SQLite store.
func cmdBackup(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("backup", stderr)
	cfgPath := fs.String("config", "", "configuration `file`")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		fmt.Fprintln(stderr, "usage: gateway backup [--config FILE] OUTPUT.db")
		return &exitStatus{code: exitFailure}
	}
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		return err
	}
	if cfg.Store.Driver != "sqlite" {
		return fmt.Errorf("backup copies the SQLite store; back up PostgreSQL with pg_dump or its own tooling")
	}
	if _, err := os.Stat(pos[0]); err == nil {
		return fmt.Errorf("%s exists; give a new file name", pos[0])
	}
	store, err := openStore(ctx, cfg.Store)
	if err != nil {
		return err
	}
	defer store.Close()
	if err := store.(*sqlite.DB).Backup(ctx, pos[0]); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "backed up %s to %s\n", cfg.Store.Path, pos[0])
	return nil
}
