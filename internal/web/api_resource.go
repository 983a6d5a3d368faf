package web

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"govshare/internal/apperr"
	"govshare/internal/audit"
	"govshare/internal/resource"
)

type CodePath struct {
	Code string `path:"code" doc:"信息资源代码(含“/”时请转义为 %2F) / resource code (escape “/” as %2F)"`
}

type resourceOut struct {
	Body struct {
		resource.Resource
		Timeliness resource.Timeliness `json:"timeliness"`
	}
}

func (s *Server) resourceOut(r resource.Resource) *resourceOut {
	out := &resourceOut{}
	out.Body.Resource = r
	out.Body.Timeliness = r.Timeliness(time.Now())
	return out
}

type batchIn struct {
	CodePath
	ContentType string `header:"Content-Type" doc:"text/csv 或 application/x-ndjson(JSON Lines) / text/csv or application/x-ndjson"`
	BatchID     string `query:"batch_id" doc:"客户端批次号：同一批次号只入库一次 / client batch id: a batch with the same id is applied once"`
	MaxErrors   int    `query:"max_errors" doc:"允许的问题记录数，超过则整批不入库；默认1000，-1不限 / records allowed to fail before the whole batch is refused; default 1000, -1 no limit"`
	RawBody     []byte `contentType:"text/csv"`
}

type batchOut struct {
	Status int `json:"-"`
	Body   resource.Batch
}

type BatchPath struct {
	CodePath
	ID int64 `path:"id"`
}

type resubmitIn struct {
	BatchPath
	Body struct {
		Values []string `json:"values" doc:"修正后的值，按信息项顺序 / corrected values in column order"`
	}
}

type discardIn struct {
	BatchPath
	Body struct {
		Reason string `json:"reason" doc:"丢弃理由 / reason"`
	}
}

type historyIn struct {
	CodePath
	Key string `query:"key" required:"true" doc:"主键值，多个主键以逗号分隔 / key values, comma-separated"`
	At  string `query:"at" doc:"只看此时刻之前的状态(RFC 3339) / only states up to this time"`
}

type historyOut struct {
	Body struct {
		Columns  []resource.Column        `json:"columns"`
		Versions []resource.RecordVersion `json:"versions"`
	}
}

type zeroIn struct {
	CodePath
	Body struct {
		Note string `json:"note,omitempty" doc:"说明 / note"`
	}
}

// errPushAppsOnly refuses a push that is not a signed app request.
var errPushAppsOnly = apperr.New(http.StatusForbidden, "resource.push_apps_only", "推送接口只接受提供部门接入应用的签名请求；人工上传请使用资源页面或 govshare data upload",
	"the push API takes signed requests of the provider department's apps only; people upload on the resource's page or with govshare data upload")

// unescapeCode accepts resource codes with their "/" escaped.
func unescapeCode(c string) string {
	return strings.ReplaceAll(strings.ReplaceAll(c, "%2F", "/"), "%2f", "/")
}

