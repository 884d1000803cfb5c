package main

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/student-mh-referrals/gateway/gateway"
	gwhttp "github.com/student-mh-referrals/gateway/gateway/http"
)

const policyUsage = `usage: gateway policy rules [--config FILE] [--json]
       gateway policy replay --policies DIR [--config FILE] [--from RFC3339] [--to RFC3339]
                             [--institution UKPRN] [--include-dry-runs] [--json] [--by NAME]
`

// cmdPolicy lists the rules of the policy set in force, from their
// metadata, or replays a candidate set against the retained decisions.
func cmdPolicy(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "replay" {
		return cmdReplay(ctx, args[1:], stdout, stderr)
	}
	if len(args) == 0 || args[0] != "rules" {
		fmt.Fprint(stderr, policyUsage)
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

// cmdReplay is `gateway policy replay`: it decides every retained decision
// input under the set in force and under the candidate set in --policies,
// and reports what would change. It exits 2 when the candidate is refused
// (it does not compile, or fails its own tests), 1 on any other error.
func cmdReplay(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("policy replay", stderr)
	cfgPath := fs.String("config", "", "configuration `file`")
	dir := fs.String("policies", "", "the candidate policy `directory`")
	from := fs.String("from", "", "replay decisions recorded from this `time` (RFC 3339)")
	to := fs.String("to", "", "replay decisions recorded before this `time` (RFC 3339)")
	inst := fs.String("institution", "", "replay only this institution's decisions (`UKPRN`)")
	dryRuns := fs.Bool("include-dry-runs", false, "replay dry runs ($evaluate) too")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	by := fs.String("by", "", "who (default: the operating-system user)")
	if err := parseNoArgs(fs, args, policyUsage, stderr); err != nil {
		return err
	}
	if *dir == "" {
		fmt.Fprint(stderr, policyUsage)
		return &exitStatus{code: exitFailure}
	}
	q := gateway.ReplayQuery{ReplayFilter: gateway.ReplayFilter{Institution: *inst}, IncludeDryRuns: *dryRuns}
	for _, f := range []struct {
		name, v string
		t       *time.Time
	}{{"from", *from, &q.From}, {"to", *to, &q.To}} {
		if f.v == "" {
			continue
		}
		t, err := time.Parse(time.RFC3339, f.v)
		if err != nil {
			return fmt.Errorf("--%s: %q is not an RFC 3339 time", f.name, f.v)
		}
		*f.t = t
	}
	if !q.To.IsZero() && !q.From.Before(q.To) {
		return fmt.Errorf("--to must be after --from")
	}
	tuneGC(os.Getenv) // a replay allocates as serving does: hundreds of KB per decision that die at once
	a, err := newApp(ctx, *cfgPath, stderr, "warn")
	if err != nil {
		return err
	}
	keys, err := a.cfg.ChainKeys()
	if err != nil {
		return err
	}
	store, err := openStoreWith(ctx, a.cfg.Store, keys)
	if err != nil {
		return err
	}
	defer store.Close()
	rep, err := a.replayer(store).ReplaySet(ctx, os.DirFS(*dir), q, operator(*by))
	if err != nil {
		if gateway.ErrorCode(err) == gateway.EINVALID {
			return &exitStatus{code: exitInvalid, err: fmt.Errorf("the candidate policy set is refused: %s", reasonOf(err))}
		}
		return err
	}
	if *asJSON {
		b, err := gwhttp.MarshalDocument(rep)
		if err != nil {
			return err
		}
		_, err = stdout.Write(b)
		return err
	}
	return printReplay(stdout, rep)
}

// replayer is the policy replay over store, comparing candidates with the
// set in force.
func (a *app) replayer(store gateway.Store) *gateway.Replayer {
	r := &gateway.Replayer{Log: store, CandidatesDir: a.cfg.Policies.CandidatesDir,
		Compare: func(ctx context.Context, fsys fs.FS) (gateway.PolicyComparison, error) {
			return a.decider.Compare(ctx, fsys)
		}}
	if src, ok := store.(gateway.ReplaySource); ok {
		r.Source = src
	}
	return r
}

// reasonOf is a refusal's message and cause (compiler messages, failing
// test names): the operator needs both.
func reasonOf(err error) string {
	ge := gateway.AsError(err)
	if ge.Err != nil {
		return ge.Message + ": " + ge.Err.Error()
	}
	return ge.Message
}

// printReplay writes the report as text: the counts, per rule and route,
// then each changed decision with the in-force, candidate and historical
// outcomes.
func printReplay(w io.Writer, rep *gateway.ReplayReport) error {
	fmt.Fprintf(w, "in force  %s\ncandidate %s (%d tests pass)\n\n", rep.InForceRevision, rep.CandidateRevision, rep.CandidateTests)
	fmt.Fprintf(w, "replayed %d decisions; %d outside retention could not be replayed\n", rep.Replayed, rep.OutsideRetention)
	fmt.Fprintf(w, "allow to deny %d, deny to allow %d, data categories changed %d\n", rep.AllowToDeny, rep.DenyToAllow, rep.CategoriesChanged)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, by := range []struct {
		title string
		m     map[string]gateway.ReplayChanges
	}{{"RULE", rep.ByRule}, {"ROUTE", rep.ByRoute}} {
		if len(by.m) == 0 {
			continue
		}
		fmt.Fprintf(tw, "\n%s\tALLOW→DENY\tDENY→ALLOW\tCATEGORIES\n", by.title)
		for _, k := range sortedKeys(by.m) {
			c := by.m[k]
			fmt.Fprintf(tw, "%s\t%d\t%d\t%d\n", k, c.AllowToDeny, c.DenyToAllow, c.CategoriesChanged)
		}
	}
	if len(rep.Changed) > 0 {
		fmt.Fprint(tw, "\nDECISION\tDECIDED\tROUTE\tRULES\tIN FORCE\tCANDIDATE\tAT THE TIME\n")
		for _, c := range rep.Changed {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", c.DecisionID, c.DecidedAt.Format(time.RFC3339), c.Route,
				strings.Join(c.Rules, ","), outcomeText(c.InForce), outcomeText(c.Candidate), outcomeText(c.Historical))
		}
	}
	return tw.Flush()
}

func outcomeText(o gateway.ReplayOutcome) string {
	if o.Outcome == gateway.OutcomeDeny {
		return "deny " + strings.Join(o.DeniedBy, ",")
	}
	return "allow " + strings.Join(o.DataCategories, ",")
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
