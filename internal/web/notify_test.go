package web_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"govshare/internal/audit"
	"govshare/internal/notify"
	"govshare/internal/policy"
	"govshare/internal/store"
	"govshare/internal/storetest"
	"govshare/internal/web"
)

// notifier is the notification service behind the test server.
func (e *env) notifier() *notify.Service {
	e.t.Helper()
	srv, ok := e.srv.Config.Handler.(*web.Server)
	if !ok || srv.Notify == nil {
		e.t.Fatal("the test server has no notification service")
	}
	return srv.Notify
}

// apiRaw calls the JSON API like api, for answers that are lists.
func (e *env) apiRaw(role policy.Role, method, path string, body any) (int, []byte) {
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
	req.Header.Set("Authorization", "Bearer "+e.tokens[role])
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, raw
}

// noInlineCode fails when a page carries what the CSP would block.
func noInlineCode(t *testing.T, name, body string) {
	t.Helper()
	if strings.Contains(body, " style=") || regexp.MustCompile(`<script>|<script [^>]*>[^<]`).MatchString(body) || strings.Contains(body, " onclick=") {
		t.Errorf("%s has inline style or script", name)
	}
}

func TestNotificationsPageAndAPI(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db, nil)
		ctx := context.Background()
		n := e.notifier()
		send := func(obj string) {
			t.Helper()
			if err := n.Send(ctx, notify.Notice{Kind: "application.submitted", DeptID: e.police.ID, Roles: []policy.Role{policy.DeptAdmin},
				TitleZH: "新的共享申请 " + obj, TitleEN: "New sharing application " + obj, Href: "/catalog", ObjectType: "application", ObjectID: obj}); err != nil {
				t.Fatal(err)
			}
		}
		send("12")

		status, raw := e.apiRaw(policy.Consumer, "GET", "/api/v1/notifications", nil)
		if status != 200 || strings.TrimSpace(string(raw)) != "[]" {
			t.Fatalf("consumer's notifications: %d %s", status, raw)
		}
		status, raw = e.apiRaw(policy.DeptAdmin, "GET", "/api/v1/notifications?unread=true", nil)
		var list []notify.Notification
		if err := json.Unmarshal(raw, &list); status != 200 || err != nil || len(list) != 1 || list[0].TitleZH != "新的共享申请 12" || list[0].Href != "/catalog" {
			t.Fatalf("dept admin's notifications: %d %s", status, raw)
		}
		id := list[0].ID
		readPath := fmt.Sprintf("/api/v1/notifications/%d/read", id)
		if status, m, _ := e.api(policy.Consumer, "POST", readPath, nil); status != 404 || m["code"] != "not_found" {
			t.Fatalf("another user marks it read: %d %v", status, m)
		}
		if status, m, _ := e.api(policy.DeptAdmin, "POST", readPath, nil); status != 204 {
			t.Fatalf("mark read: %d %v", status, m)
		}
		if _, raw = e.apiRaw(policy.DeptAdmin, "GET", "/api/v1/notifications?unread=true", nil); strings.TrimSpace(string(raw)) != "[]" {
			t.Fatalf("still unread: %s", raw)
		}
		send("13")
		if status, _, _ := e.api(policy.DeptAdmin, "POST", "/api/v1/notifications/read-all", nil); status != 204 {
			t.Fatalf("read all: %d", status)
		}
		if c, _ := n.UnreadCount(ctx, e.users[policy.DeptAdmin].Actor()); c != 0 {
			t.Fatalf("unread after read-all: %d", c)
		}

		// The page: unread count in the navigation, reading opens the page.
		send("14")
		b := e.browser()
		b.login("dept.admin")
		_, home, _ := b.get("/home")
		if !strings.Contains(home, `href="/notifications"`) || !strings.Contains(home, `id="notify-count">1<`) || !strings.Contains(home, `href="/webhooks"`) {
			t.Fatal("navigation lacks the notifications with their count, or the webhooks")
		}
		status, page, _ := b.get("/notifications")
		if status != 200 || !strings.Contains(page, "新的共享申请 14") || !strings.Contains(page, `data-kind="application.submitted"`) || !strings.Contains(page, `class="unread"`) {
			t.Fatalf("notifications page: %d", status)
		}
		noInlineCode(t, "/notifications", page)
		ns, _ := n.List(ctx, e.users[policy.DeptAdmin].Actor(), true, 0)
		if len(ns) != 1 {
			t.Fatalf("unread: %+v", ns)
		}
		path := fmt.Sprintf("/notifications/%d/read", ns[0].ID)
		if status, _, _ := b.post(path, url.Values{"next": {"/catalog"}}); status != 403 {
			t.Fatalf("mark read without csrf: %d", status)
		}
		token := b.csrf("/notifications")
		// next stays on this site.
		if status, _, loc := b.post(path, url.Values{"next": {"//evil.example/"}, "_csrf": {token}}); status != 303 || loc != "/home" {
			t.Fatalf("mark read with a foreign next: %d %s", status, loc)
		}
		send("15")
		ns, _ = n.List(ctx, e.users[policy.DeptAdmin].Actor(), true, 0)
		if status, _, loc := b.post(fmt.Sprintf("/notifications/%d/read", ns[0].ID), url.Values{"next": {"/catalog"}, "_csrf": {token}}); status != 303 || loc != "/catalog" {
			t.Fatalf("open: %d %s", status, loc)
		}
		send("16")
		if status, _, loc := b.post("/notifications/read-all", url.Values{"_csrf": {token}}); status != 303 || loc != "/notifications?ok=notify.all_read" {
			t.Fatalf("read all: %d %s", status, loc)
		}
		_, page, _ = b.get("/notifications?ok=notify.all_read")
		if strings.Contains(page, `class="unread"`) || !strings.Contains(page, "已全部标为已读") {
			t.Fatal("unread rows after reading all")
		}
		// Someone else's notification is not found from the page either.
		c := e.browser()
		c.login("consumer")
		if status, _, _ := c.post(path, url.Values{"_csrf": {c.csrf("/notifications")}}); status != 404 {
			t.Fatalf("consumer marks the dept admin's notification: %d", status)
		}
		if _, home, _ := c.get("/home"); strings.Contains(home, `href="/webhooks"`) {
			t.Fatal("consumer navigation links to webhooks")
		}
	})
}

