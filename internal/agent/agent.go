package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"govshare/internal/agent/source"
	"govshare/internal/bus"
	"govshare/internal/exchange/wire"
	"govshare/internal/pki"
)

// Agent is a running node.
type Agent struct {
	cfg     Config
	log     *slog.Logger
	version string
	http    *http.Client
	bus     *bus.Bus
	outbox  jetstream.Stream
	state   jetstream.KeyValue
	started time.Time
	nodeID  atomic.Int64 // read by running jobs while commands are applied
	metrics *metrics

	mu      sync.Mutex
	cmds    wire.Commands
	jobs    map[int64]*jobRunner
	subs    map[int64]*subRunner
	link    string // "" = up, else why it is down
	runs    map[string]wire.RunResult
	changed chan struct{}

	paused atomic.Bool
	checks checkRunner

	sourcesMu sync.Mutex
	sources   map[string]source.Source
}

// Options adjust an agent.
type Options struct {
	Version string
	Log     *slog.Logger
	// OnlyJob, when set, runs that one job and no subscriptions (agent run
	// JOB --once).
	OnlyJob int64
}

// Open prepares a node: reads its certificate, opens its local store.
func Open(ctx context.Context, cfg Config, opt Options) (*Agent, error) {
	if opt.Log == nil {
		opt.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Center == "" {
		return nil, errors.New("the configuration names no center (center = \"https://…\")")
	}
	cert, err1 := os.ReadFile(cfg.certFile())
	key, err2 := os.ReadFile(cfg.keyFile())
	ca, err3 := os.ReadFile(cfg.caFile())
	if err := errors.Join(err1, err2, err3); err != nil {
		return nil, fmt.Errorf("node certificate in %s: %w — enrol first: govshare agent enrol --api <center web address> --code <code> --data %s", cfg.Data, err, cfg.Data)
	}
	tlsCfg, err := pki.ClientTLS(cert, key, ca)
	if err != nil {
		return nil, err
	}
	if u, err := url.Parse(cfg.Center); err == nil {
		if host, _, err := net.SplitHostPort(u.Host); err == nil {
			tlsCfg.ServerName = host
		}
	}
	a := &Agent{cfg: cfg, log: opt.Log.With("component", "agent"), version: opt.Version, started: time.Now().UTC(),
		jobs: map[int64]*jobRunner{}, subs: map[int64]*subRunner{}, runs: map[string]wire.RunResult{}, changed: make(chan struct{}, 1),
		sources: map[string]source.Source{}, metrics: newMetrics()}
	a.http = &http.Client{Transport: &http.Transport{TLSClientConfig: tlsCfg, MaxIdleConnsPerHost: 8, IdleConnTimeout: time.Minute,
		ResponseHeaderTimeout: 60 * time.Second, DialContext: (&net.Dialer{Timeout: 5 * time.Second}).DialContext}}
	a.bus, err = bus.Open(ctx, bus.Config{StoreDir: filepath.Join(cfg.Data, "store"), Name: "govshare-agent"}, a.log)
	if err != nil {
		return nil, fmt.Errorf("node store: %w", err)
	}
	js := a.bus.JetStream()
	a.outbox, err = js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{Name: "OUTBOX", Subjects: []string{"out.>"}, Storage: jetstream.FileStorage,
		Duplicates: 10 * time.Minute, Description: "batches extracted, until the center has them; the last one of each job is its checkpoint"})
	if err == nil {
		a.state, err = js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "agent", Storage: jetstream.FileStorage})
	}
	if err != nil {
		a.bus.Close()
		return nil, fmt.Errorf("node store: %w", err)
	}
	return a, nil
}

// Close stops the local store and closes the sources.
func (a *Agent) Close() error {
	a.sourcesMu.Lock()
	for _, s := range a.sources {
		_ = s.Close()
	}
	a.sourcesMu.Unlock()
	return a.bus.Close()
}

