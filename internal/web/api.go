package web

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/danielgtaylor/huma/v2/adapters/humago"

	"govshare/client"
	"govshare/internal/apperr"
	"govshare/internal/audit"
	"govshare/internal/identity"
	"govshare/internal/policy"
	"govshare/internal/share"
)

// principal is who is calling: a user through a browser session or an API
// token.
type principal struct {
	User  identity.User
	Token *identity.Token
	App   *share.App
	// claim is an app request's nonce, still to be used up when the
	// operation writes it with its audit event (laterClaims); signed is
	// the request, for auditing a refusal.
	claim  *audit.Claim
	signed share.Signed
}

// laterClaims are the operations whose app requests use their nonce up
// in the transaction of the request's audit event rather than in a
// commit of its own before the operation runs. Each settles the claim
// (settleClaim) before it answers, whatever the outcome.
var laterClaims = map[string]bool{"query-data": true, "verify-data": true}

// settleClaim makes sure the request's nonce is used up before it is
// answered; a replay is refused here even when the operation ran.
func (s *Server) settleClaim(ctx context.Context) error {
	p := principalFrom(ctx)
	if p == nil || p.claim == nil {
		return nil
	}
	return s.Apps.Settle(ctx, p.claim, p.signed, p.User.DeptID)
}

func (p *principal) actor() policy.Actor {
	a := p.User.Actor()
	if p.App != nil {
		a.App = p.App.Key
	}
	return a
}

func principalFrom(ctx context.Context) *principal {
	p, _ := ctx.Value(keyPrincipal).(*principal)
	return p
}

const apiDescription = `政务信息资源共享交换平台 API。所有接口使用 Bearer 令牌认证（在“API令牌”页面创建）。
错误以 RFC 9457 problem 文档返回，含稳定的 code、中英文说明 message_zh / message_en 和出错字段 field。

The govshare API. Every operation authenticates with a bearer token (create one on the "API tokens" page).
Errors are RFC 9457 problem documents with a stable code, messages in Chinese and English and the offending field.`

func (s *Server) apiRoutes() {
	cfg := huma.DefaultConfig("govshare API", s.Version)
	cfg.OpenAPIPath = "/api/v1/openapi"
	cfg.DocsPath = "" // our own reference page at /api/docs needs no CDN
	cfg.SchemasPath = "/api/v1/schemas"
	cfg.Info.Description = apiDescription
	cfg.Components.SecuritySchemes = map[string]*huma.SecurityScheme{
		"bearer": {Type: "http", Scheme: "bearer", Description: "API令牌 / API token (gst_…)"},
	}
	cfg.Components.SecuritySchemes["app"] = &huma.SecurityScheme{Type: "apiKey", In: "header", Name: client.HeaderAppKey,
		Description: "接入应用签名：X-App-Key、X-Timestamp、X-Nonce、X-Sign-Method、X-Signature、X-Purpose，见 /api/docs#signature / app signature, see /api/docs#signature"}
	cfg.Security = []map[string][]string{{"bearer": {}}, {"app": {}}}
	// No $schema links in bodies: clients get plain documents.
	cfg.CreateHooks = nil
	api := humago.New(s.mux, cfg)
	api.UseMiddleware(s.apiAuth)
	s.api = api
	s.identityAPI(api)
	s.auditAPI(api)
	s.catalogAPI(api)
	s.feedbackAPI(api)
	s.importAPI(api)
	s.searchAPI(api)
	s.calendarAPI(api)
	s.todoAPI(api)
	s.notifyAPI(api)
	s.shareAPI(api)
	s.refdataAPI(api)
	s.resourceAPI(api)
	s.exchangeAPI(api)
	s.checkAPI(api)
	s.dataAPI(api)
	s.verifyJobsAPI(api)
	s.servicesAPI(api)
}

