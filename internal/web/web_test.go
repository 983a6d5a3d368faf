package web_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/xuri/excelize/v2"

	"govshare/client"
	"govshare/internal/audit"
	"govshare/internal/bus"
	"govshare/internal/calendar"
	"govshare/internal/catalog"
	"govshare/internal/dataservice"
	"govshare/internal/dataservice/proxy"
	"govshare/internal/exchange"
	"govshare/internal/identity"
	"govshare/internal/mask"
	"govshare/internal/notify"
	"govshare/internal/pki"
	"govshare/internal/policy"
	"govshare/internal/quality"
	"govshare/internal/refdata"
	"govshare/internal/resource"
	"govshare/internal/search"
	"govshare/internal/secret"
	"govshare/internal/share"
	"govshare/internal/store"
	"govshare/internal/storetest"
	"govshare/internal/todo"
	"govshare/internal/web"
)

const pw = "Test@Pass2026"

type env struct {
	t      *testing.T
	srv    *httptest.Server
	ids    *identity.Service
	cat    *catalog.Service
	log    *audit.Log
	keys   *secret.Keys
	db     *store.DB
	res    *resource.Service
	data   *dataservice.Service
	shr    *share.Service
	pki    *pki.Service
	ex     *exchange.Service
	city   identity.Department
	police identity.Department
	tokens map[policy.Role]string // API token of a user holding the role
	users  map[policy.Role]identity.User
	totp   map[string]string // login → TOTP secret
}

func newEnv(t *testing.T, db *store.DB, ready map[string]web.Checker) *env {
	t.Helper()
	ctx := context.Background()
	keys, _ := secret.New([]byte("0123456789abcdef0123456789abcdef"))
	log, err := audit.Open(db, audit.Options{Key: keys.Derive("audit")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { log.Close() })
	ids := identity.NewService(db, log, keys, identity.DefaultConfig())
	if ready == nil {
		ready = map[string]web.Checker{"database": web.CheckFunc(db.Ping)}
	}
	cat := catalog.NewService(db, log, calendar.Weekdays{}, catalog.DefaultConfig())
	if err := cat.EnsureDefaultTree(ctx); err != nil {
		t.Fatal(err)
	}
	idx, err := search.OpenBleve("")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { idx.Close() })
	cat.UseIndex(idx)
	ntf := notify.New(db, log, keys, nil)
	shr := share.NewService(db, log, cat, calendar.Weekdays{}, ntf, share.Config{})
	ref := refdata.New(db, log)
	if err := ref.EnsureDefaults(ctx); err != nil {
		t.Fatal(err)
	}
	res := resource.New(db, log, cat, func(ctx context.Context) (quality.Reference, error) { return ref.Reference(ctx) }, nil)
	b, err := bus.Open(ctx, bus.Config{StoreDir: filepath.Join(t.TempDir(), "nats")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	ca := pki.NewService(db, log, keys)
	masker := mask.New(keys.Derive("mask/hash"))
	ex := exchange.New(exchange.Deps{DB: db, Audit: log, Bus: b, Resources: res, Share: shr, PKI: ca, Masker: masker})
	exCtx, stopEx := context.WithCancel(ctx)
	exDone, err := ex.Start(exCtx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stopEx(); <-exDone })
	data := dataservice.New(dataservice.Deps{DB: db, Resources: res, Grants: shr, Audit: log, Masker: masker, Keys: keys})
	t.Cleanup(data.Close)
	// Comparison jobs run in the background, as on a server.
	jobsCtx, stopJobs := context.WithCancel(ctx)
	jobsDone := data.StartVerifyJobs(jobsCtx)
	t.Cleanup(func() { stopJobs(); <-jobsDone })
	h, err := web.New(web.Deps{Identity: ids, Catalog: cat, Calendar: calendar.New(db, log), RefData: ref, Apps: share.NewApps(db, log, keys), Share: shr,
		Todos: todo.New(cat, shr, res), Notify: ntf, Resources: res, Masker: masker, Data: data, Audit: log, Keys: keys, Version: "test", Ready: ready,
		PKI: ca, Exchange: ex, NodeURL: func() string { return "https://127.0.0.1:8443" },
		Proxy: proxy.New(proxy.Deps{DB: db, Audit: log, Grants: shr, Catalog: cat, Keys: keys})})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	e := &env{t: t, srv: srv, ids: ids, cat: cat, log: log, keys: keys, db: db, res: res, data: data, shr: shr, pki: ca, ex: ex, tokens: map[policy.Role]string{}, users: map[policy.Role]identity.User{}, totp: map[string]string{}}
	e.city, err = ids.SeedDepartment(ctx, identity.DepartmentInput{Name: "示范市人民政府", CreditCode: identity.SyntheticCreditCode("350100", 1), RegionCode: "350100"})
	if err != nil {
		t.Fatal(err)
	}
	e.police, _ = ids.SeedDepartment(ctx, identity.DepartmentInput{ParentID: e.city.ID, Name: "市公安局", CreditCode: identity.SyntheticCreditCode("350100", 2), RegionCode: "350100"})
	for _, r := range policy.AllRoles {
		dept := e.police.ID
		secretTOTP := ""
		if r.Admin() {
			dept = e.city.ID
			secretTOTP = identity.NewTOTPSecret()
		}
		login := strings.ReplaceAll(string(r), "_", ".")
		u, err := ids.SeedUser(ctx, identity.UserInput{Login: login, Name: "测试" + login, DeptID: dept, Roles: []policy.Role{r}, Password: pw}, false, secretTOTP)
		if err != nil {
			t.Fatal(err)
		}
		e.users[r] = u
		e.totp[login] = secretTOTP
		tok, _, err := ids.CreateToken(ctx, u.Actor(), "test", 30)
		if err != nil {
			t.Fatal(err)
		}
		e.tokens[r] = tok
	}
	return e
}

// api calls the JSON API with the token of a role ("" for none).
func (e *env) api(role policy.Role, method, path string, body any) (int, map[string]any, http.Header) {
	e.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = strings.NewReader(string(b))
	}
	req, _ := http.NewRequest(method, e.srv.URL+path, rd)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if role != "" {
		req.Header.Set("Authorization", "Bearer "+e.tokens[role])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if len(raw) > 0 && raw[0] == '{' {
		_ = json.Unmarshal(raw, &m)
	}
	return resp.StatusCode, m, resp.Header
}

func TestOpenAPIDocumentIs31AndReferencePageRenders(t *testing.T) {
	e := newEnv(t, storetest.OpenSQLite(t), nil)
	resp, err := http.Get(e.srv.URL + "/api/v1/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		OpenAPI string         `json:"openapi"`
		Paths   map[string]any `json:"paths"`
	}
	json.NewDecoder(resp.Body).Decode(&doc)
	resp.Body.Close()
	if doc.OpenAPI != "3.1.0" || doc.Paths["/api/v1/departments"] == nil || doc.Paths["/api/v1/audit/events"] == nil {
		t.Fatalf("openapi %q with %d paths", doc.OpenAPI, len(doc.Paths))
	}
	resp, _ = http.Get(e.srv.URL + "/api/docs")
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(b), "/api/v1/departments") || !strings.Contains(string(b), "message_zh") {
		t.Fatalf("docs page %d", resp.StatusCode)
	}
}

