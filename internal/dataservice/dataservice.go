// Package dataservice is how consumers use granted data (数据服务): the
// query service, the comparison service that answers match or mismatch
// and never the data (数据不落地), and batch downloads. Every call is
// bounded by its grant — items, masking, row scope, method, period — and
// by the grant's and the app's limits, is counted in the usage
// statistics, and writes its audit event before any data leaves.
package dataservice

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"govshare/internal/apperr"
	"govshare/internal/audit"
	"govshare/internal/catalog"
	"govshare/internal/mask"
	"govshare/internal/policy"
	"govshare/internal/quality"
	"govshare/internal/resource"
	"govshare/internal/secret"
	"govshare/internal/share"
	"govshare/internal/store"
	"govshare/internal/ttlcache"
)

// Resources is the part of the resource store the services read.
type Resources interface {
	ByCode(ctx context.Context, code string) (resource.Resource, error)
	Select(ctx context.Context, r resource.Resource, sel resource.Selection, fn func(vals []*string, pos resource.Position) error) error
	Count(ctx context.Context, r resource.Resource, where []resource.Cond) (int64, error)
}

// Grants decides uses (share.Service.Permit).
type Grants interface {
	Permit(ctx context.Context, u share.Use) (share.Permit, error)
}

// Auditor writes audit events; Append returns once the event is durable.
type Auditor interface {
	Append(ctx context.Context, e audit.Event) error
}

// Deps are what the service needs.
type Deps struct {
	DB        *store.DB
	Resources Resources
	Grants    Grants
	Audit     Auditor
	Masker    *mask.Masker
	Keys      *secret.Keys
	Log       *slog.Logger
}

// Service runs the data services.
type Service struct {
	db       *store.DB
	res      Resources
	grants   Grants
	audit    Auditor
	masker   *mask.Masker
	cursors  *secret.Sealer
	log      *slog.Logger
	now      func() time.Time
	limits   *limiter
	usage    *usage
	checkers sync.Map // checkerKey → *shapeChecker: the items' types and visible columns
	rules    sync.Map // masking rule text → *mask.Rule
	mounted  *ttlcache.Cache[string, resource.Resource]
	lookups  *lookups
}

// New starts the service; Close flushes its usage counts.
func New(d Deps) *Service {
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	s := &Service{db: d.DB, res: d.Resources, grants: d.Grants, audit: d.Audit, masker: d.Masker, cursors: d.Keys.Sealer("data/cursor"),
		log: d.Log, now: store.Now, limits: newLimiter(), mounted: ttlcache.New[string, resource.Resource](time.Second, 10000), lookups: newLookups()}
	s.usage = newUsage(d.DB, d.Log, func() time.Time { return s.now() })
	return s
}

// SetClock replaces the clock for tests.
func (s *Service) SetClock(now func() time.Time) { s.now = now }

// Close writes the usage counted so far.
func (s *Service) Close() { s.usage.close() }

// Flush writes the usage counted so far now (tests, shutdown).
func (s *Service) Flush(ctx context.Context) error { return s.usage.flush(ctx) }

// Caller is who uses the data: a department's app (AppID, Limits) or a
// person of the department through the pages (AppID 0), with the
// purpose stated for this use.
type Caller struct {
	Actor   policy.Actor
	AppID   int64
	Limits  share.AppLimits
	Purpose string
}

// Errors of the data services.
var (
	ErrPurpose = apperr.New(http.StatusBadRequest, "data.purpose_required", "每次使用数据都须说明用途(X-Purpose 或 purpose)",
		"every use of data must state its purpose (X-Purpose or purpose)").OnField("purpose")
	ErrNotGranted = apperr.New(http.StatusForbidden, "data.not_granted", "没有以此方式使用该资源的有效授权", "no valid grant allows this use of the resource")
	ErrItem       = apperr.New(http.StatusForbidden, "data.item_not_granted", "信息项不在授权范围内", "the item is not granted")
	ErrRate       = apperr.New(http.StatusTooManyRequests, "data.rate_limited", "请求过于频繁，超过每秒请求上限", "too many requests: over the requests-per-second limit")
	ErrQuota      = apperr.New(http.StatusTooManyRequests, "data.quota_exhausted", "今日记录数已达上限，请明日再试", "today's record quota is used up; try again tomorrow")
	ErrVerifyQ    = apperr.New(http.StatusTooManyRequests, "data.verify_quota_exhausted", "今日比对记录数已达上限，请明日再试", "today's comparison quota is used up; try again tomorrow")
)

