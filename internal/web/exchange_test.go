package web_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"govshare/internal/agent"
	"govshare/internal/catalog"
	"govshare/internal/exchange"
	"govshare/internal/exchange/wire"
	"govshare/internal/pki"
	"govshare/internal/policy"
	"govshare/internal/share"
	"govshare/internal/store"
	"govshare/internal/storetest"
)

// Rows of the authorization matrix for the exchange system: A owns a
// node, a job into its resource and a subscription to C's resource.
func init() {
	viewers := either(anyDept(policy.PlatformAdmin, policy.Auditor), ownDept(policy.DeptAdmin, policy.DeptReviewer))
	managers := either(anyDept(policy.PlatformAdmin), ownDept(policy.DeptAdmin))
	// Lists show the caller's own department: any department's viewers may ask.
	listers := anyDept(policy.PlatformAdmin, policy.Auditor, policy.DeptAdmin, policy.DeptReviewer)
	// deptA lists department A's objects, made before the call.
	deptA := func(make func(fx *authzFixture) int64) func(fx *authzFixture) authzReq {
		return func(fx *authzFixture) authzReq {
			make(fx)
			return authzReq{query: fmt.Sprintf("dept_id=%d", fx.a.ID)}
		}
	}
	listsA := func(id func(fx *authzFixture) int64) func(t *testing.T, fx *authzFixture, c authzCaller, body []byte) {
		return func(t *testing.T, fx *authzFixture, c authzCaller, body []byte) {
			if !listHasID(t, body, id(fx)) {
				t.Errorf("%s: department A's object missing from the list", c)
			}
		}
	}
	authzRows = append(authzRows,
		authzRow{op: "GET /api/v1/nodes", status: 200, allow: viewers, req: deptA((*authzFixture).nodeA), check: listsA((*authzFixture).nodeA)},
		authzRow{op: "POST /api/v1/nodes", status: 201, allow: managers,
			req: func(fx *authzFixture) authzReq {
				return authzReq{body: map[string]any{"dept_id": fx.a.ID, "name": fmt.Sprintf("前置机%d", fx.next())}}
			}},
		authzRow{op: "GET /api/v1/nodes/{id}", status: 200, allow: viewers, req: idReq((*authzFixture).nodeA)},
		authzRow{op: "POST /api/v1/nodes/{id}/code", status: 200, allow: managers,
			req: idReq(func(fx *authzFixture) int64 { n, _ := fx.node(false); return n })},
		authzRow{op: "POST /api/v1/nodes/{id}/revoke", status: 200, allow: managers,
			req: func(fx *authzFixture) authzReq {
				n, _ := fx.node(true)
				return authzReq{params: map[string]any{"id": n}, body: map[string]any{"reason": "设备报废"}}
			}},
		// The one-time code is the credential: no token, no signature.
		authzRow{op: "POST /api/v1/nodes/enrol", status: 200, public: true,
			req: func(fx *authzFixture) authzReq {
				_, code := fx.node(false)
				key, err := pki.NewNodeKey()
				fx.must(err)
				csr, err := pki.CSR(key, "matrix")
				fx.must(err)
				return authzReq{body: wire.Enrolment{Code: code, CSR: string(csr)}}
			}},
		authzRow{op: "GET /api/v1/exchange/jobs", status: 200, allow: viewers, req: deptA((*authzFixture).jobA), check: listsA((*authzFixture).jobA)},
		authzRow{op: "POST /api/v1/exchange/jobs", status: 201, allow: managers,
			req: func(fx *authzFixture) authzReq {
				spec := fx.jobSpec()
				return authzReq{body: map[string]any{"node_id": fx.nodeA(), "name": spec.Name, "resource": spec.Resource, "source": spec.Source,
					"table": spec.Table, "mapping": spec.Mapping, "mode": spec.Mode, "schedule": spec.Schedule}}
			}},
		authzRow{op: "GET /api/v1/exchange/jobs/{id}", status: 200, allow: viewers, req: idReq((*authzFixture).jobA)},
		authzRow{op: "PUT /api/v1/exchange/jobs/{id}", status: 200, allow: managers,
			req: func(fx *authzFixture) authzReq {
				spec := fx.jobSpec()
				spec.Schedule, spec.IntervalSeconds = wire.ScheduleInt, 600
				return authzReq{params: map[string]any{"id": fx.newJob()}, body: spec}
			}},
		authzRow{op: "POST /api/v1/exchange/jobs/{id}/{action}", status: 200, allow: managers,
			req: func(fx *authzFixture) authzReq {
				return authzReq{params: map[string]any{"id": fx.jobA(), "action": "run"}}
			}},
		authzRow{op: "DELETE /api/v1/exchange/jobs/{id}", status: 200, allow: managers, req: idReq((*authzFixture).newJob)},
		authzRow{op: "GET /api/v1/exchange/subscriptions", status: 200, allow: viewers, req: deptA((*authzFixture).subA), check: listsA((*authzFixture).subA)},
		// Only the consumer's data administrator subscribes its nodes.
		authzRow{op: "POST /api/v1/exchange/subscriptions", status: 201, allow: ownDept(policy.DeptAdmin),
			req: func(fx *authzFixture) authzReq {
				return authzReq{body: exchange.SubscriptionRequest{GrantID: fx.exchangeGrant(), NodeID: fx.nodeA(), Target: "yw",
					Table: fmt.Sprintf("copy_%d", fx.next()), Create: true, Realtime: true}}
			}},
		authzRow{op: "GET /api/v1/exchange/subscriptions/{id}", status: 200, allow: viewers, req: idReq((*authzFixture).subA)},
		authzRow{op: "POST /api/v1/exchange/subscriptions/{id}/{action}", status: 200, allow: ownDept(policy.DeptAdmin),
			req: func(fx *authzFixture) authzReq {
				return authzReq{params: map[string]any{"id": fx.newSub(), "action": "stop"}}
			}},
		authzRow{op: "DELETE /api/v1/exchange/subscriptions/{id}", status: 200, allow: ownDept(policy.DeptAdmin), req: idReq((*authzFixture).newSub)},
		// Full checks: one open check per job or subscription, so each call gets a fresh one.
		authzRow{op: "POST /api/v1/exchange/jobs/{id}/checks", status: 201, allow: managers, req: idReq((*authzFixture).newJob)},
		authzRow{op: "GET /api/v1/exchange/jobs/{id}/checks", status: 200, allow: viewers, req: idReq((*authzFixture).jobA)},
		authzRow{op: "POST /api/v1/exchange/subscriptions/{id}/checks", status: 201, allow: managers, req: idReq((*authzFixture).newSub)},
		authzRow{op: "GET /api/v1/exchange/subscriptions/{id}/checks", status: 200, allow: viewers, req: idReq((*authzFixture).subA)},
		authzRow{op: "GET /api/v1/exchange/checks/{id}", status: 200, allow: viewers, req: idReq((*authzFixture).check)},
		// Those who may request a check may cancel it: a fresh waiting one each call.
		authzRow{op: "POST /api/v1/exchange/checks/{id}/cancel", status: 200, allow: managers, req: idReq((*authzFixture).newCheck)},
		authzRow{op: "GET /api/v1/exchange/runs", status: 200, allow: listers, req: noReq},
		authzRow{op: "GET /api/v1/exchange/alarms", status: 200, allow: listers, req: noReq},
		authzRow{op: "POST /api/v1/exchange/alarms/{id}/close", status: 200, allow: managers,
			req: func(fx *authzFixture) authzReq {
				return authzReq{params: map[string]any{"id": fx.alarm()}, body: map[string]any{"note": "已处理"}}
			}},
	)
}

