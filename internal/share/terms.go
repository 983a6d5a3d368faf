package share

import (
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"govshare/internal/apperr"
	"govshare/internal/calendar"
	"govshare/internal/catalog"
)

// RowScope limits a grant to some rows of a resource (e.g. the consumer's
// own region): rows whose Item equals one of Values ("eq") or starts with
// one of them ("prefix").
type RowScope struct {
	Item   string   `json:"item" doc:"限定所依据的信息项(字段名) / item the rows are limited by"`
	Op     string   `json:"op" enum:"eq,prefix" doc:"eq 等于其一；prefix 以其一开头 / eq: equals one of; prefix: starts with one of"`
	Values []string `json:"values" doc:"取值，如行政区划代码 3501 / values, e.g. region code 3501"`
}

// Terms are what an application asks for and what a decision allows.
type Terms struct {
	Items       []string              `json:"items" required:"false" doc:"信息项(字段名) / data items by machine name"`
	Methods     []catalog.ShareMethod `json:"methods" required:"false" doc:"共享方式 api/file/exchange/verify / share methods"`
	Purpose     string                `json:"purpose" required:"false" doc:"用途 / purpose(决定中不可更改 / fixed in decisions)"`
	Basis       string                `json:"basis,omitempty" doc:"申请依据(法律法规或职能) / legal basis"`
	ValidFrom   time.Time             `json:"valid_from,omitzero" doc:"使用期限起 / valid from"`
	ValidUntil  time.Time             `json:"valid_until,omitzero" doc:"使用期限止(无条件共享可不填) / valid until (may be empty for unconditional resources)"`
	RowScope    *RowScope             `json:"row_scope,omitempty" doc:"行范围 / row scope"`
	AppIDs      []int64               `json:"app_ids,omitempty" doc:"使用的接入应用，空为本部门全部应用 / apps allowed; empty: all of the department's apps"`
	RateLimit   int                   `json:"rate_limit,omitempty" doc:"每秒请求上限，0为不限 / requests per second, 0 unlimited"`
	DailyQuota  int                   `json:"daily_quota,omitempty" doc:"每日记录数上限(查询与下载)，0为不限 / records per day (queries and downloads), 0 unlimited"`
	VerifyQuota int                   `json:"verify_quota,omitempty" doc:"每日比对记录数上限，0为不限 / records compared per day, 0 unlimited"`
}

// TermChange is one way a decision differs from the request.
type TermChange struct {
	Field string `json:"field" doc:"items/methods/valid_from/valid_until/row_scope/app_ids/rate_limit/daily_quota/verify_quota"`
	From  string `json:"from"`
	To    string `json:"to"`
}

// Errors of terms.
var (
	ErrItems       = apperr.Invalid("share.items_invalid", "items", "请选择该资源已发布的信息项", "choose data items the resource publishes")
	ErrMethods     = apperr.Invalid("share.methods_invalid", "methods", "请选择该资源提供的共享方式", "choose share methods the resource offers")
	ErrPurpose     = apperr.Invalid("share.purpose_required", "purpose", "请说明用途(不超过500字)", "state the purpose (at most 500 characters)")
	ErrBasis       = apperr.Invalid("share.basis_required", "basis", "请说明申请依据(法律法规或部门职能，不超过500字)", "state the legal basis (a law, a regulation or the department's functions; at most 500 characters)")
	ErrPeriod      = apperr.Invalid("share.period_invalid", "valid_until", "使用期限应晚于开始日期，且不超过5年", "the period must end after it starts and last at most 5 years")
	ErrRowScope    = apperr.Invalid("share.row_scope_invalid", "row_scope", "行范围应指定一个信息项、eq 或 prefix 及1至100个取值", "a row scope names one data item, eq or prefix, and 1 to 100 values")
	ErrAppIDs      = apperr.Invalid("share.apps_invalid", "app_ids", "只能选择本部门有效的接入应用", "choose active apps of your own department")
	ErrLimits      = apperr.Invalid("share.limits_invalid", "rate_limit", "调用上限和配额不能为负数", "limits and quotas cannot be negative")
	ErrNotNarrower = apperr.Invalid("share.decision_wider", "items", "批准的范围只能小于或等于申请的范围(信息项、方式、期限、行范围、应用)", "an approval may only narrow what was asked (items, methods, period, row scope, apps)")
)

// dateStart and dateEnd make a period whole days in China Standard Time.
func dateStart(t time.Time) time.Time {
	d := t.In(calendar.CST)
	return time.Date(d.Year(), d.Month(), d.Day(), 0, 0, 0, 0, calendar.CST).UTC()
}

func dateEnd(t time.Time) time.Time {
	return dateStart(t).Add(24*time.Hour - time.Microsecond)
}

