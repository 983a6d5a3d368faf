//go:build linux

package exchange_test

import (
	"context"
	"database/sql"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"govshare/internal/agent"
	"govshare/internal/agent/source"
	"govshare/internal/catalog"
	"govshare/internal/exchange"
	"govshare/internal/exchange/wire"
	"govshare/internal/resource"
)

// e2eItems are the story's data items: the name is masked for consumers
// and required (a row without one is quarantined); income is mapped by
// the job but not granted.
var e2eItems = []catalog.DataItem{
	{Name: "编号", MachineName: "person_id", DataType: "I", Length: 18, Key: true},
	{Name: "姓名", MachineName: "name", DataType: "C", Length: 20, MaskRule: "surname", QualityRule: "required"},
	{Name: "行政区划", MachineName: "region_code", DataType: "C", Length: 6},
	{Name: "月收入", MachineName: "income", DataType: "N", Length: 12},
	{Name: "更新时间", MachineName: "updated_at", DataType: "T", Length: 14},
}

// consumerView is what the grant lets the consumer see of the source, as
// SQL on the source: the granted items, the name masked to its surname,
// and no row that failed its quality rule.
const consumerView = `SELECT id AS person_id, left(xm, 1) || repeat('*', char_length(xm) - 1) AS name, qh AS region_code, gxsj AS updated_at
	FROM people WHERE xm <> ''`

var consumerColumns = []string{"person_id", "name", "region_code", "updated_at"}

// target is one consumer node's target database.
type target struct {
	name string
	kind string
	dsn  string
	db   *sql.DB
	node *node
	sub  exchange.Subscription
}

func (tg *target) count(where string, args ...any) (int64, error) {
	n, err := count(tg.db, "SELECT COUNT(*) FROM rk_copy "+where, args...)
	if err != nil && (strings.Contains(err.Error(), "doesn't exist") || strings.Contains(err.Error(), "no such table")) {
		return 0, nil
	}
	return n, err
}

