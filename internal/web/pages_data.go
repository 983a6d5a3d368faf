package web

import (
	"net/http"
	"net/url"
	"slices"

	"govshare/internal/apperr"
	"govshare/internal/audit"
	"govshare/internal/catalog"
	"govshare/internal/dataservice"
	"govshare/internal/identity"
	"govshare/internal/policy"
	"govshare/internal/share"
)

func (s *Server) dataRoutes() {
	m := s.mux
	m.HandleFunc("GET /data-services", s.withSession(identity.StageReady, s.dataServicesPage))
	m.HandleFunc("POST /grants/{id}/download", s.withSession(identity.StageReady, s.grantDownload))
}

// dataServicesData is the usage dashboard: the department's use of
// others' data (consumer) and others' use of its data (provider).
type dataServicesData struct {
	Side   string
	Sides  []string
	Rows   []dataservice.UsageRow
	Depts  map[int64]string
	Totals dataservice.UsageRow
	Grants []share.Grant // the department's active grants it may use by a data service
}

func (s *Server) dataServicesPage(w http.ResponseWriter, r *http.Request, c *current) {
	a := c.user.Actor()
	d := dataServicesData{Side: r.URL.Query().Get("side"), Depts: map[int64]string{}}
	if policy.Allowed(a, policy.UsageView, policy.Target{DeptID: a.DeptID}) {
		d.Sides = []string{"consumer", "provider"}
	}
	canUse := policy.Allowed(a, policy.DataUse, policy.Target{DeptID: a.DeptID})
	if len(d.Sides) == 0 && !canUse {
		s.errorPage(w, r, &c.user, apperr.ErrDenied)
		return
	}
	if !slices.Contains(d.Sides, d.Side) && len(d.Sides) > 0 {
		d.Side = d.Sides[0]
	}
	ctx := r.Context()
	if len(d.Sides) > 0 {
		var err error
		if d.Rows, err = s.Data.Usage(ctx, a, dataservice.UsageFilter{Side: d.Side, DeptID: a.DeptID}); err != nil {
			s.errorPage(w, r, &c.user, err)
			return
		}
		if ds, err := s.Identity.Departments(ctx); err == nil {
			for _, x := range ds {
				d.Depts[x.ID] = x.Name
			}
		}
		for _, row := range d.Rows {
			d.Totals.Calls += row.Calls
			d.Totals.Records += row.Records
			d.Totals.Errors += row.Errors
			d.Totals.Refused += row.Refused
		}
	}
	if canUse && policy.Allowed(a, policy.ShareView, policy.Target{DeptID: a.DeptID}) {
		gs, _ := s.Share.Grants(ctx, a, share.GrantFilter{Side: "mine", State: "active", Limit: 200})
		for _, g := range gs {
			if slices.ContainsFunc(g.Methods, func(m catalog.ShareMethod) bool { return m != catalog.MethodExchange }) {
				d.Grants = append(d.Grants, g)
			}
		}
	}
	s.render(w, r, http.StatusOK, "data_services", &page{Title: T(langOf(r), "data.title"), User: &c.user, Active: "/data-services", Data: d})
}

// grantDownload is a batch download through the page: a person of the
// consumer department, with the purpose stated in the form.
func (s *Server) grantDownload(w http.ResponseWriter, r *http.Request, c *current) {
	id, err := pathID(r)
	var g share.Grant
	if err == nil {
		g, err = s.Share.Grant(r.Context(), c.user.Actor(), id)
	}
	if err != nil {
		s.errorPage(w, r, &c.user, err)
		return
	}
	ctx := audit.WithRequest(r.Context(), audit.Request{ClientAddr: clientAddr(r), RequestID: requestID(r.Context()), Purpose: r.PostFormValue("purpose")})
	q := url.Values{}
	if f := r.PostFormValue("fields"); f != "" {
		q.Set("fields", f)
	}
	req, err := dataservice.ParseRequest(q)
	var dl *dataservice.Download
	if err == nil {
		dl, err = s.Data.PrepareDownload(ctx, dataservice.Caller{Actor: c.user.Actor(), Purpose: r.PostFormValue("purpose")}, g.EntryCode, req, r.PostFormValue("format"))
	}
	if err != nil {
		if ae, ok := fixable(err); ok && ae.Status != http.StatusNotFound {
			if ae.Field == "" {
				ae = ae.OnField("purpose")
			}
			s.renderGrant(w, r, c, ae.Status, ae)
			return
		}
		s.errorPage(w, r, &c.user, err)
		return
	}
	w.Header().Set("Content-Type", dl.ContentType())
	w.Header().Set("Content-Disposition", `attachment; filename="`+dl.Filename()+`"`)
	if _, err := dl.Write(ctx, w); err != nil {
		s.Log.Warn("download interrupted", "request_id", requestID(ctx), "download", dl.ID, "err", err)
	}
}
