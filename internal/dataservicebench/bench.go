// Package dataservicebench measures the data services (数据服务) the way a
// consumer's system uses them: the real server runs in the bench's
// process on a PostgreSQL database of its own holding a population
// resource of ten million synthetic people, and a separate load
// generator process calls it over loopback — keyed lookups through the
// full path (signature, grant, masking, durable audit) beside a minimal
// pgx handler doing the same lookup with no checks, in the same run; a
// comparison job of a million records beside the same comparison as
// one SQL join; a download of a million rows. `govshare bench
// dataservice` runs it.
package dataservicebench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"time"

	"github.com/jackc/pgx/v5"

	"govshare/client"
	"govshare/internal/config"
	"govshare/internal/server"
	"govshare/internal/store"
)

// Options configure Bench. Zero fields take the defaults.
type Options struct {
	// Postgres is a PostgreSQL URL; the bench's database is created on
	// the same server when absent and kept for the next run.
	Postgres string
	// Database is the bench's database (default govshare_bench).
	Database string
	// Rows is how many people the resource holds (default 10,000,000).
	// The population is built once; a different number rebuilds it.
	Rows int64
	// Clients send lookups at once (default 64); Warmup (default 5 s)
	// runs before each side's Duration (default 20 s) is measured.
	Clients  int
	Warmup   time.Duration
	Duration time.Duration
	// Rounds is how many times the two lookup sides run, alternating
	// (default 1).
	Rounds int
	// DownloadRows is the download's size (default 1,000,000; negative:
	// no download).
	DownloadRows int64
	// VerifyRecords is the comparison job's size (default 1,000,000;
	// negative: no comparison).
	VerifyRecords int64
	// SignMethod is the app's signature (default HMAC-SHA256).
	SignMethod string
	// Loadgen starts the load generator (default: this executable's
	// hidden `bench loadgen`).
	Loadgen Loadgen
	// Profile, when set, is a folder for CPU profiles of the bench's
	// process (the server) during each full-path lookup side and the
	// download.
	Profile string
}

func (o *Options) defaults() error {
	if o.Postgres == "" || !store.IsPostgres(o.Postgres) {
		return errors.New("data services bench: give a PostgreSQL URL (postgres://…)")
	}
	if o.Database == "" {
		o.Database = "govshare_bench"
	}
	if o.Rows == 0 {
		o.Rows = 10_000_000
	}
	if o.Clients <= 0 {
		o.Clients = 64
	}
	if o.Warmup == 0 {
		o.Warmup = 5 * time.Second
	}
	if o.Duration <= 0 {
		o.Duration = 20 * time.Second
	}
	if o.Rounds <= 0 {
		o.Rounds = 1
	}
	if o.DownloadRows == 0 {
		o.DownloadRows = 1_000_000
	}
	if o.VerifyRecords == 0 {
		o.VerifyRecords = 1_000_000
	}
	if o.SignMethod == "" {
		o.SignMethod = client.HMACSHA256
	}
	if o.DownloadRows > o.Rows || o.VerifyRecords > o.Rows {
		return fmt.Errorf("data services bench: the download (%d) and the comparison (%d) take at most the population's %d people",
			o.DownloadRows, o.VerifyRecords, o.Rows)
	}
	if o.Loadgen == nil {
		l, err := SelfLoadgen("bench", "loadgen")
		if err != nil {
			return err
		}
		o.Loadgen = l
	}
	return nil
}

// Side is one lookup side of one round.
type Side struct {
	LoadResult
	// ServerCPU is the bench process's CPU time during the side (the
	// server, and the baseline handler); MachineBusy the share of both
	// cores that was busy (everything: server, load generator,
	// PostgreSQL, other work).
	ServerCPU   time.Duration
	MachineBusy float64
	// PostgresCPU is PostgreSQL's CPU time during the side (all its
	// processes on this machine, other databases' work included).
	PostgresCPU time.Duration
}

// Round is the two lookup sides measured one after the other.
type Round struct {
	Full, Baseline Side
	Ratio          float64 // full path's requests/s over the baseline's
}

