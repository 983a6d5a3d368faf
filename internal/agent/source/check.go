package source

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"slices"
)

// The full check (全量核对) compares a source with a target without moving
// their rows: both sides cut their rows into content-defined chunks and
// hash them (Checksums), DiffChunks finds the key ranges whose chunks
// differ, and DiffKeys streams the per-key hashes of those ranges only and
// merges them into the keys to add, change or delete.

// What a differing key asks of the target.
const (
	Added   = "added"   // in the source, not in the target: insert it
	Changed = "changed" // in both with different values: update it
	Deleted = "deleted" // in the target, no longer in the source: delete it
)

// KeyDiff is one key that differs between a source and a target.
type KeyDiff struct {
	Key  Key    `json:"key"`
	Kind string `json:"kind"` // Added, Changed or Deleted
}

// Hasher is one side of a full check: a Source, or anything else that
// streams per-key hashes the way Source.KeyHashes does.
type Hasher interface {
	KeyHashes(ctx context.Context, q Query, r KeyRange, chunk int, fn func([]KeyHash) error) error
}

// DiffChunks compares the checksums of a source (src) and a target (dst)
// of the same query and returns the key ranges whose rows differ, in key
// order, adjacent ranges joined. Chunks match where both sides cut at the
// same keys, which content-defined chunking makes the rule: after a
// difference the lists realign at the next chunk end (Last) both share.
// It needs no key order, only that both lists are in it.
func DiffChunks(src, dst []ChunkSum) []KeyRange {
	ends := make(map[string]int, len(dst))
	for j, c := range dst {
		ends[string(appendKeyEncoded(nil, c.Last))] = j
	}
	var (
		out   []KeyRange
		after Key // the end of the last matching chunk; nil: the start
		i, j  int
	)
	emit := func(r KeyRange) {
		if n := len(out); n > 0 && out[n-1].Through != nil && slices.Equal(out[n-1].Through, r.After) {
			out[n-1].Through = r.Through
			return
		}
		out = append(out, r)
	}
	for i < len(src) || j < len(dst) {
		if i < len(src) && j < len(dst) && sameChunk(src[i], dst[j]) {
			after = src[i].Last
			i, j = i+1, j+1
			continue
		}
		// The next chunk end both sides share closes the differing range.
		k, m := -1, -1
		for kk := i; kk < len(src); kk++ {
			if mm, ok := ends[string(appendKeyEncoded(nil, src[kk].Last))]; ok && mm >= j {
				k, m = kk, mm
				break
			}
		}
		if k < 0 {
			emit(KeyRange{After: after})
			break
		}
		emit(KeyRange{After: after, Through: src[k].Last})
		after = src[k].Last
		i, j = k+1, m+1
	}
	return out
}

func sameChunk(a, b ChunkSum) bool {
	return a.Count == b.Count && a.Hash == b.Hash && slices.Equal(a.First, b.First) && slices.Equal(a.Last, b.Last)
}

// DiffKeys lists the keys that differ inside the ranges by merging the
// per-key hashes of both sides, streamed in key order: memory stays
// bounded by the chunk whatever the ranges hold, beyond the result.
func DiffKeys(ctx context.Context, order KeyOrder, src Hasher, sq Query, dst Hasher, dq Query, ranges []KeyRange) ([]KeyDiff, error) {
	var out []KeyDiff
	for _, r := range ranges {
		next, stop, perr := pullHashes(ctx, dst, dq, r)
		cur, ok := next()
		err := src.KeyHashes(ctx, sq, r, hashChunk, func(hs []KeyHash) error {
			for _, a := range hs {
				for ok && order.Compare(cur.Key, a.Key) < 0 {
					out = append(out, KeyDiff{Key: cur.Key, Kind: Deleted})
					cur, ok = next()
				}
				switch {
				case ok && order.Compare(cur.Key, a.Key) == 0:
					if cur.Hash != a.Hash {
						out = append(out, KeyDiff{Key: a.Key, Kind: Changed})
					}
					cur, ok = next()
				default:
					out = append(out, KeyDiff{Key: a.Key, Kind: Added})
				}
			}
			return nil
		})
		for err == nil && ok {
			out = append(out, KeyDiff{Key: cur.Key, Kind: Deleted})
			cur, ok = next()
		}
		stop()
		if err != nil {
			return nil, fmt.Errorf("full check: read the source: %w", err)
		}
		if e := perr(); e != nil {
			return nil, fmt.Errorf("full check: read the target: %w", e)
		}
	}
	return out, nil
}

const hashChunk = 1024

var errStopped = errors.New("stopped")

// pullHashes turns a Hasher's stream into a pull iterator, so that two
// streams can be merged in one pass.
func pullHashes(ctx context.Context, h Hasher, q Query, r KeyRange) (next func() (KeyHash, bool), stop func(), err func() error) {
	var perr error
	seq := func(yield func(KeyHash) bool) {
		perr = h.KeyHashes(ctx, q, r, hashChunk, func(hs []KeyHash) error {
			for _, x := range hs {
				if !yield(x) {
					return errStopped
				}
			}
			return nil
		})
	}
	next, stop = iter.Pull(iter.Seq[KeyHash](seq))
	return next, stop, func() error {
		if errors.Is(perr, errStopped) {
			return nil
		}
		return perr
	}
}

// FullCheck compares the rows of a source query with those of a target
// query (the same columns in the same order, the same key) and lists the
// keys that differ: Checksums on both sides, DiffChunks, then DiffKeys on
// the ranges that differ.
func FullCheck(ctx context.Context, src Source, sq Query, dst Source, dq Query, chunkSize int) ([]KeyDiff, error) {
	order, err := checkOrders(ctx, src, sq, dst, dq)
	if err != nil {
		return nil, err
	}
	a, err := src.Checksums(ctx, sq, chunkSize)
	if err != nil {
		return nil, fmt.Errorf("full check: checksums of the source: %w", err)
	}
	b, err := dst.Checksums(ctx, dq, chunkSize)
	if err != nil {
		return nil, fmt.Errorf("full check: checksums of the target: %w", err)
	}
	return DiffKeys(ctx, order, src, sq, dst, dq, DiffChunks(a, b))
}

// checkOrders returns the key order both sides share, or an error when
// their keys would sort differently.
func checkOrders(ctx context.Context, src Source, sq Query, dst Source, dq Query) (KeyOrder, error) {
	a, err := src.Describe(ctx, sq)
	if err != nil {
		return nil, fmt.Errorf("full check: %w", err)
	}
	b, err := dst.Describe(ctx, dq)
	if err != nil {
		return nil, fmt.Errorf("full check: %w", err)
	}
	oa, ob := OrderOf(a), OrderOf(b)
	if len(oa) == 0 {
		return nil, fmt.Errorf("full check: %w: choose the key columns", ErrNoKey)
	}
	if len(oa) != len(ob) {
		return nil, fmt.Errorf("full check: %w: the source key has %d columns, the target key %d", ErrBadQuery, len(oa), len(ob))
	}
	for i := range oa {
		if orderClass(oa[i]) != orderClass(ob[i]) {
			return nil, fmt.Errorf("full check: %w: key column %d is %s in the source but %s in the target, which sort differently", ErrBadQuery, i+1, oa[i], ob[i])
		}
	}
	if len(a) != len(b) {
		return nil, fmt.Errorf("full check: %w: the source reads %d columns, the target %d", ErrBadQuery, len(a), len(b))
	}
	return oa, nil
}

func orderClass(t string) string {
	switch t {
	case "I", "N", "Y", "B", "F":
		return "number"
	case "T", "G":
		return t
	}
	return "text"
}