// node registers a node of A; enrolled, it holds a certificate. It
// returns the node's id and, when not enrolled, its code.
func (fx *authzFixture) node(enrolled bool) (int64, string) {
	fx.t.Helper()
	ctx := context.Background()
	e, code, err := fx.e.pki.CreateEnrolment(ctx, fx.actor(policy.DeptAdmin, deptOwn), fx.a.ID, fmt.Sprintf("前置机%d", fx.next()))
	fx.must(err)
	if !enrolled {
		return e.Node.ID, code
	}
	key, err := pki.NewNodeKey()
	fx.must(err)
	csr, err := pki.CSR(key, e.Node.Name)
	fx.must(err)
	_, _, err = fx.e.pki.Enrol(ctx, code, csr)
	fx.must(err)
	return e.Node.ID, ""
}

// nodeA is A's enrolled node, made on first use.
func (fx *authzFixture) nodeA() int64 {
	if fx.exchange.node == 0 {
		fx.exchange.node, _ = fx.node(true)
	}
	return fx.exchange.node
}

// exchangeResourceA is a published, mounted resource of A shared by exchange.
func (fx *authzFixture) exchangeResourceA() string {
	fx.t.Helper()
	if fx.exchange.resource == "" {
		c := authzContent("民政交换资源")
		c.ShareMethods = []catalog.ShareMethod{catalog.MethodExchange}
		e := fx.entryOf(fx.actor(policy.DeptAdmin, deptOwn), c, catalog.Published)
		r, err := fx.e.res.Mount(context.Background(), fx.actor(policy.DeptAdmin, deptOwn), e.ID)
		fx.must(err)
		fx.exchange.resource = r.Code
	}
	return fx.exchange.resource
}

