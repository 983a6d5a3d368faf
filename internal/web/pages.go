package web

import (
	"encoding/base64"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"rsc.io/qr"

	"govshare/internal/apperr"
	"govshare/internal/audit"
	"govshare/internal/catalog"
	"govshare/internal/identity"
	"govshare/internal/policy"
)

func urlQueryEscape(s string) string { return url.QueryEscape(s) }

func (s *Server) pageRoutes() {
	m := s.mux
	m.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/home", http.StatusSeeOther) })
	m.HandleFunc("GET /lang", s.switchLang)
	m.HandleFunc("GET /login", s.public(s.loginPage))
	m.HandleFunc("POST /login", s.public(s.loginSubmit))
	m.HandleFunc("GET /login/totp", s.withSession(identity.StageTOTP, s.totpPage))
	m.HandleFunc("POST /login/totp", s.withSession(identity.StageTOTP, s.totpSubmit))
	m.HandleFunc("POST /logout", s.public(s.logout))
	m.HandleFunc("GET /account", s.withSession(identity.StageReady, s.accountPage))
	m.HandleFunc("GET /account/password", s.withSession(identity.StagePassword, s.passwordPage))
	m.HandleFunc("POST /account/password", s.withSession(identity.StagePassword, s.passwordSubmit))
	m.HandleFunc("GET /account/totp", s.withSession(identity.StageEnrol, s.enrolPage))
	m.HandleFunc("POST /account/totp", s.withSession(identity.StageEnrol, s.enrolSubmit))
	m.HandleFunc("POST /account/totp/disable", s.withSession(identity.StageReady, s.totpDisable))
	m.HandleFunc("GET /home", s.withSession(identity.StageReady, s.homePage))
	m.HandleFunc("GET /departments", s.withSession(identity.StageReady, s.deptsPage))
	m.HandleFunc("POST /departments", s.withSession(identity.StageReady, s.deptCreate))
	m.HandleFunc("GET /departments/{id}", s.withSession(identity.StageReady, s.deptEditPage))
	m.HandleFunc("POST /departments/{id}", s.withSession(identity.StageReady, s.deptUpdate))
	m.HandleFunc("GET /users", s.withSession(identity.StageReady, s.usersPage))
	m.HandleFunc("GET /users/new", s.withSession(identity.StageReady, s.userNewPage))
	m.HandleFunc("POST /users", s.withSession(identity.StageReady, s.userCreate))
	m.HandleFunc("GET /users/{id}", s.withSession(identity.StageReady, s.userEditPage))
	m.HandleFunc("POST /users/{id}", s.withSession(identity.StageReady, s.userUpdate))
	m.HandleFunc("POST /users/{id}/{op}", s.withSession(identity.StageReady, s.userSecurityOp))
	m.HandleFunc("GET /tokens", s.withSession(identity.StageReady, s.tokensPage))
	m.HandleFunc("POST /tokens", s.withSession(identity.StageReady, s.tokenCreate))
	m.HandleFunc("POST /tokens/{id}/revoke", s.withSession(identity.StageReady, s.tokenRevoke))
	m.HandleFunc("GET /audit", s.withSession(identity.StageReady, s.auditPage))
	m.HandleFunc("GET /audit/export.csv", s.withSession(identity.StageReady, s.auditExport))
	m.HandleFunc("POST /audit/verify", s.withSession(identity.StageReady, s.auditVerify))
	m.HandleFunc("GET /api/docs", s.apiDocsPage)
	s.catalogRoutes()
	s.importRoutes()
	s.calendarRoutes()
	s.appRoutes()
	s.todoRoutes()
	s.notifyRoutes()
	s.shareRoutes()
	s.refdataRoutes()
	s.resourceRoutes()
	s.exchangeRoutes()
	s.dataRoutes()
	s.servicesRoutes()
	s.verifyJobRoutes()
	m.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { s.errorPage(w, r, nil, apperr.ErrNotFound) })
}

// safeNext keeps redirects on this site.
func safeNext(next string) string {
	if next == "" || !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.HasPrefix(next, "/\\") {
		return "/home"
	}
	return next
}

