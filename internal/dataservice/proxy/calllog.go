package proxy

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"sync"

	"govshare/internal/store"
)

// callLog writes calls into service_calls. Calls recorded at the same
// time share one transaction, so that the log keeps pace with many
// concurrent calls even where every commit waits for the disk (SQLite).
// A writer goroutine runs only while there is something to write; a call
// is recorded when write returns.
type callLog struct {
	db      *store.DB
	mu      sync.Mutex
	queue   []*pendingCall
	writing bool
}

type pendingCall struct {
	c    *Call
	done chan error
}

// maxCallBatch bounds one transaction of the call log.
const maxCallBatch = 500

func (l *callLog) write(ctx context.Context, c *Call) error {
	pc := &pendingCall{c: c, done: make(chan error, 1)}
	l.mu.Lock()
	l.queue = append(l.queue, pc)
	if !l.writing {
		l.writing = true
		go l.run(context.WithoutCancel(ctx))
	}
	l.mu.Unlock()
	return <-pc.done
}

func (l *callLog) run(ctx context.Context) {
	for {
		l.mu.Lock()
		n := min(len(l.queue), maxCallBatch)
		if n == 0 {
			l.writing = false
			l.mu.Unlock()
			return
		}
		batch := l.queue[:n:n]
		l.queue = l.queue[n:]
		l.mu.Unlock()
		err := l.db.InTx(ctx, func(tx *store.Tx) error { return insertCalls(ctx, tx, batch) })
		for _, pc := range batch {
			pc.done <- err
		}
	}
}

// dayKey and bucketKey name the rows of the daily statistics a call adds to.
type dayKey struct {
	service  int64
	day      string
	consumer int64
}

type bucketKey struct {
	dayKey
	bucket int
}

type dayCounts struct{ calls, errors, denied, reqBytes, respBytes int64 }

// insertCalls logs calls and adds them to the daily statistics.
func insertCalls(ctx context.Context, tx *store.Tx, batch []*pendingCall) error {
	days := map[dayKey]*dayCounts{}
	buckets := map[bucketKey]int64{}
	for _, pc := range batch {
		c := pc.c
		d := day(c.At)
		if err := tx.QueryRow(ctx, `INSERT INTO service_calls (service_id, at, day, provider_dept_id, consumer_dept_id, app_id, app_key,
			grant_id, request_id, method, operation, path, request_bytes, response_bytes, status, duration_ms, result, error_code)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
			c.ServiceID, c.At, d, c.ProviderDeptID, c.ConsumerDeptID, c.AppID, c.AppKey, c.GrantID, c.RequestID, c.Method,
			c.Operation, c.Path, c.RequestBytes, c.ResponseBytes, c.Status, c.DurationMS, c.Result, c.ErrorCode).Scan(&c.ID); err != nil {
			return fmt.Errorf("log call of service %d: %w", c.ServiceID, err)
		}
		k := dayKey{c.ServiceID, d, c.ConsumerDeptID}
		n := days[k]
		if n == nil {
			n = &dayCounts{}
			days[k] = n
		}
		n.calls++
		n.reqBytes += c.RequestBytes
		n.respBytes += c.ResponseBytes
		switch c.Result {
		case ResultDenied:
			n.denied++
			continue // refused at once: no latency to speak of
		case ResultError:
			n.errors++
		}
		buckets[bucketKey{k, latencyBucket(c.DurationMS)}]++
	}
	// In key order, so that two servers adding to the same rows never
	// wait for each other crosswise.
	for _, k := range slices.SortedFunc(maps.Keys(days), compareDays) {
		n := days[k]
		if _, err := tx.Exec(ctx, `INSERT INTO service_call_days (service_id, day, consumer_dept_id, calls, errors, denied, request_bytes, response_bytes)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (service_id, day, consumer_dept_id) DO UPDATE SET
			calls = service_call_days.calls + excluded.calls, errors = service_call_days.errors + excluded.errors,
			denied = service_call_days.denied + excluded.denied, request_bytes = service_call_days.request_bytes + excluded.request_bytes,
			response_bytes = service_call_days.response_bytes + excluded.response_bytes`,
			k.service, k.day, k.consumer, n.calls, n.errors, n.denied, n.reqBytes, n.respBytes); err != nil {
			return fmt.Errorf("count calls of service %d: %w", k.service, err)
		}
	}
	for _, k := range slices.SortedFunc(maps.Keys(buckets), func(a, b bucketKey) int { return cmp.Or(compareDays(a.dayKey, b.dayKey), a.bucket-b.bucket) }) {
		if _, err := tx.Exec(ctx, `INSERT INTO service_call_latency (service_id, day, consumer_dept_id, bucket, calls) VALUES (?, ?, ?, ?, ?)
			ON CONFLICT (service_id, day, consumer_dept_id, bucket) DO UPDATE SET calls = service_call_latency.calls + excluded.calls`,
			k.service, k.day, k.consumer, k.bucket, buckets[k]); err != nil {
			return fmt.Errorf("count latency of service %d: %w", k.service, err)
		}
	}
	return nil
}

func compareDays(a, b dayKey) int {
	return cmp.Or(cmp.Compare(a.service, b.service), strings.Compare(a.day, b.day), cmp.Compare(a.consumer, b.consumer))
}

// Latency buckets: each millisecond below 100, then steps of 5 %, so a
// percentile read from them is exact below 100 ms and within 5 % above.
const (
	exactBuckets = 100
	bucketGrowth = 1.05
)

func latencyBucket(ms int64) int {
	if ms < exactBuckets {
		return int(max(ms, 0))
	}
	return exactBuckets + int(math.Log(float64(ms)/exactBuckets)/math.Log(bucketGrowth))
}

// bucketCeiling is the most a bucket's calls took, in whole milliseconds.
func bucketCeiling(b int) int64 {
	if b < exactBuckets {
		return int64(b)
	}
	return int64(math.Ceil(exactBuckets * math.Pow(bucketGrowth, float64(b-exactBuckets+1))))
}
