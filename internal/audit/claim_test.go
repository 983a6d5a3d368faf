package audit_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"govshare/internal/audit"
	"govshare/internal/store"
	"govshare/internal/storetest"

	"github.com/jackc/pgx/v5"
)

// tokenTable is a Claimer over a real table: a token is fresh when its
// row is new.
type tokenTable struct{}

func (tokenTable) ClaimIn(ctx context.Context, tx *store.Tx, claims []*audit.Claim) ([]bool, error) {
	fresh := make([]bool, len(claims))
	for i, c := range claims {
		res, err := tx.Exec(ctx, "INSERT INTO test_tokens (scope, token) VALUES (?, ?) ON CONFLICT DO NOTHING", c.Scope, c.Token)
		if err != nil {
			return nil, err
		}
		n, err := res.RowsAffected()
		if err != nil {
			return nil, err
		}
		fresh[i] = n == 1
	}
	return fresh, nil
}

// tokenStatements is tokenTable that also gives its writing as SQL, which
// the log sends with its own statements on PostgreSQL.
type tokenStatements struct{ tokenTable }

func (tokenStatements) ClaimStatement(claims []*audit.Claim) audit.ClaimSQL {
	type key struct {
		scope int64
		token string
	}
	first := map[key]int{}
	var scopes []int64
	var tokens []string
	for i, c := range claims {
		k := key{c.Scope, c.Token}
		if _, ok := first[k]; !ok {
			first[k] = i
			scopes, tokens = append(scopes, c.Scope), append(tokens, c.Token)
		}
	}
	return audit.ClaimSQL{Insert: "INSERT INTO test_tokens (scope, token)", Rows: "SELECT * FROM unnest(?::bigint[], ?::text[])",
		Args: []any{scopes, tokens}, OnConflict: " ON CONFLICT DO NOTHING RETURNING scope, token", Distinct: len(first) == len(claims),
		Fresh: func(rows pgx.Rows) ([]bool, error) {
			defer rows.Close()
			inserted := map[key]bool{}
			for rows.Next() {
				var k key
				if err := rows.Scan(&k.scope, &k.token); err != nil {
					return nil, err
				}
				inserted[k] = true
			}
			fresh := make([]bool, len(claims))
			for i, c := range claims {
				k := key{c.Scope, c.Token}
				fresh[i] = first[k] == i && inserted[k]
			}
			return fresh, rows.Err()
		}}
}

// claimers are the two ways a claimer writes: its own statements in the
// log's transaction, or SQL the log sends with its own (PostgreSQL).
var claimers = []struct {
	name string
	c    audit.Claimer
}{{"statements", tokenStatements{}}, {"transaction", tokenTable{}}}

func tokensTable(t *testing.T, db *store.DB) {
	t.Helper()
	ctx := context.Background()
	if _, err := db.Exec(ctx, "CREATE TABLE test_tokens (scope BIGINT NOT NULL, token TEXT NOT NULL, PRIMARY KEY (scope, token))"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = db.Exec(context.Background(), "DROP TABLE test_tokens") })
}

// written counts, per token, the events written holding its claim.
type written struct {
	mu sync.Mutex
	n  map[string]int
}

// claim appends to l an event holding a claim of token.
func (w *written) claim(t *testing.T, l *audit.Log, token string) {
	err := l.Append(audit.WithClaim(context.Background(), audit.NewClaim(1, 100, token)), audit.Event{Action: "data.query", ObjectID: token})
	if err != nil && !errors.Is(err, audit.ErrClaimUsed) {
		t.Error(err)
	}
	if err == nil {
		w.mu.Lock()
		w.n[token]++
		w.mu.Unlock()
	}
}

// once checks that one event was written for each of the tokens
// prefix0 … prefix(n-1).
func (w *written) once(t *testing.T, prefix string, n int) {
	t.Helper()
	for i := range n {
		if got := w.n[fmt.Sprint(prefix, i)]; got != 1 {
			t.Fatalf("token %s%d: %d copies written", prefix, i, got)
		}
	}
}

