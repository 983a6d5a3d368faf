package dataservice

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"

	"govshare/internal/apperr"
	"govshare/internal/catalog"
	"govshare/internal/quality"
	"govshare/internal/resource"
	"govshare/internal/store"
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
	p, missing := cp.reader().read(func(c resource.Column) (string, bool) {
		v, ok := rec[c.MachineName]
		return v, ok
	})
	switch {
	case missing == nil:
		return p, nil
	case missing.Key:
		return p, ErrVerifyKey.OnField(fmt.Sprintf("records[%d].%s", row, missing.MachineName)).OnRow(row + 1)
	}
	return p, ErrVerifyItems.With(fmt.Sprintf("记录缺少要比对的信息项 %s", missing.MachineName),
		fmt.Sprintf("the record lacks item %s to compare", missing.MachineName)).OnField(fmt.Sprintf("records[%d].%s", row, missing.MachineName)).OnRow(row + 1)
}

// probeReader makes probes of records, checking each record's values
// together in buffers it reuses; one goroutine uses it at a time.
type probeReader struct {
	cp          *comparison
	vals, canon []string
}

func (cp *comparison) reader() *probeReader {
	return &probeReader{cp: cp, vals: make([]string, cp.ncols), canon: make([]string, cp.ncols)}
}

// read makes the probe of one record, whose values get gives (and
// whether the record has the item at all). It returns the column the
// record lacks: a key that is missing or empty, or a compared item that
// is missing. A key value that cannot be stored is never found; an item
// value that cannot be read never matches.
func (pr *probeReader) read(get func(c resource.Column) (string, bool)) (Probe, *resource.Column) {
	cp := pr.cp
	p := Probe{Key: make([]string, len(cp.keys)), Values: make([]*string, len(cp.items))}
	clear(pr.vals)
	for i, k := range cp.keys {
		v, _ := get(k)
		if v = strings.TrimSpace(v); v == "" {
			return p, &cp.keys[i]
		}
		pr.vals[cp.keyAt[i]] = v
	}
	for i, c := range cp.items {
		v, ok := get(c)
		if !ok {
			return p, &cp.items[i]
		}
		pr.vals[cp.itemAt[i]] = v
	}
	bad := cp.chk.CheckInto(pr.canon, pr.vals, quality.Moment{})
	broken := func(c resource.Column) bool {
		return slices.ContainsFunc(bad, func(v quality.Violation) bool { return v.Item == c.MachineName })
	}
	for i, k := range cp.keys {
		p.Key[i] = pr.canon[cp.keyAt[i]]
		if len(bad) > 0 && broken(k) {
			p.Key[i] = unstorable + pr.vals[cp.keyAt[i]] // cannot be stored: not found
		}
	}
	for i, c := range cp.items {
		if len(bad) == 0 || !broken(c) {
			v := pr.canon[cp.itemAt[i]]
			p.Values[i] = &v
		}
	}
	return p, nil
}

// unstorable starts a key value no stored record can have.
const unstorable = "\x00"

// keyOf is the text a record is found by: its key values, joined.
func keyOf(key []string) string {
	if len(key) == 1 {
		return key[0]
	}
	return strings.Join(key, "\x00")
}

// probeSet is records to compare, as canonical values in flat slices:
// record i's key is keys[i*nk:(i+1)*nk] and its compared items
// vals[i*ni:(i+1)*ni]; an item value that could not be read is marked
// bad and never matches. A million records take a few allocations.
type probeSet struct {
	nk, ni int
	keys   []string
	vals   []string
	bad    []bool
	joined []string // keyOf each record, when the key has several items
}

func newProbeSet(nk, ni, n int) *probeSet {
	return &probeSet{nk: nk, ni: ni, keys: make([]string, 0, n*nk), vals: make([]string, 0, n*ni), bad: make([]bool, 0, n*ni)}
}

func (ps *probeSet) len() int { return len(ps.keys) / ps.nk }

// add appends a probe.
func (ps *probeSet) add(p Probe) {
	ps.keys = append(ps.keys, p.Key...)
	for _, v := range p.Values {
		if v == nil {
			ps.vals, ps.bad = append(ps.vals, ""), append(ps.bad, true)
		} else {
			ps.vals, ps.bad = append(ps.vals, *v), append(ps.bad, false)
		}
	}
}

// key is keyOf record i.
func (ps *probeSet) key(i int) string {
	if ps.nk == 1 {
		return ps.keys[i]
	}
	return ps.joined[i]
}

// answers are the results of comparing probes: whether each was found
// and, for each compared item, whether it matched.
type answers struct {
	items        int
	found, match []bool
}

// result is probe i's result.
func (a *answers) result(i int) string {
	if !a.found[i] {
		return NotFound
	}
	if slices.Contains(a.match[i*a.items:(i+1)*a.items], false) {
		return Mismatch
	}
	return Match
}

