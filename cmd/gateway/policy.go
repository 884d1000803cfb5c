package main

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"

	gwhttp "github.com/student-mh-referrals/gateway/gateway/http"
)

// cmdPolicy lists the rules of the policy set in force, from their metadata.
func cmdPolicy(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "rules" {
		fmt.Fprintln(stderr, "usage: gateway policy rules [--config FILE] [--json]")
		return &exitStatus{code: exitFailure}
	}
	fs := newFlags("policy rules", stderr)
	cfgPath := fs.String("config", "", "configuration `file`")
	asJSON := fs.Bool("json", false, "print JSON instead of a table")
	if _, err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	a, err := newApp(ctx, *cfgPath, stderr, "warn")
	if err != nil {
		return err
	}
	rules := a.rules()
	if *asJSON {
		b, err := gwhttp.MarshalDocument(map[string]any{"policyRevision": a.decider.Revision(), "rules": rules})
		if err != nil {
			return err
		}
		_, err = stdout.Write(b)
		return err
	}
	fmt.Fprintf(stdout, "policy revision %s\n\n", a.decider.Revision())
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tTHEME\tTITLE\tSOURCE")
	for _, r := range rules {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.ID, r.Theme, r.Title, r.Source)
	}
	return tw.Flush()
}