func TestAPIRoleMatrix(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db, nil)
		newDept := func(n int) map[string]any {
			return map[string]any{"name": fmt.Sprintf("部门%d", n), "credit_code": identity.SyntheticCreditCode("350100", 500+n), "region_code": "350100"}
		}
		newUser := func(login string, dept int64, role policy.Role) map[string]any {
			return map[string]any{"login": login, "name": "新用户", "dept_id": dept, "roles": []string{string(role)}, "password": pw}
		}
		type call struct {
			name         string
			method, path string
			body         func(i int) any
		}
		calls := []call{
			{"list departments", "GET", "/api/v1/departments", nil},
			{"create department", "POST", "/api/v1/departments", func(i int) any { return newDept(i) }},
			{"list users", "GET", "/api/v1/users", nil},
			{"create consumer in police", "POST", "/api/v1/users", func(i int) any { return newUser(fmt.Sprintf("new.p%d", i), e.police.ID, policy.Consumer) }},
			{"create consumer in city", "POST", "/api/v1/users", func(i int) any { return newUser(fmt.Sprintf("new.c%d", i), e.city.ID, policy.Consumer) }},
			{"create auditor", "POST", "/api/v1/users", func(i int) any { return newUser(fmt.Sprintf("new.a%d", i), e.police.ID, policy.Auditor) }},
			{"read audit log", "GET", "/api/v1/audit/events", nil},
			{"export audit log", "GET", "/api/v1/audit/events.csv", nil},
			{"verify audit chain", "POST", "/api/v1/audit/verify", nil},
			{"unlock user", "POST", fmt.Sprintf("/api/v1/users/%d/unlock", e.users[policy.Consumer].ID), nil},
			{"reset user totp", "POST", fmt.Sprintf("/api/v1/users/%d/totp-reset", e.users[policy.Consumer].ID), nil},
		}
		// want[role][call] is the expected status. Department data
		// administrators and consumers belong to the police department.
		want := map[policy.Role][]int{
			policy.PlatformAdmin: {200, 201, 200, 201, 201, 201, 403, 403, 403, 204, 403},
			policy.SecurityAdmin: {200, 403, 200, 403, 403, 403, 403, 403, 403, 204, 204},
			policy.Auditor:       {200, 403, 403, 403, 403, 403, 200, 200, 200, 403, 403},
			policy.DeptAdmin:     {200, 403, 200, 201, 403, 403, 403, 403, 403, 403, 403},
			policy.DeptReviewer:  {200, 403, 403, 403, 403, 403, 403, 403, 403, 403, 403},
			policy.Consumer:      {200, 403, 403, 403, 403, 403, 403, 403, 403, 403, 403},
		}
		i := 0
		for _, role := range policy.AllRoles {
			for j, c := range calls {
				i++
				var body any
				if c.body != nil {
					body = c.body(i)
				}
				status, m, _ := e.api(role, c.method, c.path, body)
				if status != want[role][j] {
					t.Errorf("%s × %s: status %d, want %d (%v)", role, c.name, status, want[role][j], m)
				}
				if status == 403 && m["code"] != "auth.denied" {
					t.Errorf("%s × %s: refusal without code: %v", role, c.name, m)
				}
			}
		}
		// Every refusal was audited.
		evs, _ := e.log.List(context.Background(), audit.Filter{Result: audit.ResultDenied, Limit: 500})
		if len(evs) < 40 {
			t.Errorf("only %d denials audited", len(evs))
		}
	})
}

func TestAPIErrorsAreProblemDocuments(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db, nil)
		status, m, h := e.api(policy.PlatformAdmin, "POST", "/api/v1/departments",
			map[string]any{"name": "民政局", "credit_code": "91350100M000100Y44", "region_code": "350100"})
		if status != 422 || !strings.HasPrefix(h.Get("Content-Type"), "application/problem+json") {
			t.Fatalf("status %d, content type %s", status, h.Get("Content-Type"))
		}
		if m["code"] != "identity.credit_code_invalid" || m["field"] != "credit_code" || m["message_zh"] == "" || m["message_en"] == "" || m["status"] != float64(422) {
			t.Fatalf("problem: %v", m)
		}
		if n, _ := e.ids.DepartmentCount(context.Background()); n != 2 {
			t.Fatalf("refused request created a department: %d", n)
		}
		// huma's own validation errors carry a code and a field too.
		status, m, _ = e.api(policy.PlatformAdmin, "POST", "/api/v1/users", map[string]any{"login": "A B", "name": "x", "dept_id": 1, "roles": []string{"consumer"}, "password": pw})
		if status != 422 || m["code"] != "request.invalid" || m["field"] != "login" {
			t.Fatalf("validation problem: %d %v", status, m)
		}
		// Separation of duties through the API.
		status, m, _ = e.api(policy.PlatformAdmin, "PUT", fmt.Sprintf("/api/v1/users/%d", e.users[policy.Auditor].ID),
			map[string]any{"name": "x", "dept_id": e.city.ID, "roles": []string{"auditor", "security_admin"}, "status": "active"})
		if status != 422 || m["code"] != "identity.admin_roles_separated" {
			t.Fatalf("separation: %d %v", status, m)
		}
	})
}

