package resource

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strconv"
)

// Rows loaded straight into a records table on PostgreSQL travel in
// COPY's binary format: the server stores them without parsing text, and
// dates, numbers and times cost it nothing to read. Each value is the
// canonical text quality.Check returns, encoded here the way the server's
// text input would have stored it, so a record reads back the same
// whichever way it came in.

// copyBinaryHeader starts a COPY … (FORMAT binary) stream; copyBinaryEnd
// ends it.
var (
	copyBinaryHeader = []byte("PGCOPY\n\xff\r\n\x00\x00\x00\x00\x00\x00\x00\x00\x00")
	copyBinaryEnd    = []byte{0xff, 0xff}
)

// appendBinaryNull appends a NULL field.
func appendBinaryNull(b []byte) []byte { return append(b, 0xff, 0xff, 0xff, 0xff) }

// appendBinary appends the canonical value v of column c as one field of
// a binary COPY row: its length, then its bytes. "" is NULL.
func appendBinary(b []byte, c *Column, v string) ([]byte, error) {
	if v == "" {
		return appendBinaryNull(b), nil
	}
	at := len(b)
	b = append(b, 0, 0, 0, 0)
	var err error
	switch c.DataType {
	case "N", "Y":
		b, err = appendNumeric(b, v)
	case "D":
		var days int32
		if days, err = pgDate(v); err == nil {
			b = binary.BigEndian.AppendUint32(b, uint32(days))
		}
	case "T":
		var us int64
		if us, err = pgTimestamp(v); err == nil {
			b = binary.BigEndian.AppendUint64(b, uint64(us))
		}
	case "L":
		var l bool
		if l, err = strconv.ParseBool(v); err == nil {
			b = append(b, 0)
			if l {
				b[len(b)-1] = 1
			}
		}
	case "G":
		var raw []byte
		if raw, err = base64.StdEncoding.DecodeString(v); err == nil {
			b = append(b, raw...)
		}
	case "B", "F":
		var f float64
		if f, err = pgFloat(v); err == nil {
			b = binary.BigEndian.AppendUint64(b, math.Float64bits(f))
		}
	case "I":
		var i int64
		if i, err = strconv.ParseInt(v, 10, 64); err == nil {
			b = binary.BigEndian.AppendUint64(b, uint64(i))
		}
	default:
		b = append(b, v...)
	}
	if err != nil {
		return b[:at], fmt.Errorf("%s: %w", c.MachineName, err)
	}
	binary.BigEndian.PutUint32(b[at:], uint32(len(b)-at-4))
	return b, nil
}

// pgEpochUnix is 2000-01-01 00:00:00 UTC, where PostgreSQL counts dates
// and times from, in Unix seconds; pgEpochJulian is that day in its
// Julian day numbers.
const (
	pgEpochUnix   = 946684800
	pgEpochJulian = 2451545
)

var errCanonical = errors.New("not a canonical value")

// julian is PostgreSQL's date2j: the Julian day number of a date of the
// proleptic Gregorian calendar.
func julian(y, m, d int) int {
	if m > 2 {
		m++
		y += 4800
	} else {
		m += 13
		y += 4799
	}
	century := y / 100
	j := y*365 - 32167
	j += y/4 - century + century/4
	return j + 7834*m/256 + d
}

// pgDate reads a canonical date (YYYY-MM-DD) as days since 2000-01-01.
func pgDate(v string) (int32, error) {
	if len(v) != 10 || v[4] != '-' || v[7] != '-' {
		return 0, errCanonical
	}
	y, ok1 := atoi(v[:4])
	m, ok2 := atoi(v[5:7])
	d, ok3 := atoi(v[8:])
	if !ok1 || !ok2 || !ok3 {
		return 0, errCanonical
	}
	return int32(julian(y, m, d) - pgEpochJulian), nil
}

