package main

import (
	"context"
	"flag"
	"fmt"
	"io"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

const usage = `gateway: carries student mental-health referrals from universities to NHS services.

Usage:
  gateway serve    [--config FILE]                     run the API (and the sandbox receiver with --sandbox)
  gateway evaluate [--config FILE] [--at RFC3339] FILE|-
                                                       decide on a case record and print the message
  gateway policy rules [--config FILE] [--json]        list the sharing rules in force
  gateway policy replay --policies DIR [--config FILE] [--from T] [--to T] [--institution UKPRN]
                       [--include-dry-runs] [--json]   decide the retained decisions again under a candidate
                                                       set and report what changes; exit 2 when it is refused
  gateway validate [--definitions DIR|RULES] FILE...   check FHIR resources; one OperationOutcome per file
  gateway outbox list [--state S] | retry ID --reason T | drop ID --reason T
                                                       inspect and steer the delivery queue
  gateway webhooks list [--institution UKPRN] [--json] | retry ID
                                                       the webhook calls given up on (dead letter); queue one again
  gateway backup [--config FILE] OUTPUT.db             consistent online copy of the SQLite store
  gateway audit verify [--config FILE] [--institution UKPRN] [--checkpoints DIR]
                                                       check the decision chains against the signed checkpoints;
                                                       exit 4 when one is broken
  gateway audit checkpoint [--config FILE]             write a signed checkpoint of every chain head now
  gateway retention run [--config FILE]                delete clinical content past retention.contentDays
  gateway sandbox-receiver [--config FILE]             run the sandbox NHS receiver alone
  gateway conformance run [--target URL --token [UKPRN=]T] [--junit F] [--testreport F]
                                                       run the conformance scenarios against a gateway
  gateway conformance receiver [--endpoint URL] [--token T] [--service ID]
                                                       check an NHS receiver's $process-message
  gateway evaluation report [--config FILE] (--institution UKPRN | --partnership ID) [--from D] [--to D]
                    [--group-by P] [--service ID] [--format json|csv]
                                                       the evaluation figures (aggregates, suppressed)
  gateway demo seed [--config FILE]                    fill a demo store with a year of referrals and their journeys (demo only)
  gateway version

Without --config the embedded gateway.example.yaml is used.
evaluate exits 0 when the share is allowed, 3 when denied, 2 when the record is
invalid, 1 on a usage or internal error.
`

// run is the whole program behind main.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return &exitStatus{code: exitFailure}
	}
	switch args[0] {
	case "serve":
		return cmdServe(ctx, args[1:], stdout, stderr)
	case "evaluate":
		return cmdEvaluate(ctx, args[1:], stdin, stdout, stderr)
	case "policy":
		return cmdPolicy(ctx, args[1:], stdout, stderr)
	case "validate":
		return cmdValidate(ctx, args[1:], stdout, stderr)
	case "outbox":
		return cmdOutbox(ctx, args[1:], stdout, stderr)
	case "webhooks":
		return cmdWebhooks(ctx, args[1:], stdout, stderr)
	case "backup":
		return cmdBackup(ctx, args[1:], stdout, stderr)
	case "audit":
		return cmdAudit(ctx, args[1:], stdout, stderr)
	case "retention":
		return cmdRetention(ctx, args[1:], stdout, stderr)
	case "sandbox-receiver":
		return cmdSandbox(ctx, args[1:], stdout, stderr)
	case "conformance":
		return cmdConformance(ctx, args[1:], stdout, stderr)
	case "evaluation":
		return cmdEvaluation(ctx, args[1:], stdout, stderr)
	case "demo":
		return cmdDemo(ctx, args[1:], stdout, stderr)
	case "version", "--version":
		fmt.Fprintln(stdout, "gateway", version)
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		fmt.Fprintf(stderr, "gateway: unknown command %q\n\n%s", args[0], usage)
		return &exitStatus{code: exitFailure}
	}
}

// newFlags returns a flag set that reports errors as usage errors, not exits.
func newFlags(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("gateway "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

// parseNoArgs is parseFlags for a command that takes flags only: a
// positional argument prints usage and is a usage error.
func parseNoArgs(fs *flag.FlagSet, args []string, usage string, stderr io.Writer) error {
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		fmt.Fprint(stderr, usage)
		return &exitStatus{code: exitFailure}
	}
	return nil
}

// parseFlags parses args, allowing flags after positional arguments
// (`gateway evaluate case.json --at …`), and maps flag errors to usage
// failures.
func parseFlags(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, &exitStatus{code: exitFailure}
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}