func TestAPIRefusesMissingAndBadTokens(t *testing.T) {
	e := newEnv(t, storetest.OpenSQLite(t), nil)
	status, m, _ := e.api("", "GET", "/api/v1/me", nil)
	if status != 401 || m["code"] != "auth.unauthenticated" {
		t.Fatalf("no token: %d %v", status, m)
	}
	e.tokens["nobody"] = "gst_forged"
	status, m, _ = e.api("nobody", "GET", "/api/v1/me", nil)
	if status != 401 || m["code"] != "identity.token_invalid" {
		t.Fatalf("bad token: %d %v", status, m)
	}
	evs, _ := e.log.List(context.Background(), audit.Filter{Action: "api.auth_failed"})
	if len(evs) != 1 {
		t.Fatalf("bad token not audited: %v", evs)
	}
	// The request id and a stated purpose reach the audit log.
	req, _ := http.NewRequest("POST", e.srv.URL+"/api/v1/tokens", strings.NewReader(`{"name":"对接系统"}`))
	req.Header.Set("Authorization", "Bearer "+e.tokens[policy.Consumer])
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Purpose", "业务系统对接测试")
	req.Header.Set("X-Request-Id", "req-42")
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 201 {
		t.Fatalf("create token: %v %v", err, resp.StatusCode)
	}
	resp.Body.Close()
	evs, _ = e.log.List(context.Background(), audit.Filter{Action: "token.create", Limit: 1})
	if len(evs) != 1 || evs[0].Purpose != "业务系统对接测试" || evs[0].RequestID != "req-42" || evs[0].ClientAddr != "127.0.0.1" {
		t.Fatalf("audit event lacks request metadata: %+v", evs)
	}
	status, m, _ = e.api(policy.Consumer, "GET", "/api/v1/me", nil)
	if status != 200 || m["login"] != "consumer" {
		t.Fatalf("me: %d %v", status, m)
	}
	if _, ok := m["password_hash"]; ok {
		t.Fatal("password hash leaked")
	}
}

func TestReadinessFollowsDependencies(t *testing.T) {
	db := storetest.OpenSQLite(t)
	down := false
	e := newEnv(t, db, map[string]web.Checker{
		"database": web.CheckFunc(db.Ping),
		"bus": web.CheckFunc(func(context.Context) error {
			if down {
				return fmt.Errorf("bus unreachable")
			}
			return nil
		}),
	})
	get := func(p string) int {
		resp, err := http.Get(e.srv.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if get("/readyz") != 200 || get("/healthz") != 200 || get("/metrics") != 200 {
		t.Fatal("not ready while everything is up")
	}
	down = true
	if get("/readyz") != 503 {
		t.Fatal("ready while the bus is down")
	}
	if get("/healthz") != 200 {
		t.Fatal("liveness should not follow dependencies")
	}
}

// browser is a cookie-keeping client that does not follow redirects.
type browser struct {
	t *testing.T
	c *http.Client
	e *env
}

func (e *env) browser() *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: e.t, e: e, c: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

var csrfRE = regexp.MustCompile(`name="_csrf" value="([^"]+)"`)

func (b *browser) get(path string) (int, string, string) {
	b.t.Helper()
	resp, err := b.c.Get(b.e.srv.URL + path)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), resp.Header.Get("Location")
}

func (b *browser) csrf(path string) string {
	_, body, _ := b.get(path)
	m := csrfRE.FindStringSubmatch(body)
	if m == nil {
		b.t.Fatalf("no csrf token on %s", path)
	}
	return m[1]
}

func (b *browser) post(path string, form url.Values) (int, string, string) {
	b.t.Helper()
	resp, err := b.c.PostForm(b.e.srv.URL+path, form)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), resp.Header.Get("Location")
}

func (b *browser) login(login string) {
	b.t.Helper()
	status, _, loc := b.post("/login", url.Values{"login": {login}, "password": {pw}, "_csrf": {b.csrf("/login")}})
	if status != 303 {
		b.t.Fatalf("login %s: %d", login, status)
	}
	if loc == "/login/totp" {
		code, _ := identity.TOTPCode(b.e.totp[login], time.Now())
		status, _, loc = b.post("/login/totp", url.Values{"code": {code}, "_csrf": {b.csrf("/login/totp")}})
		if status != 303 {
			b.t.Fatalf("totp %s: %d", login, status)
		}
	}
	if loc != "/home" {
		b.t.Fatalf("login %s ended at %s", login, loc)
	}
}

func TestCSRFlessPostsAreRefused(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db, nil)
		b := e.browser()
		// Even the login form needs its token.
		if status, _, _ := b.post("/login", url.Values{"login": {"consumer"}, "password": {pw}}); status != 403 {
			t.Fatalf("login without csrf: %d", status)
		}
		b.login("platform.admin")
		form := url.Values{"name": {"市民政局"}, "credit_code": {identity.SyntheticCreditCode("350100", 77)}, "region_code": {"350100"}, "parent_id": {"0"}}
		if status, _, _ := b.post("/departments", form); status != 403 {
			t.Fatalf("post without csrf: %d", status)
		}
		form.Set("_csrf", "forged")
		if status, _, _ := b.post("/departments", form); status != 403 {
			t.Fatalf("post with a forged csrf: %d", status)
		}
		// A token from another session does not work either.
		other := e.browser()
		other.login("consumer")
		form.Set("_csrf", other.csrf("/home"))
		if status, _, _ := b.post("/departments", form); status != 403 {
			t.Fatalf("post with another session's csrf: %d", status)
		}
		if n, _ := e.ids.DepartmentCount(context.Background()); n != 2 {
			t.Fatalf("refused posts created %d departments", n-2)
		}
		form.Set("_csrf", b.csrf("/departments"))
		if status, _, loc := b.post("/departments", form); status != 303 || !strings.HasPrefix(loc, "/departments") {
			t.Fatalf("post with csrf: %d %s", status, loc)
		}
		// Logout is a state change too.
		if status, _, _ := b.post("/logout", nil); status != 403 {
			t.Fatalf("logout without csrf: %d", status)
		}
	})
}

