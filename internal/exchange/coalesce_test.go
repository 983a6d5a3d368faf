package exchange_test

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"govshare/internal/exchange"
	"govshare/internal/exchange/wire"
	"govshare/internal/store"
	"govshare/internal/storetest"
)

// intakeRig sends a job's batches to the center's bus the way the node
// endpoint stores them, with the intake started when the test says.
type intakeRig struct {
	t      *testing.T
	c      *center
	db     *store.DB
	nodeID int64
	job    exchange.Job
	mode   string
	runNo  int64 // of the batches made
}

// newIntakeRig makes a job of mode (key, unless full), whose batches
// accept maxErrors problem records each (0: the default).
func newIntakeRig(t *testing.T, db *store.DB, mode string, maxErrors int) *intakeRig {
	t.Helper()
	c := newCenterStopped(t, db)
	nodeID, _, _, _ := c.enrol(t, c.gaj, c.gajDept, "gaj-node")
	spec := wire.JobSpec{Name: "人口归集", Resource: c.resource.Code, Source: "hjk", Table: "people",
		Mapping: []wire.ColumnMapping{{Column: "id", Item: "person_id"}, {Column: "xm", Item: "name"}, {Column: "qh", Item: "region_code"},
			{Column: "sr", Item: "income"}, {Column: "gxsj", Item: "updated_at"}},
		Mode: wire.ModeKey, IncColumn: "id", Schedule: wire.ScheduleOnce, MaxErrors: maxErrors}
	if mode == wire.ModeFull {
		spec.Mode, spec.IncColumn = wire.ModeFull, ""
	}
	job, err := c.ex.CreateJob(context.Background(), c.gaj, nodeID, spec)
	if err != nil {
		t.Fatal(err)
	}
	return &intakeRig{t: t, c: c, db: db, nodeID: nodeID, job: job, mode: spec.Mode, runNo: 1}
}

var rigColumns = []string{"person_id", "name", "region_code", "income", "updated_at"}

func rigRow(key int, name string) []*string {
	vals := []string{strconv.Itoa(key), name, "110101", "1000.50", "2026-01-02 03:04:05"}
	row := make([]*string, len(vals))
	for i := range vals {
		row[i] = &vals[i]
	}
	return row
}

// batch is seq of the current run with the people of keys [from, to).
func (g *intakeRig) batch(seq int64, from, to int) wire.Batch {
	b := wire.Batch{ID: exchange.BatchID(g.nodeID, g.job.ID, g.runNo, seq), JobID: g.job.ID, Version: g.job.Version, Run: g.runNo, Seq: seq, Mode: g.mode,
		Kind: wire.KindRows, Columns: rigColumns, ExtractedAt: time.Now()}
	for k := from; k < to; k++ {
		b.Rows = append(b.Rows, rigRow(k, personName(k)))
	}
	return b
}

// marker ends the current run after seq-1 batches of rows upserts.
func (g *intakeRig) marker(seq int64, rows int64) wire.Batch {
	return wire.Batch{ID: exchange.BatchID(g.nodeID, g.job.ID, g.runNo, seq), JobID: g.job.ID, Version: g.job.Version, Run: g.runNo, Seq: seq, Mode: g.mode,
		Kind: wire.KindRows, Columns: rigColumns, Last: true, Batches: seq, Total: &wire.RunCounts{Rows: rows, Upserts: rows}, ExtractedAt: time.Now()}
}

// send stores batches on the bus. A message id of its own (again) makes
// the bus keep a batch sent before a second time, as when the center
// died after applying it and before acknowledging it.
func (g *intakeRig) send(again string, batches ...wire.Batch) {
	g.t.Helper()
	for _, b := range batches {
		body, err := wire.Encode(b)
		if err != nil {
			g.t.Fatal(err)
		}
		m := &nats.Msg{Subject: exchange.SubjectIn(g.nodeID, g.job.ID), Data: body, Header: nats.Header{}}
		m.Header.Set(jetstream.MsgIDHeader, b.ID+again)
		if _, err := g.c.bus.JetStream().PublishMsg(context.Background(), m); err != nil {
			g.t.Fatal(err)
		}
	}
}

// run is the center's side of the current run.
func (g *intakeRig) run() exchange.Run {
	g.t.Helper()
	runs, err := g.c.ex.Runs(context.Background(), g.c.admin, exchange.RunFilter{JobID: g.job.ID})
	if err != nil {
		g.t.Fatal(err)
	}
	for _, r := range runs {
		if r.RunNo == g.runNo {
			return r
		}
	}
	return exchange.Run{}
}

