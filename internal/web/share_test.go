package web_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"govshare/client"
	"govshare/internal/catalog"
	"govshare/internal/identity"
	"govshare/internal/policy"
	"govshare/internal/share"
	"govshare/internal/store"
	"govshare/internal/storetest"
)

// civil adds a consumer department with a data administrator and a user,
// returning their API tokens.
func (e *env) civil() (identity.Department, map[policy.Role]string) {
	e.t.Helper()
	ctx := context.Background()
	d, err := e.ids.SeedDepartment(ctx, identity.DepartmentInput{ParentID: e.city.ID, Name: "市民政局", CreditCode: identity.SyntheticCreditCode("350100", 3), RegionCode: "350100"})
	if err != nil {
		e.t.Fatal(err)
	}
	toks := map[policy.Role]string{}
	for _, r := range []policy.Role{policy.DeptAdmin, policy.Consumer} {
		login := "mzj." + string(r)
		u, err := e.ids.SeedUser(ctx, identity.UserInput{Login: login, Name: "民政" + login, DeptID: d.ID, Roles: []policy.Role{r}, Password: pw}, false, "")
		if err != nil {
			e.t.Fatal(err)
		}
		if toks[r], _, err = e.ids.CreateToken(ctx, u.Actor(), "test", 30); err != nil {
			e.t.Fatal(err)
		}
	}
	return d, toks
}

// publishEntry registers and publishes an entry of the police department.
func (e *env) publishEntry(name string, st catalog.ShareType) catalog.Entry {
	e.t.Helper()
	return e.publishEntryWith(name, st, catalog.MethodAPI)
}

// publishEntryWith publishes an entry of the police department shared by
// the given methods.
func (e *env) publishEntryWith(name string, st catalog.ShareType, methods ...catalog.ShareMethod) catalog.Entry {
	e.t.Helper()
	ctx := context.Background()
	c := catalog.Content{Name: name, ClassCode: "101", Abstract: "测试资源。", FormatClass: "database", FormatType: "postgresql",
		Items: []catalog.DataItem{
			{Name: "公民身份号码", MachineName: "citizen_id", DataType: "C", Length: 18, Key: true, MaskRule: "keep(6,4)"},
			{Name: "姓名", MachineName: "name", DataType: "C", Length: 50, MaskRule: "surname"},
		},
		ShareType: st, ShareMethods: methods, OpenType: catalog.OpenClosed, UpdateCycle: "daily"}
	switch st {
	case catalog.ShareConditional:
		c.ShareCondition = "用于身份核验"
	case catalog.ShareNone:
		c.ShareBasis = "《居民身份证法》"
		c.ShareMethods = nil
	}
	admin, reviewer := e.users[policy.DeptAdmin].Actor(), e.users[policy.PlatformAdmin].Actor()
	en, err := e.cat.CreateEntry(ctx, admin, c)
	if err == nil {
		_, err = e.cat.Submit(ctx, admin, en.ID)
	}
	if err == nil {
		_, err = e.cat.Approve(ctx, reviewer, en.ID)
	}
	if err == nil {
		en, err = e.cat.Publish(ctx, reviewer, en.ID)
	}
	if err != nil {
		e.t.Fatal(err)
	}
	return en
}

func (e *env) apiTok(tok, method, path string, body any) (int, map[string]any) {
	e.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, e.srv.URL+path, rd)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if len(raw) > 0 && raw[0] == '{' {
		_ = json.Unmarshal(raw, &m)
	} else if len(raw) > 0 && raw[0] == '[' {
		var list []any
		_ = json.Unmarshal(raw, &list)
		m = map[string]any{"list": list}
	}
	return resp.StatusCode, m
}

