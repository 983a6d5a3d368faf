package web

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"strconv"

	"github.com/danielgtaylor/huma/v2"

	"govshare/internal/apperr"
	"govshare/internal/catalog"
	"govshare/internal/policy"
	"govshare/internal/search"
)

type entryBody struct {
	Body catalog.Entry
}

type entryAction struct {
	IDPath
}

func (s *Server) catalogAPI(api huma.API) {
	const tag = "目录 Catalog"
	huma.Register(api, op("list-classifications", http.MethodGet, "/api/v1/classifications", tag, "信息资源分类树 / the classification tree"),
		func(ctx context.Context, _ *struct{}) (*struct{ Body []catalog.Classification }, error) {
			cs, err := s.Catalog.Classifications(ctx)
			if err != nil {
				return nil, s.fail(ctx, err)
			}
			return &struct{ Body []catalog.Classification }{Body: cs}, nil
		})
	huma.Register(api, op("save-classification", http.MethodPut, "/api/v1/classifications/{code}", tag, "新增或修改分类 / add or rename a classification"),
		func(ctx context.Context, in *struct {
			Code string `path:"code" doc:"分类代码 / code"`
			Body struct {
				Name string `json:"name" doc:"分类名称 / name"`
			}
		}) (*struct{ Body catalog.Classification }, error) {
			c, err := s.Catalog.SaveClassification(ctx, principalFrom(ctx).actor(), catalog.Classification{Code: in.Code, Name: in.Body.Name})
			if err != nil {
				return nil, s.fail(ctx, err)
			}
			return &struct{ Body catalog.Classification }{Body: c}, nil
		})
	huma.Register(api, op("import-classifications", http.MethodPost, "/api/v1/classifications/import", tag, "导入分类树(全部或全不) / import a classification tree (all or nothing)"),
		func(ctx context.Context, in *struct{ Body []catalog.Classification }) (*struct {
			Body struct {
				Imported int `json:"imported"`
			}
		}, error) {
			n, err := s.Catalog.ImportClassifications(ctx, principalFrom(ctx).actor(), in.Body)
			if err != nil {
				return nil, s.fail(ctx, err)
			}
			out := &struct {
				Body struct {
					Imported int `json:"imported"`
				}
			}{}
			out.Body.Imported = n
			return out, nil
		})

	huma.Register(api, op("list-entries", http.MethodGet, "/api/v1/catalog/entries", tag, "目录条目列表 / list catalog entries"),
		func(ctx context.Context, in *struct {
			DeptID int64  `query:"dept_id" doc:"提供方部门 / provider department"`
			State  string `query:"state" enum:"draft,submitted,returned,approved,published,retired," doc:"状态 / state"`
			After  int64  `query:"after" doc:"翻页：返回ID大于此值的条目 / paging: entries with id above this"`
			Limit  int    `query:"limit" minimum:"0" maximum:"500" doc:"条数(默认100) / page size"`
		}) (*struct{ Body []catalog.Entry }, error) {
			es, err := s.Catalog.Entries(ctx, principalFrom(ctx).actor(), catalog.Filter{DeptID: in.DeptID, State: catalog.State(in.State), After: in.After, Limit: in.Limit})
			if err != nil {
				return nil, s.fail(ctx, err)
			}
			if es == nil {
				es = []catalog.Entry{}
			}
			return &struct{ Body []catalog.Entry }{Body: es}, nil
		})

	ce := op("create-entry", http.MethodPost, "/api/v1/catalog/entries", tag, "登记目录条目(草稿) / register an entry as a draft")
	ce.DefaultStatus = http.StatusCreated
	huma.Register(api, ce, func(ctx context.Context, in *struct{ Body catalog.Content }) (*entryBody, error) {
		e, err := s.Catalog.CreateEntry(ctx, principalFrom(ctx).actor(), in.Body)
		if err != nil {
			return nil, s.fail(ctx, err)
		}
		return &entryBody{Body: e}, nil
	})

	huma.Register(api, op("get-entry", http.MethodGet, "/api/v1/catalog/entries/{id}", tag, "查看目录条目 / one entry"),
		func(ctx context.Context, in *IDPath) (*entryBody, error) {
			e, err := s.Catalog.Entry(ctx, principalFrom(ctx).actor(), in.ID)
			if err != nil {
				return nil, s.fail(ctx, err)
			}
			return &entryBody{Body: e}, nil
		})

	huma.Register(api, op("update-entry", http.MethodPut, "/api/v1/catalog/entries/{id}", tag, "修改草稿 / update the working copy"),
		func(ctx context.Context, in *struct {
			IDPath
			Body catalog.Content
		}) (*entryBody, error) {
			e, err := s.Catalog.UpdateDraft(ctx, principalFrom(ctx).actor(), in.ID, in.Body)
			if err != nil {
				return nil, s.fail(ctx, err)
			}
			return &entryBody{Body: e}, nil
		})

	simple := map[string]struct {
		summary string
		fn      func(*Server) func(context.Context, int64) (catalog.Entry, error)
	}{
		"submit": {"提交审核 / submit for review", func(s *Server) func(context.Context, int64) (catalog.Entry, error) {
			return s.entryStep(s.Catalog.Submit)
		}},
		"approve": {"审核通过 / approve", func(s *Server) func(context.Context, int64) (catalog.Entry, error) {
			return s.entryStep(s.Catalog.Approve)
		}},
		"publish": {"发布 / publish", func(s *Server) func(context.Context, int64) (catalog.Entry, error) {
			return s.entryStep(s.Catalog.Publish)
		}},
	}
	for _, name := range []string{"submit", "approve", "publish"} {
		step := simple[name].fn(s)
		huma.Register(api, op(name+"-entry", http.MethodPost, "/api/v1/catalog/entries/{id}/"+name, tag, simple[name].summary),
			func(ctx context.Context, in *entryAction) (*entryBody, error) {
				e, err := step(ctx, in.ID)
				if err != nil {
					return nil, s.fail(ctx, err)
				}
				return &entryBody{Body: e}, nil
			})
	}

	huma.Register(api, op("return-entry", http.MethodPost, "/api/v1/catalog/entries/{id}/return", tag, "退回(须说明原因) / return with reasons"),
		func(ctx context.Context, in *struct {
			IDPath
			Body struct {
				Reasons []catalog.Reason `json:"reasons"`
			}
		}) (*entryBody, error) {
			e, err := s.Catalog.Return(ctx, principalFrom(ctx).actor(), in.ID, in.Body.Reasons)
			if err != nil {
				return nil, s.fail(ctx, err)
			}
			return &entryBody{Body: e}, nil
		})

	huma.Register(api, op("change-entry", http.MethodPost, "/api/v1/catalog/entries/{id}/change", tag, "发起变更 / open a change request"),
		func(ctx context.Context, in *struct {
			IDPath
			Body struct {
				Reason string `json:"reason" enum:"law,functions,other" doc:"law 法律法规变化 / functions 职能调整 / other"`
				Note   string `json:"note,omitempty"`
			}
		}) (*entryBody, error) {
			e, err := s.Catalog.OpenChange(ctx, principalFrom(ctx).actor(), in.ID, in.Body.Reason, in.Body.Note)
			if err != nil {
				return nil, s.fail(ctx, err)
			}
			return &entryBody{Body: e}, nil
		})

	huma.Register(api, op("retire-entry", http.MethodPost, "/api/v1/catalog/entries/{id}/retire", tag, "撤销(停用) / retire"),
		func(ctx context.Context, in *struct {
			IDPath
			Body struct {
				Note string `json:"note,omitempty"`
			}
		}) (*entryBody, error) {
			e, err := s.Catalog.Retire(ctx, principalFrom(ctx).actor(), in.ID, in.Body.Note)
			if err != nil {
				return nil, s.fail(ctx, err)
			}
			return &entryBody{Body: e}, nil
		})

	huma.Register(api, op("list-entry-versions", http.MethodGet, "/api/v1/catalog/entries/{id}/versions", tag, "历史版本 / published versions"),
		func(ctx context.Context, in *IDPath) (*struct{ Body []catalog.Version }, error) {
			vs, err := s.Catalog.Versions(ctx, principalFrom(ctx).actor(), in.ID)
			if err != nil {
				return nil, s.fail(ctx, err)
			}
			if vs == nil {
				vs = []catalog.Version{}
			}
			return &struct{ Body []catalog.Version }{Body: vs}, nil
		})

	huma.Register(api, op("diff-entry-versions", http.MethodGet, "/api/v1/catalog/entries/{id}/diff", tag, "版本对比 / compare two versions"),
		func(ctx context.Context, in *struct {
			IDPath
			From int `query:"from" required:"true" doc:"旧版本号 / older version"`
			To   int `query:"to" required:"true" doc:"新版本号，0为工作稿 / newer version, 0 for the working copy"`
		}) (*struct{ Body []catalog.Change }, error) {
			d, err := s.entryDiff(ctx, in.ID, in.From, in.To)
			if err != nil {
				return nil, s.fail(ctx, err)
			}
			return &struct{ Body []catalog.Change }{Body: d}, nil
		})
}