func countAction(t *testing.T, l *audit.Log, action string) int {
	t.Helper()
	evs, err := l.List(context.Background(), audit.Filter{Action: action, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	return len(evs)
}

// An event carrying a request's claim is written only when the claim is
// fresh, in the same transaction; a used claim drops its event, and the
// chain stays whole. Copies arriving at once: exactly one is written.
func TestEventsWriteTheirClaimsOnce(t *testing.T) {
	for _, cl := range claimers {
		t.Run(cl.name, func(t *testing.T) { testEventsWriteTheirClaimsOnce(t, cl.c) })
	}
}

func testEventsWriteTheirClaimsOnce(t *testing.T, claimer audit.Claimer) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		tokensTable(t, db)
		l := openLog(t, db, audit.SM3)

		// Without a claimer the claim is left to its owner.
		c := audit.NewClaim(1, 100, "n0")
		if err := l.Append(audit.WithClaim(ctx, c), audit.Event{Action: "data.query"}); err != nil {
			t.Fatal(err)
		}
		if !c.Take() {
			t.Fatal("a log without a claimer took the claim")
		}

		l.SetClaimer(claimer)
		c = audit.NewClaim(1, 100, "n1")
		cctx := audit.WithClaim(ctx, c)
		if err := l.Append(cctx, audit.Event{Action: "data.query"}); err != nil {
			t.Fatal(err)
		}
		if settled, fresh, err := c.Settled(); !settled || !fresh || err != nil || c.Take() {
			t.Fatalf("claim after its event: settled %v fresh %v err %v", settled, fresh, err)
		}
		// A second event of the same request does not carry the claim again.
		if err := l.Append(cctx, audit.Event{Action: "data.note"}); err != nil {
			t.Fatal(err)
		}
		// A replay: the same token in a new request.
		again := audit.NewClaim(1, 100, "n1")
		if err := l.Append(audit.WithClaim(ctx, again), audit.Event{Action: "data.query"}); !errors.Is(err, audit.ErrClaimUsed) {
			t.Fatalf("replayed claim: %v", err)
		}
		if _, fresh, _ := again.Settled(); fresh {
			t.Fatal("a replayed claim was fresh")
		}
		// The same token under another scope is another token.
		if err := l.Append(audit.WithClaim(ctx, audit.NewClaim(2, 100, "n1")), audit.Event{Action: "data.query"}); err != nil {
			t.Fatal(err)
		}
		// Copies at once, mixed with events without claims: one copy of
		// each token is written, whatever the batching.
		var wg sync.WaitGroup
		w := &written{n: map[string]int{}}
		for i := range 40 {
			for range 3 {
				wg.Go(func() { w.claim(t, l, fmt.Sprintf("m%d", i)) })
			}
			wg.Go(func() {
				if err := l.Append(ctx, audit.Event{Action: "login"}); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		w.once(t, "m", 40)
		if n := countAction(t, l, "data.query"); n != 1+1+1+40 {
			t.Fatalf("%d data.query events, want 43", n)
		}
		if n := countAction(t, l, "login"); n != 40 {
			t.Fatalf("%d login events, want 40", n)
		}
		rep := mustVerify(t, l)
		if rep.Break != nil || rep.Checked != 1+1+1+1+40+40 {
			t.Fatalf("chain: %+v", rep)
		}
	})
}

// brokenClaimer's statement fails.
type brokenClaimer struct{}

func (brokenClaimer) ClaimIn(ctx context.Context, tx *store.Tx, _ []*audit.Claim) ([]bool, error) {
	_, err := tx.Exec(ctx, "INSERT INTO no_such_table (x) VALUES (?)", 1)
	return nil, err
}

// brokenStatements' SQL fails too.
type brokenStatements struct{ brokenClaimer }

func (brokenStatements) ClaimStatement(claims []*audit.Claim) audit.ClaimSQL {
	return audit.ClaimSQL{Insert: "INSERT INTO no_such_table (x)", Rows: "SELECT * FROM unnest(?::bigint[])", Args: []any{[]int64{1}},
		OnConflict: " RETURNING x", Distinct: true, Fresh: func(rows pgx.Rows) ([]bool, error) {
			rows.Close()
			return make([]bool, len(claims)), rows.Err()
		}}
}

// A batch whose claims cannot be written writes nothing — not its other
// events either — and the log goes on afterwards on the same connections.
func TestAFailedClaimWritesNothing(t *testing.T) {
	for _, claimer := range []audit.Claimer{brokenStatements{}, brokenClaimer{}} {
		t.Run(fmt.Sprintf("%T", claimer), func(t *testing.T) { testAFailedClaimWritesNothing(t, claimer) })
	}
}

func testAFailedClaimWritesNothing(t *testing.T, claimer audit.Claimer) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		l := openLog(t, db, audit.SM3)
		appendN(t, l, 3)
		l.SetClaimer(claimer)
		c := audit.NewClaim(1, 100, "x")
		if err := l.Append(audit.WithClaim(ctx, c), audit.Event{Action: "data.query"}); err == nil {
			t.Fatal("an event whose claim failed was written")
		}
		if settled, fresh, err := c.Settled(); !settled || fresh || err == nil {
			t.Fatalf("failed claim: settled %v fresh %v err %v", settled, fresh, err)
		}
		// A server that has not written yet (it does not know the head).
		other := openLog(t, db, audit.SM3)
		other.SetClaimer(claimer)
		if err := other.Append(audit.WithClaim(ctx, audit.NewClaim(1, 100, "z")), audit.Event{Action: "data.query"}); err == nil {
			t.Fatal("an event whose claim failed was written by another server")
		}
		l.SetClaimer(nil)
		for range 20 { // more appends than the pool has connections
			appendN(t, l, 1)
		}
		if rep := mustVerify(t, l); rep.Break != nil || rep.Checked != 23 || countAction(t, l, "data.query") != 0 {
			t.Fatalf("after a failed claim: %+v", rep)
		}
	})
}

