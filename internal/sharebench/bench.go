// Package sharebench measures what an app's signed request costs over
// HTTP: it serves the platform's full handler on a loopback listener over
// a scratch database, registers an app with a grant, and drives the
// unsigned health check, the signed ping and the signed grant check with
// the same concurrent clients in one run, so the ratio between them is
// taken on the same machine at the same moment. `govshare bench sharing`
// runs it.
package sharebench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"govshare/client"
	"govshare/internal/benchstat"
	"govshare/internal/store"
)

// Options configure Bench. Zero fields take the defaults.
type Options struct {
	// Clients is how many clients send requests at once, each waiting for
	// its answer before the next (default 16).
	Clients int
	// Duration is how long each side is measured (default 10 s).
	Duration time.Duration
	// SignMethod is the app's signature: client.HMACSHA256 (default) or
	// client.HMACSM3.
	SignMethod string
}

// Side is the measurement of one kind of request.
type Side struct {
	Name     string
	Requests int
	Elapsed  time.Duration
	PerSec   float64
	// P50 and P99 are per-request latencies seen by the client, signing
	// included, until the whole answer was read.
	P50, P99 time.Duration
}

// Result compares the signed requests with the unsigned no-op.
type Result struct {
	Database   string // dialect and target, secrets removed
	Machine    string
	Clients    int
	Duration   time.Duration
	SignMethod string
	// Unsigned is GET /healthz: the same middleware, no authentication.
	Unsigned Side
	// Ping is the signed GET /api/v1/ping: signature check only.
	Ping Side
	// Check is the signed GET /api/v1/grants/check: signature check and
	// grant check.
	Check Side
	// PingRatio and CheckRatio are the signed sides' requests/s divided by
	// the unsigned side's.
	PingRatio, CheckRatio float64
	// Signed counts the signed requests sent, warm-up included, and
	// Nonces the rows app_nonces holds afterwards: one per signed request.
	Signed, Nonces int64
}

// ErrNotScratch is returned by Bench for a database that already holds
// departments: the bench adds its own, with users, a published resource,
// an app and a grant, and never removes them.
var ErrNotScratch = errors.New("sharing bench needs an empty scratch database, but this one already holds departments")

// warmup is how many requests each client sends before a side's clock
// starts: connections are open and caches filled when measuring begins.
const warmup = 20

// purpose is what every signed request states in X-Purpose.
const purpose = "社会救助资格核验"

// Bench seeds db (an empty, migrated scratch database) with two
// departments, a published resource, an app of the consumer department and
// its grant, serves the platform on 127.0.0.1, then measures for
// opt.Duration each, with opt.Clients concurrent clients: unsigned
// GET /healthz, signed GET /api/v1/ping and signed GET /api/v1/grants/check.
// Every signed request is signed afresh by the client package, with a new
// nonce. progress, if not nil, gets a line per second and one per side.
func Bench(ctx context.Context, db *store.DB, opt Options, progress io.Writer) (Result, error) {
	if opt.Clients <= 0 {
		opt.Clients = 16
	}
	if opt.Duration <= 0 {
		opt.Duration = 10 * time.Second
	}
	if opt.SignMethod == "" {
		opt.SignMethod = client.HMACSHA256
	}
	if opt.SignMethod != client.HMACSHA256 && opt.SignMethod != client.HMACSM3 {
		return Result{}, fmt.Errorf("sharing bench: unknown signature method %q (use %s or %s)", opt.SignMethod, client.HMACSHA256, client.HMACSM3)
	}
	if progress == nil {
		progress = io.Discard
	}
	var depts int64
	if err := db.QueryRow(ctx, "SELECT COUNT(*) FROM departments").Scan(&depts); err != nil {
		return Result{}, fmt.Errorf("sharing bench: inspect database: %w", err)
	}
	if depts > 0 {
		return Result{}, fmt.Errorf("%w (%d in %s)", ErrNotScratch, depts, db)
	}

	fmt.Fprintln(progress, "seeding: departments, users, a published resource, an app and its grant")
	p, err := seed(ctx, db)
	if err != nil {
		return Result{}, fmt.Errorf("sharing bench: seed: %w", err)
	}
	defer p.close()
	p.app.Method = opt.SignMethod

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return Result{}, fmt.Errorf("sharing bench: listen: %w", err)
	}
	srv := &http.Server{Handler: p.handler, ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	defer func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
		<-served
	}()
	base := "http://" + ln.Addr().String()

	// One keep-alive connection per client, as a busy app would hold.
	tr := &http.Transport{MaxIdleConns: 2 * opt.Clients, MaxIdleConnsPerHost: opt.Clients, DisableCompression: true}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: time.Minute}

	check := url.Values{"resource": {p.resource}, "items": {strings.Join(p.items, ",")}, "method": {"api"}}
	sides := []struct {
		name, url string
		signed    bool
	}{
		{"unsigned GET /healthz", base + "/healthz", false},
		{"signed GET /api/v1/ping", base + "/api/v1/ping", true},
		{"signed GET /api/v1/grants/check", base + "/api/v1/grants/check?" + check.Encode(), true},
	}
	res := Result{
		Database: db.String(), Clients: opt.Clients, Duration: opt.Duration, SignMethod: opt.SignMethod,
		Machine: fmt.Sprintf("%s/%s, %d CPU (GOMAXPROCS %d), %s",
			runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.GOMAXPROCS(0), runtime.Version()),
	}
	out := []*Side{&res.Unsigned, &res.Ping, &res.Check}
	for i, sd := range sides {
		var app *client.App
		if sd.signed {
			app = &p.app
		}
		s, sent, err := measure(ctx, hc, sd.name, sd.url, app, opt, progress)
		if err != nil {
			return Result{}, fmt.Errorf("sharing bench: %w", err)
		}
		*out[i] = s
		if sd.signed {
			res.Signed += sent
		}
	}
	res.PingRatio = res.Ping.PerSec / res.Unsigned.PerSec
	res.CheckRatio = res.Check.PerSec / res.Unsigned.PerSec
	if err := db.QueryRow(ctx, "SELECT COUNT(*) FROM app_nonces").Scan(&res.Nonces); err != nil {
		return Result{}, fmt.Errorf("sharing bench: count nonces: %w", err)
	}
	return res, nil
}

