package source

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"
)

// engine is one backend: a SQL database or a CSV folder. source builds
// every streaming operation on its scan.
type engine interface {
	test(ctx context.Context) error
	tables(ctx context.Context) ([]Table, error)
	columns(ctx context.Context, t Table) ([]Column, error)
	// describe returns every column of q's table or result, with the
	// table's primary-key positions (q.Columns and q.Key not applied).
	describe(ctx context.Context, q Query) ([]Column, error)
	now(ctx context.Context) (time.Time, error)
	// scan streams p's columns for the rows whose key (p.key) lies in r,
	// in key order.
	scan(ctx context.Context, p *plan, r KeyRange, each func(Row) error) error
	// window streams p's rows whose column tc lies in (from, upper] (from
	// zero: no lower bound), ordered by it and then by key.
	window(ctx context.Context, p *plan, tc int, from, upper time.Time, each func(Row) error) error
	// precision is the finest time step window compares at.
	precision() time.Duration
	close() error
}

// plan is a query resolved against the source: the columns it reads, in
// output order, and which of them form the key.
type plan struct {
	q     Query
	cols  []Column
	names []string
	key   []int // indexes into cols, in key order
	order KeyOrder
}

func (p *plan) keyOf(r Row) (Key, error) {
	return p.keyInto(make(Key, len(p.key)), r)
}

// keyInto fills k with r's key.
func (p *plan) keyInto(k Key, r Row) (Key, error) {
	for i, c := range p.key {
		if r[c].Null {
			return nil, fmt.Errorf("%w: key column %s is NULL in a row of %s", ErrNoKey, p.cols[c].Name, p.q)
		}
		k[i] = r[c].Text
	}
	return k, nil
}

type source struct{ e engine }

func (s *source) Test(ctx context.Context) error              { return s.e.test(ctx) }
func (s *source) Tables(ctx context.Context) ([]Table, error) { return s.e.tables(ctx) }
func (s *source) Now(ctx context.Context) (time.Time, error)  { return s.e.now(ctx) }
func (s *source) Close() error                                { return s.e.close() }

func (s *source) Columns(ctx context.Context, t Table) ([]Column, error) {
	return s.e.columns(ctx, t)
}

func (s *source) Describe(ctx context.Context, q Query) ([]Column, error) {
	p, err := s.plan(ctx, q, nil, false)
	if err != nil {
		return nil, err
	}
	return p.cols, nil
}

// plan resolves q: its columns (all when q.Columns is empty), then each
// key column and extra column q.Columns does not list; the key is q.Key or
// else the table's primary key, unless key overrides both.
func (s *source) plan(ctx context.Context, q Query, key []string, needKey bool, extra ...string) (*plan, error) {
	if q.SQL == "" && q.Table.Name == "" {
		return nil, fmt.Errorf("%w: give a table or a custom SELECT", ErrBadQuery)
	}
	all, err := s.e.describe(ctx, q)
	if err != nil {
		return nil, err
	}
	find := func(name string) int {
		if i := slices.IndexFunc(all, func(c Column) bool { return c.Name == name }); i >= 0 {
			return i
		}
		i, n := -1, 0
		for j, c := range all {
			if strings.EqualFold(c.Name, name) {
				i, n = j, n+1
			}
		}
		if n == 1 {
			return i
		}
		return -1
	}
	if key == nil {
		key = q.Key
	}
	if len(key) > 0 {
		for i := range all {
			all[i].Key = 0
		}
		for i, k := range key {
			j := find(k)
			if j < 0 {
				return nil, fmt.Errorf("%w: key column %q is not in %s", ErrBadQuery, k, q)
			}
			all[j].Key = i + 1
		}
	}
	var idx []int
	add := func(j int) {
		if !slices.Contains(idx, j) {
			idx = append(idx, j)
		}
	}
	if len(q.Columns) == 0 {
		for j := range all {
			add(j)
		}
	}
	for _, name := range q.Columns {
		j := find(name)
		if j < 0 {
			return nil, fmt.Errorf("%w: column %q is not in %s", ErrBadQuery, name, q)
		}
		add(j)
	}
	for j, c := range all {
		if c.Key > 0 {
			add(j)
		}
	}
	for _, name := range extra {
		j := find(name)
		if j < 0 {
			return nil, fmt.Errorf("%w: column %q is not in %s", ErrBadQuery, name, q)
		}
		add(j)
	}
	p := &plan{q: q}
	for _, j := range idx {
		p.cols = append(p.cols, all[j])
		p.names = append(p.names, all[j].Name)
	}
	p.order = OrderOf(p.cols)
	p.key = make([]int, len(p.order))
	for i, c := range p.cols {
		if c.Key > 0 {
			p.key[c.Key-1] = i
		}
	}
	if needKey && len(p.key) == 0 {
		return nil, fmt.Errorf("%w: %s has no primary key; choose the key columns", ErrNoKey, q)
	}
	return p, nil
}

// keysOnly is the plan that reads p's key columns alone.
func (p *plan) keysOnly() *plan {
	kp := &plan{q: p.q, order: p.order}
	for i, k := range p.key {
		c := p.cols[k]
		c.Key = i + 1
		kp.cols = append(kp.cols, c)
		kp.names = append(kp.names, c.Name)
		kp.key = append(kp.key, i)
	}
	return kp
}