func (s *Server) switchLang(w http.ResponseWriter, r *http.Request) {
	to := "zh"
	if r.URL.Query().Get("to") == "en" {
		to = "en"
	}
	http.SetCookie(w, &http.Cookie{Name: "gs_lang", Value: to, Path: "/", MaxAge: 365 * 24 * 3600, SameSite: http.SameSiteLaxMode})
	http.Redirect(w, r, safeNext(r.URL.Query().Get("back")), http.StatusSeeOther)
}

// ----- login -----

func (s *Server) loginPage(w http.ResponseWriter, r *http.Request) {
	if _, u, err := s.Identity.Authenticate(r.Context(), cookie(r, sessionCookie)); err == nil {
		_ = u
		http.Redirect(w, r, "/home", http.StatusSeeOther)
		return
	}
	s.render(w, r, http.StatusOK, "login", &page{Title: T(langOf(r), "login.title"), Form: url.Values{"next": {r.URL.Query().Get("next")}}})
}

func (s *Server) loginSubmit(w http.ResponseWriter, r *http.Request) {
	login, pw := strings.TrimSpace(r.PostFormValue("login")), r.PostFormValue("password")
	tok, sess, u, err := s.Identity.Login(r.Context(), login, pw, identity.Client{Addr: clientAddr(r), UserAgent: r.UserAgent()})
	if err != nil {
		ae, ok := apperr.As(err)
		if !ok {
			s.errorPage(w, r, nil, err)
			return
		}
		s.render(w, r, ae.Status, "login", &page{Title: T(langOf(r), "login.title"), Err: ae,
			Form: url.Values{"login": {login}, "next": {r.PostFormValue("next")}}})
		return
	}
	// A new session gets a new cookie: no session fixation.
	s.setCookie(w, r, sessionCookie, tok, 0)
	s.setCookie(w, r, preCookie, "", -1)
	st := sess.Stage(u)
	if st == identity.StageReady {
		http.Redirect(w, r, safeNext(r.PostFormValue("next")), http.StatusSeeOther)
		return
	}
	http.Redirect(w, r, stagePath(st), http.StatusSeeOther)
}

func (s *Server) totpPage(w http.ResponseWriter, r *http.Request, c *current) {
	if c.stage() != identity.StageTOTP {
		http.Redirect(w, r, stagePath(c.stage()), http.StatusSeeOther)
		return
	}
	s.render(w, r, http.StatusOK, "totp", &page{Title: T(langOf(r), "totp.title")})
}

func (s *Server) totpSubmit(w http.ResponseWriter, r *http.Request, c *current) {
	if c.stage() != identity.StageTOTP {
		http.Redirect(w, r, stagePath(c.stage()), http.StatusSeeOther)
		return
	}
	_, err := s.Identity.VerifyLoginTOTP(r.Context(), c.token, strings.TrimSpace(r.PostFormValue("code")))
	if err != nil {
		ae, ok := apperr.As(err)
		if !ok {
			s.errorPage(w, r, nil, err)
			return
		}
		if errors.Is(err, identity.ErrLocked) {
			s.setCookie(w, r, sessionCookie, "", -1)
			s.render(w, r, ae.Status, "login", &page{Title: T(langOf(r), "login.title"), Err: ae})
			return
		}
		s.render(w, r, ae.Status, "totp", &page{Title: T(langOf(r), "totp.title"), Err: ae})
		return
	}
	sess, u, err := s.Identity.Authenticate(r.Context(), c.token)
	if err != nil {
		s.errorPage(w, r, nil, err)
		return
	}
	http.Redirect(w, r, stagePath(sess.Stage(u)), http.StatusSeeOther)
}