// apiAuth resolves the caller of every operation: a user's bearer token,
// or a department's app by its request signature.
func (s *Server) apiAuth(ctx huma.Context, next func(huma.Context)) {
	if o := ctx.Operation(); o != nil && o.Security != nil && len(o.Security) == 0 {
		next(ctx) // a public operation: it checks its own credential
		return
	}
	if ctx.Header(client.HeaderAppKey) != "" && s.Apps != nil {
		s.appAuth(ctx, next)
		return
	}
	h := ctx.Header("Authorization")
	tok, ok := strings.CutPrefix(h, "Bearer ")
	if !ok || tok == "" {
		huma.WriteErr(s.api, ctx, http.StatusUnauthorized, "bearer token required")
		return
	}
	u, t, err := s.Identity.AuthenticateToken(ctx.Context(), strings.TrimSpace(tok))
	if err != nil {
		_ = s.Audit.Append(ctx.Context(), audit.Event{ActorType: audit.ActorAnon, Action: "api.auth_failed", ObjectType: "api_token",
			Result: audit.ResultDenied, Details: audit.Details(map[string]any{"path": ctx.URL().Path})})
		s.writeAPIError(ctx, err)
		return
	}
	next(huma.WithValue(ctx, keyPrincipal, &principal{User: u, Token: &t}))
}