func TestSharingThroughTheAPI(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db, nil)
		civil, toks := e.civil()
		en := e.publishEntry("户籍信息", catalog.ShareConditional)
		until := time.Now().AddDate(0, 6, 0).Format(time.RFC3339)
		req := map[string]any{"entry_id": en.ID, "items": []string{"citizen_id", "name"}, "methods": []string{"api"}, "purpose": "低保核验",
			"basis": "《社会救助暂行办法》", "valid_until": until}
		status, m := e.apiTok(toks[policy.Consumer], "POST", "/api/v1/applications", map[string]any{"entry_id": en.ID, "items": []string{"name"}, "methods": []string{"api"}, "purpose": "x", "valid_until": until})
		if status != 422 || m["field"] != "basis" || m["code"] != "share.basis_required" {
			t.Fatalf("no basis: %d %v", status, m)
		}
		status, m = e.apiTok(toks[policy.Consumer], "POST", "/api/v1/applications", req)
		if status != 201 || m["state"] != "submitted" || m["answer_deadline"] == nil {
			t.Fatalf("apply: %d %v", status, m)
		}
		id := int64(m["id"].(float64))
		path := fmt.Sprintf("/api/v1/applications/%d", id)
		// The provider's reviewer has it to do; the consumer cannot decide.
		status, m = e.apiTok(e.tokens[policy.DeptReviewer], "GET", "/api/v1/todos", nil)
		if status != 200 || len(m["list"].([]any)) != 1 || m["list"].([]any)[0].(map[string]any)["kind"] != "application.accept" {
			t.Fatalf("reviewer's to-dos: %d %v", status, m)
		}
		// They were notified in the app.
		status, m = e.apiTok(e.tokens[policy.DeptReviewer], "GET", "/api/v1/notifications", nil)
		if status != 200 || !strings.Contains(fmt.Sprint(m), "application.submitted") {
			t.Fatalf("reviewer's notifications: %d %v", status, m)
		}
		if status, _ = e.apiTok(toks[policy.Consumer], "POST", path+"/approve", map[string]any{}); status != 403 {
			t.Fatalf("the consumer approves: %d", status)
		}
		status, m = e.apiTok(e.tokens[policy.DeptReviewer], "POST", path+"/approve", map[string]any{"decision": map[string]any{"items": []string{"name"}}, "note": "先开放姓名"})
		if status != 200 || m["state"] != "approved" || len(m["changes"].([]any)) != 1 {
			t.Fatalf("approve with changes: %d %v", status, m)
		}
		status, m = e.apiTok(toks[policy.Consumer], "GET", "/api/v1/grants?side=mine", nil)
		if status != 200 || len(m["list"].([]any)) != 1 {
			t.Fatalf("my grants: %d %v", status, m)
		}
		g := m["list"].([]any)[0].(map[string]any)
		if fmt.Sprint(g["items"]) != "[name]" {
			t.Fatalf("grant items: %v", g["items"])
		}
		// A signed app of the consumer department checks its permit.
		app, sec, err := share.NewApps(db, e.log, e.keys).Register(context.Background(), identity.User{ID: 999, Login: "mzj.dept_admin", DeptID: civil.ID, Roles: []policy.Role{policy.DeptAdmin}}.Actor(),
			share.AppInput{Name: "救助系统", Purpose: "救助核验", Contact: "李四"})
		if err != nil {
			t.Fatal(err)
		}
		check := func(items string) (int, map[string]any) {
			r, _ := http.NewRequest("GET", e.srv.URL+"/api/v1/grants/check?"+url.Values{"resource": {en.Code}, "items": {items}, "method": {"api"}}.Encode(), nil)
			if err := (client.App{Key: app.Key, Secret: sec}).SignRequest(r, "低保核验"); err != nil {
				t.Fatal(err)
			}
			resp, err := http.DefaultClient.Do(r)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var out map[string]any
			json.NewDecoder(resp.Body).Decode(&out)
			return resp.StatusCode, out
		}
		if status, m = check("name"); status != 200 || m["items"].([]any)[0].(map[string]any)["mask_rule"] != "surname" {
			t.Fatalf("permit: %d %v", status, m)
		}
		if status, m = check("citizen_id"); status != 403 || m["code"] != "share.no_grant" {
			t.Fatalf("ungranted item: %d %v", status, m)
		}
		// Revocation by the provider ends it at once.
		gp := fmt.Sprintf("/api/v1/grants/%v", g["id"])
		if status, _ = e.apiTok(toks[policy.DeptAdmin], "POST", gp+"/revoke", map[string]any{"reason": "x"}); status != 403 {
			t.Fatalf("the consumer revokes: %d", status)
		}
		if status, m = e.apiTok(e.tokens[policy.DeptAdmin], "POST", gp+"/revoke", map[string]any{"reason": "协议到期"}); status != 200 || m["state"] != "revoked" {
			t.Fatalf("revoke: %d %v", status, m)
		}
		if status, _ = check("name"); status != 403 {
			t.Fatalf("revoked grant still permits: %d", status)
		}

		// A second application: refused with a reason, escalated, ruled.
		status, m = e.apiTok(toks[policy.Consumer], "POST", "/api/v1/applications", req)
		if status != 201 {
			t.Fatalf("apply again: %d %v", status, m)
		}
		path = fmt.Sprintf("/api/v1/applications/%v", m["id"])
		r, _ := http.NewRequest("POST", e.srv.URL+path+"/attachments?name="+url.QueryEscape("安全保密协议.pdf"), strings.NewReader("%PDF-1.4 协议"))
		r.Header.Set("Authorization", "Bearer "+toks[policy.Consumer])
		r.Header.Set("Content-Type", "application/octet-stream")
		resp, err := http.DefaultClient.Do(r)
		if err != nil || resp.StatusCode != 201 {
			t.Fatalf("attach: %v %v", resp.StatusCode, err)
		}
		var at map[string]any
		json.NewDecoder(resp.Body).Decode(&at)
		resp.Body.Close()
		r, _ = http.NewRequest("GET", fmt.Sprintf("%s%s/attachments/%v", e.srv.URL, path, at["id"]), nil)
		r.Header.Set("Authorization", "Bearer "+e.tokens[policy.DeptReviewer])
		resp, err = http.DefaultClient.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(body) != "%PDF-1.4 协议" || !strings.Contains(resp.Header.Get("Content-Disposition"), "filename*=UTF-8''") {
			t.Fatalf("download: %d %q %s", resp.StatusCode, body, resp.Header.Get("Content-Disposition"))
		}
		if status, m = e.apiTok(e.tokens[policy.DeptReviewer], "POST", path+"/reject", map[string]any{"reason": ""}); status != 422 || m["field"] != "reason" {
			t.Fatalf("reject without reason: %d %v", status, m)
		}
		if status, _ = e.apiTok(e.tokens[policy.DeptReviewer], "POST", path+"/reject", map[string]any{"reason": "需先签订保密协议"}); status != 200 {
			t.Fatalf("reject: %d", status)
		}
		if status, m = e.apiTok(toks[policy.Consumer], "POST", path+"/escalate", map[string]any{"reason": "已签订"}); status != 200 || m["state"] != "escalated" {
			t.Fatalf("escalate: %d %v", status, m)
		}
		if status, _ = e.apiTok(e.tokens[policy.DeptAdmin], "POST", path+"/rule", map[string]any{"outcome": "share", "note": "x"}); status != 403 {
			t.Fatalf("the provider rules: %d", status)
		}
		if status, m = e.apiTok(e.tokens[policy.PlatformAdmin], "POST", path+"/rule", map[string]any{"outcome": "share", "note": "裁定共享"}); status != 200 || m["state"] != "ruled_share" || m["provide_deadline"] == nil {
			t.Fatalf("rule: %d %v", status, m)
		}
		status, m = e.apiTok(e.tokens[policy.DeptAdmin], "GET", "/api/v1/todos", nil)
		if status != 200 || len(m["list"].([]any)) != 1 || m["list"].([]any)[0].(map[string]any)["kind"] != "application.provide" {
			t.Fatalf("provider's to-do after the ruling: %v", m)
		}
		status, m = e.apiTok(toks[policy.Consumer], "GET", path, nil)
		if status != 200 || len(m["events"].([]any)) != 5 {
			t.Fatalf("timeline: %d %v", status, m["events"])
		}
		// A third party cannot read it.
		if status, _, _ = e.api(policy.Auditor, "GET", path, nil); status != 403 {
			t.Fatalf("auditor reads an application: %d", status)
		}
	})
}

