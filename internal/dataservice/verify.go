package dataservice

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"govshare/internal/apperr"
	"govshare/internal/catalog"
	"govshare/internal/quality"
	"govshare/internal/resource"
)

// VerifyRequest is a comparison (数据比对): records the consumer holds,
// each with the resource's key items to find the stored record by, and
// the items to compare.
type VerifyRequest struct {
	Items   []string            `json:"items" doc:"要比对的信息项(字段名) / items to compare"`
	Records []map[string]string `json:"records" doc:"待比对的记录：主键信息项及要比对的信息项 / records: the key items and the items to compare"`
}

// Results of a comparison.
const (
	Match    = "match"
	Mismatch = "mismatch"
	NotFound = "not_found"
)

// VerifyAnswer is the answer for one record: match when every compared
// item matches, mismatch with the result of each item, or not found. It
// never holds a stored value.
type VerifyAnswer struct {
	Index  int               `json:"index" doc:"记录序号(从0起) / the record's index, from 0"`
	Result string            `json:"result" enum:"match,mismatch,not_found" doc:"一致 / 不一致 / 未找到"`
	Items  map[string]string `json:"items,omitempty" doc:"逐项结果 match / mismatch / per item"`
}

// VerifyResult answers a comparison.
type VerifyResult struct {
	Resource   string         `json:"resource"`
	Items      []string       `json:"items"`
	Matched    int64          `json:"matched"`
	Mismatched int64          `json:"mismatched"`
	NotFound   int64          `json:"not_found"`
	Records    []VerifyAnswer `json:"records"`
}

// MaxVerify is the most records one synchronous comparison takes; more
// go to a comparison job.
const MaxVerify = 1000

// Errors of comparisons.
var (
	ErrVerifyItems   = apperr.Invalid("data.verify_items", "items", "请选择要比对的信息项(不含主键)", "choose the items to compare (besides the key)")
	ErrVerifyRecords = apperr.Invalid("data.verify_records", "records", fmt.Sprintf("请提交1至%d条记录；更多记录请创建比对任务", MaxVerify),
		fmt.Sprintf("send 1 to %d records; create a comparison job for more", MaxVerify))
	ErrVerifyKey = apperr.Invalid("data.verify_key_missing", "records", "每条记录都须含全部主键信息项", "every record must hold all the key items")
)

// comparison is a verify plan: the key to find records by and the items
// to compare, at their positions among the visible columns.
type comparison struct {
	keys, items []resource.Column
	keyAt       []int
	itemAt      []int
	ncols       int
	chk         *quality.Checker
	scope       []resource.Cond
}

// Probe is one record to compare, as canonical values: the key, then the
// items; a nil item value could not be read and never matches.
type Probe struct {
	Key    []string
	Values []*string
}

// prepareVerify checks the items and builds the comparison.
func (s *Service) prepareVerify(u *use, items []string) (*comparison, error) {
	chk, visible, err := s.checker(u.r)
	if err != nil {
		return nil, err
	}
	cp := &comparison{chk: chk, ncols: len(visible)}
	for i, c := range visible {
		if c.Key {
			cp.keys, cp.keyAt = append(cp.keys, c), append(cp.keyAt, i)
		}
	}
	for _, it := range items {
		i := slices.IndexFunc(visible, func(c resource.Column) bool { return c.MachineName == it })
		if i < 0 {
			return nil, ErrItemName.OnField("items")
		}
		if visible[i].Key || slices.ContainsFunc(cp.items, func(c resource.Column) bool { return c.MachineName == it }) {
			continue
		}
		cp.items, cp.itemAt = append(cp.items, visible[i]), append(cp.itemAt, i)
	}
	if len(cp.items) == 0 {
		return nil, ErrVerifyItems
	}
	if cp.scope, err = scopeCond(u.r, u.permit); err != nil {
		return nil, err
	}
	return cp, nil
}

// probe reads one record given by item name; row is its index for errors.
func (cp *comparison) probe(rec map[string]string, row int) (Probe, error) {
	p := Probe{Key: make([]string, len(cp.keys)), Values: make([]*string, len(cp.items))}
	for i, k := range cp.keys {
		v := strings.TrimSpace(rec[k.MachineName])
		if v == "" {
			return p, ErrVerifyKey.OnField(fmt.Sprintf("records[%d].%s", row, k.MachineName)).OnRow(row + 1)
		}
		cv, bad := canonical(cp.chk, cp.ncols, cp.keyAt[i], v)
		if bad != nil {
			cv = "\x00" + v // cannot be stored: not found
		}
		p.Key[i] = cv
	}
	for i, c := range cp.items {
		v, ok := rec[c.MachineName]
		if !ok {
			return p, ErrVerifyItems.With(fmt.Sprintf("记录缺少要比对的信息项 %s", c.MachineName),
				fmt.Sprintf("the record lacks item %s to compare", c.MachineName)).OnField(fmt.Sprintf("records[%d].%s", row, c.MachineName)).OnRow(row + 1)
		}
		if cv, bad := canonical(cp.chk, cp.ncols, cp.itemAt[i], v); bad == nil {
			p.Values[i] = &cv
		}
	}
	return p, nil
}