func TestPagesRefuseOnTheServer(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db, nil)
		b := e.browser()
		b.login("consumer")
		_, home, _ := b.get("/home")
		if strings.Contains(home, `href="/users"`) || strings.Contains(home, `href="/audit"`) {
			t.Fatal("consumer navigation links to administration")
		}
		for _, p := range []string{"/users", "/users/new", "/departments", "/audit", "/audit/export.csv", fmt.Sprintf("/users/%d", e.users[policy.PlatformAdmin].ID)} {
			if status, _, _ := b.get(p); status != 403 {
				t.Errorf("consumer GET %s: %d, want 403", p, status)
			}
		}
		if status, _, _ := b.post(fmt.Sprintf("/users/%d/unlock", e.users[policy.Auditor].ID), url.Values{"_csrf": {b.csrf("/home")}}); status != 403 {
			t.Errorf("consumer unlock: %d", status)
		}
		evs, _ := e.log.List(context.Background(), audit.Filter{Actor: "consumer", Result: audit.ResultDenied, Limit: 100})
		if len(evs) < 6 {
			t.Fatalf("page refusals audited %d times", len(evs))
		}
		// The auditor reads the log and exports it; the platform
		// administrator cannot.
		a := e.browser()
		a.login("auditor")
		status, body, _ := a.get("/audit?actor=consumer&result=denied")
		if status != 200 || !strings.Contains(body, "audit-table") || !strings.Contains(body, "denied") {
			t.Fatalf("auditor /audit: %d", status)
		}
		status, csv, _ := a.get("/audit/export.csv?actor=consumer")
		if status != 200 || !strings.Contains(csv, "序号 seq") || !strings.Contains(csv, "consumer") {
			t.Fatalf("export: %d", status)
		}
		p := e.browser()
		p.login("platform.admin")
		if status, _, _ := p.get("/audit"); status != 403 {
			t.Fatalf("platform admin reads audit: %d", status)
		}
	})
}

func TestAdministratorMustEnrolTOTPAndFirstLoginChangesPassword(t *testing.T) {
	e := newEnv(t, storetest.OpenSQLite(t), nil)
	ctx := context.Background()
	admin := e.users[policy.PlatformAdmin].Actor()
	_, err := e.ids.CreateUser(ctx, admin, identity.UserInput{Login: "new.sec", Name: "新安全员", DeptID: e.city.ID, Roles: []policy.Role{policy.SecurityAdmin}, Password: pw})
	if err != nil {
		t.Fatal(err)
	}
	b := e.browser()
	status, _, loc := b.post("/login", url.Values{"login": {"new.sec"}, "password": {pw}, "_csrf": {b.csrf("/login")}})
	if status != 303 || loc != "/account/totp" {
		t.Fatalf("admin without 2FA sent to %s", loc)
	}
	// Nothing else opens before enrolment.
	if _, _, loc := b.get("/users"); loc != "/account/totp" {
		t.Fatalf("/users before enrolment redirects to %q", loc)
	}
	_, page, _ := b.get("/account/totp")
	m := regexp.MustCompile(`id="totp-secret">([A-Z2-7]+)<`).FindStringSubmatch(page)
	if m == nil || !strings.Contains(page, "otpauth://totp/") {
		t.Fatal("enrolment page shows no secret or URI")
	}
	code, _ := identity.TOTPCode(m[1], time.Now())
	status, _, loc = b.post("/account/totp", url.Values{"code": {code}, "_csrf": {b.csrf("/account/totp")}})
	if status != 303 || loc != "/account/password" {
		t.Fatalf("after enrolment: %d %s", status, loc)
	}
	token := b.csrf("/account/password")
	status, body, _ := b.post("/account/password", url.Values{"old_password": {pw}, "new_password": {"short"}, "confirm_password": {"short"}, "_csrf": {token}})
	if status != 422 || !strings.Contains(body, "identity.password_weak") {
		t.Fatalf("weak password: %d", status)
	}
	status, _, loc = b.post("/account/password", url.Values{"old_password": {pw}, "new_password": {"Another#Pass9"}, "confirm_password": {"Another#Pass9"}, "_csrf": {token}})
	if status != 303 || !strings.HasPrefix(loc, "/home") {
		t.Fatalf("password change: %d %s", status, loc)
	}
	if status, _, _ := b.get("/users"); status != 200 {
		t.Fatalf("security admin /users after login: %d", status)
	}
}

