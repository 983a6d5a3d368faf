package dataservice

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"govshare/internal/apperr"
	"govshare/internal/catalog"
	"govshare/internal/mask"
	"govshare/internal/resource"
)

// Filter is one condition of a query: item op value(s).
type Filter struct {
	Item   string   `json:"item"`
	Op     string   `json:"op"`
	Values []string `json:"values,omitempty"`
}

// Request is a query as a consumer asks it, parsed from the query string:
//
//	filter=item:op:value   (repeatable; op eq, in, gt, ge, lt, le, prefix;
//	                        in takes values separated by commas)
//	fields=a,b             items to return (default: every granted item)
//	sort=item | sort=-item sort on an indexed item (default: the key)
//	limit=n                records per page, 1–1000 (default 100)
//	cursor=…               the next_cursor of the previous page
type Request struct {
	Filters []Filter
	Fields  []string
	Sort    string
	Desc    bool
	Limit   int
	Cursor  string
}

// Bounds of a request.
const (
	MaxFilters   = 10
	MaxIn        = 100
	MaxValue     = 256
	DefaultLimit = 100
	MaxLimit     = 1000
)

// Errors of requests.
var (
	ErrFilter     = apperr.Invalid("data.filter_invalid", "filter", "筛选条件格式为 信息项:运算符:值，运算符为 eq、in、gt、ge、lt、le、prefix", "a filter is item:op:value with op one of eq, in, gt, ge, lt, le, prefix")
	ErrNotIndexed = apperr.Invalid("data.item_not_indexed", "filter", "只能按主键或唯一性信息项筛选和排序", "filters and sorting are on key items and unique items only")
	ErrMaskedOp   = apperr.Invalid("data.item_masked", "filter", "脱敏的信息项只能按等于(eq)或in筛选，不能按范围、前缀筛选或排序", "a masked item can be filtered with eq or in only, never by range or prefix, nor sorted")
	ErrLimit      = apperr.Invalid("data.limit_invalid", "limit", "每页记录数应为1至1000", "limit is 1 to 1000 records per page")
	ErrCursor     = apperr.Invalid("data.cursor_invalid", "cursor", "翻页游标无效或不属于这个查询，请从第一页重新查询", "the cursor is not valid for this query; start again from the first page")
	ErrItemName   = apperr.Invalid("data.item_unknown", "fields", "资源没有这个信息项", "the resource has no such item")
)

// ParseRequest reads a request from a query string. It checks the form
// only; items are checked against the resource and the grant later.
func ParseRequest(v url.Values) (Request, error) {
	var q Request
	fs := v["filter"]
	if len(fs) > MaxFilters {
		return q, ErrFilter.With(fmt.Sprintf("筛选条件最多%d个", MaxFilters), fmt.Sprintf("at most %d filters", MaxFilters))
	}
	for _, f := range fs {
		item, rest, ok1 := strings.Cut(f, ":")
		op, val, ok2 := strings.Cut(rest, ":")
		if !ok1 || !ok2 || !validName(item) || !resource.ValidOp(op) {
			return q, ErrFilter
		}
		vals := []string{val}
		if op == "in" {
			vals = strings.Split(val, ",")
			if len(vals) > MaxIn {
				return q, ErrFilter.With(fmt.Sprintf("in 最多%d个值", MaxIn), fmt.Sprintf("in takes at most %d values", MaxIn))
			}
		}
		for _, x := range vals {
			if len(x) > MaxValue || !utf8.ValidString(x) {
				return q, ErrFilter.With(fmt.Sprintf("筛选值最长%d字节", MaxValue), fmt.Sprintf("a filter value is at most %d bytes of UTF-8", MaxValue))
			}
		}
		q.Filters = append(q.Filters, Filter{Item: item, Op: op, Values: vals})
	}
	if f := strings.TrimSpace(v.Get("fields")); f != "" {
		for _, name := range strings.Split(f, ",") {
			name = strings.TrimSpace(name)
			if !validName(name) {
				return q, ErrItemName.With("字段列表应为逗号分隔的信息项字段名", "fields is a comma-separated list of item names")
			}
			if !slices.Contains(q.Fields, name) {
				q.Fields = append(q.Fields, name)
			}
		}
	}
	if s := strings.TrimSpace(v.Get("sort")); s != "" {
		q.Sort, q.Desc = strings.TrimPrefix(s, "-"), strings.HasPrefix(s, "-")
		if !validName(q.Sort) {
			return q, ErrNotIndexed.OnField("sort")
		}
	}
	q.Limit = DefaultLimit
	if l := v.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > MaxLimit {
			return q, ErrLimit
		}
		q.Limit = n
	}
	q.Cursor = v.Get("cursor")
	if len(q.Cursor) > 4096 {
		return q, ErrCursor
	}
	return q, nil
}

