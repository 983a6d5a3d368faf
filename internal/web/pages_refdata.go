package web

import (
	"bytes"
	"context"
	"io"
	"mime"
	"net/http"
	"net/url"
	"path"
	"strings"

	"github.com/danielgtaylor/huma/v2"

	"govshare/internal/apperr"
	"govshare/internal/identity"
	"govshare/internal/policy"
	"govshare/internal/refdata"
)

// maxRefDataUpload bounds a region table or code table file (the whole
// GB/T 2260 history is well under 1 MB).
const maxRefDataUpload = 16 << 20

// The pages of reference data: every signed-in user may look up a region
// or a code table; only the platform administrator loads them, and only
// they see the upload forms.
func (s *Server) refdataRoutes() {
	m := s.mux
	m.HandleFunc("GET /refdata/regions", s.withSession(identity.StageReady, s.regionsPage))
	m.HandleFunc("POST /refdata/regions", s.withSession(identity.StageReady, s.regionsImport))
	m.HandleFunc("GET /refdata/codes", s.withSession(identity.StageReady, s.codesPage))
	m.HandleFunc("POST /refdata/codes", s.withSession(identity.StageReady, s.codesUpload))
}

type regionsData struct {
	Q       string
	Regions []refdata.Region
	Total   int
	Info    refdata.RegionTableInfo
	Manage  bool
	Result  *refdata.RegionImport
}

func (s *Server) regionsPage(w http.ResponseWriter, r *http.Request, c *current) {
	s.renderRegions(w, r, c, http.StatusOK, nil, nil)
}

func (s *Server) renderRegions(w http.ResponseWriter, r *http.Request, c *current, status int, ae *apperr.Error, res *refdata.RegionImport) {
	d := regionsData{Q: r.URL.Query().Get("q"), Manage: policy.Allowed(c.user.Actor(), policy.RefDataManage, policy.Target{}), Result: res}
	var err error
	if d.Regions, d.Total, err = s.RefData.Regions(r.Context(), d.Q, 200); err == nil {
		d.Info, err = s.RefData.RegionTable(r.Context())
	}
	if err != nil {
		s.errorPage(w, r, &c.user, err)
		return
	}
	s.render(w, r, status, "refdata_regions", &page{Title: T(langOf(r), "nav.regions"), User: &c.user, Active: "/refdata/regions", Data: d, Err: ae})
}

func (s *Server) regionsImport(w http.ResponseWriter, r *http.Request, c *current) {
	if !policy.Allowed(c.user.Actor(), policy.RefDataManage, policy.Target{}) {
		s.denied(w, r, c, policy.RefDataManage, "region_table")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxRefDataUpload)
	f, hdr, err := r.FormFile("file")
	if err != nil {
		s.renderRegions(w, r, c, http.StatusUnprocessableEntity, refdata.ErrCSV, nil)
		return
	}
	defer f.Close()
	res, err := s.RefData.ImportRegions(r.Context(), c.user.Actor(), f, "upload:"+path.Base(hdr.Filename))
	if err != nil {
		ae, ok := fixable(err)
		if !ok {
			s.errorPage(w, r, &c.user, err)
			return
		}
		s.renderRegions(w, r, c, ae.Status, ae, nil)
		return
	}
	s.renderRegions(w, r, c, http.StatusOK, nil, &res)
}

type codesData struct {
	Tables []refdata.TableInfo
	Table  *refdata.Table // the one being looked at
	Manage bool
}

func (s *Server) codesPage(w http.ResponseWriter, r *http.Request, c *current) {
	s.renderCodes(w, r, c, http.StatusOK, r.URL.Query().Get("table"), nil, nil)
}

func (s *Server) renderCodes(w http.ResponseWriter, r *http.Request, c *current, status int, name string, ae *apperr.Error, form url.Values) {
	d := codesData{Manage: policy.Allowed(c.user.Actor(), policy.RefDataManage, policy.Target{})}
	var err error
	if d.Tables, err = s.RefData.CodeTables(r.Context()); err != nil {
		s.errorPage(w, r, &c.user, err)
		return
	}
	if name != "" {
		t, err := s.RefData.CodeTable(r.Context(), name)
		if err != nil {
			s.errorPage(w, r, &c.user, err)
			return
		}
		d.Table = &t
	}
	if form == nil && d.Table != nil {
		form = url.Values{"name": {d.Table.Name}, "title": {d.Table.Title}}
	}
	s.render(w, r, status, "refdata_codes", &page{Title: T(langOf(r), "nav.codes"), User: &c.user, Active: "/refdata/codes", Data: d, Err: ae, Form: form})
}

// codesUpload creates or replaces the code table named in the form from
// an uploaded CSV (code,label) or JSON file.
func (s *Server) codesUpload(w http.ResponseWriter, r *http.Request, c *current) {
	if !policy.Allowed(c.user.Actor(), policy.RefDataManage, policy.Target{}) {
		s.denied(w, r, c, policy.RefDataManage, "code_table")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxRefDataUpload)
	f, hdr, err := r.FormFile("file")
	if err != nil {
		s.renderCodes(w, r, c, http.StatusUnprocessableEntity, "", refdata.ErrCSV, r.PostForm)
		return
	}
	defer f.Close()
	name := strings.TrimSpace(r.PostFormValue("name"))
	codes, err := parseCodes(f, hdr.Filename, hdr.Header.Get("Content-Type"))
	if err == nil {
		_, err = s.RefData.ReplaceCodeTable(r.Context(), c.user.Actor(), name, r.PostFormValue("title"), codes, "upload:"+path.Base(hdr.Filename))
	}
	if err != nil {
		ae, ok := fixable(err)
		if !ok {
			s.errorPage(w, r, &c.user, err)
			return
		}
		s.renderCodes(w, r, c, ae.Status, "", ae, r.PostForm)
		return
	}
	http.Redirect(w, r, "/refdata/codes?ok=refdata.codes_saved&table="+url.QueryEscape(name), http.StatusSeeOther)
}

