package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/student-mh-referrals/gateway/gateway"
	gwhttp "github.com/student-mh-referrals/gateway/gateway/http"
)

// cmdEvaluate decides on one case record offline and prints the evaluation
// document; nothing is stored, sent or recorded.
func cmdEvaluate(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := newFlags("evaluate", stderr)
	cfgPath := fs.String("config", "", "configuration `file` (default: the embedded gateway.example.yaml)")
	atFlag := fs.String("at", "", "decision time as an RFC 3339 instant (default: now)")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		fmt.Fprintln(stderr, "usage: gateway evaluate [--config FILE] [--at RFC3339] FILE|-")
		return &exitStatus{code: exitFailure}
	}
	at := time.Now()
	if *atFlag != "" {
		at, err = time.Parse(time.RFC3339, *atFlag)
		if err != nil {
			return &exitStatus{code: exitFailure, err: fmt.Errorf("--at %q: use an RFC 3339 instant such as 2026-11-23T12:00:00Z", *atFlag)}
		}
	}
	a, err := newApp(ctx, *cfgPath, stderr, "warn")
	if err != nil {
		return err
	}
	body, err := readInput(pos[0], stdin, a.cfg.Limits.MaxBodyBytes)
	if err != nil {
		return err
	}
	ev, err := a.evaluator.Evaluate(ctx, body, at)
	if err != nil {
		return err
	}
	doc, err := gwhttp.MarshalDocument(gwhttp.Document(ev))
	if err != nil {
		return err
	}
	if _, err := stdout.Write(doc); err != nil {
		return err
	}
	switch ev.Outcome {
	case gateway.OutcomeAllow:
		return nil
	case gateway.OutcomeDeny:
		return &exitStatus{code: exitDenied}
	default:
		return &exitStatus{code: exitInvalid}
	}
}

// readInput reads a file, or standard input for "-", refusing anything over
// the configured body limit as the API would.
func readInput(name string, stdin io.Reader, limit int64) ([]byte, error) {
	r := stdin
	if name != "-" {
		f, err := os.Open(name)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r = f
	}
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, &exitStatus{code: exitInvalid, err: fmt.Errorf("%s: larger than the limit of %d bytes (limits.maxBodyBytes)", name, limit)}
	}
	return b, nil
}