// Run works until ctx ends: keeps the jobs and subscriptions in line with
// the center's commands, forwards extracted batches, reports status.
func (a *Agent) Run(ctx context.Context) error {
	if a.cfg.Metrics != "" {
		srv, err := a.metrics.serve(a.cfg.Metrics)
		if err != nil {
			return err
		}
		defer srv.Close()
	}
	var wg sync.WaitGroup
	wg.Go(func() { a.forwardLoop(ctx) })
	wg.Go(func() { a.statusLoop(ctx) })
	wg.Go(func() { a.commandLoop(ctx) })
	<-ctx.Done()
	wg.Wait()
	a.checks.wg.Wait()
	a.mu.Lock()
	runners := make([]interface{ wait() }, 0)
	for _, j := range a.jobs {
		runners = append(runners, j)
	}
	for _, s := range a.subs {
		runners = append(runners, s)
	}
	a.mu.Unlock()
	for _, r := range runners {
		r.wait()
	}
	return nil
}

// call makes one request to the center's node endpoint, and reads its
// JSON answer into out (unless nil).
func (a *Agent) call(ctx context.Context, method, path string, query url.Values, body []byte, contentType string, out any) error {
	_, raw, err := a.request(ctx, method, path, query, body, contentType, "")
	if err != nil || out == nil {
		return err
	}
	return json.Unmarshal(raw, out)
}

// request makes one request to the center's node endpoint and returns
// the answer's header and body when the center took it (200).
func (a *Agent) request(ctx context.Context, method, path string, query url.Values, body []byte, contentType, accept string) (http.Header, []byte, error) {
	u := strings.TrimRight(a.cfg.Center, "/") + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return nil, nil, err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := a.http.Do(req)
	if err != nil {
		a.setLink(err.Error())
		return nil, nil, &linkError{err}
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		a.setLink(err.Error())
		return nil, nil, &linkError{err}
	}
	if resp.StatusCode == http.StatusUnauthorized {
		// The center does not accept the node's certificate (revoked or
		// unknown): that says nothing of what was sent, so it is kept and
		// sent again, as when the link is down.
		why := "the center refuses this node's certificate: " + strings.TrimSpace(string(raw))
		a.setLink(why)
		return nil, nil, &linkError{errors.New(why)}
	}
	a.setLink("")
	if resp.StatusCode >= 500 {
		return nil, nil, &linkError{fmt.Errorf("center: %s: %s", resp.Status, strings.TrimSpace(string(raw)))}
	}
	if resp.StatusCode != http.StatusOK {
		return nil, nil, &refusedError{status: resp.StatusCode, body: strings.TrimSpace(string(raw))}
	}
	return resp.Header, raw, nil
}

// linkError is a failure to reach the center: try again later.
type linkError struct{ err error }

func (e *linkError) Error() string { return "center unreachable: " + e.err.Error() }
func (e *linkError) Unwrap() error { return e.err }

// refusedError is the center's refusal: trying again will not help.
type refusedError struct {
	status int
	body   string
}

func (e *refusedError) Error() string {
	return "center refused (" + strconv.Itoa(e.status) + "): " + e.body
}

func (a *Agent) setLink(why string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if refusedNode(why) && !refusedNode(a.link) {
		a.log.Error("the center refuses this node's certificate (revoked, or not issued by this center): nothing reaches the center until the node is enrolled again; extraction goes on into the node's store", "err", why)
	} else if a.link != why && why != "" && a.link == "" {
		a.log.Warn("link to the center is down; extraction goes on into the node's store", "err", why)
	} else if why == "" && a.link != "" {
		a.log.Info("link to the center is back")
	}
	a.link = why
	a.metrics.linkUp(why == "")
}

// refusedNode says whether why the link is down is the center refusing
// the node's certificate: at the TLS handshake of a new connection, or
// with 401 on one opened before the node was revoked.
func refusedNode(why string) bool {
	return strings.Contains(why, "tls: bad certificate") || strings.Contains(why, "refuses this node's certificate")
}

// commandLoop follows the center's commands (long polling).
func (a *Agent) commandLoop(ctx context.Context) {
	rev := int64(-1)
	for ctx.Err() == nil {
		var c wire.Commands
		q := url.Values{"after": {strconv.FormatInt(rev, 10)}, "wait": {"25"}}
		if err := a.call(ctx, http.MethodGet, wire.PathCommands, q, nil, "", &c); err != nil {
			if ctx.Err() == nil {
				a.log.Debug("commands", "err", err)
				sleep(ctx, 2*time.Second)
			}
			continue
		}
		rev = c.Revision
		a.apply(ctx, c)
		a.runChecks(ctx, c.Checks)
	}
}

