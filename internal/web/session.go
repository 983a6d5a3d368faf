package web

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"time"

	"govshare/internal/apperr"
	"govshare/internal/identity"
)

const (
	sessionCookie = "gs_session"
	preCookie     = "gs_pre" // anonymous CSRF seed for the login forms
)

func (s *Server) setCookie(w http.ResponseWriter, r *http.Request, name, value string, maxAge time.Duration) {
	c := &http.Cookie{Name: name, Value: value, Path: "/", HttpOnly: true, SameSite: http.SameSiteLaxMode,
		Secure: s.SecureCookies || r.TLS != nil}
	if maxAge < 0 {
		c.MaxAge = -1
	} else if maxAge > 0 {
		c.MaxAge = int(maxAge.Seconds())
	}
	http.SetCookie(w, c)
}

func cookie(r *http.Request, name string) string {
	c, err := r.Cookie(name)
	if err != nil {
		return ""
	}
	return c.Value
}

// csrfToken is bound to the session (or, before login, to a random
// cookie): a form from another site cannot know it.
func (s *Server) csrfToken(w http.ResponseWriter, r *http.Request) string {
	if tok := cookie(r, sessionCookie); tok != "" {
		return s.csrfFor("s|" + tok)
	}
	seed := cookie(r, preCookie)
	if seed == "" {
		b := make([]byte, 18)
		_, _ = rand.Read(b)
		seed = base64.RawURLEncoding.EncodeToString(b)
		s.setCookie(w, r, preCookie, seed, 0)
		// Let a handler later in this request see the same seed.
		r.AddCookie(&http.Cookie{Name: preCookie, Value: seed})
	}
	return s.csrfFor("p|" + seed)
}

func (s *Server) csrfFor(seed string) string {
	m := hmac.New(sha256.New, s.csrfKey)
	m.Write([]byte(seed))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// checkCSRF accepts a state-changing form only with the token of this
// session (or, before login, of this browser).
func (s *Server) checkCSRF(r *http.Request) error {
	got := r.PostFormValue("_csrf")
	if got == "" {
		got = r.Header.Get("X-CSRF-Token")
	}
	if got == "" {
		return apperr.ErrCSRF
	}
	var want string
	if tok := cookie(r, sessionCookie); tok != "" {
		want = s.csrfFor("s|" + tok)
	} else if seed := cookie(r, preCookie); seed != "" {
		want = s.csrfFor("p|" + seed)
	} else {
		return apperr.ErrCSRF
	}
	if !hmac.Equal([]byte(got), []byte(want)) {
		return apperr.ErrCSRF
	}
	return nil
}

// current is the logged-in user of a page request.
type current struct {
	token string
	sess  identity.Session
	user  identity.User
}

func (c *current) stage() identity.Stage { return c.sess.Stage(c.user) }

// stagePath is where a user must go to finish logging in.
func stagePath(st identity.Stage) string {
	switch st {
	case identity.StageTOTP:
		return "/login/totp"
	case identity.StageEnrol:
		return "/account/totp"
	case identity.StagePassword:
		return "/account/password"
	}
	return "/home"
}

type pageHandler func(w http.ResponseWriter, r *http.Request, c *current)

// withSession runs h for a user whose session has reached at least the
// given stage (StageReady for ordinary pages); others are sent to the login
// or to the step they still owe. POSTs must carry the CSRF token.
func (s *Server) withSession(min identity.Stage, h pageHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		tok := cookie(r, sessionCookie)
		sess, u, err := s.Identity.Authenticate(r.Context(), tok)
		if err != nil {
			if tok != "" {
				s.setCookie(w, r, sessionCookie, "", -1)
			}
			if r.Method == http.MethodGet {
				http.Redirect(w, r, "/login?next="+urlQueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
				return
			}
			s.errorPage(w, r, nil, apperr.ErrUnauthenticated)
			return
		}
		c := &current{token: tok, sess: sess, user: u}
		st := c.stage()
		if st < min || (min == identity.StageReady && st != identity.StageReady) {
			http.Redirect(w, r, stagePath(st), http.StatusSeeOther)
			return
		}
		if r.Method == http.MethodPost {
			if err := s.checkCSRF(r); err != nil {
				s.errorPage(w, r, &u, err)
				return
			}
		}
		h(w, r, c)
	}
}

// public runs h without a session, still checking CSRF on POST.
func (s *Server) public(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			if err := s.checkCSRF(r); err != nil {
				s.errorPage(w, r, nil, err)
				return
			}
		}
		h(w, r)
	}
}