func (s *Server) entryStep(fn func(context.Context, policy.Actor, int64) (catalog.Entry, error)) func(context.Context, int64) (catalog.Entry, error) {
	return func(ctx context.Context, id int64) (catalog.Entry, error) {
		return fn(ctx, principalFrom(ctx).actor(), id)
	}
}

// entryDiff compares two published versions, or a version with the
// working copy (to = 0).
func (s *Server) entryDiff(ctx context.Context, id int64, from, to int) ([]catalog.Change, error) {
	a, b, err := s.versionPair(ctx, principalFrom(ctx).actor(), id, from, to)
	if err != nil {
		return nil, err
	}
	d := catalog.DiffFields(a, b)
	if d == nil {
		d = []catalog.Change{}
	}
	return d, nil
}

// errNoVersion is a diff request naming a version that does not exist.
var errNoVersion = apperr.Invalid("catalog.version_unknown", "from", "没有该版本", "no such version")

func (s *Server) versionPair(ctx context.Context, actor policy.Actor, id int64, from, to int) (catalog.Content, catalog.Content, error) {
	e, err := s.Catalog.Entry(ctx, actor, id)
	if err != nil {
		return catalog.Content{}, catalog.Content{}, err
	}
	vs, err := s.Catalog.Versions(ctx, actor, id)
	if err != nil {
		return catalog.Content{}, catalog.Content{}, err
	}
	find := func(n int) (catalog.Content, bool) {
		if n == 0 {
			return e.Draft, true
		}
		for _, v := range vs {
			if v.Version == n {
				return v.Content, true
			}
		}
		return catalog.Content{}, false
	}
	a, ok1 := find(from)
	b, ok2 := find(to)
	if !ok1 || !ok2 {
		return a, b, errNoVersion
	}
	return a, b, nil
}

