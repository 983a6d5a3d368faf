//go:build linux

package exchange_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"govshare/internal/agent"
	"govshare/internal/agent/source"
	"govshare/internal/catalog"
	"govshare/internal/exchange"
	"govshare/internal/exchange/wire"
)

// syncEnv is one provider node syncing a PostgreSQL table of n rows
// through the center into a consumer node's MariaDB table: every part a
// process, the bus an external NATS (one server or a cluster), the
// provider's link to the node endpoint through a proxy the test can cut.
type syncEnv struct {
	h            *harness
	n            int
	nats         []*natsServer
	c            *center
	link         *proxy
	prov         *node
	cons         *node
	srcDSN       string
	tgtDSN       string
	job          exchange.Job
	sub          exchange.Subscription
	consumerRows func() (int64, error)
	started      time.Time
}

// faultItems are the fault tests' data items: nothing masked, no quality
// rule, so that the consumer's table must equal the source exactly.
var faultItems = []catalog.DataItem{
	{Name: "编号", MachineName: "person_id", DataType: "I", Length: 18, Key: true},
	{Name: "姓名", MachineName: "name", DataType: "C", Length: 20},
	{Name: "行政区划", MachineName: "region_code", DataType: "C", Length: 6},
	{Name: "月收入", MachineName: "income", DataType: "N", Length: 12},
	{Name: "更新时间", MachineName: "updated_at", DataType: "T", Length: 14},
}

var faultMapping = []wire.ColumnMapping{{Column: "id", Item: "person_id"}, {Column: "xm", Item: "name"}, {Column: "qh", Item: "region_code"},
	{Column: "sr", Item: "income"}, {Column: "gxsj", Item: "updated_at"}}

// newSyncEnv starts everything but the job: the sync begins with start.
// cluster asks for three NATS servers (streams with three replicas).
func newSyncEnv(h *harness, n int, cluster bool) *syncEnv {
	h.t.Helper()
	e := &syncEnv{h: h, n: n}
	setup := time.Now()
	if cluster {
		ports := []int{freePort(h.t), freePort(h.t), freePort(h.t)}
		var routes []string
		for _, p := range ports {
			routes = append(routes, fmt.Sprintf("nats://127.0.0.1:%d", p))
		}
		for i, p := range ports {
			e.nats = append(e.nats, h.startNATS(fmt.Sprintf("nats-%c", 'a'+i), p, routes))
		}
	} else {
		e.nats = append(e.nats, h.startNATS("nats", 0, nil))
	}
	var urls []string
	for _, s := range e.nats {
		urls = append(urls, s.url)
	}
	h.waitJetStream(strings.Join(urls, ","))
	replicas := 1
	if cluster {
		replicas = 3
	}
	e.c = h.startCenter(centerSpec{items: faultItems, granted: []string{"person_id", "name", "region_code", "income", "updated_at"},
		nats: strings.Join(urls, ","), replicas: replicas})
	e.link = h.newProxy(e.c.nodeAddr)

	e.srcDSN = h.postgresSchema()
	h.loadPeople(h.pgConn(e.srcDSN), n)
	e.tgtDSN = h.mysqlDatabase()
	tgt := h.openSQL("mysql", e.tgtDSN)
	e.consumerRows = func() (int64, error) {
		n, err := count(tgt, "SELECT COUNT(*) FROM rk_copy")
		if err != nil && strings.Contains(err.Error(), "doesn't exist") {
			return 0, nil
		}
		return n, err
	}

	e.prov = e.c.enrolNode(provider, "gaj-node", "https://"+e.link.addr(), []agent.Database{{Name: "hjk", Kind: "postgres", DSN: e.srcDSN}}, nil)
	e.cons = e.c.enrolNode(consumer, "mzj-node", e.c.node, nil, []agent.Database{{Name: "yw", Kind: "mysql", DSN: e.tgtDSN}})
	e.sub = e.c.subscribe(exchange.SubscriptionRequest{GrantID: e.c.grantID, NodeID: e.cons.id, Target: "yw", Table: "rk_copy", Create: true, Realtime: true})
	h.t.Logf("setup: %s", time.Since(setup).Round(10*time.Millisecond))
	return e
}

// start defines the job; the provider's node picks it up and syncs.
func (e *syncEnv) start() {
	e.h.t.Helper()
	e.started = time.Now()
	e.job = e.c.createJob(e.prov.id, wire.JobSpec{Name: "人口同步", Resource: e.c.resource.Code, Source: "hjk", Table: "people", Mapping: faultMapping,
		Mode: wire.ModeTime, IncColumn: "gxsj", Schedule: wire.ScheduleCont, IntervalSeconds: 1, Running: true})
}

// progress is how far the sync is, in rows, at one place.
type progress struct {
	where string
	rows  func(e *syncEnv) (int64, error)
}