// compareProbes compares probes with the stored records, found by key
// within the grant's row scope. A single key (or a leading key that
// nearly tells records apart) is looked up with IN, in key order — so
// records near each other in the key index are read together — per
// keys to a statement and par statements at once; other keys record by
// record.
func (s *Service) compareProbes(ctx context.Context, u *use, cp *comparison, ps *probeSet, per, par int) (*answers, error) {
	n, nk, ni := ps.len(), ps.nk, ps.ni
	a := &answers{items: ni, found: make([]bool, n), match: make([]bool, n*ni)}
	if nk > 1 {
		ps.joined = make([]string, n)
		for i := range n {
			ps.joined[i] = keyOf(ps.keys[i*nk : (i+1)*nk])
		}
	}
	// The records that may be stored, in key order.
	order := make([]int32, 0, n)
	for i := range n {
		if !slices.ContainsFunc(ps.keys[i*nk:(i+1)*nk], func(k string) bool { return strings.HasPrefix(k, unstorable) }) {
			order = append(order, int32(i))
		}
	}
	slices.SortFunc(order, func(x, y int32) int { return strings.Compare(ps.key(int(x)), ps.key(int(y))) })
	// Each stored record answers the probes with its key; a record is
	// read once, so the answers of a probe are written once.
	answer := func(key []string) func(vals []*string, _ resource.Position) error {
		return func(vals []*string, _ resource.Position) error {
			for i := range nk {
				key[i] = ""
				if vals[i] != nil {
					key[i] = *vals[i]
				}
			}
			k := keyOf(key)
			for x, _ := slices.BinarySearchFunc(order, k, func(i int32, k string) int { return strings.Compare(ps.key(int(i)), k) }); x < len(order) && ps.key(int(order[x])) == k; x++ {
				i := int(order[x])
				a.found[i] = true
				for j := range ni {
					a.match[i*ni+j] = !ps.bad[i*ni+j] && same(ps.vals[i*ni+j], vals[nk+j])
				}
			}
			return nil
		}
	}
	var lead []string
	if nk == 1 {
		for x, i := range order {
			if x == 0 || ps.keys[i] != ps.keys[order[x-1]] {
				lead = append(lead, ps.keys[i])
			}
		}
	} else {
		seen := make(map[string]bool)
		for _, i := range order {
			if k := ps.keys[int(i)*nk]; !seen[k] {
				seen[k] = true
				lead = append(lead, k)
			}
		}
		slices.Sort(lead)
	}
	cols := append(slices.Clone(cp.keys), cp.items...)
	var stmts []resource.Selection
	if nk == 1 || len(lead)*4 >= len(order) {
		for lo := 0; lo < len(lead); lo += per {
			stmts = append(stmts, resource.Selection{Columns: cols,
				Where: append([]resource.Cond{{Column: cp.keys[0], Op: "in", Values: lead[lo:min(lo+per, len(lead))]}}, cp.scope...)})
		}
	} else {
		for x, i := range order {
			if x > 0 && ps.key(int(i)) == ps.key(int(order[x-1])) {
				continue
			}
			where := slices.Clone(cp.scope)
			for j, k := range cp.keys {
				where = append(where, resource.Cond{Column: k, Op: "eq", Values: []string{ps.keys[int(i)*nk+j]}})
			}
			stmts = append(stmts, resource.Selection{Columns: cols, Where: where})
		}
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		next int
	)
	for range min(par, len(stmts)) {
		wg.Go(func() {
			fn := answer(make([]string, nk))
			for ctx.Err() == nil {
				mu.Lock()
				if next == len(stmts) {
					mu.Unlock()
					return
				}
				sel := stmts[next]
				next++
				mu.Unlock()
				if err := s.res.Select(ctx, u.r, sel, fn); err != nil {
					cancel(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err := context.Cause(ctx); err != nil {
		return nil, err
	}
	return a, nil
}

// keysPerStatement is how many keys one statement looks up. PostgreSQL's
// planner reads the whole table rather than the key index once the keys
// are more than about a thousandth of the records (a million records at
// 5,000 keys), which is many times slower when the table is cached, so
// statements stay below that; SQLite always uses the index.
func (s *Service) keysPerStatement(r resource.Resource) int {
	if s.db.Dialect() == store.Postgres {
		return int(min(MaxVerify, max(100, r.RecordCount/1000)))
	}
	return MaxVerify
}

// compare answers probes against the store.
func (s *Service) compare(ctx context.Context, u *use, cp *comparison, probes []Probe, first int, out []VerifyAnswer) ([]VerifyAnswer, error) {
	ps := newProbeSet(len(cp.keys), len(cp.items), len(probes))
	for _, p := range probes {
		ps.add(p)
	}
	a, err := s.compareProbes(ctx, u, cp, ps, s.keysPerStatement(u.r), 1)
	if err != nil {
		return nil, err
	}
	for i := range probes {
		v := VerifyAnswer{Index: first + i, Result: a.result(i)}
		if v.Result != NotFound {
			v.Items = make(map[string]string, len(cp.items))
			for j, c := range cp.items {
				v.Items[c.MachineName] = Mismatch
				if a.match[i*a.items+j] {
					v.Items[c.MachineName] = Match
				}
			}
		}
		out = append(out, v)
	}
	return out, nil
}

// same compares a readable given value with a stored one: an empty
// given value matches an empty stored one.
func same(given string, stored *string) bool {
	if stored == nil {
		return given == ""
	}
	return given == *stored
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
		if _, ok := u.granted(c.MachineName); !ok {
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
