package web

import (
	"bytes"
	"context"
	"encoding/csv"
	"net/http"
	"net/url"
	"strconv"

	"github.com/danielgtaylor/huma/v2"

	"govshare/internal/audit"
	"govshare/internal/dataservice"
	"govshare/internal/jsontext"
)

const dataTag = "数据服务 Data services"

// dataCaller is the caller of a data service: the signed app, or a
// person of the department, with the purpose stated in X-Purpose.
func dataCaller(ctx context.Context) dataservice.Caller {
	p := principalFrom(ctx)
	c := dataservice.Caller{Actor: p.actor(), Purpose: audit.RequestFrom(ctx).Purpose}
	if p.App != nil {
		c.AppID, c.Limits = p.App.ID, p.App.Limits
	}
	return c
}

// DataQueryParams are the query's parameters, as ParseRequest reads them.
type DataQueryParams struct {
	Filter []string `query:"filter,explode" doc:"筛选，可重复：信息项:运算符:值，运算符 eq/in/gt/ge/lt/le/prefix，in 的值以逗号分隔；只能用主键或唯一性信息项 / filter, repeatable: item:op:value with op eq/in/gt/ge/lt/le/prefix (in: comma-separated values); key and unique items only" example:"id_number:eq:110101199003074514"`
	Fields string   `query:"fields" doc:"返回的信息项，逗号分隔，默认全部授权信息项 / items to return, comma-separated; default every granted item"`
	Sort   string   `query:"sort" doc:"排序信息项(主键或唯一性信息项)，前加 - 为降序 / sort item (key or unique), - for descending"`
	Limit  int      `query:"limit" doc:"每页记录数 1-1000，默认100 / records per page, 1-1000, default 100"`
	Cursor string   `query:"cursor" doc:"上一页返回的 next_cursor / next_cursor of the previous page"`
}

func (p DataQueryParams) values() url.Values {
	v := url.Values{"filter": p.Filter}
	if p.Fields != "" {
		v.Set("fields", p.Fields)
	}
	if p.Sort != "" {
		v.Set("sort", p.Sort)
	}
	if p.Limit != 0 {
		v.Set("limit", strconv.Itoa(p.Limit))
	}
	if p.Cursor != "" {
		v.Set("cursor", p.Cursor)
	}
	return v
}

type dataQueryInput struct {
	Resource string `path:"resource" doc:"信息资源代码 / resource code"`
	DataQueryParams
	Format string `query:"format" enum:"json,csv" default:"json" doc:"json 或 csv / json or csv"`
}

type dataQueryOutput struct {
	ContentType string `header:"Content-Type"`
	NextCursor  string `header:"X-Next-Cursor"`
	Body        []byte
}

// dataJSON is the JSON shape of a page, documented for the reference.
type dataJSON struct {
	Resource string               `json:"resource"`
	Items    []string             `json:"items"`
	Records  []map[string]*string `json:"records"`
	Next     string               `json:"next_cursor,omitempty"`
}

// appendDataJSON writes a page as dataJSON says, each record's items in
// the page's order: what encoding/json would write for it, without a map
// per record (whose keys it would sort) or reflection.
func appendDataJSON(b []byte, res dataservice.Result) []byte {
	b = append(b, `{"resource":`...)
	b = jsontext.AppendString(b, res.Resource)
	b = append(b, `,"items":[`...)
	for i, it := range res.Items {
		if i > 0 {
			b = append(b, ',')
		}
		b = jsontext.AppendString(b, it)
	}
	b = append(b, `],"records":[`...)
	for i, r := range res.Records {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '{')
		for j, v := range r {
			if j > 0 {
				b = append(b, ',')
			}
			b = jsontext.AppendString(b, res.Items[j])
			b = append(b, ':')
			if v == nil {
				b = append(b, "null"...)
			} else {
				b = jsontext.AppendString(b, *v)
			}
		}
		b = append(b, '}')
	}
	b = append(b, ']')
	if res.Next != "" {
		b = append(b, `,"next_cursor":`...)
		b = jsontext.AppendString(b, res.Next)
	}
	return append(b, "}\n"...)
}