func (s *Server) logout(w http.ResponseWriter, r *http.Request) {
	_ = s.Identity.Logout(r.Context(), cookie(r, sessionCookie))
	s.setCookie(w, r, sessionCookie, "", -1)
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

// ----- account -----

func (s *Server) accountPage(w http.ResponseWriter, r *http.Request, c *current) {
	s.render(w, r, http.StatusOK, "account", &page{Title: T(langOf(r), "nav.account"), User: &c.user, Active: "/account"})
}

func (s *Server) passwordPage(w http.ResponseWriter, r *http.Request, c *current) {
	s.render(w, r, http.StatusOK, "password", &page{Title: T(langOf(r), "pw.title"), User: &c.user, Active: "/account",
		Data: c.stage() == identity.StagePassword})
}

func (s *Server) passwordSubmit(w http.ResponseWriter, r *http.Request, c *current) {
	old, nw, again := r.PostFormValue("old_password"), r.PostFormValue("new_password"), r.PostFormValue("confirm_password")
	var err error
	if nw != again {
		err = apperr.Invalid("identity.password_mismatch", "confirm_password", T(ZH, "pw.mismatch"), T(EN, "pw.mismatch"))
	} else {
		err = s.Identity.ChangePassword(r.Context(), c.user.ID, c.token, old, nw)
	}
	if err != nil {
		s.formError(w, r, &c.user, "password", T(langOf(r), "pw.title"), err, nil, c.stage() == identity.StagePassword)
		return
	}
	http.Redirect(w, r, "/home?ok=pw.changed", http.StatusSeeOther)
}

// formError re-renders a form with the error beside its field, or shows
// the error page when the error is not the user's to fix.
func (s *Server) formError(w http.ResponseWriter, r *http.Request, u *identity.User, tmpl, title string, err error, form url.Values, data any) {
	ae, ok := apperr.As(err)
	if !ok || ae.Status == http.StatusForbidden || ae.Status == http.StatusNotFound {
		s.errorPage(w, r, u, err)
		return
	}
	if form == nil {
		form = url.Values{}
	}
	s.render(w, r, ae.Status, tmpl, &page{Title: title, User: u, Err: ae, Form: form, Data: data})
}

type enrolData struct {
	Secret  string
	URI     string
	QR      template.URL
	Enabled bool
	Forced  bool
}

func (s *Server) enrolPage(w http.ResponseWriter, r *http.Request, c *current) {
	s.renderEnrol(w, r, c, http.StatusOK, nil)
}

func (s *Server) renderEnrol(w http.ResponseWriter, r *http.Request, c *current, status int, err *apperr.Error) {
	d := enrolData{Enabled: c.user.TOTPEnabled, Forced: c.stage() == identity.StageEnrol}
	if !c.user.TOTPEnabled {
		secret, uri, e := s.Identity.BeginTOTP(r.Context(), c.user.ID)
		if e != nil {
			s.errorPage(w, r, &c.user, e)
			return
		}
		d.Secret, d.URI = secret, uri
		if code, e := qr.Encode(uri, qr.M); e == nil {
			d.QR = template.URL("data:image/png;base64," + base64.StdEncoding.EncodeToString(code.PNG()))
		}
	}
	s.render(w, r, status, "enrol", &page{Title: T(langOf(r), "enrol.title"), User: &c.user, Active: "/account", Data: d, Err: err})
}

func (s *Server) enrolSubmit(w http.ResponseWriter, r *http.Request, c *current) {
	err := s.Identity.ConfirmTOTP(r.Context(), c.user.ID, c.token, strings.TrimSpace(r.PostFormValue("code")))
	if err != nil {
		ae, ok := apperr.As(err)
		if !ok {
			s.errorPage(w, r, &c.user, err)
			return
		}
		s.renderEnrol(w, r, c, ae.Status, ae)
		return
	}
	sess, u, err := s.Identity.Authenticate(r.Context(), c.token)
	if err != nil {
		s.errorPage(w, r, nil, err)
		return
	}
	next := stagePath(sess.Stage(u))
	if next == "/home" {
		next = "/account?ok=enrol.enabled"
	}
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (s *Server) totpDisable(w http.ResponseWriter, r *http.Request, c *current) {
	if err := s.Identity.DisableTOTP(r.Context(), c.user.ID, strings.TrimSpace(r.PostFormValue("code"))); err != nil {
		s.formError(w, r, &c.user, "account", T(langOf(r), "nav.account"), err, nil, nil)
		return
	}
	http.Redirect(w, r, "/account?ok=common.saved", http.StatusSeeOther)
}

// ----- home -----

type homeData struct {
	Dept        identity.Department
	Departments int
	Overdue     int
	ShowOverdue bool
	Shortcuts   []navItem
}

func (s *Server) homePage(w http.ResponseWriter, r *http.Request, c *current) {
	d := homeData{}
	d.Dept, _ = s.Identity.Department(r.Context(), c.user.DeptID)
	d.Departments, _ = s.Identity.DepartmentCount(r.Context())
	// Catalog changes past their legal deadline, for those who must act.
	if a := c.user.Actor(); policy.Any(a, policy.CatalogViewDraft) {
		f := catalog.Filter{Overdue: true, Limit: 500}
		if !policy.Allowed(a, policy.CatalogViewDraft, policy.Target{DeptID: -1}) {
			f.DeptID = a.DeptID
		}
		if es, err := s.Catalog.Entries(r.Context(), a, f); err == nil {
			d.Overdue = len(es)
			d.ShowOverdue = true
		}
	}
	for _, g := range nav(&c.user) {
		for _, it := range g.Items {
			if it.Href != "/home" {
				d.Shortcuts = append(d.Shortcuts, it)
			}
		}
	}
	s.render(w, r, http.StatusOK, "home", &page{Title: T(langOf(r), "nav.home"), User: &c.user, Active: "/home", Data: d})
}

// ----- departments -----

type deptsData struct {
	Departments []identity.Department
	CanCreate   bool
	Edit        *identity.Department
}

func (s *Server) deptMap(r *http.Request) map[int64]string {
	ds, _ := s.Identity.Departments(r.Context())
	m := make(map[int64]string, len(ds))
	for _, d := range ds {
		m[d.ID] = d.Name
	}
	return m
}

func (s *Server) deptsPage(w http.ResponseWriter, r *http.Request, c *current) {
	s.renderDepts(w, r, c, http.StatusOK, nil, nil)
}

func (s *Server) renderDepts(w http.ResponseWriter, r *http.Request, c *current, status int, ae *apperr.Error, form url.Values) {
	// Viewing the tree is open to all; the page is an administration page,
	// so it follows the right to change it.
	if err := policy.Check(c.user.Actor(), policy.DeptCreate, policy.Target{}); err != nil {
		s.denied(w, r, c, policy.DeptCreate, "department")
		return
	}
	ds, err := s.Identity.Departments(r.Context())
	if err != nil {
		s.errorPage(w, r, &c.user, err)
		return
	}
	s.render(w, r, status, "departments", &page{Title: T(langOf(r), "dept.title"), User: &c.user, Active: "/departments",
		Data: deptsData{Departments: ds, CanCreate: true}, Err: ae, Form: form})
}

// denied records and shows a refusal of a page the policy does not allow.
func (s *Server) denied(w http.ResponseWriter, r *http.Request, c *current, act policy.Action, object string) {
	_ = s.Audit.Append(r.Context(), audit.By(c.user.Actor(), string(act), object, "", audit.ResultDenied, map[string]any{"path": r.URL.Path}))
	s.errorPage(w, r, &c.user, apperr.ErrDenied)
}

func deptInput(r *http.Request) identity.DepartmentInput {
	pid, _ := strconv.ParseInt(r.PostFormValue("parent_id"), 10, 64)
	return identity.DepartmentInput{ParentID: pid, Name: r.PostFormValue("name"), CreditCode: r.PostFormValue("credit_code"),
		RegionCode: r.PostFormValue("region_code"), Status: r.PostFormValue("status")}
}

func (s *Server) deptCreate(w http.ResponseWriter, r *http.Request, c *current) {
	_, err := s.Identity.CreateDepartment(r.Context(), c.user.Actor(), deptInput(r))
	if err != nil {
		ae, ok := fixable(err)
		if !ok {
			s.errorPage(w, r, &c.user, err)
			return
		}
		s.renderDepts(w, r, c, ae.Status, ae, r.PostForm)
		return
	}
	http.Redirect(w, r, "/departments?ok=dept.created", http.StatusSeeOther)
}

func pathID(r *http.Request) (int64, error) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		return 0, apperr.ErrNotFound
	}
	return id, nil
}

