package source

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// kind says how a column's values are made canonical and how its keys sort.
type kind uint8

const (
	kText       kind = iota // C, M: text as stored
	kInt                    // I
	kDecimal                // N, Y: exact
	kFloat64                // B
	kFloat32                // F: formatted at float32 precision
	kBool                   // L
	kDate                   // D
	kDateTime               // T, stored without a zone: read in sourceZone
	kDateTimeTZ             // T, an instant (text without a zone is UTC)
	kBytes                  // G
	kTimeOfDay              // C: hh:mm:ss[.f]
	kAny                    // SQLite without a declared type: by storage class
)

// sourceZone is the zone of date-times stored without one: China Standard
// Time, as the platform's quality checker reads them.
var sourceZone = time.FixedZone("CST", 8*3600)

// appendCanonical appends the canonical text of a driver value src of kind
// k to b. null reports SQL NULL (and MySQL's zero dates, which mean none).
func appendCanonical(b []byte, k kind, src any) (out []byte, null bool) {
	switch v := src.(type) {
	case nil:
		return b, true
	case []byte:
		return appendText(b, k, v)
	case string:
		return appendText(b, k, v)
	case int64:
		return appendCanonicalInt(b, k, v), false
	case uint64:
		return strconv.AppendUint(b, v, 10), false
	case float64:
		return appendCanonicalFloat(b, k, v), false
	case float32:
		return appendFloat(b, float64(v), 32), false
	case bool:
		return strconv.AppendBool(b, v), false
	case time.Time:
		return appendCanonicalTime(b, k, v), false
	}
	return fmt.Append(b, src), false
}

// appendCanonicalInt, appendCanonicalFloat and appendCanonicalTime are
// appendCanonical for one driver type each: the PostgreSQL reader calls
// them directly, without boxing every value in an interface.
func appendCanonicalInt(b []byte, k kind, v int64) []byte {
	switch k {
	case kBool:
		return strconv.AppendBool(b, v != 0)
	case kDateTime, kDateTimeTZ:
		return appendTime(b, unixTime(v))
	}
	return strconv.AppendInt(b, v, 10)
}

func appendCanonicalFloat(b []byte, k kind, v float64) []byte {
	switch k {
	case kFloat32:
		return appendFloat(b, v, 32)
	case kDecimal:
		// SQLite keeps NUMERIC values as REAL: their shortest text is
		// what was stored, to SQLite's 15 digits.
		return appendDecimal(b, strconv.FormatFloat(v, 'f', -1, 64))
	case kInt:
		if v == math.Trunc(v) && math.Abs(v) < 1e18 {
			return strconv.AppendInt(b, int64(v), 10)
		}
	}
	return appendFloat(b, v, 64)
}

func appendCanonicalTime(b []byte, k kind, v time.Time) []byte {
	switch k {
	case kDate:
		return v.AppendFormat(b, "2006-01-02")
	case kDateTime:
		// The driver hands over the stored wall clock; it is CST.
		v = time.Date(v.Year(), v.Month(), v.Day(), v.Hour(), v.Minute(), v.Second(), v.Nanosecond(), sourceZone)
	case kTimeOfDay:
		return v.AppendFormat(b, "15:04:05.999999999")
	}
	return appendTime(b, v)
}

func unixTime(v int64) time.Time {
	if v > 1e12 || v < -1e12 {
		return time.UnixMilli(v)
	}
	return time.Unix(v, 0)
}

func appendTime(b []byte, t time.Time) []byte {
	return t.UTC().AppendFormat(b, time.RFC3339Nano)
}

// appendText makes a value the driver gave as text canonical.
func appendText[T string | []byte](b []byte, k kind, v T) ([]byte, bool) {
	switch k {
	case kInt, kDecimal:
		if s := strings.TrimSpace(string(v)); isDecimal(s) {
			return appendDecimal(b, s), false
		}
	case kFloat64, kFloat32:
		bits := 64
		if k == kFloat32 {
			bits = 32
		}
		if f, err := strconv.ParseFloat(strings.TrimSpace(string(v)), bits); err == nil {
			return appendFloat(b, f, bits), false
		}
	case kBool:
		switch strings.ToLower(strings.TrimSpace(string(v))) {
		case "1", "t", "true", "y", "yes", "on", "\x01":
			return append(b, "true"...), false
		case "0", "f", "false", "n", "no", "off", "\x00":
			return append(b, "false"...), false
		}
	case kDate:
		s := strings.TrimSpace(string(v))
		if strings.HasPrefix(s, "0000-00-00") {
			return b, true
		}
		if t, ok := parseDateTime(s, sourceZone); ok {
			if len(s) >= 10 && s[4] == '-' && s[7] == '-' {
				return append(b, s[:10]...), false // keep the stored day
			}
			return t.AppendFormat(b, "2006-01-02"), false
		}
	case kDateTime, kDateTimeTZ:
		s := strings.TrimSpace(string(v))
		if strings.HasPrefix(s, "0000-00-00") {
			return b, true
		}
		zone := sourceZone
		if k == kDateTimeTZ {
			zone = time.UTC
		}
		if t, ok := parseDateTime(s, zone); ok {
			return appendTime(b, t), false
		}
	case kBytes:
		n := base64.StdEncoding.EncodedLen(len(v))
		b = append(b, make([]byte, n)...)
		base64.StdEncoding.Encode(b[len(b)-n:], []byte(v))
		return b, false
	case kAny:
		if _, ok := any(v).([]byte); ok { // SQLite BLOB
			return appendText(b, kBytes, v)
		}
	}
	return append(b, v...), false
}

