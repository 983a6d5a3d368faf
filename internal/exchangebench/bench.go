// Package exchangebench measures the exchange system end to end: rows of a
// provider department's PostgreSQL table travel through its exchange node
// (前置机, a process of its own), the node's store, the center's bus and
// resource store, and the consumer department's node into a table of the
// consumer's PostgreSQL database, beside the plain way of moving the same
// rows between the two databases (COPY … TO STDOUT piped into COPY … FROM
// STDIN) in the same run. Then single-row changes are committed at the
// source at a steady pace and timed until each shows in the consumer's
// table. `govshare bench exchange` runs it.
package exchangebench

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"

	"govshare/internal/agent"
	"govshare/internal/benchstat"
	"govshare/internal/exchange"
	"govshare/internal/exchange/wire"
	"govshare/internal/store"
)

// Launcher makes the command that runs one exchange node with the given
// configuration file: `govshare agent run --config <file>`.
type Launcher func(config string) *exec.Cmd

// Options configure Bench. Zero fields take the defaults.
type Options struct {
	// Postgres is the server to run on, a postgres:// URL. The provider's
	// and the consumer's databases and the center's store are three fresh
	// schemas on it, dropped afterwards.
	Postgres string
	// Rows is how many rows the provider's table holds (default
	// 1,000,000).
	Rows int
	// BatchRows is the job's rows per batch (0: the job's default).
	BatchRows int
	// Rate is how many single-row changes are committed per second in the
	// latency phase (default 5), for LatencyFor (default 60 s; negative:
	// no latency phase).
	Rate       float64
	LatencyFor time.Duration
	// Node starts a node process (default: this executable with `agent run
	// --config <file>`).
	Node Launcher
	// Dir holds the nodes' folders, logs and the center's bus (default a
	// temporary folder, removed afterwards unless the run fails).
	Dir string
	// Profile, when set, is a folder that gets CPU profiles of the bulk
	// phase: the center (this process) and both nodes (from their metrics
	// listeners), ProfileFor long (default 30 s).
	Profile    string
	ProfileFor time.Duration
}

// Side is one way of moving the rows.
type Side struct {
	Name    string
	Rows    int64
	Elapsed time.Duration
	PerSec  float64
}

func side(name string, rows int64, took time.Duration) Side {
	s := Side{Name: name, Rows: rows, Elapsed: took}
	if took > 0 {
		s.PerSec = float64(rows) / took.Seconds()
	}
	return s
}

// Memory is a node's resident memory.
type Memory struct {
	Name string
	// AfterBulk and Peak are the process's VmHWM (high-water mark of its
	// resident set since it started) after the bulk phase and at the end.
	AfterBulk, Peak uint64
}

// Result is what one run measured.
type Result struct {
	Machine  string
	Server   string // PostgreSQL version
	Settings []string
	Rows     int
	Columns  int
	Batch    int // job's rows per batch
	// Baseline is COPY between the databases, Exchange the exchange from
	// the job's creation to the last row in the consumer's table; Ratio
	// is Exchange's rows/s over Baseline's. The baseline runs
	// baselineRuns times and the fastest counts (BaselineRuns are all
	// their times): on a shared machine one run varied by half.
	Baseline, Exchange Side
	BaselineRuns       []time.Duration
	Ratio              float64
	// CenterIn is when the center's resource store had applied every row
	// (from the job's creation).
	CenterIn time.Duration
	Latency  Latency
	Nodes    []Memory
	// CenterPeak is the bench process's own VmHWM: the center, plus the
	// bench's connections.
	CenterPeak uint64
	// BaselineCPU and ExchangeCPU are the CPU seconds each side used.
	BaselineCPU, ExchangeCPU CPU
}

// CPU is the CPU time the parts used during a side, in seconds. Postgres
// counts every server process on the machine (other users' work
// included); PostgresFor splits out the server processes serving each
// part's connections (by application_name: center, provider, consumer,
// bench), those that ended during the side not counted. Center is the
// bench's own process (during the baseline: the COPY piping).
type CPU struct {
	Postgres                   float64
	PostgresFor                map[string]float64
	Center, Provider, Consumer float64
	backends                   map[int]float64 // pid → CPU, at the start
	backendRole                map[int]string
}

func (c CPU) total() float64 { return c.Postgres + c.Center + c.Provider + c.Consumer }