// columns lists the target table's columns in order.
func (tg *target) columns() ([]string, error) {
	q := "SELECT column_name FROM information_schema.columns WHERE table_schema = DATABASE() AND table_name = 'rk_copy' ORDER BY ordinal_position"
	if tg.kind == "sqlite" {
		q = "SELECT name FROM pragma_table_info('rk_copy') ORDER BY cid"
	}
	rows, err := tg.db.Query(q)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

// TestExchangeEndToEnd is the exchange story with every part a process: a
// provider's PostgreSQL table, its node, the center, and two consumer
// nodes writing into MariaDB and SQLite. The full sync delivers only the
// granted items, masked as the grant says; a row that fails its quality
// rule is quarantined and counted as rejected; inserts, updates and
// deletes at the source follow; both ends of every run agree; a revoked
// node is refused; a revoked grant stops delivery.
func TestExchangeEndToEnd(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	c := h.startCenter(centerSpec{items: e2eItems, granted: consumerColumns}) // the embedded bus, as a default install runs

	const n, bad = 3000, 77
	srcDSN := h.postgresSchema()
	src := h.pgConn(srcDSN)
	h.loadPeople(src, n, bad)
	sqlExec := func(q string, args ...any) {
		t.Helper()
		if _, err := src.Exec(ctx, q, args...); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}

	prov := c.enrolNode(provider, "gaj-node", c.node, []agent.Database{{Name: "hjk", Kind: "postgres", DSN: srcDSN}}, nil)
	my := &target{name: "MariaDB", kind: "mysql", dsn: h.mysqlDatabase()}
	lite := &target{name: "SQLite", kind: "sqlite", dsn: h.path("mzj-lite", "yw.db")}
	if err := os.MkdirAll(filepath.Dir(lite.dsn), 0o755); err != nil {
		t.Fatal(err)
	}
	my.db = h.openSQL("mysql", my.dsn)
	my.node = c.enrolNode(consumer, "mzj-node-1", c.node, nil, []agent.Database{{Name: "yw", Kind: "mysql", DSN: my.dsn}})
	lite.node = c.enrolNode(consumer, "mzj-node-2", c.node, nil, []agent.Database{{Name: "yw", Kind: "sqlite", DSN: lite.dsn}})
	targets := []*target{my, lite}

	// The job maps income too: the resource has it, the grant does not.
	job := c.createJob(prov.id, wire.JobSpec{Name: "人口同步", Resource: c.resource.Code, Source: "hjk", Table: "people", Mapping: faultMapping,
		Mode: wire.ModeTime, IncColumn: "gxsj", Schedule: wire.ScheduleCont, IntervalSeconds: 1, KeyCheckSeconds: 2, BatchRows: 1000, Running: true})
	// A stranger may not define jobs on the provider's node.
	if err := c.call(consumer, http.MethodPost, "/api/v1/exchange/jobs", map[string]any{"node_id": prov.id, "name": "x", "resource": c.resource.Code,
		"source": "hjk", "table": "people", "mapping": faultMapping, "mode": "full", "schedule": "manual"}, nil); err == nil {
		t.Fatal("the consumer defined a job on the provider's node")
	}

	// Full sync into the center: every row but the bad one, which waits
	// in quarantine.
	h.eventually(60*time.Second, "the full sync reaches the center", func() (bool, string) {
		k, err := c.records()
		return k == n-1, fmt.Sprintf("%d records (%v)", k, err)
	})
	var quarantined []resource.Quarantined
	c.must(provider, http.MethodGet, "/api/v1/resources/"+url.PathEscape(c.resource.Code)+"/quarantine", nil, &quarantined)
	if len(quarantined) != 1 || len(quarantined[0].Values) == 0 || quarantined[0].Values[0] != strconv.Itoa(bad) || len(quarantined[0].Violations) == 0 {
		t.Fatalf("quarantine %+v: want person %d, who has no name", quarantined, bad)
	}

	// Subscriptions made now start with a snapshot.
	for _, tg := range targets {
		tg.sub = c.subscribe(exchange.SubscriptionRequest{GrantID: c.grantID, NodeID: tg.node.id, Target: "yw", Table: "rk_copy", Create: true, Realtime: true})
	}
	lite.db = h.openSQL("sqlite", "file:"+lite.dsn+"?mode=ro&_pragma=busy_timeout(5000)")
	waitTargets := func(what string, want int64, where string, args ...any) {
		t.Helper()
		for _, tg := range targets {
			h.eventually(60*time.Second, what+" ("+tg.name+")", func() (bool, string) {
				k, err := tg.count(where, args...)
				return k == want, fmt.Sprintf("%d rows %s (%v)", k, where, err)
			})
		}
	}
	waitTargets("the snapshot reaches the consumers", n-1, "")

	// Only granted items, masked as the grant says.
	for _, tg := range targets {
		cols, err := tg.columns()
		if err != nil || strings.Join(cols, ",") != strings.Join(consumerColumns, ",") {
			t.Fatalf("%s columns %v (%v): want the granted items only, %v", tg.name, cols, err, consumerColumns)
		}
		var name string
		if err := tg.db.QueryRow("SELECT name FROM rk_copy WHERE person_id = 12").Scan(&name); err != nil || name != "李***" {
			t.Fatalf("person 12's name at %s: %q, %v (want the surname only)", tg.name, name, err)
		}
	}
	sameAsSource := func(when string) {
		t.Helper()
		for _, tg := range targets {
			diffs, err := sameRows(ctx, "postgres", srcDSN, source.Query{SQL: consumerView, Key: []string{"person_id"}},
				tg.kind, tg.dsn, source.Query{Table: source.Table{Name: "rk_copy"}, Columns: consumerColumns, Key: []string{"person_id"}})
			if err != nil {
				t.Fatalf("%s: compare the source with %s: %v", when, tg.name, err)
			}
			if len(diffs) > 0 {
				t.Fatalf("%s: %d keys differ between the source and %s, e.g. %v", when, len(diffs), tg.name, diffs[:min(len(diffs), 10)])
			}
		}
	}
	sameAsSource("after the snapshot")

	// Changes at the source: an insert, an update, two deletes.
	sqlExec("INSERT INTO people VALUES (5001, '孙新增', '350103', 1000, $1)", nowCST())
	sqlExec("UPDATE people SET xm = '钱改名', gxsj = $1 WHERE id = 10", nowCST())
	sqlExec("DELETE FROM people WHERE id IN (20, 21)")
	waitTargets("the insert reaches the consumers", 1, "WHERE person_id = 5001")
	waitTargets("the update reaches the consumers", 1, "WHERE person_id = 10 AND name = '钱**'")
	waitTargets("the deletes reach the consumers", 0, "WHERE person_id IN (20, 21)")
	waitTargets("the consumers hold every row", n-1+1-2, "")
	sameAsSource("after inserts, updates and deletes")

	// Reconciliation: both ends of every run agree; the row that failed
	// its rule was sent, received and counted as rejected, not lost.
	in, out := c.settled(60*time.Second, job.ID, my.sub.ID, lite.sub.ID)
	t.Logf("in: %s", in)
	for i, o := range out {
		t.Logf("out to %s: %s", targets[i].name, o)
	}
	if in.recv.Rejected != 1 || in.sent.Rows != in.recv.Rows {
		t.Errorf("the job's runs: sent %+v, received %+v; want the bad row counted as rejected", in.sent, in.recv)
	}
	for i, o := range out {
		if o.sent.Rows != o.recv.Rows || o.recv.Inserted > n || o.recv.Deleted != 2 {
			t.Errorf("subscription to %s: sent %+v, received %+v; want everything received, 2 deletes", targets[i].name, o.sent, o.recv)
		}
	}
	c.noMismatchAlarms()
	// The provider's node hears of the rejected row too.
	h.eventually(30*time.Second, "the provider's node reports the quarantined row", func() (bool, string) {
		for _, line := range strings.Split(prov.proc.logText(), "\n") {
			if strings.Contains(line, "the center quarantined rows") && strings.Contains(line, `"rejected":1`) {
				t.Logf("the provider's node: %s", line)
				return true, ""
			}
		}
		return false, tailFile(prov.proc.log, 3, 600)
	})

	// A revoked node is refused: the SQLite consumer's node.
	c.must(admin, http.MethodPost, "/api/v1/nodes/"+strconv.FormatInt(lite.node.id, 10)+"/revoke", map[string]any{"reason": "测试吊销"}, nil)
	var info exchange.NodeInfo
	c.must(consumer, http.MethodGet, "/api/v1/nodes/"+strconv.FormatInt(lite.node.id, 10), nil, &info)
	if info.State != "revoked" {
		t.Fatalf("revoked node's state %q", info.State)
	}
	logBefore := len(lite.node.proc.logText())
	sqlExec("UPDATE people SET qh = '350199', gxsj = $1 WHERE id = 30", nowCST())
	waitTargets2 := func(tg *target, what string, want int64, where string) {
		t.Helper()
		h.eventually(60*time.Second, what+" ("+tg.name+")", func() (bool, string) {
			k, err := tg.count(where)
			return k == want, fmt.Sprintf("%d rows %s (%v)", k, where, err)
		})
	}
	waitTargets2(my, "a change after the revocation reaches the node still enrolled", 1, "WHERE person_id = 30 AND region_code = '350199'")
	var refusal string
	h.eventually(60*time.Second, "the revoked node's agent reports the refusal", func() (bool, string) {
		for _, line := range strings.Split(lite.node.proc.logText()[logBefore:], "\n") {
			if strings.Contains(line, "refuses this node's certificate") {
				refusal = line
				return true, ""
			}
		}
		return false, tailFile(lite.node.proc.log, 3, 600)
	})
	t.Logf("the revoked node's agent: %s", refusal)
	if k, _ := lite.count("WHERE person_id = 30 AND region_code = '350199'"); k != 0 {
		t.Error("a change made after the node was revoked reached the revoked node")
	}
	// The center hears no more from it: its heartbeats are refused too.
	c.must(admin, http.MethodGet, "/api/v1/nodes/"+strconv.FormatInt(lite.node.id, 10), nil, &info)
	time.Sleep(4 * time.Second) // longer than a heartbeat
	var later exchange.NodeInfo
	c.must(admin, http.MethodGet, "/api/v1/nodes/"+strconv.FormatInt(lite.node.id, 10), nil, &later)
	if later.State != "revoked" || later.Online || !later.LastSeenAt.Equal(info.LastSeenAt) {
		t.Fatalf("revoked node: state %s, online %v, last seen %s then %s; want revoked, offline, no more heartbeats", later.State, later.Online,
			info.LastSeenAt.Format(time.RFC3339Nano), later.LastSeenAt.Format(time.RFC3339Nano))
	}

	// A revoked grant stops delivery; the provider's data still comes in.
	c.must(provider, http.MethodPost, "/api/v1/grants/"+strconv.FormatInt(c.grantID, 10)+"/revoke", map[string]any{"reason": "测试撤销"}, nil)
	h.eventually(30*time.Second, "the subscription stops", func() (bool, string) {
		var x exchange.Subscription
		err := c.call(consumer, http.MethodGet, "/api/v1/exchange/subscriptions/"+strconv.FormatInt(my.sub.ID, 10), nil, &x)
		return err == nil && x.State == "revoked", fmt.Sprintf("%s %v", x.State, err)
	})
	sqlExec("INSERT INTO people VALUES (5002, '周撤后', '350103', 1000, $1)", nowCST())
	h.eventually(30*time.Second, "the center still takes in the provider's rows", func() (bool, string) {
		var k int64
		err := c.db.QueryRow(ctx, `SELECT COUNT(*) FROM "`+c.resource.Table+`" WHERE person_id = 5002`).Scan(&k)
		return k == 1, fmt.Sprintf("%d (%v)", k, err)
	})
	time.Sleep(3 * time.Second) // what a live delivery would take, several times over
	if k, _ := my.count("WHERE person_id = 5002"); k != 0 {
		t.Fatal("a record reached the consumer after the grant was revoked")
	}
}
