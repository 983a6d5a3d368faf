package web_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"strings"
	"testing"
	"time"

	"govshare/client"
	"govshare/internal/catalog"
	"govshare/internal/checkdigit"
	"govshare/internal/policy"
	"govshare/internal/resource"
	"govshare/internal/share"
	"govshare/internal/store"
	"govshare/internal/storetest"
)

// Rows of the authorization matrix for the resource store.
func init() {
	dataViewers := either(anyDept(policy.PlatformAdmin), ownDept(policy.DeptAdmin, policy.DeptReviewer, appRole))
	submitters := ownDept(policy.DeptAdmin, appRole)
	code := func(fx *authzFixture) map[string]any { return map[string]any{"code": escCode(fx.resource())} }
	codeReq := func(fx *authzFixture) authzReq { return authzReq{params: code(fx)} }
	authzRows = append(authzRows,
		authzRow{op: "POST /api/v1/catalog/entries/{id}/mount", status: 200, allow: either(anyDept(policy.PlatformAdmin), ownDept(policy.DeptAdmin)),
			req: idReq(func(fx *authzFixture) int64 { return fx.entry(catalog.Published).ID })},
		authzRow{op: "GET /api/v1/resources", status: 200, allow: anyDept(rolesAndApps...), req: noReq},
		authzRow{op: "GET /api/v1/resources/{code}", status: 200, allow: anyDept(rolesAndApps...), req: codeReq},
		authzRow{op: "GET /api/v1/resources/{code}/volume", status: 200, allow: anyDept(rolesAndApps...), req: codeReq},
		// Systems push (signed apps of the provider); people upload on the page.
		authzRow{op: "POST /api/v1/resources/{code}/batches", status: 201, allow: ownDept(appRole),
			req: func(fx *authzFixture) authzReq {
				return authzReq{params: code(fx), raw: fmt.Appendf(nil, "no\nM%d\n", fx.next()), ctype: "text/csv"}
			}},
		authzRow{op: "GET /api/v1/resources/{code}/batches", status: 200, allow: dataViewers, req: codeReq},
		authzRow{op: "GET /api/v1/resources/{code}/batches/{id}", status: 200, allow: dataViewers,
			req: func(fx *authzFixture) authzReq {
				p := code(fx)
				p["id"] = fx.batch("no\nB1\n").ID
				return authzReq{params: p}
			}},
		authzRow{op: "GET /api/v1/resources/{code}/quarantine", status: 200, allow: dataViewers, req: codeReq},
		authzRow{op: "POST /api/v1/resources/{code}/quarantine/{id}/resubmit", status: 200, allow: submitters,
			req: func(fx *authzFixture) authzReq {
				p := code(fx)
				p["id"] = fx.quarantined()
				return authzReq{params: p, body: map[string]any{"values": []string{fmt.Sprintf("Q%d", fx.next())}}}
			}},
		authzRow{op: "POST /api/v1/resources/{code}/quarantine/{id}/discard", status: 204, allow: submitters,
			req: func(fx *authzFixture) authzReq {
				p := code(fx)
				p["id"] = fx.quarantined()
				return authzReq{params: p, body: map[string]any{"reason": "重复记录"}}
			}},
		authzRow{op: "GET /api/v1/resources/{code}/history", status: 200, allow: dataViewers,
			req: func(fx *authzFixture) authzReq { return authzReq{params: code(fx), query: "key=B1"} }},
		// Previews are for people of government departments, never apps.
		authzRow{op: "GET /api/v1/resources/{code}/preview", status: 200, allow: anyDept(policy.AllRoles...), req: codeReq},
		authzRow{op: "POST /api/v1/resources/{code}/zero-reports", status: 201, allow: submitters,
			req: func(fx *authzFixture) authzReq {
				return authzReq{params: code(fx), body: map[string]any{"note": "无变化"}}
			}},
	)
}

func escCode(code string) string { return strings.ReplaceAll(code, "/", "%2F") }

// resource mounts A's published entry on first use and returns its code.
func (fx *authzFixture) resource() string {
	fx.t.Helper()
	if fx.resourceCode == "" {
		r, err := fx.e.res.Mount(context.Background(), fx.actor(policy.DeptAdmin, deptOwn), fx.published.ID)
		fx.must(err)
		fx.resourceCode = r.Code
	}
	return fx.resourceCode
}

// batch submits CSV to A's resource as its data administrator.
func (fx *authzFixture) batch(csv string) resource.Batch {
	fx.t.Helper()
	rows, err := resource.CSVRows(strings.NewReader(csv))
	fx.must(err)
	b, err := fx.e.res.Submit(context.Background(), fx.actor(policy.DeptAdmin, deptOwn), fx.resource(), resource.SubmitOptions{MaxErrors: -1}, rows)
	fx.must(err)
	return b
}

