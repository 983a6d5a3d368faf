package agent

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"govshare/internal/agent/source"
	"govshare/internal/agent/target"
	"govshare/internal/bus"
	"govshare/internal/exchange/wire"
)

// centerStub is the center as a subscription's runner sees it: it serves
// the deliveries after the node's position and takes acknowledgements, or
// answers 503 to them (the center unreachable) while refusing.
type centerStub struct {
	mu       sync.Mutex
	items    []wire.Delivery
	refusing bool
	refused  int
	acks     []wire.Ack
}

func (c *centerStub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case r.Method == http.MethodGet && r.URL.Path == wire.PathDeliveries:
		after, _ := strconv.ParseUint(r.URL.Query().Get("after"), 10, 64)
		out := wire.Deliveries{Active: true, Items: []wire.Delivery{}}
		for _, d := range c.items {
			if d.Seq > after {
				out.Items = append(out.Items, d)
			}
		}
		_ = json.NewEncoder(w).Encode(out)
	case r.Method == http.MethodPost && r.URL.Path == wire.PathAcks:
		if c.refusing {
			c.refused++
			http.Error(w, "the center is down", http.StatusServiceUnavailable)
			return
		}
		var acks []wire.Ack
		if err := json.NewDecoder(r.Body).Decode(&acks); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		c.acks = append(c.acks, acks...)
		_ = json.NewEncoder(w).Encode(map[string]any{"acknowledged": len(acks)})
	default:
		http.NotFound(w, r)
	}
}

func (c *centerStub) set(fn func(c *centerStub)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	fn(c)
}

// ack returns the last acknowledgement of seq the center took.
func (c *centerStub) ack(seq uint64) (wire.Ack, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := len(c.acks) - 1; i >= 0; i-- {
		if c.acks[i].Seq == seq {
			return c.acks[i], true
		}
	}
	return wire.Ack{}, false
}