func TestCatalogWorkflowThroughTheAPI(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db, nil)
		content := map[string]any{
			"name": "居住证登记信息", "class_code": "101", "abstract": "本市居住证办理登记信息。", "format_class": "database", "format_type": "postgresql",
			"keywords": []string{"居住证", "流动人口"},
			"items": []map[string]any{
				{"name": "居住证号码", "machine_name": "permit_no", "data_type": "C", "length": 20, "key": true},
				{"name": "姓名", "machine_name": "name", "data_type": "C", "length": 50, "mask_rule": "surname"},
			},
			"share_type": "conditional", "share_condition": "用于公共服务身份核验", "share_methods": []string{"api"},
			"open_type": "closed", "update_cycle": "daily",
		}
		status, m, _ := e.api(policy.Consumer, "POST", "/api/v1/catalog/entries", content)
		if status != 403 {
			t.Fatalf("consumer registers: %d %v", status, m)
		}
		bad := map[string]any{}
		for k, v := range content {
			bad[k] = v
		}
		bad["share_condition"] = ""
		status, m, _ = e.api(policy.DeptAdmin, "POST", "/api/v1/catalog/entries", bad)
		if status != 422 || m["field"] != "share_condition" {
			t.Fatalf("missing condition: %d %v", status, m)
		}
		status, m, _ = e.api(policy.DeptAdmin, "POST", "/api/v1/catalog/entries", content)
		if status != 201 || m["state"] != "draft" {
			t.Fatalf("create: %d %v", status, m)
		}
		id := int64(m["id"].(float64))
		path := fmt.Sprintf("/api/v1/catalog/entries/%d", id)
		step := func(role policy.Role, action string, body any, want int) map[string]any {
			t.Helper()
			status, m, _ := e.api(role, "POST", path+"/"+action, body)
			if status != want {
				t.Fatalf("%s %s: %d %v", role, action, status, m)
			}
			return m
		}
		step(policy.DeptAdmin, "submit", nil, 200)
		step(policy.DeptAdmin, "approve", nil, 403)
		m = step(policy.PlatformAdmin, "return", map[string]any{"reasons": []map[string]string{{"field": "abstract", "text": "请说明覆盖范围"}}}, 200)
		if m["state"] != "returned" {
			t.Fatalf("returned: %v", m)
		}
		content["abstract"] = "本市居住证办理登记信息，覆盖全市。"
		if status, m, _ := e.api(policy.DeptAdmin, "PUT", path, content); status != 200 {
			t.Fatalf("update: %d %v", status, m)
		}
		step(policy.DeptAdmin, "submit", nil, 200)
		step(policy.PlatformAdmin, "approve", nil, 200)
		m = step(policy.PlatformAdmin, "publish", nil, 200)
		if m["code"] != "101/000001" || m["published_version"] != float64(1) {
			t.Fatalf("published: %v", m)
		}
		// A change request gives version 2, and the diff shows it.
		step(policy.DeptAdmin, "change", map[string]any{"reason": "functions", "note": "职能调整"}, 200)
		content["update_cycle"] = "realtime"
		e.api(policy.DeptAdmin, "PUT", path, content)
		step(policy.DeptAdmin, "submit", nil, 200)
		step(policy.PlatformAdmin, "approve", nil, 200)
		step(policy.PlatformAdmin, "publish", nil, 200)
		// The published entry is found by 1- and 2-character queries and by facet.
		for _, q := range []string{"居", "居住", "居住证登记"} {
			status, m, _ = e.api(policy.Consumer, "GET", "/api/v1/catalog/search?q="+url.QueryEscape(q), nil)
			if status != 200 || m["total"] != float64(1) {
				t.Fatalf("search %q: %d %v", q, status, m)
			}
		}
		status, m, _ = e.api(policy.Consumer, "GET", "/api/v1/catalog/search?q="+url.QueryEscape("居住")+"&share_type=unconditional", nil)
		if status != 200 || m["total"] != float64(0) {
			t.Fatalf("facet filter: %v", m)
		}
		status, m, _ = e.api(policy.Consumer, "GET", "/api/v1/catalog/search?update_cycle=realtime", nil)
		if facets, _ := m["facets"].(map[string]any); status != 200 || m["total"] != float64(1) || !strings.Contains(fmt.Sprint(facets["share_type"]), "conditional") {
			t.Fatalf("facets: %v", m)
		}
		status, m, _ = e.api(policy.Auditor, "GET", path, nil)
		if status != 200 || m["published_version"] != float64(2) {
			t.Fatalf("read by another department: %d %v", status, m)
		}
		req, _ := http.NewRequest("GET", e.srv.URL+path+"/diff?from=1&to=2", nil)
		req.Header.Set("Authorization", "Bearer "+e.tokens[policy.Consumer])
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var d []map[string]string
		json.NewDecoder(resp.Body).Decode(&d)
		resp.Body.Close()
		if len(d) != 1 || d[0]["field"] != "update_cycle" || d[0]["old"] != "daily" || d[0]["new"] != "realtime" {
			t.Fatalf("diff: %v", d)
		}
	})
}

func entryForm(name, cycle string) url.Values {
	return url.Values{
		"name": {name}, "class_code": {"101"}, "abstract": {"本市居民婚姻登记信息。"}, "format_class": {"database"}, "format_type": {"postgresql"},
		"keywords": {"婚姻，登记"}, "update_cycle": {cycle}, "share_type": {"conditional"}, "share_condition": {"用于婚姻状况核验"},
		"share_methods": {"api", "verify"}, "open_type": {"closed"},
		"items.0.name": {"结婚登记日期"}, "items.0.machine_name": {"marriage_date"}, "items.0.data_type": {"D"}, "items.0.length": {"8"},
		"items.1.name": {"婚姻状况"}, "items.1.machine_name": {"marital_status"}, "items.1.data_type": {"C"}, "items.1.length": {"2"}, "items.1.key": {"on"},
		"items.2.name": {""}, "items.2.machine_name": {""}, "items.2.data_type": {"C"}, "items.2.length": {""},
	}
}

