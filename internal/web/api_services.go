package web

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"govshare/client"
	"govshare/internal/apperr"
	"govshare/internal/dataservice"
	"govshare/internal/dataservice/proxy"
	"govshare/internal/identity"
	"govshare/internal/policy"
	"govshare/internal/share"
)

// Service resources (服务资源): the JSON API that registers and watches
// them, and the route consumers call them through. The route is open-ended
// (any path below the service), so it sits on the mux beside huma and
// checks the app's signature exactly as appAuth does.

// servicesPrefix is where consumers call services:
// /api/v1/services/{code}/{path below the service}.
const servicesPrefix = "/api/v1/services/"

const servicesCallDoc = "调用方式：接入应用以签名请求调用 " + servicesPrefix + "{code}/{路径}（code 为信息资源代码，其中“/”写作 %2F），" +
	"须持有含“接口(api)”方式的有效授权，只转发已登记的操作；平台附加提供方凭据和 X-Govshare-Consumer-Dept、X-Govshare-App、" +
	"X-Govshare-Purpose、X-Request-Id，不转发签名头。错误码：service.unknown、service.operation_unknown(404)、share.no_grant(403)、" +
	"service.provider_down、service.response_too_large(502)、service.unavailable(503，熔断，带 Retry-After)、service.disabled(503)、service.timeout(504)。" +
	"每次调用都记入调用日志和审计日志。\n\n" +
	"Calling: an app sends a signed request to " + servicesPrefix + "{code}/{path} (code is the resource code, “/” written %2F). " +
	"It needs a valid grant with the interface (api) method; only registered operations are forwarded. The platform adds the provider's " +
	"credential and X-Govshare-Consumer-Dept, X-Govshare-App, X-Govshare-Purpose and X-Request-Id, and never forwards the signature headers. " +
	"Errors: service.unknown, service.operation_unknown (404), share.no_grant (403), service.provider_down, service.response_too_large (502), " +
	"service.unavailable (503, circuit open, with Retry-After), service.disabled (503), service.timeout (504). Every call is in the call log and the audit log."

type serviceOut struct {
	Body proxy.Service
}

type callQuery struct {
	ConsumerDeptID int64  `query:"consumer_dept_id" doc:"调用方部门 / consumer department"`
	AppKey         string `query:"app_key" doc:"调用的接入应用 / the consumer's app"`
	Operation      string `query:"operation" doc:"操作，如 GET /persons/{id} / operation"`
	Result         string `query:"result" enum:"ok,denied,error," doc:"结果 / result"`
	From           string `query:"from" doc:"起始时间(RFC 3339或YYYY-MM-DD) / from (RFC 3339 or YYYY-MM-DD)"`
	To             string `query:"to" doc:"截止时间(不含) / to (exclusive)"`
	Before         int64  `query:"before" doc:"翻页：返回ID小于此值的调用 / paging: calls with id below this"`
	Limit          int    `query:"limit" minimum:"0" maximum:"500" doc:"条数(默认50) / page size (default 50)"`
}

func (q callQuery) filter() (proxy.CallFilter, error) {
	from, err := parseTime("from", q.From)
	if err != nil {
		return proxy.CallFilter{}, err
	}
	to, err := parseTime("to", q.To)
	if err != nil {
		return proxy.CallFilter{}, err
	}
	return proxy.CallFilter{ConsumerDeptID: q.ConsumerDeptID, AppKey: q.AppKey, Operation: q.Operation, Result: q.Result, From: from, To: to,
		Before: q.Before, Limit: q.Limit}, nil
}

