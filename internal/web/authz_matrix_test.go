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
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"govshare/client"
	"govshare/internal/audit"
	"govshare/internal/catalog"
	"govshare/internal/identity"
	"govshare/internal/policy"
	"govshare/internal/share"
	"govshare/internal/store"
	"govshare/internal/storetest"
	"govshare/internal/web"
)

// The authorization matrix: every /api/v1 operation, called by every role
// of the department that owns the object ("own", department A) and of
// another department ("other", B), by each department's app and by an
// anonymous caller, answers as policy.go says. Sharing involves two
// departments, so a third one, C, is the other side of A's applications
// and grants and B stays a stranger to them. A new operation without a
// row in authzRows fails TestAuthzMatrixCoversEveryOperation.

// appRole stands for a department's app in the grants of a row. The server
// lets an app act as a consumer of its department; the rows say so
// explicitly, so that a route that must not serve apps can say that too.
const appRole policy.Role = "app"

// Departments of a caller: A owns every object the rows act on.
const (
	deptOwn   = "own"
	deptOther = "other"
)

type authzCaller struct {
	role policy.Role // appRole for an app, "" for anonymous
	dept string      // deptOwn or deptOther; "" for anonymous
}

func (c authzCaller) String() string {
	if c.role == "" {
		return "anonymous"
	}
	return string(c.role) + "@" + c.dept
}

// authzGrant lets a role in, from the listed departments.
type authzGrant struct {
	role  policy.Role
	depts []string
}

func authzGrants(depts []string, roles []policy.Role) []authzGrant {
	var out []authzGrant
	for _, r := range roles {
		out = append(out, authzGrant{role: r, depts: depts})
	}
	return out
}

// anyDept: the roles, from the own department and from another one.
func anyDept(roles ...policy.Role) []authzGrant {
	return authzGrants([]string{deptOwn, deptOther}, roles)
}

// ownDept: the roles, from the department that owns the object only.
func ownDept(roles ...policy.Role) []authzGrant { return authzGrants([]string{deptOwn}, roles) }

// otherDept: the roles, from another department only.
func otherDept(roles ...policy.Role) []authzGrant { return authzGrants([]string{deptOther}, roles) }

// rolesAndApps is every role and the apps.
var rolesAndApps = append(slices.Clone(policy.AllRoles), appRole)

func either(gs ...[]authzGrant) []authzGrant { return slices.Concat(gs...) }

func admits(gs []authzGrant, c authzCaller) bool {
	for _, g := range gs {
		if g.role == c.role && slices.Contains(g.depts, c.dept) {
			return true
		}
	}
	return false
}

// authzReq is one call of a row: the path parameters of its template, a
// query, and a JSON body (or a raw body with its content type).
type authzReq struct {
	params map[string]any
	query  string
	body   any
	raw    []byte
	ctype  string
}

// authzRow is one operation of the matrix.
type authzRow struct {
	op     string // METHOD and OpenAPI path template
	status int    // the answer to an allowed caller
	allow  []authzGrant
	// public operations answer status to anyone, even without credentials:
	// their credential is in the request (an enrolment code).
	public bool
	// hidden callers get 404: the API does not admit the object exists.
	// Everyone else with credentials gets 403; anonymous callers get 401.
	hidden []authzGrant
	// req builds the call; it may make a fresh object per call so that
	// every caller meets the same starting state.
	req func(fx *authzFixture) authzReq
	// check, when set, looks further at an allowed caller's answer.
	check func(t *testing.T, fx *authzFixture, c authzCaller, body []byte)
	// mismatch names callers ("app@other") for whom the API's answer
	// contradicts policy.go: a reported bug awaiting a decision, not a
	// rule. The call is skipped while the API still gives that answer and
	// fails once it answers otherwise, so that the decided rule is written
	// into allow.
	mismatch map[string]knownMismatch
}

// knownMismatch is the answer the API gives against policy.go, and why
// that is wrong.
type knownMismatch struct {
	answers int
	note    string
}

func (r authzRow) want(c authzCaller) int {
	switch {
	case r.public:
		return r.status
	case c.role == "":
		return http.StatusUnauthorized
	case admits(r.allow, c):
		return r.status
	case admits(r.hidden, c):
		return http.StatusNotFound
	}
	return http.StatusForbidden
}

func noReq(*authzFixture) authzReq { return authzReq{} }

func idReq(id func(fx *authzFixture) int64) func(fx *authzFixture) authzReq {
	return func(fx *authzFixture) authzReq { return authzReq{params: map[string]any{"id": id(fx)}} }
}

// Who may see department A's unpublished entries (policy.CatalogViewDraft).
var draftViewers = either(anyDept(policy.PlatformAdmin), ownDept(policy.DeptAdmin, policy.DeptReviewer))

// Who may see department A's users (policy.UserView).
var userViewers = either(anyDept(policy.PlatformAdmin, policy.SecurityAdmin), ownDept(policy.DeptAdmin))

