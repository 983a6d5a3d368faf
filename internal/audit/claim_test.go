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
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		if _, err := db.Exec(ctx, "CREATE TABLE test_tokens (scope BIGINT NOT NULL, token TEXT NOT NULL, PRIMARY KEY (scope, token))"); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _, _ = db.Exec(context.Background(), "DROP TABLE test_tokens") })
		l := openLog(t, db, audit.SM3)

		// Without a claimer the claim is left to its owner.
		c := audit.NewClaim(1, 100, "n0")
		if err := l.Append(audit.WithClaim(ctx, c), audit.Event{Action: "data.query"}); err != nil {
			t.Fatal(err)
		}
		if !c.Take() {
			t.Fatal("a log without a claimer took the claim")
		}

		l.SetClaimer(tokenTable{})
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
		var mu sync.Mutex
		written := map[string]int{}
		for i := range 40 {
			for range 3 {
				wg.Go(func() {
					token := fmt.Sprintf("m%d", i)
					err := l.Append(audit.WithClaim(ctx, audit.NewClaim(1, 100, token)), audit.Event{Action: "data.query", ObjectID: token})
					if err != nil && !errors.Is(err, audit.ErrClaimUsed) {
						t.Error(err)
					}
					if err == nil {
						mu.Lock()
						written[token]++
						mu.Unlock()
					}
				})
			}
			wg.Go(func() {
				if err := l.Append(ctx, audit.Event{Action: "login"}); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		for i := range 40 {
			if n := written[fmt.Sprintf("m%d", i)]; n != 1 {
				t.Fatalf("token m%d: %d copies written", i, n)
			}
		}
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

// A batch whose claims cannot be written writes nothing — not its other
// events either — and the log goes on afterwards on the same connections.
func TestAFailedClaimWritesNothing(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		l := openLog(t, db, audit.SM3)
		appendN(t, l, 3)
		l.SetClaimer(brokenClaimer{})
		c := audit.NewClaim(1, 100, "x")
		if err := l.Append(audit.WithClaim(ctx, c), audit.Event{Action: "data.query"}); err == nil {
			t.Fatal("an event whose claim failed was written")
		}
		if settled, fresh, err := c.Settled(); !settled || fresh || err == nil {
			t.Fatalf("failed claim: settled %v fresh %v err %v", settled, fresh, err)
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