var (
	atProvider = progress{"extracted by the provider's node", func(e *syncEnv) (int64, error) {
		return int64(e.prov.metric("govshare_node_rows_extracted_total")), nil
	}}
	atCenter   = progress{"held by the center", func(e *syncEnv) (int64, error) { return e.c.records() }}
	atConsumer = progress{"applied at the consumer", func(e *syncEnv) (int64, error) { return e.consumerRows() }}
)

// waitFor waits until the sync has reached at rows at p.
func (e *syncEnv) waitFor(p progress, at int64) int64 {
	e.h.t.Helper()
	var got int64
	e.h.eventually(5*time.Minute, fmt.Sprintf("%d rows %s", at, p.where), func() (bool, string) {
		n, err := p.rows(e)
		if err != nil {
			return false, err.Error()
		}
		got = n
		return n >= at, fmt.Sprintf("%d rows", n)
	})
	return got
}

// converged waits until the consumer's table holds every row and every
// run is reconciled, then checks the two tables are equal by checksum
// and the runs add up: zero lost, zero duplicated.
func (e *syncEnv) converged(limit time.Duration) {
	h := e.h
	h.t.Helper()
	n := int64(e.n)
	h.eventuallyExplained(limit, "the consumer's table converges", func() (bool, string) {
		atC, err1 := e.c.records()
		atT, err2 := e.consumerRows()
		return atC == n && atT == n, fmt.Sprintf("center %d (%v), consumer %d (%v) of %d", atC, err1, atT, err2, n)
	}, func() string { return e.c.state(e.job.ID, e.sub.ID) })
	synced := time.Since(e.started)
	in, out := e.c.settled(90*time.Second, e.job.ID, e.sub.ID)
	h.t.Logf("synced %d rows in %s; in: %s; out: %s", n, synced.Round(10*time.Millisecond), in, out[0])

	ctx := context.Background()
	diffs, err := sameRows(ctx, "postgres", e.srcDSN,
		source.Query{SQL: "SELECT id AS person_id, xm AS name, qh AS region_code, sr AS income, gxsj AS updated_at FROM people", Key: []string{"person_id"}},
		"mysql", e.tgtDSN, source.Query{Table: source.Table{Name: "rk_copy"}, Columns: []string{"person_id", "name", "region_code", "income", "updated_at"},
			Key: []string{"person_id"}})
	if err != nil {
		h.t.Fatalf("compare source and consumer: %v", err)
	}
	if len(diffs) > 0 {
		h.t.Errorf("%d keys differ between the source and the consumer's table, e.g. %v", len(diffs), diffs[:min(len(diffs), 10)])
	}
	// The center took every row in exactly once, and the consumer applied
	// none twice: sends repeated after a fault count as unchanged, never as
	// a second insert.
	if in.recv.Inserted != n || in.recv.Updated != 0 || in.recv.Rejected != 0 || in.recv.Missing != 0 {
		h.t.Errorf("the center's side of the job's runs: %+v; want %d inserted, nothing updated, rejected or missing", in.recv, n)
	}
	if in.sent.Rows != in.recv.Rows {
		h.t.Errorf("the job's runs: %d rows sent, %d received", in.sent.Rows, in.recv.Rows)
	}
	o := out[0]
	if o.recv.Inserted > n || o.recv.Updated != 0 || o.recv.Deleted != 0 || o.recv.Missing != 0 {
		h.t.Errorf("the consumer's side of the subscription's runs: %+v; want at most %d inserted, nothing updated or deleted", o.recv, n)
	}
	if o.sent.Rows != o.recv.Rows || o.recv.Inserted+o.recv.Unchanged != o.recv.Rows {
		h.t.Errorf("the subscription's runs: sent %+v, received %+v", o.sent, o.recv)
	}
	e.c.noMismatchAlarms()
}

// faultRows is the rows of a fault test's sync.
func faultRows(t *testing.T) int {
	return envInt(t, envRows, 200_000)
}

func faultRepeat(t *testing.T) int {
	return envInt(t, envRepeat, 2)
}

func envInt(t *testing.T, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		t.Fatalf("%s=%q: want a positive number", name, v)
	}
	return n
}

// fault is one way the system breaks mid-sync.
type fault struct {
	name string
	// before, when set, runs as the job starts, before the point is
	// waited for.
	before func(e *syncEnv)
	at     progress // where the random point is measured
	// breakAndMend breaks the system at the point and mends it.
	breakAndMend func(e *syncEnv)
}