func (s *Server) resourceAPI(api huma.API) {
	const tag = "数据归集 Data in"
	o := op("mount-entry", http.MethodPost, "/api/v1/catalog/entries/{id}/mount", tag, "挂接资源：在平台库中建表 / mount: create the resource's table")
	huma.Register(api, o, func(ctx context.Context, in *IDPath) (*resourceOut, error) {
		r, err := s.Resources.Mount(ctx, principalFrom(ctx).actor(), in.ID)
		if err != nil {
			return nil, s.fail(ctx, err)
		}
		return s.resourceOut(r), nil
	})
	huma.Register(api, op("list-resources", http.MethodGet, "/api/v1/resources", tag, "已挂接的资源 / mounted resources"),
		func(ctx context.Context, in *struct {
			DeptID int64 `query:"dept_id"`
		}) (*struct{ Body []resource.Resource }, error) {
			rs, err := s.Resources.List(ctx, in.DeptID)
			if err != nil {
				return nil, s.fail(ctx, err)
			}
			if rs == nil {
				rs = []resource.Resource{}
			}
			return &struct{ Body []resource.Resource }{rs}, nil
		})
	huma.Register(api, op("get-resource", http.MethodGet, "/api/v1/resources/{code}", tag, "资源概况：记录数、更新、质量、时效 / a resource: records, updates, quality, timeliness"),
		func(ctx context.Context, in *CodePath) (*resourceOut, error) {
			r, err := s.Resources.ByCode(ctx, unescapeCode(in.Code))
			if err != nil {
				return nil, s.fail(ctx, err)
			}
			return s.resourceOut(r), nil
		})
	o = op("push-batch", http.MethodPost, "/api/v1/resources/{code}/batches", tag, "推送一批数据 / push a batch")
	o.Description = "提供部门的接入应用(签名请求)或数据管理员推送 CSV(首行为表头)或 JSON Lines(每行一个对象，以字段名为键；\"_op\":\"delete\" 按主键删除)。" +
		"同一 batch_id 只入库一次，重复提交返回首次结果(200)。\n\nThe provider department's apps (signed) or data administrators push CSV (header first) or JSON Lines " +
		"(one object per line keyed by machine names; \"_op\":\"delete\" deletes by key). A batch_id is applied once; sending it again answers the first result (200)."
	o.DefaultStatus = http.StatusCreated
	o.MaxBodyBytes = 64 << 20
	huma.Register(api, o, func(ctx context.Context, in *batchIn) (*batchOut, error) {
		code := unescapeCode(in.Code)
		r, err := s.Resources.ByCode(ctx, code)
		if err != nil {
			return nil, s.fail(ctx, err)
		}
		var rows resource.Rows
		switch ct := strings.ToLower(in.ContentType); {
		case strings.Contains(ct, "ndjson") || strings.Contains(ct, "jsonl") || strings.Contains(ct, "json"):
			rows = resource.JSONRows(bytes.NewReader(in.RawBody), r.Visible())
		case strings.Contains(ct, "csv") || ct == "":
			if rows, err = resource.CSVRows(bytes.NewReader(in.RawBody)); err != nil {
				return nil, s.fail(ctx, err)
			}
		default:
			return nil, s.fail(ctx, apperr.New(http.StatusUnsupportedMediaType, "resource.content_type", "请以 text/csv 或 application/x-ndjson 提交",
				"send text/csv or application/x-ndjson").OnField("Content-Type"))
		}
		p := principalFrom(ctx)
		if p.App == nil {
			// Systems push; people upload on the resource's page.
			_ = s.Audit.Append(ctx, audit.By(p.actor(), "data.push", "resource", code, audit.ResultDenied, map[string]any{"reason": "not an app"}))
			return nil, s.fail(ctx, errPushAppsOnly)
		}
		detail := p.App.Key
		b, err := s.Resources.Submit(ctx, p.actor(), code, resource.SubmitOptions{Source: resource.SourceAPI, Detail: detail,
			ClientBatchID: in.BatchID, MaxErrors: in.MaxErrors}, rows)
		if err != nil {
			return nil, s.fail(ctx, err)
		}
		status := http.StatusCreated
		if b.Replayed {
			status = http.StatusOK
		}
		return &batchOut{Status: status, Body: b}, nil
	})
	huma.Register(api, op("list-batches", http.MethodGet, "/api/v1/resources/{code}/batches", tag, "批次与质量报告 / batches with their quality reports"),
		func(ctx context.Context, in *CodePath) (*struct{ Body []resource.Batch }, error) {
			bs, err := s.Resources.Batches(ctx, principalFrom(ctx).actor(), unescapeCode(in.Code), 100)
			if err != nil {
				return nil, s.fail(ctx, err)
			}
			if bs == nil {
				bs = []resource.Batch{}
			}
			return &struct{ Body []resource.Batch }{bs}, nil
		})
	huma.Register(api, op("get-batch", http.MethodGet, "/api/v1/resources/{code}/batches/{id}", tag, "一个批次 / a batch"),
		func(ctx context.Context, in *BatchPath) (*batchOut, error) {
			b, err := s.Resources.BatchFor(ctx, principalFrom(ctx).actor(), unescapeCode(in.Code), in.ID)
			if err != nil {
				return nil, s.fail(ctx, err)
			}
			return &batchOut{Body: b}, nil
		})
	huma.Register(api, op("list-quarantine", http.MethodGet, "/api/v1/resources/{code}/quarantine", tag, "问题数据 / quarantined records"),
		func(ctx context.Context, in *struct {
			CodePath
			State string `query:"state" enum:"open,resubmitted,discarded"`
		}) (*struct{ Body []resource.Quarantined }, error) {
			q, err := s.Resources.Quarantine(ctx, principalFrom(ctx).actor(), unescapeCode(in.Code), in.State, 0)
			if err != nil {
				return nil, s.fail(ctx, err)
			}
			if q == nil {
				q = []resource.Quarantined{}
			}
			return &struct{ Body []resource.Quarantined }{q}, nil
		})
	huma.Register(api, op("resubmit-quarantined", http.MethodPost, "/api/v1/resources/{code}/quarantine/{id}/resubmit", tag, "修正后重新提交 / resubmit a corrected record"),
		func(ctx context.Context, in *resubmitIn) (*batchOut, error) {
			b, viol, err := s.Resources.Resubmit(ctx, principalFrom(ctx).actor(), unescapeCode(in.Code), in.ID, in.Body.Values)
			if err != nil {
				if len(viol) > 0 {
					if ae, ok := apperr.As(err); ok {
						v := viol[0]
						err = ae.With(ae.ZH+"："+v.ZH, ae.EN+": "+v.EN).OnField(v.Item)
					}
				}
				return nil, s.fail(ctx, err)
			}
			return &batchOut{Body: b}, nil
		})
	o = op("discard-quarantined", http.MethodPost, "/api/v1/resources/{code}/quarantine/{id}/discard", tag, "丢弃问题数据(须说明理由) / discard a record with a reason")
	o.DefaultStatus = http.StatusNoContent
	huma.Register(api, o, func(ctx context.Context, in *discardIn) (*struct{}, error) {
		if err := s.Resources.Discard(ctx, principalFrom(ctx).actor(), unescapeCode(in.Code), in.ID, in.Body.Reason); err != nil {
			return nil, s.fail(ctx, err)
		}
		return nil, nil
	})
	huma.Register(api, op("record-history", http.MethodGet, "/api/v1/resources/{code}/history", tag, "记录的历史与血缘 / a record's history and lineage"),
		func(ctx context.Context, in *historyIn) (*historyOut, error) {
			var at time.Time
			if in.At != "" {
				var err error
				if at, err = time.Parse(time.RFC3339, in.At); err != nil {
					return nil, s.fail(ctx, apperr.Invalid("resource.at_invalid", "at", "时间格式应为 RFC 3339，如 2026-11-20T10:00:00+08:00", "at is RFC 3339, e.g. 2026-11-20T10:00:00+08:00"))
				}
			}
			vs, cols, err := s.Resources.History(ctx, principalFrom(ctx).actor(), unescapeCode(in.Code), strings.Split(in.Key, ","), at)
			if err != nil {
				return nil, s.fail(ctx, err)
			}
			out := &historyOut{}
			out.Body.Columns, out.Body.Versions = cols, vs
			if out.Body.Versions == nil {
				out.Body.Versions = []resource.RecordVersion{}
			}
			return out, nil
		})
	huma.Register(api, op("preview-resource", http.MethodGet, "/api/v1/resources/{code}/preview", tag, "数据预览(已脱敏) / masked preview"),
		func(ctx context.Context, in *CodePath) (*struct{ Body resource.Preview }, error) {
			p, err := s.Resources.Preview(ctx, principalFrom(ctx).actor(), unescapeCode(in.Code), 10, s.Masker)
			if err != nil {
				return nil, s.fail(ctx, err)
			}
			return &struct{ Body resource.Preview }{p}, nil
		})
	o = op("zero-report", http.MethodPost, "/api/v1/resources/{code}/zero-reports", tag, "零上报：本周期无变化 / zero report: no change this cycle")
	o.DefaultStatus = http.StatusCreated
	huma.Register(api, o, func(ctx context.Context, in *zeroIn) (*resourceOut, error) {
		r, err := s.Resources.ZeroReport(ctx, principalFrom(ctx).actor(), unescapeCode(in.Code), in.Body.Note)
		if err != nil {
			return nil, s.fail(ctx, err)
		}
		return s.resourceOut(r), nil
	})
	huma.Register(api, op("resource-volume", http.MethodGet, "/api/v1/resources/{code}/volume", tag, "每日入库记录数 / records in per day"),
		func(ctx context.Context, in *struct {
			CodePath
			Days int `query:"days" doc:"天数(≤366) / days"`
		}) (*struct{ Body []resource.Volume }, error) {
			v, err := s.Resources.Volume(ctx, unescapeCode(in.Code), in.Days)
			if err != nil {
				return nil, s.fail(ctx, err)
			}
			return &struct{ Body []resource.Volume }{v}, nil
		})
}
