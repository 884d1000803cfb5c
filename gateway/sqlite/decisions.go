package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/student-mh-referrals/gateway/gateway"
)

// appendDecision links rec to its institution's chain head and moves the
// head. It runs inside the single writer's transaction, so two appends for
// one institution cannot both see the same head.
func appendDecision(t wtx, rec gateway.DecisionRecord) (gateway.DecisionRecord, error) {
	var seq int64
	var head string
	err := t.queryRow(sqlChainHead, rec.Institution).Scan(&seq, &head)
	if errors.Is(err, sql.ErrNoRows) {
		seq, head = 0, gateway.GenesisHash
	} else if err != nil {
		return rec, err
	}
	rec.Seq, rec.PrevHash = seq+1, head
	rec.At = rec.At.UTC().Truncate(time.Microsecond)
	rec.Hash = gateway.DecisionHash(rec)
	if _, err := t.exec(sqlInsertDecision,
		rec.Institution, rec.Seq, rec.DecisionID, toMicros(rec.At), string(rec.Body), rec.PrevHash, rec.Hash); err != nil {
		return rec, err
	}
	_, err = t.exec(sqlMoveChainHead,
		rec.Institution, rec.Seq, rec.Hash)
	return rec, err
}

// AppendDecision implements gateway.DecisionLog.
func (d *DB) AppendDecision(ctx context.Context, rec gateway.DecisionRecord) (gateway.DecisionRecord, error) {
	if err := rec.Validate(); err != nil {
		return gateway.DecisionRecord{}, err
	}
	var out gateway.DecisionRecord
	err := d.write(ctx, func(t wtx) error {
		var err error
		out, err = appendDecision(t, rec)
		return err
	})
	if err != nil {
		return gateway.DecisionRecord{}, err
	}
	return out, nil
}

const decisionCols = `institution, seq, decision_id, at, body, prev_hash, hash`

func scanDecision(s scanner) (gateway.DecisionRecord, error) {
	var r gateway.DecisionRecord
	var at int64
	var body string
	if err := s.Scan(&r.Institution, &r.Seq, &r.DecisionID, &at, &body, &r.PrevHash, &r.Hash); err != nil {
		return r, err
	}
	r.At, r.Body = fromMicros(at), []byte(body)
	return r, nil
}

// Decisions implements gateway.DecisionLog.
func (d *DB) Decisions(ctx context.Context, institution string, afterSeq int64, limit int) ([]gateway.DecisionRecord, error) {
	if limit <= 0 {
		limit = 100
	}
	rows, err := d.r.QueryContext(ctx, `SELECT `+decisionCols+` FROM decision_records
		WHERE institution = ? AND seq > ? ORDER BY seq LIMIT ?`, institution, afterSeq, limit)
	if err != nil {
		return nil, mapErr(err)
	}
	defer rows.Close()
	var out []gateway.DecisionRecord
	for rows.Next() {
		r, err := scanDecision(rows)
		if err != nil {
			return nil, mapErr(err)
		}
		out = append(out, r)
	}
	return out, mapErr(rows.Err())
}

// Verify implements gateway.DecisionLog. It reads the head and the records
// in one snapshot, so appends during the walk do not look like tampering.
func (d *DB) Verify(ctx context.Context, institution string) (gateway.ChainVerification, error) {
	tx, err := d.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return gateway.ChainVerification{}, mapErr(err)
	}
	defer tx.Rollback()
	v := gateway.ChainVerification{Institution: institution}
	err = tx.QueryRowContext(ctx, `SELECT seq, hash FROM decision_chains WHERE institution = ?`, institution).
		Scan(&v.HeadSeq, &v.HeadHash)
	if errors.Is(err, sql.ErrNoRows) {
		v.HeadHash = gateway.GenesisHash
	} else if err != nil {
		return v, mapErr(err)
	}
	rows, err := tx.QueryContext(ctx, `SELECT `+decisionCols+` FROM decision_records WHERE institution = ? ORDER BY seq`, institution)
	if err != nil {
		return v, mapErr(err)
	}
	w := gateway.NewChainWalker(&v)
	var bad *gateway.DecisionRecord
	for rows.Next() {
		r, err := scanDecision(rows)
		if err != nil {
			rows.Close()
			return v, mapErr(err)
		}
		if !w.Next(r) {
			bad = &r
			break
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return v, mapErr(err)
	}
	if bad == nil {
		w.End()
		return v, nil
	}
	exists := bad.PrevHash == gateway.GenesisHash
	if !exists {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM decision_records WHERE institution = ? AND hash = ?`,
			institution, bad.PrevHash).Scan(&n); err != nil {
			return v, mapErr(fmt.Errorf("classify: %w", err))
		}
		exists = n > 0
	}
	w.Classify(*bad, exists)
	return v, nil
}

// Write statements, prepared at Open.
var (
	sqlChainHead      = prepared(`SELECT seq, hash FROM decision_chains WHERE institution = ?`)
	sqlInsertDecision = prepared(`INSERT INTO decision_records (institution, seq, decision_id, at, body, prev_hash, hash)
		VALUES (?, ?, ?, ?, ?, ?, ?)`)
	sqlMoveChainHead = prepared(`INSERT INTO decision_chains (institution, seq, hash) VALUES (?, ?, ?)
		ON CONFLICT (institution) DO UPDATE SET seq = excluded.seq, hash = excluded.hash`)
)