func (fx *authzFixture) jobSpec() wire.JobSpec {
	return wire.JobSpec{Name: fmt.Sprintf("同步%d", fx.next()), Resource: fx.exchangeResourceA(), Source: "ywk", Table: "t_data",
		Mapping: []wire.ColumnMapping{{Column: "bh", Item: "no"}}, Mode: wire.ModeFull, Schedule: wire.ScheduleOnce}
}

// newJob makes a fresh job on A's node.
func (fx *authzFixture) newJob() int64 {
	fx.t.Helper()
	j, err := fx.e.ex.CreateJob(context.Background(), fx.actor(policy.DeptAdmin, deptOwn), fx.nodeA(), fx.jobSpec())
	fx.must(err)
	return j.ID
}

func (fx *authzFixture) jobA() int64 {
	if fx.exchange.job == 0 {
		fx.exchange.job = fx.newJob()
	}
	return fx.exchange.job
}

// exchangeGrant is A's grant to C's resource that allows exchange.
func (fx *authzFixture) exchangeGrant() int64 {
	fx.t.Helper()
	if fx.exchange.grant == 0 {
		ctx := context.Background()
		c := authzContent("公安交换资源")
		c.ShareMethods = []catalog.ShareMethod{catalog.MethodExchange}
		e := fx.entryOf(fx.cAdmin, c, catalog.Published)
		_, err := fx.e.res.Mount(ctx, fx.cAdmin, e.ID)
		fx.must(err)
		app, err := fx.share.Apply(ctx, fx.actor(policy.DeptAdmin, deptOwn), e.ID, share.Terms{Items: []string{"no"},
			Methods: []catalog.ShareMethod{catalog.MethodExchange}, Purpose: "矩阵测试"})
		fx.must(err)
		fx.exchange.grant = app.GrantID
	}
	return fx.exchange.grant
}

// newSub subscribes A's node to C's resource.
func (fx *authzFixture) newSub() int64 {
	fx.t.Helper()
	x, err := fx.e.ex.CreateSubscription(context.Background(), fx.actor(policy.DeptAdmin, deptOwn), exchange.SubscriptionRequest{GrantID: fx.exchangeGrant(),
		NodeID: fx.nodeA(), Target: "yw", Table: fmt.Sprintf("copy_%d", fx.next()), Create: true, Realtime: true})
	fx.must(err)
	return x.ID
}

func (fx *authzFixture) subA() int64 {
	if fx.exchange.sub == 0 {
		fx.exchange.sub = fx.newSub()
	}
	return fx.exchange.sub
}

// check is a full check requested of A's job, made on first use.
func (fx *authzFixture) check() int64 {
	if fx.exchange.check == 0 {
		fx.exchange.check = fx.checkOf(fx.jobA())
	}
	return fx.exchange.check
}

// newCheck is a full check requested of a fresh job of A.
func (fx *authzFixture) newCheck() int64 { return fx.checkOf(fx.newJob()) }

func (fx *authzFixture) checkOf(job int64) int64 {
	fx.t.Helper()
	c, err := fx.e.ex.RequestCheck(context.Background(), fx.actor(policy.DeptAdmin, deptOwn), "job", job)
	fx.must(err)
	return c.ID
}

// alarm opens an alarm concerning A, as reconciliation would.
func (fx *authzFixture) alarm() int64 {
	fx.t.Helper()
	var id int64
	depts, _ := json.Marshal([]int64{fx.a.ID})
	fx.must(fx.e.db.QueryRow(context.Background(), `INSERT INTO exchange_alarms (kind, job_id, dept_ids, message_zh, message_en, created_at)
		VALUES ('mismatch', ?, ?, '计数不一致', 'counts differ', ?) RETURNING id`, fx.jobA(), string(depts), time.Now()).Scan(&id))
	return id
}

