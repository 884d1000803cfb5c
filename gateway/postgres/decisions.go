package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/student-mh-referrals/gateway/gateway"
)

// lockChain locks the institution's chain head, creating it at the genesis
// hash the first time, and returns it. Every transaction that appends, or
// that must not interleave with an accept, takes this lock first, so the
// lock order is always the same and appends never fork the chain.
func lockChain(ctx context.Context, tx pgx.Tx, institution string) (int64, string, error) {
	var seq int64
	var hash string
	// The no-op update takes the row lock even when the row exists, and
	// RETURNING gives the head as committed by whoever held it before.
	err := tx.QueryRow(ctx, `INSERT INTO decision_chains (institution, seq, hash) VALUES ($1, 0, $2)
		ON CONFLICT (institution) DO UPDATE SET seq = decision_chains.seq
		RETURNING seq, hash`, institution, gateway.GenesisHash).Scan(&seq, &hash)
	return seq, hash, err
}

// chainRecord links rec after the head (seq, hash).
func chainRecord(rec gateway.DecisionRecord, seq int64, head string) gateway.DecisionRecord {
	rec.Seq, rec.PrevHash = seq+1, head
	rec.At = utc(rec.At)
	rec.Hash = gateway.DecisionHash(rec)
	return rec
}

// queueDecision queues the insert of rec and the move of its chain head.
func queueDecision(b *pgx.Batch, rec gateway.DecisionRecord) {
	b.Queue(`INSERT INTO decision_records (institution, seq, decision_id, at, body, prev_hash, hash)
		VALUES ($1, $2, $3, $4, $5, $6, $7)`,
		rec.Institution, rec.Seq, rec.DecisionID, rec.At, string(rec.Body), rec.PrevHash, rec.Hash)
	b.Queue(`UPDATE decision_chains SET seq = $2, hash = $3 WHERE institution = $1`, rec.Institution, rec.Seq, rec.Hash)
}

// AppendDecision implements gateway.DecisionLog.
func (d *DB) AppendDecision(ctx context.Context, rec gateway.DecisionRecord) (gateway.DecisionRecord, error) {
	if err := rec.Validate(); err != nil {
		return gateway.DecisionRecord{}, err
	}
	var out gateway.DecisionRecord
	err := d.tx(ctx, nil, func(tx pgx.Tx) error {
		seq, head, err := lockChain(ctx, tx, rec.Institution)
		if err != nil {
			return err
		}
		out = chainRecord(rec, seq, head)
		b := &pgx.Batch{}
		queueDecision(b, out)
		return tx.SendBatch(ctx, b).Close()
	})
	if err != nil {
		return gateway.DecisionRecord{}, err
	}
	return out, nil
}

const decisionCols = `institution, seq, decision_id, at, body, prev_hash, hash`

func scanDecision(row pgx.Row) (gateway.DecisionRecord, error) {
	var r gateway.DecisionRecord
	var body string
	if err := row.Scan(&r.Institution, &r.Seq, &r.DecisionID, &r.At, &body, &r.PrevHash, &r.Hash); err != nil {
		return r, err
	}
	r.At, r.Body = r.At.UTC(), []byte(body)
	return r, nil
}

// Decisions implements gateway.DecisionLog.
func (d *DB) Decisions(ctx context.Context, institution string, afterSeq int64, limit int) ([]gateway.DecisionRecord, error) {
	if limit <= 0 {
		limit = 100
	}
	rows, err := d.pool.Query(ctx, `SELECT `+decisionCols+` FROM decision_records
		WHERE institution = $1 AND seq > $2 ORDER BY seq LIMIT $3`, institution, afterSeq, limit)
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
// in one REPEATABLE READ snapshot, so appends during the walk do not look
// like tampering.
func (d *DB) Verify(ctx context.Context, institution string) (gateway.ChainVerification, error) {
	v := gateway.ChainVerification{Institution: institution, HeadHash: gateway.GenesisHash}
	err := pgx.BeginTxFunc(ctx, d.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		v = gateway.ChainVerification{Institution: institution, HeadHash: gateway.GenesisHash}
		err := tx.QueryRow(ctx, `SELECT seq, hash FROM decision_chains WHERE institution = $1`, institution).
			Scan(&v.HeadSeq, &v.HeadHash)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		rows, err := tx.Query(ctx, `SELECT `+decisionCols+` FROM decision_records WHERE institution = $1 ORDER BY seq`, institution)
		if err != nil {
			return err
		}
		w := gateway.NewChainWalker(&v)
		var bad *gateway.DecisionRecord
		for rows.Next() {
			r, err := scanDecision(rows)
			if err != nil {
				rows.Close()
				return err
			}
			if !w.Next(r) {
				bad = &r
				break
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		if bad == nil {
			w.End()
			return nil
		}
		exists := bad.PrevHash == gateway.GenesisHash
		if !exists {
			if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM decision_records WHERE institution = $1 AND hash = $2)`,
				institution, bad.PrevHash).Scan(&exists); err != nil {
				return fmt.Errorf("classify: %w", err)
			}
		}
		w.Classify(*bad, exists)
		return nil
	})
	return v, mapErr(err)
}