// cpuMeter reads the CPU time the parts have used so far.
type cpuMeter struct {
	admin  *pgx.Conn
	prefix string // of the application names of the bench's connections
	nodes  []*node
}

func (m cpuMeter) now(ctx context.Context) CPU {
	c := CPU{Postgres: postgresCPU(), Center: cpuSeconds(0, false), backends: map[int]float64{}, backendRole: map[int]string{}}
	if len(m.nodes) == 2 {
		c.Provider, c.Consumer = m.nodes[0].cpu(), m.nodes[1].cpu()
	}
	rows, err := m.admin.Query(ctx, "SELECT pid, application_name FROM pg_stat_activity WHERE application_name LIKE $1", m.prefix+"%")
	if err != nil {
		return c
	}
	defer rows.Close()
	for rows.Next() {
		var pid int
		var app string
		if rows.Scan(&pid, &app) == nil {
			c.backends[pid] = cpuSeconds(pid, false)
			c.backendRole[pid] = strings.TrimPrefix(app, m.prefix)
		}
	}
	return c
}

// since is the CPU used from o to c.
func (c CPU) since(o CPU) CPU {
	d := CPU{Postgres: c.Postgres - o.Postgres, Center: c.Center - o.Center, Provider: c.Provider - o.Provider, Consumer: c.Consumer - o.Consumer,
		PostgresFor: map[string]float64{}}
	for pid, v := range c.backends {
		d.PostgresFor[c.backendRole[pid]] += v - o.backends[pid]
	}
	return d
}