// quarantined puts a fresh record of A's resource in the quarantine (its
// key is longer than the item allows) and returns its id.
func (fx *authzFixture) quarantined() int64 {
	fx.t.Helper()
	b := fx.batch(fmt.Sprintf("no\n%s%d\n", strings.Repeat("长", 21), fx.next()))
	q, err := fx.e.res.Quarantine(context.Background(), fx.actor(policy.DeptAdmin, deptOwn), fx.resource(), "", 1000)
	fx.must(err)
	for _, x := range q {
		if x.BatchID == b.ID {
			return x.ID
		}
	}
	fx.t.Fatalf("batch %d quarantined nothing", b.ID)
	return 0
}

func TestResourceThroughTheAPIAndPages(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db, nil)
		en := e.publishEntry("户籍信息", catalog.ShareConditional)
		status, m, _ := e.api(policy.DeptAdmin, "POST", fmt.Sprintf("/api/v1/catalog/entries/%d/mount", en.ID), nil)
		if status != 200 || m["table"] == nil {
			t.Fatalf("mount: %d %v", status, m)
		}
		code := escCode(en.Code)
		// The provider's app pushes JSON lines; the same batch id is applied once.
		app, sec, err := share.NewApps(db, e.log, e.keys).Register(context.Background(), e.users[policy.DeptAdmin].Actor(), share.AppInput{Name: "户籍系统", Purpose: "数据推送", Contact: "张三"})
		if err != nil {
			t.Fatal(err)
		}
		push := func(body, batchID string) (int, map[string]any) {
			req, _ := http.NewRequest("POST", e.srv.URL+"/api/v1/resources/"+code+"/batches?batch_id="+batchID, strings.NewReader(body))
			req.Header.Set("Content-Type", "application/x-ndjson")
			if err := (client.App{Key: app.Key, Secret: sec}).SignRequest(req, "数据归集"); err != nil {
				t.Fatal(err)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var out map[string]any
			json.NewDecoder(resp.Body).Decode(&out)
			return resp.StatusCode, out
		}
		a := checkdigit.SyntheticCitizenID("350102", time.Date(1980, 1, 2, 0, 0, 0, 0, time.UTC), 7)
		body := fmt.Sprintf(`{"citizen_id":"%s","name":"张三"}`+"\n"+`{"citizen_id":"1234567890123456789X","name":"李四"}`+"\n", a)
		status, m = push(body, "p-1")
		if status != 201 || m["inserted"] != float64(1) || m["quarantined"] != float64(1) {
			t.Fatalf("push: %d %v", status, m)
		}
		if status, m = push(body, "p-1"); status != 200 || m["replayed"] != true {
			t.Fatalf("push again: %d %v", status, m)
		}
		// The masked preview on the entry page, for a user.
		b := e.browser()
		b.login("consumer")
		_, page, _ := b.get(fmt.Sprintf("/catalog/%d", en.ID))
		if !strings.Contains(page, `id="preview-table"`) || strings.Contains(page, a) || !strings.Contains(page, a[:6]+"********"+a[14:]) {
			t.Fatalf("entry page preview missing or unmasked")
		}
		// The data administrator uploads a CSV through the page.
		adm := e.browser()
		adm.login("dept.admin")
		tok := adm.csrf("/resources/" + code)
		var buf strings.Builder
		mw := multipart.NewWriter(&buf)
		mw.WriteField("_csrf", tok)
		fw, _ := mw.CreateFormFile("file", "people.csv")
		fw.Write([]byte("公民身份号码(citizen_id),姓名(name)\n" + checkdigit.SyntheticCitizenID("350102", time.Date(1990, 1, 2, 0, 0, 0, 0, time.UTC), 9) + ",王五\n"))
		mw.Close()
		req, _ := http.NewRequest("POST", e.srv.URL+"/resources/"+code+"/upload", strings.NewReader(buf.String()))
		req.Header.Set("Content-Type", mw.FormDataContentType())
		resp, err := adm.c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		html, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 201 || !strings.Contains(string(html), `id="batch-result" data-state="applied"`) {
			t.Fatalf("upload: %d %s", resp.StatusCode, html)
		}
		if _, page, _ = adm.get("/resources/" + code); !strings.Contains(page, `id="record-count">2<`) || !strings.Contains(page, `class="quarantined"`) {
			t.Fatalf("resource page after the upload")
		}
		// A consumer cannot open the management page.
		if status, _, _ := b.get("/resources/" + code); status != 403 {
			t.Fatalf("consumer opened the management page: %d", status)
		}
	})
}