func TestCatalogPagesWalkTheWorkflow(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db, nil)
		da := e.browser()
		da.login("dept.admin")
		// A bad item is shown at its row and nothing is stored.
		form := entryForm("婚姻登记信息", "daily")
		form.Set("items.1.machine_name", "Marital")
		form.Set("_csrf", da.csrf("/catalog/new"))
		status, body, _ := da.post("/catalog", form)
		if status != 422 || !strings.Contains(body, "items[1].machine_name") && !strings.Contains(body, "字段名须以小写字母开头") {
			t.Fatalf("bad item: %d", status)
		}
		form = entryForm("婚姻登记信息", "daily")
		form.Set("_csrf", da.csrf("/catalog/new"))
		status, _, loc := da.post("/catalog", form)
		if status != 303 || !strings.HasPrefix(loc, "/catalog/") {
			t.Fatalf("create: %d %s", status, loc)
		}
		entry := strings.SplitN(strings.TrimPrefix(loc, "/catalog/"), "?", 2)[0]
		step := func(b *browser, name string, extra url.Values) string {
			t.Helper()
			if extra == nil {
				extra = url.Values{}
			}
			extra.Set("_csrf", b.csrf("/catalog/"+entry))
			status, body, loc := b.post("/catalog/"+entry+"/"+name, extra)
			if status != 303 {
				t.Fatalf("%s: %d %s", name, status, body[:min(len(body), 300)])
			}
			return loc
		}
		step(da, "submit", nil)
		pa := e.browser()
		pa.login("platform.admin")
		_, queue, _ := pa.get("/catalog/manage")
		if !strings.Contains(queue, "婚姻登记信息") {
			t.Fatal("submitted entry not in the review queue")
		}
		// The review waits in the administrator's to-do inbox, counted in the navigation.
		_, todos, _ := pa.get("/todos")
		if !strings.Contains(todos, `data-kind="catalog.review"`) || !strings.Contains(todos, "婚姻登记信息") || !strings.Contains(todos, `id="todo-count">1<`) {
			t.Fatal("review not in the administrator's to-dos")
		}
		step(pa, "return", url.Values{"field": {"abstract"}, "reason": {"请补充数据范围"}})
		if _, todos, _ = da.get("/todos"); !strings.Contains(todos, `data-kind="catalog.fix"`) {
			t.Fatal("returned entry not in the provider's to-dos")
		}
		if _, todos, _ = pa.get("/todos"); strings.Contains(todos, `data-kind="catalog.review"`) {
			t.Fatal("returned entry still waits on the administrator")
		}
		_, page, _ := da.get("/catalog/" + entry)
		if !strings.Contains(page, "请补充数据范围") {
			t.Fatal("return reason not shown to the provider")
		}
		form = entryForm("婚姻登记信息", "daily")
		form.Set("abstract", "本市居民婚姻登记信息，2000年以来全量。")
		form.Set("_csrf", da.csrf("/catalog/"+entry+"/edit"))
		if status, _, _ := da.post("/catalog/"+entry+"/edit", form); status != 303 {
			t.Fatalf("edit: %d", status)
		}
		step(da, "submit", nil)
		step(pa, "approve", nil)
		step(pa, "publish", nil)
		// A user of another department reads it.
		c := e.browser()
		c.login("security.admin")
		status, page, _ = c.get("/catalog/" + entry)
		if status != 200 || !strings.Contains(page, "101/000001") || !strings.Contains(page, "marital_status") {
			t.Fatalf("other department's view: %d", status)
		}
		if status, _, _ := c.get("/catalog/" + entry + "/edit"); status != 403 {
			t.Fatalf("other department's edit page: %d", status)
		}
		// Change request → version 2 → side-by-side diff.
		step(da, "change", url.Values{"reason": {"law"}, "note": {"条例修订"}})
		form = entryForm("婚姻登记信息", "realtime")
		form.Set("abstract", "本市居民婚姻登记信息，2000年以来全量。")
		form.Set("_csrf", da.csrf("/catalog/"+entry+"/edit"))
		da.post("/catalog/"+entry+"/edit", form)
		step(da, "submit", nil)
		step(pa, "approve", nil)
		step(pa, "publish", nil)
		status, diff, _ := c.get("/catalog/" + entry + "/diff?from=1&to=2")
		if status != 200 || !regexp.MustCompile(`class="changed" data-field="update_cycle"`).MatchString(diff) || strings.Count(diff, `class="changed"`) != 1 {
			t.Fatalf("diff page: %d", status)
		}
		// The other department finds it by a 2-character query and a facet.
		_, found, _ := c.get("/catalog?q=" + url.QueryEscape("婚姻"))
		if !strings.Contains(found, "/catalog/"+entry+`"`) || !strings.Contains(found, `data-facet="share_type" data-value="conditional"`) {
			t.Fatal("search page does not find the entry or lacks facets")
		}
		_, none, _ := c.get("/catalog?q=" + url.QueryEscape("婚姻") + "&share_type=unconditional")
		if strings.Contains(none, "/catalog/"+entry+`"`) {
			t.Fatal("facet filter ignored")
		}
		// The other department rates it; the provider's own users cannot.
		step(c, "rate", url.Values{"stars": {"4"}, "comment": {"字段清晰"}})
		_, page, _ = c.get("/catalog/" + entry)
		if !strings.Contains(page, "字段清晰") || !strings.Contains(page, "★★★★☆") || !strings.Contains(page, "dept.admin") {
			t.Fatal("rating or provider contact not shown")
		}
		if status, _, _ := da.post("/catalog/"+entry+"/rate", url.Values{"stars": {"5"}, "_csrf": {da.csrf("/catalog/" + entry)}}); status != 403 {
			t.Fatalf("provider rates own entry: %d", status)
		}
		// Demand catalog: post, route, answer.
		status, _, _ = c.post("/demands", url.Values{"title": {"殡葬信息"}, "purpose": {"养老金停发核查"}, "suggested_dept_id": {fmt.Sprint(e.police.ID)}, "_csrf": {c.csrf("/demands")}})
		if status != 303 {
			t.Fatalf("post demand: %d", status)
		}
		ds, _ := e.catalogDemands()
		status, _, _ = pa.post(fmt.Sprintf("/demands/%d/route", ds), url.Values{"dept_id": {fmt.Sprint(e.police.ID)}, "_csrf": {pa.csrf("/demands")}})
		if status != 303 {
			t.Fatalf("route: %d", status)
		}
		status, _, _ = da.post(fmt.Sprintf("/demands/%d/answer", ds), url.Values{"entry_id": {entry}, "answer": {"见婚姻登记信息"}, "_csrf": {da.csrf("/demands")}})
		if status != 303 {
			t.Fatalf("answer: %d", status)
		}
		_, list, _ := c.get("/demands?state=answered")
		if !strings.Contains(list, "殡葬信息") {
			t.Fatal("answered demand not listed")
		}
	})
}

func (e *env) catalogDemands() (int64, error) {
	var id int64
	err := e.db.QueryRow(context.Background(), "SELECT MAX(id) FROM demands").Scan(&id)
	return id, err
}

