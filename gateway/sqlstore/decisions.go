package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/student-mh-referrals/gateway/gateway"
)

const decisionCols = `institution, seq, decision_id, at, body, prev_hash, hash, key_id`

var (
	// sqlLockChain returns the institution's chain head, creating it at
	// the genesis hash the first time. On PostgreSQL the no-op update takes
	// the row lock even when the row exists, and RETURNING gives the head
	// as committed by whoever held it before.
	sqlLockChain = query(`INSERT INTO decision_chains (institution, seq, hash) VALUES (?, 0, ?)
		ON CONFLICT (institution) DO UPDATE SET seq = decision_chains.seq
		RETURNING seq, hash`)
	sqlInsertDecision = query(`INSERT INTO decision_records (` + decisionCols + `) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`)
	sqlMoveChainHead  = query(`UPDATE decision_chains SET seq = ?, hash = ? WHERE institution = ?`)
	sqlDecisions      = read(`SELECT ` + decisionCols + ` FROM decision_records
		WHERE institution = ? AND seq > ? ORDER BY seq LIMIT ?`)
	sqlDecision = read(`SELECT ` + decisionCols + ` FROM decision_records
		WHERE institution = ? AND decision_id = ? ORDER BY seq LIMIT 1`)
	// sqlChains is every institution with a record, a head or a referral,
	// so that nothing escapes verify or a checkpoint by being left out of
	// the configuration, or by losing its records and head.
	sqlChains = read(`SELECT i.institution, COALESCE(c.seq, 0), COALESCE(c.hash, '')
		FROM (SELECT institution FROM decision_chains UNION SELECT DISTINCT institution FROM decision_records
			UNION SELECT DISTINCT institution FROM referrals) i
		LEFT JOIN decision_chains c ON c.institution = i.institution ORDER BY i.institution`)
)

// SetChainKeys makes the store write new decision records under keys[0]
// and verify keyed records with the keyring. Call it before the store is
// used; without it records use the plain SHA-256 scheme.
func (db *DB) SetChainKeys(keys gateway.ChainKeys) { db.keys = keys }

// StartKeyedSegments appends a chain-key action record to every chain whose
// head is not under the current chain key (a chain written before the key
// was configured, or before a rotation), so that the keyed segment starts
// at once rather than at the chain's next decision: from there on a record
// under an older key, or none, is caught as written outside the gateway.
// It returns the chains it started.
func (db *DB) StartKeyedSegments(ctx context.Context, at time.Time) ([]string, error) {
	heads, err := db.Chains(ctx)
	if err != nil || db.keys.Current() == "" {
		return nil, err
	}
	var started []string
	for _, h := range heads {
		if h.Seq == 0 {
			continue
		}
		head, err := db.Decisions(ctx, h.Institution, h.Seq-1, 1)
		if err != nil {
			return started, err
		}
		if len(head) == 0 || head[0].KeyID == db.keys.Current() {
			continue
		}
		if _, err := gateway.AppendAction(ctx, db, gateway.ActionEntry{
			Action: gateway.ActionChainKey, By: "gateway", Institution: h.Institution, Reason: db.keys.Current(),
		}, at); err != nil {
			return started, err
		}
		started = append(started, h.Institution)
	}
	return started, nil
}

// Chains implements gateway.AuditTrail.
func (db *DB) Chains(ctx context.Context) ([]gateway.ChainHead, error) {
	rows, err := db.query(ctx, sqlChains)
	if err != nil {
		return nil, db.mapErr(err)
	}
	defer rows.Close()
	var out []gateway.ChainHead
	for rows.Next() {
		var h gateway.ChainHead
		if err := rows.Scan(&h.Institution, &h.Seq, &h.Hash); err != nil {
			return nil, db.mapErr(err)
		}
		out = append(out, h)
	}
	return out, db.mapErr(rows.Err())
}

// lockChain locks the institution's chain head and returns it. Every
// transaction that appends, or that must not interleave with an accept,
// takes this lock first, so the lock order is always the same and appends
// never fork the chain.
func lockChain(t tx, institution string) (seq int64, hash string, err error) {
	err = t.queryRow(sqlLockChain, institution, gateway.GenesisHash).Scan(&seq, &hash)
	return seq, hash, err
}

// appendDecision links rec after the locked head (seq, head) and moves the
// head; rec's input, if any, is written with it.
func appendDecision(t tx, rec gateway.DecisionRecord, seq int64, head string) (gateway.DecisionRecord, error) {
	rec.Seq, rec.PrevHash = seq+1, head
	rec.At = utc(rec.At)
	rec = t.db.keys.Seal(rec)
	if _, err := t.exec(sqlInsertDecision,
		rec.Institution, rec.Seq, rec.DecisionID, t.time(rec.At), string(rec.Body), rec.PrevHash, rec.Hash, rec.KeyID); err != nil {
		return rec, err
	}
	if rec.Input != nil {
		if err := insertInput(t, rec); err != nil {
			return rec, err
		}
	}
	_, err := t.exec(sqlMoveChainHead, rec.Seq, rec.Hash, rec.Institution)
	return rec, err
}

