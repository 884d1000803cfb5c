package main

import (
	"context"
	"crypto/ed25519"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"go.uber.org/zap"

	"github.com/student-mh-referrals/gateway/gateway"
	"github.com/student-mh-referrals/gateway/gateway/config"
	"github.com/student-mh-referrals/gateway/gateway/postgres"
	"github.com/student-mh-referrals/gateway/gateway/sqlite"
)

// openStore opens the configured store with plain SHA-256 decision chains,
// creating the SQLite directory when needed; migrations run on open.
func openStore(ctx context.Context, c config.Store) (gateway.Store, error) {
	s, err := openStoreWith(ctx, c, nil)
	if err != nil {
		return nil, err
	}
	return s, nil
}

// keyedStore is a store whose decision chains are keyed (gateway/sqlstore).
type keyedStore interface {
	gateway.Store
	gateway.Webhooks
	SetChainKeys(gateway.ChainKeys)
	SetWebhookClients(map[string][]gateway.WebhookSubscriber)
	StartKeyedSegments(ctx context.Context, at time.Time) ([]string, error)
}

// openStoreWith opens the store, writing and verifying decision records
// with the chain keyring keys.
func openStoreWith(ctx context.Context, c config.Store, keys gateway.ChainKeys) (keyedStore, error) {
	var s keyedStore
	switch c.Driver {
	case "sqlite":
		if dir := filepath.Dir(c.Path); dir != "" {
			if err := os.MkdirAll(dir, 0o700); err != nil {
				return nil, fmt.Errorf("store: %w", err)
			}
		}
		db, err := sqlite.Open(ctx, c.Path)
		if err != nil {
			return nil, fmt.Errorf("store: %w", err)
		}
		s = db
	case "postgres":
		db, err := postgres.Open(ctx, c.DSN)
		if err != nil {
			return nil, fmt.Errorf("store: %w", err)
		}
		s = db
	default:
		return nil, fmt.Errorf("store.driver %q: use sqlite or postgres", c.Driver)
	}
	s.SetChainKeys(keys)
	return s, nil
}

// flagsAndStore parses the flags of a command that takes no arguments, then
// opens the store of the configuration that its --config flag (path) names.
func flagsAndStore(ctx context.Context, fs *flag.FlagSet, args []string, path *string, usage string, stderr io.Writer) (*config.Config, keyedStore, error) {
	if err := parseNoArgs(fs, args, usage, stderr); err != nil {
		return nil, nil, err
	}
	return configStore(ctx, *path)
}

// configStore loads the configuration and opens its store with the chain
// keys: what the operators' commands (outbox, backup, audit, retention)
// need, without compiling the policies or building the API.
func configStore(ctx context.Context, path string) (*config.Config, keyedStore, error) {
	cfg, err := config.Load(path)
	if err != nil {
		return nil, nil, err
	}
	keys, err := cfg.ChainKeys()
	if err != nil {
		return nil, nil, err
	}
	store, err := openStoreWith(ctx, cfg.Store, keys)
	if err != nil {
		return nil, nil, err
	}
	// An operator's retry or drop changes a referral's status: its
	// webhook calls are queued as the server would queue them.
	store.SetWebhookClients(cfg.WebhookSubscribers())
	return cfg, store, nil
}

// openKeyed opens the configured store with the chain keys, and returns
// it with the pseudonym key: what serving and seeding decide with.
func (a *app) openKeyed(ctx context.Context) ([]byte, keyedStore, error) {
	key, err := a.cfg.PseudonymKey()
	if err != nil {
		return nil, nil, err
	}
	chainKeys, err := a.cfg.ChainKeys()
	if err != nil {
		return nil, nil, err
	}
	store, err := openStoreWith(ctx, a.cfg.Store, chainKeys)
	return key, store, err
}

// checkpointDir is the configured checkpoint directory with the public key
// of the current signing key as its trust anchor; nil when checkpoints are
// off (a demo configuration on PostgreSQL without audit.checkpointDir).
func checkpointDir(cfg *config.Config) (*gateway.CheckpointDir, error) {
	if cfg.Audit.CheckpointDir == "" {
		return nil, nil
	}
	keys, err := cfg.SigningKeys()
	if err != nil {
		return nil, err
	}
	return &gateway.CheckpointDir{Dir: cfg.Audit.CheckpointDir, Trusted: keys[0].Public().(ed25519.PublicKey)}, nil
}

// checkpoint starts the keyed segment of every chain not yet under the
// current chain key, then writes the next signed checkpoint, so that the
// checkpoint covers the segment's start.
func checkpoint(ctx context.Context, store keyedStore, dir string, keys []ed25519.PrivateKey, now time.Time) (*gateway.Checkpoint, error) {
	if _, err := store.StartKeyedSegments(ctx, now); err != nil {
		return nil, err
	}
	return gateway.WriteCheckpoint(ctx, store, dir, keys, now)
}

// runCheckpoints is the server's scheduled checkpoint: once at start, then
// every interval, until ctx ends. A failure is logged as an error.
func runCheckpoints(ctx context.Context, log *zap.Logger, store keyedStore, dir string, keys []ed25519.PrivateKey, interval time.Duration) error {
	every(ctx, interval, func() {
		if cp, err := checkpoint(ctx, store, dir, keys, time.Now()); err != nil && ctx.Err() == nil {
			log.Error("checkpoint not written", zap.Error(err))
		} else if err == nil {
			log.Info("checkpoint", zap.Int64("number", cp.Number), zap.Int("chains", len(cp.Chains)))
		}
	})
	return nil
}
