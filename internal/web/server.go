// Package web is govshare's HTTP face: the JSON API under /api/v1 (with
// its OpenAPI document and reference page), the server-rendered pages,
// health and metrics. Handlers are thin: they read the request, call a
// domain service with the acting user, and render what comes back. The
// services decide what is allowed.
package web

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"html/template"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"govshare/internal/audit"
	"govshare/internal/calendar"
	"govshare/internal/catalog"
	"govshare/internal/dataservice"
	"govshare/internal/dataservice/proxy"
	"govshare/internal/exchange"
	"govshare/internal/identity"
	"govshare/internal/mask"
	"govshare/internal/notify"
	"govshare/internal/pki"
	"govshare/internal/refdata"
	"govshare/internal/resource"
	"govshare/internal/secret"
	"govshare/internal/share"
	"govshare/internal/todo"
)

// Checker is something readiness depends on (the database, the bus).
type Checker interface {
	Check(ctx context.Context) error
}

// CheckFunc adapts a function to Checker.
type CheckFunc func(ctx context.Context) error

// Check calls f.
func (f CheckFunc) Check(ctx context.Context) error { return f(ctx) }

// Deps are what the web layer needs.
type Deps struct {
	Identity *identity.Service
	Catalog  *catalog.Service
	Calendar *calendar.Calendar
	RefData  *refdata.Service // the region table and the code tables
	Apps     *share.Apps
	Share    *share.Service
	// Resources is the resource store; Masker masks what previews show.
	Resources *resource.Service
	Masker    *mask.Masker
	// Data runs the data services: queries, comparisons, downloads.
	Data    *dataservice.Service
	Notify  *notify.Service
	Todos   *todo.Inbox
	Audit   *audit.Log
	Keys    *secret.Keys
	Log     *slog.Logger
	Ready   map[string]Checker // name → check, e.g. "database", "bus"
	Version string
	// SecureCookies marks cookies Secure; set when served over TLS or
	// behind a TLS-terminating proxy.
	SecureCookies bool
	// Banner is shown in the header, e.g. "演示环境 / demo".
	Banner string
	// PKI is the platform's CA for exchange nodes; Exchange the exchange
	// center; NodeURL the node endpoint's address once it listens.
	PKI      *pki.Service
	Exchange *exchange.Service
	NodeURL  func() string
	// Proxy registers service resources (服务资源) and forwards consumers'
	// calls to them.
	Proxy *proxy.Proxy
}

// Server is the HTTP handler of the platform.
type Server struct {
	Deps
	mux      *http.ServeMux
	api      huma.API
	pages    map[string]*template.Template
	csrfKey  []byte
	metrics  *metrics
	registry *prometheus.Registry
	handler  http.Handler
	reports  reports
}

var setErrorModel sync.Once

// New builds the handler.
func New(d Deps) (*Server, error) {
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	setErrorModel.Do(func() { huma.NewError = newProblem })
	s := &Server{Deps: d, mux: http.NewServeMux(), csrfKey: d.Keys.Derive("csrf")}
	s.registry = prometheus.NewRegistry()
	s.registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	s.metrics = newMetrics(s.registry)
	var err error
	if s.pages, err = parseTemplates(); err != nil {
		return nil, err
	}
	s.routes()
	s.handler = s.withRequest(s.mux)
	return s, nil
}

// ServeHTTP serves every route.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) }

// API exposes the OpenAPI description, for tests and the docs page.
func (s *Server) API() huma.API { return s.api }

func (s *Server) routes() {
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"status":"ok"}`))
	})
	s.mux.HandleFunc("GET /readyz", s.readyz)
	s.mux.Handle("GET /metrics", promhttp.HandlerFor(s.registry, promhttp.HandlerOpts{}))
	s.mux.Handle("GET /static/", http.StripPrefix("/static/", staticHandler()))
	s.apiRoutes()
	s.pageRoutes()
}

// readyz answers 200 only when every dependency answers.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
	defer cancel()
	status := http.StatusOK
	var b strings.Builder
	b.WriteString(`{"checks":{`)
	first := true
	for name, c := range s.Ready {
		res := "ok"
		if err := c.Check(ctx); err != nil {
			status = http.StatusServiceUnavailable
			res = err.Error()
			s.Log.Warn("readiness check failed", "check", name, "err", err)
		}
		if !first {
			b.WriteByte(',')
		}
		first = false
		b.WriteString(jsonString(name) + ":" + jsonString(res))
	}
	b.WriteString(`},"status":`)
	if status == http.StatusOK {
		b.WriteString(`"ready"}`)
	} else {
		b.WriteString(`"not ready"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write([]byte(b.String()))
}

