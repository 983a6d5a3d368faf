package resource

import (
	"hash/maphash"
	"strconv"
	"testing"
)

// TestSeenNeverMissesARepeatAndStaysBounded: every value added twice is
// reported the second time; few new values are taken for repeats; memory
// stops growing at its bound.
func TestSeenNeverMissesARepeatAndStaysBounded(t *testing.T) {
	s := newSeen()
	seed := maphash.MakeSeed()
	h := func(i int) uint64 { return maphash.String(seed, strconv.Itoa(i)) }
	const n = 1_000_000
	falsePositives := 0
	for i := range n {
		if s.add(h(i)) {
			falsePositives++
		}
		if i%3 == 0 && !s.add(h(i)) {
			t.Fatalf("value %d added again was not seen", i)
		}
	}
	for i := range n {
		if !s.add(h(i)) {
			t.Fatalf("value %d was forgotten", i)
		}
	}
	if falsePositives > n/100 {
		t.Errorf("%d of %d new values taken for repeats", falsePositives, n)
	}
	if s.bits > maxSeenBits {
		t.Errorf("%d bits, more than %d", s.bits, maxSeenBits)
	}
	for i := n; i < 4*n; i++ {
		s.add(h(i))
	}
	if s.bits != maxSeenBits {
		t.Errorf("%d bits after %d values, want the bound %d", s.bits, 4*n, maxSeenBits)
	}
}
