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
	var purgeBefore int64 // 0: no purge this time
	if now.Sub(l.purged) > time.Minute {
		l.purged = now
		// Timestamps older than twice the window can never be
		// replayed: they are refused anyway.
		purgeBefore = now.Add(-2 * Window).Unix()
	}
	l.mu.Unlock()

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
// over its round trips); on SQLite, and when old nonces are purged, a
// transaction of a few statements. RETURNING names the nonces inserted:
// those were new. A claim is answered only once the statement or the
// transaction has committed.
func (l *nonceLedger) commit(ctx context.Context, batch []*nonceClaim, purgeBefore int64) {
	type key struct {
		at    int64
		app   int64
		nonce string
	}
	first := make(map[key]*nonceClaim, len(batch))
	uniq := make([]*nonceClaim, 0, len(batch))
	for _, c := range batch {
		k := key{c.signedAt, c.appID, c.nonce}
		if first[k] == nil { // the same nonce twice in one batch: the first wins
			first[k] = c
			uniq = append(uniq, c)
		}
	}
	fresh := make(map[key]bool, len(uniq))
	d := l.db.Dialect()
	insert := func(q querier) error {
		clear(fresh)
		step := nonceRows
		if d == store.Postgres {
			step = len(uniq) // one statement of arrays takes the batch
		}
		for lo := 0; lo < len(uniq); lo += step {
			stmt, args := insertNonces(d, uniq[lo:min(lo+step, len(uniq))])
			rows, err := q.Query(ctx, stmt, args...)
			if err != nil {
				return err
			}
			for rows.Next() {
				var k key
				if err := rows.Scan(&k.at, &k.app, &k.nonce); err != nil {
					rows.Close()
					return err
				}
				fresh[k] = true
			}
			// Close reads to the end: a statement's own commit is done.
			if err := rows.Close(); err != nil {
				return err
			}
			if err := rows.Err(); err != nil {
				return err
			}
		}
		return nil
	}
	var err error
	if d == store.Postgres && purgeBefore == 0 {
		err = insert(l.db)
	} else {
		err = l.db.InTx(ctx, func(tx *store.Tx) error {
			if err := insert(tx); err != nil {
				return err
			}
			if purgeBefore != 0 {
				_, err := tx.Exec(ctx, "DELETE FROM app_nonces WHERE signed_at < ?", purgeBefore)
				return err
			}
			return nil
		})
	}
	for _, c := range batch {
		k := key{c.signedAt, c.appID, c.nonce}
		c.res <- nonceResult{fresh: err == nil && first[k] == c && fresh[k], err: err}
	}
}

// querier runs a query on the database or in a transaction.
type querier interface {
	Query(ctx context.Context, q string, args ...any) (*sql.Rows, error)
}

// insertNonces is the statement that records claims, answering the
// nonces it inserted. On PostgreSQL it takes the claims as three arrays,
// so every batch runs the same prepared statement and plan; SQLite gets
// the rows as values.
func insertNonces(d store.Dialect, claims []*nonceClaim) (string, []any) {
	const tail = " ON CONFLICT (signed_at, app_id, nonce) DO NOTHING RETURNING signed_at, app_id, nonce"
	if d == store.Postgres {
		ats, apps, nonces := make([]int64, len(claims)), make([]int64, len(claims)), make([]string, len(claims))
		for i, c := range claims {
			ats[i], apps[i], nonces[i] = c.signedAt, c.appID, c.nonce
		}
		return "INSERT INTO app_nonces (signed_at, app_id, nonce) SELECT * FROM unnest(?::bigint[], ?::bigint[], ?::text[])" + tail,
			[]any{ats, apps, nonces}
	}
	var q strings.Builder
	q.WriteString("INSERT INTO app_nonces (signed_at, app_id, nonce) VALUES ")
	args := make([]any, 0, 3*len(claims))
	for i, c := range claims {
		if i > 0 {
			q.WriteString(", ")
		}
		q.WriteString("(?, ?, ?)")
		args = append(args, c.signedAt, c.appID, c.nonce)
	}
	q.WriteString(tail)
	return q.String(), args
}

// appCache keeps verified apps with their opened secrets for a short time,
// so a signed request costs no query for its app. Rotating or revoking an
// app on this server drops the cache at once; servers sharing the
// database follow within ttl.
type appCache struct {
	mu      sync.Mutex
	ttl     time.Duration
	entries map[string]cachedApp
}

type cachedApp struct {
	app    App
	secret []byte
	loaded time.Time
}

func (c *appCache) get(key string) (cachedApp, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[key]
	if !ok || time.Since(e.loaded) >= c.ttl {
		return cachedApp{}, false
	}
	return e, true
}

func (c *appCache) put(key string, e cachedApp) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries) > 10000 {
		clear(c.entries)
	}
	c.entries[key] = e
}

func (c *appCache) drop() {
	c.mu.Lock()
	clear(c.entries)
	c.mu.Unlock()
}
