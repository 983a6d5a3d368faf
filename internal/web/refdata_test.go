package web_test

import (
	"context"
	"encoding/json"
	"io"
	"mime/multipart"
	"net/http"
	"strings"
	"testing"

	"govshare/internal/audit"
	"govshare/internal/policy"
	"govshare/internal/refdata"
	"govshare/internal/store"
	"govshare/internal/storetest"
	"govshare/internal/web"
)

const regionsCSV = "code,name,status,valid_from,valid_to\n350100,福州市,current,,\n350102,鼓楼区,current,,\n350182,长乐市,retired,1994-02-18,2017-06-30\n"

func init() {
	authzRows = append(authzRows,
		authzRow{op: "GET /api/v1/regions", status: 200, allow: anyDept(rolesAndApps...),
			req: func(*authzFixture) authzReq { return authzReq{query: "q=3501"} }},
		authzRow{op: "PUT /api/v1/regions", status: 200, allow: anyDept(policy.PlatformAdmin),
			req: func(*authzFixture) authzReq { return authzReq{raw: []byte(regionsCSV), ctype: "text/csv"} }},
		authzRow{op: "GET /api/v1/code-tables", status: 200, allow: anyDept(rolesAndApps...), req: noReq},
		// The name holds a slash, escaped in the path.
		authzRow{op: "GET /api/v1/code-tables/{name}", status: 200, allow: anyDept(rolesAndApps...),
			req: func(*authzFixture) authzReq { return authzReq{params: map[string]any{"name": "GB%2FT%202261.1"}} }},
		authzRow{op: "PUT /api/v1/code-tables/{name}", status: 200, allow: anyDept(policy.PlatformAdmin),
			req: func(*authzFixture) authzReq {
				return authzReq{params: map[string]any{"name": "matrix-test"}, query: "title=%E7%9F%A9%E9%98%B5", raw: []byte("code,label\n1,是\n0,否\n"), ctype: "text/csv"}
			}},
	)
}

// refdata is the reference data service behind the test server.
func (e *env) refdata() *refdata.Service {
	e.t.Helper()
	srv, ok := e.srv.Config.Handler.(*web.Server)
	if !ok || srv.RefData == nil {
		e.t.Fatal("the test server has no reference data")
	}
	return srv.RefData
}

// upload posts a file in a multipart form with the page's CSRF token.
func (b *browser) upload(path, csrfFrom, filename, content string, fields map[string]string) (int, string, string) {
	b.t.Helper()
	var buf strings.Builder
	mw := multipart.NewWriter(&buf)
	fw, _ := mw.CreateFormFile("file", filename)
	fw.Write([]byte(content))
	for k, v := range fields {
		mw.WriteField(k, v)
	}
	mw.WriteField("_csrf", b.csrf(csrfFrom))
	mw.Close()
	req, _ := http.NewRequest("POST", b.e.srv.URL+path, strings.NewReader(buf.String()))
	req.Header.Set("Content-Type", mw.FormDataContentType())
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), resp.Header.Get("Location")
}

