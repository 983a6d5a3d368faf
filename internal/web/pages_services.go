package web

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"govshare/internal/apperr"
	"govshare/internal/dataservice/proxy"
	"govshare/internal/identity"
	"govshare/internal/policy"
)

// The service resource pages (服务资源): a department's services with the
// registration form, and each service with its operations, settings, call
// log and daily statistics. They call the proxy exactly as the JSON API
// does (api_services.go); the proxy decides who may do what.

func (s *Server) servicesRoutes() {
	m := s.mux
	ready := func(h pageHandler) http.HandlerFunc { return s.withSession(identity.StageReady, h) }
	m.HandleFunc("GET /services", ready(s.servicesPage))
	m.HandleFunc("POST /services", ready(s.serviceRegister))
	m.HandleFunc("GET /services/{id}", ready(s.servicePage))
	m.HandleFunc("POST /services/{id}", ready(s.serviceUpdate))
	m.HandleFunc("POST /services/{id}/{action}", ready(s.serviceControl))
}

// servicesNav is the navigation group of service resources, for those
// who manage them or read their call logs.
func servicesNav(a policy.Actor) []navGroup {
	if !policy.Any(a, policy.ServiceCalls) {
		return nil
	}
	return []navGroup{{Title: "nav.group.services", Items: []navItem{{Key: "nav.services", Href: "/services"}}}}
}

type servicesData struct {
	Services  []proxy.Service
	Entries   []proxy.Candidate // the department's entries that may be registered
	CanManage bool
}

func (s *Server) servicesPage(w http.ResponseWriter, r *http.Request, c *current) {
	s.renderServices(w, r, c, http.StatusOK, nil)
}

func (s *Server) renderServices(w http.ResponseWriter, r *http.Request, c *current, status int, ae *apperr.Error) {
	a := c.user.Actor()
	list, err := s.Proxy.List(r.Context(), a, proxy.ServiceFilter{DeptID: deptScope(a, queryID(r, "dept_id"))})
	if err != nil {
		s.errorPage(w, r, &c.user, err)
		return
	}
	d := servicesData{Services: list, CanManage: policy.Allowed(a, policy.ServiceManage, policy.Target{DeptID: a.DeptID})}
	if d.CanManage {
		if d.Entries, err = s.Proxy.Candidates(r.Context(), a.DeptID); err != nil {
			s.errorPage(w, r, &c.user, err)
			return
		}
	}
	form := r.PostForm
	if ae == nil {
		form = url.Values{"timeout_seconds": {"10"}, "max_response_mib": {"10"}}
	}
	s.render(w, r, status, "services", &page{Title: T(langOf(r), "svc.title"), User: &c.user, Active: "/services", DeptMap: s.deptMap(r),
		Data: d, Err: ae, Form: form})
}

// serviceSettings reads the registration and change forms. Operations
// are written one per line; the response limit is in MiB.
func serviceSettings(r *http.Request) (proxy.Settings, error) {
	st := proxy.Settings{BaseURL: r.PostFormValue("base_url"), OpenAPI: r.PostFormValue("openapi"),
		CredentialHeader: r.PostFormValue("credential_header"), CredentialValue: r.PostFormValue("credential_value"),
		TimeoutSeconds: formInt(r, "timeout_seconds")}
	if mib := formInt(r, "max_response_mib"); mib != 0 {
		st.MaxResponseBytes = int64(mib) << 20
		if mib < 0 {
			st.MaxResponseBytes = -1
		}
	}
	ops, err := proxy.ParseOperations(r.PostFormValue("operations"))
	st.Operations = ops
	return st, err
}

// formFixable is err as the form shows it: errors of single operations
// stand beside the operations box; refusals are not the form's to show.
func formFixable(err error) (*apperr.Error, bool) {
	ae, ok := fixable(err)
	switch {
	case !ok:
	case strings.HasPrefix(ae.Field, "operations["):
		i, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(ae.Field, "operations["), "]"))
		ae = ae.OnField("operations").With(fmt.Sprintf("%s（第%d个操作）", ae.ZH, i+1), fmt.Sprintf("%s (operation %d)", ae.EN, i+1))
	case ae.Field == "operations" && ae.Row > 0:
		ae = ae.With(fmt.Sprintf("%s（第%d行）", ae.ZH, ae.Row), fmt.Sprintf("%s (line %d)", ae.EN, ae.Row))
	}
	if ok && ae.Field == "max_response_bytes" {
		ae = ae.OnField("max_response_mib")
	}
	return ae, ok && ae.Status != http.StatusNotFound
}

func (s *Server) serviceRegister(w http.ResponseWriter, r *http.Request, c *current) {
	st, err := serviceSettings(r)
	if err == nil {
		entry, _ := strconv.ParseInt(r.PostFormValue("entry_id"), 10, 64)
		var svc proxy.Service
		svc, err = s.Proxy.Register(r.Context(), c.user.Actor(), proxy.Registration{EntryID: entry, Settings: st})
		if err == nil {
			http.Redirect(w, r, "/services/"+itoa(svc.ID)+"?ok=svc.registered", http.StatusSeeOther)
			return
		}
	}
	if ae, ok := formFixable(err); ok {
		r.PostForm.Del("credential_value") // never sent back to the browser
		s.renderServices(w, r, c, ae.Status, ae)
		return
	}
	s.errorPage(w, r, &c.user, err)
}