func (s *Server) servicesAPI(api huma.API) {
	const tag = "服务资源 Services"
	huma.Register(api, op("list-services", http.MethodGet, "/api/v1/service-resources", tag, "服务资源列表 / service resources"),
		func(ctx context.Context, in *struct {
			DeptID int64  `query:"dept_id" doc:"提供方部门，空为全部 / provider department; empty for all"`
			State  string `query:"state" enum:"active,disabled," doc:"状态 / state"`
		}) (*struct{ Body []proxy.Service }, error) {
			out, err := s.Proxy.List(ctx, principalFrom(ctx).actor(), proxy.ServiceFilter{DeptID: in.DeptID, State: in.State})
			if err != nil {
				return nil, s.fail(ctx, err)
			}
			return &struct{ Body []proxy.Service }{nonNil(out)}, nil
		})
	o := op("register-service", http.MethodPost, "/api/v1/service-resources", tag, "登记服务资源(部门已有的接口) / register a service resource (an API the department runs)")
	o.Description = "为本部门已发布、共享方式含接口(api)的目录条目登记接口：地址、操作(或 OpenAPI 文档)、凭据、超时和响应大小上限。\n\n" +
		"Registers an API for a published entry of your department that is shared by interface (api): its address, operations (or an OpenAPI document), credential, timeout and response limit.\n\n" +
		servicesCallDoc
	o.DefaultStatus = http.StatusCreated
	huma.Register(api, o, func(ctx context.Context, in *struct{ Body proxy.Registration }) (*serviceOut, error) {
		return s.serviceResult(ctx)(s.Proxy.Register(ctx, principalFrom(ctx).actor(), in.Body))
	})
	huma.Register(api, op("get-service", http.MethodGet, "/api/v1/service-resources/{id}", tag, "服务资源(操作、设置、熔断状态) / a service resource"),
		func(ctx context.Context, in *IDPath) (*serviceOut, error) {
			return s.serviceResult(ctx)(s.Proxy.Service(ctx, principalFrom(ctx).actor(), in.ID))
		})
	huma.Register(api, op("update-service", http.MethodPut, "/api/v1/service-resources/{id}", tag, "修改服务资源(凭据值留空则保留) / change a service resource (an empty credential value keeps it)"),
		func(ctx context.Context, in *struct {
			IDPath
			Body proxy.Settings
		}) (*serviceOut, error) {
			return s.serviceResult(ctx)(s.Proxy.Update(ctx, principalFrom(ctx).actor(), in.ID, in.Body))
		})
	huma.Register(api, op("control-service", http.MethodPost, "/api/v1/service-resources/{id}/{action}", tag, "停用或启用服务资源 / disable or enable a service resource"),
		func(ctx context.Context, in *struct {
			IDPath
			Action string `path:"action" enum:"disable,enable"`
		}) (*serviceOut, error) {
			state := proxy.Active
			if in.Action == "disable" {
				state = proxy.Disabled
			}
			return s.serviceResult(ctx)(s.Proxy.SetState(ctx, principalFrom(ctx).actor(), in.ID, state))
		})
	huma.Register(api, op("list-service-resource-calls", http.MethodGet, "/api/v1/service-resources/{id}/calls", tag,
		"服务资源的调用日志(提供方看全部，调用方部门看本部门的) / a service's call log (all to its provider, their own to consumers)"),
		func(ctx context.Context, in *struct {
			IDPath
			callQuery
		}) (*struct{ Body []proxy.Call }, error) {
			f, err := in.filter()
			if err != nil {
				return nil, s.fail(ctx, err)
			}
			f.ServiceID = in.ID
			out, err := s.Proxy.Calls(ctx, principalFrom(ctx).actor(), f)
			if err != nil {
				return nil, s.fail(ctx, err)
			}
			return &struct{ Body []proxy.Call }{nonNil(out)}, nil
		})
	huma.Register(api, op("service-stats", http.MethodGet, "/api/v1/service-resources/{id}/stats", tag,
		"服务资源的每日统计：调用、失败、拒绝、流量、耗时 p50/p99 / daily statistics: calls, failures, refusals, bytes, p50/p99 latency"),
		func(ctx context.Context, in *struct {
			IDPath
			Days int `query:"days" minimum:"0" maximum:"92" doc:"天数(含今天，默认7) / days, today included (default 7)"`
		}) (*struct{ Body []proxy.DayStats }, error) {
			out, err := s.Proxy.Stats(ctx, principalFrom(ctx).actor(), in.ID, in.Days)
			if err != nil {
				return nil, s.fail(ctx, err)
			}
			return &struct{ Body []proxy.DayStats }{nonNil(out)}, nil
		})
	huma.Register(api, op("list-service-calls", http.MethodGet, "/api/v1/service-calls", tag,
		"调用日志：本部门服务收到的和本部门发出的调用(平台管理员、审计员看全部) / the call log: calls to your department's services and your department's calls (all for platform administrators and auditors)"),
		func(ctx context.Context, in *struct {
			ServiceID      int64 `query:"service_id" doc:"服务资源 / service"`
			ProviderDeptID int64 `query:"provider_dept_id" doc:"提供方部门 / provider department"`
			callQuery
		}) (*struct{ Body []proxy.Call }, error) {
			f, err := in.filter()
			if err != nil {
				return nil, s.fail(ctx, err)
			}
			f.ServiceID, f.ProviderDeptID = in.ServiceID, in.ProviderDeptID
			out, err := s.Proxy.Calls(ctx, principalFrom(ctx).actor(), f)
			if err != nil {
				return nil, s.fail(ctx, err)
			}
			return &struct{ Body []proxy.Call }{nonNil(out)}, nil
		})

	s.mux.Handle(servicesPrefix+"{code}/", http.HandlerFunc(s.serviceCall))
}