func TestRegionTablePages(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db, nil)
		p := e.browser()
		p.login("platform.admin")
		_, home, _ := p.get("/home")
		if !strings.Contains(home, `href="/refdata/regions"`) || !strings.Contains(home, `href="/refdata/codes"`) {
			t.Fatal("the platform administrator's navigation lacks reference data")
		}
		status, page, _ := p.get("/refdata/regions")
		if status != 200 || !strings.Contains(page, "regions-not-loaded") || !strings.Contains(page, "regions-import") {
			t.Fatalf("empty region page: %d", status)
		}
		noInlineCode(t, "/refdata/regions", page)
		// A bad row refuses the whole file and says where.
		status, page, _ = p.upload("/refdata/regions", "/refdata/regions", "regions.csv", regionsCSV+"35010,台江区,current,,\n", nil)
		if status != 422 || !strings.Contains(page, "refdata.region_code_invalid") || !strings.Contains(page, "第5行") {
			t.Fatalf("bad file: %d", status)
		}
		status, page, _ = p.upload("/refdata/regions", "/refdata/regions", "regions.csv", regionsCSV, nil)
		if status != 200 || !strings.Contains(page, "regions-imported") || !strings.Contains(page, "长乐市") || strings.Contains(page, "regions-not-loaded") {
			t.Fatalf("import: %d", status)
		}
		status, page, _ = p.get("/refdata/regions?q=" + "%E9%BC%93%E6%A5%BC") // 鼓楼
		if status != 200 || !strings.Contains(page, `<td class="mono">350102`) || strings.Contains(page, `<td class="mono">350182`) {
			t.Fatalf("search: %d", status)
		}
		// Others may look, not load.
		c := e.browser()
		c.login("dept.admin")
		_, home, _ = c.get("/home")
		if strings.Contains(home, `href="/refdata/regions"`) {
			t.Fatal("dept admin's navigation links to reference data administration")
		}
		status, page, _ = c.get("/refdata/regions")
		if status != 200 || !strings.Contains(page, "350182") || strings.Contains(page, "regions-import") {
			t.Fatalf("dept admin views regions: %d", status)
		}
		if status, _, _ = c.upload("/refdata/regions", "/refdata/regions", "regions.csv", "code,name\n350103,台江区\n", nil); status != 403 {
			t.Fatalf("dept admin uploads regions: %d", status)
		}
		evs, _ := e.log.List(context.Background(), audit.Filter{Actor: "dept.admin", Action: string(policy.RefDataManage), Result: audit.ResultDenied, Limit: 10})
		if len(evs) != 1 {
			t.Fatalf("refused upload audited %d times", len(evs))
		}
		if _, n, _ := e.refdata().Regions(context.Background(), "", 0); n != 3 {
			t.Fatalf("%d regions after a refused upload", n)
		}
	})
}

func TestCodeTablePages(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db, nil)
		p := e.browser()
		p.login("platform.admin")
		status, page, _ := p.get("/refdata/codes")
		if status != 200 || !strings.Contains(page, "GB/T 2261.1") || !strings.Contains(page, "GB/T 3304") {
			t.Fatalf("code tables page: %d", status)
		}
		noInlineCode(t, "/refdata/codes", page)
		status, page, _ = p.get("/refdata/codes?table=GB%2FT+2261.1")
		if status != 200 || !strings.Contains(page, "未说明的性别") || !strings.Contains(page, "code:GB/T 2261.1") {
			t.Fatalf("one code table: %d", status)
		}
		if status, _, _ = p.get("/refdata/codes?table=nope"); status != 404 {
			t.Fatalf("missing table: %d", status)
		}
		status, _, loc := p.upload("/refdata/codes", "/refdata/codes", "marital.json", `[{"code":"10","label":"未婚"},{"code":"20","label":"已婚"}]`,
			map[string]string{"name": "GB/T 2261.2", "title": "婚姻状况代码"})
		if status != 303 || !strings.Contains(loc, "table=GB%2FT+2261.2") {
			t.Fatalf("upload JSON: %d %s", status, loc)
		}
		if _, page, _ = p.get(loc); !strings.Contains(page, "已婚") || !strings.Contains(page, "代码表已保存") {
			t.Fatal("uploaded table not shown")
		}
		status, page, _ = p.upload("/refdata/codes", "/refdata/codes", "bad.csv", "code,label\n1,男\n1,女\n", map[string]string{"name": "重复"})
		if status != 422 || !strings.Contains(page, "refdata.code_twice") {
			t.Fatalf("duplicate code: %d", status)
		}
		status, page, _ = p.upload("/refdata/codes", "/refdata/codes", "ok.csv", "code,label\n1,男\n", map[string]string{"name": "a;b"})
		if status != 422 || !strings.Contains(page, `data-field="name"`) {
			t.Fatalf("bad name: %d", status)
		}
		c := e.browser()
		c.login("consumer")
		status, page, _ = c.get("/refdata/codes")
		if status != 200 || strings.Contains(page, "codes-upload") {
			t.Fatalf("consumer views code tables: %d", status)
		}
		if status, _, _ = c.upload("/refdata/codes", "/refdata/codes", "x.csv", "code,label\n1,男\n", map[string]string{"name": "x"}); status != 403 {
			t.Fatalf("consumer uploads a code table: %d", status)
		}
	})
}

