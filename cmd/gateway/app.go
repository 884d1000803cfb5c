package main

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"time"

	"go.uber.org/zap"

	"github.com/student-mh-referrals/gateway/fhirvalidator"
	"github.com/student-mh-referrals/gateway/gateway"
	"github.com/student-mh-referrals/gateway/gateway/config"
	"github.com/student-mh-referrals/gateway/gateway/logging"
	"github.com/student-mh-referrals/gateway/gateway/opa"
	"github.com/student-mh-referrals/gateway/mappings"
	"github.com/student-mh-referrals/gateway/policies"
)

// app is the wired gateway: configuration, logger, policies and the
// evaluator that the commands share.
type app struct {
	// audit records operators' actions once serve has a store.
	audit     *gateway.Audit
	cfg       *config.Config
	log       *zap.Logger
	decider   *opa.Decider
	evaluator *gateway.Evaluator
}

// newApp loads the configuration (the embedded example when path is empty)
// and wires the gateway. logOut receives the JSON log; logLevel overrides the
// configured level when set.
func newApp(ctx context.Context, path string, logOut io.Writer, logLevel string) (*app, error) {
	cfg, err := config.Load(path)
	if err != nil {
		return nil, err
	}
	if logLevel == "" {
		logLevel = cfg.Log.Level
	}
	log, err := logging.New(logOut, logLevel)
	if err != nil {
		return nil, err
	}
	reg, err := cfg.Registry()
	if err != nil {
		return nil, err
	}
	var fsys fs.FS = policies.FS
	opts := []opa.Option{opa.WithLogger(log.With(zap.String("component", "policies")))}
	if cfg.Policies.Dir != "" {
		// An operator's directory is compiled strictly and must pass its
		// own tests, at start and at every reload.
		fsys = os.DirFS(cfg.Policies.Dir)
		opts = append(opts, opa.WithStrict(), opa.WithTests())
	}
	a := &app{cfg: cfg, log: log}
	opts = append(opts, opa.WithOnReload(a.policyReloaded))
	dec, err := opa.New(ctx, fsys, opts...)
	if err != nil {
		return nil, fmt.Errorf("load policies: %w", err)
	}
	src := cfg.Source
	if src.Version == "" {
		src.Version = version
	}
	val, err := newValidator(cfg.Conformance.Definitions)
	if err != nil {
		return nil, err
	}
	a.decider = dec
	a.evaluator = &gateway.Evaluator{
		Registry:  reg,
		Decider:   dec,
		Mapper:    mappings.New(),
		Source:    src,
		Validator: val,
	}
	return a, nil
}

// policyReloaded records every policy reload attempt of `gateway serve`
// in the gateway's decision chain, so an IG lead can see which rules were in
// force when; a refused set is recorded too.
func (a *app) policyReloaded(from, to string, err error) {
	if a.audit == nil {
		return
	}
	if err != nil {
		a.log.Warn("policy reload refused; the policies in force keep serving", zap.String("policy_revision", from), zap.String("refused_revision", to))
		return
	}
	if rerr := a.audit.PolicyReloaded(context.Background(), "policies.dir watcher", from, to, time.Now().UTC()); rerr != nil {
		a.log.Error("policy reload not recorded", zap.Error(rerr))
	}
}

// rules lists the policy rules in force, from their metadata.
func (a *app) rules() []gateway.PolicyRule { return a.decider.Rules() }

// newValidator is the output gate's validator: the built-in rule set, or the
// configured definitions (a directory or a rules file).
func newValidator(definitions string) (*fhirvalidator.Validator, error) {
	if definitions == "" {
		return fhirvalidator.Builtin(), nil
	}
	v, err := fhirvalidator.Open(definitions)
	if err != nil {
		return nil, fmt.Errorf("conformance.definitions: %w", err)
	}
	return v, nil
}
