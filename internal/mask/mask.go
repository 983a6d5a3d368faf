// Package mask is the masking engine (脱敏): it parses the masking rule named
// on a catalog data item and applies it to values. It is written once and
// used wherever data leaves its owner in masked form — the data preview now,
// data services later — so every place masks a value the same way.
//
// Rules and what they do (counting characters, not bytes; an empty value
// stays empty under every rule):
//
//   - keep(m,n): the first m and last n characters stay, each character
//     between becomes "*" (110105********002X). When m+n leaves nothing to
//     hide, the value is malformed for its rule (a truncated ID number, say),
//     and showing it nearly whole is the worst outcome; then at most one
//     character stays — the first if m > 0, otherwise the last — and a
//     one-character value becomes "*".
//   - surname: the surname stays, every other character becomes "*"
//     (张**). A two-character compound surname (欧阳, 诸葛 …) stays whole when
//     a given name follows it; a two-character value keeps one (欧阳 → 欧*),
//     a one-character value becomes "*". Names in other scripts keep their
//     first character, no more.
//   - district: an address is cut after its district or county level and
//     marked "****" (福建省福州市鼓楼区****); see district.go.
//   - hash: HMAC-SM3 of the value under the deployment key, as 64 lower-case
//     hex digits, so equal values stay equal (joinable) across resources and
//     grants, but cannot be recovered by hashing guesses without the key.
//   - replace(c): the whole value becomes c, once; c is 1 to 8 characters
//     (replace(***) blanks a field). The output never reveals the value's
//     length; keep(0,0) is the rule that hides each character instead.
package mask

import (
	"bytes"
	"crypto/hmac"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"strconv"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"

	"github.com/emmansun/gmsm/sm3"
)

// ErrInvalidRule is wrapped by every error Parse returns.
var ErrInvalidRule = errors.New("invalid masking rule")

// Limits of rule arguments.
const (
	maxKeep        = 99 // largest m or n of keep(m,n)
	maxReplacement = 8  // most characters in c of replace(c)
)

type kind uint8

const (
	none kind = iota
	keepKind
	surnameKind
	districtKind
	hashKind
	replaceKind
)

// Rule is a parsed masking rule; the zero Rule leaves values unchanged.
// Rules are comparable: r == (Rule{}) tells whether a rule masks at all.
type Rule struct {
	kind       kind
	head, tail int    // keep(head,tail)
	with       string // replace(with)
}

// Parse reads a rule as written on a data item: keep(m,n), surname,
// district, hash or replace(c). "" parses to the zero Rule. Names are
// case-insensitive, spaces around the rule and its numbers are ignored, and
// full-width brackets and commas （，） typed with a Chinese input method are
// accepted; String gives the one canonical spelling.
func Parse(s string) (Rule, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return Rule{}, nil
	}
	name, arg, hasArg := splitCall(s)
	name = strings.ToLower(name)
	switch name {
	case "surname", "district", "hash":
		if hasArg {
			return Rule{}, fmt.Errorf("%w %q: %s takes no argument", ErrInvalidRule, s, name)
		}
		return Rule{kind: bareKinds[name]}, nil
	case "keep":
		if hasArg {
			m, n, ok := strings.Cut(strings.ReplaceAll(arg, "，", ","), ",")
			head, okHead := keepCount(m)
			tail, okTail := keepCount(n)
			if ok && okHead && okTail {
				return Rule{kind: keepKind, head: head, tail: tail}, nil
			}
		}
		return Rule{}, fmt.Errorf("%w %q: keep takes two whole numbers from 0 to %d, as keep(6,4)", ErrInvalidRule, s, maxKeep)
	case "replace":
		with := strings.TrimSpace(arg)
		if hasArg && validReplacement(with) {
			return Rule{kind: replaceKind, with: with}, nil
		}
		return Rule{}, fmt.Errorf("%w %q: replace takes 1 to %d printable characters, as replace(***)", ErrInvalidRule, s, maxReplacement)
	}
	return Rule{}, fmt.Errorf("%w %q: use keep(m,n), surname, district, hash or replace(c)", ErrInvalidRule, s)
}

var bareKinds = map[string]kind{"surname": surnameKind, "district": districtKind, "hash": hashKind}

// splitCall splits "name(arg)" (ASCII or full-width brackets); hasArg is
// false when s has no brackets at all.
func splitCall(s string) (name, arg string, hasArg bool) {
	i := strings.IndexAny(s, "(（")
	if i < 0 {
		return s, "", false
	}
	_, open := utf8.DecodeRuneInString(s[i:])
	rest, ok := strings.CutSuffix(s[i+open:], ")")
	if !ok {
		if rest, ok = strings.CutSuffix(s[i+open:], "）"); !ok {
			return "", "", false // unbalanced: no rule name matches ""
		}
	}
	return strings.TrimSpace(s[:i]), rest, true
}