// compare answers probes against the store: at most a few hundred per
// statement, found by key within the grant's row scope.
func (s *Service) compare(ctx context.Context, u *use, cp *comparison, probes []Probe, first int, out []VerifyAnswer) ([]VerifyAnswer, error) {
	stored := make(map[string][]*string, len(probes))
	cols := append(slices.Clone(cp.keys), cp.items...)
	nk := len(cp.keys)
	keep := func(vals []*string, _ resource.Position) error {
		k := make([]string, nk)
		for i := range nk {
			if vals[i] != nil {
				k[i] = *vals[i]
			}
		}
		row := make([]*string, len(cp.items))
		for i := range cp.items {
			if v := vals[nk+i]; v != nil {
				x := *v
				row[i] = &x
			}
		}
		stored[strings.Join(k, "\x00")] = row
		return nil
	}
	if nk == 1 {
		const chunk = 500
		for lo := 0; lo < len(probes); lo += chunk {
			hi := min(lo+chunk, len(probes))
			vals := make([]string, 0, hi-lo)
			for _, p := range probes[lo:hi] {
				if !strings.HasPrefix(p.Key[0], "\x00") {
					vals = append(vals, p.Key[0])
				}
			}
			if len(vals) == 0 {
				continue
			}
			sel := resource.Selection{Columns: cols, Where: append([]resource.Cond{{Column: cp.keys[0], Op: "in", Values: vals}}, cp.scope...)}
			if err := s.res.Select(ctx, u.r, sel, keep); err != nil {
				return nil, err
			}
		}
	} else {
		for _, p := range probes {
			where := slices.Clone(cp.scope)
			bad := false
			for i, k := range cp.keys {
				bad = bad || strings.HasPrefix(p.Key[i], "\x00")
				where = append(where, resource.Cond{Column: k, Op: "eq", Values: []string{p.Key[i]}})
			}
			if bad {
				continue
			}
			if err := s.res.Select(ctx, u.r, resource.Selection{Columns: cols, Where: where}, keep); err != nil {
				return nil, err
			}
		}
	}
	for i, p := range probes {
		a := VerifyAnswer{Index: first + i, Result: NotFound}
		if row, ok := stored[strings.Join(p.Key, "\x00")]; ok {
			a.Result, a.Items = Match, make(map[string]string, len(cp.items))
			for j, c := range cp.items {
				if same(p.Values[j], row[j]) {
					a.Items[c.MachineName] = Match
				} else {
					a.Items[c.MachineName], a.Result = Mismatch, Mismatch
				}
			}
		}
		out = append(out, a)
	}
	return out, nil
}

// same compares a given value with a stored one: an empty given value
// matches an empty stored one; a value that could not be read matches
// nothing.
func same(given, stored *string) bool {
	if given == nil {
		return false
	}
	if stored == nil {
		return *given == ""
	}
	return *given == *stored
}

// Verify compares up to MaxVerify records with the stored ones and
// answers match / mismatch per item / not found, never the data. The
// comparison's counts are audited (durably) before it answers.
func (s *Service) Verify(ctx context.Context, c Caller, code string, req VerifyRequest) (VerifyResult, error) {
	u, err := s.begin(ctx, c, code, catalog.MethodVerify, nil)
	if err != nil {
		return VerifyResult{}, err
	}
	res, err := s.verify(ctx, u, req)
	s.usage.add(u, 1, int64(len(res.Records)), err)
	return res, err
}

func (s *Service) verify(ctx context.Context, u *use, req VerifyRequest) (VerifyResult, error) {
	fail := func(err error) (VerifyResult, error) {
		s.deny(ctx, u.caller, "data.verify", u.r.Code, err)
		return VerifyResult{}, err
	}
	cp, err := s.prepareVerify(u, req.Items)
	if err != nil {
		return fail(err)
	}
	for _, c := range append(slices.Clone(cp.keys), cp.items...) {
		if _, ok := u.granted[c.MachineName]; !ok {
			return fail(itemRefused(c.MachineName, catalog.MethodVerify, "items"))
		}
	}
	if len(req.Records) == 0 || len(req.Records) > MaxVerify {
		return fail(ErrVerifyRecords)
	}
	probes := make([]Probe, len(req.Records))
	for i, rec := range req.Records {
		if probes[i], err = cp.probe(rec, i); err != nil {
			return fail(err)
		}
	}
	if err := s.admit(u); err != nil {
		return fail(err)
	}
	if err := s.verifyAllowed(ctx, u, int64(len(probes))); err != nil {
		return fail(err)
	}
	answers, err := s.compare(ctx, u, cp, probes, 0, make([]VerifyAnswer, 0, len(probes)))
	if err != nil {
		return VerifyResult{}, err
	}
	res := VerifyResult{Resource: u.r.Code, Records: answers}
	for _, c := range cp.items {
		res.Items = append(res.Items, c.MachineName)
	}
	for _, a := range answers {
		switch a.Result {
		case Match:
			res.Matched++
		case Mismatch:
			res.Mismatched++
		default:
			res.NotFound++
		}
	}
	if err := s.record(ctx, u, "data.verify", map[string]any{"items": res.Items, "records": len(answers),
		"matched": res.Matched, "mismatched": res.Mismatched, "not_found": res.NotFound}); err != nil {
		return VerifyResult{}, err
	}
	return res, nil
}