// validName is the shape of an item's machine name.
func validName(s string) bool {
	if s == "" || len(s) > 64 || s[0] < 'a' || s[0] > 'z' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// plan is a request made into a Selection over granted items only.
type plan struct {
	sel   resource.Selection
	items []string
	names []string
	masks []*mask.Rule
	// hashOf is what identifies the query for its cursors; hash is
	// computed from it when a cursor is read or made.
	hashOf []any
	hash   string
}

// queryHash identifies the query for its cursors: grant, resource and
// version, items, filters and sort.
func (p *plan) queryHash() string {
	if p.hash == "" {
		h := sha256.New()
		_ = json.NewEncoder(h).Encode(p.hashOf)
		p.hash = hex.EncodeToString(h.Sum(nil)[:12])
	}
	return p.hash
}

// plan checks a request against the resource and the grant and builds
// its selection. Every identifier comes from the resource's columns.
func (s *Service) plan(u *use, q Request, m catalog.ShareMethod) (*plan, error) {
	sh, err := s.shape(u.r)
	if err != nil {
		return nil, err
	}
	chk, visible := sh.chk, sh.cols
	pos := func(name string) int {
		return slices.IndexFunc(visible, func(c resource.Column) bool { return c.MachineName == name })
	}
	p := &plan{}
	p.sel.Where = make([]resource.Cond, 0, len(q.Filters)+1)
	var f *fieldsPlan
	if len(q.Fields) == 0 {
		f = sh.fieldsFor(u.permit.GrantID, u.permit.Items)
	}
	if f == nil {
		fields := q.Fields
		if len(fields) == 0 {
			fields = make([]string, 0, len(visible))
			for _, c := range visible {
				if _, ok := u.granted(c.MachineName); ok {
					fields = append(fields, c.MachineName)
				}
			}
		}
		f = &fieldsPlan{columns: make([]resource.Column, 0, len(fields)), items: make([]string, 0, len(fields)),
			names: make([]string, 0, len(fields)), masks: make([]*mask.Rule, 0, len(fields))}
		for _, name := range fields {
			it, ok := u.granted(name)
			if !ok {
				return nil, itemRefused(name, m, "fields")
			}
			i := pos(name)
			if i < 0 {
				return nil, ErrItemName.OnField("fields")
			}
			f.columns = append(f.columns, visible[i])
			f.items = append(f.items, name)
			f.names = append(f.names, visible[i].Name)
			var rule *mask.Rule
			if it.MaskRule != "" {
				if rule, err = s.maskRule(it.MaskRule); err != nil {
					return nil, err
				}
			}
			f.masks = append(f.masks, rule)
		}
		if len(q.Fields) == 0 {
			f.from = slices.Clone(u.permit.Items)
			sh.keepFields(u.permit.GrantID, f)
		}
	}
	p.sel.Columns, p.items, p.names, p.masks = f.columns, f.items, f.names, f.masks
	for _, f := range q.Filters {
		it, ok := u.granted(f.Item)
		if !ok {
			return nil, itemRefused(f.Item, m, "filter")
		}
		i := pos(f.Item)
		if i < 0 {
			return nil, ErrItemName.OnField("filter")
		}
		c := visible[i]
		if !c.Indexed() {
			return nil, ErrNotIndexed.With(fmt.Sprintf("信息项 %s 不是主键或唯一性信息项，不能用于筛选", f.Item),
				fmt.Sprintf("item %s is neither a key nor unique, so it cannot be filtered on", f.Item))
		}
		if it.MaskRule != "" && f.Op != "eq" && f.Op != "in" {
			return nil, ErrMaskedOp.With(fmt.Sprintf("信息项 %s 已脱敏，只能按 eq 或 in 筛选", f.Item),
				fmt.Sprintf("item %s is masked and can be filtered with eq or in only", f.Item))
		}
		if f.Op == "prefix" && c.DataType != "C" {
			return nil, ErrFilter.With(fmt.Sprintf("prefix 只用于字符型信息项，%s 不是", f.Item),
				fmt.Sprintf("prefix is for character items only; %s is not one", f.Item))
		}
		cond := resource.Cond{Column: c, Op: f.Op}
		for _, v := range f.Values {
			cv, bad := canonical(chk, len(visible), i, v)
			if bad != nil {
				return nil, ErrFilter.With(fmt.Sprintf("筛选 %s 的值无效：%s", f.Item, bad.ZH), fmt.Sprintf("a value filtering %s is not valid: %s", f.Item, bad.EN))
			}
			if f.Op == "prefix" && cv == "" {
				return nil, ErrFilter
			}
			cond.Values = append(cond.Values, cv)
		}
		p.sel.Where = append(p.sel.Where, cond)
	}
	if q.Sort != "" {
		it, ok := u.granted(q.Sort)
		if !ok {
			return nil, itemRefused(q.Sort, m, "sort")
		}
		i := pos(q.Sort)
		if i < 0 || !visible[i].Indexed() {
			return nil, ErrNotIndexed.OnField("sort")
		}
		if it.MaskRule != "" {
			return nil, ErrMaskedOp.OnField("sort")
		}
		c := visible[i]
		p.sel.SortBy, p.sel.Desc = &c, q.Desc
	}
	scope, err := scopeCond(u.r, u.permit)
	if err != nil {
		return nil, err
	}
	p.sel.Where = append(p.sel.Where, scope...)
	p.hashOf = []any{u.permit.GrantID, u.r.Code, u.r.EntryVersion, p.items, q.Filters, q.Sort, q.Desc}
	if q.Cursor != "" {
		at, err := s.openCursor(q.Cursor, p.queryHash())
		if err != nil {
			return nil, err
		}
		p.sel.After = at
	}
	return p, nil
}

type cursor struct {
	Hash string            `json:"h"`
	At   resource.Position `json:"p"`
}

// cursor seals the position of a page's last row: opaque to the caller
// (a masked key must not come back in clear) and bound to its query.
func (s *Service) cursor(hash string, at resource.Position) string {
	b, _ := json.Marshal(cursor{Hash: hash, At: at})
	return base64.RawURLEncoding.EncodeToString([]byte(s.cursors.Seal(b)))
}

func (s *Service) openCursor(c, hash string) (*resource.Position, error) {
	raw, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return nil, ErrCursor
	}
	b, err := s.cursors.Open(string(raw))
	if err != nil {
		return nil, ErrCursor
	}
	var cur cursor
	if json.Unmarshal(b, &cur) != nil || cur.Hash != hash {
		return nil, ErrCursor
	}
	return &cur.At, nil
}

