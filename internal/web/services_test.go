package web_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"govshare/client"
	"govshare/internal/audit"
	"govshare/internal/catalog"
	"govshare/internal/dataservice"
	"govshare/internal/dataservice/proxy"
	"govshare/internal/identity"
	"govshare/internal/policy"
	"govshare/internal/share"
	"govshare/internal/store"
	"govshare/internal/storetest"
	"govshare/internal/web"
)

// Rows of the authorization matrix for service resources: A registers
// services for its published entries. Everyone sees which services exist;
// only A's data administrator manages them; call logs are read by
// platform administrators, auditors and data administrators (each
// department's its own calls).
func init() {
	readers := anyDept(policy.PlatformAdmin, policy.Auditor, policy.DeptAdmin)
	// Who sees where A's services run.
	insiders := either(anyDept(policy.PlatformAdmin, policy.Auditor), ownDept(policy.DeptAdmin))
	serviceReq := func(id func(fx *authzFixture) int64) func(fx *authzFixture) authzReq {
		return func(fx *authzFixture) authzReq { return authzReq{params: map[string]any{"id": id(fx)}} }
	}
	authzRows = append(authzRows,
		authzRow{op: "GET /api/v1/service-resources", status: 200, allow: anyDept(rolesAndApps...),
			req: func(fx *authzFixture) authzReq {
				fx.serviceA()
				return authzReq{query: fmt.Sprintf("dept_id=%d", fx.a.ID)}
			},
			check: func(t *testing.T, fx *authzFixture, c authzCaller, body []byte) {
				if !listHasID(t, body, fx.serviceA()) {
					t.Errorf("%s: A's service missing from the list", c)
				}
			}},
		authzRow{op: "POST /api/v1/service-resources", status: 201, allow: ownDept(policy.DeptAdmin),
			req: func(fx *authzFixture) authzReq {
				return authzReq{body: proxy.Registration{EntryID: fx.entry(catalog.Published).ID, Settings: matrixServiceSettings}}
			}},
		authzRow{op: "GET /api/v1/service-resources/{id}", status: 200, allow: anyDept(rolesAndApps...), req: serviceReq((*authzFixture).serviceA),
			check: func(t *testing.T, fx *authzFixture, c authzCaller, body []byte) {
				var s proxy.Service
				if err := json.Unmarshal(body, &s); err != nil {
					t.Fatal(err)
				}
				if got, want := s.BaseURL != "", admits(insiders, c); got != want {
					t.Errorf("%s sees the provider's address: %v, want %v", c, got, want)
				}
				if strings.Contains(string(body), "matrix-secret") {
					t.Errorf("%s was shown the credential", c)
				}
			}},
		authzRow{op: "PUT /api/v1/service-resources/{id}", status: 200, allow: ownDept(policy.DeptAdmin),
			req: func(fx *authzFixture) authzReq {
				return authzReq{params: map[string]any{"id": fx.serviceA()}, body: matrixServiceSettings}
			}},
		authzRow{op: "POST /api/v1/service-resources/{id}/{action}", status: 200, allow: ownDept(policy.DeptAdmin),
			req: func(fx *authzFixture) authzReq {
				return authzReq{params: map[string]any{"id": fx.newServiceA(), "action": "disable"}}
			}},
		authzRow{op: "GET /api/v1/service-resources/{id}/calls", status: 200, allow: readers, req: serviceReq((*authzFixture).serviceA)},
		authzRow{op: "GET /api/v1/service-resources/{id}/stats", status: 200, allow: readers, req: serviceReq((*authzFixture).serviceA)},
		authzRow{op: "GET /api/v1/service-calls", status: 200, allow: readers, req: noReq},
	)
}

var matrixServiceSettings = proxy.Settings{BaseURL: "http://127.0.0.1:9/api", Operations: []proxy.Operation{{Method: "GET", Path: "/records/{no}"}},
	CredentialHeader: "X-Api-Key", CredentialValue: "matrix-secret"}

