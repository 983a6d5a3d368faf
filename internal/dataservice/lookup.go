package dataservice

import (
	"context"
	"strings"
	"sync"

	"govshare/internal/resource"
	"govshare/internal/store"
)

// Keyed lookups — a query that asks for one record by its key, the most
// common call of a consumer's system — are read together: lookups of the
// same resource, items and row scope that arrive while the group's reads
// are under way wait and go into the next read as one statement
// (key = ANY(…)), as the nonce ledger and the audit log group their
// commits. A group has up to maxReads reads under way; one, since a
// second (a batch gathered while the one before is read) cost
// PostgreSQL 15–25 µs more a lookup in smaller batches than it saved, on
// a machine whose cores were busy. A lone lookup is read at once,
// as before; under load PostgreSQL runs one statement for many lookups
// instead of one each, which costs it a fraction per key (one plan, one
// round trip, one executor start). Found and not found are told apart
// after the read, for every lookup of the batch alike.
type lookups struct {
	mu     sync.Mutex
	groups map[string]*lookupGroup
}

type lookupGroup struct {
	queue   []*lookup // waiting, in arrival order
	reading int       // reads under way
}

type lookup struct {
	key string
	res chan lookupResult // one message: the lookup's answer, or lead
}

type lookupResult struct {
	vals  []*string // the record's values, its own copy; nil: not found
	err   error
	lead  bool // the lookup now reads the next batch for the group
	found bool
}

const (
	maxLookups = 256 // keys in one statement
	maxReads   = 1   // reads of a group under way at once
)

func newLookups() *lookups { return &lookups{groups: map[string]*lookupGroup{}} }

// lookupKey reports the key value when p is a keyed lookup that can be
// read with others: one filter, eq on the resource's only key item, a
// character item, no sort, no cursor, on PostgreSQL.
func (s *Service) lookupKey(r resource.Resource, p *plan, filters int) (string, bool) {
	if s.db == nil || s.db.Dialect() != store.Postgres || filters != 1 || p.sel.SortBy != nil || p.sel.After != nil {
		return "", false
	}
	keys := r.Keys()
	c := p.sel.Where[0]
	if len(keys) != 1 || keys[0].DataType != "C" || c.Op != "eq" || len(c.Values) != 1 || c.Column.MachineName != keys[0].MachineName {
		return "", false
	}
	return c.Values[0], true
}

// groupKey names the statement a lookup's batch runs: the table and its
// shape, the items read, the row scope.
func groupKey(r resource.Resource, p *plan) string {
	var b strings.Builder
	b.WriteString(r.Table)
	b.WriteByte(0)
	for _, c := range p.sel.Columns {
		b.WriteString(c.MachineName)
		b.WriteByte(',')
	}
	for _, c := range p.sel.Where[1:] { // the row scope
		b.WriteByte(0)
		b.WriteString(c.Column.MachineName)
		b.WriteByte(' ')
		b.WriteString(c.Op)
		for _, v := range c.Values {
			b.WriteByte(0)
			b.WriteString(v)
		}
	}
	return b.String()
}

// get reads the record of key with the other lookups of its group.
func (l *lookups) get(ctx context.Context, res Resources, r resource.Resource, p *plan, key string) ([]*string, bool, error) {
	gk := groupKey(r, p)
	me := &lookup{key: key, res: make(chan lookupResult, 1)}
	l.mu.Lock()
	g := l.groups[gk]
	if g == nil {
		g = &lookupGroup{}
		l.groups[gk] = g
	}
	if g.reading < maxReads {
		g.reading++ // a read of its own, with whoever waits
	} else {
		g.queue = append(g.queue, me)
		l.mu.Unlock()
		out := <-me.res
		if !out.lead {
			return out.vals, out.found, out.err
		}
		// A finished read handed its place to this lookup, taken out of
		// the queue (so no other read holds it) and still counted.
		l.mu.Lock()
	}
	n := min(len(g.queue), maxLookups-1)
	batch := make([]*lookup, 0, n+1)
	batch = append(append(batch, me), g.queue[:n]...)
	g.queue = g.queue[n:]
	l.mu.Unlock()

	// A caller's cancelled request must not abort the others' read.
	l.read(context.WithoutCancel(ctx), res, r, p, batch)

	l.mu.Lock()
	if len(g.queue) > 0 {
		next := g.queue[0]
		g.queue = g.queue[1:]
		next.res <- lookupResult{lead: true} // the place passes on: reading stays
	} else if g.reading--; g.reading == 0 {
		delete(l.groups, gk)
	}
	l.mu.Unlock()
	out := <-me.res
	return out.vals, out.found, out.err
}

// read runs one statement for a batch of lookups and answers each.
func (l *lookups) read(ctx context.Context, res Resources, r resource.Resource, p *plan, batch []*lookup) {
	keys := make([]string, 0, len(batch))
	byKey := make(map[string][]*lookup, len(batch))
	for _, lk := range batch {
		if byKey[lk.key] == nil {
			keys = append(keys, lk.key)
		}
		byKey[lk.key] = append(byKey[lk.key], lk)
	}
	sel := resource.Selection{Columns: p.sel.Columns, Where: make([]resource.Cond, 0, len(p.sel.Where))}
	sel.Where = append(sel.Where, resource.Cond{Column: p.sel.Where[0].Column, Op: "any", Values: keys})
	sel.Where = append(sel.Where, p.sel.Where[1:]...)
	out := make(map[*lookup][]*string, len(batch))
	err := res.Select(ctx, r, sel, func(vals []*string, pos resource.Position) error {
		// Each lookup gets its own copy: the caller masks it in place.
		for _, lk := range byKey[pos.Keys[0]] {
			rec, strs := make([]*string, len(vals)), make([]string, len(vals))
			for i, x := range vals {
				if x != nil {
					strs[i] = *x
					rec[i] = &strs[i]
				}
			}
			out[lk] = rec
		}
		return nil
	})
	for _, lk := range batch {
		rec, ok := out[lk]
		if err != nil || !ok {
			lk.res <- lookupResult{err: err}
			continue
		}
		lk.res <- lookupResult{vals: rec, found: true}
	}
}
