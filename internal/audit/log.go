package audit

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"time"

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
func (l *Log) write(ctx context.Context, batch []*pending) error {
	l.writeMu.Lock()
	defer l.writeMu.Unlock()
	var fresh []bool // per claim, in batch order
	evs := make([]*Event, 0, len(batch))
	tails := make([][]byte, 0, len(batch))
	h, err := newHash(l.alg)
	if err != nil {
		return err
	}
	err = l.db.InTx(ctx, func(tx *store.Tx) error {
		lock := ""
		if tx.Dialect() == store.Postgres {
			lock = " FOR UPDATE"
		}
		var seq int64
		var prev string
		err := tx.QueryRow(ctx, "SELECT seq, hash FROM audit_head WHERE id = 1"+lock).Scan(&seq, &prev)
		if errors.Is(err, sql.ErrNoRows) {
			// First event ever: create the head row, then lock it, so two
			// processes starting on an empty log still take turns.
			if _, err := tx.Exec(ctx, `INSERT INTO audit_head (id, seq, hash, mac, algorithm) VALUES (1, 0, '', '', ?) ON CONFLICT (id) DO NOTHING`, l.alg); err != nil {
				return err
			}
			err = tx.QueryRow(ctx, "SELECT seq, hash FROM audit_head WHERE id = 1"+lock).Scan(&seq, &prev)
		}
		if err != nil {
			return fmt.Errorf("read audit head: %w", err)
		}
		var claims []*Claim
		for _, p := range batch {
			if p.claim != nil {
				claims = append(claims, p.claim)
			}
		}
		fresh = nil
		if len(claims) > 0 {
			// Only pendings holding a claim exist when a claimer is set.
			if fresh, err = l.claimerOf().ClaimIn(ctx, tx, claims); err != nil {
				return fmt.Errorf("write the requests' one-time tokens: %w", err)
			}
		}
		evs, tails = evs[:0], tails[:0]
		i := 0
		for _, p := range batch {
			if p.claim != nil {
				ok := fresh[i]
				i++
				if !ok {
					continue // used before: the event is not written
				}
			}
			evs, tails = append(evs, &p.ev), append(tails, p.tail)
		}
		if len(evs) == 0 {
			return nil
		}
		for i, e := range evs {
			seq++
			e.Seq, e.PrevHash = seq, prev
			e.Hash = chainHashTail(h, l.alg, prev, seq, tails[i])
			prev = e.Hash
		}
		head := []any{seq, prev, l.seal.mac(headParts(seq, prev)...), l.alg}
		if err := insertEvents(ctx, tx, evs, head); err != nil {
			return fmt.Errorf("insert audit events and move the head: %w", err)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("append %d audit events: %w", len(batch), err)
	}
	i := 0
	for _, p := range batch {
		if p.claim != nil {
			p.claim.Settle(fresh[i], nil)
			i++
		}
	}
	return nil
}

// moveHead sets the chain head: seq, hash, mac, algorithm.
const moveHead = `INSERT INTO audit_head (id, seq, hash, mac, algorithm) VALUES (1, ?, ?, ?, ?)
	ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash, mac = excluded.mac, algorithm = excluded.algorithm`

// insertEvents inserts chained events and moves the head to the last.
// On PostgreSQL that is one statement, the events going as one array per
// column, so every batch, whatever its size, runs the same prepared
// statement in one round trip; SQLite gets them as rows of values, 200
// to a statement, then the head.
func insertEvents(ctx context.Context, tx *store.Tx, evs []*Event, head []any) error {
	const into = `INSERT INTO audit_events (seq, occurred_at, actor_type, actor_id, actor_name, dept_id, action, object_type, object_id, result, client_addr, request_id, purpose, details, prev_hash, hash) `
	if tx.Dialect() == store.Postgres {
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
		args := append([]any{seqs, times, text[0], text[1], text[2], depts, text[3], text[4], text[5], text[6], text[7], text[8], text[9],
			text[10], text[11], text[12]}, head...)
		_, err := tx.Exec(ctx, `WITH events AS (`+into+`SELECT s, t, a1, a2, a3, d, a4, a5, a6, a7, a8, a9, a10, a11, a12, a13
			FROM unnest(?::bigint[], ?::timestamptz[], ?::text[], ?::text[], ?::text[], ?::bigint[], ?::text[], ?::text[], ?::text[], ?::text[],
			?::text[], ?::text[], ?::text[], ?::text[], ?::text[], ?::text[]) AS u(s, t, a1, a2, a3, d, a4, a5, a6, a7, a8, a9, a10, a11, a12, a13)) `+moveHead,
			args...)
		return err
	}
	const cols = 16
	const chunk = 200
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