func (e *env) proxy() *proxy.Proxy {
	srv, ok := e.srv.Config.Handler.(*web.Server)
	if !ok || srv.Proxy == nil {
		e.t.Fatal("newEnv gives the server no proxy")
	}
	return srv.Proxy
}

// serviceA is the service of A's published entry, registered on first use.
func (fx *authzFixture) serviceA() int64 {
	fx.t.Helper()
	ctx, da := context.Background(), fx.actor(policy.DeptAdmin, deptOwn)
	ss, err := fx.e.proxy().List(ctx, da, proxy.ServiceFilter{DeptID: fx.a.ID})
	fx.must(err)
	for _, s := range ss {
		if s.EntryID == fx.published.ID {
			return s.ID
		}
	}
	s, err := fx.e.proxy().Register(ctx, da, proxy.Registration{EntryID: fx.published.ID, Settings: matrixServiceSettings})
	fx.must(err)
	return s.ID
}

// newServiceA registers a service for a fresh published entry of A.
func (fx *authzFixture) newServiceA() int64 {
	fx.t.Helper()
	s, err := fx.e.proxy().Register(context.Background(), fx.actor(policy.DeptAdmin, deptOwn),
		proxy.Registration{EntryID: fx.entry(catalog.Published).ID, Settings: matrixServiceSettings})
	fx.must(err)
	return s.ID
}

// departmentAPI is a department's own API behind the platform; it keeps
// the headers of every request that reached it.
type departmentAPI struct {
	*httptest.Server
	mu   sync.Mutex
	seen []http.Header
}

const providerKey = "gaj-provider-key-2026"

func newDepartmentAPI(t *testing.T) *departmentAPI {
	d := &departmentAPI{}
	d.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d.mu.Lock()
		d.seen = append(d.seen, r.Header.Clone())
		d.mu.Unlock()
		if r.Header.Get("X-Api-Key") != providerKey {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		id, ok := strings.CutPrefix(r.URL.Path, "/v1/persons/")
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		fmt.Fprintf(w, `{"citizen_id":%q,"name":"张三","fields":%q}`, id, r.URL.Query().Get("fields"))
	}))
	t.Cleanup(d.Close)
	return d
}

func (d *departmentAPI) requests() []http.Header {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]http.Header(nil), d.seen...)
}

// serviceApp registers an app of a department.
func (e *env) serviceApp(dept identity.Department, uid int64) client.App {
	e.t.Helper()
	app, sec, err := share.NewApps(e.db, e.log, e.keys).Register(context.Background(),
		identity.User{ID: uid, Login: fmt.Sprintf("admin%d", uid), DeptID: dept.ID, Roles: []policy.Role{policy.DeptAdmin}}.Actor(),
		share.AppInput{Name: "业务系统", Purpose: "低保核验", Contact: "张三"})
	if err != nil {
		e.t.Fatal(err)
	}
	return client.App{Key: app.Key, Secret: sec}
}

