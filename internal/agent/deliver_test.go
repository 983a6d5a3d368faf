package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
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
	posts    []int // acknowledgements per request taken
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
		c.posts = append(c.posts, len(acks))
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

// counted returns the acknowledgements of seq the center took that carry
// counts (a redelivery skipped is acknowledged without).
func (c *centerStub) counted(seq uint64) []wire.Ack {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []wire.Ack
	for _, a := range c.acks {
		if a.Seq == seq && a.Counts != (wire.RunCounts{}) {
			out = append(out, a)
		}
	}
	return out
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
		if _, err := applyDeliveries(ctx, tgt, spec, targetColumns(spec), []wire.Delivery{firstDelivery(12)}, nil, nil); err != nil {
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

// threeDeliveries follow firstDelivery: #2 updates key 1 and inserts key
// 3, #3 deletes key 2 and upserts key 3 unchanged.
func threeDeliveries(id int64) []wire.Delivery {
	cols := []string{"person_id", "name"}
	return []wire.Delivery{firstDelivery(id),
		{Subscription: id, Epoch: 1, Seq: 2, Run: 4, Part: 1, Parts: 2, Attempt: 1, Columns: cols, Rows: [][]*string{{strp("1"), strp("赵*")}, {strp("3"), strp("钱*")}}},
		{Subscription: id, Epoch: 1, Seq: 3, Run: 4, Part: 2, Parts: 2, Attempt: 1, Columns: cols, Rows: [][]*string{{strp("3"), strp("钱*")}}, Deletes: [][]string{{"2"}}}}
}

// threeCounts are what threeDeliveries do, applied in order.
var threeCounts = []wire.RunCounts{{Rows: 3, Inserted: 2, Missing: 1}, {Rows: 2, Inserted: 1, Updated: 1}, {Rows: 2, Unchanged: 1, Deleted: 1}}

// readTable reads the node's SQLite target table back, key order.
func readTable(t *testing.T, dir string) [][]string {
	t.Helper()
	src, err := source.Open(source.SQLite, filepath.Join(dir, "yw.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	var out [][]string
	err = src.Full(context.Background(), source.Query{Table: source.Table{Name: "rk_copy"}, Columns: []string{"person_id", "name"}}, 100, func(c source.Chunk) error {
		for _, r := range c.Rows {
			out = append(out, []string{r[0].Text, r[1].Text})
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// checkThree checks that the center heard each of threeDeliveries with
// its counts, once, and the table holds their effect.
func checkThree(t *testing.T, c *centerStub, dir string) {
	t.Helper()
	for i, want := range threeCounts {
		seq := uint64(i + 1)
		waitFor(t, fmt.Sprintf("the acknowledgement of delivery #%d", seq), func() bool { return len(c.counted(seq)) > 0 })
		for _, ack := range c.counted(seq) {
			if ack.Counts != want || ack.Subscription != 14 || ack.Epoch != 1 || ack.AppliedAt.IsZero() || ack.Error != "" {
				t.Errorf("acknowledgement of #%d: %+v, want counts %+v", seq, ack, want)
			}
		}
	}
	if got, want := readTable(t, dir), [][]string{{"1", "赵*"}, {"3", "钱*"}}; !slices.EqualFunc(got, want, slices.Equal) {
		t.Errorf("target table %v, want %v", got, want)
	}
}

// TestDeliveriesOfAPollShareOneTransaction: the deliveries a node fetched
// together are applied in one transaction of the target and acknowledged
// together; killed after that commit, the node still reports every one
// of them with its counts, and a redelivery of any has no second effect;
// a bad delivery among them is the only one refused.
func TestDeliveriesOfAPollShareOneTransaction(t *testing.T) {
	ctx := context.Background()
	t.Run("applied and acknowledged together", func(t *testing.T) {
		dir, c := t.TempDir(), &centerStub{}
		c.items = threeDeliveries(14)
		srv := httptest.NewServer(c)
		defer srv.Close()
		a := openNode(t, dir, srv.URL)
		defer a.bus.Close()
		r := a.startSub(ctx, testSpec(14))
		checkThree(t, c, dir)
		r.stop()
		r.wait()
		c.set(func(c *centerStub) {
			if !slices.Equal(c.posts, []int{3}) {
				t.Errorf("acknowledgements per request %v, want the three in one", c.posts)
			}
		})
	})

	t.Run("killed right after the commit", func(t *testing.T) {
		dir, c := t.TempDir(), &centerStub{}
		srv := httptest.NewServer(c)
		defer srv.Close()
		a := openNode(t, dir, srv.URL)
		spec := testSpec(14)
		tgt, err := target.Open(source.SQLite, filepath.Join(dir, "yw.db"))
		if err != nil {
			t.Fatal(err)
		}
		r := &subRunner{a: a}
		if err := r.prepare(ctx, tgt, spec, targetColumns(spec)); err != nil {
			t.Fatal(err)
		}
		if _, err := applyDeliveries(ctx, tgt, spec, targetColumns(spec), threeDeliveries(14), nil, nil); err != nil {
			t.Fatal(err)
		}
		tgt.Close()
		a.bus.Close()

		// The center gives out #2 again (it serves what follows the
		// node's position, so it is not applied again) …
		c.set(func(c *centerStub) { c.items = threeDeliveries(14)[1:2] })
		a = openNode(t, dir, srv.URL)
		defer a.bus.Close()
		r = a.startSub(ctx, spec)
		checkThree(t, c, dir)
		r.stop()
		r.wait()
		// … and any of them given to the target again, alone or with
		// others, has no second effect.
		tgt, err = target.Open(source.SQLite, filepath.Join(dir, "yw.db"))
		if err != nil {
			t.Fatal(err)
		}
		defer tgt.Close()
		for _, ds := range [][]wire.Delivery{threeDeliveries(14)[1:2], threeDeliveries(14)[1:], threeDeliveries(14), threeDeliveries(14)} {
			// The last time prepared ahead, as a full poll's next ones are.
			prep, err := target.Prepare(spec.Table, targetColumns(spec), streamName(spec), toBatches(ds))
			if err != nil {
				t.Fatal(err)
			}
			if len(ds) < 3 {
				prep = nil
			}
			acks, err := applyDeliveries(ctx, tgt, spec, targetColumns(spec), ds, prep, nil)
			if err != nil {
				t.Fatal(err)
			}
			for i, ack := range acks {
				if ack.Seq != ds[i].Seq || ack.Counts != (wire.RunCounts{}) || ack.AppliedAt.IsZero() || ack.Error != "" {
					t.Errorf("redelivery of #%d: acknowledged %+v, want no counts", ds[i].Seq, ack)
				}
			}
		}
		checkThree(t, c, dir)
	})

	t.Run("killed while the transaction before is acknowledged", func(t *testing.T) {
		// #1 is applied and its acknowledgement refused (the center is
		// down) while #2 and #3 are applied in the next transaction; the
		// node is killed then, and reports all three when it is back.
		dir, c := t.TempDir(), &centerStub{refusing: true}
		all := threeDeliveries(14)
		c.items = all[:1]
		srv := httptest.NewServer(c)
		defer srv.Close()
		a := openNode(t, dir, srv.URL)
		spec := testSpec(14)
		r := a.startSub(ctx, spec)
		waitFor(t, "the acknowledgement of #1 is refused", func() (ok bool) {
			c.set(func(c *centerStub) { ok = c.refused > 0 })
			return ok
		})
		c.set(func(c *centerStub) { c.items = all })
		tgt, err := target.Open(source.SQLite, filepath.Join(dir, "yw.db"))
		if err != nil {
			t.Fatal(err)
		}
		waitFor(t, "#2 and #3 are applied", func() bool {
			seq, err := tgt.Applied(ctx, streamName(spec))
			return err == nil && seq == 3
		})
		tgt.Close()
		r.stop()
		r.wait()
		a.bus.Close()

		c.set(func(c *centerStub) { c.refusing = false })
		a = openNode(t, dir, srv.URL)
		defer a.bus.Close()
		r = a.startSub(ctx, spec)
		defer func() { r.stop(); r.wait() }()
		checkThree(t, c, dir)
	})

	t.Run("a bad delivery among them", func(t *testing.T) {
		dir, c := t.TempDir(), &centerStub{}
		bad := threeDeliveries(14)
		bad[1].Rows[1][0] = strp("x")
		c.items = bad
		srv := httptest.NewServer(c)
		defer srv.Close()
		a := openNode(t, dir, srv.URL)
		defer a.bus.Close()
		r := a.startSub(ctx, testSpec(14))
		defer func() { r.stop(); r.wait() }()
		var ack wire.Ack
		waitFor(t, "the refusal of delivery #2", func() (ok bool) { ack, ok = c.ack(2); return ok })
		if ack.Error == "" || ack.Counts != (wire.RunCounts{}) {
			t.Errorf("acknowledgement of the bad delivery: %+v, want an error and no counts", ack)
		}
		if got := c.counted(1); len(got) == 0 || got[0].Counts != threeCounts[0] {
			t.Errorf("acknowledgements of #1 before it: %+v, want counts %+v", got, threeCounts[0])
		}
		if _, ok := c.ack(3); ok {
			t.Error("delivery #3 was applied after the bad one")
		}
		if got, want := readTable(t, dir), [][]string{{"1", "张*"}, {"2", "王*"}}; !slices.EqualFunc(got, want, slices.Equal) {
			t.Errorf("target table %v, want %v", got, want)
		}
	})
}
