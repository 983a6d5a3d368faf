package web

import (
	"bytes"
	"embed"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"govshare/internal/apperr"
	"govshare/internal/catalog"
	"govshare/internal/identity"
	"govshare/internal/policy"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

func staticHandler() http.Handler {
	sub, _ := fs.Sub(staticFS, "static")
	fsrv := http.FileServerFS(sub)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=3600")
		fsrv.ServeHTTP(w, r)
	})
}

// page is what every template receives.
type page struct {
	Lang    Lang
	Title   string
	User    *identity.User
	DeptMap map[int64]string
	Nav     []navGroup
	Active  string
	CSRF    string
	Flash   string
	Err     *apperr.Error
	Form    url.Values
	Data    any
	Banner  string
	Path    string
	Version string
	// ErrorPage is set on error pages, which explain the error themselves.
	ErrorPage bool
}

type navGroup struct {
	Title string
	Items []navItem
}

type navItem struct {
	Key, Href string
	Count     int
	CountID   string // element id of the count, for tests and scripts
}

// nav builds the navigation from what the user's roles allow, so nobody
// sees a link the server would refuse.
func nav(u *identity.User) []navGroup {
	if u == nil {
		return nil
	}
	a := u.Actor()
	var sys []navItem
	if policy.Any(a, policy.DeptCreate) {
		sys = append(sys, navItem{Key: "nav.depts", Href: "/departments"})
	}
	if policy.Any(a, policy.UserView) {
		sys = append(sys, navItem{Key: "nav.users", Href: "/users"})
	}
	if policy.Any(a, policy.CalendarManage) {
		sys = append(sys, navItem{Key: "nav.calendar", Href: "/calendar"})
	}
	if policy.Any(a, policy.RefDataManage) {
		sys = append(sys, navItem{Key: "nav.regions", Href: "/refdata/regions"}, navItem{Key: "nav.codes", Href: "/refdata/codes"})
	}
	if policy.Any(a, policy.AuditRead) {
		sys = append(sys, navItem{Key: "nav.audit", Href: "/audit"})
	}
	groups := []navGroup{{Title: "", Items: []navItem{{Key: "nav.home", Href: "/home"}}}}
	cat := []navItem{{Key: "nav.catalog", Href: "/catalog"}}
	if policy.Any(a, policy.CatalogViewDraft) {
		cat = append(cat, navItem{Key: "nav.catalog.manage", Href: "/catalog/manage"})
	}
	cat = append(cat, navItem{Key: "nav.demands", Href: "/demands"}, navItem{Key: "nav.classes", Href: "/classifications"})
	if policy.Any(a, policy.DataView) {
		cat = append(cat, navItem{Key: "nav.resources", Href: "/resources"})
	}
	groups = append(groups, navGroup{Title: "nav.group.catalog", Items: cat})
	if policy.Any(a, policy.ShareView) {
		groups = append(groups, navGroup{Title: "nav.group.share", Items: []navItem{{Key: "nav.applications", Href: "/applications"}, {Key: "nav.grants", Href: "/grants"}}})
	}
	if policy.Any(a, policy.DataUse) || policy.Any(a, policy.UsageView) {
		groups[len(groups)-1].Items = append(groups[len(groups)-1].Items, navItem{Key: "nav.data", Href: "/data-services"})
	}
	groups = append(groups, exchangeNav(a)...)
	groups = append(groups, servicesNav(a)...)
	groups = append(groups, verifyJobsNav(a)...)
	if len(sys) > 0 {
		groups = append(groups, navGroup{Title: "nav.group.sys", Items: sys})
	}
	groups = append(groups,
		navGroup{Title: "nav.group.dev", Items: devItems(a)},
		navGroup{Title: "nav.group.me", Items: []navItem{{Key: "nav.account", Href: "/account"}}})
	return groups
}

func funcs(lang Lang) template.FuncMap {
	return template.FuncMap{
		"t":    func(key string) string { return T(lang, key) },
		"tf":   func(key string, args ...any) string { return fmt.Sprintf(T(lang, key), args...) },
		"role": func(r policy.Role) string { return T(lang, "role."+string(r)) },
		"time": func(t time.Time) string {
			if t.IsZero() {
				return "—"
			}
			return t.In(cst).Format("2006-01-02 15:04:05")
		},
		"date": func(t time.Time) string {
			if t.IsZero() {
				return "—"
			}
			return t.In(cst).Format("2006-01-02")
		},
		"hasRole": func(roles []policy.Role, r policy.Role) bool {
			for _, x := range roles {
				if x == r {
					return true
				}
			}
			return false
		},
		"allRoles": func() []policy.Role { return policy.AllRoles },
		"now":      func() time.Time { return time.Now() },
		"lower":    strings.ToLower,
		// ferr is the error message for one form field, if it is the one
		// the error names.
		"ferr": func(p *page, field string) string {
			if p.Err != nil && p.Err.Field == field {
				return p.Err.Message(string(p.Lang))
			}
			return ""
		},
		"dict": func(kv ...any) map[string]any {
			m := map[string]any{}
			for i := 0; i+1 < len(kv); i += 2 {
				m[kv[i].(string)] = kv[i+1]
			}
			return m
		},
		"seq": func(n int) []int { return make([]int, n) },
		"dec": func(n int) int { return n - 1 },
		"sortQuery": func(v url.Values, sort string) template.URL {
			nv := url.Values{}
			for k, x := range v {
				if k != "sort" && k != "from" {
					nv[k] = x
				}
			}
			if sort != "" {
				nv.Set("sort", sort)
			}
			return template.URL(nv.Encode())
		},
		"stars": func(n int) string {
			return strings.Repeat("★", max(0, min(n, 5))) + strings.Repeat("☆", 5-max(0, min(n, 5)))
		},
		"list": func(xs ...string) []string { return xs },
		// respath is a resource's page, its code's "/" escaped.
		"respath": resourcePath,
		"pct":     func(f float64) string { return strconv.FormatFloat(f*100, 'f', 1, 64) + "%" },
		"join":    func(xs []string, sep string) string { return strings.Join(xs, sep) },
		"chars": func(s string) []string {
			out := make([]string, 0, len(s))
			for _, r := range s {
				out = append(out, string(r))
			}
			return out
		},
		"hasMethod": func(ms []catalog.ShareMethod, m string) bool {
			for _, x := range ms {
				if string(x) == m {
					return true
				}
			}
			return false
		},
		"selected": func(v url.Values, key, want string) bool { return v.Get(key) == want },
		"checked": func(v url.Values, key, want string) bool {
			for _, x := range v[key] {
				if x == want {
					return true
				}
			}
			return false
		},
	}
}

