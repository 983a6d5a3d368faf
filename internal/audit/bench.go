package audit

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"govshare/internal/benchstat"
	"govshare/internal/store"
)

// BenchOptions configure Bench. Zero fields take the defaults.
type BenchOptions struct {
	// Writers is how many goroutines append at once (default 64).
	Writers int
	// Events is how many events each side writes in total (default 20000).
	Events int
	// Algorithm is the hash both sides compute: SM3 (default) or SHA256.
	Algorithm string
}

// BenchSide is the measurement of one way of writing events.
type BenchSide struct {
	Name    string
	Events  int
	Elapsed time.Duration
	PerSec  float64
	// P50 and P99 are per-append latencies: from the call until the event
	// is durably committed.
	P50, P99 time.Duration
}

// BenchResult compares batched appends with single-row inserts.
type BenchResult struct {
	Backend           string
	Writers           int
	Batched, Baseline BenchSide
	// Ratio is Batched.PerSec / Baseline.PerSec.
	Ratio float64
}

// ErrNotScratch is returned by Bench when the database already holds an
// audit chain.
var ErrNotScratch = errors.New("audit bench needs an empty scratch database, but this one already holds an audit chain")

// singleRowSeqBase is where the baseline's seq values start: far above any
// chain the batched side can reach, so the two never collide.
const singleRowSeqBase int64 = 1 << 40

// Bench measures audit append throughput with opt.Writers concurrent
// writers: first through a fresh Log (batched, group commit), then as the
// same number of writers each inserting one row per autocommit statement
// into the same audit_events table. Each side writes opt.Events events.
// progress, if not nil, gets a line per second and one per finished side.
//
// Run it only on a scratch database made for the purpose. The baseline
// rows stand outside the hash chain and no code path deletes audit events,
// so afterwards the database no longer verifies; Bench refuses, with
// ErrNotScratch, a database that already holds audit events or a chain
// head. The chain head is sealed with a random key that is thrown away.
func Bench(ctx context.Context, db *store.DB, opt BenchOptions, progress io.Writer) (BenchResult, error) {
	if opt.Writers <= 0 {
		opt.Writers = 64
	}
	if opt.Events <= 0 {
		opt.Events = 20000
	}
	if opt.Algorithm == "" {
		opt.Algorithm = SM3
	}
	if _, err := newHash(opt.Algorithm); err != nil {
		return BenchResult{}, err
	}
	var events, heads int64
	if err := db.QueryRow(ctx, "SELECT (SELECT COUNT(*) FROM audit_events), (SELECT COUNT(*) FROM audit_head)").
		Scan(&events, &heads); err != nil {
		return BenchResult{}, fmt.Errorf("audit bench: inspect database: %w", err)
	}
	if events > 0 || heads > 0 {
		return BenchResult{}, fmt.Errorf("%w (%d events in %s)", ErrNotScratch, events, db)
	}

	key := make([]byte, 32)
	_, _ = rand.Read(key)
	l, err := Open(db, Options{Algorithm: opt.Algorithm, Key: key})
	if err != nil {
		return BenchResult{}, err
	}
	batched, err := measure(ctx, "batched", opt.Writers, opt.Events, progress, func(ctx context.Context, i int) error {
		return l.Append(ctx, benchEvent(i))
	})
	l.Close()
	if err != nil {
		return BenchResult{}, err
	}
	baseline, err := measure(ctx, "single-row", opt.Writers, opt.Events, progress, func(ctx context.Context, i int) error {
		return insertSingleRow(ctx, db, opt.Algorithm, singleRowSeqBase+int64(i), benchEvent(i))
	})
	if err != nil {
		return BenchResult{}, err
	}
	return BenchResult{
		Backend: string(db.Dialect()), Writers: opt.Writers,
		Batched: batched, Baseline: baseline,
		Ratio: batched.PerSec / baseline.PerSec,
	}, nil
}