func TestWebhookPagesAndAPI(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db, nil)
		ctx := context.Background()

		status, m, _ := e.api(policy.DeptAdmin, "POST", "/api/v1/webhooks", map[string]any{"url": "oa.internal/hook"})
		if status != 422 || m["code"] != "notify.webhook_url_invalid" || m["field"] != "url" || m["message_zh"] == "" {
			t.Fatalf("bad URL: %d %v", status, m)
		}
		status, m, _ = e.api(policy.DeptAdmin, "POST", "/api/v1/webhooks", map[string]any{"url": "https://oa.police.internal/hooks", "events": []string{"application.*"}})
		hook, _ := m["webhook"].(map[string]any)
		sec, _ := m["secret"].(string)
		if status != 201 || !strings.HasPrefix(sec, "whsec_") || hook["dept_id"] != float64(e.police.ID) {
			t.Fatalf("register: %d %v", status, m)
		}
		hookID := int64(hook["id"].(float64))
		for _, role := range []policy.Role{policy.Consumer, policy.Auditor, policy.SecurityAdmin, policy.DeptReviewer} {
			if status, m, _ := e.api(role, "GET", "/api/v1/webhooks", nil); status != 403 || m["code"] != "auth.denied" {
				t.Errorf("%s lists webhooks: %d %v", role, status, m)
			}
		}
		// The department administrator keeps to their own department; the
		// platform administrator reaches every one.
		if status, m, _ := e.api(policy.DeptAdmin, "GET", fmt.Sprintf("/api/v1/webhooks?dept_id=%d", e.city.ID), nil); status != 403 {
			t.Fatalf("dept admin lists another department's webhooks: %d %v", status, m)
		}
		status, raw := e.apiRaw(policy.PlatformAdmin, "GET", fmt.Sprintf("/api/v1/webhooks?dept_id=%d", e.police.ID), nil)
		if status != 200 || !strings.Contains(string(raw), "https://oa.police.internal/hooks") {
			t.Fatalf("platform admin lists: %d %s", status, raw)
		}
		if evs, _ := e.log.List(ctx, audit.Filter{Action: "webhook.manage", Result: audit.ResultDenied}); len(evs) != 5 {
			t.Fatalf("%d refusals audited, want 5", len(evs))
		}

		// A notice to the department queues a delivery: the log shows it,
		// the department may send it again.
		if err := e.notifier().Send(ctx, notify.Notice{Kind: "application.submitted", DeptID: e.police.ID, TitleZH: "新的共享申请", ObjectType: "application", ObjectID: "12"}); err != nil {
			t.Fatal(err)
		}
		deliveries := fmt.Sprintf("/api/v1/webhooks/%d/deliveries", hookID)
		status, raw = e.apiRaw(policy.DeptAdmin, "GET", deliveries, nil)
		var ds []notify.Delivery
		if err := json.Unmarshal(raw, &ds); status != 200 || err != nil || len(ds) != 1 || ds[0].Status != notify.Pending || !strings.Contains(string(ds[0].Payload), `"object_id":"12"`) {
			t.Fatalf("deliveries: %d %s", status, raw)
		}
		if status, _ := e.apiRaw(policy.Consumer, "GET", deliveries, nil); status != 403 {
			t.Fatalf("consumer reads the delivery log: %d", status)
		}
		redeliver := fmt.Sprintf("/api/v1/webhook-deliveries/%d/redeliver", ds[0].ID)
		if status, m, _ := e.api(policy.DeptAdmin, "POST", redeliver, nil); status != 200 || m["status"] != "pending" {
			t.Fatalf("redeliver: %d %v", status, m)
		}
		status, m, _ = e.api(policy.DeptAdmin, "POST", fmt.Sprintf("/api/v1/webhooks/%d/rotate", hookID), nil)
		if status != 200 || m["secret"] == sec || !strings.HasPrefix(fmt.Sprint(m["secret"]), "whsec_") {
			t.Fatalf("rotate: %d %v", status, m)
		}
		if status, _, _ := e.api(policy.DeptAdmin, "POST", fmt.Sprintf("/api/v1/webhooks/%d/disable", hookID), nil); status != 204 {
			t.Fatalf("disable: %d", status)
		}
		if status, m, _ := e.api(policy.DeptAdmin, "POST", redeliver, nil); status != 409 || m["code"] != "notify.webhook_disabled" {
			t.Fatalf("redeliver to a disabled webhook: %d %v", status, m)
		}

		// The pages.
		b := e.browser()
		b.login("dept.admin")
		status, page, _ := b.get("/webhooks")
		if status != 200 || !strings.Contains(page, "https://oa.police.internal/hooks") || !strings.Contains(page, `id="webhook-form"`) {
			t.Fatalf("webhooks page: %d", status)
		}
		noInlineCode(t, "/webhooks", page)
		token := b.csrf("/webhooks")
		status, page, _ = b.post("/webhooks", url.Values{"url": {"ftp://oa.police.internal/"}, "events": {"application.*"}, "_csrf": {token}})
		if status != 422 || !strings.Contains(page, `data-code="notify.webhook_url_invalid"`) || !strings.Contains(page, `value="application.*"`) {
			t.Fatalf("bad URL on the page: %d", status)
		}
		status, page, _ = b.post("/webhooks", url.Values{"url": {"http://oa.police.internal/v2"}, "events": {"application.*, reminder.*"}, "_csrf": {token}})
		secretRE := regexp.MustCompile(`id="token-value">(whsec_[0-9a-f]+)<`)
		if status != 201 || secretRE.FindStringSubmatch(page) == nil || !strings.Contains(page, "application.*, reminder.*") {
			t.Fatalf("register on the page: %d", status)
		}
		hooks, _ := e.notifier().Webhooks(ctx, e.users[policy.DeptAdmin].Actor(), e.police.ID)
		second := hooks[0]
		status, page, _ = b.get(fmt.Sprintf("/webhooks/%d", hookID))
		if status != 200 || !strings.Contains(page, `id="delivery-table"`) || !strings.Contains(page, `data-status="failed"`) || !strings.Contains(page, "webhook disabled") || strings.Contains(page, "/redeliver") {
			t.Fatalf("delivery log page: %d", status)
		}
		noInlineCode(t, "/webhooks/{id}", page)
		status, page, _ = b.post(fmt.Sprintf("/webhooks/%d/rotate", second.ID), url.Values{"_csrf": {token}})
		if status != 200 || secretRE.FindStringSubmatch(page) == nil {
			t.Fatalf("rotate on the page: %d", status)
		}
		if status, _, loc := b.post(fmt.Sprintf("/webhooks/%d/disable", second.ID), url.Values{"_csrf": {token}}); status != 303 || loc != fmt.Sprintf("/webhooks/%d?ok=webhook.disabled", second.ID) {
			t.Fatalf("disable on the page: %d %s", status, loc)
		}
		if status, _, _ := b.post(fmt.Sprintf("/webhooks/%d/explode", second.ID), url.Values{"_csrf": {token}}); status != 404 {
			t.Fatalf("unknown operation: %d", status)
		}
		if status, _, _ := b.get(fmt.Sprintf("/webhooks?dept=%d", e.city.ID)); status != 403 {
			t.Fatalf("another department's webhooks page: %d", status)
		}

		c := e.browser()
		c.login("consumer")
		for _, p := range []string{"/webhooks", fmt.Sprintf("/webhooks/%d", hookID)} {
			if status, _, _ := c.get(p); status != 403 {
				t.Errorf("consumer GET %s: %d", p, status)
			}
		}
		if status, _, _ := c.post(fmt.Sprintf("/webhook-deliveries/%d/redeliver", ds[0].ID), url.Values{"_csrf": {c.csrf("/home")}}); status != 403 {
			t.Errorf("consumer redelivers: %d", status)
		}

		p := e.browser()
		p.login("platform.admin")
		status, page, _ = p.get(fmt.Sprintf("/webhooks?dept=%d", e.police.ID))
		if status != 200 || !strings.Contains(page, `id="webhook-dept"`) || !strings.Contains(page, "http://oa.police.internal/v2") {
			t.Fatalf("platform admin's webhooks page: %d", status)
		}
	})
}