func (s *Server) dataAPI(api huma.API) {
	q := op("query-data", http.MethodGet, "/api/v1/data/{resource}", dataTag,
		"查询授权数据 / query granted data (联机查询/接口服务)")
	q.Description = "只返回授权的信息项，按授权与信息项的脱敏规则脱敏，限于授权的行范围；用途(X-Purpose)必填并记录。" +
		"JSON 答复为 {resource, items, records:[{信息项:值}], next_cursor}；CSV 首行为信息项字段名，下一页游标在 X-Next-Cursor 头。超过限额返回429及 Retry-After。\n\n" +
		"Only granted items are returned, masked as the grant and the items say, within the grant's row scope; the purpose (X-Purpose) is required and recorded. " +
		"JSON answers {resource, items, records:[{item: value}], next_cursor}; CSV has the item names in its first line and the next cursor in X-Next-Cursor. Over a limit: 429 with Retry-After."
	q.Errors = append(errorStatuses, http.StatusTooManyRequests)
	huma.Register(api, q, func(ctx context.Context, in *dataQueryInput) (*dataQueryOutput, error) {
		req, err := dataservice.ParseRequest(in.values())
		var res dataservice.Result
		if err == nil {
			res, err = s.Data.Query(ctx, dataCaller(ctx), in.Resource, req)
		}
		// The nonce is used up (with the query's audit event, or now)
		// before anything is answered.
		if cerr := s.settleClaim(ctx); cerr != nil {
			return nil, s.fail(ctx, cerr)
		}
		if err != nil {
			return nil, s.fail(ctx, err)
		}
		out := &dataQueryOutput{NextCursor: res.Next}
		var buf bytes.Buffer
		if in.Format == "csv" {
			out.ContentType = "text/csv; charset=utf-8"
			w := csv.NewWriter(&buf)
			_ = w.Write(res.Items)
			rec := make([]string, len(res.Items))
			for _, r := range res.Records {
				for i, v := range r {
					rec[i] = ""
					if v != nil {
						rec[i] = *v
					}
				}
				_ = w.Write(rec)
			}
			w.Flush()
		} else {
			out.ContentType = "application/json"
			buf.Write(appendDataJSON(make([]byte, 0, 256+len(res.Records)*64*len(res.Items)), res))
		}
		out.Body = buf.Bytes()
		return out, nil
	})

	v := op("verify-data", http.MethodPost, "/api/v1/verify/{resource}", dataTag,
		"比对核验 / compare records (数据比对，数据不落地)")
	v.Description = "提交最多1000条记录(含主键信息项)，答复每条记录一致(match)、逐项不一致(mismatch)或未找到(not_found)，从不返回存储的数据。\n\n" +
		"Send up to 1,000 records (each with the key items); the answer per record is match, mismatch per item, or not_found — never the stored values."
	v.Errors = append(errorStatuses, http.StatusTooManyRequests)
	huma.Register(api, v, func(ctx context.Context, in *struct {
		Resource string `path:"resource" doc:"信息资源代码 / resource code"`
		Body     dataservice.VerifyRequest
	}) (*struct{ Body dataservice.VerifyResult }, error) {
		res, err := s.Data.Verify(ctx, dataCaller(ctx), in.Resource, in.Body)
		if cerr := s.settleClaim(ctx); cerr != nil {
			return nil, s.fail(ctx, cerr)
		}
		if err != nil {
			return nil, s.fail(ctx, err)
		}
		return &struct{ Body dataservice.VerifyResult }{Body: res}, nil
	})

	d := op("download-data", http.MethodGet, "/api/v1/data/{resource}/download", dataTag,
		"批量下载 / download granted data (CSV or .xlsx)")
	d.Description = "流式下载授权信息项(可加筛选)，末列 _watermark 标明使用部门、应用、授权、时间和下载编号(.xlsx 同时写入文件属性)；开始前记审计，结束后记行数。\n\n" +
		"Streams the granted items (optionally filtered); the last column _watermark names the consumer, app, grant, time and download id (.xlsx also in its properties); audited before it starts and with its row count when done."
	d.Errors = append(errorStatuses, http.StatusTooManyRequests)
	d.Responses = map[string]*huma.Response{"200": {Description: "CSV / .xlsx", Content: map[string]*huma.MediaType{"text/csv": {},
		"application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": {}}}}
	huma.Register(api, d, func(ctx context.Context, in *struct {
		Resource string `path:"resource" doc:"信息资源代码 / resource code"`
		DataQueryParams
		Format string `query:"format" enum:"csv,xlsx" default:"csv" doc:"csv 或 xlsx / csv or xlsx"`
	}) (*huma.StreamResponse, error) {
		req, err := dataservice.ParseRequest(in.values())
		if err != nil {
			return nil, s.fail(ctx, err)
		}
		dl, err := s.Data.PrepareDownload(ctx, dataCaller(ctx), in.Resource, req, in.Format)
		if err != nil {
			return nil, s.fail(ctx, err)
		}
		return &huma.StreamResponse{Body: func(hctx huma.Context) {
			hctx.SetHeader("Content-Type", dl.ContentType())
			hctx.SetHeader("Content-Disposition", `attachment; filename="`+dl.Filename()+`"`)
			hctx.SetHeader("X-Download-Id", dl.ID)
			hctx.SetStatus(http.StatusOK)
			if _, err := dl.Write(ctx, hctx.BodyWriter()); err != nil {
				s.Log.Warn("download interrupted", "request_id", requestID(ctx), "download", dl.ID, "err", err)
			}
		}}, nil
	})

	huma.Register(api, op("list-data-usage", http.MethodGet, "/api/v1/data-usage", dataTag,
		"数据服务使用统计 / usage of the data services"),
		func(ctx context.Context, in *struct {
			Side     string `query:"side" enum:"provider,consumer," doc:"provider 提供方 / consumer 使用方"`
			DeptID   int64  `query:"dept_id" doc:"部门ID(平台管理员、审计员) / department (platform administrators, auditors)"`
			Resource string `query:"resource" doc:"信息资源代码 / resource code"`
			From     string `query:"from" doc:"起始日 YYYY-MM-DD / first day"`
			To       string `query:"to" doc:"截止日 YYYY-MM-DD / last day"`
		}) (*struct{ Body []dataservice.UsageRow }, error) {
			rows, err := s.Data.Usage(ctx, principalFrom(ctx).actor(), dataservice.UsageFilter{Side: in.Side, DeptID: in.DeptID,
				Resource: in.Resource, From: in.From, To: in.To})
			if err != nil {
				return nil, s.fail(ctx, err)
			}
			if rows == nil {
				rows = []dataservice.UsageRow{}
			}
			return &struct{ Body []dataservice.UsageRow }{Body: rows}, nil
		})
}
