package audit

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"hash"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"govshare/internal/store"
)

// Options configure a Log.
type Options struct {
	// Algorithm is the chain hash: SM3 (default) or SHA256.
	Algorithm string
	// Key seals chain heads and checkpoints; derive it from the master key.
	Key []byte
	// MaxBatch caps how many events share one commit (default 512).
	MaxBatch int
}

// Log appends to and reads the audit log.
type Log struct {
	db   *store.DB
	alg  string
	seal sealer
	max  int

	queue     chan *pending
	stop      chan struct{}
	done      chan struct{}
	closeOnce sync.Once
	// gate orders Append against Close: appends enqueue under the read
	// lock, Close marks the log closed under the write lock, so no event
	// is queued after the writer's final drain.
	gate   sync.RWMutex
	closed bool
	// writeMu serialises batches inside this process; the row lock on
	// audit_head serialises them across processes.
	writeMu sync.Mutex

	claimerMu sync.RWMutex
	claimer   Claimer // writes claims with their events (SetClaimer)

	head headSeen
}

type pending struct {
	ev    Event
	tail  []byte // the event's canonical form after its seq
	claim *Claim // taken from the appending context, or nil
	res   chan error
}

// ErrClosed is returned by Append after Close.
var ErrClosed = errors.New("audit log is closed")

// Open starts a Log on db. Call Close to flush and stop it.
func Open(db *store.DB, opt Options) (*Log, error) {
	if opt.Algorithm == "" {
		opt.Algorithm = SM3
	}
	if _, err := newHash(opt.Algorithm); err != nil {
		return nil, err
	}
	if len(opt.Key) < 16 {
		return nil, errors.New("audit key must be at least 16 bytes")
	}
	if opt.MaxBatch <= 0 {
		opt.MaxBatch = 512
	}
	l := &Log{
		db: db, alg: opt.Algorithm, seal: sealer{alg: opt.Algorithm, key: opt.Key}, max: opt.MaxBatch,
		queue: make(chan *pending, 4*opt.MaxBatch),
		stop:  make(chan struct{}), done: make(chan struct{}),
	}
	go l.run()
	return l, nil
}

// Close flushes queued events and stops the writer.
func (l *Log) Close() error {
	l.closeOnce.Do(func() {
		l.gate.Lock()
		l.closed = true
		l.gate.Unlock()
		close(l.stop)
	})
	<-l.done
	return nil
}

// Append records e and returns once it is durably stored. Time, client
// address and request id are filled in when empty.
func (l *Log) Append(ctx context.Context, e Event) error {
	if e.Time.IsZero() {
		e.Time = store.Now()
	}
	e.Time = e.Time.UTC().Truncate(time.Microsecond)
	r := RequestFrom(ctx)
	if e.ClientAddr == "" {
		e.ClientAddr = r.ClientAddr
	}
	if e.RequestID == "" {
		e.RequestID = r.RequestID
	}
	if e.Purpose == "" {
		e.Purpose = r.Purpose
	}
	if e.Result == "" {
		e.Result = ResultOK
	}
	if e.ActorType == "" {
		e.ActorType = ActorSystem
	}
	p := &pending{ev: e, res: make(chan error, 1)}
	p.tail = appendCanonicalTail(make([]byte, 0, 192+len(e.Details)+len(e.Purpose)), &p.ev)
	if c := ClaimFrom(ctx); c != nil && l.claimerOf() != nil && c.Take() {
		p.claim = c
	}
	l.gate.RLock()
	if l.closed && p.claim != nil {
		p.claim.Settle(false, ErrClosed)
	}
	if l.closed {
		l.gate.RUnlock()
		return ErrClosed
	}
	select {
	case l.queue <- p:
		l.gate.RUnlock()
	case <-ctx.Done():
		l.gate.RUnlock()
		if p.claim != nil {
			p.claim.Settle(false, ctx.Err())
		}
		return ctx.Err()
	}
	// Once queued the event will be written; wait for the outcome even if
	// the caller's context ends, so a caller never believes a durable event
	// was lost or the other way round.
	return <-p.res
}

