package web_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"govshare/client"
	"govshare/internal/audit"
	"govshare/internal/catalog"
	"govshare/internal/checkdigit"
	"govshare/internal/identity"
	"govshare/internal/policy"
	"govshare/internal/resource"
	"govshare/internal/share"
	"govshare/internal/store"
	"govshare/internal/storetest"
)

// Rows of the authorization matrix for the data services: A's people
// and apps use C's resource through the grant C gave A; B holds none.
func init() {
	users := ownDept(policy.DeptAdmin, policy.Consumer, appRole)
	code := func(fx *authzFixture) map[string]any { return map[string]any{"resource": escCode(fx.dataResource())} }
	authzRows = append(authzRows,
		authzRow{op: "GET /api/v1/data/{resource}", status: 200, allow: users,
			req: func(fx *authzFixture) authzReq { return authzReq{params: code(fx), query: "filter=no:eq:D1"} },
			check: func(t *testing.T, fx *authzFixture, c authzCaller, body []byte) {
				if !bytes.Contains(body, []byte(`"D1"`)) {
					t.Errorf("%s: the record is missing: %s", c, body)
				}
			}},
		authzRow{op: "POST /api/v1/verify/{resource}", status: 200, allow: users,
			req: func(fx *authzFixture) authzReq {
				return authzReq{params: code(fx), body: map[string]any{"items": []string{"name"}, "records": []map[string]string{{"no": "D1", "name": "王测"}}}}
			}},
		authzRow{op: "GET /api/v1/data/{resource}/download", status: 200, allow: users,
			req: func(fx *authzFixture) authzReq { return authzReq{params: code(fx)} }},
		authzRow{op: "GET /api/v1/data-usage", status: 200, allow: anyDept(policy.PlatformAdmin, policy.Auditor, policy.DeptAdmin, policy.DeptReviewer),
			req: noReq},
	)
}

// dataResource is C's resource of two people, mounted and loaded on
// first use, with A subscribed to it by every method.
func (fx *authzFixture) dataResource() string {
	fx.t.Helper()
	if fx.dataCode != "" {
		return fx.dataCode
	}
	ctx := context.Background()
	c := authzContent("公安数据服务")
	c.Items = append(c.Items, catalog.DataItem{Name: "姓名", MachineName: "name", DataType: "C", Length: 20, MaskRule: "surname"})
	c.ShareMethods = []catalog.ShareMethod{catalog.MethodAPI, catalog.MethodVerify, catalog.MethodFile}
	e := fx.entryOf(fx.cAdmin, c, catalog.Published)
	r, err := fx.e.res.Mount(ctx, fx.cAdmin, e.ID)
	fx.must(err)
	rows, _ := resource.CSVRows(strings.NewReader("no,name\nD1,王测\nD2,李测\n"))
	_, err = fx.e.res.Submit(ctx, fx.cAdmin, r.Code, resource.SubmitOptions{}, rows)
	fx.must(err)
	_, err = fx.share.Apply(ctx, fx.actor(policy.DeptAdmin, deptOwn), e.ID, share.Terms{Purpose: "矩阵测试"})
	fx.must(err)
	fx.dataCode = r.Code
	return r.Code
}