func TestCatalogImportAndExportThroughTheAPI(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db, nil)
		good := func(name string) map[string]any {
			return map[string]any{"name": name, "class_code": "102", "abstract": "企业登记信息。", "format_class": "database", "format_type": "mysql",
				"items":      []map[string]any{{"name": "统一社会信用代码", "machine_name": "credit_code", "data_type": "C", "length": 18, "key": true}},
				"share_type": "unconditional", "share_methods": []string{"api"}, "open_type": "open", "update_cycle": "daily"}
		}
		bad := good("坏条目")
		bad["update_cycle"] = "hourly"
		status, m, _ := e.api(policy.DeptAdmin, "POST", "/api/v1/catalog/import.json", []any{good("企业A"), bad})
		errs, _ := m["errors"].([]any)
		if status != 422 || m["code"] != "catalog.import_rejected" || len(errs) != 1 || !strings.Contains(fmt.Sprint(errs[0]), "json!update_cycle2") {
			t.Fatalf("rejected import: %d %v", status, m)
		}
		status, m, _ = e.api(policy.DeptAdmin, "POST", "/api/v1/catalog/import.json", []any{good("企业A"), good("企业B")})
		if status != 200 || m["entries"] != float64(2) {
			t.Fatalf("import: %d %v", status, m)
		}
		req, _ := http.NewRequest("GET", e.srv.URL+"/api/v1/catalog/export.json?state=draft", nil)
		req.Header.Set("Authorization", "Bearer "+e.tokens[policy.DeptAdmin])
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var out []map[string]any
		json.NewDecoder(resp.Body).Decode(&out)
		resp.Body.Close()
		if len(out) != 2 || out[1]["name"] != "企业B" {
			t.Fatalf("export: %v", out)
		}
		// The template downloads and a consumer cannot import.
		req, _ = http.NewRequest("GET", e.srv.URL+"/api/v1/catalog/template.xlsx", nil)
		req.Header.Set("Authorization", "Bearer "+e.tokens[policy.Consumer])
		resp, _ = http.DefaultClient.Do(req)
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || len(b) < 1000 || string(b[:2]) != "PK" {
			t.Fatalf("template: %d %d bytes", resp.StatusCode, len(b))
		}
		if status, _, _ := e.api(policy.Consumer, "POST", "/api/v1/catalog/import.json", []any{good("企业C")}); status != 403 {
			t.Fatalf("consumer import: %d", status)
		}
	})
}

func TestFlashAndSortLinks(t *testing.T) {
	e := newEnv(t, storetest.OpenSQLite(t), nil)
	b := e.browser()
	b.login("dept.admin")
	_, page, _ := b.get("/catalog/manage?ok=cat.done.submit")
	if !strings.Contains(page, "已提交审核。") {
		t.Fatal("catalog flash message not shown")
	}
	_, page, _ = b.get("/home?ok=<script>")
	if strings.Contains(page, `class="flash"`) {
		t.Fatal("unknown flash key shown")
	}
	_, page, _ = b.get("/catalog?q=" + url.QueryEscape("户籍"))
	if !strings.Contains(page, `href="/catalog?q=%E6%88%B7%E7%B1%8D&amp;sort=date"`) {
		t.Fatal("sort link is not a plain query")
	}
}

func TestExportSearchResultsAndClassificationCSV(t *testing.T) {
	e := newEnv(t, storetest.OpenSQLite(t), nil)
	ctx := context.Background()
	da := e.users[policy.DeptAdmin].Actor()
	pa := e.users[policy.PlatformAdmin].Actor()
	for _, name := range []string{"户籍登记信息", "企业登记信息"} {
		c := catalog.Content{Name: name, ClassCode: "101", Abstract: "测试。", FormatClass: "database", FormatType: "mysql",
			Items:     []catalog.DataItem{{Name: "编号", MachineName: "no", DataType: "C", Length: 10, Key: true}},
			ShareType: catalog.ShareUnconditional, ShareMethods: []catalog.ShareMethod{catalog.MethodAPI}, OpenType: catalog.OpenClosed, UpdateCycle: "daily"}
		x, err := e.cat.CreateEntry(ctx, da, c)
		if err != nil {
			t.Fatal(err)
		}
		e.cat.Submit(ctx, da, x.ID)
		e.cat.Approve(ctx, pa, x.ID)
		e.cat.Publish(ctx, pa, x.ID)
	}
	b := e.browser()
	b.login("consumer")
	status, body, _ := b.get("/catalog/export.xlsx?q=" + url.QueryEscape("户籍"))
	if status != 200 || !strings.HasPrefix(body, "PK") {
		t.Fatalf("export of a search: %d", status)
	}
	x, err := excelize.OpenReader(strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	rows, _ := x.GetRows("信息资源")
	joined := fmt.Sprint(rows)
	if len(rows) != 2 || !strings.Contains(joined, "户籍登记信息") || strings.Contains(joined, "企业登记信息") {
		t.Fatalf("exported rows %v", rows)
	}
	p := e.browser()
	p.login("platform.admin")
	var buf strings.Builder
	mw := multipart.NewWriter(&buf)
	fw, _ := mw.CreateFormFile("file", "tree.csv")
	fw.Write([]byte("分类代码,分类名称,上级分类代码\n301,公安,\n301001,治安管理,301\n"))
	mw.WriteField("_csrf", p.csrf("/classifications"))
	mw.Close()
	req, _ := http.NewRequest("POST", e.srv.URL+"/classifications/import", strings.NewReader(buf.String()))
	req.Header.Set("Content-Type", mw.FormDataContentType())
	resp, err := p.c.Do(req)
	if err != nil || resp.StatusCode != 303 {
		t.Fatalf("csv import: %v %d", err, resp.StatusCode)
	}
	resp.Body.Close()
	_, page, _ := p.get("/classifications")
	if !strings.Contains(page, "治安管理") {
		t.Fatal("imported classification not listed")
	}
}

func TestCalendarIsMaintainedByThePlatformAdministrator(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db, nil)
		year := map[string]any{"year": 2027, "days": []map[string]any{{"name": "春节", "date": "2027-02-08", "isOffDay": true}, {"name": "春节", "date": "2027-02-13", "isOffDay": false}}}
		if status, _, _ := e.api(policy.DeptAdmin, "PUT", "/api/v1/calendar/2027", year); status != 403 {
			t.Fatalf("dept admin imports a year: %d", status)
		}
		if status, m, _ := e.api(policy.PlatformAdmin, "PUT", "/api/v1/calendar/2028", year); status != 422 || m["code"] != "calendar.year_invalid" {
			t.Fatalf("mismatched year: %d %v", status, m)
		}
		if status, m, _ := e.api(policy.PlatformAdmin, "PUT", "/api/v1/calendar/2027", year); status != 204 {
			t.Fatalf("import: %d %v", status, m)
		}
		b := e.browser()
		b.login("platform.admin")
		status, page, _ := b.get("/calendar?year=2027")
		if status != 200 || !strings.Contains(page, "2027-02-13") || !strings.Contains(page, "调休上班") {
			t.Fatalf("calendar page: %d", status)
		}
		status, _, _ = b.post("/calendar/day", url.Values{"date": {"2027-10-01"}, "name": {"国庆节"}, "off": {"true"}, "_csrf": {b.csrf("/calendar")}})
		if status != 303 {
			t.Fatalf("set day: %d", status)
		}
		status, page, _ = b.post("/calendar/day", url.Values{"date": {"2027-13-01"}, "off": {"true"}, "_csrf": {b.csrf("/calendar")}})
		if status != 422 || !strings.Contains(page, "calendar.day_invalid") {
			t.Fatalf("bad date: %d", status)
		}
		c := e.browser()
		c.login("dept.admin")
		if status, _, _ := c.get("/calendar"); status != 403 {
			t.Fatalf("dept admin opens the calendar: %d", status)
		}
	})
}

