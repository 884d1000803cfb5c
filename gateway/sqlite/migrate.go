package sqlite

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/student-mh-referrals/gateway/gateway"
)

// migrations are the schema's history, applied in order of their number and
// recorded in schema_migrations. A file is never edited once released: a
// change is a new file, and a recorded checksum that no longer matches stops
// the gateway rather than run on a schema it does not know.
//
//go:embed migrations/*.sql
var migrations embed.FS

type migration struct {
	version  int
	name     string
	sql      string
	checksum string
}

func loadMigrations() ([]migration, error) {
	names, err := fs.Glob(migrations, "migrations/*.sql")
	if err != nil {
		return nil, err
	}
	var out []migration
	for _, n := range names {
		base := strings.TrimPrefix(n, "migrations/")
		num, _, ok := strings.Cut(base, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 {
			return nil, fmt.Errorf("migration %s: name must start with a positive number and '_'", base)
		}
		b, err := migrations.ReadFile(n)
		if err != nil {
			return nil, err
		}
		sum := sha256.Sum256(b)
		out = append(out, migration{version: v, name: base, sql: string(b), checksum: hex.EncodeToString(sum[:])})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].version < out[j].version })
	for i := 1; i < len(out); i++ {
		if out[i].version == out[i-1].version {
			return nil, fmt.Errorf("migrations %s and %s share a number", out[i-1].name, out[i].name)
		}
	}
	return out, nil
}

// migrate applies the migrations not yet recorded, each in its own
// transaction with its record. The write transaction (BEGIN IMMEDIATE) keeps
// two processes opening one file from applying a migration twice.
func migrate(ctx context.Context, db *sql.DB) error {
	ms, err := loadMigrations()
	if err != nil {
		return gateway.Internal(err)
	}
	if _, err := db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER PRIMARY KEY,
		name       TEXT NOT NULL,
		checksum   TEXT NOT NULL,
		applied_at INTEGER NOT NULL)`); err != nil {
		return gateway.Internal(fmt.Errorf("create schema_migrations: %w", err))
	}
	for _, m := range ms {
		if err := applyMigration(ctx, db, m); err != nil {
			return err
		}
	}
	var top int
	if err := db.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&top); err != nil {
		return gateway.Internal(err)
	}
	if len(ms) > 0 && top > ms[len(ms)-1].version {
		return gateway.Internal(fmt.Errorf("the database schema (migration %d) is newer than this gateway knows (%d)", top, ms[len(ms)-1].version))
	}
	return nil
}

func applyMigration(ctx context.Context, db *sql.DB, m migration) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return gateway.Internal(err)
	}
	defer tx.Rollback()
	var sum string
	err = tx.QueryRowContext(ctx, `SELECT checksum FROM schema_migrations WHERE version = ?`, m.version).Scan(&sum)
	switch {
	case err == nil:
		if sum != m.checksum {
			return gateway.Internal(fmt.Errorf("migration %s was changed after it was applied (checksum %s, now %s)", m.name, sum, m.checksum))
		}
		return nil
	case err != sql.ErrNoRows:
		return gateway.Internal(err)
	}
	if _, err := tx.ExecContext(ctx, m.sql); err != nil {
		return gateway.Internal(fmt.Errorf("migration %s: %w", m.name, err))
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, name, checksum, applied_at) VALUES (?, ?, ?, ?)`,
		m.version, m.name, m.checksum, time.Now().UnixMicro()); err != nil {
		return gateway.Internal(err)
	}
	if err := tx.Commit(); err != nil {
		return gateway.Internal(err)
	}
	return nil
}
