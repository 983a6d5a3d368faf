package web_test

import (
	"context"
	"encoding/json"
	"fmt"
	"html"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"govshare/internal/catalog"
	"govshare/internal/exchange/wire"
	"govshare/internal/identity"
	"govshare/internal/pki"
	"govshare/internal/policy"
	"govshare/internal/store"
	"govshare/internal/storetest"
)

var (
	enrolCodeRE = regexp.MustCompile(`id="enrol-code">([A-Z2-7-]+)<`)
	// checkCancelRE finds the cancel button of a waiting or running check.
	checkCancelRE = regexp.MustCompile(`id="check-cancel-([0-9]+)"`)
	// untranslatedRE finds a UI key printed instead of its text.
	untranslatedRE = regexp.MustCompile(`[>\s](?:ex|nav)\.[a-z_]+\.[a-z_.]*[a-z_]`)
)

// submit posts a form with a fresh CSRF token from the page it is on.
func (b *browser) submit(from, path string, form url.Values) (int, string, string) {
	b.t.Helper()
	if form == nil {
		form = url.Values{}
	}
	form.Set("_csrf", b.csrf(from))
	return b.post(path, form)
}

// registerNode registers a node on the nodes page and returns its id, the
// one-time code and the result page that shows it.
func (b *browser) registerNode(name string) (int64, string, string) {
	b.t.Helper()
	status, page, _ := b.submit("/exchange/nodes", "/exchange/nodes", url.Values{"name": {name}})
	m := enrolCodeRE.FindStringSubmatch(page)
	if status != 201 || m == nil {
		b.t.Fatalf("register node %s: %d %s", name, status, page[:min(len(page), 400)])
	}
	id := regexp.MustCompile(`id="enrolment" data-node="([0-9]+)"`).FindStringSubmatch(page)
	if id == nil {
		b.t.Fatalf("register node %s: the result names no node", name)
	}
	var n int64
	fmt.Sscan(id[1], &n)
	return n, m[1], page
}

// enrolNode enrols a registered node with its code, as its agent would,
// and reports a heartbeat with the data sources it found.
func (e *env) enrolNode(id int64, code string, sources []wire.SourceInfo) {
	e.t.Helper()
	ctx := context.Background()
	key, _ := pki.NewNodeKey()
	csr, _ := pki.CSR(key, "node")
	if _, _, err := e.pki.Enrol(ctx, code, csr); err != nil {
		e.t.Fatal(err)
	}
	raw, _ := json.Marshal(sources)
	if _, err := e.db.Exec(ctx, "UPDATE nodes SET version = ?, sources = ?, last_seen_at = ? WHERE id = ?", "1.4.0", string(raw), time.Now(), id); err != nil {
		e.t.Fatal(err)
	}
}

// jobForm is the job form as a data administrator fills it in.
func jobFormValues(nodeID int64, name, resource, mapping string) url.Values {
	return url.Values{"node_id": {fmt.Sprint(nodeID)}, "name": {name}, "resource": {resource}, "source": {"hjk"}, "table": {"public.people"},
		"mapping": {mapping}, "mode": {"full"}, "schedule": {"manual"}}
}

// fieldError says whether the page shows the error of a form field.
func fieldError(page, field string) bool {
	return strings.Contains(page, `class="alert" role="alert"`) && strings.Contains(page, `data-field="`+field+`"`)
}

var peopleTable = []wire.SourceInfo{{Name: "hjk", Kind: "postgres", Tables: []wire.SourceTable{{Name: "public.people", Columns: []wire.SourceColumn{
	{Name: "sfzh", Type: "character varying(18)", Key: 1, DataType: "C", Length: 18},
	{Name: "xm", Type: "character varying(50)", DataType: "C", Length: 50},
	{Name: "gxsj", Type: "timestamp without time zone", DataType: "T"},
}}}}}

