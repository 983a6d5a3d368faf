package exchange_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	_ "github.com/jackc/pgx/v5/stdlib"

	"govshare/internal/agent"
	"govshare/internal/apperr"
	"govshare/internal/audit"
	"govshare/internal/exchange"
	"govshare/internal/exchange/wire"
	"govshare/internal/pki"
	"govshare/internal/policy"
	"govshare/internal/store"
	"govshare/internal/storetest"
)

// waitCheck waits for a check to end and returns it.
func waitCheck(t *testing.T, c *center, actor policy.Actor, id int64) exchange.Check {
	t.Helper()
	var ch exchange.Check
	eventually(t, 60*time.Second, fmt.Sprintf("check %d ends", id), func() (bool, string) {
		var err error
		ch, err = c.ex.Check(context.Background(), actor, id)
		if err != nil {
			return false, err.Error()
		}
		return ch.State == wire.CheckDone || ch.State == wire.CheckFailed, ch.State
	})
	if ch.State != wire.CheckDone {
		t.Fatalf("check %d %s: %s", id, ch.State, ch.Error)
	}
	return ch
}

// runCheck requests a check and waits for its result.
func runCheck(t *testing.T, c *center, actor policy.Actor, kind string, id int64) exchange.Check {
	t.Helper()
	ch, err := c.ex.RequestCheck(context.Background(), actor, kind, id)
	if err != nil {
		t.Fatalf("request a check of %s %d: %v", kind, id, err)
	}
	if ch.State != wire.CheckRequested && ch.State != wire.CheckRunning {
		t.Fatalf("a new check is %s", ch.State)
	}
	return waitCheck(t, c, actor, ch.ID)
}

func keysOf(ch exchange.Check) string {
	var out []string
	for _, k := range ch.Keys {
		out = append(out, k.Key+":"+k.Kind)
	}
	slices.Sort(out)
	return strings.Join(out, " ")
}

// serverTarget is a consumer database on a server: PostgreSQL (a scratch
// schema) when GOVSHARE_TEST_POSTGRES names one, MariaDB/MySQL (a scratch
// database) when GOVSHARE_TEST_MYSQL does.
type serverTarget struct {
	agent.Database
	db *sql.DB
}

func serverTargets(t *testing.T) []serverTarget {
	t.Helper()
	var out []serverTarget
	open := func(driver, dsn string) *sql.DB {
		db, err := sql.Open(driver, dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return db
	}
	if os.Getenv(storetest.EnvPostgres) != "" {
		dsn, err := storetest.PostgresDSN(t)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, serverTarget{agent.Database{Name: "pg", Kind: "postgres", DSN: dsn}, open("pgx", dsn)})
	}
	if dsn := os.Getenv("GOVSHARE_TEST_MYSQL"); dsn != "" {
		cfg, err := mysql.ParseDSN(dsn)
		if err != nil {
			t.Fatal(err)
		}
		var rnd [6]byte
		_, _ = rand.Read(rnd[:])
		scratch := "chk_" + hex.EncodeToString(rnd[:])
		admin := open("mysql", dsn)
		if _, err := admin.Exec("CREATE DATABASE `" + scratch + "`"); err != nil {
			t.Fatalf("GOVSHARE_TEST_MYSQL: %v", err)
		}
		t.Cleanup(func() { admin.Exec("DROP DATABASE `" + scratch + "`") })
		cfg.DBName = scratch
		out = append(out, serverTarget{agent.Database{Name: "my", Kind: "mysql", DSN: cfg.FormatDSN()}, open("mysql", cfg.FormatDSN())})
	}
	return out
}