// Bench prepares the three scratch schemas, fills the provider's table,
// measures the COPY baseline, then the exchange (bulk, then incremental),
// and removes what it made. progress, if not nil, gets a line per step and
// every two seconds during the long ones.
func Bench(ctx context.Context, opt Options, progress io.Writer) (res Result, err error) {
	if opt.Rows <= 0 {
		opt.Rows = 1_000_000
	}
	if opt.Rate <= 0 {
		opt.Rate = 5
	}
	if opt.LatencyFor == 0 {
		opt.LatencyFor = 60 * time.Second
	}
	if opt.ProfileFor <= 0 {
		opt.ProfileFor = 30 * time.Second
	}
	if progress == nil {
		progress = io.Discard
	}
	if opt.Node == nil {
		self, err := os.Executable()
		if err != nil {
			return res, err
		}
		opt.Node = func(config string) *exec.Cmd { return exec.Command(self, "agent", "run", "--config", config) }
	}
	if !store.IsPostgres(opt.Postgres) || !strings.Contains(opt.Postgres, "://") {
		return res, errors.New("exchange bench: give the PostgreSQL server as a postgres:// URL, e.g. --pg 'postgres://postgres@127.0.0.1:5432/test?sslmode=disable'")
	}
	res = Result{Rows: opt.Rows, Columns: len(columns), Batch: opt.BatchRows,
		Machine: fmt.Sprintf("%s/%s, %d CPU (GOMAXPROCS %d), %s", runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.GOMAXPROCS(0), runtime.Version())}

	dir := opt.Dir
	if dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return res, err
		}
	} else {
		if dir, err = os.MkdirTemp("", "govshare-xbench-"); err != nil {
			return res, err
		}
		defer func() {
			if err == nil {
				os.RemoveAll(dir)
			} else {
				err = fmt.Errorf("%w\n(the nodes' logs and the center's log are kept in %s)", err, dir)
			}
		}()
	}

	// Three scratch schemas: the provider's database, the consumer's, the
	// center's store.
	admin, err := pgx.Connect(ctx, opt.Postgres)
	if err != nil {
		return res, fmt.Errorf("exchange bench: connect to %s: %w — is PostgreSQL running, and may this user create schemas?", redact(opt.Postgres), err)
	}
	defer admin.Close(context.WithoutCancel(ctx))
	if err := admin.QueryRow(ctx, "SHOW server_version").Scan(&res.Server); err != nil {
		return res, err
	}
	for _, s := range []string{"fsync", "synchronous_commit", "full_page_writes", "wal_level"} {
		var v string
		if err := admin.QueryRow(ctx, "SHOW "+s).Scan(&v); err != nil {
			return res, err
		}
		res.Settings = append(res.Settings, "PostgreSQL "+s+"="+v)
	}
	res.Settings = append(res.Settings, "JetStream (center and both nodes, embedded): sync_always, every stored message fsynced before its ack")
	var rnd [4]byte
	_, _ = rand.Read(rnd[:])
	prefix := "xbench_" + hex.EncodeToString(rnd[:])
	// dsn is each part's URL, own that of the bench's own connections.
	dsn, own := map[string]string{}, map[string]string{}
	for _, role := range []string{"center", "provider", "consumer"} {
		schema := prefix + "_" + role
		if _, err := admin.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
			return res, fmt.Errorf("exchange bench: create scratch schema %s: %w — the user needs CREATE on the database", schema, err)
		}
		defer func() { _, _ = admin.Exec(context.WithoutCancel(ctx), "DROP SCHEMA "+schema+" CASCADE") }()
		if dsn[role], err = scratchDSN(opt.Postgres, schema, prefix+"_"+role); err != nil {
			return res, err
		}
		if own[role], err = scratchDSN(opt.Postgres, schema, prefix+"_bench"); err != nil {
			return res, err
		}
	}
	fmt.Fprintf(progress, "scratch schemas %s_center, _provider, _consumer on %s\n", prefix, redact(opt.Postgres))

	src, err := pgx.Connect(ctx, own["provider"])
	if err != nil {
		return res, err
	}
	defer src.Close(context.WithoutCancel(ctx))
	dst, err := pgx.Connect(ctx, own["consumer"])
	if err != nil {
		return res, err
	}
	defer dst.Close(context.WithoutCancel(ctx))

	start := time.Now()
	fmt.Fprintf(progress, "filling the provider's table: %d rows × %d columns\n", opt.Rows, len(columns))
	if err := fillSource(ctx, src, opt.Rows); err != nil {
		return res, err
	}
	want, err := readFingerprint(ctx, src, sourceTable, false)
	if err != nil {
		return res, err
	}
	fmt.Fprintf(progress, "filled in %s\n", time.Since(start).Round(time.Millisecond))

	// (a) the baseline, its fastest run.
	meter := cpuMeter{admin: admin, prefix: prefix + "_"}
	for run := 1; run <= baselineRuns; run++ {
		checkpoint(ctx, admin)
		fmt.Fprintf(progress, "baseline %d/%d: COPY … TO STDOUT | COPY … FROM STDIN\n", run, baselineRuns)
		cpu0 := meter.now(ctx)
		start = time.Now()
		n, err := copyBaseline(ctx, src, dst)
		took := time.Since(start)
		cpu := meter.now(ctx).since(cpu0)
		if err != nil {
			return res, err
		}
		if got, err := readFingerprint(ctx, dst, baselineTable, false); err != nil {
			return res, err
		} else if got != want {
			return res, fmt.Errorf("exchange bench: the baseline's copy differs from the source: %+v, want %+v", got, want)
		}
		if _, err := dst.Exec(ctx, "DROP TABLE "+baselineTable); err != nil {
			return res, err
		}
		fmt.Fprintf(progress, "baseline %d/%d: %d rows in %s\n", run, baselineRuns, n, took.Round(time.Millisecond))
		res.BaselineRuns = append(res.BaselineRuns, took)
		if run == 1 || took < res.Baseline.Elapsed {
			res.Baseline = side("COPY TO STDOUT | COPY FROM STDIN", n, took)
			res.BaselineCPU = cpu
		}
	}

	// (b) the exchange: the center in this process, two node processes.
	fmt.Fprintln(progress, "starting the center (store, bus, exchange, node endpoint) and enrolling two nodes")
	db, err := store.Open(ctx, dsn["center"])
	if err != nil {
		return res, err
	}
	defer db.Close()
	if _, err := db.Migrate(ctx); err != nil {
		return res, fmt.Errorf("exchange bench: migrate the center's store: %w", err)
	}
	logf, err := os.Create(filepath.Join(dir, "center.log"))
	if err != nil {
		return res, err
	}
	defer logf.Close()
	c, err := openCenter(ctx, db, dir, slog.New(slog.NewJSONHandler(logf, &slog.HandlerOptions{Level: slog.LevelInfo})))
	if err != nil {
		return res, fmt.Errorf("exchange bench: center: %w", err)
	}
	defer c.close()
	prov, err := startNode(ctx, c, c.provider, c.provDept, "provider-node", dir,
		agent.Config{Sources: []agent.Database{{Name: "business", Kind: sourceKind, DSN: dsn["provider"]}}}, opt.Node)
	if err != nil {
		return res, err
	}
	defer prov.stop()
	cons, err := startNode(ctx, c, c.consumer, c.consDept, "consumer-node", dir,
		agent.Config{Targets: []agent.Database{{Name: "business", Kind: sourceKind, DSN: dsn["consumer"]}}}, opt.Node)
	if err != nil {
		return res, err
	}
	defer cons.stop()
	nodes := []*node{prov, cons}
	for _, n := range nodes {
		if err := n.ready(ctx); err != nil {
			return res, fmt.Errorf("exchange bench: %w", err)
		}
	}

	if _, err := c.ex.CreateSubscription(ctx, c.consumer, exchange.SubscriptionRequest{GrantID: c.grant.ID, NodeID: cons.id, Target: "business",
		Table: targetTable, Create: true, Realtime: true}); err != nil {
		return res, fmt.Errorf("exchange bench: subscription: %w", err)
	}
	checkpoint(ctx, admin)
	var stopProfiles func() error
	if opt.Profile != "" {
		if stopProfiles, err = profile(opt.Profile, opt.ProfileFor, nodes); err != nil {
			return res, err
		}
	}
	fmt.Fprintf(progress, "exchange: job (mode key on change_seq, continuous) from %s through the center to %s\n", prov.name, cons.name)
	meter.nodes = nodes
	cpu0 := meter.now(ctx)
	start = time.Now()
	job, err := c.ex.CreateJob(ctx, c.provider, prov.id, wire.JobSpec{Name: "人口基本信息同步", Resource: c.resource.Code, Source: "business",
		Table: sourceTable, Mapping: mapping(), Mode: wire.ModeKey, IncColumn: "change_seq", Schedule: wire.ScheduleCont, IntervalSeconds: 1,
		BatchRows: opt.BatchRows, Running: true})
	if err != nil {
		return res, fmt.Errorf("exchange bench: job: %w", err)
	}
	took, centerIn, err := awaitBulk(ctx, c, dst, nodes, job.ID, int64(opt.Rows), start, progress)
	res.ExchangeCPU = meter.now(ctx).since(cpu0)
	res.Exchange = side("exchange (node → bus → center → node)", int64(opt.Rows), took)
	res.CenterIn = centerIn
	if stopProfiles != nil {
		if perr := stopProfiles(); perr != nil {
			fmt.Fprintf(progress, "profiles: %v\n", perr)
		}
	}
	if err != nil {
		return res, err
	}
	if res.Baseline.PerSec > 0 {
		res.Ratio = res.Exchange.PerSec / res.Baseline.PerSec
	}
	if got, err := readFingerprint(ctx, dst, targetTable, true); err != nil {
		return res, err
	} else if got != want {
		return res, fmt.Errorf("exchange bench: the consumer's table differs from the source: %+v, want %+v", got, want)
	}
	for _, n := range nodes {
		_, peak := n.memory()
		res.Nodes = append(res.Nodes, Memory{Name: n.name, AfterBulk: peak})
	}
	fmt.Fprintf(progress, "exchange: %d rows in %s (the center had them all after %s); the consumer's table matches the source\n",
		opt.Rows, took.Round(time.Millisecond), centerIn.Round(time.Millisecond))

	// (c) incremental latency.
	if opt.LatencyFor > 0 {
		fmt.Fprintf(progress, "latency: %.0f single-row changes a second at the source for %s\n", opt.Rate, opt.LatencyFor)
		lat, missing, err := latencies(ctx, own["provider"], own["consumer"], opt.Rows, opt.Rate, opt.LatencyFor, 30*time.Second, progress)
		if err != nil {
			return res, fmt.Errorf("exchange bench: latency: %w", err)
		}
		res.Latency = summarise(opt.Rate, opt.LatencyFor, lat, missing)
		if missing > 0 {
			return res, fmt.Errorf("exchange bench: %d of %d changes never reached the consumer's table within 30 s — see the nodes' logs", missing, missing+len(lat))
		}
		for _, n := range nodes {
			if err := n.alive(); err != nil {
				return res, err
			}
		}
	}
	for i, n := range nodes {
		_, res.Nodes[i].Peak = n.memory()
	}
	res.CenterPeak = procStatus(0, "VmHWM")
	return res, nil
}