func TestSignedAppRequests(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db, nil)
		apps := share.NewApps(db, e.log, e.keys)
		app, sec, err := apps.Register(context.Background(), e.users[policy.DeptAdmin].Actor(), share.AppInput{Name: "业务系统", Purpose: "核验", Contact: "张三"})
		if err != nil {
			t.Fatal(err)
		}
		call := func(a client.App, purpose string, replay *http.Request) (*http.Request, int, map[string]any) {
			req := replay
			if req == nil {
				req, _ = http.NewRequest("GET", e.srv.URL+"/api/v1/me?x=1", nil)
				if err := a.SignRequest(req, purpose); err != nil {
					t.Fatal(err)
				}
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var m map[string]any
			json.NewDecoder(resp.Body).Decode(&m)
			return req, resp.StatusCode, m
		}
		for _, method := range []string{client.HMACSHA256, client.HMACSM3} {
			_, status, m := call(client.App{Key: app.Key, Secret: sec, Method: method}, "身份核验", nil)
			if status != 200 || m["login"] != "app:"+app.Key || m["dept_id"] != float64(e.police.ID) {
				t.Fatalf("%s: %d %v", method, status, m)
			}
		}
		req, status, m := call(client.App{Key: app.Key, Secret: sec}, "身份核验", nil)
		if status != 200 {
			t.Fatalf("signed call: %d %v", status, m)
		}
		if _, status, m = call(client.App{}, "", req); status != 401 || m["code"] != "share.nonce_reused" {
			t.Fatalf("replay: %d %v", status, m)
		}
		if _, status, m = call(client.App{Key: app.Key, Secret: "wrong"}, "身份核验", nil); status != 401 || m["code"] != "share.signature_invalid" {
			t.Fatalf("wrong secret: %d %v", status, m)
		}
		if _, status, m = call(client.App{Key: app.Key, Secret: sec}, "", nil); status != 400 || m["code"] != "share.purpose_required" {
			t.Fatalf("no purpose: %d %v", status, m)
		}
		// The app acts as a consumer of its department: no administration.
		req, _ = http.NewRequest("POST", e.srv.URL+"/api/v1/departments", strings.NewReader(`{"name":"x","credit_code":"x","region_code":"350100"}`))
		req.Header.Set("Content-Type", "application/json")
		client.App{Key: app.Key, Secret: sec}.SignRequest(req, "测试")
		if _, status, _ = call(client.App{}, "", req); status != 403 {
			t.Fatalf("app creates a department: %d", status)
		}
		evs, _ := e.log.List(context.Background(), audit.Filter{Action: "app.auth_failed"})
		if len(evs) != 3 {
			t.Fatalf("%d app refusals audited", len(evs))
		}
		// What the app did is recorded as the app, with its purpose.
		evs, _ = e.log.List(context.Background(), audit.Filter{Action: "dept.create", Result: audit.ResultDenied})
		if len(evs) != 1 || evs[0].ActorType != audit.ActorApp || evs[0].ActorID != app.Key || evs[0].Purpose != "测试" {
			t.Fatalf("app action audited as %+v", evs)
		}
	})
}

func TestAppsPage(t *testing.T) {
	e := newEnv(t, storetest.OpenSQLite(t), nil)
	b := e.browser()
	b.login("dept.admin")
	status, page, _ := b.post("/apps", url.Values{"name": {"社救系统"}, "purpose": {""}, "contact": {"李四"}, "_csrf": {b.csrf("/apps")}})
	if status != 422 || !strings.Contains(page, "share.app_purpose_required") {
		t.Fatalf("missing purpose: %d", status)
	}
	status, page, _ = b.post("/apps", url.Values{"name": {"社救系统"}, "purpose": {"救助核验"}, "contact": {"李四"}, "allowed_addrs": {"10.1.0.0/16"}, "_csrf": {b.csrf("/apps")}})
	m := regexp.MustCompile(`id="token-value">([a-z2-7]+)<`).FindStringSubmatch(page)
	if status != 201 || m == nil {
		t.Fatalf("register: %d", status)
	}
	_, list, _ := b.get("/apps")
	if strings.Contains(list, m[1]) {
		t.Fatal("secret shown again")
	}
	c := e.browser()
	c.login("consumer")
	if status, _, _ := c.get("/apps"); status != 403 {
		t.Fatalf("consumer opens apps: %d", status)
	}
}
