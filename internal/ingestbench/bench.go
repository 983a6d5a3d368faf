// Package ingestbench measures data coming in: it generates a CSV file of
// synthetic people (valid citizen IDs, names, sexes and birth dates that
// agree with the IDs, region codes, employers' credit codes, phones,
// incomes, dates, postcodes; a few rows made to fail on purpose), mounts a
// resource whose items carry every kind of quality rule, and loads the
// file twice in one run: the plain way into a plain table of the same
// shape (COPY on PostgreSQL, batched INSERTs on SQLite) and through the
// resource store's pipeline (resource.Service.Submit, the file streamed),
// so the ratio between them is taken on the same machine at the same
// moment. `govshare bench ingest` runs it.
package ingestbench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"govshare/internal/audit"
	"govshare/internal/resource"
	"govshare/internal/store"
)

// Options configure Bench. Zero fields take the defaults.
type Options struct {
	// Rows is how many rows the file holds (default 1,000,000).
	Rows int
	// BadEvery makes every BadEvery-th row fail one rule, the kinds in
	// turn (default 1000; negative: no bad rows).
	BadEvery int
	// Dir is where the file is written (default a temporary folder,
	// removed afterwards).
	Dir string
}

// Side is the measurement of one way of loading the file.
type Side struct {
	Name    string
	Rows    int64 // rows read from the file
	Elapsed time.Duration
	PerSec  float64
	Memory  Memory
}

// Result compares the pipeline with the plain load.
type Result struct {
	Database string // dialect and target, secrets removed
	Machine  string
	Rows     int
	Columns  int
	File     int64 // bytes
	Bad      int   // rows made to fail
	// Baseline is the plain load, Pipeline the resource store's.
	Baseline, Pipeline Side
	// Ratio is the pipeline's rows/s divided by the baseline's.
	Ratio float64
	// Batch is the batch the pipeline reported.
	Batch resource.Batch
	// Phases are the pipeline's own timings, from its log: read, check
	// and stage (or load, into the empty resource); the indexes built
	// after a load; find repeats; apply.
	Phases []Phase
	// LongestAppend is the longest an audit append took while the
	// pipeline ran (one every 50 ms): how long other writers waited.
	LongestAppend time.Duration
	Appends       int
	// FailedAppends counts appends that failed (on SQLite: the database
	// stayed locked longer than the busy timeout).
	FailedAppends int
}

// Phase is one step of the pipeline, as its log reports it.
type Phase struct {
	Name string
	Took time.Duration
}

// ErrNotScratch is returned by Bench for a database that already holds
// departments: the bench adds its own and a resource, and never removes
// them.
var ErrNotScratch = errors.New("ingest bench needs an empty scratch database, but this one already holds departments")