type ctxKey int

const (
	keyRequestID ctxKey = iota
	keyPrincipal
	keyBaseURL
)

// withRequest gives every request an id, a log line and metrics, protects
// against cross-origin form posts and recovers panics.
func (s *Server) withRequest(next http.Handler) http.Handler {
	cop := http.NewCrossOriginProtection()
	protected := cop.Handler(next)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		id := r.Header.Get("X-Request-Id")
		if id == "" || len(id) > 64 {
			var b [8]byte
			_, _ = rand.Read(b[:])
			id = hex.EncodeToString(b[:])
		}
		w.Header().Set("X-Request-Id", id)
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("X-Frame-Options", "DENY")
		w.Header().Set("Referrer-Policy", "same-origin")
		ctx := context.WithValue(r.Context(), keyRequestID, id)
		ctx = context.WithValue(ctx, keyBaseURL, baseURL(r))
		purpose := strings.TrimSpace(r.Header.Get("X-Purpose"))
		if len(purpose) > 500 {
			purpose = purpose[:500]
		}
		ctx = audit.WithRequest(ctx, audit.Request{ClientAddr: clientAddr(r), RequestID: id, Purpose: purpose})
		r = r.WithContext(ctx)
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		defer func() {
			if p := recover(); p != nil {
				s.Log.Error("panic", "request_id", id, "panic", p)
				if !rec.wrote {
					http.Error(rec, "internal error", http.StatusInternalServerError)
				}
			}
			route := r.Pattern
			if route == "" {
				route = "unmatched"
			}
			d := time.Since(start)
			s.metrics.observe(route, r.Method, rec.status, d)
			level := slog.LevelInfo
			if rec.status >= 500 {
				level = slog.LevelError
			}
			if route != "GET /healthz" && route != "GET /metrics" && !strings.HasPrefix(route, "GET /static/") {
				if s.Log.Enabled(r.Context(), level) {
					s.Log.LogAttrs(r.Context(), level, "request", slog.String("request_id", id), slog.String("method", r.Method),
						slog.String("path", r.URL.Path), slog.String("route", route), slog.Int("status", rec.status),
						slog.Int64("duration_ms", d.Milliseconds()), slog.String("client", clientAddr(r)))
				}
			}
		}()
		if strings.HasPrefix(r.URL.Path, "/api/") {
			// The API authenticates with bearer tokens, never cookies, so
			// cross-site requests cannot act for a user.
			next.ServeHTTP(rec, r)
			return
		}
		protected.ServeHTTP(rec, r)
	})
}

// requestBase is the address the caller reached this server at, for
// answers that tell the caller where to go next.
func requestBase(ctx context.Context) string {
	b, _ := ctx.Value(keyBaseURL).(string)
	return b
}

func requestID(ctx context.Context) string {
	id, _ := ctx.Value(keyRequestID).(string)
	return id
}

// clientAddr is the peer address. Deployments behind a proxy terminate
// there; trusting X-Forwarded-For blindly would let anyone forge the
// address the audit log records.
func clientAddr(r *http.Request) string {
	host := r.RemoteAddr
	if i := strings.LastIndexByte(host, ':'); i > 0 {
		host = host[:i]
	}
	return strings.Trim(host, "[]")
}

type statusRecorder struct {
	http.ResponseWriter
	status int
	wrote  bool
}

func (r *statusRecorder) WriteHeader(code int) {
	if !r.wrote {
		r.status = code
		r.wrote = true
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	r.wrote = true
	return r.ResponseWriter.Write(b)
}

func (r *statusRecorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

type metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

func newMetrics(reg *prometheus.Registry) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "govshare_http_requests_total", Help: "HTTP requests by route, method and status."},
			[]string{"route", "method", "status"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "govshare_http_request_duration_seconds", Help: "HTTP request latency by route.",
			Buckets: prometheus.DefBuckets}, []string{"route"}),
	}
	reg.MustRegister(m.requests, m.duration)
	return m
}

func (m *metrics) observe(route, method string, status int, d time.Duration) {
	m.requests.WithLabelValues(route, method, itoa(int64(status))).Inc()
	m.duration.WithLabelValues(route).Observe(d.Seconds())
}
