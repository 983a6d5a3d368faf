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
// It starts small (8 KB) and grows by adding filters sixteen times
// larger, up to maxSeenBits in all, then stops growing: memory stays
// bounded whatever the size of the batch, and past some tens of millions
// of values more of them are "probably repeats", which costs the database
// more work, never a wrong answer. Few filters keep lookups cheap: a new
// value is looked for in every one.
type seen struct {
	filters []bloom
	bits    int // in all filters
}

// bloom is a blocked Bloom filter: each value's bits lie in one block of
// 512, a cache line, so a lookup costs one miss however large the filter.
type bloom struct {
	blocks      [][8]uint64
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
		size := firstSeenBits << (4 * len(s.filters))
		if s.bits+size > maxSeenBits {
			size = maxSeenBits - s.bits
		}
		// About 20 bits a value keeps false positives near 0.3 % with
		// four hashes in blocks of 512 bits.
		s.filters = append(s.filters, bloom{blocks: make([][8]uint64, size/512), capacity: size / 20})
		s.bits += size
	}
	s.filters[len(s.filters)-1].set(h)
	return false
}

// block picks the value's block by the hash's upper half; its lower bits
// pick the bits in the block, nine for each.
func (b *bloom) block(h uint64) *[8]uint64 {
	return &b.blocks[(h>>32)*uint64(len(b.blocks))>>32]
}

func (b *bloom) has(h uint64) bool {
	blk := b.block(h)
	for i := range seenHashes {
		p := h >> (9 * i) & 511
		if blk[p>>6]&(1<<(p&63)) == 0 {
			return false
		}
	}
	return true
}

func (b *bloom) set(h uint64) {
	blk := b.block(h)
	for i := range seenHashes {
		p := h >> (9 * i) & 511
		blk[p>>6] |= 1 << (p & 63)
	}
	b.n++
}

// repeats watches for values that repeat within a batch: the key, and
// each item that must be unique.
type repeatWatch struct {
	seed maphash.Seed
	// watches[0] is the key; then one per unique item. They do not
	// change once made, so rows are hashed in any goroutine.
	watches []watch
	// marked counts, per watch, the rows it took for repeats.
	marked []int64
}

type watch struct {
	cols    []int // positions in the visible columns
	types   []byte
	upserts bool  // only upserts with a value count (unique items)
	seen    *seen // nil: the filter cannot tell for these types
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
	rw.marked = make([]int64, len(rw.watches))
	return rw
}

// exact reports whether every watch has a filter: then a row none of
// them marked repeats no key and no unique value of an earlier row.
func (rw *repeatWatch) exact() bool {
	for _, w := range rw.watches {
		if w.seen == nil {
			return false
		}
	}
	return true
}

// hash appends, for every watch, the hash of a good row's values, or
// noHash where the watch does not look at the row. Any goroutine may hash;
// mark takes the hashes in the rows' order.
func (rw *repeatWatch) hash(dst []uint64, canon []string, op string) []uint64 {
	for _, w := range rw.watches {
		if w.seen == nil || w.upserts && (op != "upsert" || canon[w.cols[0]] == "") {
			dst = append(dst, noHash)
			continue
		}
		var h maphash.Hash
		h.SetSeed(rw.seed)
		for j, i := range w.cols {
			writeComparable(&h, w.types[j], canon[i])
		}
		v := h.Sum64()
		if v == noHash {
			v = 1
		}
		dst = append(dst, v)
	}
	return dst
}

// noHash is no value; a value hashed to it is taken as hashed to 1.
const noHash = 0

// mark records a row's hashes and returns a bit for every watch that has
// probably seen its values before (bit 0 the key, bit 1+i the i-th unique
// item).
func (rw *repeatWatch) mark(hashes []uint64) int64 {
	var mask int64
	for b, h := range hashes {
		if h == noHash {
			continue
		}
		if rw.watches[b].seen.add(h) {
			mask |= 1 << b
			rw.marked[b]++
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