// Result is a page of a query: the items returned, in order, with their
// names, the records (masked; nil is empty), and the cursor of the next
// page ("" on the last one).
type Result struct {
	Resource string      `json:"resource"`
	Items    []string    `json:"items"`
	Names    []string    `json:"names"`
	Records  [][]*string `json:"records"`
	Next     string      `json:"next_cursor,omitempty"`
}

// Query answers a query: granted items only, masked as the grant and the
// items say, within the row scope, a page at a time. The call is audited
// (durably) before the records are returned.
func (s *Service) Query(ctx context.Context, c Caller, code string, q Request) (Result, error) {
	u, err := s.begin(ctx, c, code, catalog.MethodAPI, nil)
	if err != nil {
		return Result{}, err
	}
	res, err := s.query(ctx, u, q)
	s.usage.add(u, 1, int64(len(res.Records)), err)
	return res, err
}

func (s *Service) query(ctx context.Context, u *use, q Request) (Result, error) {
	p, err := s.plan(u, q, catalog.MethodAPI)
	if err != nil {
		s.deny(ctx, u.caller, "data.api", u.r.Code, err)
		return Result{}, err
	}
	if err := s.admit(u); err != nil {
		s.deny(ctx, u.caller, "data.api", u.r.Code, err)
		return Result{}, err
	}
	limit, err := s.recordsLeft(ctx, u, int64(q.Limit))
	if err != nil {
		s.deny(ctx, u.caller, "data.api", u.r.Code, err)
		return Result{}, err
	}
	p.sel.Limit = int(limit) + 1
	res := Result{Resource: u.r.Code, Items: p.items, Names: p.names, Records: [][]*string{}}
	var last resource.Position
	more := false
	if key, ok := s.lookupKey(u.r, p, len(q.Filters)); ok {
		vals, found, err := s.lookups.get(ctx, s.res, u.r, p, key)
		if err != nil {
			return Result{}, err
		}
		if found {
			res.Records = append(res.Records, s.masked(p, vals))
		}
	} else {
		err = s.res.Select(ctx, u.r, p.sel, func(vals []*string, pos resource.Position) error {
			if int64(len(res.Records)) == limit {
				more = true
				return nil
			}
			res.Records = append(res.Records, s.masked(p, vals))
			last = pos
			return nil
		})
		if err != nil {
			return Result{}, err
		}
	}
	if more {
		res.Next = s.cursor(p.queryHash(), last)
	}
	filters := make([]string, len(q.Filters))
	for i, f := range q.Filters {
		filters[i] = f.Item + ":" + f.Op // the items and operators; values may be personal data
	}
	if err := s.record(ctx, u, "data.query", map[string]any{"items": p.items, "filters": filters, "records": len(res.Records)}); err != nil {
		return Result{}, err
	}
	return res, nil
}

// masked copies a row with each value masked by its rule; the values
// share one allocation.
func (s *Service) masked(p *plan, vals []*string) []*string {
	out := make([]*string, len(vals))
	strs := make([]string, len(vals))
	for i, v := range vals {
		if v == nil {
			continue
		}
		strs[i] = *v
		if m := p.masks[i]; m != nil {
			strs[i] = s.masker.Apply(*m, *v)
		}
		out[i] = &strs[i]
	}
	return out
}

// resource returns the mounted resource of code. Resources are kept by
// code for a second (Service.mounted), as the grants are (share.Service.
// Permit): a query then costs no reading of its resource, its entry and
// the entry's published version. A resource changes shape only when its
// entry publishes a new version, which the data services follow within
// the second.
func (s *Service) resource(ctx context.Context, code string) (resource.Resource, error) {
	return s.mounted.Get(ctx, code, func(ctx context.Context) (resource.Resource, error) { return s.res.ByCode(ctx, code) })
}
