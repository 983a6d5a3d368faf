package proxy

import (
	"context"
	"fmt"
	"strings"
	"time"

	"govshare/internal/apperr"
	"govshare/internal/policy"
	"govshare/internal/store"
)

// CallFilter selects calls from the log. Zero fields match all.
type CallFilter struct {
	ServiceID      int64
	ProviderDeptID int64
	ConsumerDeptID int64
	AppKey         string
	Operation      string // exact, e.g. "GET /persons/{id}"
	Result         string // ok / denied / error
	From, To       time.Time
	Before         int64 // keyset paging: calls with id below
	Limit          int   // default 50, at most 500
}

// callScope is the department whose calls a reader sees, as provider or
// as consumer: 0 for platform administrators and auditors, who see all.
// Anyone else is refused, and the refusal audited.
func (p *Proxy) callScope(ctx context.Context, actor policy.Actor, obj string) (int64, error) {
	if policy.Allowed(actor, policy.ServiceCalls, policy.Target{}) {
		return 0, nil
	}
	if err := p.authorize(ctx, actor, policy.ServiceCalls, actor.DeptID, obj); err != nil {
		return 0, err
	}
	return actor.DeptID, nil
}

// Calls lists calls, newest first: all of them to platform
// administrators and auditors; to a department's data administrator, the
// calls to the department's services and the department's own calls.
func (p *Proxy) Calls(ctx context.Context, actor policy.Actor, f CallFilter) ([]Call, error) {
	obj := ""
	if f.ServiceID != 0 {
		t, err := p.load(ctx, "s.id = ?", f.ServiceID)
		if err != nil {
			return nil, err
		}
		obj = t.svc.Code
	}
	scope, err := p.callScope(ctx, actor, obj)
	if err != nil {
		return nil, err
	}
	var conds []string
	var args []any
	add := func(c string, a ...any) { conds, args = append(conds, c), append(args, a...) }
	if scope != 0 {
		add("(c.provider_dept_id = ? OR c.consumer_dept_id = ?)", scope, scope)
	}
	if f.ServiceID != 0 {
		add("c.service_id = ?", f.ServiceID)
	}
	if f.ProviderDeptID != 0 {
		add("c.provider_dept_id = ?", f.ProviderDeptID)
	}
	if f.ConsumerDeptID != 0 {
		add("c.consumer_dept_id = ?", f.ConsumerDeptID)
	}
	if f.AppKey != "" {
		add("c.app_key = ?", f.AppKey)
	}
	if f.Operation != "" {
		add("c.operation = ?", f.Operation)
	}
	if f.Result != "" {
		add("c.result = ?", f.Result)
	}
	if !f.From.IsZero() {
		add("c.at >= ?", f.From.UTC())
	}
	if !f.To.IsZero() {
		add("c.at < ?", f.To.UTC())
	}
	if f.Before > 0 {
		add("c.id < ?", f.Before)
	}
	if f.Limit <= 0 || f.Limit > 500 {
		f.Limit = 50
	}
	q := `SELECT c.id, c.service_id, COALESCE(e.code, ''), c.at, c.provider_dept_id, c.consumer_dept_id, c.app_id, c.app_key, c.grant_id,
		c.request_id, c.method, c.operation, c.path, c.request_bytes, c.response_bytes, c.status, c.duration_ms, c.result, c.error_code
		FROM service_calls c JOIN service_resources s ON s.id = c.service_id JOIN entries e ON e.id = s.entry_id`
	if len(conds) > 0 {
		q += " WHERE " + strings.Join(conds, " AND ")
	}
	q += fmt.Sprintf(" ORDER BY c.id DESC LIMIT %d", f.Limit)
	out, err := store.All(ctx, p.db, func(row store.Row) (Call, error) {
		var c Call
		err := row.Scan(&c.ID, &c.ServiceID, &c.Code, &c.At, &c.ProviderDeptID, &c.ConsumerDeptID, &c.AppID, &c.AppKey, &c.GrantID,
			&c.RequestID, &c.Method, &c.Operation, &c.Path, &c.RequestBytes, &c.ResponseBytes, &c.Status, &c.DurationMS, &c.Result, &c.ErrorCode)
		return c, err
	}, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list service calls: %w", err)
	}
	return out, nil
}