// exchangeGrantAndNode gives the civil affairs department an exchange
// grant of a mounted resource's citizen_id (its key) and name, and an
// enrolled node; it returns the department, its data administrator's
// browser, the grant and the node. Before the node the subscription form
// is not offered.
func (e *env) exchangeGrantAndNode() (identity.Department, *browser, string, int64) {
	t := e.t
	t.Helper()
	ctx := context.Background()
	civil, toks := e.civil()
	en := e.publishEntryWith("人口交换", catalog.ShareUnconditional, catalog.MethodExchange)
	if _, err := e.res.Mount(ctx, e.users[policy.DeptAdmin].Actor(), en.ID); err != nil {
		t.Fatal(err)
	}
	status, m := e.apiTok(toks[policy.DeptAdmin], "POST", "/api/v1/applications", map[string]any{"entry_id": en.ID, "items": []string{"citizen_id", "name"},
		"methods": []string{"exchange"}, "purpose": "低保核验"})
	if status != 201 {
		t.Fatalf("apply: %d %v", status, m)
	}
	status, m = e.apiTok(toks[policy.DeptAdmin], "GET", "/api/v1/grants?side=mine", nil)
	if status != 200 || len(m["list"].([]any)) != 1 {
		t.Fatalf("grants: %d %v", status, m)
	}
	grantID := fmt.Sprint(m["list"].([]any)[0].(map[string]any)["id"])

	mz := e.browser()
	mz.login("mzj.dept_admin")
	_, page, _ := mz.get("/exchange/subscriptions")
	if !strings.Contains(page, `id="sub-unavailable"`) || strings.Contains(page, `id="sub-form"`) {
		t.Fatal("a subscription form without a node to deliver to")
	}
	nodeID, code, _ := mz.registerNode("民政前置机")
	e.enrolNode(nodeID, code, nil)
	return civil, mz, grantID, nodeID
}

