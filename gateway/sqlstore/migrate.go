package sqlstore

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Migration is one file of a schema's history.
type Migration struct {
	Version  int
	Name     string
	SQL      string
	Checksum string
}

// Migrations reads the *.sql files of fsys's root, each named by a positive
// number and '_' (0001_init.sql), in order of their number.
func Migrations(fsys fs.FS) ([]Migration, error) {
	names, err := fs.Glob(fsys, "*.sql")
	if err != nil {
		return nil, err
	}
	var out []Migration
	for _, n := range names {
		num, _, ok := strings.Cut(n, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 {
			return nil, fmt.Errorf("migration %s: name must start with a positive number and '_'", n)
		}
		b, err := fs.ReadFile(fsys, n)
		if err != nil {
			return nil, err
		}
		sum := sha256.Sum256(b)
		out = append(out, Migration{Version: v, Name: n, SQL: string(b), Checksum: hex.EncodeToString(sum[:])})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	for i := 1; i < len(out); i++ {
		if out[i].Version == out[i-1].Version {
			return nil, fmt.Errorf("migrations %s and %s share a number", out[i-1].Name, out[i].Name)
		}
	}
	return out, nil
}

// Migrate applies the migrations of fsys not yet recorded in
// schema_migrations, in one transaction (after the dialect's
// MigrationLock), so that processes starting together apply each once. A
// file is never edited once released: a change is a new file, and a
// recorded checksum that no longer matches, or a schema newer than fsys
// knows, stops the gateway rather than run on a schema it does not know.
func Migrate(ctx context.Context, db *sql.DB, d Dialect, fsys fs.FS) error {
	ms, err := Migrations(fsys)
	if err != nil {
		return d.MapErr(err)
	}
	t, err := db.BeginTx(ctx, nil)
	if err != nil {
		return d.MapErr(err)
	}
	defer t.Rollback()
	for _, q := range []string{d.MigrationLock, d.MigrationsTable} {
		if q == "" {
			continue
		}
		if _, err := t.ExecContext(ctx, q); err != nil {
			return d.MapErr(fmt.Errorf("schema_migrations: %w", err))
		}
	}
	applied := map[int]string{}
	rows, err := t.QueryContext(ctx, `SELECT version, checksum FROM schema_migrations`)
	if err != nil {
		return d.MapErr(err)
	}
	top := 0
	for rows.Next() {
		var v int
		var sum string
		if err := rows.Scan(&v, &sum); err != nil {
			rows.Close()
			return d.MapErr(err)
		}
		applied[v], top = sum, max(top, v)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return d.MapErr(err)
	}
	for _, m := range ms {
		if sum, ok := applied[m.Version]; ok {
			if sum != m.Checksum {
				return d.MapErr(fmt.Errorf("migration %s was changed after it was applied (checksum %s, now %s)", m.Name, sum, m.Checksum))
			}
			continue
		}
		// No arguments: every statement of the file runs (pgx sends it
		// with the simple protocol).
		if _, err := t.ExecContext(ctx, m.SQL); err != nil {
			return d.MapErr(fmt.Errorf("migration %s: %w", m.Name, err))
		}
		if _, err := t.ExecContext(ctx, d.rewrite(`INSERT INTO schema_migrations (version, name, checksum, applied_at) VALUES (?, ?, ?, ?)`),
			m.Version, m.Name, m.Checksum, d.Time(utc(time.Now()))); err != nil {
			return d.MapErr(err)
		}
	}
	if len(ms) > 0 && top > ms[len(ms)-1].Version {
		return d.MapErr(fmt.Errorf("the database schema (migration %d) is newer than this gateway knows (%d)", top, ms[len(ms)-1].Version))
	}
	return d.MapErr(t.Commit())
}