// Bench writes the file, seeds db (an empty, migrated scratch database)
// and measures both loads. progress, if not nil, gets a line every two
// seconds and one per step.
func Bench(ctx context.Context, db *store.DB, opt Options, progress io.Writer) (Result, error) {
	if opt.Rows <= 0 {
		opt.Rows = 1_000_000
	}
	switch {
	case opt.BadEvery == 0:
		opt.BadEvery = 1000
	case opt.BadEvery < 0:
		opt.BadEvery = 0
	case opt.BadEvery < 2:
		return Result{}, errors.New("ingest bench: at most every second row can be made to fail")
	}
	if progress == nil {
		progress = io.Discard
	}
	var depts int64
	if err := db.QueryRow(ctx, "SELECT COUNT(*) FROM departments").Scan(&depts); err != nil {
		return Result{}, fmt.Errorf("ingest bench: inspect database: %w", err)
	}
	if depts > 0 {
		return Result{}, fmt.Errorf("%w (%d in %s)", ErrNotScratch, depts, db)
	}
	dir := opt.Dir
	if dir == "" {
		tmp, err := os.MkdirTemp("", "govshare-ingest-")
		if err != nil {
			return Result{}, err
		}
		defer os.RemoveAll(tmp)
		dir = tmp
	}
	path := filepath.Join(dir, "people.csv")
	res := Result{Database: db.String(), Rows: opt.Rows,
		Machine: fmt.Sprintf("%s/%s, %d CPU (GOMAXPROCS %d), %s", runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.GOMAXPROCS(0), runtime.Version())}

	start := time.Now()
	gen, err := writeFile(path, opt.Rows, opt.BadEvery, func(done int) {
		fmt.Fprintf(progress, "writing %s: %d of %d rows\n", path, done, opt.Rows)
	})
	if err != nil {
		return res, fmt.Errorf("ingest bench: write file: %w", err)
	}
	res.File, res.Bad = gen.bytes, gen.bad
	fmt.Fprintf(progress, "wrote %d rows (%d made to fail), %.1f MB, in %s\n", opt.Rows, gen.bad, float64(gen.bytes)/1e6, time.Since(start).Round(time.Millisecond))

	fmt.Fprintln(progress, "seeding: departments, users, region and code tables, a published entry, its resource mounted")
	phases := &phaseLog{}
	p, err := seed(ctx, db, slog.New(phases))
	if err != nil {
		return res, fmt.Errorf("ingest bench: seed: %w", err)
	}
	defer p.close()
	var cols []string
	for _, c := range p.res.Visible() {
		cols = append(cols, c.MachineName)
	}
	res.Columns = len(cols)
	if err := createBaseline(ctx, db, p.res.Table, cols); err != nil {
		return res, fmt.Errorf("ingest bench: baseline table: %w", err)
	}
	defer func() { _, _ = db.Exec(context.WithoutCancel(ctx), "DROP TABLE "+baselineTable) }()

	// (a) the plain load.
	name := "COPY into a plain table"
	if db.Dialect() == store.SQLite {
		name = "batched INSERT into a plain table"
	}
	settle(ctx, db)
	fmt.Fprintf(progress, "%s: starting\n", name)
	var read atomic.Int64
	stopTicker := ticker(progress, name, func() string {
		return fmt.Sprintf("%.0f%% of the file", 100*float64(read.Load())/float64(gen.bytes))
	})
	mem := watch()
	start = time.Now()
	n, err := baseline(ctx, db, path, cols, &read)
	res.Baseline = side(name, n, time.Since(start), mem())
	stopTicker()
	if err != nil {
		return res, fmt.Errorf("ingest bench: baseline: %w", err)
	}
	if n != int64(opt.Rows) {
		return res, fmt.Errorf("ingest bench: the baseline loaded %d rows of %d", n, opt.Rows)
	}
	fmt.Fprintf(progress, "%s: %d rows in %s\n", name, n, res.Baseline.Elapsed.Round(time.Millisecond))

	// (b) the pipeline, with an audit append every 50 ms beside it.
	name = "resource.Submit (checked, loaded, applied)"
	f, err := os.Open(path)
	if err != nil {
		return res, err
	}
	defer f.Close()
	var rows atomic.Int64
	stopTicker = ticker(progress, "pipeline", func() string {
		if n := rows.Load(); n < int64(opt.Rows) {
			return fmt.Sprintf("%d of %d rows read, checked and loaded", n, opt.Rows)
		}
		return "all rows read; building indexes, finding repeats, applying"
	})
	settle(ctx, db)
	fmt.Fprintln(progress, "pipeline: starting")
	stopProbe := probe(ctx, p)
	mem = watch()
	start = time.Now()
	in, err := resource.CSVRows(f)
	if err == nil {
		res.Batch, err = p.svc.Submit(ctx, p.provider, p.res.Code, resource.SubmitOptions{Source: resource.SourceUpload, Detail: filepath.Base(path),
			ClientBatchID: "ingest-bench", MaxErrors: -1, Progress: func(n int64) { rows.Store(n) }}, in)
	}
	res.Pipeline = side(name, res.Batch.RowsTotal, time.Since(start), mem())
	res.LongestAppend, res.Appends, res.FailedAppends = stopProbe()
	stopTicker()
	if err != nil {
		return res, fmt.Errorf("ingest bench: pipeline: %w", err)
	}
	res.Phases = phases.get()
	fmt.Fprintf(progress, "pipeline: %d rows in %s\n", res.Batch.RowsTotal, res.Pipeline.Elapsed.Round(time.Millisecond))
	if res.Baseline.PerSec > 0 {
		res.Ratio = res.Pipeline.PerSec / res.Baseline.PerSec
	}
	return res, verify(ctx, db, p, res, gen)
}

// settle writes out what earlier work left in the write-ahead log before a
// side starts, so neither side pays for the other's: a CHECKPOINT on
// PostgreSQL (where the role may run it), a truncating WAL checkpoint on
// SQLite.
func settle(ctx context.Context, db *store.DB) {
	q := "PRAGMA wal_checkpoint(TRUNCATE)"
	if db.Dialect() == store.Postgres {
		q = "CHECKPOINT"
	}
	_, _ = db.Exec(ctx, q)
}

func side(name string, rows int64, took time.Duration, m Memory) Side {
	s := Side{Name: name, Rows: rows, Elapsed: took, Memory: m}
	if took > 0 {
		s.PerSec = float64(rows) / took.Seconds()
	}
	return s
}