// pgTimestamp reads a canonical date-time (RFC 3339 in UTC, as
// quality.Check writes it) as microseconds since 2000-01-01 UTC, the
// fraction rounded as the server's text input rounds it: to the nearest
// microsecond of the fraction read as a double, halves to even.
func pgTimestamp(v string) (int64, error) {
	if len(v) < 20 || v[10] != 'T' || v[13] != ':' || v[16] != ':' || v[len(v)-1] != 'Z' {
		return 0, errCanonical
	}
	days, err := pgDate(v[:10])
	if err != nil {
		return 0, err
	}
	h, ok1 := atoi(v[11:13])
	mi, ok2 := atoi(v[14:16])
	s, ok3 := atoi(v[17:19])
	if !ok1 || !ok2 || !ok3 {
		return 0, errCanonical
	}
	us := (int64(days)*86400 + int64(h*3600+mi*60+s)) * 1_000_000
	if frac := v[19 : len(v)-1]; frac != "" {
		if frac[0] != '.' {
			return 0, errCanonical
		}
		f, err := strconv.ParseFloat(frac, 64)
		if err != nil {
			return 0, errCanonical
		}
		us += int64(math.RoundToEven(f * 1_000_000))
	}
	return us, nil
}

// pgFloat reads a number as the server's float8 input does: a value out
// of the double's range, too large or so small it would be zero, is an
// error there too.
func pgFloat(v string) (float64, error) {
	f, err := strconv.ParseFloat(v, 64)
	if err != nil {
		return 0, err
	}
	if f == 0 {
		for i := 0; i < len(v) && v[i] != 'e' && v[i] != 'E'; i++ {
			if v[i] >= '1' && v[i] <= '9' {
				return 0, fmt.Errorf("%q is out of range for a double", v)
			}
		}
	}
	return f, nil
}

// appendNumeric writes a canonical decimal (optional '-', digits,
// optional fraction) as a binary NUMERIC: base-10000 digits, the weight
// of the first, the sign and the display scale, which keeps the fraction
// digits as written (1.50 stays 1.50), as the text input does.
func appendNumeric(b []byte, v string) ([]byte, error) {
	neg := false
	if v != "" && v[0] == '-' {
		neg, v = true, v[1:]
	}
	intPart, frac := v, ""
	for i := 0; i < len(v); i++ {
		if v[i] == '.' {
			intPart, frac = v[:i], v[i+1:]
			break
		}
	}
	if intPart == "" && frac == "" {
		return b, errCanonical
	}
	for _, part := range []string{intPart, frac} {
		for i := 0; i < len(part); i++ {
			if part[i] < '0' || part[i] > '9' {
				return b, errCanonical
			}
		}
	}
	for len(intPart) > 0 && intPart[0] == '0' {
		intPart = intPart[1:]
	}
	if len(frac) > 0x3fff {
		return b, fmt.Errorf("%d fraction digits are more than a numeric holds", len(frac))
	}
	// Digits in groups of four: the integer part aligned to the right
	// of the decimal point, the fraction to its left.
	intGroups := (len(intPart) + 3) / 4
	fracGroups := (len(frac) + 3) / 4
	if intGroups > 0x7fff {
		return b, fmt.Errorf("%d digits are more than a numeric holds", len(intPart))
	}
	group := func(i int) uint16 {
		var g uint16
		for k := range 4 {
			// Position of the k-th digit of group i counted from the
			// first integer group's padded start.
			p := i*4 + k - (intGroups*4 - len(intPart))
			var c byte = '0'
			switch {
			case p >= 0 && p < len(intPart):
				c = intPart[p]
			case p >= len(intPart) && p-len(intPart) < len(frac):
				c = frac[p-len(intPart)]
			}
			g = g*10 + uint16(c-'0')
		}
		return g
	}
	first, last := 0, intGroups+fracGroups // digits kept: [first, last)
	for first < last && group(first) == 0 {
		first++
	}
	for last > first && group(last-1) == 0 {
		last--
	}
	weight := intGroups - 1 - first
	var sign uint16
	if neg {
		sign = 0x4000
	}
	if first == last {
		weight, sign = 0, 0
	}
	b = binary.BigEndian.AppendUint16(b, uint16(last-first))
	b = binary.BigEndian.AppendUint16(b, uint16(int16(weight)))
	b = binary.BigEndian.AppendUint16(b, sign)
	b = binary.BigEndian.AppendUint16(b, uint16(len(frac)))
	for i := first; i < last; i++ {
		b = binary.BigEndian.AppendUint16(b, group(i))
	}
	return b, nil
}

// atoi reads a short run of digits.
func atoi(s string) (int, bool) {
	n := 0
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
		n = n*10 + int(s[i]-'0')
	}
	return n, s != ""
}