func (l *Log) run() {
	defer close(l.done)
	batch := make([]*pending, 0, l.max)
	for {
		var first *pending
		select {
		case first = <-l.queue:
		case <-l.stop:
			// Drain what is already queued, then stop.
			batch = batch[:0]
			for {
				select {
				case p := <-l.queue:
					batch = append(batch, p)
					if len(batch) == l.max {
						l.flush(batch)
						batch = batch[:0]
					}
				default:
					if len(batch) > 0 {
						l.flush(batch)
					}
					return
				}
			}
		}
		batch = append(batch[:0], first)
	fill:
		for len(batch) < l.max {
			select {
			case p := <-l.queue:
				batch = append(batch, p)
			default:
				break fill
			}
		}
		l.flush(batch)
	}
}

func (l *Log) flush(batch []*pending) {
	err := l.write(context.Background(), batch)
	for _, p := range batch {
		switch {
		case p.claim == nil:
			p.res <- err
		case err != nil:
			p.claim.Settle(false, err)
			p.res <- err
		default:
			_, fresh, _ := p.claim.Settled()
			if fresh {
				p.res <- nil
			} else {
				p.res <- ErrClaimUsed
			}
		}
	}
}

// write appends the batch's events in one transaction: lock the head,
// write the events' claims (an event whose claim was used before is
// dropped), chain, insert, move the head. Claims are settled only once
// the transaction has committed.
//
// On PostgreSQL the transaction's statements travel together. The log
// writes one batch at a time, and under load its round trips, not its
// statements, bounded it: at 64 concurrent callers the writer was busy
// 97 % of the time, 3.5–4.5 ms a batch of about 21 events, whether or
// not the commit waited for the disk. A batch after one this process
// wrote is one statement that commits by itself (writeOne); otherwise,
// or when that finds the head moved or a claim used, two round trips
// (writePipelined).
func (l *Log) write(ctx context.Context, batch []*pending) error {
	l.writeMu.Lock()
	defer l.writeMu.Unlock()
	h, err := newHash(l.alg)
	if err != nil {
		return err
	}
	var claims []*Claim
	for _, p := range batch {
		if p.claim != nil {
			claims = append(claims, p.claim)
		}
	}
	// Only pendings holding a claim exist when a claimer is set.
	claimer := l.claimerOf()
	var fresh []bool // per claim, in batch order
	var head chainHead
	done := false
	err = errNoPipeline
	if sc, ok := claimer.(StatementClaimer); l.db.Dialect() == store.Postgres && (ok || len(claims) == 0) {
		err = nil
		if l.head.known && time.Since(l.head.moved) > time.Second {
			fresh, head, done, err = l.writeOne(ctx, h, batch, sc, claims)
			if err == nil && !done {
				l.head.moved = time.Now()
			}
		}
		if err == nil && !done {
			fresh, head, err = l.writePipelined(ctx, h, batch, sc, claims)
		}
	}
	if errors.Is(err, errNoPipeline) {
		fresh, head, err = l.writeTx(ctx, h, batch, claimer, claims)
	}
	if err != nil {
		l.head.known = false
		return fmt.Errorf("append %d audit events: %w", len(batch), err)
	}
	l.head.chainHead, l.head.known = head, true
	for i, c := range claims {
		c.Settle(fresh[i], nil)
	}
	return nil
}

// chainHead is the chain's last event: its seq and hash.
type chainHead struct {
	seq  int64
	hash string
}

// headSeen is the head as this process last wrote or read it, for
// writeOne. Only the writer's goroutine uses it, holding writeMu.
type headSeen struct {
	chainHead
	known bool
	// moved is when writeOne last found the head moved (another process
	// writes too) or a claim used: it is not tried for a second after.
	moved time.Time
}