func (s *Server) deptEditPage(w http.ResponseWriter, r *http.Request, c *current) {
	id, err := pathID(r)
	if err == nil {
		var d identity.Department
		if d, err = s.Identity.Department(r.Context(), id); err == nil {
			s.renderDeptEdit(w, r, c, http.StatusOK, d, nil, url.Values{"name": {d.Name}, "credit_code": {d.CreditCode},
				"region_code": {d.RegionCode}, "status": {d.Status}, "parent_id": {itoa(d.ParentID)}})
			return
		}
	}
	s.errorPage(w, r, &c.user, err)
}

func (s *Server) renderDeptEdit(w http.ResponseWriter, r *http.Request, c *current, status int, d identity.Department, ae *apperr.Error, form url.Values) {
	if !policy.Allowed(c.user.Actor(), policy.DeptUpdate, policy.Target{DeptID: d.ID}) {
		s.denied(w, r, c, policy.DeptUpdate, "department")
		return
	}
	ds, _ := s.Identity.Departments(r.Context())
	s.render(w, r, status, "department", &page{Title: T(langOf(r), "dept.edit"), User: &c.user, Active: "/departments",
		Data: deptsData{Departments: ds, Edit: &d}, Err: ae, Form: form})
}

func (s *Server) deptUpdate(w http.ResponseWriter, r *http.Request, c *current) {
	id, err := pathID(r)
	if err != nil {
		s.errorPage(w, r, &c.user, err)
		return
	}
	_, err = s.Identity.UpdateDepartment(r.Context(), c.user.Actor(), id, deptInput(r))
	if err != nil {
		ae, ok := apperr.As(err)
		d, derr := s.Identity.Department(r.Context(), id)
		if !ok || ae.Status == http.StatusForbidden || derr != nil {
			s.errorPage(w, r, &c.user, err)
			return
		}
		s.renderDeptEdit(w, r, c, ae.Status, d, ae, r.PostForm)
		return
	}
	http.Redirect(w, r, "/departments?ok=common.saved", http.StatusSeeOther)
}