// isDecimal reports whether s is [+-]digits[.digits].
func isDecimal(s string) bool {
	i := 0
	if i < len(s) && (s[i] == '+' || s[i] == '-') {
		i++
	}
	digits := 0
	for ; i < len(s) && s[i] >= '0' && s[i] <= '9'; i++ {
		digits++
	}
	if i < len(s) && s[i] == '.' {
		i++
		for ; i < len(s) && s[i] >= '0' && s[i] <= '9'; i++ {
			digits++
		}
	}
	return digits > 0 && i == len(s)
}

// appendDecimal appends a decimal that isDecimal accepted, without '+',
// leading zeros, trailing fractional zeros or a negative zero.
func appendDecimal(b []byte, s string) []byte {
	neg := false
	if s != "" && (s[0] == '+' || s[0] == '-') {
		neg = s[0] == '-'
		s = s[1:]
	}
	intPart, frac, _ := strings.Cut(s, ".")
	intPart = strings.TrimLeft(intPart, "0")
	frac = strings.TrimRight(frac, "0")
	if intPart == "" && frac == "" {
		return append(b, '0')
	}
	if neg {
		b = append(b, '-')
	}
	if intPart == "" {
		b = append(b, '0')
	}
	b = append(b, intPart...)
	if frac != "" {
		b = append(append(b, '.'), frac...)
	}
	return b
}

// appendFloat writes the shortest text that reads back to f at bits
// precision, in plain notation from 1e-6 to 1e21 as JavaScript does.
func appendFloat(b []byte, f float64, bits int) []byte {
	switch {
	case math.IsNaN(f):
		return append(b, "NaN"...)
	case math.IsInf(f, 1):
		return append(b, "Infinity"...)
	case math.IsInf(f, -1):
		return append(b, "-Infinity"...)
	case f == 0:
		return append(b, '0')
	}
	if a := math.Abs(f); a >= 1e-6 && a < 1e21 {
		return strconv.AppendFloat(b, f, 'f', -1, bits)
	}
	b = strconv.AppendFloat(b, f, 'e', -1, bits)
	// One exponent digit when one will do: 2.5e-7, not 2.5e-07.
	if n := len(b); n >= 2 && b[n-2] == '0' && (b[n-3] == '-' || b[n-3] == '+') {
		b = append(b[:n-2], b[n-1])
	}
	return b
}

// parseDateTime reads YYYY-MM-DD[( |T)hh:mm[:ss[.fraction]]][zone] where
// zone is Z or ±hh[:mm]; a value without a zone is in zone.
func parseDateTime(s string, zone *time.Location) (time.Time, bool) {
	num := func(i, n int) (int, bool) {
		if i+n > len(s) {
			return 0, false
		}
		v := 0
		for j := i; j < i+n; j++ {
			if s[j] < '0' || s[j] > '9' {
				return 0, false
			}
			v = v*10 + int(s[j]-'0')
		}
		return v, true
	}
	y, ok1 := num(0, 4)
	mo, ok2 := num(5, 2)
	d, ok3 := num(8, 2)
	if !ok1 || !ok2 || !ok3 || s[4] != '-' || s[7] != '-' || mo < 1 || mo > 12 || d < 1 || d > 31 {
		return time.Time{}, false
	}
	var h, mi, sec, nsec int
	i := 10
	if i < len(s) && (s[i] == ' ' || s[i] == 'T') {
		var ok bool
		if h, ok = num(i+1, 2); !ok || i+3 >= len(s) || s[i+3] != ':' {
			return time.Time{}, false
		}
		if mi, ok = num(i+4, 2); !ok {
			return time.Time{}, false
		}
		i += 6
		if i < len(s) && s[i] == ':' {
			if sec, ok = num(i+1, 2); !ok {
				return time.Time{}, false
			}
			i += 3
			if i < len(s) && s[i] == '.' {
				i++
				scale := 100000000
				start := i
				for ; i < len(s) && s[i] >= '0' && s[i] <= '9'; i++ {
					nsec += int(s[i]-'0') * scale
					scale /= 10
				}
				if i == start {
					return time.Time{}, false
				}
			}
		}
	}
	if h > 23 || mi > 59 || sec > 60 {
		return time.Time{}, false
	}
	if i < len(s) {
		z := strings.TrimSpace(s[i:])
		switch {
		case z == "Z" || z == "z":
			zone = time.UTC
		case z[0] == '+' || z[0] == '-':
			zh, zm := 0, 0
			rest := strings.ReplaceAll(z[1:], ":", "")
			switch len(rest) {
			case 2, 4:
				v, err := strconv.Atoi(rest)
				if err != nil {
					return time.Time{}, false
				}
				if len(rest) == 2 {
					zh = v
				} else {
					zh, zm = v/100, v%100
				}
			default:
				return time.Time{}, false
			}
			off := (zh*60 + zm) * 60
			if z[0] == '-' {
				off = -off
			}
			zone = time.FixedZone("", off)
		default:
			return time.Time{}, false
		}
	}
	t := time.Date(y, time.Month(mo), d, h, mi, sec, nsec, zone)
	if t.Day() != d { // 2023-02-30
		return time.Time{}, false
	}
	return t, true
}

