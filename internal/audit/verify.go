package audit

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"govshare/internal/store"
)

// Break names the first place the chain does not hold.
type Break struct {
	Seq    int64  `json:"seq"`
	Reason string `json:"reason"`
}

func (p Break) Error() string { return fmt.Sprintf("audit event %d: %s", p.Seq, p.Reason) }

// Report is the outcome of Verify.
type Report struct {
	Checked    int64         `json:"checked"`
	FirstSeq   int64         `json:"first_seq"`
	LastSeq    int64         `json:"last_seq"`
	Checkpoint int64         `json:"checkpoint"` // seq the chain was verified from (0: genesis)
	Break      *Break        `json:"break,omitempty"`
	Took       time.Duration `json:"took"`
}

// OK reports whether the chain verified.
func (r Report) OK() bool { return r.Break == nil }

// Verify walks the whole chain, streaming, and reports the first event that
// was altered, inserted or removed. progress, if not nil, is called every
// 10,000 events with the count so far.
func (l *Log) Verify(ctx context.Context, progress func(checked int64)) (Report, error) {
	return verify(ctx, l.db, l.seal, progress)
}

// VerifyDB verifies the chain in db with the given audit key, without
// starting a writer (for the `audit verify` command).
func VerifyDB(ctx context.Context, db *store.DB, key []byte, progress func(int64)) (Report, error) {
	return verify(ctx, db, sealer{alg: SM3, key: key}, progress)
}

func verify(ctx context.Context, db *store.DB, seal sealer, progress func(int64)) (Report, error) {
	start := time.Now()
	var rep Report
	expectSeq, prev := int64(1), ""

	var cp struct {
		seq     int64
		hash    string
		cutoff  time.Time
		removed int64
		mac     string
	}
	err := db.QueryRow(ctx, `SELECT seq, hash, cutoff, removed, mac FROM audit_checkpoints ORDER BY seq DESC LIMIT 1`).
		Scan(&cp.seq, &cp.hash, &cp.cutoff, &cp.removed, &cp.mac)
	switch {
	case errors.Is(err, sql.ErrNoRows):
	case err != nil:
		return rep, fmt.Errorf("read checkpoint: %w", err)
	default:
		if !seal.check(cp.mac, checkpointParts(cp.seq, cp.hash, cp.cutoff, cp.removed)...) {
			rep.Break = &Break{Seq: cp.seq, Reason: "retention checkpoint seal does not match (checkpoint altered)"}
			return rep, nil
		}
		rep.Checkpoint = cp.seq
		expectSeq, prev = cp.seq+1, cp.hash
	}

	rows, err := db.Query(ctx, `SELECT seq, occurred_at, actor_type, actor_id, actor_name, COALESCE(dept_id, 0), action, object_type, object_id,
		result, client_addr, request_id, purpose, details, prev_hash, hash FROM audit_events ORDER BY seq`)
	if err != nil {
		return rep, fmt.Errorf("read audit events: %w", err)
	}
	defer rows.Close()
	fail := func(seq int64, reason string) (Report, error) {
		rep.Break = &Break{Seq: seq, Reason: reason}
		rep.Took = time.Since(start)
		return rep, nil
	}
	var e Event
	for rows.Next() {
		if err := rows.Scan(&e.Seq, &e.Time, &e.ActorType, &e.ActorID, &e.ActorName, &e.DeptID, &e.Action, &e.ObjectType,
			&e.ObjectID, &e.Result, &e.ClientAddr, &e.RequestID, &e.Purpose, &e.Details, &e.PrevHash, &e.Hash); err != nil {
			return rep, err
		}
		if rep.Checked == 0 {
			rep.FirstSeq = e.Seq
		}
		switch {
		case e.Seq < expectSeq:
			return fail(e.Seq, fmt.Sprintf("event precedes the verified start %d (inserted)", expectSeq))
		case e.Seq > expectSeq:
			return fail(expectSeq, fmt.Sprintf("event missing: next stored event is %d (deleted)", e.Seq))
		}
		if e.PrevHash != prev {
			return fail(e.Seq, "previous-hash link broken (an event before it was altered, inserted or removed)")
		}
		alg := hashAlgorithm(e.Hash)
		want, err := chainHash(alg, prev, &e)
		if err != nil {
			return fail(e.Seq, "unknown hash algorithm "+alg)
		}
		if want != e.Hash {
			return fail(e.Seq, "content does not match its hash (event altered)")
		}
		prev = e.Hash
		expectSeq++
		rep.Checked++
		rep.LastSeq = e.Seq
		if progress != nil && rep.Checked%10000 == 0 {
			progress(rep.Checked)
		}
	}
	if err := rows.Err(); err != nil {
		return rep, err
	}

	var head struct {
		seq  int64
		hash string
		mac  string
	}
	err = db.QueryRow(ctx, "SELECT seq, hash, mac FROM audit_head WHERE id = 1").Scan(&head.seq, &head.hash, &head.mac)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		if rep.Checked > 0 {
			return fail(rep.LastSeq, "chain head is missing (removed)")
		}
	case err != nil:
		return rep, fmt.Errorf("read audit head: %w", err)
	default:
		if head.seq == 0 && head.hash == "" && rep.Checked == 0 && rep.Checkpoint == 0 {
			break // nothing written yet
		}
		if !seal.check(head.mac, headParts(head.seq, head.hash)...) {
			return fail(head.seq, "chain head seal does not match (head altered)")
		}
		last := expectSeq - 1
		if head.seq > last {
			return fail(last+1, fmt.Sprintf("events %d to %d missing (deleted from the end)", last+1, head.seq))
		}
		if head.seq < last {
			return fail(head.seq+1, "event after the sealed head (inserted)")
		}
		if head.hash != prev {
			return fail(last, "last event does not match the sealed head (altered)")
		}
	}
	rep.Took = time.Since(start)
	return rep, nil
}