// signed sends a request signed by app.
func signed(t *testing.T, app client.App, method, u string, body []byte) (*http.Response, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, _ := http.NewRequest(method, u, rd)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if err := app.SignRequest(req, "低保对象身份核验"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

func TestDataServicesOverHTTP(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db, nil)
		ctx := context.Background()
		civil, _ := e.civil()
		en := e.publishEntryWith("人口信息", catalog.ShareUnconditional, catalog.MethodAPI, catalog.MethodVerify, catalog.MethodFile)
		r, err := e.res.Mount(ctx, e.users[policy.DeptAdmin].Actor(), en.ID)
		if err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		b.WriteString("citizen_id,name\n")
		ids := []string{}
		for i := range 12 {
			id := checkdigit.SyntheticCitizenID("350102", time.Date(1980+i, 3, 4, 0, 0, 0, 0, time.UTC), i+1)
			ids = append(ids, id)
			fmt.Fprintf(&b, "%s,%s\n", id, []string{"王", "李", "张"}[i%3]+"测"+fmt.Sprint(i))
		}
		rows, _ := resource.CSVRows(strings.NewReader(b.String()))
		if _, err := e.res.Submit(ctx, e.users[policy.DeptAdmin].Actor(), r.Code, resource.SubmitOptions{}, rows); err != nil {
			t.Fatal(err)
		}
		admin := identity.User{ID: 999, Login: "mzj.dept_admin", DeptID: civil.ID, Roles: []policy.Role{policy.DeptAdmin}}.Actor()
		app, sec, err := share.NewApps(db, e.log, e.keys).Register(ctx, admin, share.AppInput{Name: "救助系统", Purpose: "救助核验", Contact: "李四",
			Limits: share.AppLimits{RateLimit: 4}})
		if err != nil {
			t.Fatal(err)
		}
		signer := client.App{Key: app.Key, Secret: sec}
		base := e.srv.URL + "/api/v1/data/" + url.PathEscape(r.Code)

		// No grant yet: refused, naming the method.
		resp, body := signed(t, signer, "GET", base, nil)
		if resp.StatusCode != 403 || !strings.Contains(string(body), "data.not_granted") || !strings.Contains(string(body), "api") {
			t.Fatalf("without a grant: %d %s", resp.StatusCode, body)
		}
		shr := e.shr
		consumer := identity.User{ID: 998, Login: "mzj.consumer", DeptID: civil.ID, Roles: []policy.Role{policy.Consumer}}.Actor()
		sub, err := shr.Apply(ctx, consumer, en.ID, share.Terms{Items: []string{"citizen_id", "name"}, Purpose: "低保核验",
			Methods: []catalog.ShareMethod{catalog.MethodAPI, catalog.MethodVerify, catalog.MethodFile}})
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(1100 * time.Millisecond) // the server's grant cache

		// JSON: masked values under item names.
		resp, body = signed(t, signer, "GET", base+"?filter="+url.QueryEscape("citizen_id:eq:"+ids[3]), nil)
		var page struct {
			Items   []string            `json:"items"`
			Records []map[string]string `json:"records"`
		}
		if resp.StatusCode != 200 || json.Unmarshal(body, &page) != nil || len(page.Records) != 1 {
			t.Fatalf("lookup: %d %s", resp.StatusCode, body)
		}
		if got := page.Records[0]["citizen_id"]; got != ids[3][:6]+"********"+ids[3][14:] || strings.Contains(string(body), ids[3]) {
			t.Fatalf("masked id: %s", body)
		}
		// CSV pages with the cursor in a header.
		resp, body = signed(t, signer, "GET", base+"?format=csv&limit=5&fields=name", nil)
		recs, _ := csv.NewReader(bytes.NewReader(body)).ReadAll()
		if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/csv") || len(recs) != 6 || recs[0][0] != "name" ||
			resp.Header.Get("X-Next-Cursor") == "" {
			t.Fatalf("csv: %d %v %v", resp.StatusCode, resp.Header, recs)
		}
		// Over the app's 4 requests a second: 429 with Retry-After.
		var limited *http.Response
		for range 8 {
			if resp, _ := signed(t, signer, "GET", base+"?limit=1", nil); resp.StatusCode == 429 {
				limited = resp
				break
			}
		}
		if limited == nil || limited.Header.Get("Retry-After") != "1" {
			t.Fatalf("no 429 with Retry-After: %v", limited)
		}
		time.Sleep(1100 * time.Millisecond)
		// A replayed query is refused, with no data and no data.query
		// event of its own, also when the copies arrive at once.
		queries := func() int {
			evs, err := e.log.List(ctx, audit.Filter{Action: "data.query", Result: audit.ResultOK, Limit: 1000})
			if err != nil {
				t.Fatal(err)
			}
			return len(evs)
		}
		before := queries()
		send := func(req *http.Request) (int, string) {
			resp, err := http.DefaultClient.Do(req.Clone(ctx))
			if err != nil {
				t.Error(err)
				return 0, ""
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			return resp.StatusCode, string(b)
		}
		lookup := func() *http.Request {
			req, _ := http.NewRequest("GET", base+"?filter="+url.QueryEscape("citizen_id:eq:"+ids[5]), nil)
			if err := signer.SignRequest(req, "低保对象身份核验"); err != nil {
				t.Fatal(err)
			}
			return req
		}
		once := lookup()
		if status, body := send(once); status != 200 || !strings.Contains(body, ids[5][14:]) {
			t.Fatalf("first: %d %s", status, body)
		}
		if status, body := send(once); status != 401 || !strings.Contains(body, "share.nonce_reused") || strings.Contains(body, ids[5][14:]) {
			t.Fatalf("replay: %d %s", status, body)
		}
		twice := lookup()
		statuses := make(chan int, 2)
		for range 2 {
			go func() { s, _ := send(twice); statuses <- s }()
		}
		if a, b := <-statuses, <-statuses; a+b != 200+401 {
			t.Fatalf("two copies at once: %d and %d", a, b)
		}
		if n := queries() - before; n != 2 {
			t.Fatalf("%d data.query events for two answered queries", n)
		}
		if evs, _ := e.log.List(ctx, audit.Filter{Action: "app.auth_failed", Limit: 100}); len(evs) < 2 ||
			!strings.Contains(evs[0].Details+evs[1].Details, "share.nonce_reused") {
			t.Fatalf("replays not audited: %+v", evs)
		}
		time.Sleep(1100 * time.Millisecond)
		// Comparison.
		vb, _ := json.Marshal(map[string]any{"items": []string{"name"}, "records": []map[string]string{{"citizen_id": ids[0], "name": "王测0"}, {"citizen_id": ids[1], "name": "错"}}})
		resp, body = signed(t, signer, "POST", e.srv.URL+"/api/v1/verify/"+url.PathEscape(r.Code), vb)
		if resp.StatusCode != 200 || !strings.Contains(string(body), `"result":"match"`) || !strings.Contains(string(body), `"result":"mismatch"`) ||
			strings.Contains(string(body), "李测1") {
			t.Fatalf("verify: %d %s", resp.StatusCode, body)
		}
		// Download with the watermark.
		resp, body = signed(t, signer, "GET", base+"/download", nil)
		recs, _ = csv.NewReader(bytes.NewReader(body)).ReadAll()
		if resp.StatusCode != 200 || len(recs) != 13 || recs[0][2] != "_watermark" || !strings.Contains(recs[1][2], app.Key) ||
			!strings.Contains(resp.Header.Get("Content-Disposition"), ".csv") {
			t.Fatalf("download: %d %v", resp.StatusCode, recs)
		}
		// A person of the department without X-Purpose is refused.
		status, m := e.apiTok(e.tokens[policy.Consumer], "GET", "/api/v1/data/"+url.PathEscape(r.Code), nil)
		if status != 400 && status != 403 {
			t.Fatalf("no purpose: %d %v", status, m)
		}

		// On the pages: the consumer downloads from the grant's page, with a
		// purpose; the usage shows on both departments' dashboards.
		br := e.browser()
		br.login("mzj.consumer")
		gpath := fmt.Sprintf("/grants/%d", sub.GrantID)
		_, html, _ := br.get(gpath)
		if !strings.Contains(html, `id="download-form"`) {
			t.Fatal("no download form on the grant's page")
		}
		tok := csrfRE.FindStringSubmatch(html)[1]
		if status, body, _ := br.post(gpath+"/download", url.Values{"_csrf": {tok}, "format": {"csv"}}); status != 400 || !strings.Contains(body, "data.purpose_required") && !strings.Contains(body, "用途") {
			t.Fatalf("download without a purpose: %d", status)
		}
		status, csvBody, _ := br.post(gpath+"/download", url.Values{"_csrf": {tok}, "format": {"csv"}, "purpose": {"年度低保复核"}})
		recs, _ = csv.NewReader(strings.NewReader(csvBody)).ReadAll()
		if status != 200 || len(recs) != 13 || !strings.Contains(recs[1][2], "mzj.consumer") || strings.Contains(csvBody, ids[0]) {
			t.Fatalf("page download: %d %v", status, recs)
		}
		if err := e.data.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		da := e.browser()
		da.login("mzj.dept_admin")
		if _, html, _ = da.get("/data-services"); !strings.Contains(html, `id="usage-table"`) || !strings.Contains(html, r.Code) || !strings.Contains(html, `id="data-grants"`) {
			t.Fatalf("consumer dashboard: %s", html)
		}
		pa := e.browser()
		pa.login("dept.admin")
		if _, html, _ = pa.get("/data-services?side=provider"); !strings.Contains(html, "市民政局") {
			t.Fatal("the provider's dashboard does not show the consumer")
		}
		if _, html, _ = pa.get("/catalog/" + fmt.Sprint(en.ID)); !strings.Contains(html, `id="entry-usage"`) {
			t.Fatal("no usage on the entry page")
		}
	})
}
