package share

import (
	"context"
	"database/sql"
	"strings"
	"sync"
	"time"

	"govshare/internal/store"
)

// nonceLedger records each signed request's nonce exactly once. Claims
// that arrive while a commit is under way wait and go into the next
// transaction together (group commit), so a busy server writes one
// transaction per batch rather than one per request. The primary key
// (signed_at, app_id, nonce) in the shared database stays the judge: a
// replay repeats the signed timestamp and nonce, so a nonce another
// server or an earlier batch recorded with that timestamp is refused,
// and no request is answered before its nonce is durable. Leading with
// the timestamp keeps the inserts at the key's recent end and makes the
// purge one range.
type nonceLedger struct {
	db      *store.DB
	mu      sync.Mutex
	queue   []*nonceClaim
	leading bool      // a goroutine is committing batches
	purged  time.Time // when old nonces were last deleted
}

type nonceClaim struct {
	signedAt int64 // the request's signed timestamp, Unix seconds
	appID    int64
	nonce    string
	res      chan nonceResult
}

// nonceResult tells a claim its fate, or that it now leads: it commits
// the next batch for everyone waiting.
type nonceResult struct {
	fresh bool
	err   error
	lead  bool
}

// maxNonceBatch bounds one transaction.
const maxNonceBatch = 512

// claim records (signedAt, appID, nonce) at the server's time now. It
// reports false when the nonce was already used with that timestamp.
func (l *nonceLedger) claim(ctx context.Context, signedAt, appID int64, nonce string, now time.Time) (bool, error) {
	c := &nonceClaim{signedAt: signedAt, appID: appID, nonce: nonce, res: make(chan nonceResult, 1)}
	l.mu.Lock()
	l.queue = append(l.queue, c)
	if l.leading {
		l.mu.Unlock()
		r := <-c.res
		if !r.lead {
			return r.fresh, r.err
		}
		l.mu.Lock()
	}
	l.leading = true
	// Lead: commit what is queued (this claim included), then hand the
	// lead to a waiting claim so no caller serves others for long.
	n := min(len(l.queue), maxNonceBatch)
	batch := l.queue[:n:n]
	l.queue = l.queue[n:]
	l.mu.Unlock()
	purgeBefore := l.purgeDue(now)

	// A caller's cancelled request must not abort the others' batch.
	l.commit(context.WithoutCancel(ctx), batch, purgeBefore)

	l.mu.Lock()
	if len(l.queue) > 0 {
		l.queue[0].res <- nonceResult{lead: true}
	} else {
		l.leading = false
	}
	l.mu.Unlock()
	r := <-c.res
	return r.fresh, r.err
}

// nonceRows is how many nonces one INSERT statement carries on SQLite.
const nonceRows = 128

// commit writes a batch and answers every claim: on PostgreSQL one
// statement, which commits by itself, so a batch costs one round trip
// (the ledger commits one batch at a time: its throughput is its batch
// over its round trips); on SQLite a transaction of a few statements. A
// claim is answered only once the statement or the transaction has
// committed.
func (l *nonceLedger) commit(ctx context.Context, batch []*nonceClaim, purgeBefore int64) {
	keys := make([]nonceKey, len(batch))
	for i, c := range batch {
		keys[i] = nonceKey{c.signedAt, c.appID, c.nonce}
	}
	if purgeBefore != 0 {
		l.purge(purgeBefore)
	}
	var fresh []bool
	var err error
	if l.db.Dialect() == store.Postgres {
		fresh, err = recordNonces(ctx, l.db, store.Postgres, keys)
	} else {
		err = l.db.InTx(ctx, func(tx *store.Tx) error {
			var err error
			fresh, err = recordNonces(ctx, tx, tx.Dialect(), keys)
			return err
		})
	}
	for i, c := range batch {
		c.res <- nonceResult{fresh: err == nil && fresh[i], err: err}
	}
}

// purge deletes, in the background, nonces signed before before: they
// can never be replayed (their timestamps are refused anyway). It runs on
// its own connection, away from the claims at the key's recent end, so
// no claim waits for it.
func (l *nonceLedger) purge(before int64) {
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		_, _ = l.db.Exec(ctx, "DELETE FROM app_nonces WHERE signed_at < ?", before)
	}()
}

// purgeDue reports, at most once a minute, the time before which nonces
// are purged (0: not now).
func (l *nonceLedger) purgeDue(now time.Time) int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.purged) <= time.Minute {
		return 0
	}
	l.purged = now
	return now.Add(-2 * Window).Unix()
}

