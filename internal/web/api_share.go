package web

import (
	"context"
	"net/http"
	"net/url"
	"strings"

	"github.com/danielgtaylor/huma/v2"

	"govshare/internal/catalog"
	"govshare/internal/share"
)

type applyBody struct {
	Body struct {
		EntryID int64 `json:"entry_id" doc:"目录条目ID / catalog entry id"`
		share.Terms
	}
}

type applicationOut struct {
	Body share.Application
}

type decisionBody struct {
	Body struct {
		Decision *share.Terms `json:"decision,omitempty" doc:"批准的内容(可缩小信息项、方式、期限、行范围，设定频率和配额)；空为按申请批准 / what is approved (may narrow items, methods, period, row scope; set limits); empty approves the request"`
		Note     string       `json:"note,omitempty" doc:"说明 / note"`
	}
}

type reasonBody struct {
	Body struct {
		Reason string `json:"reason" doc:"理由 / reason"`
	}
}

type noteBody struct {
	Body struct {
		Note string `json:"note" doc:"说明 / note"`
	}
}

type ruleBody struct {
	Body struct {
		Outcome  string       `json:"outcome" enum:"share,refuse" doc:"share 裁定共享；refuse 维持不予共享 / share: ruled to share; refuse: refusal upheld"`
		Note     string       `json:"note" doc:"协调结果说明 / outcome"`
		Decision *share.Terms `json:"decision,omitempty" doc:"裁定提供的内容，空为按申请 / what must be provided; empty: as requested"`
	}
}

type appListQuery struct {
	Side    string `query:"side" enum:"consumer,provider,all" doc:"consumer 本部门提出的；provider 向本部门提出的；all 全部(平台管理员) / consumer, provider or all"`
	State   string `query:"state" doc:"状态 / state"`
	Kind    string `query:"kind" doc:"subscription/application/negotiation"`
	EntryID int64  `query:"entry_id"`
	Limit   int    `query:"limit" doc:"最多条数(≤500) / at most (≤500)"`
	Offset  int    `query:"offset"`
}

type grantOut struct {
	Body share.Grant
}

type grantListQuery struct {
	Side    string `query:"side" enum:"mine,given,all" doc:"mine 本部门获得的；given 本部门给出的；all 全部(平台管理员) / mine, given or all"`
	State   string `query:"state" enum:"active,expired,revoked"`
	EntryID int64  `query:"entry_id"`
	Limit   int    `query:"limit"`
	Offset  int    `query:"offset"`
}

type permitQuery struct {
	Resource string `query:"resource" required:"true" doc:"信息资源代码 / resource code"`
	Items    string `query:"items" doc:"逗号分隔的信息项，空为全部已授权项 / comma-separated items; empty: every granted item"`
	Method   string `query:"method" required:"true" enum:"api,file,exchange,verify" doc:"共享方式 / share method"`
}

type attachmentUpload struct {
	ID      int64  `path:"id"`
	Name    string `query:"name" required:"true" doc:"文件名 / file name"`
	RawBody []byte `contentType:"application/octet-stream"`
}

type attachmentPath struct {
	ID  int64 `path:"id"`
	AID int64 `path:"aid"`
}

type attachmentOut struct {
	ContentType        string `header:"Content-Type"`
	ContentDisposition string `header:"Content-Disposition"`
	Body               []byte
}