// ----- users -----

type usersData struct {
	Users       []identity.User
	Departments []identity.Department
	Edit        *identity.User
	CanCreate   bool
	CanAdmin    bool // may assign administrator roles
	Security    []string
}

func (s *Server) usersPage(w http.ResponseWriter, r *http.Request, c *current) {
	dept, _ := strconv.ParseInt(r.URL.Query().Get("dept_id"), 10, 64)
	us, err := s.Identity.Users(r.Context(), c.user.Actor(), identity.UserFilter{DeptID: dept, Query: r.URL.Query().Get("q")})
	if err != nil {
		s.errorPage(w, r, &c.user, err)
		return
	}
	ds, _ := s.Identity.Departments(r.Context())
	a := c.user.Actor()
	s.render(w, r, http.StatusOK, "users", &page{Title: T(langOf(r), "user.title"), User: &c.user, Active: "/users", DeptMap: s.deptMap(r),
		Form: r.URL.Query(), Data: usersData{Users: us, Departments: ds, CanCreate: policy.Any(a, policy.UserCreate)}})
}

// deptChoices are the departments the actor may put users in.
func (s *Server) deptChoices(r *http.Request, a policy.Actor) []identity.Department {
	ds, _ := s.Identity.Departments(r.Context())
	return slices.DeleteFunc(ds, func(d identity.Department) bool {
		return !policy.Allowed(a, policy.UserCreate, policy.Target{DeptID: d.ID}) || d.Status != identity.StatusActive
	})
}