func TestSharingPages(t *testing.T) {
	e := newEnv(t, storetest.OpenSQLite(t), nil)
	_, _ = e.civil()
	cond := e.publishEntry("户籍信息", catalog.ShareConditional)
	none := e.publishEntry("涉密人员信息", catalog.ShareNone)

	b := e.browser()
	b.login("mzj.consumer")
	_, body, _ := b.get(fmt.Sprintf("/catalog/%d", cond.ID))
	if !strings.Contains(body, `id="apply-link"`) {
		t.Fatal("no apply button on a conditional entry")
	}
	_, body, _ = b.get(fmt.Sprintf("/applications/new?entry=%d", none.ID))
	if !strings.Contains(body, "《居民身份证法》") || strings.Contains(body, `name="methods"`) {
		t.Fatal("the negotiation form does not show the legal basis")
	}
	tok := b.csrf(fmt.Sprintf("/applications/new?entry=%d", cond.ID))
	form := url.Values{"_csrf": {tok}, "entry_id": {fmt.Sprint(cond.ID)}, "items": {"name", "citizen_id"}, "methods": {"api"}, "purpose": {"低保核验"},
		"basis": {""}, "valid_until": {time.Now().AddDate(0, 3, 0).Format("2006-01-02")}}
	status, body, _ := b.post("/applications", form)
	if status != 422 || !strings.Contains(body, `data-field="basis"`) {
		t.Fatalf("missing basis: %d", status)
	}
	form.Set("basis", "《社会救助暂行办法》")
	status, _, loc := b.post("/applications", form)
	if status != 303 || !strings.HasPrefix(loc, "/applications/") {
		t.Fatalf("apply: %d %s", status, loc)
	}
	appPath := strings.SplitN(loc, "?", 2)[0]
	_, body, _ = b.get(appPath)
	if !strings.Contains(body, `data-state="submitted"`) || !strings.Contains(body, `id="answer-deadline"`) || strings.Contains(body, `id="do-approve"`) {
		t.Fatal("the applicant's page")
	}

	p := e.browser()
	p.login("dept.reviewer")
	_, body, _ = p.get("/todos")
	if !strings.Contains(body, appPath) {
		t.Fatal("no to-do for the provider's reviewer")
	}
	tok = p.csrf(appPath)
	status, body, _ = p.post(appPath+"/approve", url.Values{"_csrf": {tok}, "decide": {"changes"}, "items": {"name"}, "methods": {"api"},
		"valid_until": {time.Now().AddDate(0, 1, 0).Format("2006-01-02")}})
	if status != 303 {
		t.Fatalf("approve: %d %s", status, body)
	}
	_, body, _ = b.get(appPath)
	if !strings.Contains(body, `data-state="approved"`) || !strings.Contains(body, `id="changes"`) || !strings.Contains(body, `data-field="items"`) {
		t.Fatal("the applicant does not see what changed")
	}
	_, body, _ = b.get("/grants")
	if !strings.Contains(body, `data-state="active"`) {
		t.Fatal("no grant on my grants page")
	}
	// Another department's user is refused by the server.
	o := e.browser()
	o.login("auditor")
	if status, _, _ := o.get(appPath); status != 403 {
		t.Fatalf("auditor opens an application: %d", status)
	}
}
