package source

import (
	"crypto/sha256"
	"encoding/hex"
	"hash"
	"slices"
	"strings"
)

// What a full check needs from this package when one side is not a
// Source — the center's resources, or rows made canonical for the catalog
// types of their data items: the same chunk cuts and the same hashes as
// Checksums and KeyHashes, so that equal rows give equal sums wherever they
// were read.

// Summer cuts rows given in key order into content-defined chunks and
// hashes them, exactly as Source.Checksums does.
type Summer struct {
	size int
	h    hash.Hash
	cur  ChunkSum
	last Key
	buf  []byte
	sums []ChunkSum
}

// NewSummer starts chunks of about chunkSize rows.
func NewSummer(chunkSize int) *Summer {
	return &Summer{size: max(chunkSize, 1), h: sha256.New()}
}

// Add adds the next row and its key (the key is copied). It reports
// whether the row ended a chunk.
func (s *Summer) Add(k Key, r Row) bool {
	if s.cur.Count == 0 {
		s.cur.First = slices.Clone(k)
	}
	s.cur.Count++
	s.buf = appendEncoded(s.buf[:0], r)
	s.h.Write(s.buf)
	s.last = append(s.last[:0], k...)
	s.buf = appendKeyEncoded(s.buf[:0], k)
	if boundary(s.buf, s.size) || s.cur.Count >= maxChunkFactor*s.size {
		s.end()
		return true
	}
	return false
}

func (s *Summer) end() {
	s.cur.Last = slices.Clone(s.last)
	s.cur.Hash = hex.EncodeToString(s.h.Sum(nil))
	s.sums = append(s.sums, s.cur)
	s.cur = ChunkSum{}
	s.h.Reset()
}

// Flush ends the chunk in progress, if any: the rows ran out.
func (s *Summer) Flush() {
	if s.cur.Count > 0 {
		s.end()
	}
}

// Sums returns the chunks ended so far.
func (s *Summer) Sums() []ChunkSum { return s.sums }

// RowHash is a row's hash as KeyHashes gives it.
func RowHash(r Row) string {
	h, _ := rowHash(nil, r)
	return h
}

// rowHash hashes r, reusing buf.
func rowHash(buf []byte, r Row) (string, []byte) {
	buf = appendEncoded(buf[:0], r)
	sum := sha256.Sum256(buf)
	return hex.EncodeToString(sum[:16]), buf
}

// SortsLike reports whether keys in order o and keys in order p sort
// alike, column by column: numbers by value, date-times by instant, binary
// by bytes, everything else by its UTF-8 bytes.
func (o KeyOrder) SortsLike(p KeyOrder) bool {
	if len(o) != len(p) {
		return false
	}
	for i := range o {
		if orderClass(o[i]) != orderClass(p[i]) {
			return false
		}
	}
	return true
}

// Canonical reads a value given as text as the value of a data item of
// a catalog data type (C N Y D T L M G B I F): the canonical text a column
// of that type reads as (see Value), whatever database or text form it
// came from. Text that is not a value of the type is kept as it is. B and
// F values are both read at double precision: a float stored at single
// precision already reads as its shortest single-precision text.
func Canonical(dataType, text string) Value {
	var k kind
	switch dataType {
	case "I":
		k = kInt
	case "N", "Y":
		k = kDecimal
	case "B", "F":
		k = kFloat64
	case "L":
		k = kBool
	case "D":
		k = kDate
	case "T":
		k = kDateTime
	case "G":
		// Base64 as PostgreSQL's encode() writes it has a line break
		// every 76 characters.
		return Value{Text: strings.Join(strings.Fields(text), "")}
	default:
		return Value{Text: text}
	}
	b, null := appendText(nil, k, text)
	return Value{Text: string(b), Null: null}
}