// DayStats are a service's calls of one day (China Standard Time).
type DayStats struct {
	Day           string `json:"day" example:"2026-03-02"`
	Calls         int64  `json:"calls"`
	Errors        int64  `json:"errors" doc:"失败：不可达、超时、超限、熔断、提供方5xx / failures: unreachable, timeout, too large, circuit open, provider 5xx"`
	Denied        int64  `json:"denied" doc:"平台拒绝：无授权、未登记的操作等 / refused by the platform: no grant, unknown operation …"`
	RequestBytes  int64  `json:"request_bytes"`
	ResponseBytes int64  `json:"response_bytes"`
	// The latency of the calls the platform did not refuse: exact below
	// 100 ms, within 5 % above (never less than the true value).
	P50MS int64 `json:"p50_ms" doc:"耗时中位数(毫秒；100毫秒以上误差不超过5%) / median duration (ms; within 5 % above 100 ms)"`
	P99MS int64 `json:"p99_ms" doc:"99分位耗时(毫秒) / 99th percentile duration (ms)"`
}

// MaxStatsDays is how far back the daily statistics reach.
const MaxStatsDays = 92

// Stats are a service's daily statistics for the last days (today
// included, newest first, days without calls left out). A department
// that only consumes the service sees its own calls' statistics.
func (p *Proxy) Stats(ctx context.Context, actor policy.Actor, serviceID int64, days int) ([]DayStats, error) {
	t, err := p.load(ctx, "s.id = ?", serviceID)
	if err != nil {
		return nil, err
	}
	scope, err := p.callScope(ctx, actor, t.svc.Code)
	if err != nil {
		return nil, err
	}
	if days <= 0 {
		days = 7
	}
	if days > MaxStatsDays {
		return nil, apperr.Invalid("service.days_invalid", "days", fmt.Sprintf("最多统计%d天", MaxStatsDays), fmt.Sprintf("at most %d days", MaxStatsDays))
	}
	cond, args := " WHERE service_id = ? AND day >= ?", []any{serviceID, day(p.now().AddDate(0, 0, -(days - 1)))}
	if scope != 0 && scope != t.svc.DeptID {
		cond, args = cond+" AND consumer_dept_id = ?", append(args, scope)
	}
	out, err := store.All(ctx, p.db, func(row store.Row) (DayStats, error) {
		var d DayStats
		err := row.Scan(&d.Day, &d.Calls, &d.Errors, &d.Denied, &d.RequestBytes, &d.ResponseBytes)
		return d, err
	}, `SELECT day, CAST(SUM(calls) AS BIGINT), CAST(SUM(errors) AS BIGINT), CAST(SUM(denied) AS BIGINT), CAST(SUM(request_bytes) AS BIGINT),
		CAST(SUM(response_bytes) AS BIGINT) FROM service_call_days`+cond+" GROUP BY day ORDER BY day DESC", args...)
	if err != nil {
		return nil, fmt.Errorf("service %d statistics: %w", serviceID, err)
	}
	hist := map[string][][2]int64{} // day → (bucket, calls) ascending
	rows, err := p.db.Query(ctx, "SELECT day, bucket, CAST(SUM(calls) AS BIGINT) FROM service_call_latency"+cond+" GROUP BY day, bucket ORDER BY day, bucket", args...)
	if err != nil {
		return nil, fmt.Errorf("service %d latency: %w", serviceID, err)
	}
	defer rows.Close()
	for rows.Next() {
		var d string
		var b [2]int64
		if err := rows.Scan(&d, &b[0], &b[1]); err != nil {
			return nil, err
		}
		hist[d] = append(hist[d], b)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	for i := range out {
		out[i].P50MS, out[i].P99MS = percentile(hist[out[i].Day], 50), percentile(hist[out[i].Day], 99)
	}
	return out, nil
}

// percentile reads the p-th percentile by nearest rank from a histogram.
func percentile(h [][2]int64, p int64) int64 {
	var n int64
	for _, b := range h {
		n += b[1]
	}
	rank, seen := (n*p+99)/100, int64(0)
	for _, b := range h {
		if seen += b[1]; seen >= rank {
			return bucketCeiling(int(b[0]))
		}
	}
	return 0
}