// parseTemplates parses each page with the layout, once per language so
// the "t" function needs no per-request state.
func parseTemplates() (map[string]*template.Template, error) {
	names, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return nil, err
	}
	out := map[string]*template.Template{}
	for _, lang := range []Lang{ZH, EN} {
		for _, n := range names {
			base := strings.TrimSuffix(strings.TrimPrefix(n, "templates/"), ".html")
			if base == "layout" || strings.HasPrefix(base, "_") {
				continue
			}
			t, err := template.New("layout.html").Funcs(funcs(lang)).ParseFS(templateFS, "templates/layout.html", "templates/_*.html", n)
			if err != nil {
				return nil, fmt.Errorf("parse template %s: %w", n, err)
			}
			out[string(lang)+"/"+base] = t
		}
	}
	return out, nil
}

// render writes a page with the given status.
func (s *Server) render(w http.ResponseWriter, r *http.Request, status int, name string, p *page) {
	p.Lang = langOf(r)
	p.Path = r.URL.RequestURI()
	p.Banner = s.Banner
	p.Version = s.Version
	if p.User != nil && p.Nav == nil {
		p.Nav = nav(p.User)
		if s.Todos != nil {
			if items, err := s.Todos.List(r.Context(), p.User.Actor()); err == nil {
				p.Nav[0].Items = append(p.Nav[0].Items, navItem{Key: "nav.todos", Href: "/todos", Count: len(items), CountID: "todo-count"})
			}
		}
		s.notifyNav(r, p.User, p.Nav)
	}
	if p.CSRF == "" {
		p.CSRF = s.csrfToken(w, r)
	}
	if p.Form == nil {
		p.Form = url.Values{}
	}
	if p.Flash == "" {
		// Only known messages are shown, so a link cannot put text of its
		// own choosing on the page.
		if k := r.URL.Query().Get("ok"); k != "" && T(p.Lang, k) != k {
			p.Flash = T(p.Lang, k)
		}
	}
	t, ok := s.pages[string(p.Lang)+"/"+name]
	if !ok {
		http.Error(w, "no template "+name, http.StatusInternalServerError)
		return
	}
	var buf bytes.Buffer
	if err := t.Execute(&buf, p); err != nil {
		s.Log.Error("render", "template", name, "err", err, "request_id", requestID(r.Context()))
		http.Error(w, "render error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; form-action 'self'; frame-ancestors 'none'")
	w.WriteHeader(status)
	_, _ = buf.WriteTo(w)
}

// errorPage renders a refusal or failure as a page with the right status.
func (s *Server) errorPage(w http.ResponseWriter, r *http.Request, u *identity.User, err error) {
	ae, ok := apperr.As(err)
	if !ok {
		s.Log.Error("page failed", "request_id", requestID(r.Context()), "path", r.URL.Path, "err", err)
		ae = apperr.New(http.StatusInternalServerError, "internal", T(ZH, "err.500"), T(EN, "err.500"))
	}
	s.render(w, r, ae.Status, "error", &page{Title: T(langOf(r), "err.title"), User: u, Err: ae, ErrorPage: true})
}

func devItems(a policy.Actor) []navItem {
	items := []navItem{{Key: "nav.tokens", Href: "/tokens"}}
	if policy.Allowed(a, policy.AppManage, policy.Target{DeptID: a.DeptID}) {
		items = append(items, navItem{Key: "nav.apps", Href: "/apps"})
	}
	return append(items, navItem{Key: "nav.apidocs", Href: "/api/docs"})
}

// fixable returns err as an error the user can fix on the form they sent;
// anything else (a refusal, a failure of ours) is shown as an error page.
func fixable(err error) (*apperr.Error, bool) {
	ae, ok := apperr.As(err)
	if !ok || ae.Status == http.StatusForbidden {
		return nil, false
	}
	return ae, true
}