// TestExchangePagesManageNodesAndJobs is a data administrator's way
// through the exchange pages: register a node and see its code once, read
// the tables it reported, define a job with the form (a mistake is shown
// at its field), start, stop, change and list it; a reviewer only
// watches, a consumer is refused.
func TestExchangePagesManageNodesAndJobs(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db, nil)
		ctx := context.Background()
		da := e.browser()
		da.login("dept.admin")
		_, home, _ := da.get("/home")
		for _, href := range []string{"/exchange/nodes", "/exchange/jobs", "/exchange/subscriptions", "/exchange/runs", "/exchange/alarms"} {
			if !strings.Contains(home, `href="`+href+`"`) {
				t.Errorf("the data administrator's navigation lacks %s", href)
			}
		}

		// Register a node: a blank name is refused at the field; the code
		// and the command are shown once.
		status, page, _ := da.submit("/exchange/nodes", "/exchange/nodes", url.Values{"name": {" "}})
		if status != 422 || !fieldError(page, "name") || !strings.Contains(page, "pki.node_name_invalid") {
			t.Fatalf("blank node name: %d", status)
		}
		nodeID, code, page := da.registerNode("公安前置机")
		if !strings.Contains(html.UnescapeString(page), "govshare agent enrol --api "+e.srv.URL+" --code "+code+" --name '公安前置机'") {
			t.Fatal("the result page gives no enrolment command")
		}
		_, page, _ = da.get("/exchange/nodes")
		if strings.Contains(page, code) || !strings.Contains(page, `data-state="pending"`) || !strings.Contains(page, "reissue-form") {
			t.Fatal("the node list shows the code again, or no pending node with its new-code button")
		}
		// A new code replaces the old one, shown once too.
		status, page, _ = da.submit("/exchange/nodes", fmt.Sprintf("/exchange/nodes/%d/code", nodeID), nil)
		m := enrolCodeRE.FindStringSubmatch(page)
		if status != 200 || m == nil || m[1] == code {
			t.Fatalf("reissue: %d", status)
		}
		code = m[1]
		e.enrolNode(nodeID, code, peopleTable)

		// The node page shows what it reported, with suggested types, and
		// starts a job from a table.
		status, page, _ = da.get(fmt.Sprintf("/exchange/nodes/%d", nodeID))
		if status != 200 || !strings.Contains(page, `id="node-state" data-state="active"`) || !strings.Contains(page, `id="node-online"`) ||
			!strings.Contains(page, "1.4.0") || !strings.Contains(page, `data-table="public.people"`) || !strings.Contains(page, "日期时间型") {
			t.Fatalf("node page: %d", status)
		}
		prefill := fmt.Sprintf("/exchange/jobs?node_id=%d&source=hjk&table=public.people", nodeID)
		if !strings.Contains(page, html.EscapeString(prefill)) {
			t.Fatal("no link from a reported table to a new job")
		}
		_, page, _ = da.get(prefill)
		if !strings.Contains(html.UnescapeString(page), "sfzh=\nxm=\ngxsj=\n") {
			t.Fatal("the job form is not prefilled with the table's columns")
		}

		// Define a job with the form.
		en := e.publishEntryWith("人口交换", catalog.ShareUnconditional, catalog.MethodExchange)
		if _, err := e.res.Mount(ctx, e.users[policy.DeptAdmin].Actor(), en.ID); err != nil {
			t.Fatal(err)
		}
		_, page, _ = da.get("/exchange/jobs")
		if !strings.Contains(page, `id="job-form"`) || !strings.Contains(page, `<option value="`+en.Code+`"`) {
			t.Fatal("the job form does not offer the mounted resource")
		}
		form := jobFormValues(nodeID, "人口同步", en.Code, "xm=name\n")
		if status, page, _ = da.submit("/exchange/jobs", "/exchange/jobs", form); status != 422 || !fieldError(page, "mapping") || !strings.Contains(page, "citizen_id") {
			t.Fatalf("a mapping without the key item: %d", status)
		}
		form.Set("mapping", "# 户籍库\nsfzh=citizen_id\nxm=nosuch\n")
		status, page, _ = da.submit("/exchange/jobs", "/exchange/jobs", form)
		if status != 422 || !fieldError(page, "mapping") || !strings.Contains(page, "第 3 行") || !strings.Contains(page, `id="mapping-error"`) {
			t.Fatalf("an unknown item: %d", status)
		}
		if !strings.Contains(html.UnescapeString(page), "xm=nosuch") {
			t.Fatal("the refused form lost what was typed")
		}
		form.Set("mapping", "sfzh=citizen_id\nxm=name\ngxsj=\n")
		form.Set("mode", "time")
		if status, page, _ = da.submit("/exchange/jobs", "/exchange/jobs", form); status != 422 || !fieldError(page, "inc_column") {
			t.Fatalf("time mode without its column: %d", status)
		}
		form.Set("inc_column", "gxsj")
		form.Set("batch_rows", "many")
		if status, page, _ = da.submit("/exchange/jobs", "/exchange/jobs", form); status != 422 || !fieldError(page, "batch_rows") {
			t.Fatalf("a batch size that is no number: %d", status)
		}
		form.Set("batch_rows", "2000")
		status, _, loc := da.submit("/exchange/jobs", "/exchange/jobs", form)
		if status != 303 || !strings.Contains(loc, "?ok=ex.job.created") {
			t.Fatalf("create job: %d %s", status, loc)
		}
		jobPath := strings.SplitN(loc, "?", 2)[0]
		var jobID int64
		fmt.Sscanf(jobPath, "/exchange/jobs/%d", &jobID)
		j, err := e.ex.Job(ctx, e.users[policy.DeptAdmin].Actor(), jobID)
		if err != nil || j.Mode != wire.ModeTime || j.IncColumn != "gxsj" || j.BatchRows != 2000 || len(j.Mapping) != 2 || j.Running {
			t.Fatalf("the job made: %+v %v", j, err)
		}
		_, page, _ = da.get(loc)
		if !strings.Contains(page, "交换任务已创建") || !strings.Contains(page, `data-running="false"`) || !strings.Contains(page, `id="job-start"`) {
			t.Fatal("the new job's page")
		}

		// Start, run once, stop.
		for _, step := range []struct{ action, running, button string }{{"start", "true", "job-stop"}, {"run", "true", "job-stop"}, {"stop", "false", "job-start"}} {
			status, _, loc = da.submit(jobPath, jobPath+"/"+step.action, nil)
			if status != 303 {
				t.Fatalf("%s: %d", step.action, status)
			}
			_, page, _ = da.get(loc)
			if !strings.Contains(page, `data-running="`+step.running+`"`) || !strings.Contains(page, `id="`+step.button+`"`) || !strings.Contains(page, `class="flash"`) {
				t.Fatalf("after %s the job page shows the wrong state", step.action)
			}
		}
		da.submit(jobPath, jobPath+"/start", nil)

		// Change it with the same form: a bad cron at its field, then saved;
		// it keeps running.
		edit := jobFormValues(0, "人口同步", en.Code, "sfzh=citizen_id\nxm=name\n")
		edit.Del("node_id")
		edit.Set("schedule", "cron")
		edit.Set("cron", "every five minutes")
		if status, page, _ = da.submit(jobPath, jobPath, edit); status != 422 || !fieldError(page, "cron") {
			t.Fatalf("a bad cron: %d", status)
		}
		edit.Set("cron", "*/5 * * * *")
		if status, _, loc = da.submit(jobPath, jobPath, edit); status != 303 || !strings.Contains(loc, "ok=ex.job.saved") {
			t.Fatalf("change job: %d %s", status, loc)
		}
		if j, _ = e.ex.Job(ctx, e.users[policy.DeptAdmin].Actor(), jobID); j.Cron != "*/5 * * * *" || !j.Running || j.Mode != wire.ModeFull {
			t.Fatalf("the changed job: %+v", j)
		}

		// The list shows it running on its online node.
		_, page, _ = da.get("/exchange/jobs")
		if !strings.Contains(page, fmt.Sprintf(`<tr data-id="%d" data-running="true"`, jobID)) || !strings.Contains(page, "人口同步") || !strings.Contains(page, "公安前置机") {
			t.Fatal("the job list does not show the running job")
		}
		if status, _, _ = da.get("/exchange/runs"); status != 200 {
			t.Fatalf("runs page: %d", status)
		}

		// A reviewer watches but is offered no buttons, and is refused the
		// actions.
		rv := e.browser()
		rv.login("dept.reviewer")
		status, page, _ = rv.get(jobPath)
		if status != 200 || strings.Contains(page, `id="job-stop"`) || strings.Contains(page, `id="job-form"`) {
			t.Fatalf("reviewer's job page: %d", status)
		}
		if _, page, _ = rv.get("/exchange/nodes"); strings.Contains(page, `id="node-form"`) || strings.Contains(page, "revoke-form") {
			t.Fatal("the reviewer is offered node management")
		}
		if status, _, _ = rv.submit(jobPath, jobPath+"/stop", nil); status != 403 {
			t.Fatalf("reviewer stops a job: %d", status)
		}

		// A consumer sees no exchange and is refused it.
		c := e.browser()
		c.login("consumer")
		if _, home, _ = c.get("/home"); strings.Contains(home, `href="/exchange/`) {
			t.Fatal("the consumer's navigation links to the exchange")
		}
		for _, p := range []string{"/exchange/nodes", "/exchange/jobs", jobPath, "/exchange/subscriptions", "/exchange/runs", "/exchange/alarms", fmt.Sprintf("/exchange/nodes/%d", nodeID)} {
			if status, page, _ = c.get(p); status != 403 || !strings.Contains(page, "auth.denied") {
				t.Errorf("consumer GET %s: %d, want the 403 page", p, status)
			}
		}
		form.Set("name", "越权任务")
		if status, _, _ = c.submit("/home", "/exchange/jobs", form); status != 403 {
			t.Fatalf("consumer posts a job: %d", status)
		}
		if status, _, _ = c.submit("/home", "/exchange/nodes", url.Values{"name": {"越权前置机"}}); status != 403 {
			t.Fatalf("consumer registers a node: %d", status)
		}
		if jobs, _ := e.ex.Jobs(ctx, e.users[policy.PlatformAdmin].Actor(), 0); len(jobs) != 1 {
			t.Fatalf("%d jobs after the refusals", len(jobs))
		}

		// Revocation needs a reason, shown at the node's form; then the
		// node is refused further jobs.
		status, page, _ = da.submit("/exchange/nodes", fmt.Sprintf("/exchange/nodes/%d/revoke", nodeID), url.Values{"reason": {""}})
		if status != 422 || !fieldError(page, "reason") || !strings.Contains(page, `<span class="field-error">`) {
			t.Fatalf("revoke without a reason: %d", status)
		}
		status, _, loc = da.submit(fmt.Sprintf("/exchange/nodes/%d", nodeID), fmt.Sprintf("/exchange/nodes/%d/revoke", nodeID), url.Values{"reason": {"设备更换"}, "from": {"node"}})
		if status != 303 || loc != fmt.Sprintf("/exchange/nodes/%d?ok=ex.node.revoked", nodeID) {
			t.Fatalf("revoke: %d %s", status, loc)
		}
		if _, page, _ = da.get(loc); !strings.Contains(page, `data-state="revoked"`) || !strings.Contains(page, "设备更换") || strings.Contains(page, `id="do-revoke"`) {
			t.Fatal("the revoked node's page")
		}
		form.Set("name", "撤销后")
		if status, page, _ = da.submit("/exchange/jobs", "/exchange/jobs", form); status != 409 || !fieldError(page, "node_id") {
			t.Fatalf("a job on a revoked node: %d", status)
		}

		// Delete.
		if status, _, loc = da.submit(jobPath, jobPath+"/delete", nil); status != 303 || loc != "/exchange/jobs?ok=ex.job.deleted" {
			t.Fatalf("delete: %d %s", status, loc)
		}
		if status, _, _ = da.get(jobPath); status != 404 {
			t.Fatalf("deleted job's page: %d", status)
		}
	})
}

