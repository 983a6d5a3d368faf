package dataservice

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"govshare/internal/apperr"
	"govshare/internal/calendar"
	"govshare/internal/store"
)

// usage counts calls, records, errors, refusals and latency per day,
// grant, app and method in memory and adds them to data_usage every
// second. The same counts are the daily quotas: today's total of a grant
// or an app is what the database held at the last flush plus what this
// server counted since.
type usage struct {
	db  *store.DB
	log *slog.Logger
	now func() time.Time

	mu      sync.Mutex
	pending map[usageKey]*usageRow
	totals  map[quotaKey]*quotaTotal

	flushMu sync.Mutex // one flush at a time
	stop    chan struct{}
	done    chan struct{}
	once    sync.Once
}

type usageKey struct {
	day    string
	grant  int64
	app    int64
	method string
}

type usageRow struct {
	resource           string
	provider, consumer int64
	calls, records     int64
	errors, refused    int64
	latencyUS, maxUS   int64
}

// What a quota counts.
const (
	measureRecords = "records" // returned by queries and downloads
	measureVerify  = "verify"  // compared
)

type quotaKey struct {
	day     string
	measure string
	app     bool
	id      int64
}

type quotaTotal struct {
	stored  int64 // in the database at the last read
	local   int64 // counted here and not yet in the database
	flushed int64 // part of local being written by a flush
	readAt  time.Time
}

func newUsage(db *store.DB, log *slog.Logger, now func() time.Time) *usage {
	u := &usage{db: db, log: log, now: now, pending: map[usageKey]*usageRow{}, totals: map[quotaKey]*quotaTotal{},
		stop: make(chan struct{}), done: make(chan struct{})}
	go u.run()
	return u
}

func (u *usage) run() {
	defer close(u.done)
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-u.stop:
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			if err := u.flush(ctx); err != nil {
				u.log.Warn("data services: writing usage failed; will retry", "err", err)
			}
			cancel()
		}
	}
}

func (u *usage) close() {
	u.once.Do(func() {
		close(u.stop)
		<-u.done
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := u.flush(ctx); err != nil {
			u.log.Warn("data services: writing usage at close failed", "err", err)
		}
	})
}

func day(t time.Time) string { return t.In(calendar.CST).Format("2006-01-02") }

// add counts one finished call of u: n calls, records returned or
// compared, and whether it failed or was refused by a limit.
func (u *usage) add(x *use, calls, records int64, err error) {
	if x == nil {
		return
	}
	u.addAs(x, string(x.method), calls, records, err)
}

