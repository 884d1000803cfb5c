package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/student-mh-referrals/gateway/gateway"
	"github.com/student-mh-referrals/gateway/gateway/config"
	"github.com/student-mh-referrals/gateway/gateway/postgres"
	"github.com/student-mh-referrals/gateway/gateway/sqlite"
)

// openStore opens the configured store, creating the SQLite directory when
// needed; migrations run on open.
func openStore(ctx context.Context, c config.Store) (gateway.Store, error) {
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
		return db, nil
	case "postgres":
		db, err := postgres.Open(ctx, c.DSN)
		if err != nil {
			return nil, fmt.Errorf("store: %w", err)
		}
		return db, nil
	default:
		return nil, fmt.Errorf("store.driver %q: use sqlite or postgres", c.Driver)
	}
}

// configStore loads the configuration and opens its store: what the
// operators' commands (outbox, backup, audit, retention) need, without
// compiling the policies or building the API.
func configStore(ctx context.Context, path string) (*config.Config, gateway.Store, error) {
	cfg, err := config.Load(path)
	if err != nil {
		return nil, nil, err
	}
	store, err := openStore(ctx, cfg.Store)
	if err != nil {
		return nil, nil, err
	}
	return cfg, store, nil
}