// appAuth checks a signed app request. The body is read once to hash it
// and put back for the operation.
func (s *Server) appAuth(ctx huma.Context, next func(huma.Context)) {
	r, _ := humago.Unwrap(ctx)
	var body []byte
	if r.Body != nil && r.Body != http.NoBody {
		var err error
		body, err = io.ReadAll(io.LimitReader(r.Body, maxImportUpload+1))
		if err != nil || len(body) > maxImportUpload {
			s.writeAPIError(ctx, apperr.New(http.StatusRequestEntityTooLarge, "request.too_large", "请求体过大", "the request body is too large"))
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
	}
	signed := signedRequest(r, body)
	var app share.App
	var claim *audit.Claim
	var err error
	if o := ctx.Operation(); o != nil && laterClaims[o.OperationID] {
		app, claim, err = s.Apps.VerifyLater(ctx.Context(), signed)
	} else {
		app, err = s.Apps.Verify(ctx.Context(), signed)
	}
	if err != nil {
		s.writeAPIError(ctx, err)
		return
	}
	// An app acts for its department as a consumer would.
	u := identity.User{Login: "app:" + app.Key, Name: app.Name, DeptID: app.DeptID, Roles: []policy.Role{policy.Consumer, policy.AppClient}, Status: identity.StatusActive}
	p := &principal{User: u, App: &app}
	c := ctx.Context()
	if claim != nil {
		p.claim, p.signed = claim, signed
		c = audit.WithClaim(c, claim)
	}
	next(huma.WithContext(ctx, context.WithValue(c, keyPrincipal, p))) // one copy of the request, not two
}

// signedRequest is what an app's request tells about its signature over
// its body: the app, its source address, the time, the nonce, the
// signature and the stated purpose.
func signedRequest(r *http.Request, body []byte) share.Signed {
	return share.Signed{
		Method: r.Method, Path: r.URL.EscapedPath(), Query: r.URL.Query(), Body: body, ClientAddr: clientAddr(r),
		AppKey: r.Header.Get(client.HeaderAppKey), Timestamp: r.Header.Get(client.HeaderTimestamp), Nonce: r.Header.Get(client.HeaderNonce),
		Signature: r.Header.Get(client.HeaderSignature), SignMethod: r.Header.Get(client.HeaderMethod), Purpose: r.Header.Get(client.HeaderPurpose),
	}
}

func (s *Server) writeAPIError(ctx huma.Context, err error) {
	p := problemFrom(err, requestID(ctx.Context()))
	ctx.SetHeader("Content-Type", "application/problem+json")
	if ae, ok := apperr.As(err); ok && ae.RetryAfter > 0 {
		ctx.SetHeader("Retry-After", retryAfter(ae.RetryAfter))
	}
	ctx.SetStatus(p.Status)
	_ = json.NewEncoder(ctx.BodyWriter()).Encode(p)
}

// fail turns a service error into the problem document huma writes.
func (s *Server) fail(ctx context.Context, err error) error {
	if _, ok := apperr.As(err); !ok {
		s.Log.Error("request failed", "request_id", requestID(ctx), "err", err)
	}
	p := problemFrom(err, requestID(ctx))
	if ae, ok := apperr.As(err); ok && ae.RetryAfter > 0 {
		return huma.ErrorWithHeaders(p, http.Header{"Retry-After": {retryAfter(ae.RetryAfter)}})
	}
	return p
}

// retryAfter is a Retry-After value: whole seconds, at least one.
func retryAfter(d time.Duration) string {
	return strconv.FormatInt(int64(max(1, (d+time.Second-1)/time.Second)), 10)
}

var errorStatuses = []int{400, 401, 403, 404, 409, 422}

func op(id, method, path, tag, summary string) huma.Operation {
	return huma.Operation{OperationID: id, Method: method, Path: path, Tags: []string{tag}, Summary: summary, Errors: errorStatuses}
}

// ----- identity -----

type IDPath struct {
	ID int64 `path:"id" doc:"对象ID / id"`
}

type deptBody struct {
	Body identity.Department
}

type userBody struct {
	Body identity.User
}

func (s *Server) identityAPI(api huma.API) {
	huma.Register(api, op("get-me", http.MethodGet, "/api/v1/me", "身份 Identity", "当前用户 / the calling user"),
		func(ctx context.Context, _ *struct{}) (*userBody, error) {
			return &userBody{Body: principalFrom(ctx).User}, nil
		})

	huma.Register(api, op("list-departments", http.MethodGet, "/api/v1/departments", "身份 Identity", "部门树 / the department tree"),
		func(ctx context.Context, _ *struct{}) (*struct{ Body []identity.Department }, error) {
			ds, err := s.Identity.Departments(ctx)
			if err != nil {
				return nil, s.fail(ctx, err)
			}
			return &struct{ Body []identity.Department }{Body: ds}, nil
		})

	create := op("create-department", http.MethodPost, "/api/v1/departments", "身份 Identity", "新建部门 / create a department")
	create.DefaultStatus = http.StatusCreated
	huma.Register(api, create, func(ctx context.Context, in *struct{ Body identity.DepartmentInput }) (*deptBody, error) {
		d, err := s.Identity.CreateDepartment(ctx, principalFrom(ctx).actor(), in.Body)
		if err != nil {
			return nil, s.fail(ctx, err)
		}
		return &deptBody{Body: d}, nil
	})

	huma.Register(api, op("get-department", http.MethodGet, "/api/v1/departments/{id}", "身份 Identity", "查看部门 / one department"),
		func(ctx context.Context, in *IDPath) (*deptBody, error) {
			d, err := s.Identity.Department(ctx, in.ID)
			if err != nil {
				return nil, s.fail(ctx, err)
			}
			return &deptBody{Body: d}, nil
		})

	huma.Register(api, op("update-department", http.MethodPut, "/api/v1/departments/{id}", "身份 Identity", "修改部门 / update a department"),
		func(ctx context.Context, in *struct {
			IDPath
			Body identity.DepartmentInput
		}) (*deptBody, error) {
			d, err := s.Identity.UpdateDepartment(ctx, principalFrom(ctx).actor(), in.ID, in.Body)
			if err != nil {
				return nil, s.fail(ctx, err)
			}
			return &deptBody{Body: d}, nil
		})

	huma.Register(api, op("list-users", http.MethodGet, "/api/v1/users", "身份 Identity", "用户列表 / list users"),
		func(ctx context.Context, in *struct {
			DeptID int64  `query:"dept_id" doc:"部门ID / department id"`
			Q      string `query:"q" doc:"登录名或姓名 / part of login or name"`
		}) (*struct{ Body []identity.User }, error) {
			us, err := s.Identity.Users(ctx, principalFrom(ctx).actor(), identity.UserFilter{DeptID: in.DeptID, Query: in.Q})
			if err != nil {
				return nil, s.fail(ctx, err)
			}
			if us == nil {
				us = []identity.User{}
			}
			return &struct{ Body []identity.User }{Body: us}, nil
		})

	cu := op("create-user", http.MethodPost, "/api/v1/users", "身份 Identity", "新建用户 / create a user")
	cu.DefaultStatus = http.StatusCreated
	huma.Register(api, cu, func(ctx context.Context, in *struct{ Body identity.UserInput }) (*userBody, error) {
		u, err := s.Identity.CreateUser(ctx, principalFrom(ctx).actor(), in.Body)
		if err != nil {
			return nil, s.fail(ctx, err)
		}
		return &userBody{Body: u}, nil
	})

	huma.Register(api, op("get-user", http.MethodGet, "/api/v1/users/{id}", "身份 Identity", "查看用户 / one user"),
		func(ctx context.Context, in *IDPath) (*userBody, error) {
			u, err := s.Identity.ViewUser(ctx, principalFrom(ctx).actor(), in.ID)
			if err != nil {
				return nil, s.fail(ctx, err)
			}
			return &userBody{Body: u}, nil
		})

	huma.Register(api, op("update-user", http.MethodPut, "/api/v1/users/{id}", "身份 Identity", "修改用户 / update a user"),
		func(ctx context.Context, in *struct {
			IDPath
			Body identity.UserUpdate
		}) (*userBody, error) {
			u, err := s.Identity.UpdateUser(ctx, principalFrom(ctx).actor(), in.ID, in.Body)
			if err != nil {
				return nil, s.fail(ctx, err)
			}
			return &userBody{Body: u}, nil
		})

	huma.Register(api, op("reset-user-password", http.MethodPost, "/api/v1/users/{id}/password-reset", "身份 Identity", "重置密码 / reset a password"),
		func(ctx context.Context, in *struct {
			IDPath
			Body struct {
				Password string `json:"password" doc:"临时密码，下次登录须修改 / temporary password, changed at next login"`
			}
		}) (*struct{}, error) {
			return nil, s.failOrNil(ctx, s.Identity.ResetPassword(ctx, principalFrom(ctx).actor(), in.ID, in.Body.Password))
		})

	huma.Register(api, op("unlock-user", http.MethodPost, "/api/v1/users/{id}/unlock", "身份 Identity", "解除锁定 / unlock an account"),
		func(ctx context.Context, in *IDPath) (*struct{}, error) {
			return nil, s.failOrNil(ctx, s.Identity.Unlock(ctx, principalFrom(ctx).actor(), in.ID))
		})

	huma.Register(api, op("reset-user-totp", http.MethodPost, "/api/v1/users/{id}/totp-reset", "身份 Identity", "重置双因素认证 / reset two-factor login"),
		func(ctx context.Context, in *IDPath) (*struct{}, error) {
			return nil, s.failOrNil(ctx, s.Identity.ResetTOTP(ctx, principalFrom(ctx).actor(), in.ID))
		})

	huma.Register(api, op("revoke-user-sessions", http.MethodPost, "/api/v1/users/{id}/sessions-revoke", "身份 Identity", "注销全部会话 / end all sessions"),
		func(ctx context.Context, in *IDPath) (*struct{}, error) {
			return nil, s.failOrNil(ctx, s.Identity.RevokeSessions(ctx, principalFrom(ctx).actor(), in.ID))
		})

	huma.Register(api, op("list-tokens", http.MethodGet, "/api/v1/tokens", "身份 Identity", "我的API令牌 / my API tokens"),
		func(ctx context.Context, _ *struct{}) (*struct{ Body []identity.Token }, error) {
			p := principalFrom(ctx)
			ts, err := s.Identity.Tokens(ctx, p.actor(), p.User.ID)
			if err != nil {
				return nil, s.fail(ctx, err)
			}
			if ts == nil {
				ts = []identity.Token{}
			}
			return &struct{ Body []identity.Token }{Body: ts}, nil
		})

	ct := op("create-token", http.MethodPost, "/api/v1/tokens", "身份 Identity", "创建API令牌 / create an API token")
	ct.DefaultStatus = http.StatusCreated
	huma.Register(api, ct, func(ctx context.Context, in *struct {
		Body struct {
			Name          string `json:"name" doc:"用途名称 / what the token is for"`
			ExpiresInDays int    `json:"expires_in_days,omitempty" doc:"有效天数(1-365，默认90) / lifetime in days (1–365, default 90)"`
		}
	}) (*struct {
		Body struct {
			Token string         `json:"token" doc:"令牌，仅此一次显示 / the token, shown only this once"`
			Info  identity.Token `json:"info"`
		}
	}, error) {
		plain, t, err := s.Identity.CreateToken(ctx, principalFrom(ctx).actor(), in.Body.Name, in.Body.ExpiresInDays)
		if err != nil {
			return nil, s.fail(ctx, err)
		}
		out := &struct {
			Body struct {
				Token string         `json:"token" doc:"令牌，仅此一次显示 / the token, shown only this once"`
				Info  identity.Token `json:"info"`
			}
		}{}
		out.Body.Token, out.Body.Info = plain, t
		return out, nil
	})

	rt := op("revoke-token", http.MethodDelete, "/api/v1/tokens/{id}", "身份 Identity", "吊销API令牌 / revoke an API token")
	rt.DefaultStatus = http.StatusNoContent
	huma.Register(api, rt, func(ctx context.Context, in *IDPath) (*struct{}, error) {
		return nil, s.failOrNil(ctx, s.Identity.RevokeToken(ctx, principalFrom(ctx).actor(), in.ID))
	})
}

func (s *Server) failOrNil(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	return s.fail(ctx, err)
}

// ----- audit -----

type auditQuery struct {
	From       string `query:"from" doc:"起始时间(RFC 3339或YYYY-MM-DD) / from (RFC 3339 or YYYY-MM-DD)"`
	To         string `query:"to" doc:"截止时间(不含) / to (exclusive)"`
	Actor      string `query:"actor" doc:"操作者登录名 / actor login"`
	DeptID     int64  `query:"dept_id" doc:"部门ID / department id"`
	Action     string `query:"action" doc:"操作(前缀) / action (prefix)"`
	ObjectType string `query:"object_type" doc:"对象类型 / object type"`
	ObjectID   string `query:"object_id" doc:"对象ID / object id"`
	Result     string `query:"result" enum:"ok,denied,error," doc:"结果 / result"`
	Before     int64  `query:"before" doc:"翻页：返回序号小于此值的事件 / paging: events with seq below this"`
	Limit      int    `query:"limit" minimum:"0" maximum:"500" doc:"条数(默认50) / page size (default 50)"`
}

// ErrBadTime is a time filter that does not parse.
var ErrBadTime = apperr.Invalid("audit.time_invalid", "from", "时间格式应为 YYYY-MM-DD 或 RFC 3339", "times are YYYY-MM-DD or RFC 3339")

func parseTime(field, s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	for _, layout := range []string{time.RFC3339, "2006-01-02T15:04", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, s, cst); err == nil {
			return t, nil
		}
	}
	return time.Time{}, ErrBadTime.OnField(field)
}