func (u *usage) addAs(x *use, method string, calls, records int64, err error) {
	lat := time.Since(x.started).Microseconds()
	today := day(u.now())
	k := usageKey{day: today, grant: x.permit.GrantID, app: x.caller.AppID, method: method}
	measure := measureRecords
	if method == "verify" {
		measure = measureVerify
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	r := u.pending[k]
	if r == nil {
		r = &usageRow{resource: x.r.Code, provider: x.permit.ProviderID, consumer: x.caller.Actor.DeptID}
		u.pending[k] = r
	}
	r.calls += calls
	r.records += records
	r.latencyUS += lat
	r.maxUS = max(r.maxUS, lat)
	if err != nil {
		if ae, ok := apperr.As(err); ok && (ae.Status == http.StatusTooManyRequests) {
			r.refused++
		} else {
			r.errors++
		}
	}
	if records > 0 && (method == "api" || method == "file" || method == "verify") {
		for _, qk := range []quotaKey{{day: today, measure: measure, id: x.permit.GrantID}, {day: today, measure: measure, app: true, id: x.caller.AppID}} {
			if t := u.totals[qk]; t != nil {
				t.local += records
			}
		}
	}
}

// total is today's count of a quota: stored plus counted here since.
func (u *usage) total(ctx context.Context, k quotaKey) (int64, error) {
	k.day = day(u.now())
	u.mu.Lock()
	t := u.totals[k]
	if t != nil && time.Since(t.readAt) < 5*time.Second {
		n := t.stored + t.local
		u.mu.Unlock()
		return n, nil
	}
	u.mu.Unlock()
	stored, err := u.read(ctx, k)
	if err != nil {
		return 0, err
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if t = u.totals[k]; t == nil {
		// What was counted here before this first read is in pending or
		// already in the database: count only what comes after.
		t = &quotaTotal{local: u.unflushed(k)}
		u.totals[k] = t
	}
	t.stored, t.readAt = stored, time.Now()
	return t.stored + t.local, nil
}

// unflushed is what pending holds for a quota.
func (u *usage) unflushed(k quotaKey) int64 {
	var n int64
	for pk, r := range u.pending {
		if pk.day != k.day || (k.app && pk.app != k.id) || (!k.app && pk.grant != k.id) {
			continue
		}
		if (k.measure == measureVerify) == (pk.method == "verify") && pk.method != "service" {
			n += r.records
		}
	}
	return n
}

// read sums a quota's day in the database.
func (u *usage) read(ctx context.Context, k quotaKey) (int64, error) {
	col := "grant_id"
	if k.app {
		col = "app_id"
	}
	methods := "method IN ('api', 'file')"
	if k.measure == measureVerify {
		methods = "method = 'verify'"
	}
	var n int64
	err := u.db.QueryRow(ctx, fmt.Sprintf("SELECT COALESCE(SUM(records), 0) FROM data_usage WHERE day = ? AND %s = ? AND %s", col, methods),
		k.day, k.id).Scan(&n)
	return n, err
}

// flush adds the pending counts to the database, then rereads the
// quotas in use so other servers' counts are seen.
func (u *usage) flush(ctx context.Context) error {
	u.flushMu.Lock()
	defer u.flushMu.Unlock()
	u.mu.Lock()
	batch := u.pending
	u.pending = map[usageKey]*usageRow{}
	for _, t := range u.totals {
		t.flushed = t.local
	}
	u.mu.Unlock()
	if len(batch) > 0 {
		if err := u.write(ctx, batch); err != nil {
			u.mu.Lock()
			for k, r := range batch { // keep them for the next flush
				if p := u.pending[k]; p != nil {
					p.calls += r.calls
					p.records += r.records
					p.errors += r.errors
					p.refused += r.refused
					p.latencyUS += r.latencyUS
					p.maxUS = max(p.maxUS, r.maxUS)
				} else {
					u.pending[k] = r
				}
			}
			u.mu.Unlock()
			return err
		}
	}
	today := day(u.now())
	u.mu.Lock()
	keys := make([]quotaKey, 0, len(u.totals))
	for k := range u.totals {
		if k.day != today {
			delete(u.totals, k)
			continue
		}
		keys = append(keys, k)
	}
	u.mu.Unlock()
	for _, k := range keys {
		stored, err := u.read(ctx, k)
		if err != nil {
			return err
		}
		u.mu.Lock()
		if t := u.totals[k]; t != nil {
			t.stored, t.local, t.readAt = stored, t.local-t.flushed, time.Now()
			t.flushed = 0
		}
		u.mu.Unlock()
	}
	return nil
}

func (u *usage) write(ctx context.Context, batch map[usageKey]*usageRow) error {
	greatest := "MAX"
	if u.db.Dialect() == store.Postgres {
		greatest = "GREATEST"
	}
	q := `INSERT INTO data_usage (day, grant_id, app_id, method, resource_code, provider_dept_id, consumer_dept_id,
		calls, records, errors, refused, latency_us, latency_max_us) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (day, grant_id, app_id, method) DO UPDATE SET calls = data_usage.calls + excluded.calls,
		records = data_usage.records + excluded.records, errors = data_usage.errors + excluded.errors,
		refused = data_usage.refused + excluded.refused, latency_us = data_usage.latency_us + excluded.latency_us,
		latency_max_us = ` + greatest + `(data_usage.latency_max_us, excluded.latency_max_us)`
	return u.db.InTx(ctx, func(tx *store.Tx) error {
		for k, r := range batch {
			if _, err := tx.Exec(ctx, q, k.day, k.grant, k.app, k.method, r.resource, r.provider, r.consumer,
				r.calls, r.records, r.errors, r.refused, r.latencyUS, r.maxUS); err != nil {
				return err
			}
		}
		return nil
	})
}