func keepCount(s string) (int, bool) {
	s = strings.TrimSpace(s)
	if len(s) < 1 || len(s) > 2 || strings.Trim(s, "0123456789") != "" {
		return 0, false
	}
	n, err := strconv.Atoi(s)
	return n, err == nil && n <= maxKeep
}

func validReplacement(s string) bool {
	if s == "" || !utf8.ValidString(s) || utf8.RuneCountInString(s) > maxReplacement {
		return false
	}
	for _, r := range s {
		if !unicode.IsGraphic(r) {
			return false
		}
	}
	return true
}

// String is the rule's canonical form, which Parse reads back to an equal
// Rule; the zero Rule is "".
func (r Rule) String() string {
	switch r.kind {
	case keepKind:
		return "keep(" + strconv.Itoa(r.head) + "," + strconv.Itoa(r.tail) + ")"
	case surnameKind:
		return "surname"
	case districtKind:
		return "district"
	case hashKind:
		return "hash"
	case replaceKind:
		return "replace(" + r.with + ")"
	}
	return ""
}

// Masker applies rules; hash needs a deployment key so hashed values cannot
// be reversed by hashing guesses. A Masker is safe for concurrent use.
type Masker struct {
	keyed bool
	macs  sync.Pool // of hash.Hash: HMAC-SM3 under the key
}

// unkeyedHash is what hash gives without a key: failing closed, since a
// digest anyone can recompute would let a guessed ID number be confirmed.
const unkeyedHash = "****"

// New returns a Masker whose hash rule is keyed with key. Pass a secret
// that every server of the deployment shares and that is used for nothing
// else (e.g. secret.Keys.Derive("mask/hash")). With an empty key, hash
// yields "****" instead of a digest.
func New(key []byte) *Masker {
	key = bytes.Clone(key)
	m := &Masker{keyed: len(key) > 0}
	m.macs.New = func() any { return hmac.New(sm3.New, key) }
	return m
}

// Apply masks value by r. An empty value stays empty; the zero Rule returns
// value unchanged.
func (m *Masker) Apply(r Rule, value string) string {
	if value == "" {
		return ""
	}
	switch r.kind {
	case keepKind:
		return keep(value, r.head, r.tail)
	case surnameKind:
		return surname(value)
	case districtKind:
		return district(value)
	case hashKind:
		return m.hash(value)
	case replaceKind:
		return r.with
	}
	return value
}

// keep shows the first head and last tail characters of v and stars the
// rest; see the package comment for values too short to hide anything.
func keep(v string, head, tail int) string {
	n := utf8.RuneCountInString(v)
	if head+tail >= n {
		switch {
		case n == 1:
			return "*"
		case head > 0:
			head, tail = 1, 0
		default:
			head, tail = 0, 1
		}
	}
	var b strings.Builder
	b.Grow(len(v)) // a star is never longer than the character it hides
	i := runeOffset(v, 0, head)
	b.WriteString(v[:i])
	for range n - head - tail {
		_, size := utf8.DecodeRuneInString(v[i:])
		i += size
		b.WriteByte('*')
	}
	b.WriteString(v[i:])
	return b.String()
}

// runeOffset returns the byte offset count characters after offset i.
func runeOffset(v string, i, count int) int {
	for range count {
		_, size := utf8.DecodeRuneInString(v[i:])
		i += size
	}
	return i
}

// compoundSurnames are the two-character surnames that surname keeps whole.
var compoundSurnames = []string{
	"欧阳", "司马", "诸葛", "上官", "东方", "皇甫", "尉迟", "公孙", "慕容",
	"长孙", "宇文", "司徒", "夏侯", "轩辕", "令狐", "端木", "独孤",
}

func surname(v string) string {
	n := utf8.RuneCountInString(v)
	if n == 1 {
		return "*"
	}
	kept := 1
	if n > 2 {
		for _, s := range compoundSurnames {
			if strings.HasPrefix(v, s) {
				kept = 2
				break
			}
		}
	}
	i := runeOffset(v, 0, kept)
	return v[:i] + strings.Repeat("*", n-kept)
}

func (m *Masker) hash(v string) string {
	if !m.keyed {
		return unkeyedHash
	}
	h := m.macs.Get().(hash.Hash)
	h.Reset()
	_, _ = io.WriteString(h, v) // a hash never fails to write
	var sum [sm3.Size]byte
	out := hex.EncodeToString(h.Sum(sum[:0]))
	m.macs.Put(h)
	return out
}