// apply starts, changes and stops runners to match the commands.
func (a *Agent) apply(ctx context.Context, c wire.Commands) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.cmds = c
	a.nodeID.Store(c.NodeID)
	seen := map[int64]bool{}
	for _, j := range c.Jobs {
		seen[j.ID] = true
		if r, ok := a.jobs[j.ID]; ok {
			r.update(j)
			continue
		}
		a.jobs[j.ID] = a.startJob(ctx, j)
	}
	for id, r := range a.jobs {
		if !seen[id] {
			r.stop()
			delete(a.jobs, id)
		}
	}
	seenSub := map[int64]bool{}
	for _, x := range c.Subscriptions {
		seenSub[x.ID] = true
		if r, ok := a.subs[x.ID]; ok {
			r.update(x)
			continue
		}
		a.subs[x.ID] = a.startSub(ctx, x)
	}
	for id, r := range a.subs {
		if !seenSub[id] {
			r.stop()
			delete(a.subs, id)
		}
	}
}

// statusLoop sends a heartbeat every few seconds.
func (a *Agent) statusLoop(ctx context.Context) {
	first := true
	for ctx.Err() == nil {
		st := a.status(ctx, first)
		body, _ := json.Marshal(st)
		var reply wire.StatusReply
		if err := a.call(ctx, http.MethodPost, wire.PathStatus, nil, body, "application/json", &reply); err == nil {
			first = false
			a.mu.Lock()
			for _, r := range reply.Runs {
				key := runKey(r.JobID, r.Run)
				if prev, seen := a.runs[key]; r.State != "running" && r.Received.Rejected > 0 && (!seen || prev.State == "running") {
					a.log.Warn("the center quarantined rows of a run: they failed the resource's quality rules and wait there to be corrected",
						"job", r.JobID, "run", r.Run, "rejected", r.Received.Rejected, "rows", r.Received.Rows)
				}
				a.runs[key] = r
			}
			a.mu.Unlock()
		}
		sleep(ctx, heartbeat)
	}
}

// heartbeat is how often a node reports.
var heartbeat = 3 * time.Second

func runKey(job, run int64) string {
	return strconv.FormatInt(job, 10) + "/" + strconv.FormatInt(run, 10)
}

// status gathers the heartbeat; describe adds the sources' tables.
func (a *Agent) status(ctx context.Context, describe bool) wire.Status {
	st := wire.Status{Version: a.version, Started: a.started}
	a.mu.Lock()
	for _, j := range a.jobs {
		st.Jobs = append(st.Jobs, j.report())
	}
	for _, x := range a.subs {
		st.Subscriptions = append(st.Subscriptions, x.report())
	}
	a.mu.Unlock()
	for _, t := range a.cfg.Targets {
		st.Targets = append(st.Targets, t.Name)
	}
	if describe {
		st.Sources = a.describeSources(ctx)
	}
	return st
}

// describeSources tests each source and lists its tables and columns, so
// the center can offer them for mapping.
func (a *Agent) describeSources(ctx context.Context) []wire.SourceInfo {
	var out []wire.SourceInfo
	for _, d := range a.cfg.Sources {
		info := wire.SourceInfo{Name: d.Name, Kind: d.Kind}
		src, err := a.source(d.Name)
		if err == nil {
			err = src.Test(ctx)
		}
		if err == nil {
			var tables []source.Table
			tables, err = src.Tables(ctx)
			for i, t := range tables {
				if i >= 200 {
					break
				}
				cols, cerr := src.Columns(ctx, t)
				if cerr != nil {
					continue
				}
				ti := wire.SourceTable{Name: t.String()}
				for _, c := range cols {
					ti.Columns = append(ti.Columns, wire.SourceColumn{Name: c.Name, Type: c.DatabaseType, Key: c.Key, DataType: c.DataType, Length: c.Length})
				}
				info.Tables = append(info.Tables, ti)
			}
		}
		if err != nil {
			info.Error = err.Error()
		}
		out = append(out, info)
	}
	return out
}

// source opens (once) a configured data source.
func (a *Agent) source(name string) (source.Source, error) {
	a.sourcesMu.Lock()
	defer a.sourcesMu.Unlock()
	if s, ok := a.sources[name]; ok {
		return s, nil
	}
	d, ok := a.cfg.source(name)
	if !ok {
		return nil, fmt.Errorf("the node's configuration has no source named %q", name)
	}
	s, err := source.Open(d.Kind, d.DSN)
	if err != nil {
		return nil, err
	}
	a.sources[name] = s
	return s, nil
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