func (s *Server) serviceResult(ctx context.Context) func(proxy.Service, error) (*serviceOut, error) {
	return func(v proxy.Service, err error) (*serviceOut, error) {
		if err != nil {
			return nil, s.fail(ctx, err)
		}
		return &serviceOut{Body: v}, nil
	}
}

// maxServiceRequest is the largest body a consumer may send to a service:
// it is read whole, to check its signature, before anything is forwarded.
const maxServiceRequest = 10 << 20

var errServiceRequestTooLarge = apperr.New(http.StatusRequestEntityTooLarge, "service.request_too_large", "请求体超过10 MiB", "the request body exceeds 10 MiB")

// serviceCall is a consumer's call to a service resource: verify the
// app's signature, permit (the service, the grant, the operation),
// forward, record. Every call that names a service ends in its call log
// and in the audit log, refused or not.
func (s *Server) serviceCall(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	started := time.Now()
	code, rest, ok := servicePath(r)
	if !ok {
		s.writeProblem(w, r, apperr.ErrNotFound)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxServiceRequest+1))
	if err != nil || len(body) > maxServiceRequest {
		s.writeProblem(w, r, errServiceRequestTooLarge)
		return
	}
	// Verify: a known app, its signature, its stated purpose.
	app, err := s.Apps.Verify(r.Context(), signedRequest(r, body))
	if err != nil {
		s.writeProblem(w, r, err)
		return
	}
	// Permit: the service, the department's grant by interface, the operation.
	call, err := s.Proxy.Open(ctx, proxy.Request{App: app, Actor: appActor(app), Code: code, Method: r.Method, Path: rest,
		Purpose: r.Header.Get(client.HeaderPurpose), Bytes: int64(len(body))})
	// Limits: the grant's and the app's requests per second.
	caller := dataservice.Caller{Actor: appActor(app), AppID: app.ID, Limits: app.Limits, Purpose: r.Header.Get(client.HeaderPurpose)}
	if err == nil && s.Data != nil {
		err = s.Data.AdmitCall(caller, call.Permit())
	}
	// Forward.
	if err == nil {
		err = s.Proxy.Forward(ctx, call, w, r, body)
	}
	// Record: the call log and the audit log.
	if rerr := s.Proxy.Record(ctx, call, err); rerr != nil {
		s.Log.Error("service call not recorded", "request_id", requestID(ctx), "service", code, "err", rerr)
	}
	// Usage statistics.
	if s.Data != nil {
		s.Data.RecordCall(caller, code, call.Permit(), started, err)
	}
	if err != nil && !call.Answered() {
		s.writeProblem(w, r, err)
	}
}

// servicePath splits /api/v1/services/{code}/{rest} into the code and
// the rest as sent (escaped), which is what the provider gets.
func servicePath(r *http.Request) (code, rest string, ok bool) {
	tail, ok := strings.CutPrefix(r.URL.EscapedPath(), servicesPrefix)
	i := strings.IndexByte(tail, '/')
	if !ok || i <= 0 {
		return "", "", false
	}
	code, err := url.PathUnescape(tail[:i])
	if err != nil {
		return "", "", false
	}
	return code, tail[i:], true
}

// appActor is an app acting for its department, as appAuth lets it act.
func appActor(app share.App) policy.Actor {
	p := principal{User: identity.User{Login: "app:" + app.Key, Name: app.Name, DeptID: app.DeptID, Roles: []policy.Role{policy.Consumer, policy.AppClient},
		Status: identity.StatusActive}, App: &app}
	return p.actor()
}

// writeProblem answers a route outside huma with a problem document, as
// writeAPIError does inside.
func (s *Server) writeProblem(w http.ResponseWriter, r *http.Request, err error) {
	ae, ok := apperr.As(err)
	if !ok {
		s.Log.Error("request failed", "request_id", requestID(r.Context()), "err", err)
	} else if ae.RetryAfter > 0 {
		w.Header().Set("Retry-After", retryAfter(ae.RetryAfter))
	}
	p := problemFrom(err, requestID(r.Context()))
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(p.Status)
	_ = json.NewEncoder(w).Encode(p)
}
