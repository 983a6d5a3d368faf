package exchange_test

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"govshare/internal/agent"
	"govshare/internal/bus"
	"govshare/internal/calendar"
	"govshare/internal/catalog"
	"govshare/internal/exchange"
	"govshare/internal/exchange/wire"
	"govshare/internal/mask"
	"govshare/internal/notify"
	"govshare/internal/pki"
	"govshare/internal/policy"
	"govshare/internal/quality"
	"govshare/internal/resource"
	"govshare/internal/share"
	"govshare/internal/store"
	"govshare/internal/storetest"
	"govshare/internal/testfix"
)

type allRefs struct{}

func (allRefs) RegionKnown(string) bool       { return true }
func (allRefs) CodeKnown(string, string) bool { return true }
func (allRefs) HasTable(string) bool          { return true }

type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}

type noNotices struct{}

func (noNotices) Send(context.Context, notify.Notice) error { return nil }

// center is a whole exchange center in one process: store, bus, catalog,
// resources, sharing, CA and the node endpoint over mutual TLS.
type center struct {
	db        *store.DB
	pki       *pki.Service
	cat       *catalog.Service
	res       *resource.Service
	share     *share.Service
	ex        *exchange.Service
	bus       *bus.Bus
	url       string
	admin     policy.Actor
	gaj, mzj  policy.Actor
	gajDept   int64
	mzjDept   int64
	entry     catalog.Entry
	resource  resource.Resource
	grant     share.Grant
	start     func(t *testing.T)
	stop      func()
	stopNodes []func()
}

func newCenter(t *testing.T, db *store.DB) *center {
	t.Helper()
	c := newCenterStopped(t, db)
	c.start(t)
	return c
}