var methodNames = map[catalog.ShareMethod][2]string{
	catalog.MethodAPI:    {"接口查询", "query (api)"},
	catalog.MethodFile:   {"批量下载", "download (file)"},
	catalog.MethodVerify: {"比对核验", "comparison (verify)"},
}

// notGranted names the method a use was refused for.
func notGranted(m catalog.ShareMethod) error {
	n := methodNames[m]
	return ErrNotGranted.With(fmt.Sprintf("没有以%s(%s)方式使用该资源的有效授权(授权不存在、已吊销、已过期或不含此应用)，请先申请", n[0], m),
		fmt.Sprintf("no valid grant allows %s of the resource (none, revoked, expired, or not for this app); apply first", n[1]))
}

// itemRefused names the item and the method a request went outside its
// grant with.
func itemRefused(item string, m catalog.ShareMethod, field string) error {
	n := methodNames[m]
	return ErrItem.With(fmt.Sprintf("信息项 %s 不在%s方式的授权范围内", item, n[0]),
		fmt.Sprintf("item %s is not granted for %s", item, n[1])).OnField(field)
}

// use is one call in progress: who, what, under which grant.
type use struct {
	caller  Caller
	method  catalog.ShareMethod
	r       resource.Resource
	permit  share.Permit
	started time.Time
}

// granted returns the item of the call's grant named name. A grant has
// a few dozen items at most: a look through them costs less than a map.
func (u *use) granted(name string) (share.PermitItem, bool) {
	for _, it := range u.permit.Items {
		if it.MachineName == name {
			return it, true
		}
	}
	return share.PermitItem{}, false
}

// begin authorizes a call: the caller may use data, states a purpose,
// the resource is mounted and a grant allows the method (items are
// checked by each service against granted). A refusal is audited.
func (s *Service) begin(ctx context.Context, c Caller, code string, m catalog.ShareMethod, items []string) (*use, error) {
	u := &use{caller: c, method: m, started: time.Now()}
	action := "data." + string(m)
	if err := policy.Check(c.Actor, policy.DataUse, policy.Target{DeptID: c.Actor.DeptID}); err != nil {
		s.deny(ctx, c, action, code, err)
		return nil, err
	}
	if strings.TrimSpace(c.Purpose) == "" {
		s.deny(ctx, c, action, code, ErrPurpose)
		return nil, ErrPurpose
	}
	r, err := s.resource(ctx, code)
	if err != nil {
		if errors.Is(err, resource.ErrNotMounted) || errors.Is(err, apperr.ErrNotFound) {
			err = resource.ErrNotMounted
		}
		s.deny(ctx, c, action, code, err)
		return nil, err
	}
	u.r = r
	p, err := s.grants.Permit(ctx, share.Use{DeptID: c.Actor.DeptID, AppID: c.AppID, Resource: code, Method: m})
	if errors.Is(err, share.ErrNoGrant) {
		err = notGranted(m)
	}
	if err != nil {
		s.deny(ctx, c, action, code, err)
		return nil, err
	}
	u.permit = p
	for _, it := range items {
		if _, ok := u.granted(it); !ok {
			err := itemRefused(it, m, "items")
			s.deny(ctx, c, action, code, err)
			return nil, err
		}
	}
	return u, nil
}

// deny audits a refused call.
func (s *Service) deny(ctx context.Context, c Caller, action, code string, err error) {
	reason := "error"
	if ae, ok := apperr.As(err); ok {
		reason = ae.Code
	}
	e := audit.By(c.Actor, action, "resource", code, audit.ResultDenied, map[string]any{"reason": reason})
	e.Purpose = c.Purpose
	_ = s.audit.Append(ctx, e)
}

// record writes the audit event of a call that returns or compares data;
// it must be durable before the data leaves.
func (s *Service) record(ctx context.Context, u *use, action string, details map[string]any) error {
	details["grant"] = u.permit.GrantID
	e := audit.By(u.caller.Actor, action, "resource", u.r.Code, audit.ResultOK, details)
	e.Purpose = u.caller.Purpose
	if err := s.audit.Append(ctx, e); err != nil {
		return fmt.Errorf("audit %s: %w", action, err)
	}
	return nil
}