// The authorization matrix's rows for notifications and webhooks: every
// notification belongs to one user (here the target, who calls nothing),
// so everyone else is told it does not exist; webhooks are managed by
// their department's data administrator and the platform administrator.
func init() {
	webhookManagers := either(anyDept(policy.PlatformAdmin), ownDept(policy.DeptAdmin))
	hookReq := func(fx *authzFixture) authzReq { return authzReq{params: map[string]any{"id": fx.webhook()}} }
	authzRows = append(authzRows,
		authzRow{op: "GET /api/v1/notifications", status: 200, allow: anyDept(rolesAndApps...), req: noReq},
		authzRow{op: "POST /api/v1/notifications/{id}/read", status: 204, hidden: anyDept(rolesAndApps...),
			req: func(fx *authzFixture) authzReq { return authzReq{params: map[string]any{"id": fx.notification()}} }},
		authzRow{op: "POST /api/v1/notifications/read-all", status: 204, allow: anyDept(rolesAndApps...), req: noReq},
		authzRow{op: "GET /api/v1/webhooks", status: 200, allow: webhookManagers,
			req: func(fx *authzFixture) authzReq { return authzReq{query: fmt.Sprintf("dept_id=%d", fx.a.ID)} }},
		authzRow{op: "POST /api/v1/webhooks", status: 201, allow: webhookManagers,
			req: func(fx *authzFixture) authzReq {
				return authzReq{body: notify.WebhookInput{DeptID: fx.a.ID, URL: "https://oa.example.gov.cn/hooks"}}
			}},
		authzRow{op: "POST /api/v1/webhooks/{id}/disable", status: 204, allow: webhookManagers, req: hookReq},
		authzRow{op: "POST /api/v1/webhooks/{id}/rotate", status: 200, allow: webhookManagers, req: hookReq},
		authzRow{op: "GET /api/v1/webhooks/{id}/deliveries", status: 200, allow: webhookManagers, req: hookReq},
		authzRow{op: "POST /api/v1/webhook-deliveries/{id}/redeliver", status: 200, allow: webhookManagers,
			req: func(fx *authzFixture) authzReq { return authzReq{params: map[string]any{"id": fx.delivery()}} }},
	)
}