func TestReferenceDataThroughTheAPI(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db, nil)
		put := func(role policy.Role, path, ctype, body string) (int, map[string]any) {
			req, _ := http.NewRequest("PUT", e.srv.URL+path, strings.NewReader(body))
			req.Header.Set("Content-Type", ctype)
			req.Header.Set("Authorization", "Bearer "+e.tokens[role])
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var m map[string]any
			json.NewDecoder(resp.Body).Decode(&m)
			return resp.StatusCode, m
		}
		if status, m := put(policy.PlatformAdmin, "/api/v1/regions", "text/csv", regionsCSV+"350102,重复,current,,\n"); status != 422 || m["code"] != "refdata.region_twice" || m["row"] != float64(5) || m["field"] != "code" {
			t.Fatalf("bad regions: %d %v", status, m)
		}
		if status, m := put(policy.DeptAdmin, "/api/v1/regions", "text/csv", regionsCSV); status != 403 || m["code"] != "auth.denied" {
			t.Fatalf("dept admin loads regions: %d %v", status, m)
		}
		if status, m := put(policy.PlatformAdmin, "/api/v1/regions", "text/csv", regionsCSV); status != 200 || m["rows"] != float64(3) || m["retired"] != float64(1) {
			t.Fatalf("load regions: %d %v", status, m)
		}
		req, _ := http.NewRequest("GET", e.srv.URL+"/api/v1/regions?q=3501&limit=2", nil)
		req.Header.Set("Authorization", "Bearer "+e.tokens[policy.Consumer])
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var regions []map[string]any
		json.NewDecoder(resp.Body).Decode(&regions)
		resp.Body.Close()
		if resp.StatusCode != 200 || len(regions) != 2 || resp.Header.Get("X-Total-Count") != "3" || regions[0]["code"] != "350100" {
			t.Fatalf("regions: %d %v total %s", resp.StatusCode, regions, resp.Header.Get("X-Total-Count"))
		}
		if status, m := put(policy.PlatformAdmin, "/api/v1/code-tables/GB%2FT%202261.2?title=%E5%A9%9A%E5%A7%BB", "application/json", `[{"code":"10","label":"未婚"}]`); status != 200 || m["name"] != "GB/T 2261.2" || m["codes"] != float64(1) {
			t.Fatalf("JSON code table: %d %v", status, m)
		}
		if status, m := put(policy.PlatformAdmin, "/api/v1/code-tables/sex", "text/csv", "code,label\n1,男\n1,女\n"); status != 422 || m["code"] != "refdata.code_twice" || m["row"] != float64(3) {
			t.Fatalf("bad code table: %d %v", status, m)
		}
		if status, m := put(policy.Consumer, "/api/v1/code-tables/sex", "text/csv", "not,a,table"); status != 403 {
			t.Fatalf("consumer replaces a code table with a bad file: %d %v", status, m)
		}
		status, m, _ := e.api(policy.Consumer, "GET", "/api/v1/code-tables/GB%2FT%202261.2", nil)
		if status != 200 || m["title"] != "婚姻" || len(m["entries"].([]any)) != 1 {
			t.Fatalf("code table: %d %v", status, m)
		}
		if status, m, _ := e.api(policy.Consumer, "GET", "/api/v1/code-tables/nope", nil); status != 404 || m["code"] != "refdata.code_table_not_found" {
			t.Fatalf("missing code table: %d %v", status, m)
		}
		status, raw := e.apiRaw(policy.Consumer, "GET", "/api/v1/code-tables", nil)
		if status != 200 || !strings.Contains(string(raw), `"name":"GB/T 2261.1"`) || !strings.Contains(string(raw), `"codes":58`) {
			t.Fatalf("code tables: %d %s", status, raw)
		}
	})
}
