package agent

import (
	"net"
	"net/http"
	"net/http/pprof"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics are the node's Prometheus metrics.
type metrics struct {
	reg       *prometheus.Registry
	extract   *prometheus.CounterVec
	apply     *prometheus.CounterVec
	latency   prometheus.Histogram
	link      prometheus.Gauge
	lastApply *prometheus.GaugeVec
}

func newMetrics() *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	m.extract = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "govshare_node_rows_extracted_total", Help: "Rows (and keys) extracted by a job into the node's store."}, []string{"job"})
	m.apply = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "govshare_node_rows_applied_total", Help: "Rows and deletes applied to a subscription's target table."}, []string{"subscription"})
	m.latency = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "govshare_node_delivery_latency_seconds", Help: "From a change's commit at the center to its application at the node.",
		Buckets: []float64{.05, .1, .25, .5, 1, 2, 5, 10, 30, 60}})
	m.link = prometheus.NewGauge(prometheus.GaugeOpts{Name: "govshare_node_link_up", Help: "1 while the center answers, 0 while the link is down."})
	m.lastApply = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "govshare_node_last_applied_timestamp_seconds", Help: "When a subscription last applied a delivery."}, []string{"subscription"})
	m.reg.MustRegister(m.extract, m.apply, m.latency, m.link, m.lastApply, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *metrics) extracted(job int64, n int) {
	m.extract.WithLabelValues(strconv.FormatInt(job, 10)).Add(float64(n))
}

func (m *metrics) applied(sub int64, n int, changed time.Time) {
	id := strconv.FormatInt(sub, 10)
	m.apply.WithLabelValues(id).Add(float64(n))
	m.lastApply.WithLabelValues(id).SetToCurrentTime()
	if !changed.IsZero() {
		m.latency.Observe(time.Since(changed).Seconds())
	}
}

func (m *metrics) linkUp(up bool) {
	if up {
		m.link.Set(1)
	} else {
		m.link.Set(0)
	}
}

func (m *metrics) serve(addr string) (*http.Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{}))
	// Profiles beside the metrics: the listener is the operator's own
	// (loopback or a management network), and a slow node is profiled
	// where it runs: go tool pprof http://<addr>/debug/pprof/profile.
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	return srv, nil
}