func (s *Server) shareAPI(api huma.API) {
	const tag = "共享 Sharing"
	huma.Register(api, op("list-applications", http.MethodGet, "/api/v1/applications", tag, "共享申请列表 / list applications"),
		func(ctx context.Context, in *appListQuery) (*struct{ Body []share.Application }, error) {
			out, err := s.Share.Applications(ctx, principalFrom(ctx).actor(), share.ListFilter{Side: in.Side, State: share.State(in.State), Kind: share.Kind(in.Kind),
				EntryID: in.EntryID, Limit: in.Limit, Offset: in.Offset})
			if err != nil {
				return nil, s.fail(ctx, err)
			}
			if out == nil {
				out = []share.Application{}
			}
			return &struct{ Body []share.Application }{out}, nil
		})
	o := op("create-application", http.MethodPost, "/api/v1/applications", tag, "申请、订阅或协商 / apply, subscribe or negotiate")
	o.Description = "无条件共享资源立即授权(订阅)；有条件共享资源进入提供方审批；不予共享资源成为协商请求。\n\n" +
		"An unconditional resource is granted at once (a subscription); a conditional one waits on the provider; a resource that is not shared becomes a negotiation request."
	o.DefaultStatus = http.StatusCreated
	huma.Register(api, o, func(ctx context.Context, in *applyBody) (*applicationOut, error) {
		a, err := s.Share.Apply(ctx, principalFrom(ctx).actor(), in.Body.EntryID, in.Body.Terms)
		if err != nil {
			return nil, s.fail(ctx, err)
		}
		return &applicationOut{a}, nil
	})
	huma.Register(api, op("get-application", http.MethodGet, "/api/v1/applications/{id}", tag, "申请详情与全过程 / an application with its timeline"),
		func(ctx context.Context, in *IDPath) (*applicationOut, error) {
			return s.appResult(ctx)(s.Share.Application(ctx, principalFrom(ctx).actor(), in.ID))
		})
	huma.Register(api, op("accept-application", http.MethodPost, "/api/v1/applications/{id}/accept", tag, "受理 / accept"),
		func(ctx context.Context, in *IDPath) (*applicationOut, error) {
			return s.appResult(ctx)(s.Share.Accept(ctx, principalFrom(ctx).actor(), in.ID))
		})
	huma.Register(api, op("approve-application", http.MethodPost, "/api/v1/applications/{id}/approve", tag, "同意(可调整) / approve, possibly with changes"),
		func(ctx context.Context, in *struct {
			IDPath
			decisionBody
		}) (*applicationOut, error) {
			return s.appResult(ctx)(s.Share.Approve(ctx, principalFrom(ctx).actor(), in.ID, in.Body.Decision, in.Body.Note))
		})
	huma.Register(api, op("reject-application", http.MethodPost, "/api/v1/applications/{id}/reject", tag, "不予同意(须说明理由) / reject with a reason"),
		func(ctx context.Context, in *struct {
			IDPath
			reasonBody
		}) (*applicationOut, error) {
			return s.appResult(ctx)(s.Share.Reject(ctx, principalFrom(ctx).actor(), in.ID, in.Body.Reason))
		})
	huma.Register(api, op("withdraw-application", http.MethodPost, "/api/v1/applications/{id}/withdraw", tag, "撤回 / withdraw"),
		func(ctx context.Context, in *IDPath) (*applicationOut, error) {
			return s.appResult(ctx)(s.Share.Withdraw(ctx, principalFrom(ctx).actor(), in.ID))
		})
	huma.Register(api, op("escalate-application", http.MethodPost, "/api/v1/applications/{id}/escalate", tag, "提请协调 / escalate for coordination"),
		func(ctx context.Context, in *struct {
			IDPath
			reasonBody
		}) (*applicationOut, error) {
			return s.appResult(ctx)(s.Share.Escalate(ctx, principalFrom(ctx).actor(), in.ID, in.Body.Reason))
		})
	huma.Register(api, op("rule-application", http.MethodPost, "/api/v1/applications/{id}/rule", tag, "记录协调结果 / record the coordination outcome"),
		func(ctx context.Context, in *struct {
			IDPath
			ruleBody
		}) (*applicationOut, error) {
			return s.appResult(ctx)(s.Share.Rule(ctx, principalFrom(ctx).actor(), in.ID, in.Body.Outcome, in.Body.Note, in.Body.Decision))
		})
	huma.Register(api, op("provide-application", http.MethodPost, "/api/v1/applications/{id}/provide", tag, "按裁定提供 / provide as ruled"),
		func(ctx context.Context, in *struct {
			IDPath
			noteBody
		}) (*applicationOut, error) {
			return s.appResult(ctx)(s.Share.Provide(ctx, principalFrom(ctx).actor(), in.ID, in.Body.Note))
		})
	huma.Register(api, op("answer-negotiation", http.MethodPost, "/api/v1/applications/{id}/answer", tag, "答复协商请求 / answer a negotiation request"),
		func(ctx context.Context, in *struct {
			IDPath
			noteBody
		}) (*applicationOut, error) {
			return s.appResult(ctx)(s.Share.Answer(ctx, principalFrom(ctx).actor(), in.ID, in.Body.Note))
		})
	o = op("upload-attachment", http.MethodPost, "/api/v1/applications/{id}/attachments", tag, "上传附件(如安全保密协议) / attach a file, e.g. a security agreement")
	o.DefaultStatus = http.StatusCreated
	o.MaxBodyBytes = share.MaxAttachment + 1024
	huma.Register(api, o, func(ctx context.Context, in *attachmentUpload) (*struct{ Body share.Attachment }, error) {
		at, err := s.Share.Attach(ctx, principalFrom(ctx).actor(), in.ID, in.Name, "", in.RawBody)
		if err != nil {
			return nil, s.fail(ctx, err)
		}
		return &struct{ Body share.Attachment }{at}, nil
	})
	huma.Register(api, op("get-attachment", http.MethodGet, "/api/v1/applications/{id}/attachments/{aid}", tag, "下载附件 / download an attachment"),
		func(ctx context.Context, in *attachmentPath) (*attachmentOut, error) {
			at, data, err := s.Share.AttachmentData(ctx, principalFrom(ctx).actor(), in.ID, in.AID)
			if err != nil {
				return nil, s.fail(ctx, err)
			}
			return &attachmentOut{ContentType: at.ContentType, ContentDisposition: attachmentDisposition(at.Name), Body: data}, nil
		})
	huma.Register(api, op("list-grants", http.MethodGet, "/api/v1/grants", tag, "授权列表 / list grants"),
		func(ctx context.Context, in *grantListQuery) (*struct{ Body []share.Grant }, error) {
			out, err := s.Share.Grants(ctx, principalFrom(ctx).actor(), share.GrantFilter{Side: in.Side, State: in.State, EntryID: in.EntryID, Limit: in.Limit, Offset: in.Offset})
			if err != nil {
				return nil, s.fail(ctx, err)
			}
			if out == nil {
				out = []share.Grant{}
			}
			return &struct{ Body []share.Grant }{out}, nil
		})
	o = op("check-grant", http.MethodGet, "/api/v1/grants/check", tag, "检查授权 / may I use these items by this method now")
	o.Description = "以调用者(接入应用或用户)所在部门检查：是否有有效授权覆盖所列信息项和共享方式；返回授权、各信息项的脱敏规则、行范围和频率配额。\n\n" +
		"Checks for the caller's department (and app): whether a valid grant covers the items and method; returns the grant, each item's masking, the row scope and limits."
	huma.Register(api, o, func(ctx context.Context, in *permitQuery) (*struct{ Body share.Permit }, error) {
		p := principalFrom(ctx)
		use := share.Use{Resource: in.Resource, Method: catalog.ShareMethod(in.Method)}
		if p.App != nil {
			use.AppID = p.App.ID
		}
		for _, it := range strings.Split(in.Items, ",") {
			if it = strings.TrimSpace(it); it != "" {
				use.Items = append(use.Items, it)
			}
		}
		permit, err := s.Share.PermitFor(ctx, p.actor(), use)
		if err != nil {
			return nil, s.fail(ctx, err)
		}
		return &struct{ Body share.Permit }{permit}, nil
	})
	huma.Register(api, op("get-grant", http.MethodGet, "/api/v1/grants/{id}", tag, "授权详情 / a grant"),
		func(ctx context.Context, in *IDPath) (*grantOut, error) {
			g, err := s.Share.Grant(ctx, principalFrom(ctx).actor(), in.ID)
			if err != nil {
				return nil, s.fail(ctx, err)
			}
			return &grantOut{g}, nil
		})
	huma.Register(api, op("revoke-grant", http.MethodPost, "/api/v1/grants/{id}/revoke", tag, "撤销授权(须说明理由) / revoke a grant with a reason"),
		func(ctx context.Context, in *struct {
			IDPath
			reasonBody
		}) (*grantOut, error) {
			g, err := s.Share.RevokeGrant(ctx, principalFrom(ctx).actor(), in.ID, in.Body.Reason)
			if err != nil {
				return nil, s.fail(ctx, err)
			}
			return &grantOut{g}, nil
		})
	o = op("ping", http.MethodGet, "/api/v1/ping", "系统 System", "连通性检查(须认证) / authenticated no-op")
	o.Description = "返回调用者身份和所声明的用途，用于检查令牌或应用签名是否正确。\n\nReturns who is calling and the stated purpose: a way to check a token or an app signature."
	huma.Register(api, o, func(ctx context.Context, _ *struct{}) (*struct{ Body pingOut }, error) {
		p := principalFrom(ctx)
		out := pingOut{Login: p.User.Login, DeptID: p.User.DeptID}
		if p.App != nil {
			out.App = p.App.Key
		}
		return &struct{ Body pingOut }{out}, nil
	})
}

type pingOut struct {
	Login  string `json:"login" doc:"调用者 / caller"`
	DeptID int64  `json:"dept_id"`
	App    string `json:"app,omitempty" doc:"接入应用 / app key"`
}

func (s *Server) appResult(ctx context.Context) func(share.Application, error) (*applicationOut, error) {
	return func(a share.Application, err error) (*applicationOut, error) {
		if err != nil {
			return nil, s.fail(ctx, err)
		}
		return &applicationOut{a}, nil
	}
}

// attachmentDisposition names a download, with the UTF-8 name for
// browsers and an ASCII fallback.
func attachmentDisposition(name string) string {
	ascii := strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e || r == '"' || r == '\\' {
			return '_'
		}
		return r
	}, name)
	return `attachment; filename="` + ascii + `"; filename*=UTF-8''` + url.PathEscape(name)
}
