package web_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"govshare/client"
	"govshare/internal/catalog"
	"govshare/internal/checkdigit"
	"govshare/internal/dataservice"
	"govshare/internal/identity"
	"govshare/internal/policy"
	"govshare/internal/resource"
	"govshare/internal/share"
	"govshare/internal/store"
	"govshare/internal/storetest"
)

// Rows of the authorization matrix for comparison jobs: A's people and
// apps compare with C's resource through the grant C gave A. A job is
// A's: platform administrators and auditors see it, not its result;
// nobody else learns it exists.
func init() {
	users := ownDept(policy.DeptAdmin, policy.Consumer, appRole)
	everyoneElse := anyDept(rolesAndApps...)
	jobReq := func(done bool) func(fx *authzFixture) authzReq {
		return func(fx *authzFixture) authzReq { return authzReq{params: map[string]any{"id": fx.verifyJob(done)}} }
	}
	authzRows = append(authzRows,
		authzRow{op: "POST /api/v1/verify/{resource}/jobs", status: 202, allow: users,
			req: func(fx *authzFixture) authzReq {
				return authzReq{params: map[string]any{"resource": escCode(fx.dataResource())}, query: "items=name",
					raw: []byte("no,name\nD1,王测\nD2,错\n"), ctype: "text/csv"}
			},
			check: func(t *testing.T, fx *authzFixture, c authzCaller, body []byte) {
				var j dataservice.VerifyJob
				if json.Unmarshal(body, &j) != nil || j.Total != 2 || j.ConsumerDeptID != fx.a.ID {
					t.Errorf("%s: the job: %s", c, body)
				}
			}},
		authzRow{op: "GET /api/v1/verify/jobs", status: 200, allow: anyDept(policy.PlatformAdmin, policy.Auditor, policy.DeptAdmin, policy.Consumer, appRole),
			req: func(fx *authzFixture) authzReq { fx.verifyJob(false); return authzReq{} },
			check: func(t *testing.T, fx *authzFixture, c authzCaller, body []byte) {
				// B's people and apps list B's jobs: none.
				if got, want := listHasID(t, body, fx.verifyJob(false)), c.dept == deptOwn || c.role == policy.PlatformAdmin || c.role == policy.Auditor; got != want {
					t.Errorf("%s lists A's job: %v, want %v", c, got, want)
				}
			}},
		authzRow{op: "GET /api/v1/verify/jobs/{id}", status: 200, allow: either(users, anyDept(policy.PlatformAdmin, policy.Auditor)),
			hidden: everyoneElse, req: jobReq(false)},
		authzRow{op: "GET /api/v1/verify/jobs/{id}/result", status: 200, allow: users,
			hidden: anyDept(policy.SecurityAdmin, policy.DeptReviewer, policy.DeptAdmin, policy.Consumer, appRole), req: jobReq(true),
			check: func(t *testing.T, fx *authzFixture, c authzCaller, body []byte) {
				if string(body) != "index,result,name\n0,match,match\n1,mismatch,mismatch\n2,not_found,\n" {
					t.Errorf("%s: the result: %q", c, body)
				}
			}},
	)
}

// authzJobs are the comparison jobs of each matrix fixture, made once.
var authzJobs sync.Map // *authzFixture → int64

// verifyJob is a comparison job of A's consumer on C's resource, made on
// first use; done waits until it has finished.
func (fx *authzFixture) verifyJob(done bool) int64 {
	fx.t.Helper()
	ctx := context.Background()
	c := dataservice.Caller{Actor: fx.actor(policy.Consumer, deptOwn), Purpose: "矩阵测试"}
	id, ok := authzJobs.Load(fx)
	if !ok {
		j, err := fx.e.data.CreateVerifyJob(ctx, c, fx.dataResource(), []string{"name"}, strings.NewReader("no,name\nD1,王测\nD2,错\nD9,无此人\n"))
		fx.must(err)
		authzJobs.Store(fx, j.ID)
		id = j.ID
	}
	for deadline := time.Now().Add(30 * time.Second); done; time.Sleep(20 * time.Millisecond) {
		j, err := fx.e.data.VerifyJob(ctx, c, id.(int64))
		fx.must(err)
		if j.State == dataservice.JobDone {
			break
		}
		if j.State == dataservice.JobFailed || time.Now().After(deadline) {
			fx.t.Fatalf("the matrix's job: %+v", j)
		}
	}
	return id.(int64)
}