// drained waits until the intake took every batch on the bus and the run
// counted want batches.
func (g *intakeRig) drained(want int64) exchange.Run {
	g.t.Helper()
	var r exchange.Run
	eventually(g.t, 30*time.Second, "batches taken", func() (bool, string) {
		st, err := g.c.bus.JetStream().Stream(context.Background(), "GOVSHARE_EXCHANGE_IN")
		if err != nil {
			return false, err.Error()
		}
		info, err := st.Info(context.Background())
		if err != nil {
			return false, err.Error()
		}
		r = g.run()
		return info.State.Msgs == 0 && r.BatchesRecv == want, fmt.Sprintf("%d on the bus, %d counted", info.State.Msgs, r.BatchesRecv)
	})
	return r
}

func (g *intakeRig) count(q string, args ...any) int64 {
	g.t.Helper()
	var n int64
	if err := g.db.QueryRow(context.Background(), q, args...).Scan(&n); err != nil {
		g.t.Fatalf("%s: %v", q, err)
	}
	return n
}

// pipelineBatches counts the resource's applied batches.
func (g *intakeRig) pipelineBatches() int64 {
	return g.count("SELECT COUNT(*) FROM resource_batches WHERE resource_id = ? AND state = 'applied'", g.c.resource.ID)
}

func (g *intakeRig) records() int64 {
	return g.count(`SELECT COUNT(*) FROM "` + g.c.resource.Table + `" WHERE "_deleted_at" IS NULL`)
}

// Batches of a run waiting on the bus are taken as one batch of the
// pipeline, and each is still counted once: given out again — alone,
// with others, or in a group cut differently — a batch already taken has
// no second effect.
func TestQueuedBatchesOfARunAreTakenTogetherAndOnce(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		g := newIntakeRig(t, db, wire.ModeKey, 0)
		g.send("", g.batch(1, 1, 101), g.batch(2, 101, 201), g.batch(3, 201, 301))
		g.c.start(t)
		r := g.drained(3)
		if n := g.pipelineBatches(); n != 1 {
			t.Fatalf("three waiting batches became %d pipeline batches, want 1", n)
		}
		if r.Received.Rows != 300 || r.Received.Inserted != 300 || g.records() != 300 {
			t.Fatalf("after the first group: received %+v, %d records", r.Received, g.records())
		}

		// Batches 2 and 3 come again, in one group with 4 and 5, which
		// are new: only these are applied.
		g.send("-again", g.batch(2, 101, 201), g.batch(3, 201, 301))
		g.send("", g.batch(4, 301, 401), g.batch(5, 401, 501))
		r = g.drained(5)
		if n := g.pipelineBatches(); n != 2 {
			t.Fatalf("pipeline batches after the second group: %d, want 2", n)
		}
		if r.Received.Rows != 500 || r.Received.Inserted != 500 || r.Received.Unchanged != 0 || g.records() != 500 {
			t.Fatalf("after the second group: received %+v, %d records", r.Received, g.records())
		}

		// All five again, one by one as a group, then the run's end.
		g.send("-again-2", g.batch(1, 1, 101), g.batch(2, 101, 201), g.batch(3, 201, 301), g.batch(4, 301, 401), g.batch(5, 401, 501))
		g.send("", g.marker(6, 500))
		r = g.drained(6)
		if r.State != "complete" || r.Received.Rows != 500 || r.Received.Inserted != 500 || r.Received.Unchanged != 0 || r.BatchesRecv != 6 {
			t.Fatalf("the run: %+v", r)
		}
		if n := g.pipelineBatches(); n != 2 || g.records() != 500 {
			t.Fatalf("%d pipeline batches, %d records; want 2 and 500", n, g.records())
		}
		if h := g.count(`SELECT COUNT(*) FROM "` + g.c.resource.Table + `_hist"`); h != 0 {
			t.Fatalf("%d states in the history: a batch was applied twice", h)
		}
		// Every bus batch's row names the pipeline batch that took it.
		if n := g.count("SELECT COUNT(DISTINCT ref) FROM exchange_run_batches WHERE run_id = ? AND seq BETWEEN 1 AND 5", r.ID); n != 2 {
			t.Fatalf("the bus batches name %d pipeline batches, want 2", n)
		}
	})
}

