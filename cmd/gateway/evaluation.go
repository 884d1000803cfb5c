package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/student-mh-referrals/gateway/gateway"
	"github.com/student-mh-referrals/gateway/gateway/config"
	gwhttp "github.com/student-mh-referrals/gateway/gateway/http"
)

// evaluations are the evaluation figures over store for the configured
// partnerships and registry; nil when the store cannot give the facts.
func evaluations(cfg *config.Config, store gateway.Store) *gateway.Evaluations {
	src, ok := store.(gateway.EvaluationSource)
	if !ok {
		return nil
	}
	services := make([]string, len(cfg.Services))
	for i, s := range cfg.Services {
		services[i] = s.ID
	}
	return &gateway.Evaluations{Source: src, Partnerships: cfg.EvaluationPartnerships(), Services: services}
}

// cmdEvaluation is `gateway evaluation report`: the figures GET
// /v1/evaluation gives, for an institution (as its IG auditor sees them)
// or a partnership (as its evaluator does), as JSON or CSV.
func cmdEvaluation(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	const use = "usage: gateway evaluation report [--config FILE] (--institution UKPRN | --partnership ID)\n" +
		"         [--from DATE] [--to DATE] [--group-by month|quarter|academic-year|year] [--service ID] [--format json|csv]"
	if len(args) == 0 || args[0] != "report" {
		fmt.Fprintln(stderr, use)
		return &exitStatus{code: exitFailure}
	}
	fs := newFlags("evaluation report", stderr)
	cfgPath := fs.String("config", "", "configuration `file`")
	inst := fs.String("institution", "", "the figures of this institution (`UKPRN`), as its IG auditor sees them")
	partnership := fs.String("partnership", "", "the figures of this partnership (`id`), as its evaluator sees them")
	from := fs.String("from", "", "referrals from this `date` (inclusive; default 12 months before --to)")
	to := fs.String("to", "", "referrals before this `date` (exclusive; default the start of next month)")
	groupBy := fs.String("group-by", gateway.GroupMonth, "period: month, quarter, academic-year or year")
	service := fs.String("service", "", "one service `id` only")
	format := fs.String("format", "json", "json or csv")
	cfg, store, err := flagsAndStore(ctx, fs, args[1:], cfgPath, use+"\n", stderr)
	if err != nil {
		return err
	}
	defer store.Close()
	var client gateway.Client
	switch {
	case (*inst == "") == (*partnership == ""):
		return &exitStatus{code: exitFailure, err: fmt.Errorf("evaluation report: give --institution or --partnership")}
	case *inst != "":
		client = gateway.Client{ID: "cli", Institution: *inst, Roles: []string{gateway.RoleAuditor}}
	default:
		client = gateway.Client{ID: "cli", Partnership: *partnership, Roles: []string{gateway.RolePartnershipEvaluator}}
	}
	if *format != "json" && *format != "csv" {
		return &exitStatus{code: exitFailure, err: fmt.Errorf("evaluation report --format %q: use json or csv", *format)}
	}
	q, err := gateway.ParseEvaluationQuery(*from, *to, *groupBy, *service, time.Now())
	if err != nil {
		return err
	}
	ev := evaluations(cfg, store)
	if ev == nil {
		return fmt.Errorf("evaluation report: the store cannot give the evaluation facts")
	}
	rep, err := ev.Report(ctx, &client, q)
	if err != nil {
		return err
	}
	if *format == "csv" {
		return rep.WriteCSV(stdout)
	}
	b, err := gwhttp.MarshalDocument(rep)
	if err != nil {
		return err
	}
	_, err = stdout.Write(b)
	return err
}