// nonceKey is one signed request's nonce.
type nonceKey struct {
	at    int64 // the signed timestamp, Unix seconds
	app   int64
	nonce string
}

// recordNonces inserts keys and reports, per key, whether it was new.
// The same key twice in one call: the first wins. RETURNING names the
// nonces inserted.
func recordNonces(ctx context.Context, q querier, d store.Dialect, keys []nonceKey) ([]bool, error) {
	b := newNonceBatch(keys)
	step := nonceRows
	if d == store.Postgres {
		step = len(b.uniq) // one statement of arrays takes the batch
	}
	for lo := 0; lo < len(b.uniq); lo += step {
		stmt, args := insertNonces(d, b.uniq[lo:min(lo+step, len(b.uniq))])
		rows, err := q.Query(ctx, stmt, args...)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var k nonceKey
			if err := rows.Scan(&k.at, &k.app, &k.nonce); err != nil {
				rows.Close()
				return nil, err
			}
			b.inserted[k] = true
		}
		// Close reads to the end: a statement's own commit is done.
		if err := rows.Close(); err != nil {
			return nil, err
		}
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	return b.fresh(), nil
}

// nonceBatch is the keys of one call: each distinct key is inserted
// once, and only the first of a repeated key can be fresh.
type nonceBatch struct {
	keys     []nonceKey
	first    map[nonceKey]int
	uniq     []nonceKey
	inserted map[nonceKey]bool // what the insert answered
}

func newNonceBatch(keys []nonceKey) *nonceBatch {
	b := &nonceBatch{keys: keys, first: make(map[nonceKey]int, len(keys)), uniq: make([]nonceKey, 0, len(keys)),
		inserted: make(map[nonceKey]bool, len(keys))}
	for i, k := range keys {
		if _, ok := b.first[k]; !ok {
			b.first[k] = i
			b.uniq = append(b.uniq, k)
		}
	}
	return b
}

// fresh reports, per key, whether it was new.
func (b *nonceBatch) fresh() []bool {
	fresh := make([]bool, len(b.keys))
	for i, k := range b.keys {
		fresh[i] = b.first[k] == i && b.inserted[k]
	}
	return fresh
}

// querier runs a query on the database or in a transaction.
type querier interface {
	Query(ctx context.Context, q string, args ...any) (*sql.Rows, error)
}

// insertNonces is the statement that records claims, answering the
// nonces it inserted. On PostgreSQL it takes the claims as three arrays,
// so every batch runs the same prepared statement and plan; SQLite gets
// the rows as values.
func insertNonces(d store.Dialect, claims []nonceKey) (string, []any) {
	const into = nonceInsert
	if d == store.Postgres {
		rows, args := nonceRowsPg(claims)
		return into + " " + rows + nonceConflict, args
	}
	var q strings.Builder
	q.WriteString(into + " VALUES ")
	args := make([]any, 0, 3*len(claims))
	for i, c := range claims {
		if i > 0 {
			q.WriteString(", ")
		}
		q.WriteString("(?, ?, ?)")
		args = append(args, c.at, c.app, c.nonce)
	}
	q.WriteString(nonceConflict)
	return q.String(), args
}

// nonceInsert begins the statements that record nonces.
const nonceInsert = "INSERT INTO app_nonces (signed_at, app_id, nonce)"

// nonceConflict makes inserting a used nonce insert nothing, and the
// statement name the nonces it inserted.
const nonceConflict = " ON CONFLICT (signed_at, app_id, nonce) DO NOTHING RETURNING signed_at, app_id, nonce"

// nonceRowsPg is the rows of claims on PostgreSQL, as three arrays.
func nonceRowsPg(claims []nonceKey) (string, []any) {
	ats, apps, nonces := make([]int64, len(claims)), make([]int64, len(claims)), make([]string, len(claims))
	for i, c := range claims {
		ats[i], apps[i], nonces[i] = c.at, c.app, c.nonce
	}
	return "SELECT * FROM unnest(?::bigint[], ?::bigint[], ?::text[])", []any{ats, apps, nonces}
}

// cachedApp is an active app with its opened secret, kept (Apps.cache)
// for a second so that a signed request costs no query for its app.
// Rotating or revoking an app on this server drops the cache at once;
// servers sharing the database follow within the second.
type cachedApp struct {
	app    App
	secret []byte
	addrs  allowedAddrs
}