// signedCSV sends a CSV body (or none) signed by app.
func signedCSV(t *testing.T, app client.App, method, u, body string) (*http.Response, []byte) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, _ := http.NewRequest(method, u, rd)
	if body != "" {
		req.Header.Set("Content-Type", "text/csv")
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

// tokenCSV sends a CSV body with a user's API token and a purpose.
func tokenCSV(t *testing.T, e *env, tok, purpose, method, u, body string) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, e.srv.URL+u, strings.NewReader(body))
	req.Header.Set("Content-Type", "text/csv")
	req.Header.Set("Authorization", "Bearer "+tok)
	if purpose != "" {
		req.Header.Set("X-Purpose", purpose)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

func TestVerifyJobsOverHTTP(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db, nil)
		ctx := context.Background()
		civil, toks := e.civil()
		en := e.publishEntryWith("人口信息", catalog.ShareUnconditional, catalog.MethodVerify)
		r, err := e.res.Mount(ctx, e.users[policy.DeptAdmin].Actor(), en.ID)
		if err != nil {
			t.Fatal(err)
		}
		var people strings.Builder
		people.WriteString("citizen_id,name\n")
		var ids, names []string
		for i := range 12 {
			ids = append(ids, checkdigit.SyntheticCitizenID("350102", time.Date(1980+i, 3, 4, 0, 0, 0, 0, time.UTC), i+1))
			names = append(names, []string{"王", "李", "张"}[i%3]+"测"+fmt.Sprint(i))
			fmt.Fprintf(&people, "%s,%s\n", ids[i], names[i])
		}
		rows, _ := resource.CSVRows(strings.NewReader(people.String()))
		if _, err := e.res.Submit(ctx, e.users[policy.DeptAdmin].Actor(), r.Code, resource.SubmitOptions{}, rows); err != nil {
			t.Fatal(err)
		}
		admin := identity.User{ID: 999, Login: "mzj.dept_admin", DeptID: civil.ID, Roles: []policy.Role{policy.DeptAdmin}}.Actor()
		app, sec, err := share.NewApps(db, e.log, e.keys).Register(ctx, admin, share.AppInput{Name: "救助系统", Purpose: "救助核验", Contact: "李四"})
		if err != nil {
			t.Fatal(err)
		}
		signer := client.App{Key: app.Key, Secret: sec}
		if _, err := e.shr.Apply(ctx, admin, en.ID, share.Terms{Items: []string{"citizen_id", "name"}, Purpose: "低保核验",
			Methods: []catalog.ShareMethod{catalog.MethodVerify}}); err != nil {
			t.Fatal(err)
		}
		jobs := e.srv.URL + "/api/v1/verify/" + url.PathEscape(r.Code) + "/jobs"

		// A signed app uploads three records: a match, a wrong name, nobody.
		upload := "citizen_id,name\n" + ids[0] + "," + names[0] + "\n" + ids[1] + ",错名\n" + "350102199001010000,无此人\n"
		resp, body := signedCSV(t, signer, "POST", jobs+"?items=name", upload)
		var j dataservice.VerifyJob
		if resp.StatusCode != 202 || json.Unmarshal(body, &j) != nil || j.Total != 3 || j.AppKey != app.Key || j.ConsumerDeptID != civil.ID {
			t.Fatalf("create: %d %s", resp.StatusCode, body)
		}
		for deadline := time.Now().Add(30 * time.Second); j.State != dataservice.JobDone; time.Sleep(50 * time.Millisecond) {
			resp, body = signedCSV(t, signer, "GET", e.srv.URL+fmt.Sprintf("/api/v1/verify/jobs/%d", j.ID), "")
			if resp.StatusCode != 200 || json.Unmarshal(body, &j) != nil || j.State == dataservice.JobFailed || time.Now().After(deadline) {
				t.Fatalf("job: %d %s", resp.StatusCode, body)
			}
		}
		if j.Matched != 1 || j.Mismatched != 1 || j.NotFound != 1 || j.Done != 3 {
			t.Fatalf("counts: %+v", j)
		}
		resp, body = signedCSV(t, signer, "GET", e.srv.URL+fmt.Sprintf("/api/v1/verify/jobs/%d/result", j.ID), "")
		recs, _ := csv.NewReader(bytes.NewReader(body)).ReadAll()
		if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/csv") || !strings.Contains(resp.Header.Get("Content-Disposition"), "verify-job-") ||
			len(recs) != 4 || strings.Join(recs[2], ",") != "1,mismatch,mismatch" || strings.Join(recs[3], ",") != "2,not_found," {
			t.Fatalf("result: %d %v %s", resp.StatusCode, resp.Header, body)
		}
		for _, n := range names {
			if bytes.Contains(body, []byte(n)) {
				t.Fatalf("the result holds a stored name: %s", body)
			}
		}

		// A person of the department: the upload is streamed; a row without
		// its key refuses it, naming the row and the item.
		bad := "citizen_id,name\n" + ids[2] + "," + names[2] + "\n," + names[3] + "\n"
		resp, body = tokenCSV(t, e, toks[policy.Consumer], "低保核验", "POST", "/api/v1/verify/"+url.PathEscape(r.Code)+"/jobs", bad)
		var p struct {
			Code  string `json:"code"`
			Field string `json:"field"`
			Row   int    `json:"row"`
		}
		if resp.StatusCode != 422 || json.Unmarshal(body, &p) != nil || p.Code != "data.verify_key_missing" || p.Row != 3 || p.Field != "citizen_id" {
			t.Fatalf("a row without its key: %d %s", resp.StatusCode, body)
		}
		if resp, body = tokenCSV(t, e, toks[policy.Consumer], "", "POST", "/api/v1/verify/"+url.PathEscape(r.Code)+"/jobs", upload); resp.StatusCode != 400 ||
			!strings.Contains(string(body), "data.purpose_required") {
			t.Fatalf("without a purpose: %d %s", resp.StatusCode, body)
		}
		// The department lists it; another department does not see it.
		status, list, err := e.apiList(policy.Consumer, "GET", "/api/v1/verify/jobs")
		if err != nil || status != 200 || len(list) != 0 {
			t.Fatalf("the police's list: %d %v %v", status, list, err)
		}
		if status, _, _ := e.api(policy.Consumer, "GET", fmt.Sprintf("/api/v1/verify/jobs/%d", j.ID), nil); status != 404 {
			t.Fatalf("another department's job: %d", status)
		}
		resp, body = tokenCSV(t, e, toks[policy.DeptAdmin], "", "GET", "/api/v1/verify/jobs", "")
		if resp.StatusCode != 200 || !strings.Contains(string(body), fmt.Sprintf(`"id":%d`, j.ID)) {
			t.Fatalf("own list: %d %s", resp.StatusCode, body)
		}

		// The page: the consumer uploads a file and downloads the result.
		b := e.browser()
		b.login("mzj.consumer")
		status, page, _ := b.get("/verify/jobs")
		if status != 200 || !strings.Contains(page, fmt.Sprintf(`id="job-%d"`, j.ID)) || !strings.Contains(page, `value="`+r.Code+`"`) {
			t.Fatalf("page: %d %s", status, page)
		}
		var form bytes.Buffer
		mw := multipart.NewWriter(&form)
		for k, v := range map[string]string{"_csrf": b.csrf("/verify/jobs"), "resource": r.Code, "items": "name", "purpose": "低保核验"} {
			_ = mw.WriteField(k, v)
		}
		fw, _ := mw.CreateFormFile("file", "people.csv")
		_, _ = io.WriteString(fw, "\ufeff"+upload)
		_ = mw.Close()
		presp, err := b.c.Post(e.srv.URL+"/verify/jobs", mw.FormDataContentType(), &form)
		if err != nil {
			t.Fatal(err)
		}
		presp.Body.Close()
		if loc := presp.Header.Get("Location"); presp.StatusCode != 303 || !strings.HasPrefix(loc, "/verify/jobs?ok=vj.created#job-") {
			t.Fatalf("page upload: %d %s", presp.StatusCode, loc)
		}
		id := strings.TrimPrefix(presp.Header.Get("Location"), "/verify/jobs?ok=vj.created#job-")
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			_, page, _ = b.get("/verify/jobs")
			if strings.Contains(page, `href="/verify/jobs/`+id+`/result"`) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the page's job never finished: %s", page)
			}
		}
		status, result, _ := b.get("/verify/jobs/" + id + "/result")
		if status != 200 || !strings.HasPrefix(result, "index,result,name\n0,match,match\n") {
			t.Fatalf("page result: %d %s", status, result)
		}
		// The police's data administrator gets no such page.
		police := e.browser()
		police.login("dept.admin")
		if status, _, _ := police.get("/verify/jobs/" + id + "/result"); status != 404 {
			t.Fatalf("another department's result page: %d", status)
		}
	})
}