// A batch whose events cannot be inserted (here: a row already holds the
// next seq) writes nothing — not its claims, which stay usable — and the
// log goes on once the obstacle is gone.
func TestABatchThatCannotBeInsertedWritesNothing(t *testing.T) {
	for _, cl := range claimers {
		t.Run(cl.name, func(t *testing.T) {
			storetest.Each(t, func(t *testing.T, db *store.DB) {
				ctx := context.Background()
				tokensTable(t, db)
				l := openLog(t, db, audit.SM3)
				l.SetClaimer(cl.c)
				appendN(t, l, 3)
				if _, err := db.Exec(ctx, `INSERT INTO audit_events SELECT 4, occurred_at, actor_type, actor_id, actor_name, dept_id, action,
					object_type, object_id, result, client_addr, request_id, purpose, details, prev_hash, hash FROM audit_events WHERE seq = 3`); err != nil {
					t.Fatal(err)
				}
				err := l.Append(audit.WithClaim(ctx, audit.NewClaim(1, 100, "y")), audit.Event{Action: "data.query"})
				if err == nil || errors.Is(err, audit.ErrClaimUsed) {
					t.Fatalf("a batch whose seq was taken: %v", err)
				}
				var n int
				if err := db.QueryRow(ctx, "SELECT COUNT(*) FROM test_tokens").Scan(&n); err != nil || n != 0 {
					t.Fatalf("claims written by a failed batch: %d %v", n, err)
				}
				if _, err := db.Exec(ctx, "DELETE FROM audit_events WHERE seq = 4"); err != nil {
					t.Fatal(err)
				}
				if err := l.Append(audit.WithClaim(ctx, audit.NewClaim(1, 100, "y")), audit.Event{Action: "data.query"}); err != nil {
					t.Fatalf("the claim of a failed batch: %v", err)
				}
				for range 20 { // more appends than the pool has connections
					appendN(t, l, 1)
				}
				if rep := mustVerify(t, l); !rep.OK() || rep.Checked != 24 || countAction(t, l, "data.query") != 1 {
					t.Fatalf("after a failed batch: %+v %v", rep, rep.Break)
				}
			})
		})
	}
}

// Two servers take claims into one chain: each token is written once,
// whichever server has it first, while each server often finds the head
// moved since its last batch.
func TestClaimsAcrossTwoServers(t *testing.T) {
	for _, cl := range claimers {
		t.Run(cl.name, func(t *testing.T) {
			storetest.Each(t, func(t *testing.T, db *store.DB) {
				tokensTable(t, db)
				logs := []*audit.Log{openLog(t, db, audit.SM3), openLog(t, db, audit.SM3)}
				for _, l := range logs {
					l.SetClaimer(cl.c)
				}
				var wg sync.WaitGroup
				w := &written{n: map[string]int{}}
				for i := range 60 {
					for copyNo := range 2 {
						wg.Go(func() { w.claim(t, logs[(i+copyNo)%2], fmt.Sprintf("t%d", i)) })
					}
				}
				wg.Wait()
				w.once(t, "t", 60)
				if rep := mustVerify(t, logs[0]); !rep.OK() || rep.Checked != 60 {
					t.Fatalf("chain: %+v %v", rep, rep.Break)
				}
			})
		})
	}
}