// TestExchangeThroughTheAPI is a data administrator's way through the
// exchange API: register a node, enrol it with its code, define a job,
// change, start and stop it, subscribe to a granted resource, and read
// runs and alarms; and the refusals on the way.
func TestExchangeThroughTheAPI(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db, nil)
		status, m, _ := e.api(policy.DeptAdmin, "POST", "/api/v1/nodes", map[string]any{"name": "公安前置机"})
		if status != 201 || m["code"] == "" {
			t.Fatalf("create node: %d %v", status, m)
		}
		node := m["node"].(map[string]any)
		nodeID := int64(node["id"].(float64))
		if node["state"] != "pending" || node["dept_id"].(float64) != float64(e.police.ID) {
			t.Fatalf("a new node: %v", node)
		}
		code := m["code"].(string)
		if cmd, _ := m["command"].(string); cmd == "" || !strings.Contains(cmd, code) {
			t.Fatalf("the answer gives no enrolment command: %v", m)
		}

		// Enrolment: a wrong code is refused; the right one once.
		key, _ := pki.NewNodeKey()
		csr, _ := pki.CSR(key, "公安前置机")
		status, m, _ = e.api("", "POST", wire.PathEnrol, wire.Enrolment{Code: "WRONG-CODE", CSR: string(csr)})
		if status != 401 || m["code"] != "pki.enrolment_code_invalid" {
			t.Fatalf("wrong code: %d %v", status, m)
		}
		status, m, _ = e.api("", "POST", wire.PathEnrol, wire.Enrolment{Code: code, CSR: string(csr)})
		if status != 200 || m["certificate"] == "" || m["ca"] == "" || m["node_url"] != "https://127.0.0.1:8443" {
			t.Fatalf("enrol: %d %v", status, m)
		}
		status, m, _ = e.api("", "POST", wire.PathEnrol, wire.Enrolment{Code: code, CSR: string(csr)})
		if status != 409 || m["code"] != "pki.enrolment_code_used" {
			t.Fatalf("second use of a code: %d %v", status, m)
		}
		status, m, _ = e.api(policy.DeptAdmin, "GET", fmt.Sprintf("/api/v1/nodes/%d", nodeID), nil)
		if status != 200 || m["state"] != "active" || m["online"] != false || m["cert_not_after"] == nil {
			t.Fatalf("enrolled node: %d %v", status, m)
		}

		// The agent's own enrolment: its key stays in its folder.
		status, m, _ = e.api(policy.DeptAdmin, "POST", "/api/v1/nodes", map[string]any{"name": "公安前置机2"})
		if status != 201 {
			t.Fatalf("create node: %d %v", status, m)
		}
		dir := t.TempDir()
		if _, err := agent.Enrol(context.Background(), e.srv.URL, "BAD", dir, "公安前置机2"); err == nil || !strings.Contains(err.Error(), "pki.enrolment_code_invalid") {
			t.Fatalf("agent enrol with a bad code: %v", err)
		}
		nodeURL, err := agent.Enrol(context.Background(), e.srv.URL, m["code"].(string), dir, "公安前置机2")
		if err != nil || nodeURL != "https://127.0.0.1:8443" {
			t.Fatalf("agent enrol: %q %v", nodeURL, err)
		}
		for _, f := range []string{"node.key", "node.crt", "ca.crt"} {
			if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
				t.Errorf("after enrolment: %v", err)
			}
		}

		// A job into the department's own resource.
		en := e.publishEntryWith("人口交换", catalog.ShareUnconditional, catalog.MethodExchange)
		if status, m, _ = e.api(policy.DeptAdmin, "POST", fmt.Sprintf("/api/v1/catalog/entries/%d/mount", en.ID), nil); status != 200 {
			t.Fatalf("mount: %d %v", status, m)
		}
		job := map[string]any{"node_id": nodeID, "name": "人口同步", "resource": en.Code, "source": "hjk", "table": "people",
			"mapping": []map[string]string{{"column": "sfzh", "item": "citizen_id"}, {"column": "xm", "item": "name"}}, "mode": "time", "schedule": "continuous"}
		status, m, _ = e.api(policy.DeptAdmin, "POST", "/api/v1/exchange/jobs", job)
		if status != 422 || m["field"] != "inc_column" {
			t.Fatalf("a time job without its column: %d %v", status, m)
		}
		job["inc_column"] = "gxsj"
		status, m, _ = e.api(policy.DeptAdmin, "POST", "/api/v1/exchange/jobs", job)
		if status != 201 || m["version"].(float64) != 1 || m["running"] != false {
			t.Fatalf("create job: %d %v", status, m)
		}
		jobID := int64(m["id"].(float64))
		job["schedule"], job["cron"] = "cron", "*/5 * * * *"
		delete(job, "node_id") // a job stays on its node
		status, m, _ = e.api(policy.DeptAdmin, "PUT", fmt.Sprintf("/api/v1/exchange/jobs/%d", jobID), job)
		if status != 200 || m["cron"] != "*/5 * * * *" || m["version"].(float64) != 2 {
			t.Fatalf("change job: %d %v", status, m)
		}
		for _, step := range []struct {
			action  string
			running bool
		}{{"start", true}, {"run", true}, {"stop", false}} {
			status, m, _ = e.api(policy.DeptAdmin, "POST", fmt.Sprintf("/api/v1/exchange/jobs/%d/%s", jobID, step.action), nil)
			if status != 200 || m["running"] != step.running {
				t.Fatalf("%s: %d %v", step.action, status, m)
			}
		}
		// A full check waits for the node; one at a time.
		status, m, _ = e.api(policy.DeptAdmin, "POST", fmt.Sprintf("/api/v1/exchange/jobs/%d/checks", jobID), nil)
		if status != 201 || m["state"] != "requested" || m["kind"] != "job" {
			t.Fatalf("full check: %d %v", status, m)
		}
		checkID := int64(m["id"].(float64))
		if status, m, _ = e.api(policy.DeptAdmin, "POST", fmt.Sprintf("/api/v1/exchange/jobs/%d/checks", jobID), nil); status != 409 {
			t.Fatalf("a second open check: %d %v", status, m)
		}
		if status, m, _ = e.api(policy.DeptReviewer, "GET", fmt.Sprintf("/api/v1/exchange/checks/%d", checkID), nil); status != 200 || m["state"] != "requested" {
			t.Fatalf("read the check: %d %v", status, m)
		}
		// The job's page shows the check and offers no second one while it is open.
		b := e.browser()
		b.login("dept.admin")
		page := fmt.Sprintf("/exchange/jobs/%d", jobID)
		if st, body, _ := b.get(page); st != 200 || !strings.Contains(body, `id="check-table"`) || !strings.Contains(body, `data-state="requested"`) {
			t.Fatalf("job page with its check: %d", st)
		}
		if st, body, _ := b.post(page+"/check", url.Values{"_csrf": {b.csrf(page)}}); st != 409 || !strings.Contains(body, "exchange.check_pending") && !strings.Contains(body, "核对") {
			t.Fatalf("a second check from the page: %d", st)
		}
		if status, _, _ = e.api(policy.Consumer, "POST", fmt.Sprintf("/api/v1/exchange/jobs/%d/start", jobID), nil); status != 403 {
			t.Fatalf("a consumer started a job: %d", status)
		}
		status, list, _ := e.apiList(policy.DeptAdmin, "GET", "/api/v1/exchange/jobs")
		if status != 200 || len(list) != 1 || list[0]["name"] != "人口同步" || list[0]["node_name"] != "公安前置机" {
			t.Fatalf("jobs: %d %v", status, list)
		}
		if status, list, _ = e.apiList(policy.DeptAdmin, "GET", "/api/v1/exchange/runs"); status != 200 || len(list) != 0 {
			t.Fatalf("runs: %d %v", status, list)
		}
		if status, list, _ = e.apiList(policy.PlatformAdmin, "GET", "/api/v1/exchange/alarms?all=true"); status != 200 || len(list) != 0 {
			t.Fatalf("alarms: %d %v", status, list)
		}

		// Revocation: the node is refused from then on, and no job can be
		// defined for it.
		if status, m, _ = e.api(policy.DeptAdmin, "POST", fmt.Sprintf("/api/v1/nodes/%d/revoke", nodeID), map[string]any{"reason": ""}); status != 422 {
			t.Fatalf("revoke without a reason: %d %v", status, m)
		}
		status, m, _ = e.api(policy.DeptAdmin, "POST", fmt.Sprintf("/api/v1/nodes/%d/revoke", nodeID), map[string]any{"reason": "设备更换"})
		if status != 200 || m["state"] != "revoked" {
			t.Fatalf("revoke: %d %v", status, m)
		}
		job["name"], job["node_id"] = "撤销后", nodeID
		if status, m, _ = e.api(policy.DeptAdmin, "POST", "/api/v1/exchange/jobs", job); status != 409 {
			t.Fatalf("a job on a revoked node: %d %v", status, m)
		}
	})
}

// apiList calls an operation that answers a list.
func (e *env) apiList(role policy.Role, method, path string) (int, []map[string]any, error) {
	e.t.Helper()
	status, raw := e.apiRaw(role, method, path, nil)
	var list []map[string]any
	err := json.Unmarshal(raw, &list)
	return status, list, err
}