// TestExchangePagesSubscribeAndWatch: a consumer department's data
// administrator subscribes its node to a resource it holds an exchange
// grant for, and stops, restarts, re-syncs and deletes the subscription;
// the provider watches it; runs show both sides' counts and a mismatch
// stands out; the alarm it raised is closed with a note.
func TestExchangePagesSubscribeAndWatch(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db, nil)
		ctx := context.Background()
		civil, mz, grantID, nodeID := e.exchangeGrantAndNode()
		_, page, _ := mz.get("/exchange/subscriptions")
		if !strings.Contains(page, `id="sub-form"`) || !strings.Contains(page, `<option value="`+grantID+`"`) {
			t.Fatal("the subscription form does not offer the exchange grant")
		}
		form := url.Values{"grant_id": {grantID}, "node_id": {fmt.Sprint(nodeID)}, "target": {"yw"}, "table": {"Bad Table"}, "create": {"on"}, "delivery": {"realtime"}}
		status, page, _ := mz.submit("/exchange/subscriptions", "/exchange/subscriptions", form)
		if status != 422 || !fieldError(page, "table") {
			t.Fatalf("a bad table name: %d", status)
		}
		form.Set("table", "rk_copy")
		form.Set("delivery", "interval")
		if status, page, _ = mz.submit("/exchange/subscriptions", "/exchange/subscriptions", form); status != 422 || !fieldError(page, "interval_seconds") {
			t.Fatalf("scheduled delivery without an interval: %d", status)
		}
		form.Set("interval_seconds", "300")
		status, _, loc := mz.submit("/exchange/subscriptions", "/exchange/subscriptions", form)
		if status != 303 || !strings.Contains(loc, "?ok=ex.sub.created") {
			t.Fatalf("subscribe: %d %s", status, loc)
		}
		subPath := strings.SplitN(loc, "?", 2)[0]
		var subID int64
		fmt.Sscanf(subPath, "/exchange/subscriptions/%d", &subID)
		_, page, _ = mz.get(loc)
		if !strings.Contains(page, `id="sub-state" data-state="active"`) || !strings.Contains(page, "每 300 秒") || !strings.Contains(page, `id="sub-stop"`) {
			t.Fatal("the new subscription's page")
		}
		for _, step := range []struct{ action, state string }{{"stop", "stopped"}, {"start", "active"}, {"resync", "active"}} {
			status, _, loc = mz.submit(subPath, subPath+"/"+step.action, nil)
			if status != 303 {
				t.Fatalf("%s: %d", step.action, status)
			}
			if _, page, _ = mz.get(loc); !strings.Contains(page, `id="sub-state" data-state="`+step.state+`"`) || !strings.Contains(page, `class="flash"`) {
				t.Fatalf("after %s the subscription is not %s", step.action, step.state)
			}
		}

		// A full check waits for the offline node; the consumer cancels it
		// from the subscription's page and is brought back there. (The
		// grant masks the key, so the check is put in as RequestCheck
		// would put it.)
		if _, err := e.db.Exec(ctx, `INSERT INTO exchange_checks (kind, subscription_id, node_id, spec, requested_by, requested_at)
			VALUES ('subscription', ?, ?, '{}', 0, ?)`, subID, nodeID, time.Now()); err != nil {
			t.Fatal(err)
		}
		_, page, _ = mz.get(subPath)
		cancel := checkCancelRE.FindStringSubmatch(page)
		if cancel == nil {
			t.Fatal("the subscription page offers no cancel button for its waiting check")
		}
		if status, _, loc = mz.submit(subPath, "/exchange/checks/"+cancel[1]+"/cancel", nil); status != 303 || loc != subPath+"?ok=ex.check.cancelled#checks" {
			t.Fatalf("cancel the subscription's check: %d %s", status, loc)
		}
		if _, page, _ = mz.get(loc); !strings.Contains(page, `data-state="cancelled"`) || checkCancelRE.MatchString(page) {
			t.Fatal("the subscription page does not show its check cancelled")
		}

		// The provider sees it but may not steer it.
		da := e.browser()
		da.login("dept.admin")
		if _, page, _ = da.get("/exchange/subscriptions"); !strings.Contains(page, fmt.Sprintf(`<tr data-id="%d"`, subID)) || strings.Contains(page, `id="sub-form"`) {
			t.Fatal("the provider's subscription list")
		}
		if _, page, _ = da.get(subPath); strings.Contains(page, `id="sub-stop"`) || !strings.Contains(page, civil.Name) {
			t.Fatal("the provider is offered the consumer's buttons")
		}
		if status, _, _ = da.submit(subPath, subPath+"/stop", nil); status != 403 {
			t.Fatalf("the provider stops the subscription: %d", status)
		}

		// A run whose sides differ, and its alarm.
		var runID int64
		now := time.Now()
		if err := e.db.QueryRow(ctx, `INSERT INTO exchange_runs (direction, subscription_id, epoch, run_no, state, batches_sent, sent, started_at, updated_at, finished_at, note)
			VALUES ('out', ?, 99, 7, 'mismatch', 1, '{"rows":5,"upserts":5}', ?, ?, ?, 'rows sent 5, received 4') RETURNING id`, subID, now.Add(-3*time.Second), now, now).Scan(&runID); err != nil {
			t.Fatal(err)
		}
		if _, err := e.db.Exec(ctx, `INSERT INTO exchange_run_batches (run_id, seq, sent_rows, received, recv_rows, inserted, at) VALUES (?, 1, 5, 1, 4, 4, ?)`, runID, now); err != nil {
			t.Fatal(err)
		}
		depts, _ := json.Marshal([]int64{e.police.ID, civil.ID})
		var alarmID int64
		if err := e.db.QueryRow(ctx, `INSERT INTO exchange_alarms (kind, subscription_id, run_id, dept_ids, message_zh, message_en, created_at)
			VALUES ('mismatch', ?, ?, ?, '订阅第 7 次运行两端计数不一致', 'counts differ', ?) RETURNING id`, subID, runID, string(depts), now).Scan(&alarmID); err != nil {
			t.Fatal(err)
		}
		_, page, _ = mz.get("/exchange/runs")
		row := regexp.MustCompile(fmt.Sprintf(`(?s)<tr data-id="%d" data-state="mismatch" class="r-error">.*?</tr>`, runID)).FindString(page)
		if row == "" || !strings.Contains(row, `<td class="num sent-rows">5</td>`) || !strings.Contains(row, `<td class="num recv-rows"><strong>4</strong></td>`) || !strings.Contains(row, "人口交换") {
			t.Fatalf("the mismatched run is not shown with both sides: %q", row)
		}
		if _, page, _ = mz.get(subPath); !strings.Contains(page, `data-state="mismatch" class="r-error"`) {
			t.Fatal("the subscription page does not show its mismatched run")
		}
		if _, page, _ = mz.get("/exchange/runs?state=complete"); strings.Contains(page, fmt.Sprintf(`<tr data-id="%d"`, runID)) {
			t.Fatal("the state filter is ignored")
		}

		pa := e.browser()
		pa.login("platform.admin")
		if status, page, _ = pa.get("/exchange/alarms"); status != 200 || !strings.Contains(page, fmt.Sprintf(`<tr data-id="%d" data-state="open"`, alarmID)) || !strings.Contains(page, "close-form") {
			t.Fatalf("the platform administrator's alarms: %d", status)
		}
		if status, page, _ = da.submit("/exchange/alarms", fmt.Sprintf("/exchange/alarms/%d/close", alarmID), url.Values{"note": {" "}}); status != 422 || !fieldError(page, "note") || !strings.Contains(page, `<span class="field-error">`) {
			t.Fatalf("close without a note: %d", status)
		}
		if status, _, loc = da.submit("/exchange/alarms", fmt.Sprintf("/exchange/alarms/%d/close", alarmID), url.Values{"note": {"已重新同步"}}); status != 303 || loc != "/exchange/alarms?ok=ex.alarm.closed" {
			t.Fatalf("close: %d %s", status, loc)
		}
		if _, page, _ = da.get(loc); strings.Contains(page, fmt.Sprintf(`<tr data-id="%d"`, alarmID)) {
			t.Fatal("a closed alarm is listed as open")
		}
		if _, page, _ = da.get("/exchange/alarms?all=1"); !strings.Contains(page, `data-state="closed"`) || !strings.Contains(page, "已重新同步") {
			t.Fatal("the closed alarm is not shown with its note")
		}
		c := e.browser()
		c.login("consumer")
		if status, _, _ = c.submit("/home", fmt.Sprintf("/exchange/alarms/%d/close", alarmID), url.Values{"note": {"x"}}); status != 403 {
			t.Fatalf("a consumer closes an alarm: %d", status)
		}

		// Every page reads in both languages, no key left untranslated.
		for _, lang := range []string{"zh", "en"} {
			mz.get("/lang?to=" + lang)
			for _, p := range []string{"/exchange/nodes", fmt.Sprintf("/exchange/nodes/%d", nodeID), "/exchange/jobs", "/exchange/subscriptions", subPath,
				"/exchange/runs", "/exchange/alarms?all=1"} {
				status, page, _ = mz.get(p)
				if k := untranslatedRE.FindString(page); status != 200 || k != "" {
					t.Errorf("%s %s: %d, untranslated %q", lang, p, status, k)
				}
			}
		}
		if !strings.Contains(page, "Exchange alarms") {
			t.Error("the English alarms page is not in English")
		}

		// Delete the subscription.
		if status, _, loc = mz.submit(subPath, subPath+"/delete", nil); status != 303 || loc != "/exchange/subscriptions?ok=ex.sub.deleted" {
			t.Fatalf("delete: %d %s", status, loc)
		}
		if _, page, _ = mz.get("/exchange/subscriptions"); strings.Contains(page, fmt.Sprintf(`<tr data-id="%d"`, subID)) {
			t.Fatal("a deleted subscription is listed")
		}
	})
}

