package audit_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"govshare/internal/audit"
	"govshare/internal/store"
	"govshare/internal/storetest"
)

var testKey = []byte("0123456789abcdef0123456789abcdef")

func openLog(t *testing.T, db *store.DB, alg string) *audit.Log {
	t.Helper()
	l, err := audit.Open(db, audit.Options{Algorithm: alg, Key: testKey})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func appendN(t *testing.T, l *audit.Log, n int) {
	t.Helper()
	ctx := audit.WithRequest(context.Background(), audit.Request{ClientAddr: "127.0.0.1", RequestID: "req-1"})
	for i := 0; i < n; i++ {
		if err := l.Append(ctx, audit.Event{ActorType: audit.ActorUser, ActorID: "1", ActorName: "admin",
			Action: "user.create", ObjectType: "user", ObjectID: fmt.Sprint(i), Details: audit.Details(map[string]any{"i": i})}); err != nil {
			t.Fatal(err)
		}
	}
}

func mustVerify(t *testing.T, l *audit.Log) audit.Report {
	t.Helper()
	rep, err := l.Verify(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func TestConcurrentAppendsFormOneChain(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		l := openLog(t, db, audit.SM3)
		var wg sync.WaitGroup
		for w := 0; w < 16; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < 20; i++ {
					if err := l.Append(context.Background(), audit.Event{Action: "login", ActorName: fmt.Sprintf("w%d", w)}); err != nil {
						t.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
		rep := mustVerify(t, l)
		if !rep.OK() || rep.Checked != 320 || rep.LastSeq != 320 {
			t.Fatalf("verify: %+v %v", rep, rep.Break)
		}
	})
}

// Two servers share the database and so one chain: each appends after
// the head it knows, and finds out when the other moved it.
func TestTwoServersAppendToOneChain(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		logs := []*audit.Log{openLog(t, db, audit.SM3), openLog(t, db, audit.SM3)}
		var wg sync.WaitGroup
		for w := range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range 25 {
					// Turns alternate between the servers, so each often
					// finds the head moved since its last batch.
					l := logs[(w+i)%2]
					if err := l.Append(context.Background(), audit.Event{Action: "login", ActorName: fmt.Sprintf("w%d-%d", w, i)}); err != nil {
						t.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
		rep := mustVerify(t, logs[0])
		if !rep.OK() || rep.Checked != 400 || rep.LastSeq != 400 {
			t.Fatalf("verify: %+v %v", rep, rep.Break)
		}
	})
}

func TestVerifyCatchesTampering(t *testing.T) {
	cases := []struct {
		name    string
		tamper  []string // SQL run directly against the database
		wantSeq int64
		reason  string
	}{
		{"edited event", []string{"UPDATE audit_events SET details = '{\"i\":99}' WHERE seq = 4"}, 4, "altered"},
		{"edited actor", []string{"UPDATE audit_events SET actor_name = 'someone' WHERE seq = 7"}, 7, "altered"},
		{"deleted event", []string{"DELETE FROM audit_events WHERE seq = 5"}, 5, "deleted"},
		{"deleted last event", []string{"DELETE FROM audit_events WHERE seq = 10"}, 10, "deleted"},
		{"inserted event in the middle", []string{
			"UPDATE audit_events SET seq = seq + 1000 WHERE seq > 3",
			"UPDATE audit_events SET seq = seq - 999 WHERE seq > 1000",
			"INSERT INTO audit_events (seq, occurred_at, actor_type, actor_id, actor_name, action, object_type, object_id, result, client_addr, request_id, purpose, details, prev_hash, hash) SELECT 4, occurred_at, actor_type, actor_id, 'forged', action, object_type, object_id, result, client_addr, request_id, purpose, details, hash, 'sm3:00' FROM audit_events WHERE seq = 3",
		}, 4, "altered"},
		{"inserted event at the end", []string{
			"INSERT INTO audit_events (seq, occurred_at, actor_type, actor_id, actor_name, action, object_type, object_id, result, client_addr, request_id, purpose, details, prev_hash, hash) SELECT 11, occurred_at, actor_type, actor_id, actor_name, action, object_type, object_id, result, client_addr, request_id, purpose, details, hash, hash FROM audit_events WHERE seq = 10",
		}, 11, ""},
		{"head rewound", []string{"UPDATE audit_head SET seq = 9"}, 9, "head"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			storetest.Each(t, func(t *testing.T, db *store.DB) {
				l := openLog(t, db, audit.SM3)
				appendN(t, l, 10)
				if rep := mustVerify(t, l); !rep.OK() {
					t.Fatalf("clean log fails: %v", rep.Break)
				}
				for _, q := range c.tamper {
					if _, err := db.SQL().Exec(q); err != nil {
						t.Fatalf("tamper %q: %v", q, err)
					}
				}
				rep := mustVerify(t, l)
				if rep.OK() {
					t.Fatal("tampering not detected")
				}
				if rep.Break.Seq != c.wantSeq || !strings.Contains(rep.Break.Reason, c.reason) {
					t.Fatalf("problem = %v, want seq %d with %q", rep.Break, c.wantSeq, c.reason)
				}
			})
		})
	}
}

func TestSHA256ChainVerifies(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		l := openLog(t, db, audit.SHA256)
		appendN(t, l, 5)
		if rep := mustVerify(t, l); !rep.OK() {
			t.Fatal(rep.Break)
		}
		evs, err := l.List(context.Background(), audit.Filter{})
		if err != nil || !strings.HasPrefix(evs[0].Hash, "sha256:") {
			t.Fatalf("hash = %v, %v", evs, err)
		}
	})
}