// column finds a visible column of the resource.
func column(r resource.Resource, name string) (resource.Column, bool) {
	for _, c := range r.Visible() {
		if c.MachineName == name {
			return c, true
		}
	}
	return resource.Column{}, false
}

// scopeCond is the grant's row scope as a condition on the resource.
func scopeCond(r resource.Resource, p share.Permit) ([]resource.Cond, error) {
	rs := p.RowScope
	if rs == nil {
		return nil, nil
	}
	for _, c := range r.Columns {
		if c.MachineName == rs.Item {
			op := "in"
			if rs.Op == "prefix" {
				op = "prefix"
			}
			return []resource.Cond{{Column: c, Op: op, Values: rs.Values}}, nil
		}
	}
	// A scope on an item the resource does not hold admits no rows.
	return []resource.Cond{{Op: "in"}}, nil
}

// checker canonicalises values as the store holds them (the types of the
// items only), so filters and comparisons see what loading wrote. The
// checker and the visible columns are kept per resource shape (an entry
// version fixes the columns), so a call allocates neither.
func (s *Service) checker(r resource.Resource) (*quality.Checker, []resource.Column, error) {
	sh, err := s.shape(r)
	if err != nil {
		return nil, nil, err
	}
	return sh.chk, sh.cols, nil
}

func (s *Service) shape(r resource.Resource) (*shapeChecker, error) {
	key := checkerKey{r.ID, r.EntryVersion, len(r.Columns)}
	if c, ok := s.checkers.Load(key); ok {
		return c.(*shapeChecker), nil
	}
	cols := r.Visible()
	items := make([]quality.Item, len(cols))
	for i, c := range cols {
		items[i] = quality.Item{Name: c.Name, MachineName: c.MachineName, DataType: c.DataType, Length: c.Length}
	}
	chk, err := quality.Compile(items, nil)
	if err != nil {
		return nil, err
	}
	c, _ := s.checkers.LoadOrStore(key, &shapeChecker{chk: chk, cols: cols, fields: map[int64]*fieldsPlan{}})
	return c.(*shapeChecker), nil
}

type checkerKey struct {
	resource int64
	version  int
	columns  int
}

type shapeChecker struct {
	chk  *quality.Checker
	cols []resource.Column

	mu     sync.Mutex
	fields map[int64]*fieldsPlan // by grant
}

// fieldsPlan is what a query that names no fields — every item of its
// grant, the usual query — reads: columns, item and display names,
// masks. It is kept per resource shape and grant, with the grant's items
// it was made from, and used only while the grant still has those items
// with those masks. Its slices are shared: nobody changes them.
type fieldsPlan struct {
	from    []share.PermitItem
	columns []resource.Column
	items   []string
	names   []string
	masks   []*mask.Rule
}

// fieldsFor returns the kept fields plan of grant, if made from items.
func (sh *shapeChecker) fieldsFor(grant int64, items []share.PermitItem) *fieldsPlan {
	sh.mu.Lock()
	f := sh.fields[grant]
	sh.mu.Unlock()
	if f == nil || !slices.EqualFunc(f.from, items, func(a, b share.PermitItem) bool {
		return a.MachineName == b.MachineName && a.MaskRule == b.MaskRule && a.Name == b.Name
	}) {
		return nil
	}
	return f
}

func (sh *shapeChecker) keepFields(grant int64, f *fieldsPlan) {
	sh.mu.Lock()
	if len(sh.fields) >= 10000 {
		clear(sh.fields)
	}
	sh.fields[grant] = f
	sh.mu.Unlock()
}

// maskRule parses a masking rule once; rules are few and kept.
func (s *Service) maskRule(text string) (*mask.Rule, error) {
	if r, ok := s.rules.Load(text); ok {
		return r.(*mask.Rule), nil
	}
	r, err := mask.Parse(text)
	if err != nil {
		return nil, err
	}
	s.rules.Store(text, &r)
	return &r, nil
}

// canonical returns v as the store holds values of column i, or a
// violation.
func canonical(chk *quality.Checker, n, i int, v string) (string, *quality.Violation) {
	vals := make([]string, n)
	vals[i] = v
	out, vs := chk.Check(vals)
	for _, x := range vs {
		if x.Item != "" {
			return "", &x
		}
	}
	return out[i], nil
}