// notification sends the target user a fresh notification and returns its id.
func (fx *authzFixture) notification() int64 {
	fx.t.Helper()
	ctx := context.Background()
	n := fx.e.notifier()
	fx.must(n.Send(ctx, notify.Notice{Kind: "matrix.test", TitleZH: "矩阵测试", UserIDs: []int64{fx.target.ID}}))
	ns, err := n.List(ctx, fx.target.Actor(), true, 1)
	fx.must(err)
	return ns[0].ID
}

// webhook registers a fresh webhook of A and returns its id.
func (fx *authzFixture) webhook() int64 {
	fx.t.Helper()
	w, _, err := fx.e.notifier().RegisterWebhook(context.Background(), fx.actor(policy.DeptAdmin, deptOwn),
		notify.WebhookInput{URL: fmt.Sprintf("https://oa.example.gov.cn/hooks/%d", fx.next())})
	fx.must(err)
	return w.ID
}

// delivery queues a fresh delivery to a webhook of A and returns its id.
func (fx *authzFixture) delivery() int64 {
	fx.t.Helper()
	ctx := context.Background()
	n := fx.e.notifier()
	hook := fx.webhook()
	fx.must(n.Send(ctx, notify.Notice{Kind: "matrix.test", TitleZH: "矩阵测试", DeptID: fx.a.ID}))
	ds, err := n.Deliveries(ctx, fx.actor(policy.PlatformAdmin, deptOwn), hook, 1)
	fx.must(err)
	return ds[0].ID
}