// newCenterStopped is a center whose intake and fan-out are not running
// until start: batches sent meanwhile wait on the bus.
func newCenterStopped(t *testing.T, db *store.DB) *center {
	t.Helper()
	ctx := context.Background()
	tc := testfix.New(t, db)
	keys, log := tc.Keys, tc.Audit
	dept, user := tc.Dept, tc.User
	city := dept("市政务信息办", 1)
	c := &center{db: db}
	c.gajDept, c.mzjDept = dept("市公安局", 2), dept("市民政局", 3)
	c.admin, c.gaj, c.mzj = user("admin", city, policy.PlatformAdmin), user("gaj.admin", c.gajDept, policy.DeptAdmin), user("mzj.admin", c.mzjDept, policy.DeptAdmin)
	c.cat = catalog.NewService(db, log, calendar.Weekdays{}, catalog.DefaultConfig())
	if err := c.cat.EnsureDefaultTree(ctx); err != nil {
		t.Fatal(err)
	}
	c.res = resource.New(db, log, c.cat, func(context.Context) (quality.Reference, error) { return allRefs{}, nil }, nil)
	c.share = share.NewService(db, log, c.cat, calendar.Weekdays{}, noNotices{}, share.Config{AnswerDays: 10, ProvideDays: 5})
	c.pki = pki.NewService(db, log, keys)
	b, err := bus.Open(ctx, bus.Config{StoreDir: filepath.Join(t.TempDir(), "nats")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
	c.ex = exchange.New(exchange.Deps{Log: logger, DB: db, Audit: log, Bus: b, Resources: c.res, Share: c.share, PKI: c.pki, Masker: mask.New(keys.Derive("mask/hash"))})
	c.bus = b
	if err := c.ex.EnsureStreams(ctx); err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	var done <-chan struct{}
	c.start = func(t *testing.T) {
		t.Helper()
		var err error
		if done, err = c.ex.Start(runCtx); err != nil {
			t.Fatal(err)
		}
	}
	srv := httptest.NewUnstartedServer(c.ex.NodeHandler())
	srv.TLS, err = c.pki.ServerTLS(ctx, []string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	srv.StartTLS()
	c.url = srv.URL
	c.stop = func() {
		for _, s := range c.stopNodes {
			s()
		}
		srv.Close()
		cancel()
		if done != nil {
			<-done
		}
		b.Close()
	}
	t.Cleanup(c.stop)

	// A resource with an exchange share method, published and mounted by
	// the provider (市公安局), subscribed to by the consumer (市民政局) for
	// four of its five items.
	content := catalog.Content{
		Name: "人口基本信息", ClassCode: "101", Abstract: "人口基本信息，供交换测试使用。", FormatClass: "database", FormatType: "postgresql",
		Items: []catalog.DataItem{
			{Name: "编号", MachineName: "person_id", DataType: "I", Length: 18, Key: true},
			{Name: "姓名", MachineName: "name", DataType: "C", Length: 20, MaskRule: "surname", QualityRule: "required"},
			{Name: "行政区划", MachineName: "region_code", DataType: "C", Length: 6},
			{Name: "月收入", MachineName: "income", DataType: "N", Length: 12},
			{Name: "更新时间", MachineName: "updated_at", DataType: "T", Length: 14},
		},
		ShareType: catalog.ShareUnconditional, ShareMethods: []catalog.ShareMethod{catalog.MethodExchange},
		OpenType: catalog.OpenClosed, UpdateCycle: "realtime",
	}
	e, err := c.cat.CreateEntry(ctx, c.gaj, content)
	if err == nil {
		_, err = c.cat.Submit(ctx, c.gaj, e.ID)
	}
	if err == nil {
		_, err = c.cat.Approve(ctx, c.admin, e.ID)
	}
	if err == nil {
		e, err = c.cat.Publish(ctx, c.admin, e.ID)
	}
	if err == nil {
		c.resource, err = c.res.Mount(ctx, c.gaj, e.ID)
	}
	if err != nil {
		t.Fatal(err)
	}
	c.entry = e
	app, err := c.share.Apply(ctx, c.mzj, e.ID, share.Terms{Items: []string{"person_id", "name", "region_code", "updated_at"},
		Methods: []catalog.ShareMethod{catalog.MethodExchange}, Purpose: "社会救助对象核对"})
	if err != nil {
		t.Fatal(err)
	}
	if c.grant, err = c.share.Grant(ctx, c.mzj, app.GrantID); err != nil {
		t.Fatal(err)
	}
	return c
}

// node enrols a node of a department and starts its agent.
func (c *center) node(t *testing.T, actor policy.Actor, dept int64, name string, cfg agent.Config) (int64, *agent.Agent) {
	t.Helper()
	id, a := c.enrolNode(t, actor, dept, name, cfg)
	runCtx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = a.Run(runCtx) }()
	c.stopNodes = append(c.stopNodes, func() { cancel(); <-done; a.Close() })
	return id, a
}

// enrolNode enrols a node of a department and opens its agent, not yet
// running.
func (c *center) enrolNode(t *testing.T, actor policy.Actor, dept int64, name string, cfg agent.Config) (int64, *agent.Agent) {
	t.Helper()
	ctx := context.Background()
	nodeID, key, cert, ca := c.enrol(t, actor, dept, name)
	cfg.Center = c.url
	cfg.Data = filepath.Join(t.TempDir(), name)
	if err := agent.WriteIdentity(cfg.Data, key, cert, ca); err != nil {
		t.Fatal(err)
	}
	a, err := agent.Open(ctx, cfg, agent.Options{Version: "test", Log: slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))})
	if err != nil {
		t.Fatal(err)
	}
	return nodeID, a
}

// enrol enrols a node of a department with a new key: its id, key,
// certificate and the CA's certificate.
func (c *center) enrol(t *testing.T, actor policy.Actor, dept int64, name string) (int64, []byte, []byte, []byte) {
	t.Helper()
	ctx := context.Background()
	enr, code, err := c.pki.CreateEnrolment(ctx, actor, dept, name)
	if err != nil {
		t.Fatal(err)
	}
	key, _ := pki.NewNodeKey()
	csr, _ := pki.CSR(key, name)
	cert, ca, err := c.pki.Enrol(ctx, code, csr)
	if err != nil {
		t.Fatal(err)
	}
	return enr.Node.ID, key, cert, ca
}