func (s *Server) feedbackAPI(api huma.API) {
	const tag = "目录 Catalog"
	huma.Register(api, op("list-entry-ratings", http.MethodGet, "/api/v1/catalog/entries/{id}/ratings", tag, "评分与评论 / ratings and comments"),
		func(ctx context.Context, in *IDPath) (*struct{ Body catalog.RatingSummary }, error) {
			if _, err := s.Catalog.Entry(ctx, principalFrom(ctx).actor(), in.ID); err != nil {
				return nil, s.fail(ctx, err)
			}
			sum, err := s.Catalog.Ratings(ctx, in.ID)
			if err != nil {
				return nil, s.fail(ctx, err)
			}
			return &struct{ Body catalog.RatingSummary }{Body: sum}, nil
		})
	huma.Register(api, op("rate-entry", http.MethodPut, "/api/v1/catalog/entries/{id}/rating", tag, "评价(1-5星) / rate 1–5 stars"),
		func(ctx context.Context, in *struct {
			IDPath
			Body struct {
				Stars   int    `json:"stars" minimum:"1" maximum:"5"`
				Comment string `json:"comment,omitempty" maxLength:"500"`
			}
		}) (*struct{}, error) {
			return nil, s.failOrNil(ctx, s.Catalog.Rate(ctx, principalFrom(ctx).actor(), in.ID, in.Body.Stars, in.Body.Comment))
		})
	huma.Register(api, op("list-related-entries", http.MethodGet, "/api/v1/catalog/entries/{id}/related", tag, "相关信息资源 / related entries"),
		func(ctx context.Context, in *IDPath) (*struct{ Body []catalog.Entry }, error) {
			e, err := s.Catalog.Entry(ctx, principalFrom(ctx).actor(), in.ID)
			if err != nil {
				return nil, s.fail(ctx, err)
			}
			rel, err := s.Catalog.Related(ctx, e, 10)
			if err != nil {
				return nil, s.fail(ctx, err)
			}
			if rel == nil {
				rel = []catalog.Entry{}
			}
			return &struct{ Body []catalog.Entry }{Body: rel}, nil
		})

	const dtag = "需求目录 Demands"
	huma.Register(api, op("list-demands", http.MethodGet, "/api/v1/demands", dtag, "需求目录 / the demand catalog"),
		func(ctx context.Context, in *struct {
			Q      string `query:"q" doc:"名称或说明中的文字 / text in title or description"`
			State  string `query:"state" enum:"open,routed,answered,declined," doc:"状态 / state"`
			DeptID int64  `query:"dept_id" doc:"分派到的部门 / routed to"`
		}) (*struct{ Body []catalog.Demand }, error) {
			ds, err := s.Catalog.Demands(ctx, catalog.DemandFilter{Query: in.Q, State: in.State, DeptID: in.DeptID})
			if err != nil {
				return nil, s.fail(ctx, err)
			}
			if ds == nil {
				ds = []catalog.Demand{}
			}
			return &struct{ Body []catalog.Demand }{Body: ds}, nil
		})
	pd := op("post-demand", http.MethodPost, "/api/v1/demands", dtag, "提出数据需求 / post a demand")
	pd.DefaultStatus = http.StatusCreated
	huma.Register(api, pd, func(ctx context.Context, in *struct{ Body catalog.DemandInput }) (*struct{ Body catalog.Demand }, error) {
		d, err := s.Catalog.PostDemand(ctx, principalFrom(ctx).actor(), in.Body)
		if err != nil {
			return nil, s.fail(ctx, err)
		}
		return &struct{ Body catalog.Demand }{Body: d}, nil
	})
	huma.Register(api, op("route-demand", http.MethodPost, "/api/v1/demands/{id}/route", dtag, "分派需求(平台管理员) / route a demand"),
		func(ctx context.Context, in *struct {
			IDPath
			Body struct {
				DeptID int64 `json:"dept_id"`
			}
		}) (*struct{ Body catalog.Demand }, error) {
			d, err := s.Catalog.RouteDemand(ctx, principalFrom(ctx).actor(), in.ID, in.Body.DeptID)
			if err != nil {
				return nil, s.fail(ctx, err)
			}
			return &struct{ Body catalog.Demand }{Body: d}, nil
		})
	huma.Register(api, op("answer-demand", http.MethodPost, "/api/v1/demands/{id}/answer", dtag, "答复需求(关联条目或拒绝) / answer with an entry or decline"),
		func(ctx context.Context, in *struct {
			IDPath
			Body struct {
				EntryID int64  `json:"entry_id,omitempty" doc:"关联的本部门目录条目 / your entry that answers it"`
				Answer  string `json:"answer,omitempty" doc:"答复或拒绝理由 / answer or reason"`
			}
		}) (*struct{ Body catalog.Demand }, error) {
			d, err := s.Catalog.AnswerDemand(ctx, principalFrom(ctx).actor(), in.ID, in.Body.EntryID, in.Body.Answer)
			if err != nil {
				return nil, s.fail(ctx, err)
			}
			return &struct{ Body catalog.Demand }{Body: d}, nil
		})
}