type serviceData struct {
	Service   proxy.Service
	CanManage bool
	// CanReadCalls: the call log below holds all calls for the provider,
	// platform administrators and auditors, and the department's own for
	// another department's data administrator.
	CanReadCalls bool
	Calls        []proxy.Call
	Stats        []proxy.DayStats
	CallURL      string // where consumers call the service
	Older        int64  // the id to page back from, 0 when no more
	Result       string // the result the call log is filtered by
	MaxMiB       string // the response limit in MiB
}

func (s *Server) servicePage(w http.ResponseWriter, r *http.Request, c *current) {
	id, err := pathID(r)
	if err != nil {
		s.errorPage(w, r, &c.user, err)
		return
	}
	s.renderService(w, r, c, id, http.StatusOK, nil)
}

func (s *Server) renderService(w http.ResponseWriter, r *http.Request, c *current, id int64, status int, ae *apperr.Error) {
	ctx, a := r.Context(), c.user.Actor()
	svc, err := s.Proxy.Service(ctx, a, id)
	if err != nil {
		s.errorPage(w, r, &c.user, err)
		return
	}
	d := serviceData{Service: svc, CanManage: policy.Allowed(a, policy.ServiceManage, policy.Target{DeptID: svc.DeptID}),
		CanReadCalls: policy.Allowed(a, policy.ServiceCalls, policy.Target{}) || policy.Allowed(a, policy.ServiceCalls, policy.Target{DeptID: a.DeptID}),
		CallURL:      requestBase(ctx) + servicesPrefix + url.PathEscape(svc.Code) + "/",
		MaxMiB:       strconv.FormatFloat(float64(svc.MaxResponseBytes)/(1<<20), 'f', -1, 64)}
	if d.CanReadCalls {
		q := r.URL.Query()
		d.Result = q.Get("result")
		if d.Result != proxy.ResultOK && d.Result != proxy.ResultDenied && d.Result != proxy.ResultError {
			d.Result = ""
		}
		const page = 50
		if d.Calls, err = s.Proxy.Calls(ctx, a, proxy.CallFilter{ServiceID: id, Result: d.Result, Before: queryID(r, "before"), Limit: page}); err != nil {
			s.errorPage(w, r, &c.user, err)
			return
		}
		if len(d.Calls) == page {
			d.Older = d.Calls[page-1].ID
		}
		if d.Stats, err = s.Proxy.Stats(ctx, a, id, 14); err != nil {
			s.errorPage(w, r, &c.user, err)
			return
		}
	}
	form := r.PostForm
	if ae == nil {
		form = url.Values{"base_url": {svc.BaseURL}, "operations": {proxy.FormatOperations(svc.Operations)}, "credential_header": {svc.CredentialHeader},
			"timeout_seconds": {strconv.Itoa(svc.TimeoutSeconds)}, "max_response_mib": {strconv.FormatInt(max(1, svc.MaxResponseBytes>>20), 10)}}
	}
	s.render(w, r, status, "services_detail", &page{Title: svc.Name, User: &c.user, Active: "/services", DeptMap: s.deptMap(r),
		Data: d, Err: ae, Form: form})
}

func (s *Server) serviceUpdate(w http.ResponseWriter, r *http.Request, c *current) {
	id, err := pathID(r)
	if err != nil {
		s.errorPage(w, r, &c.user, err)
		return
	}
	st, err := serviceSettings(r)
	if err == nil {
		if _, err = s.Proxy.Update(r.Context(), c.user.Actor(), id, st); err == nil {
			http.Redirect(w, r, "/services/"+itoa(id)+"?ok=common.saved", http.StatusSeeOther)
			return
		}
	}
	if ae, ok := formFixable(err); ok {
		r.PostForm.Del("credential_value")
		s.renderService(w, r, c, id, ae.Status, ae)
		return
	}
	s.errorPage(w, r, &c.user, err)
}

func (s *Server) serviceControl(w http.ResponseWriter, r *http.Request, c *current) {
	id, err := pathID(r)
	if err != nil {
		s.errorPage(w, r, &c.user, err)
		return
	}
	state := map[string]string{"disable": proxy.Disabled, "enable": proxy.Active}[r.PathValue("action")]
	if state == "" {
		s.errorPage(w, r, &c.user, apperr.ErrNotFound)
		return
	}
	if _, err := s.Proxy.SetState(r.Context(), c.user.Actor(), id, state); err != nil {
		s.errorPage(w, r, &c.user, err)
		return
	}
	http.Redirect(w, r, "/services/"+itoa(id)+"?ok=common.saved", http.StatusSeeOther)
}
