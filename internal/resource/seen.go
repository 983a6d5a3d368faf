package resource

import (
	"encoding/binary"
	"errors"
	"hash/maphash"
	"math"
	"strconv"
)

// seen remembers, approximately, the values read so far (a Bloom filter):
// a value it has not seen is certainly new; one it has seen is probably a
// repeat, and the database decides exactly, over those values only. So
// finding keys repeated in a batch, or values of an item that must be
// unique, needs no sort of the whole batch.
//
// It starts small and grows by adding larger filters up to maxSeenBits in
// all, then stops growing: memory stays bounded whatever the size of the
// batch, and past some tens of millions of values more of them are
// "probably repeats", which costs the database more work, never a wrong
// answer.
type seen struct {
	filters []bloom
	bits    int // in all filters
}

type bloom struct {
	words       []uint64
	n, capacity int
}

const (
	firstSeenBits = 1 << 16
	maxSeenBits   = 1 << 26 // 8 MB
	seenHashes    = 4
)

func newSeen() *seen { return &seen{} }

// add records the value hashed to h and reports whether it was probably
// seen before.
func (s *seen) add(h uint64) bool {
	for i := range s.filters {
		if s.filters[i].has(h) {
			return true
		}
	}
	if len(s.filters) == 0 || s.filters[len(s.filters)-1].n >= s.filters[len(s.filters)-1].capacity && s.bits < maxSeenBits {
		size := firstSeenBits << (2 * len(s.filters))
		if s.bits+size > maxSeenBits {
			size = maxSeenBits - s.bits
		}
		// About 20 bits a value keeps false positives near 0.2 % with
		// four hashes.
		s.filters = append(s.filters, bloom{words: make([]uint64, size/64), capacity: size / 20})
		s.bits += size
	}
	s.filters[len(s.filters)-1].set(h)
	return false
}

func (b *bloom) positions(h uint64, fn func(word int, bit uint64) bool) bool {
	m := uint64(len(b.words) * 64)
	h1, h2 := h, h>>32|1
	for i := range uint64(seenHashes) {
		p := (h1 + i*h2) % m
		if !fn(int(p/64), 1<<(p%64)) {
			return false
		}
	}
	return true
}

func (b *bloom) has(h uint64) bool {
	return b.positions(h, func(w int, bit uint64) bool { return b.words[w]&bit != 0 })
}

func (b *bloom) set(h uint64) {
	b.positions(h, func(w int, bit uint64) bool { b.words[w] |= bit; return true })
	b.n++
}

// repeats watches for values that repeat within a batch: the key, and
// each item that must be unique.
type repeatWatch struct {
	seed maphash.Seed
	// watches[0] is the key; then one per unique item.
	watches []watch
}

type watch struct {
	cols    []int // positions in the visible columns
	types   []byte
	upserts bool  // only upserts with a value count (unique items)
	seen    *seen // nil: the filter cannot tell for these types
	marked  int64 // rows it took for repeats
}

// newRepeatWatch watches the key and the unique items. A watch whose
// columns include date-times or binary values is left off: equal values
// in the database may be written differently (a date-time is rounded to
// microseconds by PostgreSQL), and the filter must never miss a repeat.
func newRepeatWatch(cols []Column, keys []int, unique []int) *repeatWatch {
	rw := &repeatWatch{seed: maphash.MakeSeed()}
	add := func(pos []int, upserts bool) {
		w := watch{cols: pos, upserts: upserts, seen: newSeen()}
		for _, i := range pos {
			t := cols[i].DataType
			if t == "" {
				t = "C"
			}
			w.types = append(w.types, t[0])
			if t == "T" || t == "G" {
				w.seen = nil
			}
		}
		rw.watches = append(rw.watches, w)
	}
	add(keys, false)
	for _, u := range unique {
		add([]int{u}, true)
	}
	return rw
}

// mark records a good row's values and returns a bit for every watch that
// has probably seen them before (bit 0 the key, bit 1+i the i-th unique
// item).
func (rw *repeatWatch) mark(canon []string, op string) int64 {
	var mask int64
	for b, w := range rw.watches {
		if w.seen == nil || w.upserts && (op != "upsert" || canon[w.cols[0]] == "") {
			continue
		}
		var h maphash.Hash
		h.SetSeed(rw.seed)
		for j, i := range w.cols {
			writeComparable(&h, w.types[j], canon[i])
		}
		if w.seen.add(h.Sum64()) {
			mask |= 1 << b
			rw.watches[b].marked++
		}
	}
	return mask
}

// writeComparable writes a canonical value so that values the database
// holds equal hash equal: numbers by their float64 value (1.50 and 1.5 are
// one NUMERIC; SQLite keeps only 15 digits of a large one), everything
// else (text, dates, logicals) as written.
func writeComparable(h *maphash.Hash, typ byte, v string) {
	switch typ {
	case 'N', 'Y', 'I', 'B', 'F':
		if f, err := strconv.ParseFloat(v, 64); err == nil || errors.Is(err, strconv.ErrRange) {
			if f == 0 {
				f = 0 // -0
			}
			var b [8]byte
			binary.LittleEndian.PutUint64(b[:], math.Float64bits(f))
			h.Write(b[:])
			h.WriteByte(1)
			return
		}
	}
	h.WriteString(v)
	h.WriteByte(0)
}
