package dataservice

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"govshare/internal/resource"
)

// slowPeople answers key = ANY(…) reads slowly, knows the keys below
// 1000, and counts the reads under way at once.
type slowPeople struct {
	now, most atomic.Int32
	reads     atomic.Int32
}

func (s *slowPeople) ByCode(context.Context, string) (resource.Resource, error) {
	return resource.Resource{}, nil
}

func (s *slowPeople) Count(context.Context, resource.Resource, []resource.Cond) (int64, error) {
	return 0, nil
}

func (s *slowPeople) Select(_ context.Context, _ resource.Resource, sel resource.Selection, fn func([]*string, resource.Position) error) error {
	n := s.now.Add(1)
	defer s.now.Add(-1)
	for {
		m := s.most.Load()
		if n <= m || s.most.CompareAndSwap(m, n) {
			break
		}
	}
	s.reads.Add(1)
	time.Sleep(2 * time.Millisecond)
	for _, k := range sel.Where[0].Values {
		if i, _ := strconv.Atoi(k); i < 1000 {
			v := "v" + k
			if err := fn([]*string{&v}, resource.Position{Keys: []string{k}}); err != nil {
				return err
			}
		}
	}
	return nil
}

// Many lookups at once: each gets its own record (or not found), never
// more than maxReads reads of the group are under way, and they are
// fewer than the lookups.
func TestLookupsShareReadsAndAnswerEachOnce(t *testing.T) {
	l := newLookups()
	src := &slowPeople{}
	key := resource.Column{MachineName: "k", DataType: "C", Key: true}
	p := &plan{sel: resource.Selection{Columns: []resource.Column{key}, Where: []resource.Cond{{Column: key, Op: "eq"}}}}
	var wg sync.WaitGroup
	const n = 2000
	for i := range n {
		wg.Go(func() {
			k := strconv.Itoa(i % 1200)
			vals, found, err := l.get(context.Background(), src, resource.Resource{Table: "people"}, p, k)
			switch {
			case err != nil:
				t.Error(err)
			case (i%1200 < 1000) != found:
				t.Errorf("key %s found %v", k, found)
			case found && (len(vals) != 1 || *vals[0] != "v"+k):
				t.Errorf("key %s got %d values", k, len(vals))
			}
		})
	}
	wg.Wait()
	if m := src.most.Load(); m > maxReads {
		t.Fatalf("%d reads at once, at most %d", m, maxReads)
	}
	if r := src.reads.Load(); r >= n/2 {
		t.Fatalf("%d reads for %d lookups: not read together", r, n)
	}
	if len(l.groups) != 0 {
		t.Fatalf("%d groups left behind", len(l.groups))
	}
	t.Logf("%d lookups in %d reads, %d at once at most", n, src.reads.Load(), src.most.Load())
}