var authzRows = []authzRow{
	// ----- identity -----
	{op: "GET /api/v1/me", status: 200, allow: anyDept(rolesAndApps...), req: noReq},
	{op: "GET /api/v1/departments", status: 200, allow: anyDept(rolesAndApps...), req: noReq},
	{op: "POST /api/v1/departments", status: 201, allow: anyDept(policy.PlatformAdmin),
		req: func(fx *authzFixture) authzReq {
			return authzReq{body: identity.DepartmentInput{ParentID: fx.e.city.ID, Name: fmt.Sprintf("新部门%d", fx.next()),
				CreditCode: identity.SyntheticCreditCode("350100", 1000+fx.next()), RegionCode: "350100"}}
		}},
	{op: "GET /api/v1/departments/{id}", status: 200, allow: anyDept(rolesAndApps...), req: idReq(func(fx *authzFixture) int64 { return fx.a.ID })},
	{op: "PUT /api/v1/departments/{id}", status: 200, allow: anyDept(policy.PlatformAdmin),
		req: func(fx *authzFixture) authzReq {
			return authzReq{params: map[string]any{"id": fx.a.ID},
				body: identity.DepartmentInput{ParentID: fx.e.city.ID, Name: fx.a.Name, CreditCode: fx.a.CreditCode, RegionCode: "350100", Status: "active"}}
		}},
	// Every department's data administrator may list users: their own.
	{op: "GET /api/v1/users", status: 200, allow: anyDept(policy.PlatformAdmin, policy.SecurityAdmin, policy.DeptAdmin),
		req: func(fx *authzFixture) authzReq { return authzReq{query: fmt.Sprintf("dept_id=%d", fx.a.ID)} },
		check: func(t *testing.T, fx *authzFixture, c authzCaller, body []byte) {
			// A department's data administrator lists their own department only.
			if got, want := listHasID(t, body, fx.target.ID), admits(userViewers, c); got != want {
				t.Errorf("%s lists users of department A: %v, want %v", c, got, want)
			}
		}},
	{op: "POST /api/v1/users", status: 201, allow: either(anyDept(policy.PlatformAdmin), ownDept(policy.DeptAdmin)),
		req: func(fx *authzFixture) authzReq {
			return authzReq{body: identity.UserInput{Login: fmt.Sprintf("new.user%d", fx.next()), Name: "新用户", DeptID: fx.a.ID,
				Roles: []policy.Role{policy.Consumer}, Password: pw}}
		}},
	{op: "GET /api/v1/users/{id}", status: 200, allow: userViewers, req: idReq(func(fx *authzFixture) int64 { return fx.target.ID })},
	{op: "PUT /api/v1/users/{id}", status: 200, allow: either(anyDept(policy.PlatformAdmin), ownDept(policy.DeptAdmin)),
		req: func(fx *authzFixture) authzReq {
			return authzReq{params: map[string]any{"id": fx.target.ID},
				body: identity.UserUpdate{Name: fx.target.Name, DeptID: fx.a.ID, Roles: []policy.Role{policy.Consumer}, Status: identity.StatusActive}}
		}},
	{op: "POST /api/v1/users/{id}/password-reset", status: 204, allow: either(anyDept(policy.PlatformAdmin, policy.SecurityAdmin), ownDept(policy.DeptAdmin)),
		req: func(fx *authzFixture) authzReq {
			return authzReq{params: map[string]any{"id": fx.target.ID}, body: map[string]string{"password": "Reset#Pass2026"}}
		}},
	{op: "POST /api/v1/users/{id}/unlock", status: 204, allow: anyDept(policy.PlatformAdmin, policy.SecurityAdmin),
		req: idReq(func(fx *authzFixture) int64 { return fx.target.ID })},
	{op: "POST /api/v1/users/{id}/totp-reset", status: 204, allow: anyDept(policy.SecurityAdmin),
		req: idReq(func(fx *authzFixture) int64 { return fx.target.ID })},
	{op: "POST /api/v1/users/{id}/sessions-revoke", status: 204, allow: anyDept(policy.SecurityAdmin),
		req: idReq(func(fx *authzFixture) int64 { return fx.target.ID })},
	{op: "GET /api/v1/tokens", status: 200, allow: anyDept(rolesAndApps...), req: noReq},
	// Tokens, ratings and demands are a person's: apps are refused (policy.peopleOnly).
	{op: "POST /api/v1/tokens", status: 201, allow: anyDept(policy.AllRoles...),
		req: func(*authzFixture) authzReq {
			return authzReq{body: map[string]any{"name": "矩阵测试", "expires_in_days": 1}}
		}},
	// Owners revoke their own tokens; the token here belongs to another user of A.
	{op: "DELETE /api/v1/tokens/{id}", status: 204, allow: anyDept(policy.SecurityAdmin), req: idReq((*authzFixture).token)},

	// ----- audit -----
	{op: "GET /api/v1/audit/events", status: 200, allow: anyDept(policy.Auditor), req: noReq},
	{op: "GET /api/v1/audit/events.csv", status: 200, allow: anyDept(policy.Auditor), req: noReq},
	{op: "POST /api/v1/audit/verify", status: 200, allow: anyDept(policy.Auditor), req: noReq},

	// ----- classifications -----
	{op: "GET /api/v1/classifications", status: 200, allow: anyDept(rolesAndApps...), req: noReq},
	{op: "PUT /api/v1/classifications/{code}", status: 200, allow: anyDept(policy.PlatformAdmin),
		req: func(*authzFixture) authzReq {
			return authzReq{params: map[string]any{"code": "199"}, body: map[string]string{"name": "矩阵测试类"}}
		}},
	{op: "POST /api/v1/classifications/import", status: 200, allow: anyDept(policy.PlatformAdmin),
		req: func(*authzFixture) authzReq {
			return authzReq{body: []catalog.Classification{{Code: "198", Name: "矩阵导入类", Level: 1, Kind: "base"}}}
		}},

	// ----- catalog entries: the draft, the review workflow, versions -----
	{op: "GET /api/v1/catalog/entries", status: 200, allow: anyDept(rolesAndApps...),
		req: func(fx *authzFixture) authzReq { return authzReq{query: fmt.Sprintf("dept_id=%d", fx.a.ID)} },
		check: func(t *testing.T, fx *authzFixture, c authzCaller, body []byte) {
			if got, want := listHasID(t, body, fx.draft.ID), admits(draftViewers, c); got != want {
				t.Errorf("%s lists department A's draft: %v, want %v", c, got, want)
			}
		}},
	{op: "POST /api/v1/catalog/entries", status: 201, allow: anyDept(policy.DeptAdmin),
		req: func(fx *authzFixture) authzReq {
			return authzReq{body: authzContent(fmt.Sprintf("新登记%d", fx.next()))}
		}},
	{op: "GET /api/v1/catalog/entries/{id}", status: 200, allow: draftViewers, req: idReq(func(fx *authzFixture) int64 { return fx.draft.ID })},
	{op: "PUT /api/v1/catalog/entries/{id}", status: 200, allow: ownDept(policy.DeptAdmin),
		req: func(fx *authzFixture) authzReq {
			e := fx.entry(catalog.Draft)
			return authzReq{params: map[string]any{"id": e.ID}, body: authzContent(e.Draft.Name + "(修改)")}
		}},
	{op: "POST /api/v1/catalog/entries/{id}/submit", status: 200, allow: ownDept(policy.DeptAdmin), req: idReq(entryIn(catalog.Draft))},
	{op: "POST /api/v1/catalog/entries/{id}/return", status: 200, allow: anyDept(policy.PlatformAdmin),
		req: func(fx *authzFixture) authzReq {
			return authzReq{params: map[string]any{"id": fx.entry(catalog.Submitted).ID},
				body: map[string]any{"reasons": []catalog.Reason{{Field: "abstract", Text: "请补充数据范围"}}}}
		}},
	{op: "POST /api/v1/catalog/entries/{id}/approve", status: 200, allow: anyDept(policy.PlatformAdmin), req: idReq(entryIn(catalog.Submitted))},
	{op: "POST /api/v1/catalog/entries/{id}/publish", status: 200, allow: anyDept(policy.PlatformAdmin), req: idReq(entryIn(catalog.Approved))},
	{op: "POST /api/v1/catalog/entries/{id}/change", status: 200, allow: ownDept(policy.DeptAdmin),
		req: func(fx *authzFixture) authzReq {
			return authzReq{params: map[string]any{"id": fx.entry(catalog.Published).ID}, body: map[string]string{"reason": "other", "note": "矩阵测试"}}
		}},
	{op: "POST /api/v1/catalog/entries/{id}/retire", status: 200, allow: anyDept(policy.PlatformAdmin),
		req: func(fx *authzFixture) authzReq {
			return authzReq{params: map[string]any{"id": fx.entry(catalog.Published).ID}, body: map[string]string{"note": "矩阵测试"}}
		}},
	{op: "GET /api/v1/catalog/entries/{id}/versions", status: 200, allow: draftViewers, req: idReq(func(fx *authzFixture) int64 { return fx.draft.ID })},
	{op: "GET /api/v1/catalog/entries/{id}/diff", status: 200, allow: draftViewers,
		req: func(fx *authzFixture) authzReq {
			return authzReq{params: map[string]any{"id": fx.draft.ID}, query: "from=0&to=0"}
		}},

	// ----- feedback and demands -----
	{op: "GET /api/v1/catalog/entries/{id}/ratings", status: 200, allow: draftViewers, req: idReq(func(fx *authzFixture) int64 { return fx.draft.ID })},
	{op: "GET /api/v1/catalog/entries/{id}/related", status: 200, allow: draftViewers, req: idReq(func(fx *authzFixture) int64 { return fx.draft.ID })},
	// Ratings are the users' voice: any user of another department, never the provider's own.
	{op: "PUT /api/v1/catalog/entries/{id}/rating", status: 204, allow: otherDept(policy.AllRoles...),
		req: func(fx *authzFixture) authzReq {
			return authzReq{params: map[string]any{"id": fx.published.ID}, body: map[string]any{"stars": 4, "comment": "字段清晰"}}
		}},
	{op: "GET /api/v1/demands", status: 200, allow: anyDept(rolesAndApps...), req: noReq},
	{op: "POST /api/v1/demands", status: 201, allow: anyDept(policy.AllRoles...),
		req: func(fx *authzFixture) authzReq {
			return authzReq{body: catalog.DemandInput{Title: "殡葬信息", Description: "矩阵测试", Purpose: "养老金停发核查", SuggestedDeptID: fx.a.ID}}
		}},
	{op: "POST /api/v1/demands/{id}/route", status: 200, allow: anyDept(policy.PlatformAdmin),
		req: func(fx *authzFixture) authzReq {
			return authzReq{params: map[string]any{"id": fx.demand(false).ID}, body: map[string]any{"dept_id": fx.a.ID}}
		}},
	// Only the data administrator of the department the demand was routed to (A) answers.
	{op: "POST /api/v1/demands/{id}/answer", status: 200, allow: ownDept(policy.DeptAdmin),
		req: func(fx *authzFixture) authzReq {
			return authzReq{params: map[string]any{"id": fx.demand(true).ID}, body: map[string]any{"answer": "本部门不持有该数据"}}
		}},

	// ----- import and export -----
	{op: "GET /api/v1/catalog/template.xlsx", status: 200, allow: anyDept(rolesAndApps...), req: noReq},
	// Imports register drafts of the caller's own department.
	{op: "POST /api/v1/catalog/import.xlsx", status: 200, allow: anyDept(policy.DeptAdmin),
		req: func(fx *authzFixture) authzReq {
			return authzReq{raw: fx.xlsx, ctype: "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}
		}},
	{op: "POST /api/v1/catalog/import.json", status: 200, allow: anyDept(policy.DeptAdmin),
		req: func(fx *authzFixture) authzReq {
			return authzReq{body: []catalog.Content{authzContent(fmt.Sprintf("JSON导入%d", fx.next()))}}
		}},
	// Exporting a chosen entry needs the right to see it.
	{op: "GET /api/v1/catalog/export.xlsx", status: 200, allow: draftViewers,
		req: func(fx *authzFixture) authzReq { return authzReq{query: fmt.Sprintf("id=%d", fx.draft.ID)} }},
	{op: "GET /api/v1/catalog/export.json", status: 200, allow: draftViewers,
		req: func(fx *authzFixture) authzReq { return authzReq{query: fmt.Sprintf("id=%d", fx.draft.ID)} }},
	{op: "GET /api/v1/catalog/search", status: 200, allow: anyDept(rolesAndApps...),
		req: func(*authzFixture) authzReq { return authzReq{query: "q=%E7%9F%A9%E9%98%B5"} }},

	// ----- calendar and to-dos -----
	{op: "GET /api/v1/calendar", status: 200, allow: anyDept(rolesAndApps...), req: noReq},
	{op: "GET /api/v1/calendar/{year}", status: 200, allow: anyDept(rolesAndApps...),
		req: func(*authzFixture) authzReq { return authzReq{params: map[string]any{"year": 2026}} }},
	{op: "PUT /api/v1/calendar/{year}", status: 204, allow: anyDept(policy.PlatformAdmin),
		req: func(*authzFixture) authzReq {
			return authzReq{params: map[string]any{"year": 2099},
				body: map[string]any{"year": 2099, "days": []map[string]any{{"name": "元旦", "date": "2099-01-01", "isOffDay": true}}}}
		}},
	{op: "GET /api/v1/todos", status: 200, allow: anyDept(rolesAndApps...), req: noReq},
	{op: "GET /api/v1/ping", status: 200, allow: anyDept(rolesAndApps...), req: noReq},

	// ----- sharing: A applies to C, C applies to A; B is a stranger -----
	// Each lists its own department's applications.
	{op: "GET /api/v1/applications", status: 200, allow: anyDept(shareViewers...),
		req: noReq,
		check: func(t *testing.T, fx *authzFixture, c authzCaller, body []byte) {
			if got, want := listHasID(t, body, fx.appByA.ID), admits(ownDept(shareViewers...), c); got != want {
				t.Errorf("%s lists department A's application: %v, want %v", c, got, want)
			}
		}},
	// Applying is for the caller's own department, to another department's resource.
	{op: "POST /api/v1/applications", status: 201, allow: anyDept(policy.DeptAdmin, policy.Consumer, appRole),
		req: func(fx *authzFixture) authzReq {
			return authzReq{body: map[string]any{"entry_id": fx.entriesC[catalog.ShareConditional].ID, "items": []string{"no"}, "methods": []string{"api"},
				"purpose": "矩阵测试", "basis": "《矩阵测试条例》", "valid_until": time.Now().AddDate(0, 6, 0)}}
		}},
	{op: "GET /api/v1/applications/{id}", status: 200, allow: either(anyDept(policy.PlatformAdmin), ownDept(shareViewers...)),
		req: idReq(func(fx *authzFixture) int64 { return fx.appByA.ID })},
	// The provider (A) decides on C's application to it.
	{op: "POST /api/v1/applications/{id}/accept", status: 200, allow: ownDept(policy.DeptAdmin, policy.DeptReviewer),
		req: idReq(func(fx *authzFixture) int64 { return fx.applicationToA(share.Submitted).ID })},
	{op: "POST /api/v1/applications/{id}/approve", status: 200, allow: ownDept(policy.DeptAdmin, policy.DeptReviewer),
		req: func(fx *authzFixture) authzReq {
			return authzReq{params: map[string]any{"id": fx.applicationToA(share.Submitted).ID}, body: map[string]any{"note": "同意"}}
		}},
	{op: "POST /api/v1/applications/{id}/reject", status: 200, allow: ownDept(policy.DeptAdmin, policy.DeptReviewer),
		req: func(fx *authzFixture) authzReq {
			return authzReq{params: map[string]any{"id": fx.applicationToA(share.Submitted).ID}, body: map[string]any{"reason": "用途不符"}}
		}},
	{op: "POST /api/v1/applications/{id}/provide", status: 200, allow: ownDept(policy.DeptAdmin, policy.DeptReviewer),
		req: func(fx *authzFixture) authzReq {
			return authzReq{params: map[string]any{"id": fx.applicationToA(share.RuledShare).ID}, body: map[string]any{"note": "已提供"}}
		}},
	// A negotiation is answered by the provider or by a platform administrator.
	{op: "POST /api/v1/applications/{id}/answer", status: 200, allow: either(anyDept(policy.PlatformAdmin), ownDept(policy.DeptAdmin, policy.DeptReviewer)),
		req: func(fx *authzFixture) authzReq {
			return authzReq{params: map[string]any{"id": fx.negotiationToA().ID}, body: map[string]any{"note": "可按季度提供统计数"}}
		}},
	// The applicant (A) acts on its application to C.
	{op: "POST /api/v1/applications/{id}/withdraw", status: 200, allow: ownDept(policy.DeptAdmin, policy.Consumer, appRole),
		req: idReq(func(fx *authzFixture) int64 { return fx.applicationByA(share.Submitted).ID })},
	{op: "POST /api/v1/applications/{id}/escalate", status: 200, allow: ownDept(policy.DeptAdmin, policy.Consumer, appRole),
		req: func(fx *authzFixture) authzReq {
			return authzReq{params: map[string]any{"id": fx.applicationByA(share.Rejected).ID}, body: map[string]any{"reason": "履职必需"}}
		}},
	{op: "POST /api/v1/applications/{id}/attachments", status: 201, allow: ownDept(policy.DeptAdmin, policy.Consumer, appRole),
		req: func(fx *authzFixture) authzReq {
			return authzReq{params: map[string]any{"id": fx.applicationByA(share.Submitted).ID}, query: "name=agreement.pdf",
				raw: []byte("%PDF-1.4 安全保密协议"), ctype: "application/octet-stream"}
		}},
	{op: "GET /api/v1/applications/{id}/attachments/{aid}", status: 200, allow: either(anyDept(policy.PlatformAdmin), ownDept(shareViewers...)),
		req: func(fx *authzFixture) authzReq {
			return authzReq{params: map[string]any{"id": fx.appByA.ID, "aid": fx.attachment.ID}}
		}},
	{op: "POST /api/v1/applications/{id}/rule", status: 200, allow: anyDept(policy.PlatformAdmin),
		req: func(fx *authzFixture) authzReq {
			return authzReq{params: map[string]any{"id": fx.applicationByA(share.Escalated).ID}, body: map[string]any{"outcome": "refuse", "note": "维持"}}
		}},
	{op: "GET /api/v1/grants", status: 200, allow: anyDept(shareViewers...),
		req: noReq,
		check: func(t *testing.T, fx *authzFixture, c authzCaller, body []byte) {
			if got, want := listHasID(t, body, fx.grantToA), admits(ownDept(shareViewers...), c); got != want {
				t.Errorf("%s lists department A's grant: %v, want %v", c, got, want)
			}
		}},
	{op: "GET /api/v1/grants/{id}", status: 200, allow: either(anyDept(policy.PlatformAdmin), ownDept(shareViewers...)),
		req: idReq(func(fx *authzFixture) int64 { return fx.grantToA })},
	// The check answers for the caller's department: A holds the grant, B does not.
	{op: "GET /api/v1/grants/check", status: 200, allow: ownDept(shareViewers...),
		req: func(fx *authzFixture) authzReq {
			return authzReq{query: "method=api&resource=" + url.QueryEscape(fx.entriesC[catalog.ShareUnconditional].Code)}
		}},
	// The provider (A) revokes a grant it gave to C.
	{op: "POST /api/v1/grants/{id}/revoke", status: 200, allow: either(anyDept(policy.PlatformAdmin), ownDept(policy.DeptAdmin)),
		req: func(fx *authzFixture) authzReq {
			return authzReq{params: map[string]any{"id": fx.grantByA()}, body: map[string]any{"reason": "职能调整"}}
		}},
}

// shareViewers see their department's applications and grants (policy.ShareView); an app is a consumer.
var shareViewers = []policy.Role{policy.PlatformAdmin, policy.DeptAdmin, policy.DeptReviewer, policy.Consumer, appRole}

func authzContent(name string) catalog.Content {
	return catalog.Content{Name: name, ClassCode: "101", Abstract: "权限矩阵测试用的信息资源。", FormatClass: "database", FormatType: "postgresql",
		Items:     []catalog.DataItem{{Name: "编号", MachineName: "no", DataType: "C", Length: 20, Key: true}},
		ShareType: catalog.ShareUnconditional, ShareMethods: []catalog.ShareMethod{catalog.MethodAPI}, OpenType: catalog.OpenClosed, UpdateCycle: "daily"}
}

func sharedContent(name string, st catalog.ShareType) catalog.Content {
	c := authzContent(name)
	c.ShareType = st
	switch st {
	case catalog.ShareConditional:
		c.ShareCondition = "用于矩阵测试"
	case catalog.ShareNone:
		c.ShareBasis, c.ShareMethods = "《矩阵测试条例》第一条", nil
	}
	return c
}

// listHasID reports whether a JSON list answer holds an object with id.
func listHasID(t *testing.T, body []byte, id int64) bool {
	t.Helper()
	var list []struct {
		ID int64 `json:"id"`
	}
	if err := json.Unmarshal(body, &list); err != nil {
		t.Fatalf("answer is not a list: %v: %.200s", err, body)
	}
	for _, x := range list {
		if x.ID == id {
			return true
		}
	}
	return false
}

// authzFixture is department A, which owns every object, department B, a
// user of every role in each, an app in each, and A's objects.
type authzFixture struct {
	// t is the test of the call being made, so that the builders of a
	// row's request can fail it.
	t         *testing.T
	e         *env
	a, b      identity.Department
	callers   []authzCaller
	users     map[authzCaller]identity.User
	tokens    map[authzCaller]string
	apps      map[string]client.App // deptOwn / deptOther
	target    identity.User         // a consumer of A, the object of the identity rows
	draft     catalog.Entry         // a draft of A
	published catalog.Entry         // a published entry of A
	xlsx      []byte                // an import template holding one entry
	seq       int

	// Sharing needs a third department: C is the other side of A's
	// applications and grants, so that B is a stranger to them.
	share      *share.Service
	c          identity.Department
	cAdmin     policy.Actor // C's data administrator
	cConsumer  policy.Actor
	entriesA   map[catalog.ShareType]catalog.Entry // published entries of A by share type
	entriesC   map[catalog.ShareType]catalog.Entry
	appByA     share.Application // A's application to C, submitted
	attachment share.Attachment  // attached to appByA
	grantToA   int64             // C's grant to A (a subscription)

	// The data of A's published entry, mounted on first use.
	resourceCode string
	// C's resource A uses through the data services, made on first use.
	dataCode string

	// The exchange objects of A, made on first use.
	exchange struct {
		node, job, sub, grant, check int64
		resource                     string
	}
}

func newAuthzFixture(t *testing.T, db *store.DB) *authzFixture {
	t.Helper()
	ctx := context.Background()
	e := newEnv(t, db, nil)
	fx := &authzFixture{t: t, e: e, users: map[authzCaller]identity.User{}, tokens: map[authzCaller]string{}, apps: map[string]client.App{}}
	var err error
	fx.a, err = e.ids.SeedDepartment(ctx, identity.DepartmentInput{ParentID: e.city.ID, Name: "市民政局", CreditCode: identity.SyntheticCreditCode("350100", 11), RegionCode: "350100"})
	fx.must(err)
	fx.b, err = e.ids.SeedDepartment(ctx, identity.DepartmentInput{ParentID: e.city.ID, Name: "市卫生健康委员会", CreditCode: identity.SyntheticCreditCode("350100", 12), RegionCode: "350100"})
	fx.must(err)
	deptOf := map[string]int64{deptOwn: fx.a.ID, deptOther: fx.b.ID}
	for _, r := range policy.AllRoles {
		for _, d := range []string{deptOwn, deptOther} {
			c := authzCaller{role: r, dept: d}
			totp := ""
			if r.Admin() {
				totp = identity.NewTOTPSecret()
			}
			u, err := e.ids.SeedUser(ctx, identity.UserInput{Login: fmt.Sprintf("%s.%s", r, d), Name: "矩阵" + c.String(), DeptID: deptOf[d],
				Roles: []policy.Role{r}, Password: pw}, false, totp)
			fx.must(err)
			tok, _, err := e.ids.CreateToken(ctx, u.Actor(), "矩阵测试", 30)
			fx.must(err)
			fx.users[c], fx.tokens[c] = u, tok
			fx.callers = append(fx.callers, c)
		}
	}
	apps := share.NewApps(db, e.log, e.keys)
	for _, d := range []string{deptOwn, deptOther} {
		app, sec, err := apps.Register(ctx, fx.actor(policy.DeptAdmin, d), share.AppInput{Name: "业务系统" + d, Purpose: "矩阵测试", Contact: "张三"})
		fx.must(err)
		fx.apps[d] = client.App{Key: app.Key, Secret: sec}
		fx.callers = append(fx.callers, authzCaller{role: appRole, dept: d})
	}
	fx.callers = append(fx.callers, authzCaller{})
	fx.target, err = e.ids.SeedUser(ctx, identity.UserInput{Login: "target.own", Name: "被管理用户", DeptID: fx.a.ID, Roles: []policy.Role{policy.Consumer}, Password: pw}, false, "")
	fx.must(err)
	fx.draft = fx.entry(catalog.Draft)
	fx.published = fx.entry(catalog.Published)
	var buf bytes.Buffer
	fx.must(catalog.WriteXLSX(&buf, func(yield func(catalog.Content, error) bool) { yield(authzContent("模板导入"), nil) }))
	fx.xlsx = buf.Bytes()
	fx.sharing(ctx)
	return fx
}

// sharing makes department C (the police department of newEnv) and the
// applications and grants between A and C.
func (fx *authzFixture) sharing(ctx context.Context) {
	fx.t.Helper()
	srv, _ := fx.e.srv.Config.Handler.(*web.Server)
	if srv == nil || srv.Share == nil {
		fx.t.Fatal("newEnv gives the server no sharing service")
	}
	fx.share, fx.c = srv.Share, fx.e.police
	fx.cAdmin, fx.cConsumer = fx.e.users[policy.DeptAdmin].Actor(), fx.e.users[policy.Consumer].Actor()
	fx.entriesA, fx.entriesC = map[catalog.ShareType]catalog.Entry{}, map[catalog.ShareType]catalog.Entry{}
	for _, st := range []catalog.ShareType{catalog.ShareUnconditional, catalog.ShareConditional, catalog.ShareNone} {
		fx.entriesA[st] = fx.entryOf(fx.actor(policy.DeptAdmin, deptOwn), sharedContent("民政共享"+string(st), st), catalog.Published)
		fx.entriesC[st] = fx.entryOf(fx.cAdmin, sharedContent("公安共享"+string(st), st), catalog.Published)
	}
	fx.appByA = fx.applicationByA(share.Submitted)
	var err error
	fx.attachment, err = fx.share.Attach(ctx, fx.actor(policy.Consumer, deptOwn), fx.appByA.ID, "协议.pdf", "", []byte("%PDF-1.4 安全保密协议"))
	fx.must(err)
	sub, err := fx.share.Apply(ctx, fx.actor(policy.Consumer, deptOwn), fx.entriesC[catalog.ShareUnconditional].ID, share.Terms{Purpose: "矩阵测试"})
	fx.must(err)
	fx.grantToA = sub.GrantID
}

func applicationTerms() share.Terms {
	return share.Terms{Items: []string{"no"}, Methods: []catalog.ShareMethod{catalog.MethodAPI}, Purpose: "矩阵测试", Basis: "《矩阵测试条例》",
		ValidUntil: time.Now().AddDate(0, 6, 0)}
}

// applicationByA makes a fresh application of A to C's conditional entry
// in state st: submitted, rejected or escalated.
func (fx *authzFixture) applicationByA(st share.State) share.Application {
	fx.t.Helper()
	ctx := context.Background()
	consumer := fx.actor(policy.Consumer, deptOwn)
	a, err := fx.share.Apply(ctx, consumer, fx.entriesC[catalog.ShareConditional].ID, applicationTerms())
	fx.must(err)
	if st == share.Rejected || st == share.Escalated {
		a, err = fx.share.Reject(ctx, fx.cAdmin, a.ID, "用途不符")
		fx.must(err)
	}
	if st == share.Escalated {
		a, err = fx.share.Escalate(ctx, consumer, a.ID, "履职必需")
		fx.must(err)
	}
	if a.State != st {
		fx.t.Fatalf("no way to A's application in state %s", st)
	}
	return a
}

// applicationToA makes a fresh application of C to A's conditional entry
// in state st: submitted or ruled_share.
func (fx *authzFixture) applicationToA(st share.State) share.Application {
	fx.t.Helper()
	ctx := context.Background()
	a, err := fx.share.Apply(ctx, fx.cConsumer, fx.entriesA[catalog.ShareConditional].ID, applicationTerms())
	fx.must(err)
	if st == share.RuledShare {
		_, err = fx.share.Reject(ctx, fx.actor(policy.DeptAdmin, deptOwn), a.ID, "用途不符")
		fx.must(err)
		_, err = fx.share.Escalate(ctx, fx.cConsumer, a.ID, "履职必需")
		fx.must(err)
		a, err = fx.share.Rule(ctx, fx.actor(policy.PlatformAdmin, deptOther), a.ID, "share", "应予共享", nil)
		fx.must(err)
	}
	if a.State != st {
		fx.t.Fatalf("no way to C's application in state %s", st)
	}
	return a
}

// negotiationToA makes a fresh negotiation request of C for A's resource
// that is not shared.
func (fx *authzFixture) negotiationToA() share.Application {
	fx.t.Helper()
	a, err := fx.share.Apply(context.Background(), fx.cConsumer, fx.entriesA[catalog.ShareNone].ID, share.Terms{Purpose: "矩阵测试", Basis: "《矩阵测试条例》"})
	fx.must(err)
	return a
}

// grantByA makes a fresh grant of A to C (C subscribes) and returns its id.
func (fx *authzFixture) grantByA() int64 {
	fx.t.Helper()
	a, err := fx.share.Apply(context.Background(), fx.cConsumer, fx.entriesA[catalog.ShareUnconditional].ID, share.Terms{Purpose: "矩阵测试"})
	fx.must(err)
	return a.GrantID
}

func (fx *authzFixture) must(err error) {
	fx.t.Helper()
	if err != nil {
		fx.t.Fatal(err)
	}
}

func (fx *authzFixture) next() int { fx.seq++; return fx.seq }

func (fx *authzFixture) actor(r policy.Role, dept string) policy.Actor {
	return fx.users[authzCaller{role: r, dept: dept}].Actor()
}

// entry makes a fresh entry of A in state st.
func (fx *authzFixture) entry(st catalog.State) catalog.Entry {
	fx.t.Helper()
	return fx.entryOf(fx.actor(policy.DeptAdmin, deptOwn), authzContent(fmt.Sprintf("矩阵条目%d", fx.next())), st)
}

// entryOf makes an entry of the data administrator da's department in
// state st.
func (fx *authzFixture) entryOf(da policy.Actor, c catalog.Content, st catalog.State) catalog.Entry {
	fx.t.Helper()
	ctx := context.Background()
	pa := fx.actor(policy.PlatformAdmin, deptOwn)
	e, err := fx.e.cat.CreateEntry(ctx, da, c)
	fx.must(err)
	steps := map[catalog.State][]func(context.Context, policy.Actor, int64) (catalog.Entry, error){
		catalog.Draft:     nil,
		catalog.Submitted: {fx.e.cat.Submit},
		catalog.Approved:  {fx.e.cat.Submit, fx.e.cat.Approve},
		catalog.Published: {fx.e.cat.Submit, fx.e.cat.Approve, fx.e.cat.Publish},
	}
	path, ok := steps[st]
	if !ok {
		fx.t.Fatalf("no way to an entry in state %s", st)
	}
	for i, step := range path {
		by := pa
		if i == 0 {
			by = da // the provider submits
		}
		e, err = step(ctx, by, e.ID)
		fx.must(err)
	}
	return e
}

func entryIn(st catalog.State) func(fx *authzFixture) int64 {
	return func(fx *authzFixture) int64 { return fx.entry(st).ID }
}

// demand makes a fresh demand posted by B, routed to A when routed.
func (fx *authzFixture) demand(routed bool) catalog.Demand {
	fx.t.Helper()
	ctx := context.Background()
	d, err := fx.e.cat.PostDemand(ctx, fx.actor(policy.Consumer, deptOther), catalog.DemandInput{Title: "婚姻登记信息", Purpose: "矩阵测试", SuggestedDeptID: fx.a.ID})
	fx.must(err)
	if routed {
		d, err = fx.e.cat.RouteDemand(ctx, fx.actor(policy.PlatformAdmin, deptOwn), d.ID, fx.a.ID)
		fx.must(err)
	}
	return d
}

// token makes a fresh API token of the target user and returns its id.
func (fx *authzFixture) token() int64 {
	fx.t.Helper()
	_, tok, err := fx.e.ids.CreateToken(context.Background(), fx.target.Actor(), "待吊销", 30)
	fx.must(err)
	return tok.ID
}

var authzPathParam = regexp.MustCompile(`\{([a-z_]+)\}`)

// call makes a row's request as c and returns the status, the body and
// the request id, which the audit events of the call carry.
func (fx *authzFixture) call(c authzCaller, op string, r authzReq) (int, []byte, string) {
	fx.t.Helper()
	method, tmpl, _ := strings.Cut(op, " ")
	path := authzPathParam.ReplaceAllStringFunc(tmpl, func(p string) string {
		v, ok := r.params[p[1:len(p)-1]]
		if !ok {
			fx.t.Fatalf("row %s: no value for %s", op, p)
		}
		return fmt.Sprint(v)
	})
	if r.query != "" {
		path += "?" + r.query
	}
	body, ctype := r.raw, r.ctype
	if r.body != nil {
		var err error
		body, err = json.Marshal(r.body)
		fx.must(err)
		ctype = "application/json"
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, fx.e.srv.URL+path, rd)
	fx.must(err)
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	id := fmt.Sprintf("authz-%d", fx.next())
	req.Header.Set("X-Request-Id", id)
	switch c.role {
	case "":
	case appRole:
		fx.must(fx.apps[c.dept].SignRequest(req, "权限矩阵测试"))
	default:
		req.Header.Set("Authorization", "Bearer "+fx.tokens[c])
		req.Header.Set("X-Purpose", "权限矩阵测试")
	}
	resp, err := http.DefaultClient.Do(req)
	fx.must(err)
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	fx.must(err)
	return resp.StatusCode, out, id
}

// audited returns the audit events a request wrote.
func (fx *authzFixture) audited(requestID string) []audit.Event {
	fx.t.Helper()
	evs, err := fx.e.log.List(context.Background(), audit.Filter{Limit: 100})
	fx.must(err)
	var out []audit.Event
	for _, ev := range evs {
		if ev.RequestID == requestID {
			out = append(out, ev)
		}
	}
	return out
}

// apiOperations lists "METHOD /path" of every operation in the server's
// OpenAPI document under /api/v1.
func apiOperations(t *testing.T, e *env) map[string]bool {
	t.Helper()
	srv, ok := e.srv.Config.Handler.(*web.Server)
	if !ok {
		t.Fatalf("test server handler is %T, not *web.Server", e.srv.Config.Handler)
	}
	ops := map[string]bool{}
	for path, item := range srv.API().OpenAPI().Paths {
		if !strings.HasPrefix(path, "/api/v1/") {
			continue
		}
		for method, o := range map[string]*huma.Operation{"GET": item.Get, "POST": item.Post, "PUT": item.Put, "PATCH": item.Patch, "DELETE": item.Delete,
			"HEAD": item.Head, "OPTIONS": item.Options, "TRACE": item.Trace} {
			if o != nil {
				ops[method+" "+path] = true
			}
		}
	}
	return ops
}

func TestAuthzMatrixCoversEveryOperation(t *testing.T) {
	ops := apiOperations(t, newEnv(t, storetest.OpenSQLite(t), nil))
	rows := map[string]bool{}
	for _, r := range authzRows {
		if rows[r.op] {
			t.Errorf("authzRows has two rows for %s", r.op)
		}
		rows[r.op] = true
		if !ops[r.op] {
			t.Errorf("authzRows has a row for %s, which the API does not have: remove or rename the row", r.op)
		}
	}
	var missing []string
	for op := range ops {
		if !rows[op] {
			missing = append(missing, op)
		}
	}
	slices.Sort(missing)
	for _, op := range missing {
		t.Errorf("add a row to authzRows for %s: who may call it, from which department, and the success status", op)
	}
}

// TestAuthzMatrix runs every row as every caller on both backends. Rows
// whose operation the API lacks are reported by
// TestAuthzMatrixCoversEveryOperation, not here.
func TestAuthzMatrix(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		fx := newAuthzFixture(t, db)
		ops := apiOperations(t, fx.e)
		for _, row := range authzRows {
			if !ops[row.op] {
				continue
			}
			t.Run(row.op, func(t *testing.T) {
				for _, c := range fx.callers {
					t.Run(c.String(), func(t *testing.T) {
						fx.t = t
						status, body, reqID := fx.call(c, row.op, row.req(fx))
						if m, ok := row.mismatch[c.String()]; ok {
							if status == m.answers {
								t.Skipf("%s as %s answers %d against policy.go (reported): %s", row.op, c, status, m.note)
							}
							t.Fatalf("%s as %s now answers %d, not %d: decide the rule, write it into allow and drop the mismatch (%s)", row.op, c, status, m.answers, m.note)
						}
						want := row.want(c)
						if status != want {
							t.Fatalf("%s as %s: status %d, want %d: %.300s", row.op, c, status, want, body)
						}
						if status != row.status {
							var p struct {
								Code string `json:"code"`
							}
							if json.Unmarshal(body, &p) != nil || p.Code == "" {
								t.Errorf("%s as %s: refusal is not a problem document with a code: %.300s", row.op, c, body)
							}
							// A refusal changes nothing (a service may act and
							// only then fail to show the result), and a refusal
							// by the policy is audited.
							denied := false
							for _, ev := range fx.audited(reqID) {
								if ev.Result == audit.ResultOK {
									t.Errorf("%s as %s was refused but did %s on %s %s", row.op, c, ev.Action, ev.ObjectType, ev.ObjectID)
								}
								denied = denied || ev.Result == audit.ResultDenied
							}
							if p.Code == "auth.denied" && !denied {
								t.Errorf("%s as %s: refusal not in the audit log", row.op, c)
							}
						}
						if row.check != nil && status == row.status {
							row.check(t, fx, c, body)
						}
					})
				}
			})
		}
	})
}