// benchEvent is the i-th event both sides write: the shape of an ordinary
// audited request.
func benchEvent(i int) Event {
	return Event{
		ActorType: ActorUser, ActorID: "42", ActorName: "bench", Action: "catalog.view",
		ObjectType: "dataset", ObjectID: fmt.Sprint(i), Result: ResultOK,
		ClientAddr: "127.0.0.1", RequestID: fmt.Sprintf("bench-%d", i),
		Details: Details(map[string]any{"i": i}),
	}
}

const insertEvent = `INSERT INTO audit_events (seq, occurred_at, actor_type, actor_id, actor_name, dept_id, action, object_type,
	object_id, result, client_addr, request_id, purpose, details, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`

// insertSingleRow is the baseline write: one autocommit INSERT, durable
// when it returns like an Append. The rows are not chained, but each still
// gets the hash of its canonical content, so both sides do the same hashing
// work and the ratio measures the commits alone.
func insertSingleRow(ctx context.Context, db *store.DB, alg string, seq int64, e Event) error {
	e.Seq = seq
	e.Time = store.Now()
	h, err := chainHash(alg, "", &e)
	if err != nil {
		return err
	}
	var dept any
	if e.DeptID != 0 {
		dept = e.DeptID
	}
	_, err = db.Exec(ctx, insertEvent, e.Seq, e.Time, e.ActorType, e.ActorID, e.ActorName, dept, e.Action,
		e.ObjectType, e.ObjectID, e.Result, e.ClientAddr, e.RequestID, e.Purpose, e.Details, "", h)
	return err
}

// measure runs write for events 0 to events-1 on writers goroutines, each
// taking the next event when it finishes the last, and times every call.
// The first error stops all writers.
func measure(ctx context.Context, name string, writers, events int, progress io.Writer,
	write func(ctx context.Context, i int) error) (BenchSide, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		next, done atomic.Int64
		errOnce    sync.Once
		firstErr   error
		wg         sync.WaitGroup
	)
	lat := make([][]time.Duration, writers)
	start := time.Now()
	for w := range writers {
		lat[w] = make([]time.Duration, 0, events/writers+1)
		wg.Go(func() {
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= events {
					return
				}
				t := time.Now()
				if err := write(ctx, i); err != nil {
					errOnce.Do(func() { firstErr = fmt.Errorf("%s: event %d: %w", name, i, err); cancel() })
					return
				}
				lat[w] = append(lat[w], time.Since(t))
				done.Add(1)
			}
		})
	}

	stop := make(chan struct{})
	var ticker sync.WaitGroup
	if progress != nil {
		ticker.Go(func() {
			t := time.NewTicker(time.Second)
			defer t.Stop()
			for {
				select {
				case <-t.C:
					fmt.Fprintf(progress, "%s: %d/%d events\n", name, done.Load(), events)
				case <-stop:
					return
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	close(stop)
	ticker.Wait()

	if firstErr == nil {
		firstErr = ctx.Err()
	}
	if firstErr != nil {
		return BenchSide{}, fmt.Errorf("audit bench: %w", firstErr)
	}
	all := slices.Concat(lat...)
	slices.Sort(all)
	s := BenchSide{
		Name: name, Events: len(all), Elapsed: elapsed,
		PerSec: float64(len(all)) / elapsed.Seconds(),
		P50:    benchstat.Percentile(all, 50), P99: benchstat.Percentile(all, 99),
	}
	if progress != nil {
		fmt.Fprintf(progress, "%s: %d/%d events in %s, %.0f events/s\n", name, s.Events, events, benchstat.Round(elapsed), s.PerSec)
	}
	return s, nil
}

// String is a short table for the terminal.
func (r BenchResult) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "audit append throughput: %s, %d concurrent writers\n", r.Backend, r.Writers)
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "side\tevents\telapsed\tevents/s\tp50\tp99\t")
	for _, s := range []BenchSide{r.Batched, r.Baseline} {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%.0f\t%s\t%s\t\n", s.Name, s.Events, benchstat.Round(s.Elapsed), s.PerSec,
			benchstat.Round(s.P50), benchstat.Round(s.P99))
	}
	tw.Flush()
	fmt.Fprintf(&b, "batched is %.1f× the single-row baseline\n", r.Ratio)
	return b.String()
}
