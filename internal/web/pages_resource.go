package web

import (
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"govshare/internal/apperr"
	"govshare/internal/identity"
	"govshare/internal/policy"
	"govshare/internal/resource"
)

func (s *Server) resourceRoutes() {
	m := s.mux
	m.HandleFunc("POST /catalog/{id}/mount", s.withSession(identity.StageReady, s.mountSubmit))
	m.HandleFunc("GET /resources", s.withSession(identity.StageReady, s.resourcesPage))
	m.HandleFunc("GET /resources/{code}", s.withSession(identity.StageReady, s.resourcePage))
	m.HandleFunc("GET /resources/{code}/template.xlsx", s.withSession(identity.StageReady, s.resourceTemplate))
	m.HandleFunc("GET /resources/{code}/template.csv", s.withSession(identity.StageReady, s.resourceTemplate))
	m.HandleFunc("POST /resources/{code}/upload", s.withSession(identity.StageReady, s.resourceUpload))
	m.HandleFunc("POST /resources/{code}/zero", s.withSession(identity.StageReady, s.resourceZero))
	m.HandleFunc("POST /resources/{code}/quarantine/{id}/{op}", s.withSession(identity.StageReady, s.quarantineOp))
	m.HandleFunc("GET /resources/{code}/history", s.withSession(identity.StageReady, s.historyPage))
}

// resourcePath is a resource's page; its code's "/" is escaped.
func resourcePath(code string) string { return "/resources/" + strings.ReplaceAll(code, "/", "%2F") }

func (s *Server) mountSubmit(w http.ResponseWriter, r *http.Request, c *current) {
	id, err := pathID(r)
	var res resource.Resource
	if err == nil {
		res, err = s.Resources.Mount(r.Context(), c.user.Actor(), id)
	}
	if err != nil {
		s.errorPage(w, r, &c.user, err)
		return
	}
	http.Redirect(w, r, resourcePath(res.Code)+"?ok=res.mounted", http.StatusSeeOther)
}

type resourceRow struct {
	resource.Resource
	Timeliness resource.Timeliness
}

func (s *Server) resourcesPage(w http.ResponseWriter, r *http.Request, c *current) {
	a := c.user.Actor()
	dept := a.DeptID
	if policy.Allowed(a, policy.DataView, policy.Target{}) { // platform administrators see every department
		dept = 0
	} else if !policy.Allowed(a, policy.DataView, policy.Target{DeptID: a.DeptID}) {
		s.errorPage(w, r, &c.user, apperr.ErrDenied)
		return
	}
	rs, err := s.Resources.List(r.Context(), dept)
	if err != nil {
		s.errorPage(w, r, &c.user, err)
		return
	}
	rows := make([]resourceRow, len(rs))
	now := time.Now()
	for i, x := range rs {
		if full, err := s.Resources.ByCode(r.Context(), x.Code); err == nil {
			x = full
		}
		rows[i] = resourceRow{Resource: x, Timeliness: x.Timeliness(now)}
	}
	s.render(w, r, http.StatusOK, "resources", &page{Title: T(langOf(r), "res.title"), User: &c.user, Active: "/resources", Data: rows, DeptMap: s.deptMap(r)})
}

type resourcePageData struct {
	Resource    resource.Resource
	Path        string
	Timeliness  resource.Timeliness
	Batches     []resource.Batch
	Quarantine  []resource.Quarantined
	Volume      []resource.Volume
	Bars        []volumeBar
	VolumeWidth int
	CanSubmit   bool
	Result      *resource.Batch
}

func (s *Server) resourcePage(w http.ResponseWriter, r *http.Request, c *current) {
	s.renderResource(w, r, c, http.StatusOK, nil, nil)
}

func (s *Server) renderResource(w http.ResponseWriter, r *http.Request, c *current, status int, result *resource.Batch, ae *apperr.Error) {
	ctx, a := r.Context(), c.user.Actor()
	res, err := s.Resources.ByCode(ctx, r.PathValue("code"))
	if err != nil {
		s.errorPage(w, r, &c.user, err)
		return
	}
	d := resourcePageData{Resource: res, Path: resourcePath(res.Code), Timeliness: res.Timeliness(time.Now()), Result: result,
		CanSubmit: policy.Allowed(a, policy.DataSubmit, policy.Target{DeptID: res.DeptID})}
	if d.Batches, err = s.Resources.Batches(ctx, a, res.Code, 20); err != nil {
		s.errorPage(w, r, &c.user, err)
		return
	}
	if d.Quarantine, err = s.Resources.Quarantine(ctx, a, res.Code, "", 200); err != nil {
		s.errorPage(w, r, &c.user, err)
		return
	}
	if d.Volume, err = s.Resources.Volume(ctx, res.Code, 14); err != nil {
		s.errorPage(w, r, &c.user, err)
		return
	}
	d.Bars, d.VolumeWidth = volumeBars(d.Volume)
	s.render(w, r, status, "resource", &page{Title: res.Name, User: &c.user, Active: "/resources", Data: d, Err: ae})
}

