package web

import (
	"io"
	"net/http"
	"net/url"
	"slices"

	"govshare/internal/catalog"
	"govshare/internal/dataservice"
	"govshare/internal/identity"
	"govshare/internal/policy"
	"govshare/internal/share"
)

// The comparison jobs page (数据比对任务): a consumer picks a resource
// their department may compare, states the purpose and uploads a CSV
// file; the department's jobs follow with their progress and results.
// The page calls the data service exactly as the JSON API does
// (api_verifyjobs.go); the service decides who may do what.

func (s *Server) verifyJobRoutes() {
	m := s.mux
	ready := func(h pageHandler) http.HandlerFunc { return s.withSession(identity.StageReady, h) }
	m.HandleFunc("GET /verify/jobs", ready(s.verifyJobsPage))
	m.HandleFunc("POST /verify/jobs", limitBody(dataservice.MaxVerifyJobBytes+1<<20, ready(s.verifyJobCreate)))
	m.HandleFunc("GET /verify/jobs/{id}/result", ready(s.verifyJobResult))
}

// limitBody bounds a request's body before anything reads it (the CSRF
// check reads a form).
func limitBody(n int64, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, n)
		h(w, r)
	}
}

// seesVerifyJobs: those who use their department's data, and platform
// administrators and auditors, who watch every department's jobs.
func seesVerifyJobs(a policy.Actor) bool {
	return policy.Any(a, policy.DataUse) || a.Has(policy.PlatformAdmin) || a.Has(policy.Auditor)
}

// verifyJobsNav is the navigation group of comparison jobs.
func verifyJobsNav(a policy.Actor) []navGroup {
	if !seesVerifyJobs(a) {
		return nil
	}
	return []navGroup{{Title: "nav.group.verify", Items: []navItem{{Key: "nav.verify_jobs", Href: "/verify/jobs"}}}}
}

// verifyTarget is a resource the department may compare: its grant's
// items, the key ones apart.
type verifyTarget struct {
	Code, Name string
	Keys       []string
	Items      []string
}

type verifyJobsData struct {
	Jobs      []dataservice.VerifyJob
	Targets   []verifyTarget
	CanCreate bool
	Busy      bool // a job is queued or running: the page refreshes itself
}

func (s *Server) verifyJobsPage(w http.ResponseWriter, r *http.Request, c *current) {
	s.renderVerifyJobs(w, r, c, http.StatusOK, nil)
}

func (s *Server) renderVerifyJobs(w http.ResponseWriter, r *http.Request, c *current, status int, err error) {
	ctx, a := r.Context(), c.user.Actor()
	if !seesVerifyJobs(a) {
		s.denied(w, r, c, policy.DataUse, "verify_job")
		return
	}
	jobs, lerr := s.Data.VerifyJobs(ctx, dataservice.Caller{Actor: a}, 100)
	if lerr != nil {
		s.errorPage(w, r, &c.user, lerr)
		return
	}
	d := verifyJobsData{Jobs: jobs, CanCreate: policy.Allowed(a, policy.DataUse, policy.Target{DeptID: a.DeptID})}
	for _, j := range jobs {
		d.Busy = d.Busy || j.State == dataservice.JobQueued || j.State == dataservice.JobRunning
	}
	if d.CanCreate {
		grants, gerr := s.Share.Grants(ctx, a, share.GrantFilter{Side: "mine", State: "active", Limit: 500})
		if gerr != nil {
			s.errorPage(w, r, &c.user, gerr)
			return
		}
		for _, g := range grants {
			if !slices.Contains(g.Methods, catalog.MethodVerify) || slices.ContainsFunc(d.Targets, func(t verifyTarget) bool { return t.Code == g.EntryCode }) {
				continue
			}
			t := verifyTarget{Code: g.EntryCode, Name: g.EntryName}
			res, rerr := s.Resources.ByCode(ctx, g.EntryCode)
			if rerr != nil {
				continue // not mounted: nothing to compare with
			}
			for _, col := range res.Visible() {
				switch {
				case !slices.Contains(g.Items, col.MachineName):
				case col.Key:
					t.Keys = append(t.Keys, col.MachineName)
				default:
					t.Items = append(t.Items, col.MachineName)
				}
			}
			d.Targets = append(d.Targets, t)
		}
	}
	p := &page{Title: T(langOf(r), "vj.title"), User: &c.user, Active: "/verify/jobs", DeptMap: s.deptMap(r), Data: d}
	if err != nil {
		ae, ok := fixable(err)
		if !ok {
			s.errorPage(w, r, &c.user, err)
			return
		}
		p.Err, p.Form = ae, r.PostForm
	}
	s.render(w, r, status, "verify_jobs", p)
}

func (s *Server) verifyJobCreate(w http.ResponseWriter, r *http.Request, c *current) {
	var err error
	f, _, ferr := r.FormFile("file")
	if ferr != nil {
		err = dataservice.ErrVerifyJobRecords.OnField("file")
	} else {
		defer f.Close()
		caller := dataservice.Caller{Actor: c.user.Actor(), Purpose: r.PostFormValue("purpose")}
		var j dataservice.VerifyJob
		j, err = s.Data.CreateVerifyJob(r.Context(), caller, r.PostFormValue("resource"), verifyJobItems(r.PostFormValue("items")), f)
		if err == nil {
			http.Redirect(w, r, "/verify/jobs?ok=vj.created#job-"+itoa(j.ID), http.StatusSeeOther)
			return
		}
	}
	if r.PostForm == nil {
		r.PostForm = url.Values{}
	}
	status := http.StatusInternalServerError
	if ae, ok := fixable(err); ok {
		status = ae.Status
	}
	s.renderVerifyJobs(w, r, c, status, err)
}

func (s *Server) verifyJobResult(w http.ResponseWriter, r *http.Request, c *current) {
	id, err := pathID(r)
	if err != nil {
		s.errorPage(w, r, &c.user, err)
		return
	}
	out := &startOnWrite{start: func() io.Writer {
		w.Header().Set("Content-Type", "text/csv; charset=utf-8")
		w.Header().Set("Content-Disposition", `attachment; filename="`+verifyResultName(id)+`"`)
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusOK)
		return w
	}}
	if _, err := s.Data.WriteVerifyJobResult(r.Context(), dataservice.Caller{Actor: c.user.Actor()}, id, out); err != nil {
		if !out.started() {
			s.errorPage(w, r, &c.user, err)
			return
		}
		s.Log.Warn("comparison result interrupted", "request_id", requestID(r.Context()), "job", id, "err", err)
	}
}