// errNoPipeline sends a batch the way of writeTx: the log has no head
// row yet, or its claimer gives no statement.
var errNoPipeline = errors.New("audit: write in a transaction of separate statements")

// writeTx writes a batch in a transaction, one statement after another.
func (l *Log) writeTx(ctx context.Context, h hash.Hash, batch []*pending, claimer Claimer, claims []*Claim) (fresh []bool, head chainHead, err error) {
	err = l.db.InTx(ctx, func(tx *store.Tx) error {
		lock := ""
		if tx.Dialect() == store.Postgres {
			lock = " FOR UPDATE"
		}
		err := tx.QueryRow(ctx, "SELECT seq, hash FROM audit_head WHERE id = 1"+lock).Scan(&head.seq, &head.hash)
		if errors.Is(err, sql.ErrNoRows) {
			// First event ever: create the head row, then lock it, so two
			// processes starting on an empty log still take turns.
			if _, err := tx.Exec(ctx, `INSERT INTO audit_head (id, seq, hash, mac, algorithm) VALUES (1, 0, '', '', ?) ON CONFLICT (id) DO NOTHING`, l.alg); err != nil {
				return err
			}
			err = tx.QueryRow(ctx, "SELECT seq, hash FROM audit_head WHERE id = 1"+lock).Scan(&head.seq, &head.hash)
		}
		if err != nil {
			return fmt.Errorf("read audit head: %w", err)
		}
		fresh = nil
		if len(claims) > 0 {
			if fresh, err = claimer.ClaimIn(ctx, tx, claims); err != nil {
				return fmt.Errorf("write the requests' one-time tokens: %w", err)
			}
		}
		evs, next := l.chain(h, batch, fresh, head)
		if len(evs) == 0 {
			return nil
		}
		if err := insertEvents(ctx, tx, evs, l.headArgs(next)); err != nil {
			return fmt.Errorf("insert audit events and move the head: %w", err)
		}
		head = next
		return nil
	})
	return fresh, head, err
}

// writePipelined writes a batch on PostgreSQL in two round trips rather
// than five: BEGIN, the head's lock and the claims go together, then the
// events with the head's move and COMMIT.
func (l *Log) writePipelined(ctx context.Context, h hash.Hash, batch []*pending, claimer StatementClaimer, claims []*Claim) (fresh []bool, head chainHead, err error) {
	err = l.db.WithPgx(ctx, func(c *pgx.Conn) (err error) {
		defer func() {
			if err != nil && c.PgConn().TxStatus() != 'I' {
				// Not left open on the pool's connection: rolled back, or
				// the connection closed (the pool then drops it).
				if _, rerr := c.Exec(context.WithoutCancel(ctx), "rollback"); rerr != nil {
					_ = c.Close(context.WithoutCancel(ctx))
				}
			}
		}()
		b := &pgx.Batch{}
		b.Queue("begin")
		b.Queue("SELECT seq, hash FROM audit_head WHERE id = 1 FOR UPDATE")
		var cs ClaimSQL
		if len(claims) > 0 {
			cs = claimer.ClaimStatement(claims)
			b.Queue(l.db.Rebind(cs.Insert+" "+cs.Rows+cs.OnConflict), cs.Args...)
		}
		br := c.SendBatch(ctx, b)
		_, err = br.Exec()
		if err == nil {
			err = br.QueryRow().Scan(&head.seq, &head.hash)
			if errors.Is(err, pgx.ErrNoRows) {
				err = errNoPipeline
			} else if err != nil {
				err = fmt.Errorf("read audit head: %w", err)
			}
		}
		if err == nil && len(claims) > 0 {
			var rows pgx.Rows
			if rows, err = br.Query(); err == nil {
				fresh, err = cs.Fresh(rows)
			}
			if err != nil {
				err = fmt.Errorf("write the requests' one-time tokens: %w", err)
			}
		}
		if cerr := br.Close(); err == nil && cerr != nil {
			err = cerr
		}
		if err != nil {
			return err
		}
		b = &pgx.Batch{}
		evs, next := l.chain(h, batch, fresh, head)
		if len(evs) > 0 {
			q, args := pgInsertEvents(evs, l.headArgs(next))
			b.Queue(l.db.Rebind(q), args...)
		}
		b.Queue("commit")
		if err := c.SendBatch(ctx, b).Close(); err != nil {
			return fmt.Errorf("insert audit events and move the head: %w", err)
		}
		head = next
		return nil
	})
	return fresh, head, err
}