// awaitBulk waits until the consumer's table holds every row, and returns
// how long that took from start and when the center had applied them all.
// It gives up when a node exits or nothing moves for two minutes.
func awaitBulk(ctx context.Context, c *center, dst *pgx.Conn, nodes []*node, jobID, rows int64, start time.Time, progress io.Writer) (took, centerIn time.Duration, err error) {
	var (
		lastMove         = time.Now()
		lastIn, lastHere int64
		checked, printed time.Time
	)
	count := func() int64 {
		var n int64
		if err := dst.QueryRow(ctx, "SELECT count(*) FROM "+targetTable).Scan(&n); err != nil {
			return 0 // the consumer's node has not made the table yet
		}
		return n
	}
	for {
		select {
		case <-ctx.Done():
			return 0, centerIn, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		// The last row comes last: batches go in key order, and every
		// step keeps their order. The count confirms it.
		var last bool
		if err := dst.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM "+targetTable+" WHERE person_id = $1)", rows).Scan(&last); err == nil && last {
			seen := time.Since(start)
			if count() == rows {
				if centerIn == 0 {
					centerIn = seen
				}
				return seen, centerIn, nil
			}
		}
		if time.Since(checked) < 500*time.Millisecond {
			continue
		}
		checked = time.Now()
		for _, n := range nodes {
			if err := n.alive(); err != nil {
				return 0, centerIn, err
			}
		}
		in, err := c.appliedRows(ctx)
		if err != nil {
			return 0, centerIn, err
		}
		if in >= rows && centerIn == 0 {
			centerIn = time.Since(start)
		}
		here := lastHere
		if time.Since(printed) >= time.Second {
			printed = time.Now()
			here = count()
			var mem []string
			for _, n := range nodes {
				rss, _ := n.memory()
				mem = append(mem, fmt.Sprintf("%s %.0f MB", n.name, mb(rss)))
			}
			var queued int64
			if j, err := c.ex.Job(ctx, c.provider, jobID); err == nil {
				queued = j.Queued
			}
			fmt.Fprintf(progress, "  %s: batches waiting: %d in the provider node's store, %d on the center's bus; the center applied %d rows and published %d deliveries, the consumer's table has %d of %d (RSS %s)\n",
				time.Since(start).Round(time.Second), queued, c.waiting(ctx), in, c.published(ctx), here, rows, strings.Join(mem, ", "))
		}
		if in != lastIn || here != lastHere {
			lastMove, lastIn, lastHere = time.Now(), in, here
		}
		if time.Since(lastMove) > 2*time.Minute {
			return 0, centerIn, fmt.Errorf("exchange bench: no progress for two minutes (the center applied %d, the consumer has %d of %d rows) — see the nodes' and the center's logs", in, here, rows)
		}
	}
}

