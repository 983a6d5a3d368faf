package dataservice

import (
	"context"
	"strings"
	"time"

	"govshare/internal/apperr"
	"govshare/internal/audit"
	"govshare/internal/policy"
	"govshare/internal/share"
	"govshare/internal/store"
)

// UsageRow is the usage of one grant's resource by one consumer, method
// and day: for the provider's and consumer's dashboards, the entry page
// and the assessment.
type UsageRow struct {
	Day            string  `json:"day"`
	Resource       string  `json:"resource"`
	ProviderDeptID int64   `json:"provider_dept_id"`
	ConsumerDeptID int64   `json:"consumer_dept_id"`
	Method         string  `json:"method" doc:"api / verify / file / service"`
	Calls          int64   `json:"calls"`
	Records        int64   `json:"records" doc:"返回或比对的记录数 / records returned or compared"`
	Errors         int64   `json:"errors"`
	Refused        int64   `json:"refused" doc:"因超限被拒绝的调用 / calls refused by a limit"`
	AvgLatencyMS   float64 `json:"avg_latency_ms"`
	MaxLatencyMS   float64 `json:"max_latency_ms"`
}

// UsageFilter selects usage: a department's as provider or consumer
// (side "provider" / "consumer"), a resource, days from–to (YYYY-MM-DD,
// inclusive; default the last 30 days).
type UsageFilter struct {
	Side     string
	DeptID   int64
	Resource string
	From, To string
}

// ErrUsageSide refuses an unknown side.
var ErrUsageSide = apperr.Invalid("data.usage_side", "side", "side 应为 provider 或 consumer", "side is provider or consumer")

// Usage lists usage by day, resource, consumer and method. Department
// administrators and reviewers see their own department's, as provider
// or as consumer; platform administrators and auditors any.
func (s *Service) Usage(ctx context.Context, actor policy.Actor, f UsageFilter) ([]UsageRow, error) {
	if f.Side != "" && f.Side != "provider" && f.Side != "consumer" {
		return nil, ErrUsageSide
	}
	if f.DeptID == 0 && !policy.Allowed(actor, policy.UsageView, policy.Target{}) {
		f.DeptID = actor.DeptID
		if f.Side == "" {
			f.Side = "consumer"
		}
	}
	if err := policy.Check(actor, policy.UsageView, policy.Target{DeptID: f.DeptID}); err != nil {
		_ = s.audit.Append(ctx, audit.By(actor, string(policy.UsageView), "data_usage", "", audit.ResultDenied, nil))
		return nil, err
	}
	where := []string{"day >= ?", "day <= ?"}
	now := s.now()
	if f.To == "" {
		f.To = day(now)
	}
	if f.From == "" {
		f.From = day(now.AddDate(0, 0, -29))
	}
	args := []any{f.From, f.To}
	if f.DeptID != 0 {
		switch f.Side {
		case "provider":
			where = append(where, "provider_dept_id = ?")
			args = append(args, f.DeptID)
		case "consumer":
			where = append(where, "consumer_dept_id = ?")
			args = append(args, f.DeptID)
		default:
			where = append(where, "(provider_dept_id = ? OR consumer_dept_id = ?)")
			args = append(args, f.DeptID, f.DeptID)
		}
	}
	if f.Resource != "" {
		where = append(where, "resource_code = ?")
		args = append(args, f.Resource)
	}
	return store.All(ctx, s.db, scanUsage, `SELECT day, resource_code, provider_dept_id, consumer_dept_id, method, SUM(calls), SUM(records),
		SUM(errors), SUM(refused), SUM(latency_us), MAX(latency_max_us) FROM data_usage WHERE `+strings.Join(where, " AND ")+`
		GROUP BY day, resource_code, provider_dept_id, consumer_dept_id, method ORDER BY day DESC, resource_code, consumer_dept_id, method LIMIT 5000`, args...)
}

func scanUsage(row store.Row) (UsageRow, error) {
	var u UsageRow
	var lat, maxLat int64
	err := row.Scan(&u.Day, &u.Resource, &u.ProviderDeptID, &u.ConsumerDeptID, &u.Method, &u.Calls, &u.Records, &u.Errors, &u.Refused, &lat, &maxLat)
	if u.Calls > 0 {
		u.AvgLatencyMS = float64(lat) / float64(u.Calls) / 1000
	}
	u.MaxLatencyMS = float64(maxLat) / 1000
	return u, err
}

// ResourceUsage is a resource's use per day over the last days, all
// consumers together (for its entry page).
func (s *Service) ResourceUsage(ctx context.Context, code string, days int) ([]UsageRow, error) {
	from := day(s.now().Add(-time.Duration(days-1) * 24 * time.Hour))
	return store.All(ctx, s.db, scanUsage, `SELECT day, resource_code, MAX(provider_dept_id), 0, method, SUM(calls), SUM(records),
		SUM(errors), SUM(refused), SUM(latency_us), MAX(latency_max_us) FROM data_usage WHERE resource_code = ? AND day >= ?
		GROUP BY day, resource_code, method ORDER BY day DESC, method`, code, from)
}

// AdmitCall applies the grant's and the app's requests-per-second limits
// to a call of a proxied department service (服务资源).
func (s *Service) AdmitCall(c Caller, p share.Permit) error {
	return s.admit(&use{caller: c, permit: p})
}

// RecordCall counts a call of a proxied department service in the usage
// statistics (method "service").
func (s *Service) RecordCall(c Caller, code string, p share.Permit, started time.Time, err error) {
	if p.GrantID == 0 {
		return // refused before a grant was found: audited, not usage
	}
	u := &use{caller: c, started: started, permit: p}
	u.r.Code = code
	s.usage.addAs(u, "service", 1, 0, err)
}