// serviceCalls waits until the call log of a service holds n calls (a
// call is recorded once its answer is sent) and returns them, newest first.
func (e *env) serviceCalls(id int64, n int) []proxy.Call {
	e.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		cs, err := e.proxy().Calls(context.Background(), e.users[policy.PlatformAdmin].Actor(), proxy.CallFilter{ServiceID: id, Limit: 500})
		if err != nil {
			e.t.Fatal(err)
		}
		if len(cs) >= n || time.Now().After(deadline) {
			if len(cs) != n {
				e.t.Fatalf("service %d: %d calls logged, want %d", id, len(cs), n)
			}
			return cs
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func problemCode(b []byte) string {
	var p struct{ Code string }
	_ = json.Unmarshal(b, &p)
	return p.Code
}

// TestServiceResourceCallsThroughThePlatform walks the whole road: the
// police register their API, civil affairs subscribe and call it with a
// signed request; the answer passes through, the police's API gets its
// key and who is asking but never the signature; a stranger, a bad
// signature, an unregistered operation and a revoked grant are refused
// without reaching the police; a provider that is down opens the circuit.
func TestServiceResourceCallsThroughThePlatform(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db, nil)
		ctx := context.Background()
		civil, toks := e.civil()
		health, err := e.ids.SeedDepartment(ctx, identity.DepartmentInput{ParentID: e.city.ID, Name: "市卫健委", CreditCode: identity.SyntheticCreditCode("350100", 4), RegionCode: "350100"})
		if err != nil {
			t.Fatal(err)
		}
		civilApp, healthApp := e.serviceApp(civil, 901), e.serviceApp(health, 902)
		api := newDepartmentAPI(t)
		entry := e.publishEntry("人口基础信息查询接口", catalog.ShareUnconditional)
		status, sub := e.apiTok(toks[policy.Consumer], "POST", "/api/v1/applications", map[string]any{"entry_id": entry.ID, "purpose": "低保资格核验"})
		if status != 201 {
			t.Fatalf("subscribe: %d %v", status, sub)
		}
		grant := int64(sub["grant_id"].(float64))

		// The police's data administrator registers the API.
		status, m, _ := e.api(policy.DeptAdmin, "POST", "/api/v1/service-resources", map[string]any{"entry_id": entry.ID, "base_url": api.URL + "/v1",
			"operations": []map[string]string{{"method": "GET", "path": "/persons/{id}", "summary": "按身份证号查询"}}, "credential_header": "X-Api-Key",
			"credential_value": providerKey})
		if status != 201 || m["code"] != entry.Code || m["has_credential"] != true || m["credential_value"] != nil {
			t.Fatalf("register: %d %v", status, m)
		}
		id := int64(m["id"].(float64))
		base := e.srv.URL + "/api/v1/services/" + url.PathEscape(entry.Code)

		resp, body := signed(t, civilApp, "GET", base+"/persons/350102199001011234?fields=name", nil)
		want := `{"citizen_id":"350102199001011234","name":"张三","fields":"name"}`
		if resp.StatusCode != 200 || string(body) != want || resp.Header.Get("Content-Type") != "application/json; charset=utf-8" {
			t.Fatalf("call: %d %s", resp.StatusCode, body)
		}
		seen := api.requests()
		if len(seen) != 1 {
			t.Fatalf("the police's API got %d requests", len(seen))
		}
		for name, want := range map[string]string{"X-Api-Key": providerKey, "X-Govshare-Consumer-Dept": civil.CreditCode, "X-Govshare-App": civilApp.Key,
			"X-Govshare-Purpose": "低保对象身份核验", "X-Request-Id": resp.Header.Get("X-Request-Id")} {
			if got := seen[0].Get(name); got != want || got == "" {
				t.Errorf("the police's API got %s = %q, want %q", name, got, want)
			}
		}
		for _, name := range []string{client.HeaderAppKey, client.HeaderSignature, client.HeaderNonce, client.HeaderTimestamp, client.HeaderMethod, client.HeaderPurpose} {
			if seen[0].Get(name) != "" {
				t.Errorf("the consumer's %s reached the police", name)
			}
		}
		c := e.serviceCalls(id, 1)[0]
		if c.Status != 200 || c.Result != proxy.ResultOK || c.Operation != "GET /persons/{id}" || c.ResponseBytes != int64(len(want)) ||
			c.ConsumerDeptID != civil.ID || c.AppKey != civilApp.Key || c.GrantID != grant || c.RequestID != resp.Header.Get("X-Request-Id") {
			t.Fatalf("call log: %+v", c)
		}

		// Refusals, none of which reaches the police.
		refusals := []struct {
			name   string
			app    client.App
			path   string
			status int
			code   string
		}{
			{"no grant", healthApp, base + "/persons/1", 403, "share.no_grant"},
			{"bad signature", client.App{Key: civilApp.Key, Secret: "wrong"}, base + "/persons/1", 401, "share.signature_invalid"},
			{"unregistered operation", civilApp, base + "/admin/users", 404, "service.operation_unknown"},
			{"unknown service", civilApp, e.srv.URL + "/api/v1/services/999%2F999999/persons/1", 404, "service.unknown"},
		}
		for _, r := range refusals {
			resp, body := signed(t, r.app, "GET", r.path, nil)
			if resp.StatusCode != r.status || problemCode(body) != r.code || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/problem+json") {
				t.Errorf("%s: %d %s", r.name, resp.StatusCode, body)
			}
		}
		if n := len(api.requests()); n != 1 {
			t.Fatalf("refused calls reached the police: %d requests", n)
		}
		cs := e.serviceCalls(id, 3) // the bad signature and the unknown service name no service's log
		if cs[0].ErrorCode != "service.operation_unknown" || cs[1].ErrorCode != "share.no_grant" || cs[1].ConsumerDeptID != health.ID {
			t.Fatalf("refusals logged as %+v", cs[:2])
		}
		evs, _ := e.log.List(ctx, audit.Filter{Action: "service.call", Limit: 50})
		results := map[string]int{}
		for _, ev := range evs {
			results[ev.Result]++
			if ev.ActorType != audit.ActorApp {
				t.Errorf("service.call by %s", ev.ActorType)
			}
		}
		if results[audit.ResultOK] != 1 || results[audit.ResultDenied] != 3 {
			t.Fatalf("audited: %v", results)
		}

		// The consumer department's administrator reads its own calls only;
		// the provider's reads all.
		status, list := e.apiTok(toks[policy.DeptAdmin], "GET", "/api/v1/service-calls", nil)
		if status != 200 || len(list["list"].([]any)) != 2 {
			t.Fatalf("civil affairs' calls: %d %v", status, list)
		}
		if status, list = e.apiTok(e.tokens[policy.DeptAdmin], "GET", fmt.Sprintf("/api/v1/service-resources/%d/calls", id), nil); status != 200 || len(list["list"].([]any)) != 3 {
			t.Fatalf("the police's calls: %d %v", status, list)
		}
		if status, list = e.apiTok(e.tokens[policy.DeptAdmin], "GET", fmt.Sprintf("/api/v1/service-resources/%d/stats", id), nil); status != 200 || len(list["list"].([]any)) != 1 {
			t.Fatalf("statistics: %d %v", status, list)
		}
		if status, _, _ := e.api(policy.Consumer, "GET", "/api/v1/service-calls", nil); status != 403 {
			t.Fatalf("a consumer user reads the call log: %d", status)
		}

		// A revoked grant is refused at the next call.
		if status, m, _ := e.api(policy.DeptAdmin, "POST", fmt.Sprintf("/api/v1/grants/%d/revoke", grant), map[string]string{"reason": "协议到期"}); status != 200 {
			t.Fatalf("revoke: %d %v", status, m)
		}
		if resp, body := signed(t, civilApp, "GET", base+"/persons/1", nil); resp.StatusCode != 403 || problemCode(body) != "share.no_grant" {
			t.Fatalf("after revocation: %d %s", resp.StatusCode, body)
		}
		if n := len(api.requests()); n != 1 {
			t.Fatalf("a revoked grant reached the police")
		}

		// A provider that is down: 502 five times, then the circuit opens.
		gone := httptest.NewServer(http.NotFoundHandler())
		gone.Close()
		down := e.publishEntry("婚姻登记信息查询接口", catalog.ShareUnconditional)
		if status, m := e.apiTok(toks[policy.Consumer], "POST", "/api/v1/applications", map[string]any{"entry_id": down.ID, "purpose": "低保资格核验"}); status != 201 {
			t.Fatalf("subscribe: %d %v", status, m)
		}
		if status, m, _ := e.api(policy.DeptAdmin, "POST", "/api/v1/service-resources", map[string]any{"entry_id": down.ID, "base_url": gone.URL,
			"operations": []map[string]string{{"method": "GET", "path": "/marriages/{id}"}}}); status != 201 {
			t.Fatalf("register: %d %v", status, m)
		}
		for i := range 5 {
			resp, body := signed(t, civilApp, "GET", e.srv.URL+"/api/v1/services/"+url.PathEscape(down.Code)+"/marriages/1", nil)
			if resp.StatusCode != 502 || problemCode(body) != "service.provider_down" {
				t.Fatalf("call %d to a provider that is down: %d %s", i+1, resp.StatusCode, body)
			}
		}
		resp, body = signed(t, civilApp, "GET", e.srv.URL+"/api/v1/services/"+url.PathEscape(down.Code)+"/marriages/1", nil)
		if resp.StatusCode != 503 || problemCode(body) != "service.unavailable" || resp.Header.Get("Retry-After") != "30" {
			t.Fatalf("open circuit: %d %s Retry-After %q", resp.StatusCode, body, resp.Header.Get("Retry-After"))
		}
		// The calls count in the data services' usage, failures as errors.
		if err := e.data.Flush(context.Background()); err != nil {
			t.Fatal(err)
		}
		rows, err := e.data.Usage(context.Background(), e.users[policy.PlatformAdmin].Actor(), dataservice.UsageFilter{})
		if err != nil {
			t.Fatal(err)
		}
		var calls, errs int64
		for _, r := range rows {
			if r.Method == "service" {
				calls, errs = calls+r.Calls, errs+r.Errors
			}
		}
		if calls < 7 || errs < 6 {
			t.Fatalf("service usage: %d calls, %d errors: %+v", calls, errs, rows)
		}
	})
}