func TestFullCheckListsTheKeysThatDiffer(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		c := newCenter(t, db)

		// The provider's business table: values whose text differs by
		// database (decimals with trailing zeros, date-times without a
		// zone, NULLs) must still compare equal once exchanged.
		srcPath := filepath.Join(t.TempDir(), "gaj.db")
		src := openLite(t, srcPath)
		exec(t, src, `CREATE TABLE people (id INTEGER PRIMARY KEY, xm TEXT NOT NULL, qh TEXT, sr DECIMAL(12,2), gxsj DATETIME NOT NULL)`)
		base := time.Now().In(cst).Add(-time.Hour)
		const n = 600
		tx, _ := src.Begin()
		for i := 1; i <= n; i++ {
			var qh any = "350102"
			if i%10 == 0 {
				qh = nil
			}
			if _, err := tx.Exec("INSERT INTO people VALUES (?, ?, ?, ?, ?)", i, personName(i), qh, fmt.Sprintf("%d.%d0", 3000+i, i%10),
				base.Add(time.Duration(i)*time.Second).Format("2006-01-02 15:04:05.000")); err != nil {
				t.Fatal(err)
			}
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
		gajNode, _ := c.node(t, c.gaj, c.gajDept, "gaj-node", agent.Config{Sources: []agent.Database{{Name: "hjk", Kind: "sqlite", DSN: srcPath}}})
		tgtPath := filepath.Join(t.TempDir(), "mzj.db")
		servers := serverTargets(t)
		targets := []agent.Database{{Name: "yw", Kind: "sqlite", DSN: tgtPath}}
		for _, st := range servers {
			targets = append(targets, st.Database)
		}
		mzjNode, _ := c.node(t, c.mzj, c.mzjDept, "mzj-node", agent.Config{Targets: targets})

		job, err := c.ex.CreateJob(ctx, c.gaj, gajNode, wire.JobSpec{Name: "人口全量", Resource: c.resource.Code, Source: "hjk", Table: "people",
			Mapping: []wire.ColumnMapping{{Column: "id", Item: "person_id"}, {Column: "xm", Item: "name"}, {Column: "qh", Item: "region_code"},
				{Column: "sr", Item: "income"}, {Column: "gxsj", Item: "updated_at"}},
			Mode: wire.ModeFull, Schedule: wire.ScheduleInt, IntervalSeconds: 1, BatchRows: 250, Running: true})
		if err != nil {
			t.Fatal(err)
		}
		sub, err := c.ex.CreateSubscription(ctx, c.mzj, exchange.SubscriptionRequest{GrantID: c.grant.ID, NodeID: mzjNode, Target: "yw",
			Table: "rk_copy", Create: true, Realtime: true})
		if err != nil {
			t.Fatal(err)
		}
		// The same rows delivered into the consumer's server databases too.
		serverSubs := make([]exchange.Subscription, len(servers))
		for i, st := range servers {
			if serverSubs[i], err = c.ex.CreateSubscription(ctx, c.mzj, exchange.SubscriptionRequest{GrantID: c.grant.ID, NodeID: mzjNode,
				Target: st.Name, Table: "rk_copy", Create: true, Realtime: true}); err != nil {
				t.Fatal(err)
			}
		}
		tgt := openLite(t, tgtPath)
		eventually(t, 60*time.Second, "the consumer holds every row", func() (bool, string) {
			var k int
			_ = tgt.QueryRow("SELECT COUNT(*) FROM rk_copy").Scan(&k)
			counts := fmt.Sprint(k)
			done := k == n
			for _, st := range servers {
				var m int
				_ = st.db.QueryRow("SELECT COUNT(*) FROM rk_copy").Scan(&m)
				counts += fmt.Sprintf(", %s %d", st.Name, m)
				done = done && m == n
			}
			return done, counts + " rows"
		})

		// The job stops; what it sent settles at both ends.
		if _, err := c.ex.ControlJob(ctx, c.gaj, job.ID, exchange.JobStop); err != nil {
			t.Fatal(err)
		}
		eventually(t, 60*time.Second, "the job stops and its runs settle", func() (bool, string) {
			j, _ := c.ex.Job(ctx, c.gaj, job.ID)
			runs, _ := c.ex.Runs(ctx, c.admin, exchange.RunFilter{Limit: 500})
			open := 0
			for _, r := range runs {
				if r.State != "complete" {
					open++
				}
			}
			return j.NodeState == "stopped" && j.Queued == 0 && open == 0, fmt.Sprintf("job %s, %d queued, %d runs open", j.NodeState, j.Queued, open)
		})

		// The center reads its side a key range at a time, page by page.
		for _, tc := range []struct {
			after, through []string
			first, last    int
		}{{nil, []string{"5"}, 1, 5}, {[]string{"100"}, []string{"250"}, 101, 250}, {[]string{"595"}, nil, 596, n}} {
			var got []string
			err := c.res.LiveRange(ctx, c.resource, c.resource.Keys(), tc.after, tc.through, 7, func(rows [][]*string) error {
				for _, r := range rows {
					got = append(got, *r[0])
				}
				return nil
			})
			var want []string
			for i := tc.first; i <= tc.last; i++ {
				want = append(want, fmt.Sprint(i))
			}
			if err != nil || !slices.Equal(got, want) {
				t.Fatalf("live records in (%v, %v]: %v, %v; want %d…%d", tc.after, tc.through, got, err, tc.first, tc.last)
			}
		}

		// Denials: the consumer may not check the provider's job, nor the
		// provider the consumer's subscription; a stranger cannot read a
		// check of a job not theirs.
		if _, err := c.ex.RequestCheck(ctx, c.mzj, wire.CheckJob, job.ID); !errors.Is(err, apperr.ErrDenied) {
			t.Fatalf("the consumer requested a check of the provider's job: %v", err)
		}
		if _, err := c.ex.RequestCheck(ctx, c.gaj, wire.CheckSubscription, sub.ID); !errors.Is(err, apperr.ErrDenied) {
			t.Fatalf("the provider requested a check of the consumer's subscription: %v", err)
		}
		if _, err := c.ex.RequestCheck(ctx, c.gaj, "table", job.ID); !errors.Is(err, exchange.ErrCheckKind) {
			t.Fatalf("a check of an unknown kind: %v", err)
		}

		// In sync: both checks find nothing. One check of a job at a time.
		first, err := c.ex.RequestCheck(ctx, c.gaj, wire.CheckJob, job.ID)
		if err != nil {
			t.Fatal(err)
		}
		// (The node may have finished the first already: then a second
		// is welcome. internal/web's API test meets the rule with no node
		// running.)
		jobChecks := 2 // this one and the one after tampering below
		if second, err := c.ex.RequestCheck(ctx, c.gaj, wire.CheckJob, job.ID); err == nil {
			if done, _ := c.ex.Check(ctx, c.gaj, first.ID); done.State == "requested" || done.State == "running" {
				t.Fatalf("a second check while the first is %s", done.State)
			}
			waitCheck(t, c, c.gaj, second.ID)
			jobChecks++
		} else if !errors.Is(err, exchange.ErrCheckPending) {
			t.Fatalf("a second check while one is pending: %v", err)
		}
		jc := waitCheck(t, c, c.gaj, first.ID)
		if jc.Differ != 0 || jc.Rows != n || jc.Chunks < 2 {
			t.Fatalf("job check in sync: %d of %d rows in %d chunks differ: %s", jc.Differ, jc.Rows, jc.Chunks, keysOf(jc))
		}
		sc := runCheck(t, c, c.mzj, wire.CheckSubscription, sub.ID)
		if sc.Differ != 0 || sc.Rows != n {
			t.Fatalf("subscription check in sync: %d of %d rows differ: %s", sc.Differ, sc.Rows, keysOf(sc))
		}
		if _, err := c.ex.Check(ctx, c.mzj, jc.ID); !errors.Is(err, apperr.ErrDenied) {
			t.Fatalf("the consumer read the provider's job check: %v", err)
		}
		if got, err := c.ex.Check(ctx, c.gaj, sc.ID); err != nil || got.ID != sc.ID {
			t.Fatalf("the provider reads the check of its resource's subscription: %v", err)
		}
		// Values compare equal whichever database holds them; a value
		// changed there is found there too.
		for i, st := range servers {
			sc := runCheck(t, c, c.mzj, wire.CheckSubscription, serverSubs[i].ID)
			if sc.Differ != 0 || sc.Rows != n {
				t.Fatalf("subscription check of %s in sync: %d of %d rows differ: %s", st.Kind, sc.Differ, sc.Rows, keysOf(sc))
			}
			if _, err := st.db.Exec("UPDATE rk_copy SET name = '改**' WHERE person_id = 42"); err != nil {
				t.Fatal(err)
			}
			sc = runCheck(t, c, c.mzj, wire.CheckSubscription, serverSubs[i].ID)
			if keysOf(sc) != "42:changed" {
				t.Fatalf("subscription check of %s after a change: %s", st.Kind, keysOf(sc))
			}
		}
		if len(servers) > 0 {
			// Those checks raised their alarms; the rest of the test wants
			// none yet.
			list, _ := c.ex.Alarms(ctx, c.admin, false)
			for _, a := range list {
				if _, err := c.ex.CloseAlarm(ctx, c.admin, a.ID, "测试：已核实"); err != nil {
					t.Fatal(err)
				}
			}
		}
		alarms, _ := c.ex.Alarms(ctx, c.admin, false)
		if len(alarms) != 0 {
			t.Fatalf("alarms after checks in sync: %+v", alarms)
		}

		// Tampering at the consumer: a value changed, a row deleted, a row
		// added.
		exec(t, tgt, "UPDATE rk_copy SET region_code = '999999' WHERE person_id = 5")
		exec(t, tgt, "DELETE FROM rk_copy WHERE person_id = 7")
		exec(t, tgt, "INSERT INTO rk_copy (person_id, name, region_code, updated_at) VALUES (9999, '某**', '350102', '2026-01-01 00:00:00')")
		sc = runCheck(t, c, c.mzj, wire.CheckSubscription, sub.ID)
		if want := "5:changed 7:missing 9999:extra"; keysOf(sc) != want || sc.Differ != 3 || sc.Rows != n+1 {
			t.Fatalf("subscription check after tampering: %d differ (%s) of %d; want %s", sc.Differ, keysOf(sc), sc.Rows, want)
		}
		alarmed := func(actor policy.Actor, match func(exchange.Alarm) bool) bool {
			list, err := c.ex.Alarms(ctx, actor, false)
			if err != nil {
				t.Fatal(err)
			}
			return slices.ContainsFunc(list, func(a exchange.Alarm) bool { return a.Kind == "check_diff" && match(a) })
		}
		subAlarm := func(a exchange.Alarm) bool { return a.SubscriptionID == sub.ID }
		if !alarmed(c.mzj, subAlarm) || !alarmed(c.gaj, subAlarm) || !alarmed(c.admin, subAlarm) {
			t.Fatal("a subscription check that found differences raised no alarm for both departments and the platform")
		}

		// Tampering at the provider's source while the job is stopped.
		exec(t, src, "UPDATE people SET sr = 1.25 WHERE id = 11")
		exec(t, src, "DELETE FROM people WHERE id = 12")
		exec(t, src, "INSERT INTO people VALUES (8888, '孙新增', '350103', 1000, ?)", base.Format("2006-01-02 15:04:05"))
		jc = runCheck(t, c, c.gaj, wire.CheckJob, job.ID)
		if want := "11:changed 12:extra 8888:missing"; keysOf(jc) != want || jc.Differ != 3 {
			t.Fatalf("job check after tampering: %d differ (%s); want %s", jc.Differ, keysOf(jc), want)
		}
		if !alarmed(c.gaj, func(a exchange.Alarm) bool { return a.JobID == job.ID }) {
			t.Fatal("a job check that found differences raised no alarm")
		}
		list, err := c.ex.Checks(ctx, c.gaj, wire.CheckJob, job.ID)
		if err != nil || len(list) != jobChecks || list[0].ID != jc.ID || list[0].RequestedBy != "gaj.admin" || list[0].FinishedAt == nil {
			t.Fatalf("the job's checks, newest first: %+v, %v", list, err)
		}

		// Cancelled as soon as it is requested, whether the node started
		// it or not: the node drops it, it stays cancelled, and the next
		// check runs.
		cancelled, err := c.ex.RequestCheck(ctx, c.gaj, wire.CheckJob, job.ID)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.ex.CancelCheck(ctx, c.gaj, cancelled.ID); err != nil && !errors.Is(err, exchange.ErrCheckOver) {
			t.Fatalf("cancel a check just requested: %v", err)
		}
		if jc = runCheck(t, c, c.gaj, wire.CheckJob, job.ID); keysOf(jc) != "11:changed 12:extra 8888:missing" {
			t.Fatalf("the check after a cancelled one: %s", keysOf(jc))
		}
		if got, _ := c.ex.Check(ctx, c.gaj, cancelled.ID); got.State != exchange.CheckCancelled && got.State != wire.CheckDone {
			t.Fatalf("the cancelled check is %s: %s", got.State, got.Error)
		}
	})
}