// cst is China Standard Time, in which people enter and read times.
var cst = time.FixedZone("CST", 8*3600)

func (q auditQuery) filter() (audit.Filter, error) {
	from, err := parseTime("from", q.From)
	if err != nil {
		return audit.Filter{}, err
	}
	to, err := parseTime("to", q.To)
	if err != nil {
		return audit.Filter{}, err
	}
	return audit.Filter{From: from, To: to, Actor: q.Actor, DeptID: q.DeptID, Action: q.Action, ObjectType: q.ObjectType,
		ObjectID: q.ObjectID, Result: q.Result, BeforeSeq: q.Before, Limit: q.Limit}, nil
}

// authorizeAudit checks an audit permission and records both outcomes: who
// reads the audit log is itself audited.
func (s *Server) authorizeAudit(ctx context.Context, a policy.Actor, act policy.Action, details map[string]any) error {
	result := audit.ResultOK
	err := policy.Check(a, act, policy.Target{})
	if err != nil {
		result = audit.ResultDenied
	}
	if aerr := s.Audit.Append(ctx, audit.By(a, string(act), "audit_log", "", result, details)); aerr != nil {
		return aerr
	}
	return err
}

func (s *Server) auditAPI(api huma.API) {
	huma.Register(api, op("list-audit-events", http.MethodGet, "/api/v1/audit/events", "审计 Audit", "查询审计日志 / search the audit log (auditors)"),
		func(ctx context.Context, in *auditQuery) (*struct{ Body []audit.Event }, error) {
			f, err := in.filter()
			if err != nil {
				return nil, s.fail(ctx, err)
			}
			if err := s.authorizeAudit(ctx, principalFrom(ctx).actor(), policy.AuditRead, nil); err != nil {
				return nil, s.fail(ctx, err)
			}
			evs, err := s.Audit.List(ctx, f)
			if err != nil {
				return nil, s.fail(ctx, err)
			}
			if evs == nil {
				evs = []audit.Event{}
			}
			return &struct{ Body []audit.Event }{Body: evs}, nil
		})

	exp := op("export-audit-events", http.MethodGet, "/api/v1/audit/events.csv", "审计 Audit", "导出审计日志CSV / export the audit log as CSV (auditors)")
	exp.Responses = map[string]*huma.Response{"200": {Description: "CSV", Content: map[string]*huma.MediaType{"text/csv": {}}}}
	huma.Register(api, exp, func(ctx context.Context, in *auditQuery) (*huma.StreamResponse, error) {
		f, err := in.filter()
		if err != nil {
			return nil, s.fail(ctx, err)
		}
		if err := s.authorizeAudit(ctx, principalFrom(ctx).actor(), policy.AuditExport, map[string]any{"filter": in}); err != nil {
			return nil, s.fail(ctx, err)
		}
		f.Limit = 0
		return &huma.StreamResponse{Body: func(hctx huma.Context) {
			hctx.SetHeader("Content-Type", "text/csv; charset=utf-8")
			hctx.SetHeader("Content-Disposition", `attachment; filename="audit-log.csv"`)
			if err := s.writeAuditCSV(ctx, hctx.BodyWriter(), f); err != nil {
				s.Log.Error("audit export", "request_id", requestID(ctx), "err", err)
			}
		}}, nil
	})

	huma.Register(api, op("verify-audit-chain", http.MethodPost, "/api/v1/audit/verify", "审计 Audit", "校验审计日志哈希链 / verify the audit hash chain (auditors)"),
		func(ctx context.Context, _ *struct{}) (*struct{ Body audit.Report }, error) {
			if err := s.authorizeAudit(ctx, principalFrom(ctx).actor(), policy.AuditVerify, nil); err != nil {
				return nil, s.fail(ctx, err)
			}
			rep, err := s.Audit.Verify(ctx, nil)
			if err != nil {
				return nil, s.fail(ctx, err)
			}
			return &struct{ Body audit.Report }{Body: rep}, nil
		})
}