func openLite(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func exec(t *testing.T, db *sql.DB, q string, args ...any) {
	t.Helper()
	if _, err := db.Exec(q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

// cst is China Standard Time: the source reads a DATETIME without a zone
// as that, as departments' databases keep local time.
var cst = time.FixedZone("CST", 8*3600)

var surnames = []string{"张", "王", "李", "赵", "刘", "陈", "杨", "黄", "周", "吴"}

func personName(i int) string { return surnames[i%len(surnames)] + "测" + fmt.Sprint(i%97) }

// eventually polls cond until it holds or the time is up.
func eventually(t *testing.T, d time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(d)
	var last string
	for time.Now().Before(deadline) {
		ok, state := cond()
		if ok {
			return
		}
		last = state
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("%s: not within %s (last: %s)", what, d, last)
}

func TestExchangeEndToEnd(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		c := newCenter(t, db)

		// The provider's business database.
		srcPath := filepath.Join(t.TempDir(), "gaj.db")
		src := openLite(t, srcPath)
		exec(t, src, `CREATE TABLE people (id INTEGER PRIMARY KEY, xm TEXT NOT NULL, qh TEXT, sr DECIMAL(12,2), gxsj DATETIME NOT NULL)`)
		base := time.Now().In(cst).Add(-time.Hour)
		const n = 3000
		tx, _ := src.Begin()
		for i := 1; i <= n; i++ {
			name := personName(i)
			if i == 77 {
				name = "" // fails the required rule: quarantined, counted as rejected
			}
			if _, err := tx.Exec("INSERT INTO people VALUES (?, ?, ?, ?, ?)", i, name, "350102", fmt.Sprintf("%d.50", 3000+i), base.Format("2006-01-02 15:04:05.000")); err != nil {
				t.Fatal(err)
			}
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
		gajNode, _ := c.node(t, c.gaj, c.gajDept, "gaj-node", agent.Config{Sources: []agent.Database{{Name: "hjk", Kind: "sqlite", DSN: srcPath}}})
		tgtPath := filepath.Join(t.TempDir(), "mzj.db")
		mzjNode, _ := c.node(t, c.mzj, c.mzjDept, "mzj-node", agent.Config{Targets: []agent.Database{{Name: "yw", Kind: "sqlite", DSN: tgtPath}}})

		job, err := c.ex.CreateJob(ctx, c.gaj, gajNode, wire.JobSpec{Name: "人口同步", Resource: c.resource.Code, Source: "hjk", Table: "people",
			Mapping: []wire.ColumnMapping{{Column: "id", Item: "person_id"}, {Column: "xm", Item: "name"}, {Column: "qh", Item: "region_code"},
				{Column: "sr", Item: "income"}, {Column: "gxsj", Item: "updated_at"}},
			Mode: wire.ModeTime, IncColumn: "gxsj", Schedule: wire.ScheduleCont, IntervalSeconds: 1, KeyCheckSeconds: 1, BatchRows: 1000, Running: true})
		if err != nil {
			t.Fatal(err)
		}
		// Denials: another department may not define jobs on this node, nor
		// subscribe with a grant that is not its own.
		if _, err := c.ex.CreateJob(ctx, c.mzj, gajNode, job.JobSpec); err == nil {
			t.Fatal("a stranger defined a job on the provider's node")
		}
		if _, err := c.ex.CreateSubscription(ctx, c.gaj, exchange.SubscriptionRequest{GrantID: c.grant.ID, NodeID: gajNode, Target: "yw", Table: "x", Realtime: true}); err == nil {
			t.Fatal("the provider subscribed with the consumer's grant")
		}
		sub, err := c.ex.CreateSubscription(ctx, c.mzj, exchange.SubscriptionRequest{GrantID: c.grant.ID, NodeID: mzjNode, Target: "yw",
			Table: "rk_copy", Create: true, Realtime: true})
		if err != nil {
			t.Fatal(err)
		}

		tgt := openLite(t, tgtPath)
		count := func() (int, string) {
			var k int
			if err := tgt.QueryRow("SELECT COUNT(*) FROM rk_copy").Scan(&k); err != nil {
				return -1, err.Error()
			}
			return k, ""
		}
		eventually(t, 60*time.Second, "full sync reaches the consumer", func() (bool, string) {
			k, e := count()
			var held int
			_ = db.QueryRow(ctx, `SELECT COUNT(*) FROM "`+c.resource.Table+`"`).Scan(&held)
			j, _ := c.ex.Job(ctx, c.gaj, job.ID)
			x, _ := c.ex.Subscription(ctx, c.mzj, sub.ID)
			return k == n-1, fmt.Sprintf("%d rows %s; center holds %d; job %s %q queued %d; subscription %s %q cursor %d", k, e, held, j.NodeState, j.Error, j.Queued, x.NodeState, x.Error, x.Cursor)
		})
		// Only granted items, masked as the grant says.
		var cols []string
		rows, _ := tgt.Query("SELECT name FROM pragma_table_info('rk_copy') ORDER BY cid")
		for rows.Next() {
			var s string
			_ = rows.Scan(&s)
			cols = append(cols, s)
		}
		rows.Close()
		if strings.Join(cols, ",") != "person_id,name,region_code,updated_at" {
			t.Fatalf("target columns %v: want the granted items only", cols)
		}
		var name string
		if err := tgt.QueryRow("SELECT name FROM rk_copy WHERE person_id = 12").Scan(&name); err != nil || name != "李***" {
			t.Fatalf("person 12's name at the consumer: %q, %v (want the surname only)", name, err)
		}

		// Changes at the source: inserts, updates, deletes.
		later := time.Now().In(cst).Format("2006-01-02 15:04:05.000")
		exec(t, src, "INSERT INTO people VALUES (5001, '孙新增', '350103', 1000, ?)", later)
		exec(t, src, "UPDATE people SET xm = '钱改名', gxsj = ? WHERE id = 10", later)
		exec(t, src, "DELETE FROM people WHERE id IN (20, 21)")
		eventually(t, 60*time.Second, "inserts, updates and deletes reach the consumer", func() (bool, string) {
			k, _ := count()
			var changed, gone int
			_ = tgt.QueryRow("SELECT COUNT(*) FROM rk_copy WHERE (person_id = 10 AND name = '钱**') OR person_id = 5001").Scan(&changed)
			_ = tgt.QueryRow("SELECT COUNT(*) FROM rk_copy WHERE person_id IN (20, 21)").Scan(&gone)
			return k == n-1+1-2 && changed == 2 && gone == 0, fmt.Sprintf("%d rows, %d changed, %d deleted ones left", k, changed, gone)
		})

		// Reconciliation: every finished run agrees on both sides, and the
		// row that failed its rule is counted rejected.
		eventually(t, 30*time.Second, "runs reconcile", func() (bool, string) {
			runs, err := c.ex.Runs(ctx, c.admin, exchange.RunFilter{Limit: 500})
			if err != nil {
				return false, err.Error()
			}
			var rejected int64
			open := 0
			for _, r := range runs {
				if r.State == "mismatch" {
					t.Fatalf("run %d (%s) mismatch: %s", r.ID, r.Direction, r.Note)
				}
				if r.State == "running" {
					open++
				}
				rejected += r.Received.Rejected
			}
			return rejected == 1 && open <= 1, fmt.Sprintf("%d runs, %d open, %d rejected", len(runs), open, rejected)
		})
		alarms, err := c.ex.Alarms(ctx, c.admin, false)
		if err != nil || len(alarms) != 0 {
			t.Fatalf("alarms %v, %v", alarms, err)
		}
		// The exchange volume counts what the consumer received, once.
		runs, err := c.ex.Runs(ctx, c.admin, exchange.RunFilter{Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		var delivered, out int64
		for _, r := range runs {
			if r.Direction == "out" {
				delivered += r.Received.Rows
			}
		}
		vol, err := c.res.Volume(ctx, c.resource.Code, 2)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range vol {
			out += v.RecordsOut
		}
		if delivered < n-1 || out != delivered {
			t.Fatalf("volume out %d, deliveries received %d rows (want at least %d)", out, delivered, n-1)
		}
		// The real-time resource is timely because its node reports delivering.
		eventually(t, 15*time.Second, "the node's heartbeat keeps the real-time resource timely", func() (bool, string) {
			held, err := c.res.ByCode(ctx, c.resource.Code)
			tl := held.Timeliness(time.Now())
			return err == nil && !held.NodeSeenAt.IsZero() && tl.State == "timely" && tl.Due.Sub(held.NodeSeenAt) == resource.NodeGrace,
				fmt.Sprintf("seen %v, %+v, %v", held.NodeSeenAt, tl, err)
		})

		// A revoked grant stops delivery.
		if _, err := c.share.RevokeGrant(ctx, c.gaj, c.grant.ID, "测试撤销"); err != nil {
			t.Fatal(err)
		}
		eventually(t, 15*time.Second, "the subscription stops", func() (bool, string) {
			x, err := c.ex.Subscription(ctx, c.mzj, sub.ID)
			return err == nil && x.State == "revoked", x.State
		})
		exec(t, src, "INSERT INTO people VALUES (5002, '周撤后', '350103', 1000, ?)", time.Now().In(cst).Format("2006-01-02 15:04:05.000"))
		eventually(t, 30*time.Second, "the provider still takes in", func() (bool, string) {
			var k int
			_ = db.QueryRow(ctx, "SELECT COUNT(*) FROM "+`"`+c.resource.Table+`"`+" WHERE person_id = 5002").Scan(&k)
			return k == 1, fmt.Sprint(k)
		})
		time.Sleep(3 * time.Second)
		var after int
		_ = tgt.QueryRow("SELECT COUNT(*) FROM rk_copy WHERE person_id = 5002").Scan(&after)
		if after != 0 {
			t.Fatal("a record reached the consumer after the grant was revoked")
		}
	})
}