// TestExchangePagesSubscribeToChosenItems: the subscription form offers
// the chosen grant's items, all checked, the key fixed; what is checked
// is what the subscription delivers, a refused form keeps the choice, and
// a list without the key is refused at the items.
func TestExchangePagesSubscribeToChosenItems(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db, nil)
		ctx := context.Background()
		_, mz, grantID, nodeID := e.exchangeGrantAndNode()
		field := "items_" + grantID
		itemBox := func(page, item string) string {
			return regexp.MustCompile(`(?s)<label class="check" data-item="` + item + `">.*?</label>`).FindString(page)
		}
		_, page, _ := mz.get("/exchange/subscriptions")
		if !strings.Contains(page, `<fieldset id="sub-items-`+grantID+`" data-shown-by="sub-grant" data-shown-for="`+grantID+`"`) {
			t.Fatal("the form offers no items for the grant")
		}
		if !strings.Contains(page, `<input type="hidden" name="`+field+`" value="citizen_id">`) || !strings.Contains(itemBox(page, "citizen_id"), "checked disabled") {
			t.Fatalf("the key is not fixed: %q", itemBox(page, "citizen_id"))
		}
		if box := itemBox(page, "name"); !strings.Contains(box, `name="`+field+`" value="name" checked`) || !strings.Contains(box, "姓名") || !strings.Contains(box, "(name)") {
			t.Fatalf("a fresh form does not deliver every item: %q", box)
		}

		delivered := func(loc string) []string {
			t.Helper()
			var id int64
			fmt.Sscanf(loc, "/exchange/subscriptions/%d", &id)
			var raw string
			if err := e.db.QueryRow(ctx, "SELECT items FROM exchange_subscriptions WHERE id = ?", id).Scan(&raw); err != nil {
				t.Fatal(err)
			}
			var items []string
			json.Unmarshal([]byte(raw), &items)
			return items
		}
		subscribe := func(table string, items ...string) (int, string, string) {
			form := url.Values{"grant_id": {grantID}, "node_id": {fmt.Sprint(nodeID)}, "target": {"yw"}, "table": {table}, "delivery": {"realtime"}, field: items}
			return mz.submit("/exchange/subscriptions", "/exchange/subscriptions", form)
		}

		// Every item, as the form comes.
		status, _, loc := subscribe("rk_all", "citizen_id", "name")
		if got := delivered(loc); status != 303 || strings.Join(got, ",") != "citizen_id,name" {
			t.Fatalf("every item: %d %v", status, got)
		}
		// Without the name: only the key, and its page says so.
		status, _, loc = subscribe("rk_key", "citizen_id")
		if got := delivered(loc); status != 303 || strings.Join(got, ",") != "citizen_id" {
			t.Fatalf("without the name: %d %v", status, got)
		}
		if _, page, _ = mz.get(loc); !strings.Contains(page, `<span class="badge mono">citizen_id</span>`) || strings.Contains(page, `<span class="badge mono">name</span>`) {
			t.Fatal("the subscription's page does not show what it delivers")
		}
		// A refused form keeps the name left out.
		status, page, _ = subscribe("Bad Table", "citizen_id")
		if status != 422 || !fieldError(page, "table") || strings.Contains(itemBox(page, "name"), "checked") {
			t.Fatalf("a refused form does not keep the items: %d %q", status, itemBox(page, "name"))
		}
		// Without the key: refused at the items, the choice kept.
		status, page, _ = subscribe("rk_nokey", "name")
		if status != 422 || !fieldError(page, "items") || !strings.Contains(page, "主键信息项 citizen_id 必须交付") ||
			!strings.Contains(itemBox(page, "name"), "checked") || !strings.Contains(page, `<fieldset id="sub-items-`+grantID+`" data-shown-by="sub-grant" data-shown-for="`+grantID+`" class="invalid">`) {
			t.Fatalf("a list without the key: %d", status)
		}
		var n int
		if err := e.db.QueryRow(ctx, "SELECT COUNT(*) FROM exchange_subscriptions WHERE target_table = ?", "rk_nokey").Scan(&n); err != nil || n != 0 {
			t.Fatalf("a subscription without its key was created: %d %v", n, err)
		}

		mz.get("/lang?to=en")
		if status, page, _ = mz.get("/exchange/subscriptions"); status != 200 || !strings.Contains(page, "Items to deliver") || untranslatedRE.MatchString(page) {
			t.Fatalf("the English form: %d %q", status, untranslatedRE.FindString(page))
		}
		if status, page, _ = subscribe("rk_nokey", "name"); status != 422 || !strings.Contains(page, "the key item citizen_id is always delivered") || untranslatedRE.MatchString(page) {
			t.Fatalf("the English refusal: %d %q", status, untranslatedRE.FindString(page))
		}
	})
}