// KeyOrder is how keys sort, the same in every source: per key column its
// catalog data type; numbers (I N Y B F) sort by value, date-times (T) by
// instant, binary (G) by its bytes, and everything else (text, dates,
// logicals) by its UTF-8 bytes, which is code-point order. Each backend's
// SQL orders keys this way (PostgreSQL COLLATE "C", MySQL a binary cast
// of the UTF-8 text, SQLite BINARY), so that the keys of two sources can
// be merged in one pass.
type KeyOrder []string

// OrderOf is the KeyOrder of described columns (those with Key > 0).
func OrderOf(cols []Column) KeyOrder {
	n := 0
	for _, c := range cols {
		n = max(n, c.Key)
	}
	o := make(KeyOrder, n)
	for _, c := range cols {
		if c.Key > 0 {
			o[c.Key-1] = c.DataType
		}
	}
	return o
}

// Compare returns -1, 0 or +1 as a sorts before, with or after b.
func (o KeyOrder) Compare(a, b Key) int {
	for i := 0; i < len(a) && i < len(b); i++ {
		t := "C"
		if i < len(o) {
			t = o[i]
		}
		if c := compareValue(t, a[i], b[i]); c != 0 {
			return c
		}
	}
	return len(a) - len(b)
}

func compareValue(typ, a, b string) int {
	if a == b {
		return 0
	}
	switch typ {
	case "I", "N", "Y":
		if isDecimal(a) && isDecimal(b) {
			return compareDecimal(a, b)
		}
	case "B", "F":
		fa, ea := strconv.ParseFloat(a, 64)
		fb, eb := strconv.ParseFloat(b, 64)
		if ea == nil && eb == nil && fa != fb {
			if fa < fb {
				return -1
			}
			return 1
		}
	case "T":
		ta, oka := parseRFC3339(a)
		tb, okb := parseRFC3339(b)
		if oka && okb {
			return ta.Compare(tb)
		}
	case "G":
		ba, ea := base64.StdEncoding.DecodeString(a)
		bb, eb := base64.StdEncoding.DecodeString(b)
		if ea == nil && eb == nil {
			return bytes.Compare(ba, bb)
		}
	}
	return strings.Compare(a, b)
}

func parseRFC3339(s string) (time.Time, bool) {
	t, err := time.Parse(time.RFC3339Nano, s)
	return t, err == nil
}

// compareDecimal compares two decimals that isDecimal accepted.
func compareDecimal(a, b string) int {
	na, ia, fa := splitDecimal(a)
	nb, ib, fb := splitDecimal(b)
	if ia == "" && fa == "" {
		na = false
	}
	if ib == "" && fb == "" {
		nb = false
	}
	if na != nb {
		if na {
			return -1
		}
		return 1
	}
	c := len(ia) - len(ib)
	if c == 0 {
		c = strings.Compare(ia, ib)
	}
	if c == 0 {
		c = strings.Compare(fa, fb) // no trailing zeros: plain compare is numeric
	}
	if c > 0 {
		c = 1
	} else if c < 0 {
		c = -1
	}
	if na {
		return -c
	}
	return c
}

func splitDecimal(s string) (neg bool, intPart, frac string) {
	if s[0] == '+' || s[0] == '-' {
		neg = s[0] == '-'
		s = s[1:]
	}
	intPart, frac, _ = strings.Cut(s, ".")
	return neg, strings.TrimLeft(intPart, "0"), strings.TrimRight(frac, "0")
}

// appendEncoded appends the hashing encoding of values: per value 0 for
// NULL, or 1, the length as a uvarint and the bytes. It is unambiguous, so
// equal encodings mean equal rows.
func appendEncoded(b []byte, vals []Value) []byte {
	for _, v := range vals {
		if v.Null {
			b = append(b, 0)
			continue
		}
		b = append(b, 1)
		b = appendUvarint(b, uint64(len(v.Text)))
		b = append(b, v.Text...)
	}
	return b
}

func appendKeyEncoded(b []byte, k Key) []byte {
	for _, s := range k {
		b = append(b, 1)
		b = appendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	return b
}

func appendUvarint(b []byte, x uint64) []byte {
	for x >= 0x80 {
		b = append(b, byte(x)|0x80)
		x >>= 7
	}
	return append(b, byte(x))
}
