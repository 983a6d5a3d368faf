package web

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"govshare/internal/apperr"
	"govshare/internal/catalog"
	"govshare/internal/identity"
	"govshare/internal/policy"
	"govshare/internal/search"
)

// maxImportUpload bounds an uploaded template (a 10,000-entry file is
// about 5 MB).
const maxImportUpload = 64 << 20

// reports keeps error-report workbooks for a short while so the page that
// lists the errors can offer them for download.
type reports struct {
	mu sync.Mutex
	m  map[string]report
}

type report struct {
	user    int64
	data    []byte
	expires time.Time
}

func (rs *reports) put(user int64, data []byte) string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	key := hex.EncodeToString(b[:])
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if rs.m == nil {
		rs.m = map[string]report{}
	}
	now := time.Now()
	for k, r := range rs.m {
		if now.After(r.expires) {
			delete(rs.m, k)
		}
	}
	if len(rs.m) >= 50 { // never let forgotten reports pile up
		for k := range rs.m {
			delete(rs.m, k)
			break
		}
	}
	rs.m[key] = report{user: user, data: data, expires: now.Add(30 * time.Minute)}
	return key
}

func (rs *reports) get(user int64, key string) ([]byte, bool) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	r, ok := rs.m[key]
	if !ok || r.user != user || time.Now().After(r.expires) {
		return nil, false
	}
	return r.data, true
}

func (s *Server) importRoutes() {
	m := s.mux
	m.HandleFunc("GET /catalog/template.xlsx", s.withSession(identity.StageReady, s.templateDownload))
	m.HandleFunc("GET /catalog/import", s.withSession(identity.StageReady, s.importPage))
	m.HandleFunc("POST /catalog/import", s.withSession(identity.StageReady, s.importUpload))
	m.HandleFunc("GET /catalog/import/report/{key}", s.withSession(identity.StageReady, s.importReport))
	m.HandleFunc("GET /catalog/export.xlsx", s.withSession(identity.StageReady, s.exportDownload))
}

func (s *Server) templateDownload(w http.ResponseWriter, r *http.Request, c *current) {
	w.Header().Set("Content-Type", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
	w.Header().Set("Content-Disposition", `attachment; filename="catalog-template.xlsx"`)
	if err := catalog.WriteTemplate(w); err != nil {
		s.Log.Error("template", "err", err)
	}
}

type importData struct {
	Result    *catalog.ImportResult
	ReportKey string
}

func (s *Server) importPage(w http.ResponseWriter, r *http.Request, c *current) {
	a := c.user.Actor()
	if !policy.Allowed(a, policy.CatalogEdit, policy.Target{DeptID: a.DeptID}) {
		s.denied(w, r, c, policy.CatalogEdit, "catalog_entry")
		return
	}
	s.render(w, r, http.StatusOK, "import", &page{Title: T(langOf(r), "imp.title"), User: &c.user, Active: "/catalog/manage", Data: importData{}})
}

func (s *Server) importUpload(w http.ResponseWriter, r *http.Request, c *current) {
	r.Body = http.MaxBytesReader(w, r.Body, maxImportUpload)
	f, _, err := r.FormFile("file")
	if err != nil {
		s.formError(w, r, &c.user, "import", T(langOf(r), "imp.title"), apperr.Invalid("catalog.import_file_missing", "file",
			"请选择要上传的 .xlsx 文件(不超过64MB)", "choose an .xlsx file to upload (at most 64 MB)"), nil, importData{})
		return
	}
	defer f.Close()
	data, err := io.ReadAll(f)
	if err != nil {
		s.errorPage(w, r, &c.user, err)
		return
	}
	res, err := s.Catalog.ImportXLSX(r.Context(), c.user.Actor(), bytes.NewReader(data), nil)
	d := importData{Result: &res}
	if errors.Is(err, catalog.ErrImportRejected) {
		var buf bytes.Buffer
		if werr := catalog.WriteErrorReport(&buf, bytes.NewReader(data), res.Errors); werr == nil {
			d.ReportKey = s.reports.put(c.user.ID, buf.Bytes())
		}
		ae, _ := apperr.As(err)
		s.render(w, r, ae.Status, "import", &page{Title: T(langOf(r), "imp.title"), User: &c.user, Active: "/catalog/manage", Data: d, Err: ae})
		return
	}
	if err != nil {
		ae, ok := fixable(err)
		if !ok {
			s.errorPage(w, r, &c.user, err)
			return
		}
		s.render(w, r, ae.Status, "import", &page{Title: T(langOf(r), "imp.title"), User: &c.user, Active: "/catalog/manage", Data: importData{}, Err: ae})
		return
	}
	s.render(w, r, http.StatusOK, "import", &page{Title: T(langOf(r), "imp.title"), User: &c.user, Active: "/catalog/manage", Data: d,
		Flash: T(langOf(r), "imp.done")})
}

func (s *Server) importReport(w http.ResponseWriter, r *http.Request, c *current) {
	data, ok := s.reports.get(c.user.ID, r.PathValue("key"))
	if !ok {
		s.errorPage(w, r, &c.user, apperr.ErrNotFound)
		return
	}
	w.Header().Set("Content-Type", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
	w.Header().Set("Content-Disposition", `attachment; filename="import-errors.xlsx"`)
	_, _ = w.Write(data)
}

func (s *Server) exportDownload(w http.ResponseWriter, r *http.Request, c *current) {
	v := r.URL.Query()
	dept, _ := strconv.ParseInt(v.Get("dept_id"), 10, 64)
	f := catalog.ExportFilter{DeptID: dept, State: catalog.State(v.Get("state"))}
	for _, x := range v["id"] {
		if id, err := strconv.ParseInt(x, 10, 64); err == nil {
			f.IDs = append(f.IDs, id)
		}
	}
	if searched(v) {
		// Export a search result: the same query, every page of it.
		q := searchQuery(v)
		q.Size = search.MaxSize
		for q.From = 0; q.From+q.Size <= search.MaxWindow; q.From += q.Size {
			res, err := s.Catalog.Search(r.Context(), c.user.Actor(), q)
			if err != nil {
				s.errorPage(w, r, &c.user, err)
				return
			}
			for _, e := range res.Entries {
				f.IDs = append(f.IDs, e.ID)
			}
			if q.From+q.Size >= res.Total {
				break
			}
		}
		if len(f.IDs) == 0 { // nothing matched: an empty workbook, not everything
			w.Header().Set("Content-Type", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
			w.Header().Set("Content-Disposition", `attachment; filename="catalog-export.xlsx"`)
			_ = catalog.WriteXLSX(w, func(func(catalog.Content, error) bool) {})
			return
		}
	}
	// Write into a buffer first so a refusal can still be a proper page.
	var buf bytes.Buffer
	if err := s.Catalog.ExportXLSX(r.Context(), c.user.Actor(), f, &buf); err != nil {
		s.errorPage(w, r, &c.user, err)
		return
	}
	w.Header().Set("Content-Type", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
	w.Header().Set("Content-Disposition", `attachment; filename="catalog-export.xlsx"`)
	_, _ = buf.WriteTo(w)
}

// searched reports whether export parameters describe a catalog search.
func searched(v url.Values) bool {
	for _, k := range []string{"q", "class", "dept", "kind", "share_type", "share_method", "open_type", "update_cycle", "tag", "format"} {
		if v.Get(k) != "" {
			return true
		}
	}
	return false
}