// MinRetention is the shortest retention the Cybersecurity Law allows.
const MinRetention = 180 * 24 * time.Hour

// Prune removes the prefix of events older than cutoff and records a sealed
// checkpoint in the same transaction, so the rest still verifies. It returns
// how many events it removed.
func (l *Log) Prune(ctx context.Context, retention time.Duration, now time.Time) (int64, error) {
	if retention < MinRetention {
		return 0, fmt.Errorf("audit retention %s is shorter than the legal minimum of 6 months", retention)
	}
	cutoff := now.Add(-retention).UTC().Truncate(time.Microsecond)
	l.writeMu.Lock()
	defer l.writeMu.Unlock()
	var removed int64
	err := l.db.InTx(ctx, func(tx *store.Tx) error {
		// The prefix ends before the first event at or after the cutoff, so
		// an out-of-order timestamp can never punch a hole in the chain.
		var firstKept sql.NullInt64
		if err := tx.QueryRow(ctx, "SELECT MIN(seq) FROM audit_events WHERE occurred_at >= ?", cutoff).Scan(&firstKept); err != nil {
			return err
		}
		var upto int64
		if firstKept.Valid {
			upto = firstKept.Int64 - 1
		} else if err := tx.QueryRow(ctx, "SELECT COALESCE(MAX(seq), 0) FROM audit_events").Scan(&upto); err != nil {
			return err
		}
		var lo sql.NullInt64
		if err := tx.QueryRow(ctx, "SELECT MIN(seq) FROM audit_events").Scan(&lo); err != nil {
			return err
		}
		if !lo.Valid || upto < lo.Int64 {
			return nil
		}
		var hash string
		if err := tx.QueryRow(ctx, "SELECT hash FROM audit_events WHERE seq = ?", upto).Scan(&hash); err != nil {
			return err
		}
		res, err := tx.Exec(ctx, "DELETE FROM audit_events WHERE seq <= ?", upto)
		if err != nil {
			return err
		}
		removed, _ = res.RowsAffected()
		_, err = tx.Exec(ctx, `INSERT INTO audit_checkpoints (seq, hash, cutoff, removed, created_at, mac) VALUES (?, ?, ?, ?, ?, ?)`,
			upto, hash, cutoff, removed, store.Now(), l.seal.mac(checkpointParts(upto, hash, cutoff, removed)...))
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("prune audit log: %w", err)
	}
	return removed, nil
}