// TestServicePagesRegisterAndShowTheCallLog: the police's data
// administrator registers a service on the page, sees its operations, call
// address, statistics and call log; a consumer user sees the operations
// only; a mistake is shown beside its field and the credential is never
// sent back to the browser.
func TestServicePagesRegisterAndShowTheCallLog(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db, nil)
		civil, toks := e.civil()
		civilApp := e.serviceApp(civil, 901)
		api := newDepartmentAPI(t)
		entry := e.publishEntry("人口基础信息查询接口", catalog.ShareUnconditional)
		if status, m := e.apiTok(toks[policy.Consumer], "POST", "/api/v1/applications", map[string]any{"entry_id": entry.ID, "purpose": "低保资格核验"}); status != 201 {
			t.Fatalf("subscribe: %d %v", status, m)
		}
		b := e.browser()
		b.login("dept.admin")
		status, page, _ := b.get("/services")
		if status != 200 || !strings.Contains(page, `href="/services"`) || !strings.Contains(page, fmt.Sprintf(`<option value="%d"`, entry.ID)) {
			t.Fatalf("services page: %d", status)
		}
		form := url.Values{"entry_id": {fmt.Sprint(entry.ID)}, "base_url": {"ftp://wrong"}, "operations": {"GET /persons/{id} 按身份证号查询\n"},
			"credential_header": {"X-Api-Key"}, "credential_value": {providerKey}, "timeout_seconds": {"5"}, "max_response_mib": {"2"}}
		status, page, _ = b.submit("/services", "/services", form)
		if status != 422 || !fieldError(page, "base_url") || strings.Contains(page, providerKey) {
			t.Fatalf("bad base URL: %d, field error %v, credential echoed %v", status, fieldError(page, "base_url"), strings.Contains(page, providerKey))
		}
		form.Set("base_url", api.URL+"/v1")
		form.Set("operations", "GET /persons/{id} 按身份证号查询\nFETCH /x\n")
		if status, page, _ = b.submit("/services", "/services", form); status != 422 || !fieldError(page, "operations") || !strings.Contains(page, "第2个操作") {
			t.Fatalf("bad operation: %d", status)
		}
		form.Set("operations", "# 人口\nGET /persons/{id} 按身份证号查询\nGET\n")
		if status, page, _ = b.submit("/services", "/services", form); status != 422 || !fieldError(page, "operations") || !strings.Contains(page, "第3行") {
			t.Fatalf("operation without a path: %d", status)
		}
		form.Set("operations", "GET /persons/{id} 按身份证号查询\n")
		status, _, loc := b.submit("/services", "/services", form)
		if status != 303 || !regexp.MustCompile(`^/services/\d+\?ok=svc.registered$`).MatchString(loc) {
			t.Fatalf("register: %d %s", status, loc)
		}
		path := strings.TrimSuffix(loc, "?ok=svc.registered")
		var id int64
		fmt.Sscanf(path, "/services/%d", &id)
		svc, err := e.proxy().Service(context.Background(), e.users[policy.DeptAdmin].Actor(), id)
		if err != nil || svc.TimeoutSeconds != 5 || svc.MaxResponseBytes != 2<<20 || !svc.HasCredential {
			t.Fatalf("registered: %+v %v", svc, err)
		}

		if resp, body := signed(t, civilApp, "GET", e.srv.URL+"/api/v1/services/"+url.PathEscape(entry.Code)+"/persons/350102199001011234", nil); resp.StatusCode != 200 {
			t.Fatalf("call: %d %s", resp.StatusCode, body)
		}
		e.serviceCalls(id, 1)
		status, page, _ = b.get(path)
		for _, want := range []string{"GET", "/persons/{id}", "按身份证号查询", "/api/v1/services/" + url.PathEscape(entry.Code) + "/", api.URL + "/v1",
			`id="svc-call-table"`, `data-result="ok"`, "市民政局", civilApp.Key, `id="svc-disable"`, `id="svc-stats"`} {
			if !strings.Contains(page, want) {
				t.Errorf("service page lacks %q", want)
			}
		}
		if status != 200 || strings.Contains(page, providerKey) {
			t.Fatalf("service page: %d, credential shown %v", status, strings.Contains(page, providerKey))
		}

		// A change that leaves the credential empty keeps it.
		form = url.Values{"base_url": {api.URL + "/v1"}, "operations": {"GET /persons/{id} 按身份证号查询\nPOST /persons/{id}/verify 核验\n"},
			"credential_header": {"X-Api-Key"}, "timeout_seconds": {"5"}, "max_response_mib": {"2"}}
		if status, _, loc = b.submit(path, path, form); status != 303 || loc != path+"?ok=common.saved" {
			t.Fatalf("change: %d %s", status, loc)
		}
		if svc, _ = e.proxy().Service(context.Background(), e.users[policy.DeptAdmin].Actor(), id); len(svc.Operations) != 2 || !svc.HasCredential {
			t.Fatalf("changed: %+v", svc)
		}
		if status, _, _ = b.submit(path, path+"/disable", nil); status != 303 {
			t.Fatalf("disable: %d", status)
		}
		if svc, _ = e.proxy().Service(context.Background(), e.users[policy.DeptAdmin].Actor(), id); svc.State != proxy.Disabled {
			t.Fatalf("state %s", svc.State)
		}

		// A consumer user sees the operations, not the address or the log.
		c := e.browser()
		c.login("consumer")
		status, page, _ = c.get(path)
		if status != 200 || !strings.Contains(page, "/persons/{id}") || strings.Contains(page, api.URL) || strings.Contains(page, `id="svc-call-table"`) ||
			strings.Contains(page, `id="svc-actions"`) {
			t.Fatalf("consumer's view: %d", status)
		}
		if status, _, _ = c.submit(path, path+"/enable", nil); status != 403 {
			t.Fatalf("a consumer enables the service: %d", status)
		}
	})
}