// Download is the download's measurement.
type Download struct {
	LoadResult
	Filter      string
	ServerCPU   time.Duration
	PostgresCPU time.Duration
	Memory      Memory
}

// Result is one run.
type Result struct {
	Database string
	Machine  string
	Rows     int64
	Resource string
	Clients  int
	Warmup   time.Duration
	Duration time.Duration
	Rounds   []Round
	// FullPerSec, BaselinePerSec and Ratio are over all rounds.
	FullPerSec, BaselinePerSec, Ratio float64
	// Audited counts the data.query audit events written during the
	// lookups; FullOK the full path's 200 answers (warm-up included).
	// They must be equal: every answer had its audit event.
	Audited, FullOK int64
	Download        *Download
	Verify          *Verify
	// VerifyMissing says the comparison job API is not in this build.
	VerifyMissing bool
}

// Targets of the issue.
const (
	TargetPerSec = 5000
	TargetRatio  = 0.5
)

// Bench runs the data services bench; progress gets what it is doing.
func Bench(ctx context.Context, opt Options, progress io.Writer) (Result, error) {
	if err := opt.defaults(); err != nil {
		return Result{}, err
	}
	if progress == nil {
		progress = io.Discard
	}
	if os.Getenv("GOVSHARE_SECRET_KEY") != "" {
		return Result{}, errors.New("data services bench: unset GOVSHARE_SECRET_KEY; the bench database keeps its own master key")
	}
	dsn, err := ensureDatabase(ctx, opt.Postgres, opt.Database, progress)
	if err != nil {
		return Result{}, err
	}
	keyText, err := prepare(ctx, dsn)
	if err != nil {
		return Result{}, err
	}
	dir, err := os.MkdirTemp("", "govshare-bench-dataservice-")
	if err != nil {
		return Result{}, err
	}
	defer os.RemoveAll(dir)
	if err := os.WriteFile(filepath.Join(dir, "secret.key"), []byte(keyText+"\n"), 0o600); err != nil {
		return Result{}, err
	}

	// The real server, assembled and served by server.Run; the seed
	// step runs before it listens.
	cfg := config.Defaults()
	cfg.Addr, cfg.Data, cfg.DB, cfg.SecretKeyFile = "127.0.0.1:0", dir, dsn, filepath.Join(dir, "secret.key")
	var (
		fx      *fixture
		plat    *server.Platform
		readyCh = make(chan string, 1)
		runErr  = make(chan error, 1)
	)
	sctx, stopServer := context.WithCancel(ctx)
	defer stopServer()
	go func() {
		runErr <- server.Run(sctx, &cfg, server.Options{Version: "bench", Out: io.Discard, Logs: io.Discard,
			Seed: func(ctx context.Context, p *server.Platform) error {
				plat = p
				var err error
				fx, err = seed(ctx, p, dsn, opt.Rows, progress)
				return err
			},
			Ready: func(addr string) { readyCh <- addr }})
	}()
	var addr string
	select {
	case addr = <-readyCh:
	case err := <-runErr:
		return Result{}, fmt.Errorf("data services bench: server: %w", err)
	}
	defer func() {
		stopServer()
		<-runErr
	}()
	base := "http://" + addr
	fx.app.Method = opt.SignMethod
	fmt.Fprintf(progress, "server at %s; resource %s holds %d people\n", base, fx.res.Code, fx.res.RecordCount)

	bl, err := startBaseline(ctx, dsn, fx.res)
	if err != nil {
		return Result{}, fmt.Errorf("data services bench: baseline: %w", err)
	}
	defer bl.close()

	res := Result{Database: redact(dsn), Rows: opt.Rows, Resource: fx.res.Code, Clients: opt.Clients, Warmup: opt.Warmup, Duration: opt.Duration,
		Machine: fmt.Sprintf("%s/%s, %d CPU (GOMAXPROCS %d), %s", runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.GOMAXPROCS(0), runtime.Version())}
	var seqBefore int64
	if err := plat.DB.QueryRow(ctx, "SELECT COALESCE(MAX(seq), 0) FROM audit_events").Scan(&seqBefore); err != nil {
		return Result{}, err
	}
	app := fx.app
	full := LoadSpec{Mode: ModeLookup, Name: "full path", URLPrefix: base + "/api/v1/data/" + url.PathEscape(fx.res.Code) + "?filter=" + keyItem + ":eq:",
		Rows: opt.Rows, Masked: true, App: &app, Purpose: purpose, Clients: opt.Clients, Warmup: opt.Warmup, Duration: opt.Duration}
	plain := LoadSpec{Mode: ModeLookup, Name: "baseline", URLPrefix: bl.url, Rows: opt.Rows, Clients: opt.Clients, Warmup: opt.Warmup, Duration: opt.Duration}
	var fullN, plainN int64
	var fullT, plainT time.Duration
	for i := range opt.Rounds {
		var rd Round
		full.Name, plain.Name = fmt.Sprintf("full path (round %d)", i+1), fmt.Sprintf("baseline (round %d)", i+1)
		if rd.Full, err = side(ctx, opt, full, progress, fmt.Sprintf("full-%d", i+1)); err != nil {
			return Result{}, err
		}
		if rd.Baseline, err = side(ctx, opt, plain, progress, ""); err != nil {
			return Result{}, err
		}
		rd.Ratio = rd.Full.PerSec / rd.Baseline.PerSec
		res.Rounds = append(res.Rounds, rd)
		res.FullOK += rd.Full.OK
		fullN, fullT = fullN+rd.Full.Requests, fullT+rd.Full.Elapsed
		plainN, plainT = plainN+rd.Baseline.Requests, plainT+rd.Baseline.Elapsed
		fmt.Fprintf(progress, "round %d: full path %.0f/s, baseline %.0f/s, ratio %.2f\n", i+1, rd.Full.PerSec, rd.Baseline.PerSec, rd.Ratio)
	}
	res.FullPerSec, res.BaselinePerSec = float64(fullN)/fullT.Seconds(), float64(plainN)/plainT.Seconds()
	res.Ratio = res.FullPerSec / res.BaselinePerSec
	if err := plat.DB.QueryRow(ctx, "SELECT COUNT(*) FROM audit_events WHERE seq > ? AND action = 'data.query'", seqBefore).Scan(&res.Audited); err != nil {
		return Result{}, err
	}

	if opt.DownloadRows > 0 {
		d, err := downloadPhase(ctx, opt, base, fx, progress)
		if err != nil {
			return Result{}, err
		}
		res.Download = d
	}
	if opt.VerifyRecords > 0 {
		v, err := verifyPhase(ctx, opt, base, dsn, fx, progress)
		if errors.Is(err, errNoJobAPI) {
			res.VerifyMissing = true
			fmt.Fprintln(progress, "comparison: the comparison job API is not in this build; skipped")
		} else if err != nil {
			return Result{}, err
		}
		res.Verify = v
	}
	return res, nil
}

