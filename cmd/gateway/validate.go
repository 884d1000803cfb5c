package main

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/student-mh-referrals/gateway/gateway"
	gwhttp "github.com/student-mh-referrals/gateway/gateway/http"
	"github.com/student-mh-referrals/gateway/mappings"
)

// cmdValidate checks FHIR resources (a message Bundle, or any resource the
// validator knows) and prints one OperationOutcome per file; it exits 2 when
// any file has an error.
func cmdValidate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("validate", stderr)
	defs := fs.String("definitions", "", "FHIR definitions: a directory (R4 core bundles, UK Core snapshots, package folders) or a rules file (default: the built-in rule set)")
	writeRules := fs.String("write-rules", "", "write the loaded definitions as a compact rules `file` (a start-up cache for conformance.definitions) and exit")
	files, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	v, err := newValidator(*defs)
	if err != nil {
		return err
	}
	if *writeRules != "" {
		f, err := os.Create(*writeRules)
		if err != nil {
			return err
		}
		if err := v.WriteRules(f); err != nil {
			f.Close()
			return err
		}
		return f.Close()
	}
	if len(files) == 0 {
		fmt.Fprintln(stderr, "usage: gateway validate [--definitions DIR|RULES] FILE...")
		return &exitStatus{code: exitFailure}
	}
	failed := 0
	for _, name := range files {
		res, err := v.ValidateFile(name)
		if err != nil {
			return err
		}
		issues := res.GatewayIssues()
		if !res.OK() {
			failed++
		}
		if len(issues) == 0 {
			issues = []gateway.Issue{{Severity: "information", Type: "informational", Message: "no problems found"}}
		}
		oo := mappings.OperationOutcome(&gateway.Error{Code: gateway.EINVALID, Issues: issues})
		b, err := gwhttp.MarshalDocument(map[string]any{"file": name, "valid": res.OK(), "operationOutcome": oo})
		if err != nil {
			return err
		}
		if _, err := stdout.Write(b); err != nil {
			return err
		}
	}
	if failed > 0 {
		return &exitStatus{code: exitInvalid, err: fmt.Errorf("%d of %d files have errors", failed, len(files))}
	}
	return nil
}
