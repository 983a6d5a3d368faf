package web

import (
	"net/http"
	"strconv"
	"strings"

	"govshare/internal/apperr"
	"govshare/internal/identity"
	"govshare/internal/share"
)

func (s *Server) appRoutes() {
	m := s.mux
	m.HandleFunc("GET /apps", s.withSession(identity.StageReady, s.appsPage))
	m.HandleFunc("POST /apps", s.withSession(identity.StageReady, s.appRegister))
	m.HandleFunc("POST /apps/{id}/{op}", s.withSession(identity.StageReady, s.appOp))
}

type appsData struct {
	Apps   []share.App
	NewKey string // shown once after registering or rotating
	Secret string
}

func (s *Server) appsPage(w http.ResponseWriter, r *http.Request, c *current) {
	s.renderApps(w, r, c, http.StatusOK, appsData{}, nil)
}

func (s *Server) renderApps(w http.ResponseWriter, r *http.Request, c *current, status int, d appsData, ae *apperr.Error) {
	a := c.user.Actor()
	apps, err := s.Apps.List(r.Context(), a, a.DeptID)
	if err != nil {
		s.errorPage(w, r, &c.user, err)
		return
	}
	d.Apps = apps
	form := r.PostForm
	if d.Secret != "" {
		form = nil
	}
	s.render(w, r, status, "apps", &page{Title: T(langOf(r), "app.title"), User: &c.user, Active: "/apps", Data: d, Err: ae, Form: form})
}

func (s *Server) appRegister(w http.ResponseWriter, r *http.Request, c *current) {
	app, sec, err := s.Apps.Register(r.Context(), c.user.Actor(), share.AppInput{Name: r.PostFormValue("name"), Purpose: r.PostFormValue("purpose"),
		Contact: r.PostFormValue("contact"), AllowedAddrs: strings.Split(r.PostFormValue("allowed_addrs"), ","),
		Limits: share.AppLimits{RateLimit: formInt(r, "rate_limit"), DailyRecords: formInt(r, "daily_records"), DailyVerify: formInt(r, "daily_verify")}})
	if err != nil {
		ae, ok := fixable(err)
		if !ok {
			s.errorPage(w, r, &c.user, err)
			return
		}
		s.renderApps(w, r, c, ae.Status, appsData{}, ae)
		return
	}
	// Rendered, not redirected, so the secret never sits in a URL.
	s.renderApps(w, r, c, http.StatusCreated, appsData{NewKey: app.Key, Secret: sec}, nil)
}

func (s *Server) appOp(w http.ResponseWriter, r *http.Request, c *current) {
	id, err := pathID(r)
	if err != nil {
		s.errorPage(w, r, &c.user, err)
		return
	}
	switch r.PathValue("op") {
	case "rotate":
		app, sec, err := s.Apps.Rotate(r.Context(), c.user.Actor(), id)
		if err != nil {
			s.errorPage(w, r, &c.user, err)
			return
		}
		s.renderApps(w, r, c, http.StatusOK, appsData{NewKey: app.Key, Secret: sec}, nil)
	case "revoke":
		if err := s.Apps.Revoke(r.Context(), c.user.Actor(), id); err != nil {
			s.errorPage(w, r, &c.user, err)
			return
		}
		http.Redirect(w, r, "/apps?ok=common.saved", http.StatusSeeOther)
	default:
		s.errorPage(w, r, &c.user, apperr.ErrNotFound)
	}
}

// formInt reads a whole number field; what is not one reads as -1, which
// the services refuse as invalid.
func formInt(r *http.Request, name string) int {
	v := strings.TrimSpace(r.PostFormValue(name))
	if v == "" {
		return 0
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return -1
	}
	return n
}