// side runs one load generator measurement and takes the bench process's
// CPU and the machine's load around it; prof names a CPU profile to
// write when opt.Profile is set.
func side(ctx context.Context, opt Options, spec LoadSpec, progress io.Writer, prof string) (Side, error) {
	stopProf, err := startProfile(opt.Profile, prof)
	if err != nil {
		return Side{}, err
	}
	if opt.Profile != "" && prof != "" {
		spec.Profile = filepath.Join(opt.Profile, prof+".loadgen.pprof")
	}
	cpu0, pg0 := processCPU(), postgresCPU()
	busy0, total0 := machineCPU()
	r, err := opt.Loadgen.run(ctx, spec, progress)
	stopProf()
	if err != nil {
		return Side{}, err
	}
	s := Side{LoadResult: r, ServerCPU: processCPU() - cpu0, PostgresCPU: postgresCPU() - pg0}
	if busy1, total1 := machineCPU(); total1 > total0 {
		s.MachineBusy = float64(busy1-busy0) / float64(total1-total0)
	}
	if r.Requests == 0 {
		return s, fmt.Errorf("%s: no request answered: %s", spec.Name, r.FirstError)
	}
	return s, nil
}

func startProfile(dir, name string) (func(), error) {
	if dir == "" || name == "" {
		return func() {}, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	f, err := os.Create(filepath.Join(dir, name+".pprof"))
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
		// The allocations since the process started, beside the CPU
		// profile (go tool pprof -sample_index=alloc_space).
		if a, err := os.Create(filepath.Join(dir, name+".allocs.pprof")); err == nil {
			_ = pprof.Lookup("allocs").WriteTo(a, 0)
			a.Close()
		}
	}, nil
}