// writeOne writes a batch on PostgreSQL as one statement, which commits
// by itself, assuming the head is still the one this process saw last
// and every claim fresh. The statement moves the head only from that
// head — under its lock, so a batch of another process that moves it
// first wins — and writes the claims and the events only if it did; a
// claim used before fails it. Either way nothing is written, and done
// is false.
func (l *Log) writeOne(ctx context.Context, h hash.Hash, batch []*pending, claimer StatementClaimer, claims []*Claim) (fresh []bool, head chainHead, done bool, err error) {
	var cs ClaimSQL
	if len(claims) > 0 {
		if cs = claimer.ClaimStatement(claims); !cs.Distinct {
			return nil, head, false, nil // a claim twice: not all fresh
		}
	}
	fresh = make([]bool, len(claims))
	for i := range fresh {
		fresh[i] = true
	}
	evs, next := l.chain(h, batch, fresh, l.head.chainHead)
	var q strings.Builder
	args := append(l.headArgs(next), l.head.seq, l.head.hash)
	q.WriteString(`WITH h AS (UPDATE audit_head SET seq = ?, hash = ?, mac = ?, algorithm = ? WHERE id = 1 AND seq = ? AND hash = ? RETURNING 1)`)
	if len(claims) > 0 {
		q.WriteString(", c AS (" + cs.Insert + " " + cs.Rows + " WHERE EXISTS (SELECT 1 FROM h))")
		args = append(args, cs.Args...)
	}
	rows, rowArgs := pgEventRows(evs)
	q.WriteString(" " + insertInto + rows + " WHERE EXISTS (SELECT 1 FROM h)")
	args = append(args, rowArgs...)
	var tag pgconn.CommandTag
	err = l.db.WithPgx(ctx, func(c *pgx.Conn) error {
		var err error
		tag, err = c.Exec(ctx, l.db.Rebind(q.String()), args...)
		return err
	})
	if store.IsUniqueViolation(err) {
		return nil, head, false, nil // a claim used before
	}
	if err != nil {
		return nil, head, false, err
	}
	if tag.RowsAffected() != int64(len(evs)) {
		return nil, head, false, nil // the head moved
	}
	return fresh, next, true, nil
}

// chain numbers and hashes the events of batch that are written — those
// without a claim and those whose claim was fresh — after head, and
// returns them with the new head.
func (l *Log) chain(h hash.Hash, batch []*pending, fresh []bool, head chainHead) ([]*Event, chainHead) {
	evs := make([]*Event, 0, len(batch))
	i := 0
	for _, p := range batch {
		if p.claim != nil {
			ok := fresh[i]
			i++
			if !ok {
				continue // used before: the event is not written
			}
		}
		head.seq++
		p.ev.Seq, p.ev.PrevHash = head.seq, head.hash
		p.ev.Hash = chainHashTail(h, l.alg, head.hash, head.seq, p.tail)
		head.hash = p.ev.Hash
		evs = append(evs, &p.ev)
	}
	return evs, head
}

// headArgs are moveHead's arguments for head: seq, hash, mac, algorithm.
func (l *Log) headArgs(head chainHead) []any {
	return []any{head.seq, head.hash, l.seal.mac(headParts(head.seq, head.hash)...), l.alg}
}

