package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"github.com/student-mh-referrals/gateway/gateway"
)

// Retained decision inputs (decision_inputs, registry_snapshots): what each
// decision was made on (the record, the registry entry, the receiver's
// MessageDefinition, the time), written with its decision record and purged
// with content, for policy replay.

var (
	// The snapshot is usually there already: the registry rarely changes.
	sqlInsertSnapshot = query(`INSERT INTO registry_snapshots (hash, snapshot) VALUES (?, ?)
		ON CONFLICT (hash) DO NOTHING`)
	// A dry run and a submission of the same record in the same second
	// share a decision id and so an input: the first is kept.
	sqlInsertInput = query(`INSERT INTO decision_inputs (institution, decision_id, decided_at, dry_run, referral_id,
		record, registry_snapshot_hash, definition) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (institution, decision_id) DO NOTHING`)
	// An input goes when its decision time is past the cut-off and its
	// referral, if it stored one, has lost its content (the referral purge
	// runs first, in the same transaction).
	sqlPurgeInputs = query(`DELETE FROM decision_inputs WHERE decided_at < ? AND NOT EXISTS (
		SELECT 1 FROM referrals r WHERE r.id = decision_inputs.referral_id AND r.purged_at IS NULL)`)
	sqlPurgeSnapshots = query(`DELETE FROM registry_snapshots
		WHERE hash NOT IN (SELECT registry_snapshot_hash FROM decision_inputs)`)
	// sqlReplay is every record of the institutions' chains in a window
	// of recording time, with its input when it is retained (an allowed
	// share's record is its referral's, until that is purged).
	sqlReplay = read(`SELECT d.institution, d.seq, d.decision_id, d.at, d.body,
		i.decided_at, i.dry_run, i.referral_id, COALESCE(i.record, r.record), s.hash, s.snapshot, i.definition
		FROM decision_records d
		LEFT JOIN decision_inputs i ON i.institution = d.institution AND i.decision_id = d.decision_id
		LEFT JOIN referrals r ON r.id = i.referral_id
		LEFT JOIN registry_snapshots s ON s.hash = i.registry_snapshot_hash
		WHERE d.institution <> ? AND d.at >= ? AND d.at < ? AND (? = '' OR d.institution = ?)
		ORDER BY d.institution, d.seq`)
)

// storedDefinition is decision_inputs.definition: the MessageDefinition a
// decision was made with, as JSON in the shape the policies read it
// (input.definition).
type storedDefinition struct {
	URL   string        `json:"url"`
	Focus []storedFocus `json:"focus,omitempty"`
}

type storedFocus struct {
	Code string `json:"code"`
	Min  int    `json:"min"`
	Max  string `json:"max"`
}

// definitionJSON is the column value of d: NULL when the decision had no
// definition, or one that neither names nor demands anything.
func definitionJSON(d *gateway.MessageDefinition) (sql.NullString, error) {
	if d == nil || (d.URL == "" && len(d.Focus) == 0) {
		return sql.NullString{}, nil
	}
	sd := storedDefinition{URL: d.URL, Focus: make([]storedFocus, len(d.Focus))}
	for i, f := range d.Focus {
		sd.Focus[i] = storedFocus(f)
	}
	b, err := json.Marshal(sd)
	return nullJSON(b), err
}

// definitionOf reads the column back; NULL is no definition.
func definitionOf(s sql.NullString) (*gateway.MessageDefinition, error) {
	if !s.Valid {
		return nil, nil
	}
	var sd storedDefinition
	if err := json.Unmarshal([]byte(s.String), &sd); err != nil {
		return nil, gateway.Internal(fmt.Errorf("retained MessageDefinition: %w", err))
	}
	d := &gateway.MessageDefinition{URL: sd.URL}
	for _, f := range sd.Focus {
		d.Focus = append(d.Focus, gateway.DefinitionFocus(f))
	}
	return d, nil
}

// insertInput writes the input of a decision record being appended. An
// allowed share's record is not written twice: it is its referral's
// (referrals.record holds the same canonical JSON), which keeps the accept
// path's write small.
func insertInput(t tx, rec gateway.DecisionRecord) error {
	in := rec.Input
	if _, err := t.exec(sqlInsertSnapshot, in.Service.Hash, string(in.Service.JSON)); err != nil {
		return err
	}
	record := nullJSON(in.Record)
	if in.ReferralID != "" {
		record = sql.NullString{}
	}
	def, err := definitionJSON(in.Definition)
	if err != nil {
		return gateway.Internal(err)
	}
	_, err = t.exec(sqlInsertInput, rec.Institution, rec.DecisionID, t.time(in.DecidedAt), in.DryRun,
		nullString(in.ReferralID), record, in.Service.Hash, def)
	return err
}

// purgeInputs deletes the inputs past retention, then the registry
// snapshots no input names any more.
func purgeInputs(t tx, before time.Time) error {
	if _, err := t.exec(sqlPurgeInputs, t.time(before)); err != nil {
		return err
	}
	_, err := t.exec(sqlPurgeSnapshots)
	return err
}

// replayBounds are the far ends of an open replay window.
var replayBounds = [2]time.Time{time.Unix(0, 0), time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)}

// ReplayDecisions implements gateway.ReplaySource. It streams the rows, so
// that a replay of any length holds one row at a time.
func (db *DB) ReplayDecisions(ctx context.Context, f gateway.ReplayFilter, fn func(gateway.DecisionRecord) error) error {
	from, to := f.From, f.To
	if from.IsZero() {
		from = replayBounds[0]
	}
	if to.IsZero() {
		to = replayBounds[1]
	}
	rows, err := db.query(ctx, sqlReplay, gateway.GatewayChain, db.time(from), db.time(to), f.Institution, f.Institution)
	if err != nil {
		return db.mapErr(err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			r                 gateway.DecisionRecord
			body              string
			decided           time.Time
			dryRun            sql.NullBool
			ref, rec, h, snap sql.NullString
			def               sql.NullString
		)
		if err := rows.Scan(&r.Institution, &r.Seq, &r.DecisionID, timeOf{&r.At}, &body,
			timeOf{&decided}, &dryRun, &ref, &rec, &h, &snap, &def); err != nil {
			return db.mapErr(err)
		}
		r.Body = []byte(body)
		if rec.Valid && snap.Valid {
			d, err := definitionOf(def)
			if err != nil {
				return err
			}
			r.Input = &gateway.RetainedInput{
				DecidedAt: decided, DryRun: dryRun.Bool, ReferralID: ref.String, Record: []byte(rec.String),
				Service: gateway.ServiceSnapshot{Hash: h.String, JSON: []byte(snap.String)}, Definition: d,
			}
		}
		if err := fn(r); err != nil {
			return err
		}
	}
	return db.mapErr(rows.Err())
}