// checkpoint writes out what earlier work left in PostgreSQL's WAL before a
// side starts, so neither pays for the other's.
func checkpoint(ctx context.Context, admin *pgx.Conn) {
	_, _ = admin.Exec(ctx, "CHECKPOINT")
}

// scratchDSN returns dsn with its search_path set to schema and its
// application_name to app, which tells the part's server processes apart.
func scratchDSN(dsn, schema, app string) (string, error) {
	u, err := url.Parse(dsn)
	if err != nil {
		return "", fmt.Errorf("exchange bench: read the PostgreSQL URL: %w", err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	q.Set("application_name", app)
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// redact drops a password from a URL for messages.
func redact(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		return "the PostgreSQL server"
	}
	return u.Redacted()
}

// profile starts CPU profiles of this process and of the nodes (through
// their metrics listeners' /debug/pprof/profile) for d, into dir.
func profile(dir string, d time.Duration, nodes []*node) (func() error, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	f, err := os.Create(filepath.Join(dir, "center.cpu"))
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	errs := make(chan error, len(nodes))
	for _, n := range nodes {
		go func() {
			errs <- fetchProfile(fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", n.metrics, int(d.Seconds())), filepath.Join(dir, n.name+".cpu"))
		}()
	}
	// The center's heap is sampled twice a second; the profile of its
	// largest is kept (center.heap).
	heapDone := make(chan error, 1)
	stopHeap := make(chan struct{})
	go func() {
		var most uint64
		var best bytes.Buffer
		t := time.NewTicker(500 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				var ms runtime.MemStats
				runtime.ReadMemStats(&ms)
				if ms.HeapAlloc > most {
					most = ms.HeapAlloc
					best.Reset()
					_ = pprof.Lookup("heap").WriteTo(&best, 0)
				}
			case <-stopHeap:
				heapDone <- os.WriteFile(filepath.Join(dir, "center.heap"), best.Bytes(), 0o644)
				return
			}
		}
	}()
	stopAt := time.Now().Add(d)
	return func() error {
		if wait := time.Until(stopAt); wait > 0 {
			time.Sleep(wait)
		}
		pprof.StopCPUProfile()
		f.Close()
		close(stopHeap)
		all := []error{<-heapDone}
		for range nodes {
			all = append(all, <-errs)
		}
		return errors.Join(all...)
	}, nil
}

func fetchProfile(u, path string) error {
	resp, err := http.Get(u)
	if err != nil {
		return fmt.Errorf("%w: %v", errNodeMetrics, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%w: %s: %s", errNodeMetrics, u, resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(f, resp.Body)
	return err
}

// String is a short report for the terminal.
func (r Result) String() string {
	var b strings.Builder
	batch := "the job's default"
	if r.Batch > 0 {
		batch = fmt.Sprint(r.Batch)
	}
	fmt.Fprintf(&b, "exchange: %d rows × %d columns, PostgreSQL %s → provider node → center → consumer node → PostgreSQL (rows per batch: %s)\n",
		r.Rows, r.Columns, r.Server, batch)
	fmt.Fprintf(&b, "machine: %s\n", r.Machine)
	fmt.Fprintf(&b, "durable: %s\n", strings.Join(r.Settings, ", "))
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "side\trows\telapsed\trows/s\t")
	for _, s := range []Side{r.Baseline, r.Exchange} {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%.0f\t\n", s.Name, s.Rows, s.Elapsed.Round(time.Millisecond), s.PerSec)
	}
	tw.Flush()
	if len(r.BaselineRuns) > 1 {
		runs := make([]string, len(r.BaselineRuns))
		for i, d := range r.BaselineRuns {
			runs[i] = d.Round(time.Millisecond).String()
		}
		fmt.Fprintf(&b, "the baseline ran %d times (%s); the fastest counts\n", len(runs), strings.Join(runs, ", "))
	}
	fmt.Fprintf(&b, "the exchange moves %.2f× the baseline's rows/s (target ≥ 0.4); the center had applied every row after %s\n",
		r.Ratio, r.CenterIn.Round(time.Millisecond))
	if l := r.Latency; l.Samples > 0 {
		fmt.Fprintf(&b, "incremental latency, commit at the source → row in the consumer's table (%.0f changes/s for %s, %d samples): p50 %s, p99 %s, max %s (target p99 < 2 s)\n",
			l.Rate, l.Duration, l.Samples, benchstat.Round(l.P50), benchstat.Round(l.P99), benchstat.Round(l.Max))
	}
	for _, m := range r.Nodes {
		fmt.Fprintf(&b, "%s peak RSS: %.0f MB after the bulk, %.0f MB at the end (target < 150 MB)\n", m.Name, mb(m.AfterBulk), mb(m.Peak))
	}
	fmt.Fprintf(&b, "center (the bench process) peak RSS: %.0f MB\n", mb(r.CenterPeak))
	bc, ec := r.BaselineCPU, r.ExchangeCPU
	fmt.Fprintf(&b, "CPU seconds, baseline: %.1f (PostgreSQL %.1f, of it serving the two COPY connections %.1f; the bench piping %.1f)\n",
		bc.total(), bc.Postgres, bc.PostgresFor["bench"], bc.Center)
	fmt.Fprintf(&b, "CPU seconds, exchange: %.1f (PostgreSQL %.1f, of it serving the center %.1f, the provider node %.1f, the consumer node %.1f, the bench %.1f; center %.1f, provider node %.1f, consumer node %.1f)\n",
		ec.total(), ec.Postgres, ec.PostgresFor["center"], ec.PostgresFor["provider"], ec.PostgresFor["consumer"], ec.PostgresFor["bench"], ec.Center, ec.Provider, ec.Consumer)
	fmt.Fprintln(&b, "(PostgreSQL counts every server process on the machine, other users' work included)")
	return b.String()
}

func mb(b uint64) float64 { return float64(b) / 1e6 }