// writeAuditCSV streams events as CSV with a UTF-8 BOM so spreadsheet
// programs read the Chinese correctly.
func (s *Server) writeAuditCSV(ctx context.Context, w interface{ Write([]byte) (int, error) }, f audit.Filter) error {
	if _, err := w.Write([]byte("\ufeff")); err != nil {
		return err
	}
	cw := csv.NewWriter(w)
	_ = cw.Write([]string{"序号 seq", "时间 time", "操作者类型 actor_type", "操作者 actor", "部门ID dept_id", "操作 action", "对象类型 object_type",
		"对象ID object_id", "结果 result", "客户端地址 client_addr", "请求ID request_id", "用途 purpose", "详情 details", "哈希 hash"})
	n := 0
	err := s.Audit.Each(ctx, f, func(e audit.Event) error {
		dept := ""
		if e.DeptID != 0 {
			dept = itoa(e.DeptID)
		}
		n++
		if n%1000 == 0 {
			cw.Flush()
		}
		return cw.Write([]string{itoa(e.Seq), e.Time.In(cst).Format("2006-01-02 15:04:05.000000"), e.ActorType, e.ActorName, dept, e.Action,
			e.ObjectType, e.ObjectID, e.Result, e.ClientAddr, e.RequestID, e.Purpose, e.Details, e.Hash})
	})
	cw.Flush()
	if err == nil {
		err = cw.Error()
	}
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}