// TestExchangePagesCancelAWaitingCheck: a full check waits for a node that
// does not come; the data administrator cancels it with the button beside
// it and may then request another. Those who may only watch get no
// button and are refused.
func TestExchangePagesCancelAWaitingCheck(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db, nil)
		ctx := context.Background()
		da := e.browser()
		da.login("dept.admin")
		nodeID, code, _ := da.registerNode("公安前置机")
		e.enrolNode(nodeID, code, peopleTable)
		en := e.publishEntryWith("人口交换", catalog.ShareUnconditional, catalog.MethodExchange)
		if _, err := e.res.Mount(ctx, e.users[policy.DeptAdmin].Actor(), en.ID); err != nil {
			t.Fatal(err)
		}
		status, _, loc := da.submit("/exchange/jobs", "/exchange/jobs", jobFormValues(nodeID, "人口同步", en.Code, "sfzh=citizen_id\nxm=name\n"))
		if status != 303 {
			t.Fatalf("create job: %d", status)
		}
		jobPath := strings.SplitN(loc, "?", 2)[0]
		if status, _, _ = da.submit(jobPath, jobPath+"/check", nil); status != 303 {
			t.Fatalf("request a check: %d", status)
		}
		_, page, _ := da.get(jobPath)
		m := checkCancelRE.FindStringSubmatch(page)
		if m == nil || !strings.Contains(page, `data-state="requested"`) || !strings.Contains(page, `action="/exchange/checks/`+m[1]+`/cancel"`) {
			t.Fatal("the job page offers no cancel button for its waiting check")
		}
		cancel := "/exchange/checks/" + m[1] + "/cancel"

		// A reviewer watches the check but may not cancel it.
		rv := e.browser()
		rv.login("dept.reviewer")
		if _, page, _ = rv.get(jobPath); !strings.Contains(page, `data-state="requested"`) || checkCancelRE.MatchString(page) {
			t.Fatal("the reviewer is offered the cancel button")
		}
		if status, _, _ = rv.submit(jobPath, cancel, nil); status != 403 {
			t.Fatalf("a reviewer cancels a check: %d", status)
		}

		// The data administrator cancels it and is brought back to the job.
		status, _, loc = da.submit(jobPath, cancel, nil)
		if status != 303 || loc != jobPath+"?ok=ex.check.cancelled#checks" {
			t.Fatalf("cancel: %d %s", status, loc)
		}
		_, page, _ = da.get(loc)
		if !strings.Contains(page, `class="flash"`) || !strings.Contains(page, `data-state="cancelled"`) || !strings.Contains(page, "已取消") ||
			!strings.Contains(page, "已由 dept.admin 取消") || checkCancelRE.MatchString(page) {
			t.Fatal("the job page does not show the check cancelled")
		}
		// Once over, it cannot be cancelled again; another can be requested.
		if status, page, _ = da.submit(jobPath, cancel, nil); status != 409 || !strings.Contains(page, "exchange.check_over") {
			t.Fatalf("cancel a cancelled check: %d", status)
		}
		if status, _, _ = da.submit(jobPath, jobPath+"/check", nil); status != 303 {
			t.Fatalf("a new check after the cancelled one: %d", status)
		}
		da.get("/lang?to=en")
		_, page, _ = da.get(jobPath)
		if k := untranslatedRE.FindString(page); k != "" || !strings.Contains(page, ">cancelled<") || !strings.Contains(page, ">Cancel<") {
			t.Fatalf("the English job page: untranslated %q, or no cancelled state and cancel button", k)
		}
	})
}