// insertInto begins the statements that insert events.
const insertInto = `INSERT INTO audit_events (seq, occurred_at, actor_type, actor_id, actor_name, dept_id, action, object_type, object_id, result, client_addr, request_id, purpose, details, prev_hash, hash) `

// moveHead sets the chain head: seq, hash, mac, algorithm.
const moveHead = `INSERT INTO audit_head (id, seq, hash, mac, algorithm) VALUES (1, ?, ?, ?, ?)
	ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash, mac = excluded.mac, algorithm = excluded.algorithm`

// insertEvents inserts chained events and moves the head to the last.
// On PostgreSQL that is one statement, the events going as one array per
// column, so every batch, whatever its size, runs the same prepared
// statement in one round trip; SQLite gets them as rows of values, 200
// to a statement, then the head.
func insertEvents(ctx context.Context, tx *store.Tx, evs []*Event, head []any) error {
	if tx.Dialect() == store.Postgres {
		q, args := pgInsertEvents(evs, head)
		_, err := tx.Exec(ctx, q, args...)
		return err
	}
	const cols = 16
	const chunk = 200
	const into = insertInto
	for start := 0; start < len(evs); start += chunk {
		end := min(start+chunk, len(evs))
		q := make([]byte, 0, 256+(end-start)*64)
		q = append(q, into+"VALUES "...)
		args := make([]any, 0, (end-start)*cols)
		for i, e := range evs[start:end] {
			if i > 0 {
				q = append(q, ", "...)
			}
			q = append(q, "("+store.Placeholders(cols)+")"...)
			var dept any
			if e.DeptID != 0 {
				dept = e.DeptID
			}
			args = append(args, e.Seq, e.Time, e.ActorType, e.ActorID, e.ActorName, dept, e.Action,
				e.ObjectType, e.ObjectID, e.Result, e.ClientAddr, e.RequestID, e.Purpose, e.Details, e.PrevHash, e.Hash)
		}
		if _, err := tx.Exec(ctx, string(q), args...); err != nil {
			return err
		}
	}
	_, err := tx.Exec(ctx, moveHead, head...)
	return err
}

// pgInsertEvents is insertEvents' statement on PostgreSQL.
func pgInsertEvents(evs []*Event, head []any) (string, []any) {
	rows, args := pgEventRows(evs)
	return `WITH events AS (` + insertInto + rows + `) ` + moveHead, append(args, head...)
}

// pgEventRows is a SELECT of evs as rows of audit_events' columns, taking
// them as one array per column, so every batch, whatever its size, runs
// the same prepared statement.
func pgEventRows(evs []*Event) (string, []any) {
	n := len(evs)
	seqs, times, depts := make([]int64, n), make([]time.Time, n), make([]*int64, n)
	var text [13][]string
	for i := range text {
		text[i] = make([]string, n)
	}
	for i, e := range evs {
		seqs[i], times[i] = e.Seq, e.Time
		if e.DeptID != 0 {
			depts[i] = &e.DeptID
		}
		for j, v := range [13]string{e.ActorType, e.ActorID, e.ActorName, e.Action, e.ObjectType, e.ObjectID, e.Result,
			e.ClientAddr, e.RequestID, e.Purpose, e.Details, e.PrevHash, e.Hash} {
			text[j][i] = v
		}
	}
	args := []any{seqs, times, text[0], text[1], text[2], depts, text[3], text[4], text[5], text[6], text[7], text[8], text[9],
		text[10], text[11], text[12]}
	return `SELECT s, t, a1, a2, a3, d, a4, a5, a6, a7, a8, a9, a10, a11, a12, a13
			FROM unnest(?::bigint[], ?::timestamptz[], ?::text[], ?::text[], ?::text[], ?::bigint[], ?::text[], ?::text[], ?::text[], ?::text[],
			?::text[], ?::text[], ?::text[], ?::text[], ?::text[], ?::text[]) AS u(s, t, a1, a2, a3, d, a4, a5, a6, a7, a8, a9, a10, a11, a12, a13)`, args
}