const xlsxType = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

// importProblem turns a rejected import into a problem document listing
// every error with its cell ("信息资源!C5").
func importProblem(ctx context.Context, err error, res catalog.ImportResult) error {
	p := problemFrom(err, requestID(ctx))
	for _, e := range res.Errors {
		cell := e.Sheet + "!" + e.Column + strconv.Itoa(e.Row)
		p.Errors = append(p.Errors, ProblemDetail{Field: cell, Message: e.MessageZH + " / " + e.MessageEN, Value: e.Value})
	}
	return p
}

func (s *Server) importAPI(api huma.API) {
	const tag = "目录 Catalog"
	tpl := op("catalog-template", http.MethodGet, "/api/v1/catalog/template.xlsx", tag, "下载目录导入模板 / download the import template")
	tpl.Responses = map[string]*huma.Response{"200": {Description: "xlsx", Content: map[string]*huma.MediaType{xlsxType: {}}}}
	huma.Register(api, tpl, func(ctx context.Context, _ *struct{}) (*huma.StreamResponse, error) {
		return &huma.StreamResponse{Body: func(hctx huma.Context) {
			hctx.SetHeader("Content-Type", xlsxType)
			hctx.SetHeader("Content-Disposition", `attachment; filename="catalog-template.xlsx"`)
			_ = catalog.WriteTemplate(hctx.BodyWriter())
		}}, nil
	})

	imp := op("import-entries-xlsx", http.MethodPost, "/api/v1/catalog/import.xlsx", tag, "从模板批量导入(全部或全不) / import a filled template (all or nothing)")
	huma.Register(api, imp, func(ctx context.Context, in *struct {
		RawBody []byte `contentType:"application/vnd.openxmlformats-officedocument.spreadsheetml.sheet" maxLength:"67108864"`
	}) (*struct{ Body catalog.ImportResult }, error) {
		res, err := s.Catalog.ImportXLSX(ctx, principalFrom(ctx).actor(), bytes.NewReader(in.RawBody), nil)
		if errors.Is(err, catalog.ErrImportRejected) {
			return nil, importProblem(ctx, err, res)
		}
		if err != nil {
			return nil, s.fail(ctx, err)
		}
		return &struct{ Body catalog.ImportResult }{Body: res}, nil
	})

	huma.Register(api, op("import-entries-json", http.MethodPost, "/api/v1/catalog/import.json", tag, "JSON批量导入(全部或全不) / import entries as JSON (all or nothing)"),
		func(ctx context.Context, in *struct{ Body []catalog.Content }) (*struct{ Body catalog.ImportResult }, error) {
			res, err := s.Catalog.ImportJSON(ctx, principalFrom(ctx).actor(), in.Body)
			if errors.Is(err, catalog.ErrImportRejected) {
				return nil, importProblem(ctx, err, res)
			}
			if err != nil {
				return nil, s.fail(ctx, err)
			}
			return &struct{ Body catalog.ImportResult }{Body: res}, nil
		})

	type exportQuery struct {
		DeptID int64   `query:"dept_id" doc:"提供方部门 / provider department"`
		State  string  `query:"state" enum:"draft,submitted,returned,approved,published,retired," doc:"状态 / state"`
		IDs    []int64 `query:"id" doc:"指定条目ID / chosen entry ids"`
	}
	exp := op("export-entries-xlsx", http.MethodGet, "/api/v1/catalog/export.xlsx", tag, "导出为模板格式 / export in the template layout")
	exp.Responses = map[string]*huma.Response{"200": {Description: "xlsx", Content: map[string]*huma.MediaType{xlsxType: {}}}}
	huma.Register(api, exp, func(ctx context.Context, in *exportQuery) (*huma.StreamResponse, error) {
		var buf bytes.Buffer
		if err := s.Catalog.ExportXLSX(ctx, principalFrom(ctx).actor(), catalog.ExportFilter{IDs: in.IDs, DeptID: in.DeptID, State: catalog.State(in.State)}, &buf); err != nil {
			return nil, s.fail(ctx, err)
		}
		return &huma.StreamResponse{Body: func(hctx huma.Context) {
			hctx.SetHeader("Content-Type", xlsxType)
			hctx.SetHeader("Content-Disposition", `attachment; filename="catalog-export.xlsx"`)
			_, _ = buf.WriteTo(hctx.BodyWriter())
		}}, nil
	})
	huma.Register(api, op("export-entries-json", http.MethodGet, "/api/v1/catalog/export.json", tag, "导出为JSON / export as JSON"),
		func(ctx context.Context, in *exportQuery) (*struct{ Body []catalog.Content }, error) {
			cs, err := s.Catalog.ExportJSON(ctx, principalFrom(ctx).actor(), catalog.ExportFilter{IDs: in.IDs, DeptID: in.DeptID, State: catalog.State(in.State)})
			if err != nil {
				return nil, s.fail(ctx, err)
			}
			if cs == nil {
				cs = []catalog.Content{}
			}
			return &struct{ Body []catalog.Content }{Body: cs}, nil
		})
}