var faults = []fault{
	{"kill -9 provider node", nil, atProvider, func(e *syncEnv) {
		e.prov.proc.kill()
		time.Sleep(e.h.between(200*time.Millisecond, 2*time.Second))
		e.prov.proc.restart()
	}},
	{"kill -9 consumer node", nil, atConsumer, func(e *syncEnv) {
		e.cons.proc.kill()
		time.Sleep(e.h.between(200*time.Millisecond, 2*time.Second))
		e.cons.proc.restart()
	}},
	// A consumer node that was down while the center took everything in
	// catches up many deliveries at a time.
	{"kill -9 consumer node catching up", func(e *syncEnv) {
		e.cons.proc.kill()
		e.waitFor(atCenter, int64(e.n))
		e.cons.proc.restart()
	}, atConsumer, func(e *syncEnv) {
		e.cons.proc.kill()
		time.Sleep(e.h.between(200*time.Millisecond, 2*time.Second))
		e.cons.proc.restart()
	}},
	{"kill -9 server", nil, atCenter, func(e *syncEnv) {
		e.c.proc.kill()
		time.Sleep(e.h.between(200*time.Millisecond, 2*time.Second))
		e.c.restart()
	}},
	{"kill -9 NATS", nil, atCenter, func(e *syncEnv) {
		e.nats[0].proc.kill()
		time.Sleep(e.h.between(time.Second, 4*time.Second))
		e.nats[0].proc.restart()
	}},
	{"cut link", nil, atCenter, func(e *syncEnv) {
		e.link.cut()
		time.Sleep(e.h.between(2*time.Second, 8*time.Second))
		e.link.restore()
	}},
}

// TestSyncSurvivesFaults breaks the system at random points of a sync —
// kill -9 of each process, a cut link — and checks that afterwards the
// consumer's table equals the source exactly, with nothing lost or applied
// twice, and that both ends of every run agree.
func TestSyncSurvivesFaults(t *testing.T) {
	requireServices(t)
	rows, repeat := faultRows(t), faultRepeat(t)
	for _, f := range faults {
		t.Run(strings.ReplaceAll(f.name, " ", "_"), func(t *testing.T) {
			for i := 1; i <= repeat; i++ {
				// A point that failed is reported; further points of the
				// same fault would only wait as long again.
				ok := t.Run(strconv.Itoa(i), func(t *testing.T) {
					began := time.Now()
					h := newHarness(t)
					e := newSyncEnv(h, rows, false)
					point := int64(float64(rows) * (0.05 + 0.9*h.rnd.Float64()))
					e.start()
					if f.before != nil {
						f.before(e)
					}
					got := e.waitFor(f.at, point)
					t.Logf("%s at %d rows %s (point %d, %s into the sync)", f.name, got, f.at.where, point, time.Since(e.started).Round(10*time.Millisecond))
					f.breakAndMend(e)
					e.converged(2 * time.Minute)
					t.Logf("case took %s", time.Since(began).Round(10*time.Millisecond))
				})
				if !ok {
					break
				}
			}
		})
	}
}

// TestSyncSurvivesLosingANATSClusterNode runs the sync on a three-node
// NATS cluster with three replicas of each stream and kills one node
// mid-sync for good: the two left carry on.
func TestSyncSurvivesLosingANATSClusterNode(t *testing.T) {
	began := time.Now()
	h := newHarness(t)
	rows := faultRows(t)
	e := newSyncEnv(h, rows, true)
	point := int64(float64(rows) * (0.05 + 0.9*h.rnd.Float64()))
	e.start()
	got := e.waitFor(atCenter, point)
	// The node that leads the stream of incoming batches is lost: the
	// others elect a new leader mid-sync.
	victim := e.streamLeader("GOVSHARE_EXCHANGE_IN")
	t.Logf("kill -9 %s, the leader of the incoming batches' stream, at %d rows %s (point %d)", victim.proc.name, got, atCenter.where, point)
	victim.proc.kill()
	e.converged(2 * time.Minute)
	t.Logf("case took %s", time.Since(began).Round(10*time.Millisecond))
}

// streamLeader is the NATS server that leads a stream.
func (e *syncEnv) streamLeader(stream string) *natsServer {
	e.h.t.Helper()
	var urls []string
	for _, s := range e.nats {
		urls = append(urls, s.url)
	}
	nc, err := nats.Connect(strings.Join(urls, ","))
	if err != nil {
		e.h.t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		e.h.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := js.Stream(ctx, stream)
	if err != nil {
		e.h.t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		e.h.t.Fatal(err)
	}
	if info.Cluster != nil {
		for _, s := range e.nats {
			if s.proc.name == info.Cluster.Leader {
				return s
			}
		}
	}
	e.h.t.Fatalf("stream %s: no leader among the test's servers (%+v)", stream, info.Cluster)
	return nil
}

// TestSyncDeliversEveryRowOnce is the sync without a fault: every row
// arrives, once, equal to the source; its time is what the fault cases
// are measured against.
func TestSyncDeliversEveryRowOnce(t *testing.T) {
	began := time.Now()
	h := newHarness(t)
	e := newSyncEnv(h, faultRows(t), false)
	e.start()
	e.converged(2 * time.Minute)
	t.Logf("case took %s", time.Since(began).Round(10*time.Millisecond))
}