// measure sends GET target from opt.Clients clients: warmup requests each,
// then as many as they can for opt.Duration, timing every one. app, when
// not nil, signs each request afresh. Any answer but 200 stops the side.
// It returns the side and how many requests were sent in all.
func measure(ctx context.Context, hc *http.Client, name, target string, app *client.App, opt Options, progress io.Writer) (Side, int64, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		done, sent atomic.Int64
		errOnce    sync.Once
		firstErr   error
		ready, wg  sync.WaitGroup
		deadline   time.Time
	)
	fail := func(err error) { errOnce.Do(func() { firstErr = err; cancel() }) }
	begin := make(chan struct{})
	lat := make([][]time.Duration, opt.Clients)
	ready.Add(opt.Clients)
	for c := range opt.Clients {
		wg.Go(func() {
			var buf bytes.Buffer
			call := func() error {
				sent.Add(1)
				return benchstat.Get(ctx, hc, target, app, purpose, &buf)
			}
			for range warmup {
				if err := call(); err != nil {
					fail(fmt.Errorf("%s: warm-up: %w", name, err))
					break
				}
			}
			ready.Done()
			select {
			case <-begin:
			case <-ctx.Done():
				return
			}
			for ctx.Err() == nil {
				t := time.Now()
				if !t.Before(deadline) {
					return
				}
				if err := call(); err != nil {
					fail(fmt.Errorf("%s: %w", name, err))
					return
				}
				lat[c] = append(lat[c], time.Since(t))
				done.Add(1)
			}
		})
	}
	ready.Wait()
	start := time.Now()
	deadline = start.Add(opt.Duration)
	close(begin)

	stop := make(chan struct{})
	var ticker sync.WaitGroup
	ticker.Go(func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case now := <-t.C:
				el := now.Sub(start)
				fmt.Fprintf(progress, "%s: %s/%s, %d requests, %.0f/s\n", name, el.Round(time.Second), opt.Duration,
					done.Load(), float64(done.Load())/el.Seconds())
			case <-stop:
				return
			}
		}
	})
	wg.Wait()
	elapsed := time.Since(start)
	close(stop)
	ticker.Wait()

	if firstErr == nil {
		firstErr = ctx.Err()
	}
	if firstErr != nil {
		return Side{}, 0, firstErr
	}
	all := slices.Concat(lat...)
	slices.Sort(all)
	s := Side{
		Name: name, Requests: len(all), Elapsed: elapsed,
		PerSec: float64(len(all)) / elapsed.Seconds(),
		P50:    benchstat.Percentile(all, 50), P99: benchstat.Percentile(all, 99),
	}
	fmt.Fprintf(progress, "%s: %d requests in %s, %.0f/s\n", name, s.Requests, benchstat.Round(elapsed), s.PerSec)
	return s, sent.Load(), nil
}

// String is a short table for the terminal.
func (r Result) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "signed requests over HTTP: %s, %d concurrent clients, %s, %s per side\n",
		r.Database, r.Clients, r.SignMethod, r.Duration)
	fmt.Fprintf(&b, "machine: %s\n", r.Machine)
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "side\trequests\telapsed\trequests/s\tp50\tp99\t")
	for _, s := range []Side{r.Unsigned, r.Ping, r.Check} {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%.0f\t%s\t%s\t\n", s.Name, s.Requests, benchstat.Round(s.Elapsed), s.PerSec,
			benchstat.Round(s.P50), benchstat.Round(s.P99))
	}
	tw.Flush()
	fmt.Fprintf(&b, "signed ping is %.2f× the unsigned no-op's requests/s; signed grant check is %.2f×\n", r.PingRatio, r.CheckRatio)
	fmt.Fprintf(&b, "app_nonces holds %d rows for %d signed requests (warm-up included)\n", r.Nonces, r.Signed)
	return b.String()
}