func (s *Server) userNewPage(w http.ResponseWriter, r *http.Request, c *current) {
	a := c.user.Actor()
	if !policy.Any(a, policy.UserCreate) {
		s.denied(w, r, c, policy.UserCreate, "user")
		return
	}
	form := url.Values{"dept_id": {r.URL.Query().Get("dept_id")}}
	s.render(w, r, http.StatusOK, "user_new", &page{Title: T(langOf(r), "user.new"), User: &c.user, Active: "/users", Form: form,
		Data: usersData{Departments: s.deptChoices(r, a), CanAdmin: policy.Any(a, policy.UserAssignAdmin)}})
}

func formRoles(r *http.Request) []policy.Role {
	var out []policy.Role
	for _, v := range r.PostForm["roles"] {
		out = append(out, policy.Role(v))
	}
	return out
}

func (s *Server) userCreate(w http.ResponseWriter, r *http.Request, c *current) {
	dept, _ := strconv.ParseInt(r.PostFormValue("dept_id"), 10, 64)
	u, err := s.Identity.CreateUser(r.Context(), c.user.Actor(), identity.UserInput{Login: r.PostFormValue("login"), Name: r.PostFormValue("name"),
		Mobile: r.PostFormValue("mobile"), DeptID: dept, Roles: formRoles(r), Password: r.PostFormValue("password")})
	if err != nil {
		a := c.user.Actor()
		form := r.PostForm
		form.Del("password")
		s.formError(w, r, &c.user, "user_new", T(langOf(r), "user.new"), err, form,
			usersData{Departments: s.deptChoices(r, a), CanAdmin: policy.Any(a, policy.UserAssignAdmin)})
		return
	}
	http.Redirect(w, r, fmt.Sprintf("/users/%d?ok=user.created", u.ID), http.StatusSeeOther)
}

func (s *Server) userEditData(r *http.Request, c *current, u identity.User) usersData {
	a := c.user.Actor()
	t := policy.Target{DeptID: u.DeptID, AdminUser: u.HasAdminRole()}
	var sec []string
	for _, x := range []struct {
		op  string
		act policy.Action
	}{{"reset-password", policy.UserResetPassword}, {"unlock", policy.UserUnlock}, {"reset-totp", policy.UserResetTOTP}, {"revoke-sessions", policy.UserRevokeSessions}} {
		if policy.Allowed(a, x.act, t) {
			sec = append(sec, x.op)
		}
	}
	ds := s.deptChoices(r, a)
	if !slices.ContainsFunc(ds, func(d identity.Department) bool { return d.ID == u.DeptID }) {
		if d, err := s.Identity.Department(r.Context(), u.DeptID); err == nil {
			ds = append([]identity.Department{d}, ds...)
		}
	}
	return usersData{Edit: &u, Departments: ds, CanAdmin: policy.Any(a, policy.UserAssignAdmin), Security: sec,
		CanCreate: policy.Allowed(a, policy.UserUpdate, t)}
}

func userForm(u identity.User) url.Values {
	f := url.Values{"name": {u.Name}, "mobile": {u.Mobile}, "dept_id": {itoa(u.DeptID)}, "status": {u.Status}}
	for _, r := range u.Roles {
		f.Add("roles", string(r))
	}
	return f
}

func (s *Server) userEditPage(w http.ResponseWriter, r *http.Request, c *current) {
	id, err := pathID(r)
	var u identity.User
	if err == nil {
		u, err = s.Identity.ViewUser(r.Context(), c.user.Actor(), id)
	}
	if err != nil {
		s.errorPage(w, r, &c.user, err)
		return
	}
	s.render(w, r, http.StatusOK, "user", &page{Title: T(langOf(r), "user.edit"), User: &c.user, Active: "/users", DeptMap: s.deptMap(r),
		Form: userForm(u), Data: s.userEditData(r, c, u)})
}