// AppendDecision implements gateway.AuditTrail.
func (db *DB) AppendDecision(ctx context.Context, rec gateway.DecisionRecord) (gateway.DecisionRecord, error) {
	if err := rec.Validate(); err != nil {
		return gateway.DecisionRecord{}, err
	}
	var out gateway.DecisionRecord
	err := db.write(ctx, nil, func(t tx) error {
		seq, head, err := lockChain(t, rec.Institution)
		if err != nil {
			return err
		}
		out, err = appendDecision(t, rec, seq, head)
		return err
	})
	if err != nil {
		return gateway.DecisionRecord{}, err
	}
	return out, nil
}

func scanDecision(s scanner) (gateway.DecisionRecord, error) {
	var r gateway.DecisionRecord
	var body string
	if err := s.Scan(&r.Institution, &r.Seq, &r.DecisionID, timeOf{&r.At}, &body, &r.PrevHash, &r.Hash, &r.KeyID); err != nil {
		return r, err
	}
	r.Body = []byte(body)
	return r, nil
}

// Decisions implements gateway.AuditTrail.
func (db *DB) Decisions(ctx context.Context, institution string, afterSeq int64, limit int) ([]gateway.DecisionRecord, error) {
	if limit <= 0 {
		limit = 100
	}
	rows, err := db.query(ctx, sqlDecisions, institution, afterSeq, limit)
	if err != nil {
		return nil, db.mapErr(err)
	}
	defer rows.Close()
	var out []gateway.DecisionRecord
	for rows.Next() {
		r, err := scanDecision(rows)
		if err != nil {
			return nil, db.mapErr(err)
		}
		out = append(out, r)
	}
	return out, db.mapErr(rows.Err())
}

// Decision implements gateway.AuditTrail, through the index on
// (institution, decision_id).
func (db *DB) Decision(ctx context.Context, institution, decisionID string) (gateway.DecisionRecord, error) {
	r, err := scanDecision(db.queryRow(ctx, sqlDecision, institution, decisionID))
	if errors.Is(err, sql.ErrNoRows) {
		return r, gateway.Errorf(gateway.ENOTFOUND, "no such decision record")
	}
	return r, db.mapErr(err)
}

// Verify implements gateway.AuditTrail. It reads the head and the records
// in one read-only snapshot, so appends during the walk do not look like
// tampering.
func (db *DB) Verify(ctx context.Context, institution string) (gateway.ChainVerification, error) {
	v := gateway.ChainVerification{Institution: institution, HeadHash: gateway.GenesisHash}
	t, err := db.r.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true})
	if err != nil {
		return v, db.mapErr(err)
	}
	defer t.Rollback()
	err = t.QueryRowContext(ctx, db.d.rewrite(`SELECT seq, hash FROM decision_chains WHERE institution = ?`), institution).
		Scan(&v.HeadSeq, &v.HeadHash)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return v, db.mapErr(err)
	}
	rows, err := t.QueryContext(ctx, db.d.rewrite(`SELECT `+decisionCols+` FROM decision_records WHERE institution = ? ORDER BY seq`), institution)
	if err != nil {
		return v, db.mapErr(err)
	}
	w := gateway.NewChainWalker(&v, db.keys)
	var bad *gateway.DecisionRecord
	for rows.Next() {
		r, err := scanDecision(rows)
		if err != nil {
			rows.Close()
			return v, db.mapErr(err)
		}
		if !w.Next(r) {
			bad = &r
			break
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return v, db.mapErr(err)
	}
	if bad == nil {
		w.End()
		if !v.OK {
			return v, nil
		}
		// Every referral was accepted with its decision record in one
		// transaction: a referral without one means the record was cut.
		var ref, dec string
		err := t.QueryRowContext(ctx, db.d.rewrite(`SELECT r.id, r.decision_id FROM referrals r WHERE r.institution = ?
			AND NOT EXISTS (SELECT 1 FROM decision_records d WHERE d.institution = r.institution AND d.decision_id = r.decision_id)
			ORDER BY r.accepted_at LIMIT 1`), institution).Scan(&ref, &dec)
		switch {
		case err == nil:
			v.OK, v.Problem = false, gateway.ChainRemoved
			v.Detail = fmt.Sprintf("referral %s names decision %s, which is not in the chain", ref, dec)
		case !errors.Is(err, sql.ErrNoRows):
			return v, db.mapErr(err)
		}
		return v, nil
	}
	exists := bad.PrevHash == gateway.GenesisHash
	if !exists {
		var n int
		if err := t.QueryRowContext(ctx, db.d.rewrite(`SELECT COUNT(*) FROM decision_records WHERE institution = ? AND hash = ?`),
			institution, bad.PrevHash).Scan(&n); err != nil {
			return v, db.mapErr(fmt.Errorf("classify: %w", err))
		}
		exists = n > 0
	}
	w.Classify(*bad, exists)
	return v, nil
}