// downloadPhase downloads the first DownloadRows people by person number
// as CSV and watches the server's memory meanwhile.
func downloadPhase(ctx context.Context, opt Options, base string, fx *fixture, progress io.Writer) (*Download, error) {
	filter := rangeItem + ":lt:" + PersonNo(opt.DownloadRows)
	app := fx.app
	spec := LoadSpec{Mode: ModeDownload, Name: "download", App: &app, Purpose: purpose,
		URL: base + "/api/v1/data/" + url.PathEscape(fx.res.Code) + "/download?format=csv&filter=" + url.QueryEscape(filter)}
	fmt.Fprintf(progress, "download: %d rows as CSV (filter %s)\n", opt.DownloadRows, filter)
	stopProf, err := startProfile(opt.Profile, "download")
	if err != nil {
		return nil, err
	}
	mem := watchMemory()
	cpu0, pg0 := processCPU(), postgresCPU()
	r, err := opt.Loadgen.run(ctx, spec, progress)
	cpu, pg := processCPU()-cpu0, postgresCPU()-pg0
	m := mem()
	stopProf()
	if err != nil {
		return nil, err
	}
	if r.Rows != opt.DownloadRows {
		return nil, fmt.Errorf("download: %d rows, want %d", r.Rows, opt.DownloadRows)
	}
	fmt.Fprintf(progress, "download: %d rows, %.1f MB in %s (%.0f rows/s); server peak RSS %.0f MB\n",
		r.Rows, float64(r.Bytes)/1e6, r.Elapsed.Round(time.Millisecond), r.PerSec, float64(m.PeakRSS)/1e6)
	return &Download{LoadResult: r, Filter: filter, ServerCPU: cpu, PostgresCPU: pg, Memory: m}, nil
}

// prepare migrates the bench database and returns its master key.
func prepare(ctx context.Context, dsn string) (string, error) {
	db, err := store.Open(ctx, dsn)
	if err != nil {
		return "", err
	}
	defer db.Close()
	if _, err := db.Migrate(ctx); err != nil {
		return "", err
	}
	_, k, err := masterKey(ctx, db)
	if err != nil {
		return "", err
	}
	// A comparison job an earlier run left unfinished (the run was
	// stopped) would be taken up by this run's server and compete with
	// what is measured: it is failed first.
	var jobs *string
	if err := db.QueryRow(ctx, "SELECT to_regclass('verify_jobs')::text").Scan(&jobs); err != nil {
		return "", err
	}
	if jobs != nil {
		if _, err := db.Exec(ctx, `UPDATE verify_jobs SET state = 'failed', error = 'left unfinished by an earlier bench run', lease_until = NULL
			WHERE state NOT IN ('done', 'failed')`); err != nil {
			return "", fmt.Errorf("data services bench: fail leftover comparison jobs: %w", err)
		}
	}
	return k, nil
}

// ensureDatabase creates the bench's database on the server of dsn when
// it is absent and returns its URL.
func ensureDatabase(ctx context.Context, dsn, name string, progress io.Writer) (string, error) {
	u, err := url.Parse(dsn)
	if err != nil {
		return "", err
	}
	q := u.Query()
	q.Del("search_path")
	u.RawQuery = q.Encode()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return "", fmt.Errorf("data services bench: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil {
		return "", err
	}
	if !exists {
		fmt.Fprintf(progress, "creating database %s\n", name)
		if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
			return "", fmt.Errorf("data services bench: create database %s: %w", name, err)
		}
	}
	u.Path = "/" + name
	return u.String(), nil
}

func redact(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		return "postgres://…"
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	return u.String()
}