// verify checks the pipeline did what it claims: every good row stored,
// every bad row in the quarantine under the rule it was made to break.
func verify(ctx context.Context, db *store.DB, p *platform, res Result, gen generated) error {
	b := res.Batch
	good := int64(res.Rows - gen.bad)
	if b.State != "applied" || b.RowsTotal != int64(res.Rows) || b.Inserted != good || b.Quarantined != int64(gen.bad) {
		return fmt.Errorf("ingest bench: batch %+v, want %d rows applied: %d inserted, %d quarantined", b, res.Rows, good, gen.bad)
	}
	got := map[string]int{}
	for _, rc := range b.Report.Rules {
		got[rc.Item+"/"+rc.Rule] += int(rc.Count)
	}
	for kind, n := range gen.kinds {
		if got[kind] != n {
			return fmt.Errorf("ingest bench: report counts %d of %s, the file has %d (report %v)", got[kind], kind, n, got)
		}
	}
	var records, history int64
	if err := db.QueryRow(ctx, fmt.Sprintf(`SELECT COUNT(*) FROM %q WHERE "_deleted_at" IS NULL`, p.res.Table)).Scan(&records); err != nil {
		return err
	}
	if err := db.QueryRow(ctx, fmt.Sprintf(`SELECT COUNT(*) FROM %q`, p.res.Table+"_hist")).Scan(&history); err != nil {
		return err
	}
	// A record's first state is the record itself: loading writes no
	// history.
	if records != good || history != 0 {
		return fmt.Errorf("ingest bench: %d records and %d history rows, want %d and none", records, history, good)
	}
	return nil
}

// ticker prints what status says every two seconds until stopped.
func ticker(w io.Writer, name string, status func() string) func() {
	stop := make(chan struct{})
	done := make(chan struct{})
	start := time.Now()
	go func() {
		defer close(done)
		t := time.NewTicker(2 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				fmt.Fprintf(w, "  %s: %s after %s, RSS %.0f MB\n", name, status(), time.Since(start).Round(time.Second), float64(rss())/1e6)
			}
		}
	}()
	return func() { close(stop); <-done }
}

// probe appends an audit event every 50 ms until stopped and returns the
// longest append, how many there were and how many failed.
func probe(ctx context.Context, p *platform) func() (time.Duration, int, int) {
	stop := make(chan struct{})
	var longest time.Duration
	var n, failed int
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
			}
			start := time.Now()
			err := p.audit.Append(ctx, audit.By(p.provider, "bench.probe", "resource", p.res.Code, audit.ResultOK, nil))
			longest = max(longest, time.Since(start))
			n++
			if err != nil {
				failed++
			}
		}
	})
	return func() (time.Duration, int, int) { close(stop); wg.Wait(); return longest, n, failed }
}

// phaseLog is a slog handler that keeps the durations the pipeline logs.
type phaseLog struct {
	mu     sync.Mutex
	phases []Phase
}

func (h *phaseLog) Enabled(context.Context, slog.Level) bool { return true }
func (h *phaseLog) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *phaseLog) WithGroup(string) slog.Handler            { return h }
func (h *phaseLog) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	r.Attrs(func(a slog.Attr) bool {
		if a.Value.Kind() == slog.KindDuration {
			h.phases = append(h.phases, Phase{Name: a.Key, Took: a.Value.Duration()})
		}
		return true
	})
	return nil
}

func (h *phaseLog) get() []Phase {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]Phase(nil), h.phases...)
}

// String is a short table for the terminal.
func (r Result) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "data in: %d rows × %d columns (%.1f MB CSV, %d rows made to fail), %s\n", r.Rows, r.Columns, float64(r.File)/1e6, r.Bad, r.Database)
	fmt.Fprintf(&b, "machine: %s\n", r.Machine)
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "side\trows\telapsed\trows/s\tpeak RSS\tpeak Go heap\t")
	for _, s := range []Side{r.Baseline, r.Pipeline} {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%.0f\t%.0f MB\t%.0f MB\t\n", s.Name, s.Rows, s.Elapsed.Round(time.Millisecond), s.PerSec,
			float64(s.Memory.PeakRSS)/1e6, float64(s.Memory.PeakHeap)/1e6)
	}
	tw.Flush()
	fmt.Fprintf(&b, "the pipeline loads %.2f× the plain load's rows/s\n", r.Ratio)
	fmt.Fprintf(&b, "batch %d: %d inserted, %d quarantined (%d rules in the report)\n", r.Batch.ID, r.Batch.Inserted, r.Batch.Quarantined, len(r.Batch.Report.Rules))
	if len(r.Phases) > 0 {
		var ps []string
		for _, p := range r.Phases {
			ps = append(ps, fmt.Sprintf("%s %s", p.Name, p.Took.Round(time.Millisecond)))
		}
		fmt.Fprintf(&b, "pipeline phases: %s\n", strings.Join(ps, ", "))
	}
	fmt.Fprintf(&b, "longest audit append during the load: %s (%d appends, %d failed)\n", r.LongestAppend.Round(time.Millisecond), r.Appends, r.FailedAppends)
	how := "VmHWM after reset"
	if !r.Pipeline.Memory.HWMReset {
		how = "highest VmRSS sampled every 20 ms"
	}
	fmt.Fprintf(&b, "peak RSS is the whole process (%s); peak Go heap is sampled every 20 ms\n", how)
	return b.String()
}