// parseCodes reads a code table as JSON when the file or its type says
// so, and as CSV otherwise.
func parseCodes(r io.Reader, filename, contentType string) ([]refdata.Code, error) {
	mt, _, _ := mime.ParseMediaType(contentType)
	if mt == "application/json" || strings.HasSuffix(strings.ToLower(filename), ".json") {
		return refdata.ParseCodesJSON(r)
	}
	return refdata.ParseCodesCSV(r)
}

type regionsQuery struct {
	Q     string `query:"q" doc:"代码前缀或名称中的文字 / code prefix or part of the name"`
	Limit int    `query:"limit" minimum:"0" maximum:"1000" doc:"最多返回条数，默认100 / at most this many (default 100)"`
}

type regionsOut struct {
	Total int `header:"X-Total-Count" doc:"符合条件的总数 / how many match in all"`
	Body  []refdata.Region
}

type csvUpload struct {
	RawBody []byte `contentType:"text/csv" maxLength:"16777216"`
}

type codeTablePath struct {
	Name string `path:"name" doc:"代码表名称，如 GB/T 2261.1(路径中写作 GB%2FT%202261.1) / name, URL-escaped"`
}

func (s *Server) refdataAPI(api huma.API) {
	const tag = "参考数据 Reference data"
	huma.Register(api, op("list-regions", http.MethodGet, "/api/v1/regions", tag, "行政区划代码表，按代码或名称查找 / the region table, searched by code or name"),
		func(ctx context.Context, in *regionsQuery) (*regionsOut, error) {
			list, total, err := s.RefData.Regions(ctx, in.Q, in.Limit)
			if err != nil {
				return nil, s.fail(ctx, err)
			}
			return &regionsOut{Total: total, Body: list}, nil
		})
	huma.Register(api, op("import-regions", http.MethodPut, "/api/v1/regions", tag,
		"导入行政区划代码表(CSV：code,name,status,valid_from,valid_to；整表替换，全部或全不) / load the region table (CSV, replaces the table, all or nothing)"),
		func(ctx context.Context, in *csvUpload) (*struct{ Body refdata.RegionImport }, error) {
			res, err := s.RefData.ImportRegions(ctx, principalFrom(ctx).actor(), bytes.NewReader(in.RawBody), "api")
			if err != nil {
				return nil, s.fail(ctx, err)
			}
			return &struct{ Body refdata.RegionImport }{Body: res}, nil
		})
	huma.Register(api, op("list-code-tables", http.MethodGet, "/api/v1/code-tables", tag, "代码表列表 / the code tables"),
		func(ctx context.Context, _ *struct{}) (*struct{ Body []refdata.TableInfo }, error) {
			list, err := s.RefData.CodeTables(ctx)
			if err != nil {
				return nil, s.fail(ctx, err)
			}
			return &struct{ Body []refdata.TableInfo }{Body: list}, nil
		})
	huma.Register(api, op("get-code-table", http.MethodGet, "/api/v1/code-tables/{name}", tag, "一个代码表及其代码 / one code table with its codes"),
		func(ctx context.Context, in *codeTablePath) (*struct{ Body refdata.Table }, error) {
			t, err := s.RefData.CodeTable(ctx, in.Name)
			if err != nil {
				return nil, s.fail(ctx, err)
			}
			return &struct{ Body refdata.Table }{Body: t}, nil
		})
	huma.Register(api, op("replace-code-table", http.MethodPut, "/api/v1/code-tables/{name}", tag,
		"新建或替换代码表(CSV：code,label；或以 application/json 发送 [{\"code\",\"label\"}]) / create or replace a code table (CSV code,label, or JSON)"),
		func(ctx context.Context, in *struct {
			Name        string `path:"name" doc:"代码表名称(路径中转义) / name, URL-escaped"`
			Title       string `query:"title" doc:"说明 / title"`
			ContentType string `header:"Content-Type"`
			RawBody     []byte `contentType:"text/csv" maxLength:"16777216"`
		}) (*struct{ Body refdata.TableInfo }, error) {
			// A caller who may not maintain code tables is refused (and the
			// refusal audited) whatever the file holds.
			actor := principalFrom(ctx).actor()
			codes, err := parseCodes(bytes.NewReader(in.RawBody), "", in.ContentType)
			if err != nil && policy.Allowed(actor, policy.RefDataManage, policy.Target{}) {
				return nil, s.fail(ctx, err)
			}
			info, err := s.RefData.ReplaceCodeTable(ctx, actor, in.Name, in.Title, codes, "api")
			if err != nil {
				return nil, s.fail(ctx, err)
			}
			return &struct{ Body refdata.TableInfo }{Body: info}, nil
		})
}