func (s *Server) searchAPI(api huma.API) {
	huma.Register(api, op("search-catalog", http.MethodGet, "/api/v1/catalog/search", "目录 Catalog", "检索已发布目录(全文+分面) / search the published catalog with facets"),
		func(ctx context.Context, in *struct {
			Q           string `query:"q" maxLength:"100" doc:"全文检索(支持1-2个汉字) / full-text query (1- and 2-character Chinese work)"`
			Class       string `query:"class" doc:"分类代码前缀 / classification code prefix"`
			Dept        int64  `query:"dept" doc:"提供部门ID / provider department"`
			Kind        string `query:"kind" enum:"base,theme,dept," doc:"基础库/主题库/部门目录 / catalog"`
			ShareType   string `query:"share_type" enum:"unconditional,conditional,none,"`
			ShareMethod string `query:"share_method" enum:"api,file,exchange,verify,"`
			OpenType    string `query:"open_type" enum:"open,on_request,closed,"`
			UpdateCycle string `query:"update_cycle"`
			Tag         string `query:"tag" doc:"关键字 / keyword"`
			Format      string `query:"format" doc:"格式分类 / format class"`
			Sort        string `query:"sort" enum:"date,popularity," doc:"排序，默认相关度 / sort (default relevance)"`
			From        int    `query:"from" minimum:"0" maximum:"9980"`
			Size        int    `query:"size" minimum:"0" maximum:"100"`
		}) (*struct{ Body catalog.SearchResult }, error) {
			q := search.Query{Text: in.Q, ClassPrefix: in.Class, DeptID: in.Dept, Kind: in.Kind, ShareType: in.ShareType, ShareMethod: in.ShareMethod,
				OpenType: in.OpenType, UpdateCycle: in.UpdateCycle, Tag: in.Tag, FormatClass: in.Format, Sort: in.Sort, From: in.From, Size: in.Size}
			res, err := s.Catalog.Search(ctx, principalFrom(ctx).actor(), q)
			if err != nil {
				if _, ok := apperr.As(err); !ok {
					return nil, s.fail(ctx, apperr.Invalid("catalog.search_invalid", "q", "查询条件无效", "the search is not valid"))
				}
				return nil, s.fail(ctx, err)
			}
			return &struct{ Body catalog.SearchResult }{Body: res}, nil
		})
}
