package exchangebench

import (
	"context"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"govshare/internal/benchstat"
)

// change is one committed change at the source, waiting to be seen in the
// consumer's table.
type change struct {
	id, seq   int64
	committed time.Time
}

// latencies commits single-row changes at the source at a steady rate for
// d — inserts of new people and updates of loaded ones, in turn, each in
// its own transaction — and polls the consumer's table every pollEvery for
// the ones not yet seen there. A change's latency runs from the moment its
// COMMIT returned to the start of the first poll that found it (its row
// carrying the change's number or a later one). It returns the latencies,
// sorted, and how many changes never arrived within wait after the last
// commit.
func latencies(ctx context.Context, srcDSN, dstDSN string, loaded int, rate float64, d, wait time.Duration, progress io.Writer) ([]time.Duration, int, error) {
	src, err := pgx.Connect(ctx, srcDSN)
	if err != nil {
		return nil, 0, fmt.Errorf("connect to the provider database: %w", err)
	}
	defer src.Close(context.WithoutCancel(ctx))
	dst, err := pgx.Connect(ctx, dstDSN)
	if err != nil {
		return nil, 0, fmt.Errorf("connect to the consumer database: %w", err)
	}
	defer dst.Close(context.WithoutCancel(ctx))

	var (
		mu       sync.Mutex
		pending  = map[int64]change{}
		got      []time.Duration
		commits  int
		writing  = true
		writeErr error
	)
	// Updated people are all different, so each update is seen on its own:
	// loaded·k mod a stride prime to it visits every loaded person once.
	stride := int64(7919)
	for gcd(stride, int64(loaded)) != 1 {
		stride++
	}
	go func() {
		defer func() { mu.Lock(); writing = false; mu.Unlock() }()
		t := time.NewTicker(time.Duration(float64(time.Second) / rate))
		defer t.Stop()
		end := time.Now().Add(d)
		for i := int64(0); time.Now().Before(end); i++ {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			var id, seq int64
			var err error
			if i%2 == 0 {
				id = int64(loaded) + 1 + i/2
				err = src.QueryRow(ctx, `INSERT INTO `+sourceTable+` (`+columnList()+`)
					VALUES ($1, $2, '1', DATE '1990-01-01', '350102', '13800000000', 5000.00, true, localtimestamp, nextval('`+sourceSeq+`'))
					RETURNING change_seq`, id, "新"+string([]rune(given)[i%int64(len([]rune(given)))])).Scan(&seq)
			} else {
				id = 1 + (i/2*stride)%int64(loaded)
				err = src.QueryRow(ctx, `UPDATE `+sourceTable+` SET name = $2, updated_at = localtimestamp, change_seq = nextval('`+sourceSeq+`')
					WHERE person_id = $1 RETURNING change_seq`, id, "改"+string([]rune(given)[i%int64(len([]rune(given)))])).Scan(&seq)
			}
			now := time.Now()
			mu.Lock()
			if err != nil {
				writeErr = fmt.Errorf("change at the source: %w", err)
				mu.Unlock()
				return
			}
			pending[id] = change{id: id, seq: seq, committed: now}
			commits++
			mu.Unlock()
		}
	}()

	poll := time.NewTicker(pollEvery)
	defer poll.Stop()
	report := time.NewTicker(5 * time.Second)
	defer report.Stop()
	var deadline time.Time
	ids := make([]int64, 0, 64)
	for {
		select {
		case <-ctx.Done():
			return nil, 0, ctx.Err()
		case <-report.C:
			mu.Lock()
			fmt.Fprintf(progress, "  latency: %d changes committed, %d seen at the consumer, %d on the way\n", commits, len(got), len(pending))
			mu.Unlock()
			continue
		case <-poll.C:
		}
		mu.Lock()
		if writeErr != nil {
			mu.Unlock()
			return nil, 0, writeErr
		}
		if !writing && deadline.IsZero() {
			deadline = time.Now().Add(wait)
		}
		if !writing && (len(pending) == 0 || time.Now().After(deadline)) {
			missing := len(pending)
			slices.Sort(got)
			mu.Unlock()
			return got, missing, nil
		}
		ids = ids[:0]
		for id := range pending {
			ids = append(ids, id)
		}
		mu.Unlock()
		if len(ids) == 0 {
			continue
		}
		asked := time.Now()
		rows, err := dst.Query(ctx, "SELECT person_id, change_seq FROM "+targetTable+" WHERE person_id = ANY($1)", ids)
		if err != nil {
			return nil, 0, fmt.Errorf("poll the consumer's table: %w", err)
		}
		mu.Lock()
		for rows.Next() {
			var id, seq int64
			if err := rows.Scan(&id, &seq); err != nil {
				break
			}
			if c, ok := pending[id]; ok && seq >= c.seq {
				took := asked.Sub(c.committed)
				got = append(got, took)
				delete(pending, id)
				if took > slow {
					fmt.Fprintf(progress, "  latency: change #%d (person %d) committed at %s took %s\n", c.seq, id, c.committed.UTC().Format("15:04:05.000"), took.Round(time.Millisecond))
				}
			}
		}
		mu.Unlock()
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, 0, fmt.Errorf("poll the consumer's table: %w", err)
		}
	}
}

// slow is the latency above which a change is reported as it arrives, with
// its commit time, to find it in the logs.
const slow = 3 * time.Second

// pollEvery is how often the consumer's table is asked for the changes on
// the way: the latencies are that much too long at most.
const pollEvery = 10 * time.Millisecond

func gcd(a, b int64) int64 {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// Latency summarises the incremental latencies.
type Latency struct {
	Rate     float64 // changes committed per second
	Duration time.Duration
	Samples  int
	Missing  int // changes that never arrived
	P50, P99 time.Duration
	Max      time.Duration
}

func summarise(rate float64, d time.Duration, sorted []time.Duration, missing int) Latency {
	l := Latency{Rate: rate, Duration: d, Samples: len(sorted), Missing: missing}
	if len(sorted) > 0 {
		l.P50, l.P99, l.Max = benchstat.Percentile(sorted, 50), benchstat.Percentile(sorted, 99), sorted[len(sorted)-1]
	}
	return l
}