func (s *Server) resourceTemplate(w http.ResponseWriter, r *http.Request, c *current) {
	code := r.PathValue("code")
	res, err := s.Resources.ByCode(r.Context(), code)
	if err != nil {
		s.errorPage(w, r, &c.user, err)
		return
	}
	name := strings.ReplaceAll(res.Code, "/", "-") + "-template"
	switch filepath.Ext(r.URL.Path) {
	case ".xlsx":
		w.Header().Set("Content-Type", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
		w.Header().Set("Content-Disposition", attachmentDisposition(name+".xlsx"))
		err = s.Resources.WriteTemplateXLSX(r.Context(), code, w)
	case ".csv":
		w.Header().Set("Content-Type", "text/csv; charset=utf-8")
		w.Header().Set("Content-Disposition", attachmentDisposition(name+".csv"))
		err = s.Resources.WriteTemplateCSV(r.Context(), code, w)
	default:
		err = apperr.ErrNotFound
	}
	if err != nil {
		s.errorPage(w, r, &c.user, err)
	}
}

// resourceUpload takes a filled template. The form is parsed with its
// file spooled to disk beyond 32 MB, and the rows are read from it as a
// stream.
func (s *Server) resourceUpload(w http.ResponseWriter, r *http.Request, c *current) {
	code := r.PathValue("code")
	fail := func(err error) {
		if ae, ok := fixable(err); ok && ae.Status != http.StatusNotFound {
			s.renderResource(w, r, c, ae.Status, nil, ae)
			return
		}
		s.errorPage(w, r, &c.user, err)
	}
	if r.MultipartForm == nil || len(r.MultipartForm.File["file"]) == 0 {
		fail(apperr.Invalid("resource.file_missing", "file", "请选择要上传的 .xlsx 或 .csv 文件", "choose an .xlsx or .csv file to upload"))
		return
	}
	fh := r.MultipartForm.File["file"][0]
	f, err := fh.Open()
	if err != nil {
		fail(err)
		return
	}
	defer f.Close()
	var rows resource.Rows
	switch strings.ToLower(filepath.Ext(fh.Filename)) {
	case ".csv":
		rows, err = resource.CSVRows(f)
	case ".xlsx":
		var done func() error
		rows, done, err = resource.XLSXRows(f)
		if done != nil {
			defer done()
		}
	default:
		err = resource.ErrFormat
	}
	if err != nil {
		fail(err)
		return
	}
	maxErrors, _ := strconv.Atoi(r.PostFormValue("max_errors"))
	b, err := s.Resources.Submit(r.Context(), c.user.Actor(), code, resource.SubmitOptions{Source: resource.SourceUpload, Detail: fh.Filename,
		MaxErrors: maxErrors}, rows)
	if err != nil {
		if ae, ok := apperr.As(err); ok && ae.Code == resource.ErrTooManyErrors.Code {
			// The report says what to fix: show it with the refusal.
			bs, _ := s.Resources.Batches(r.Context(), c.user.Actor(), code, 1)
			if len(bs) == 1 {
				s.renderResource(w, r, c, ae.Status, &bs[0], ae)
				return
			}
		}
		fail(err)
		return
	}
	s.renderResource(w, r, c, http.StatusCreated, &b, nil)
}

func (s *Server) resourceZero(w http.ResponseWriter, r *http.Request, c *current) {
	res, err := s.Resources.ZeroReport(r.Context(), c.user.Actor(), r.PathValue("code"), r.PostFormValue("note"))
	if err != nil {
		if ae, ok := fixable(err); ok && ae.Status != http.StatusNotFound {
			s.renderResource(w, r, c, ae.Status, nil, ae)
			return
		}
		s.errorPage(w, r, &c.user, err)
		return
	}
	http.Redirect(w, r, resourcePath(res.Code)+"?ok=res.zero_done", http.StatusSeeOther)
}

func (s *Server) quarantineOp(w http.ResponseWriter, r *http.Request, c *current) {
	code := r.PathValue("code")
	id, err := pathID(r)
	if err != nil {
		s.errorPage(w, r, &c.user, err)
		return
	}
	switch r.PathValue("op") {
	case "resubmit":
		res, rerr := s.Resources.ByCode(r.Context(), code)
		if rerr != nil {
			s.errorPage(w, r, &c.user, rerr)
			return
		}
		values := make([]string, len(res.Visible()))
		for i := range values {
			values[i] = r.PostFormValue("v" + strconv.Itoa(i))
		}
		var viol []resourceViolation
		_, vs, e := s.Resources.Resubmit(r.Context(), c.user.Actor(), code, id, values)
		for _, v := range vs {
			viol = append(viol, resourceViolation{Item: v.Item, ZH: v.ZH, EN: v.EN})
		}
		if e != nil && len(viol) > 0 {
			ae, _ := apperr.As(e)
			ae = ae.With(ae.ZH+"："+viol[0].Item+" "+viol[0].ZH, ae.EN+": "+viol[0].Item+" "+viol[0].EN)
			s.renderResource(w, r, c, ae.Status, nil, ae)
			return
		}
		err = e
	case "discard":
		err = s.Resources.Discard(r.Context(), c.user.Actor(), code, id, r.PostFormValue("reason"))
	default:
		err = apperr.ErrNotFound
	}
	if err != nil {
		if ae, ok := fixable(err); ok && ae.Status != http.StatusNotFound {
			s.renderResource(w, r, c, ae.Status, nil, ae)
			return
		}
		s.errorPage(w, r, &c.user, err)
		return
	}
	http.Redirect(w, r, resourcePath(code)+"?ok=common.saved#quarantine", http.StatusSeeOther)
}

type resourceViolation struct{ Item, ZH, EN string }

type historyPageData struct {
	Resource resource.Resource
	Path     string
	Key, At  string
	Columns  []resource.Column
	Versions []resource.RecordVersion
}

func (s *Server) historyPage(w http.ResponseWriter, r *http.Request, c *current) {
	res, err := s.Resources.ByCode(r.Context(), r.PathValue("code"))
	if err != nil {
		s.errorPage(w, r, &c.user, err)
		return
	}
	d := historyPageData{Resource: res, Path: resourcePath(res.Code), Key: r.URL.Query().Get("key"), At: r.URL.Query().Get("at")}
	var at time.Time
	if d.At != "" {
		if t, err := time.Parse("2006-01-02T15:04", d.At); err == nil {
			at = t.Add(-8 * time.Hour) // the form's time is China Standard Time
		}
	}
	if d.Key != "" {
		if d.Versions, d.Columns, err = s.Resources.History(r.Context(), c.user.Actor(), res.Code, strings.Split(d.Key, ","), at); err != nil {
			if ae, ok := fixable(err); ok && ae.Status != http.StatusNotFound {
				s.render(w, r, ae.Status, "history", &page{Title: res.Name, User: &c.user, Active: "/resources", Data: d, Err: ae})
				return
			}
			s.errorPage(w, r, &c.user, err)
			return
		}
	}
	s.render(w, r, http.StatusOK, "history", &page{Title: res.Name, User: &c.user, Active: "/resources", Data: d})
}

// volumeBar is one day of the volume chart: records in and records the
// exchange delivered out, side by side, drawn as SVG attributes (the
// content security policy allows no inline styles).
type volumeBar struct {
	X, Y, H          int64 // records in
	XOut, YOut, HOut int64 // records out
	Day              string
	N, Out           int64
}

func volumeBars(vs []resource.Volume) ([]volumeBar, int) {
	var most int64
	for _, v := range vs {
		most = max(most, v.RecordsIn, v.RecordsOut)
	}
	height := func(n int64) int64 {
		if most == 0 || n == 0 {
			return 0
		}
		return max(1, n*60/most)
	}
	out := make([]volumeBar, len(vs))
	for i, v := range vs {
		h, ho := height(v.RecordsIn), height(v.RecordsOut)
		x := int64(i)*12 + 1
		out[i] = volumeBar{X: x, Y: 65 - h, H: h, XOut: x + 5, YOut: 65 - ho, HOut: ho, Day: v.Day, N: v.RecordsIn, Out: v.RecordsOut}
	}
	return out, len(vs) * 12
}