// fakeNode is a node of a department that the test drives by hand: it
// enrols, and posts to the node endpoint with its certificate as an agent
// would.
type fakeNode struct {
	id     int64
	url    string
	client *http.Client
}

func (c *center) fakeNode(t *testing.T, actor policy.Actor, dept int64, name string) *fakeNode {
	t.Helper()
	nodeID, key, cert, ca := c.enrol(t, actor, dept, name)
	cfg, err := pki.ClientTLS(cert, key, ca)
	if err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{TLSClientConfig: cfg}
	t.Cleanup(tr.CloseIdleConnections)
	return &fakeNode{id: nodeID, url: c.url, client: &http.Client{Transport: tr, Timeout: 30 * time.Second}}
}

// post sends body to the center and returns the status and the code of a
// refusal.
func (n *fakeNode) post(t *testing.T, path string, body any) (int, string) {
	t.Helper()
	b, _ := json.Marshal(body)
	resp, err := n.client.Post(n.url+path, "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var answer struct {
		Code string `json:"code"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&answer)
	return resp.StatusCode, answer.Code
}

// listed says whether the node's commands list a check.
func (n *fakeNode) listed(t *testing.T, c *center, id int64) bool {
	t.Helper()
	cmds, err := c.ex.Commands(context.Background(), n.id)
	if err != nil {
		t.Fatal(err)
	}
	return slices.ContainsFunc(cmds.Checks, func(r wire.CheckRequest) bool { return r.ID == id })
}

// checkJob is a job of the provider on node, never run: its checks wait
// for the test to play the node.
func checkJob(t *testing.T, c *center, node int64) exchange.Job {
	t.Helper()
	j, err := c.ex.CreateJob(context.Background(), c.gaj, node, wire.JobSpec{Name: "人口核对", Resource: c.resource.Code, Source: "hjk", Table: "people",
		Mapping: []wire.ColumnMapping{{Column: "id", Item: "person_id"}, {Column: "xm", Item: "name"}}, Mode: wire.ModeFull, Schedule: wire.ScheduleOnce})
	if err != nil {
		t.Fatal(err)
	}
	return j
}

func audited(t *testing.T, db *store.DB, action string, id int64) int {
	t.Helper()
	var n int
	if err := db.QueryRow(context.Background(), "SELECT COUNT(*) FROM audit_events WHERE action = ? AND object_id = ? AND result = ?",
		action, fmt.Sprint(id), audit.ResultOK).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestFullCheckCancelledByWhoMayRequestIt: a check waiting for its node or
// running on it is cancelled by those who may request it, and no one else;
// the node is refused it from then on and its report changes nothing; a
// check that is over cannot be cancelled; a new one can be requested.
func TestFullCheckCancelledByWhoMayRequestIt(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		c := newCenter(t, db)
		node := c.fakeNode(t, c.gaj, c.gajDept, "gaj-node")
		job := checkJob(t, c, node.id)
		status := func(id int64) exchange.Check {
			t.Helper()
			ch, err := c.ex.Check(ctx, c.gaj, id)
			if err != nil {
				t.Fatal(err)
			}
			return ch
		}

		// Waiting for the node: another department's administrator may
		// not cancel it, the job's may.
		ch, err := c.ex.RequestCheck(ctx, c.gaj, wire.CheckJob, job.ID)
		if err != nil || ch.State != wire.CheckRequested || !node.listed(t, c, ch.ID) {
			t.Fatalf("request a check: %+v, %v", ch, err)
		}
		if _, err := c.ex.CancelCheck(ctx, c.mzj, ch.ID); !errors.Is(err, apperr.ErrDenied) {
			t.Fatalf("another department's administrator cancelled the check: %v", err)
		}
		if got := status(ch.ID); got.State != wire.CheckRequested {
			t.Fatalf("a refused cancel changed the check: %s", got.State)
		}
		if _, err := c.ex.CancelCheck(ctx, c.gaj, 1<<40); !errors.Is(err, apperr.ErrNotFound) {
			t.Fatalf("cancel a check that does not exist: %v", err)
		}
		got, err := c.ex.CancelCheck(ctx, c.gaj, ch.ID)
		if err != nil || got.State != exchange.CheckCancelled || got.FinishedAt == nil || got.Error != "已由 gaj.admin 取消 / cancelled by gaj.admin" {
			t.Fatalf("cancel a waiting check: %+v, %v", got, err)
		}
		if n := audited(t, db, "exchange.check_cancel", ch.ID); n != 1 {
			t.Fatalf("%d audit events of the cancel", n)
		}
		if list, _ := c.ex.Checks(ctx, c.gaj, wire.CheckJob, job.ID); len(list) != 1 || list[0].State != exchange.CheckCancelled {
			t.Fatalf("the job's checks after the cancel: %+v", list)
		}

		// The node hears of it no more; whatever it sends about it is
		// refused and changes nothing.
		if node.listed(t, c, ch.ID) {
			t.Fatal("the node's commands still list the cancelled check")
		}
		for _, call := range []struct {
			path string
			body any
		}{
			{wire.PathChecks, wire.CheckReport{ID: ch.ID, State: wire.CheckRunning}},
			{wire.PathChecksums, wire.ChecksumQuery{Check: ch.ID, Max: 10}},
			{wire.PathChecks, wire.CheckReport{ID: ch.ID, State: wire.CheckDone, Rows: 5, Chunks: 1}},
			{wire.PathChecks, wire.CheckReport{ID: ch.ID, State: wire.CheckFailed, Error: "stopped"}},
		} {
			if st, code := node.post(t, call.path, call.body); st != http.StatusConflict || code != "exchange.check_over" {
				t.Fatalf("the node's %s %+v about a cancelled check: %d %s", call.path, call.body, st, code)
			}
		}
		if after := status(ch.ID); after.State != exchange.CheckCancelled || after.Error != got.Error || after.Rows != 0 || after.StartedAt != nil {
			t.Fatalf("the node's calls changed the cancelled check: %+v", after)
		}
		if _, err := c.ex.CancelCheck(ctx, c.gaj, ch.ID); !errors.Is(err, exchange.ErrCheckOver) {
			t.Fatalf("cancel a cancelled check: %v", err)
		}

		// A new check may be requested; running on the node, the platform
		// administrator cancels it, and the node's result comes too late.
		run, err := c.ex.RequestCheck(ctx, c.gaj, wire.CheckJob, job.ID)
		if err != nil {
			t.Fatalf("a new check after the cancelled one: %v", err)
		}
		if st, code := node.post(t, wire.PathChecks, wire.CheckReport{ID: run.ID, State: wire.CheckRunning}); st != http.StatusOK {
			t.Fatalf("the node starts the check: %d %s", st, code)
		}
		if got := status(run.ID); got.State != wire.CheckRunning || got.StartedAt == nil {
			t.Fatalf("a started check: %+v", got)
		}
		if got, err = c.ex.CancelCheck(ctx, c.admin, run.ID); err != nil || got.State != exchange.CheckCancelled || got.Error != "已由 admin 取消 / cancelled by admin" {
			t.Fatalf("cancel a running check: %+v, %v", got, err)
		}
		if st, code := node.post(t, wire.PathChecks, wire.CheckReport{ID: run.ID, State: wire.CheckDone, Rows: 5, Chunks: 1, Differ: 1,
			Keys: []wire.CheckKey{{Key: "1", Kind: wire.DiffChanged}}}); st != http.StatusConflict || code != "exchange.check_over" {
			t.Fatalf("the node's result of a cancelled check: %d %s", st, code)
		}
		if after := status(run.ID); after.State != exchange.CheckCancelled || after.Differ != 0 || len(after.Keys) != 0 {
			t.Fatalf("the node's result overwrote the cancel: %+v", after)
		}
		if n := audited(t, db, "exchange.check_result", run.ID); n != 0 {
			t.Fatalf("a refused result was audited as recorded: %d", n)
		}

		// A check that is done cannot be cancelled; the node's result,
		// sent again, is taken as heard.
		done, err := c.ex.RequestCheck(ctx, c.gaj, wire.CheckJob, job.ID)
		if err != nil {
			t.Fatal(err)
		}
		result := wire.CheckReport{ID: done.ID, State: wire.CheckDone, Rows: 5, Chunks: 1}
		for i := range 2 {
			if st, code := node.post(t, wire.PathChecks, result); st != http.StatusOK {
				t.Fatalf("the node's result (%d): %d %s", i+1, st, code)
			}
		}
		if _, err := c.ex.CancelCheck(ctx, c.gaj, done.ID); !errors.Is(err, exchange.ErrCheckOver) {
			t.Fatalf("cancel a check that is done: %v", err)
		}
		if got := status(done.ID); got.State != wire.CheckDone || got.Rows != 5 {
			t.Fatalf("the done check: %+v", got)
		}
	})
}

// TestFullCheckNotStartedWithinADayFails: a check no node started within
// 24 hours of its request fails by itself, says why, and no longer stands
// in the way of a new one; one started in time is left alone.
func TestFullCheckNotStartedWithinADayFails(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		c := newCenter(t, db)
		node := c.fakeNode(t, c.gaj, c.gajDept, "gaj-node")
		job := checkJob(t, c, node.id)
		requestedAgo := func(id int64, d time.Duration) {
			t.Helper()
			if _, err := db.Exec(ctx, "UPDATE exchange_checks SET requested_at = ? WHERE id = ?", store.Now().Add(-d), id); err != nil {
				t.Fatal(err)
			}
		}

		ch, err := c.ex.RequestCheck(ctx, c.gaj, wire.CheckJob, job.ID)
		if err != nil {
			t.Fatal(err)
		}
		requestedAgo(ch.ID, 23*time.Hour)
		if got, _ := c.ex.Check(ctx, c.gaj, ch.ID); got.State != wire.CheckRequested || !node.listed(t, c, ch.ID) {
			t.Fatalf("a check requested 23 hours ago: %s", got.State)
		}
		if _, err := c.ex.RequestCheck(ctx, c.gaj, wire.CheckJob, job.ID); !errors.Is(err, exchange.ErrCheckPending) {
			t.Fatalf("a second check beside one waiting 23 hours: %v", err)
		}

		// A day on, the node is not told of it and may not start it.
		requestedAgo(ch.ID, 24*time.Hour+time.Minute)
		if node.listed(t, c, ch.ID) {
			t.Fatal("the node's commands list a check that waited a day")
		}
		const why = "前置机24小时内未开始核对(可能离线)，请确认前置机在线后重新发起 / " +
			"the node did not start the check within 24 hours (it may be offline); make sure it is online and request the check again"
		got, err := c.ex.Check(ctx, c.gaj, ch.ID)
		if err != nil || got.State != wire.CheckFailed || got.Error != why || got.FinishedAt == nil {
			t.Fatalf("a check that waited a day: %+v, %v", got, err)
		}
		if st, code := node.post(t, wire.PathChecks, wire.CheckReport{ID: ch.ID, State: wire.CheckRunning}); st != http.StatusConflict || code != "exchange.check_over" {
			t.Fatalf("the node starts an expired check: %d %s", st, code)
		}
		if _, err := c.ex.CancelCheck(ctx, c.gaj, ch.ID); !errors.Is(err, exchange.ErrCheckOver) {
			t.Fatalf("cancel an expired check: %v", err)
		}

		// Expired when a new one is requested, whoever read it before.
		next, err := c.ex.RequestCheck(ctx, c.gaj, wire.CheckJob, job.ID)
		if err != nil {
			t.Fatalf("a new check after the expired one: %v", err)
		}
		requestedAgo(next.ID, 25*time.Hour)
		last, err := c.ex.RequestCheck(ctx, c.gaj, wire.CheckJob, job.ID)
		if err != nil {
			t.Fatalf("a new check beside one that waited a day: %v", err)
		}
		list, err := c.ex.Checks(ctx, c.gaj, wire.CheckJob, job.ID)
		if err != nil || len(list) != 3 || list[0].ID != last.ID || list[0].State != wire.CheckRequested || list[1].State != wire.CheckFailed || list[1].Error != why {
			t.Fatalf("the job's checks: %+v, %v", list, err)
		}

		// A running check is the node's: it does not expire.
		if st, code := node.post(t, wire.PathChecks, wire.CheckReport{ID: last.ID, State: wire.CheckRunning}); st != http.StatusOK {
			t.Fatalf("the node starts the check: %d %s", st, code)
		}
		requestedAgo(last.ID, 48*time.Hour)
		if got, _ := c.ex.Check(ctx, c.gaj, last.ID); got.State != wire.CheckRunning || !node.listed(t, c, last.ID) {
			t.Fatalf("a running check after two days: %s", got.State)
		}
	})
}