// chunker collects rows into chunks for a ChunkFunc.
type chunker struct {
	cols []string
	size int
	rows []Row
	fn   ChunkFunc
}

func newChunker(cols []string, size int, fn ChunkFunc) *chunker {
	size = max(size, 1)
	return &chunker{cols: cols, size: size, fn: fn, rows: make([]Row, 0, min(size, 4096))}
}

func (c *chunker) add(r Row) error {
	c.rows = append(c.rows, r)
	if len(c.rows) >= c.size {
		return c.flush()
	}
	return nil
}

func (c *chunker) flush() error {
	if len(c.rows) == 0 {
		return nil
	}
	rows := c.rows
	c.rows = make([]Row, 0, cap(c.rows))
	return c.fn(Chunk{Columns: c.cols, Rows: rows})
}

// ordered streams p's rows in r and checks that each key sorts after the
// one before, so that a collation or a duplicate that would break a merge
// with another source fails loudly instead. The key passed to each is
// valid during the call only: clone it to keep it.
func (s *source) ordered(ctx context.Context, p *plan, r KeyRange, each func(Row, Key) error) error {
	prev, cur := make(Key, len(p.key)), make(Key, len(p.key))
	first := true
	return s.e.scan(ctx, p, r, func(row Row) error {
		k, err := p.keyInto(cur, row)
		if err != nil {
			return err
		}
		if !first && p.order.Compare(prev, k) >= 0 {
			return fmt.Errorf("%w: %s came after %s in %s", ErrKeyOrder, k, prev, p.q)
		}
		first = false
		prev, cur = cur, prev
		return each(row, k)
	})
}

func (s *source) Full(ctx context.Context, q Query, chunk int, fn ChunkFunc) error {
	p, err := s.plan(ctx, q, nil, true)
	if err != nil {
		return err
	}
	c := newChunker(p.names, chunk, fn)
	if err := s.ordered(ctx, p, KeyRange{}, func(r Row, _ Key) error { return c.add(r) }); err != nil {
		return err
	}
	return c.flush()
}

func (s *source) SinceKey(ctx context.Context, q Query, keyColumn, after string, chunk int, fn ChunkFunc) (string, error) {
	p, err := s.plan(ctx, q, []string{keyColumn}, true, keyColumn)
	if err != nil {
		return after, err
	}
	var r KeyRange
	if after != "" {
		r.After = Key{after}
	}
	last := after
	c := newChunker(p.names, chunk, func(ch Chunk) error {
		if err := fn(ch); err != nil {
			return err
		}
		// The mark moves only past rows the callback took.
		last = ch.Rows[len(ch.Rows)-1][p.key[0]].Text
		return nil
	})
	if err := s.ordered(ctx, p, r, func(r Row, _ Key) error { return c.add(r) }); err != nil {
		return last, err
	}
	return last, c.flush()
}

func (s *source) Keys(ctx context.Context, q Query, chunk int, fn func([]Key) error) error {
	p, err := s.plan(ctx, q, nil, true)
	if err != nil {
		return err
	}
	p = p.keysOnly()
	chunk = max(chunk, 1)
	keys := make([]Key, 0, min(chunk, 4096))
	err = s.ordered(ctx, p, KeyRange{}, func(_ Row, k Key) error {
		keys = append(keys, slices.Clone(k))
		if len(keys) < chunk {
			return nil
		}
		err := fn(keys)
		keys = make([]Key, 0, cap(keys))
		return err
	})
	if err != nil || len(keys) == 0 {
		return err
	}
	return fn(keys)
}

// maxChunkFactor bounds a content-defined chunk at this many times the
// chunk size, for long runs of keys that never hash to a boundary.
const maxChunkFactor = 4

func (s *source) Checksums(ctx context.Context, q Query, chunkSize int) ([]ChunkSum, error) {
	p, err := s.plan(ctx, q, nil, true)
	if err != nil {
		return nil, err
	}
	sm := NewSummer(chunkSize)
	err = s.ordered(ctx, p, KeyRange{}, func(r Row, k Key) error {
		sm.Add(k, r)
		return nil
	})
	if err != nil {
		return nil, err
	}
	sm.Flush()
	return sm.Sums(), nil
}

// boundary says a chunk ends after the key encoded in k: its hash is 0
// modulo the chunk size. FNV-1a, then a 64-bit finaliser so that the low
// bits mix well.
func boundary(k []byte, size int) bool {
	if size <= 1 {
		return true
	}
	h := uint64(14695981039346656037)
	for _, c := range k {
		h ^= uint64(c)
		h *= 1099511628211
	}
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return h%uint64(size) == 0
}

func (s *source) KeyHashes(ctx context.Context, q Query, r KeyRange, chunk int, fn func([]KeyHash) error) error {
	p, err := s.plan(ctx, q, nil, true)
	if err != nil {
		return err
	}
	chunk = max(chunk, 1)
	var buf []byte
	out := make([]KeyHash, 0, min(chunk, 4096))
	err = s.ordered(ctx, p, r, func(row Row, k Key) error {
		var h string
		h, buf = rowHash(buf, row)
		out = append(out, KeyHash{Key: slices.Clone(k), Hash: h})
		if len(out) < chunk {
			return nil
		}
		err := fn(out)
		out = make([]KeyHash, 0, cap(out))
		return err
	})
	if err != nil || len(out) == 0 {
		return err
	}
	return fn(out)
}