func TestRetentionRemovesPrefixAndChainStillVerifies(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		l := openLog(t, db, audit.SM3)
		old := time.Now().AddDate(-6, 0, 0)
		for i := 0; i < 5; i++ {
			if err := l.Append(context.Background(), audit.Event{Action: "old", Time: old}); err != nil {
				t.Fatal(err)
			}
		}
		appendN(t, l, 3)
		if _, err := l.Prune(context.Background(), 30*24*time.Hour, time.Now()); err == nil {
			t.Fatal("retention under 6 months accepted")
		}
		n, err := l.Prune(context.Background(), 5*365*24*time.Hour, time.Now())
		if err != nil || n != 5 {
			t.Fatalf("pruned %d, %v", n, err)
		}
		rep := mustVerify(t, l)
		if !rep.OK() || rep.Checkpoint != 5 || rep.Checked != 3 {
			t.Fatalf("after prune: %+v %v", rep, rep.Break)
		}
		appendN(t, l, 2)
		if rep := mustVerify(t, l); !rep.OK() {
			t.Fatal(rep.Break)
		}
		// A forged checkpoint that hides more events is caught.
		if _, err := db.SQL().Exec("UPDATE audit_checkpoints SET seq = 6"); err != nil {
			t.Fatal(err)
		}
		if rep := mustVerify(t, l); rep.OK() {
			t.Fatal("forged checkpoint not detected")
		}
	})
}

func TestFilterAndPaging(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		l := openLog(t, db, audit.SM3)
		appendN(t, l, 7)
		_ = l.Append(context.Background(), audit.Event{Action: "login.failed", ActorName: "bob", Result: audit.ResultDenied})
		got, err := l.List(context.Background(), audit.Filter{Action: "user.", Limit: 3})
		if err != nil || len(got) != 3 || got[0].Seq != 7 {
			t.Fatalf("page 1: %v %v", got, err)
		}
		got, _ = l.List(context.Background(), audit.Filter{Action: "user.", BeforeSeq: got[2].Seq, Limit: 10})
		if len(got) != 4 || got[0].Seq != 4 {
			t.Fatalf("page 2: %+v", got)
		}
		got, _ = l.List(context.Background(), audit.Filter{Result: audit.ResultDenied})
		if len(got) != 1 || got[0].ActorName != "bob" {
			t.Fatalf("denied: %+v", got)
		}
	})
}

func TestCloseWritesEveryEventOnce(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		l, err := audit.Open(db, audit.Options{Key: testKey})
		if err != nil {
			t.Fatal(err)
		}
		appendN(t, l, 3)
		l.Close()
		var n int
		if err := db.QueryRow(context.Background(), "SELECT COUNT(*) FROM audit_events").Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != 3 {
			t.Fatalf("3 appends and a close left %d events", n)
		}
		if err := l.Append(context.Background(), audit.Event{Action: "late"}); err != audit.ErrClosed {
			t.Fatalf("append after close: %v", err)
		}
	})
}