func (s *Server) userUpdate(w http.ResponseWriter, r *http.Request, c *current) {
	id, err := pathID(r)
	if err != nil {
		s.errorPage(w, r, &c.user, err)
		return
	}
	dept, _ := strconv.ParseInt(r.PostFormValue("dept_id"), 10, 64)
	_, err = s.Identity.UpdateUser(r.Context(), c.user.Actor(), id, identity.UserUpdate{Name: r.PostFormValue("name"), Mobile: r.PostFormValue("mobile"),
		DeptID: dept, Roles: formRoles(r), Status: r.PostFormValue("status")})
	if err != nil {
		u, uerr := s.Identity.ViewUser(r.Context(), c.user.Actor(), id)
		if uerr != nil {
			s.errorPage(w, r, &c.user, err)
			return
		}
		s.formError(w, r, &c.user, "user", T(langOf(r), "user.edit"), err, r.PostForm, s.userEditData(r, c, u))
		return
	}
	http.Redirect(w, r, fmt.Sprintf("/users/%d?ok=common.saved", id), http.StatusSeeOther)
}

func (s *Server) userSecurityOp(w http.ResponseWriter, r *http.Request, c *current) {
	id, err := pathID(r)
	if err != nil {
		s.errorPage(w, r, &c.user, err)
		return
	}
	a := c.user.Actor()
	ctx := r.Context()
	switch r.PathValue("op") {
	case "reset-password":
		err = s.Identity.ResetPassword(ctx, a, id, r.PostFormValue("password"))
	case "unlock":
		err = s.Identity.Unlock(ctx, a, id)
	case "reset-totp":
		err = s.Identity.ResetTOTP(ctx, a, id)
	case "revoke-sessions":
		err = s.Identity.RevokeSessions(ctx, a, id)
	default:
		err = apperr.ErrNotFound
	}
	if err != nil {
		u, uerr := s.Identity.ViewUser(ctx, a, id)
		if uerr != nil {
			s.errorPage(w, r, &c.user, err)
			return
		}
		s.formError(w, r, &c.user, "user", T(langOf(r), "user.edit"), err, userForm(u), s.userEditData(r, c, u))
		return
	}
	http.Redirect(w, r, fmt.Sprintf("/users/%d?ok=user.done", id), http.StatusSeeOther)
}

// ----- tokens -----

type tokensData struct {
	Tokens []identity.Token
	New    string // plaintext of a token just created, shown once
}

func (s *Server) tokensPage(w http.ResponseWriter, r *http.Request, c *current) {
	s.renderTokens(w, r, c, http.StatusOK, "", nil)
}

func (s *Server) renderTokens(w http.ResponseWriter, r *http.Request, c *current, status int, plain string, ae *apperr.Error) {
	ts, err := s.Identity.Tokens(r.Context(), c.user.Actor(), c.user.ID)
	if err != nil {
		s.errorPage(w, r, &c.user, err)
		return
	}
	s.render(w, r, status, "tokens", &page{Title: T(langOf(r), "token.title"), User: &c.user, Active: "/tokens",
		Data: tokensData{Tokens: ts, New: plain}, Err: ae, Form: r.PostForm})
}

func (s *Server) tokenCreate(w http.ResponseWriter, r *http.Request, c *current) {
	days, _ := strconv.Atoi(r.PostFormValue("expires_in_days"))
	if r.PostFormValue("expires_in_days") != "" && days == 0 {
		days = -1 // not a number: let the service refuse it
	}
	plain, _, err := s.Identity.CreateToken(r.Context(), c.user.Actor(), r.PostFormValue("name"), days)
	if err != nil {
		ae, ok := apperr.As(err)
		if !ok {
			s.errorPage(w, r, &c.user, err)
			return
		}
		s.renderTokens(w, r, c, ae.Status, "", ae)
		return
	}
	// Rendered directly, never redirected, so the token is never in a URL.
	r.PostForm = nil
	s.renderTokens(w, r, c, http.StatusCreated, plain, nil)
}

func (s *Server) tokenRevoke(w http.ResponseWriter, r *http.Request, c *current) {
	id, err := pathID(r)
	if err == nil {
		err = s.Identity.RevokeToken(r.Context(), c.user.Actor(), id)
	}
	if err != nil {
		s.errorPage(w, r, &c.user, err)
		return
	}
	http.Redirect(w, r, "/tokens?ok=common.saved", http.StatusSeeOther)
}