// A group the pipeline would put a record of aside is taken one batch at
// a time, so that every record ends as it would have, batch after batch:
// a key repeated in a later batch is an update, not a repeat within a
// batch, and the problem record is quarantined under its own batch and
// row.
func TestAGroupWithARecordPutAsideIsTakenBatchByBatch(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		g := newIntakeRig(t, db, wire.ModeKey, 0)
		second := g.batch(2, 101, 201)
		second.Rows[49] = rigRow(150, "") // the name is required
		third := g.batch(3, 201, 301)
		third.Rows = append(third.Rows, rigRow(50, "王改名"))
		g.send("", g.batch(1, 1, 101), second, third, g.marker(4, 301))
		g.c.start(t)
		r := g.drained(4)
		c := r.Received
		if r.State != "complete" || c.Rows != 301 || c.Inserted != 299 || c.Updated != 1 || c.Rejected != 1 {
			t.Fatalf("the run: %s, received %+v", r.State, c)
		}
		if g.records() != 299 {
			t.Fatalf("%d records, want 299", g.records())
		}
		var name string
		if err := db.QueryRow(context.Background(), `SELECT name FROM "`+g.c.resource.Table+`" WHERE person_id = 50`).Scan(&name); err != nil || name != "王改名" {
			t.Fatalf("person 50: %q %v", name, err)
		}
		var client string
		var row int64
		if err := db.QueryRow(context.Background(), `SELECT b.client_batch_id, q.row_no FROM resource_quarantine q JOIN resource_batches b ON b.id = q.batch_id
			WHERE q.resource_id = ?`, g.c.resource.ID).Scan(&client, &row); err != nil {
			t.Fatal(err)
		}
		if client != second.ID || row != 50 {
			t.Fatalf("the problem record is quarantined as row %d of batch %q, want row 50 of %q", row, client, second.ID)
		}
	})
}

// A key sent again in a later batch of a group updates its record, as it
// would batch after batch, though the pipeline would count the group's
// second row of a key as a repeat.
func TestAKeyInTwoBatchesOfAGroupIsAnUpdate(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		g := newIntakeRig(t, db, wire.ModeKey, 0)
		third := g.batch(3, 201, 301)
		third.Rows = append(third.Rows, rigRow(50, "王改名"))
		g.send("", g.batch(1, 1, 101), g.batch(2, 101, 201), third, g.marker(4, 301))
		g.c.start(t)
		r := g.drained(4)
		c := r.Received
		if r.State != "complete" || c.Rows != 301 || c.Inserted != 300 || c.Updated != 1 || c.Rejected != 0 {
			t.Fatalf("the run: %s, received %+v", r.State, c)
		}
		if n := g.count("SELECT COUNT(*) FROM resource_quarantine WHERE resource_id = ?", g.c.resource.ID); n != 0 || g.records() != 300 {
			t.Fatalf("%d records quarantined, %d records; want 0 and 300", n, g.records())
		}
	})
}

// A full run over a filled resource deletes at its end the records whose
// keys the source no longer has; a batch of it refused for too many
// problem records still says its keys are at the source.
func TestAFullRunKeepsTheRecordsOfARefusedBatch(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		g := newIntakeRig(t, db, wire.ModeFull, 5)
		g.send("", g.batch(1, 1, 101), g.batch(2, 101, 201), g.batch(3, 201, 301), g.marker(4, 300))
		g.c.start(t)
		if r := g.drained(4); r.State != "complete" || g.records() != 300 {
			t.Fatalf("first run: %s, %d records", r.State, g.records())
		}
		// The second run no longer has people 281..300; its second batch
		// has ten problem records, five more than a batch may.
		g.runNo = 2
		second := g.batch(2, 101, 201)
		for i := range 10 {
			second.Rows[i] = rigRow(101+i, "")
		}
		g.send("", g.batch(1, 1, 101), second, g.batch(3, 201, 281), g.marker(4, 280))
		r := g.drained(4)
		if r.Received.Rejected != 100 || r.KeyDeletes != 20 {
			t.Fatalf("second run: received %+v, %d deleted for their keys; want 100 rejected and 20 deleted", r.Received, r.KeyDeletes)
		}
		if g.records() != 280 {
			t.Fatalf("%d records after the second run, want 280: the refused batch's records were deleted", g.records())
		}
	})
}