// validate normalises terms against the resource's published content.
// needPeriod is true for applications (a grant of a conditional resource
// always ends); needBasis for applications and negotiations.
func (t *Terms) validate(c catalog.Content, now time.Time, needPeriod, needBasis bool) error {
	t.Purpose, t.Basis = strings.TrimSpace(t.Purpose), strings.TrimSpace(t.Basis)
	if t.Purpose == "" || utf8.RuneCountInString(t.Purpose) > 500 {
		return ErrPurpose
	}
	if needBasis && (t.Basis == "" || utf8.RuneCountInString(t.Basis) > 500) {
		return ErrBasis
	}
	var items []string
	for _, it := range c.Items { // keep the catalog's order
		if slices.Contains(t.Items, it.MachineName) {
			items = append(items, it.MachineName)
		}
	}
	if len(items) == 0 || len(items) != len(compact(t.Items)) {
		return ErrItems
	}
	t.Items = items
	t.Methods = slices.Compact(slices.Sorted(slices.Values(t.Methods)))
	if len(t.Methods) == 0 {
		return ErrMethods
	}
	for _, m := range t.Methods {
		if !slices.Contains(c.ShareMethods, m) {
			return ErrMethods
		}
	}
	if t.ValidFrom.IsZero() {
		t.ValidFrom = now
	}
	t.ValidFrom = dateStart(t.ValidFrom)
	if !t.ValidUntil.IsZero() {
		t.ValidUntil = dateEnd(t.ValidUntil)
		if !t.ValidUntil.After(t.ValidFrom) || t.ValidUntil.After(t.ValidFrom.AddDate(5, 0, 0)) || t.ValidUntil.Before(now) {
			return ErrPeriod
		}
	} else if needPeriod {
		return ErrPeriod
	}
	if rs := t.RowScope; rs != nil {
		rs.Item, rs.Op = strings.TrimSpace(rs.Item), strings.TrimSpace(rs.Op)
		var vals []string
		for _, v := range rs.Values {
			if v = strings.TrimSpace(v); v != "" {
				if utf8.RuneCountInString(v) > 64 {
					return ErrRowScope
				}
				vals = append(vals, v)
			}
		}
		rs.Values = compact(vals)
		known := slices.ContainsFunc(c.Items, func(it catalog.DataItem) bool { return it.MachineName == rs.Item })
		if rs.Item == "" && len(rs.Values) == 0 {
			t.RowScope = nil
		} else if !known || (rs.Op != "eq" && rs.Op != "prefix") || len(rs.Values) == 0 || len(rs.Values) > 100 {
			return ErrRowScope
		}
	}
	t.AppIDs = compact(t.AppIDs)
	if t.RateLimit < 0 || t.DailyQuota < 0 || t.VerifyQuota < 0 {
		return ErrLimits
	}
	return nil
}

// compact returns the distinct values in order.
func compact[T comparable](in []T) []T {
	var out []T
	for _, v := range in {
		if !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	return out
}

// narrows checks that a decision d only narrows the request r: fewer or
// equal items, methods and apps, a period inside the requested one, and a
// row scope at least as tight.
func narrows(r, d Terms) bool {
	subset := func(a, b []string) bool {
		for _, x := range a {
			if !slices.Contains(b, x) {
				return false
			}
		}
		return true
	}
	methods := func(ms []catalog.ShareMethod) []string {
		out := make([]string, len(ms))
		for i, m := range ms {
			out[i] = string(m)
		}
		return out
	}
	if !subset(d.Items, r.Items) || !subset(methods(d.Methods), methods(r.Methods)) {
		return false
	}
	if len(r.AppIDs) > 0 && (len(d.AppIDs) == 0 || slices.ContainsFunc(d.AppIDs, func(id int64) bool { return !slices.Contains(r.AppIDs, id) })) {
		return false
	}
	if d.ValidFrom.Before(r.ValidFrom) {
		return false
	}
	if !r.ValidUntil.IsZero() && (d.ValidUntil.IsZero() || d.ValidUntil.After(r.ValidUntil)) {
		return false
	}
	if r.RowScope != nil {
		if d.RowScope == nil || d.RowScope.Item != r.RowScope.Item {
			return false
		}
		for _, v := range d.RowScope.Values {
			inside := slices.ContainsFunc(r.RowScope.Values, func(rv string) bool {
				if r.RowScope.Op == "eq" {
					return d.RowScope.Op == "eq" && v == rv
				}
				return strings.HasPrefix(v, rv)
			})
			if !inside {
				return false
			}
		}
	}
	return true
}

// Changes lists how a decision differs from the request, so the applicant
// sees exactly what was changed.
func Changes(r, d Terms) []TermChange {
	var out []TermChange
	add := func(field, from, to string) {
		if from != to {
			out = append(out, TermChange{Field: field, From: from, To: to})
		}
	}
	methods := func(ms []catalog.ShareMethod) string {
		s := make([]string, len(ms))
		for i, m := range ms {
			s[i] = string(m)
		}
		return strings.Join(s, ",")
	}
	ids := func(v []int64) string {
		s := make([]string, len(v))
		for i, x := range v {
			s[i] = fmt.Sprint(x)
		}
		return strings.Join(s, ",")
	}
	add("items", strings.Join(r.Items, ","), strings.Join(d.Items, ","))
	add("methods", methods(r.Methods), methods(d.Methods))
	add("valid_from", day(r.ValidFrom), day(d.ValidFrom))
	add("valid_until", day(r.ValidUntil), day(d.ValidUntil))
	add("row_scope", r.RowScope.String(), d.RowScope.String())
	add("app_ids", ids(r.AppIDs), ids(d.AppIDs))
	add("rate_limit", fmt.Sprint(r.RateLimit), fmt.Sprint(d.RateLimit))
	add("daily_quota", fmt.Sprint(r.DailyQuota), fmt.Sprint(d.DailyQuota))
	add("verify_quota", fmt.Sprint(r.VerifyQuota), fmt.Sprint(d.VerifyQuota))
	return out
}

func day(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.In(calendar.CST).Format("2006-01-02")
}

// String renders a row scope, e.g. "region_code prefix 3501|3502".
func (rs *RowScope) String() string {
	if rs == nil {
		return ""
	}
	return rs.Item + " " + rs.Op + " " + strings.Join(rs.Values, "|")
}

// Matches reports whether a row with value v for the scope's item is in
// scope. A nil scope admits every row.
func (rs *RowScope) Matches(v string) bool {
	if rs == nil {
		return true
	}
	for _, x := range rs.Values {
		if v == x || (rs.Op == "prefix" && strings.HasPrefix(v, x)) {
			return true
		}
	}
	return false
}