// openNode opens a node whose data is in dir, talking plain HTTP to the
// center at url, with a SQLite target "yw"; it stands for agent.Open
// without a certificate. Closing its store is stopping the process.
func openNode(t *testing.T, dir, url string) *Agent {
	t.Helper()
	ctx := context.Background()
	b, err := bus.Open(ctx, bus.Config{StoreDir: filepath.Join(dir, "store"), Name: "govshare-agent"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	kv, err := b.JetStream().CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "agent", Storage: jetstream.FileStorage})
	if err != nil {
		b.Close()
		t.Fatal(err)
	}
	return &Agent{cfg: Config{Center: url, Targets: []Database{{Name: "yw", Kind: source.SQLite, DSN: filepath.Join(dir, "yw.db")}}},
		log: slog.New(slog.DiscardHandler), http: &http.Client{}, bus: b, state: kv, metrics: newMetrics(),
		jobs: map[int64]*jobRunner{}, subs: map[int64]*subRunner{}, runs: map[string]wire.RunResult{}, changed: make(chan struct{}, 1)}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 20s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func strp(s string) *string { return &s }

func testSpec(id int64) wire.SubscriptionSpec {
	return wire.SubscriptionSpec{ID: id, Version: 1, Target: "yw", Table: "rk_copy", Create: true, Active: true, IntervalSeconds: 1, Epoch: 1,
		Columns: []wire.DeliveredColumn{{Name: "person_id", DataType: "I", Key: true}, {Name: "name", DataType: "C", Length: 20}}}
}

// firstDelivery inserts two rows and deletes a key that is not there.
func firstDelivery(id int64) wire.Delivery {
	return wire.Delivery{Subscription: id, Epoch: 1, Seq: 1, Run: 3, Part: 1, Parts: 1, Attempt: 2, Columns: []string{"person_id", "name"},
		Rows: [][]*string{{strp("1"), strp("张*")}, {strp("2"), strp("王*")}}, Deletes: [][]string{{"9"}}}
}

// checkFirstAck waits for the center to hear of firstDelivery, with its
// counts.
func checkFirstAck(t *testing.T, c *centerStub, id int64) {
	t.Helper()
	var ack wire.Ack
	waitFor(t, "the acknowledgement of delivery #1 reaches the center", func() (ok bool) { ack, ok = c.ack(1); return ok })
	want := wire.RunCounts{Rows: 3, Inserted: 2, Missing: 1}
	if ack.Subscription != id || ack.Epoch != 1 || ack.Run != 3 || ack.Part != 1 || ack.Attempt != 2 || ack.Counts != want || ack.AppliedAt.IsZero() || ack.Error != "" {
		t.Errorf("acknowledgement %+v, want subscription %d epoch 1 run 3 part 1 attempt 2 counts %+v", ack, id, want)
	}
}

// TestAcknowledgementSurvivesAKillAfterTheCommit kills a node at the
// worst moments for a delivery's acknowledgement and checks that the
// center hears the counts once the node is back.
func TestAcknowledgementSurvivesAKillAfterTheCommit(t *testing.T) {
	ctx := context.Background()
	t.Run("killed while the center is unreachable", func(t *testing.T) {
		dir, c := t.TempDir(), &centerStub{refusing: true}
		c.items = []wire.Delivery{firstDelivery(11)}
		srv := httptest.NewServer(c)
		defer srv.Close()
		a := openNode(t, dir, srv.URL)
		r := a.startSub(ctx, testSpec(11))
		waitFor(t, "the runner applies #1 and tries to acknowledge it", func() bool {
			var n int
			c.set(func(c *centerStub) { n = c.refused })
			return n > 0
		})
		r.stop()
		r.wait()
		a.bus.Close()

		c.set(func(c *centerStub) { c.refusing = false })
		a = openNode(t, dir, srv.URL)
		defer a.bus.Close()
		r = a.startSub(ctx, testSpec(11))
		defer func() { r.stop(); r.wait() }()
		checkFirstAck(t, c, 11)
		// The next delivery goes on as usual.
		c.set(func(c *centerStub) {
			c.items = append(c.items, wire.Delivery{Subscription: 11, Epoch: 1, Seq: 2, Run: 4, Part: 1, Parts: 1, Attempt: 1,
				Columns: []string{"person_id", "name"}, Rows: [][]*string{{strp("1"), strp("赵*")}}})
		})
		var ack wire.Ack
		waitFor(t, "the acknowledgement of delivery #2", func() (ok bool) { ack, ok = c.ack(2); return ok })
		if want := (wire.RunCounts{Rows: 1, Updated: 1}); ack.Counts != want {
			t.Errorf("delivery #2 counts %+v, want %+v", ack.Counts, want)
		}
	})

	t.Run("killed right after the commit", func(t *testing.T) {
		dir, c := t.TempDir(), &centerStub{}
		srv := httptest.NewServer(c)
		defer srv.Close()
		a := openNode(t, dir, srv.URL)
		// The runner's own steps up to the commit, and nothing after it:
		// the node dies before it could note anything in its store or
		// tell the center.
		spec := testSpec(12)
		tgt, err := target.Open(source.SQLite, filepath.Join(dir, "yw.db"))
		if err != nil {
			t.Fatal(err)
		}
		r := &subRunner{a: a}
		if err := r.prepare(ctx, tgt, spec, targetColumns(spec)); err != nil {
			t.Fatal(err)
		}
		if _, err := applyDelivery(ctx, tgt, spec, targetColumns(spec), firstDelivery(12)); err != nil {
			t.Fatal(err)
		}
		tgt.Close()
		a.bus.Close()
		if _, ok := c.ack(1); ok {
			t.Fatal("the center heard of the delivery before the node was back")
		}

		// The center redelivers #1; the node skips it, and still tells
		// the center what it did with it.
		c.set(func(c *centerStub) { c.items = []wire.Delivery{firstDelivery(12)} })
		a = openNode(t, dir, srv.URL)
		defer a.bus.Close()
		r = a.startSub(ctx, spec)
		defer func() { r.stop(); r.wait() }()
		checkFirstAck(t, c, 12)
	})

	t.Run("acknowledgement kept in the store by an earlier version", func(t *testing.T) {
		dir, c := t.TempDir(), &centerStub{}
		srv := httptest.NewServer(c)
		defer srv.Close()
		a := openNode(t, dir, srv.URL)
		defer a.bus.Close()
		// An earlier node applied #1 without a note and kept its
		// acknowledgement in its store.
		spec := testSpec(13)
		tgt, err := target.Open(source.SQLite, filepath.Join(dir, "yw.db"))
		if err != nil {
			t.Fatal(err)
		}
		d := firstDelivery(13)
		if err := tgt.Ensure(ctx, spec.Table, targetColumns(spec), true); err != nil {
			t.Fatal(err)
		}
		if _, _, err := tgt.Apply(ctx, spec.Table, targetColumns(spec), streamName(spec), 1, toRows(d.Rows), toKeys(d.Deletes), nil); err != nil {
			t.Fatal(err)
		}
		tgt.Close()
		stored := wire.Ack{Subscription: 13, Epoch: 1, Seq: 1, Run: 3, Part: 1, Attempt: 2, Counts: wire.RunCounts{Rows: 3, Inserted: 2, Missing: 1},
			AppliedAt: time.Now().UTC()}
		b, _ := json.Marshal(stored)
		if _, err := a.state.Put(ctx, storedAckKey(13), b); err != nil {
			t.Fatal(err)
		}

		r := a.startSub(ctx, spec)
		defer func() { r.stop(); r.wait() }()
		checkFirstAck(t, c, 13)
		waitFor(t, "the store's copy is dropped once sent", func() bool {
			_, err := a.state.Get(ctx, storedAckKey(13))
			return err != nil
		})
	})
}
