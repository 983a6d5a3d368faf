package target

import (
	"encoding/base64"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"govshare/internal/agent/source"
)

// cst is the zone of date-times stored without one: China Standard Time at
// a fixed +08:00, exactly as the source package reads them back (not
// Asia/Shanghai, whose 1986–1991 summer time would shift old values).
var cst = time.FixedZone("CST", 8*3600)

// canonical checks one value of data item c and returns its canonical text
// (see source.Value): deliveries are canonical already, but a value that
// only reads the same ("+1.50" for "1.5") must be stored, compared and
// counted as the canonical one, and a value that does not fit its type must
// stop the delivery before anything is written.
func canonical(c *Column, v source.Value) (source.Value, error) {
	if v.Null {
		return source.Value{Null: true}, nil
	}
	s := v.Text
	bad := func(what string) (source.Value, error) {
		return source.Value{}, fmt.Errorf("%w: column %s (%s): %q is not %s", ErrBadValue, c.Name, c.DataType, clip(s), what)
	}
	switch c.DataType {
	case "C", "M":
		if !utf8.ValidString(s) {
			return bad("valid UTF-8")
		}
		if c.DataType == "C" && c.Length > 0 && len(s) > c.Length && utf8.RuneCountInString(s) > c.Length {
			return bad(fmt.Sprintf("at most %d characters long", c.Length))
		}
	case "I":
		i, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return bad("an integer from -9223372036854775808 to 9223372036854775807")
		}
		var b [20]byte
		if string(strconv.AppendInt(b[:0], i, 10)) != s {
			s = strconv.FormatInt(i, 10)
		}
	case "N", "Y":
		if !isDecimal(s) {
			return bad("a decimal number")
		}
		var b [40]byte
		if canon := appendDecimal(b[:0], s); string(canon) != s {
			s = string(canon)
		}
	case "B", "F":
		bits := 64
		if c.DataType == "F" {
			bits = 32
		}
		f, err := strconv.ParseFloat(s, bits)
		if ne, ok := err.(*strconv.NumError); ok && ne.Err == strconv.ErrRange {
			return bad(fmt.Sprintf("within the range of a %d-bit float", bits))
		} else if err != nil {
			return bad("a number")
		}
		s = keep(s, formatFloat(f, bits))
	case "L":
		if s != "true" && s != "false" {
			return bad(`"true" or "false"`)
		}
	case "D":
		if _, err := time.Parse(time.DateOnly, s); err != nil || len(s) != 10 {
			return bad("a date YYYY-MM-DD")
		}
	case "T":
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return bad("an RFC 3339 date-time")
		}
		if y := t.UTC().Year(); y < 1 || y > 9999 {
			return bad("a date-time from year 1 to 9999")
		}
		var b [40]byte
		if canon := t.UTC().AppendFormat(b[:0], time.RFC3339Nano); string(canon) != s {
			s = string(canon)
		}
	case "G":
		b, err := base64.StdEncoding.Strict().DecodeString(s)
		if err != nil {
			return bad("standard base64 with padding")
		}
		s = keep(s, base64.StdEncoding.EncodeToString(b))
	default:
		return source.Value{}, fmt.Errorf("%w: column %s has unknown data type %q", ErrBadColumns, c.Name, c.DataType)
	}
	return source.Value{Text: s}, nil
}

// keep returns the caller's string when it is canonical already, so that
// a canonical delivery costs no copies.
func keep(s, canon string) string {
	if s == canon {
		return s
	}
	return canon
}

// clip shortens a value for an error message.
func clip(s string) string {
	if len(s) <= 64 {
		return s
	}
	n := 60
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
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

// appendDecimal appends a decimal that isDecimal accepted without '+',
// leading zeros, trailing fractional zeros or a negative zero.
func appendDecimal(b []byte, s string) []byte {
	neg, intPart, frac := splitDecimal(s)
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
		b = append(b, '.')
		b = append(b, frac...)
	}
	return b
}

// splitDecimal splits a decimal into its sign, integer digits without
// leading zeros and fractional digits without trailing zeros.
func splitDecimal(s string) (neg bool, intPart, frac string) {
	if s != "" && (s[0] == '+' || s[0] == '-') {
		neg = s[0] == '-'
		s = s[1:]
	}
	intPart, frac, _ = strings.Cut(s, ".")
	return neg, strings.TrimLeft(intPart, "0"), strings.TrimRight(frac, "0")
}

// formatFloat writes the shortest text that reads back to f at bits
// precision, in plain notation from 1e-6 to 1e21, as the source package
// does.
func formatFloat(f float64, bits int) string {
	switch {
	case math.IsNaN(f):
		return "NaN"
	case math.IsInf(f, 1):
		return "Infinity"
	case math.IsInf(f, -1):
		return "-Infinity"
	case f == 0:
		return "0"
	}
	if a := math.Abs(f); a >= 1e-6 && a < 1e21 {
		return strconv.FormatFloat(f, 'f', -1, bits)
	}
	b := strconv.AppendFloat(nil, f, 'e', -1, bits)
	if n := len(b); n >= 3 && b[n-2] == '0' && (b[n-3] == '-' || b[n-3] == '+') {
		b = append(b[:n-2], b[n-1]) // 2.5e-7, not 2.5e-07
	}
	return string(b)
}

// limit is what an existing column keeps of a value exactly; -1 is no
// limit. A value beyond it would be rounded or cut by the database without
// an error, so Apply refuses it instead.
type limit struct {
	intDigits  int // decimal: digits before the point
	fracDigits int // decimal: digits after the point
	sigDigits  int // decimal: significant digits (SQLite keeps numbers in 8-byte floats)
	secDigits  int // date-time: fractional-second digits
}

var noLimit = limit{-1, -1, -1, -1}

// checkLimit returns an error when canonical value v of c does not fit l.
func checkLimit(c *Column, tc *tableColumn, l limit, v source.Value) error {
	if v.Null || l == noLimit {
		return nil
	}
	switch c.DataType {
	case "I", "N", "Y":
		_, intPart, frac := splitDecimal(v.Text)
		switch {
		case l.intDigits >= 0 && len(intPart) > l.intDigits:
			return fmt.Errorf("%w: column %s (%s) holds %d digits before the point; %q has %d", ErrBadValue, c.Name, tc.dbType, l.intDigits, v.Text, len(intPart))
		case l.fracDigits >= 0 && len(frac) > l.fracDigits:
			return fmt.Errorf("%w: column %s (%s) keeps %d decimals; %q has %d and would be rounded", ErrBadValue, c.Name, tc.dbType, l.fracDigits, v.Text, len(frac))
		case l.sigDigits >= 0:
			if _, err := strconv.ParseInt(v.Text, 10, 64); err == nil {
				return nil // stored as an integer: exact
			}
			digits := strings.Trim(intPart+frac, "0")
			if len(digits) > l.sigDigits {
				return fmt.Errorf("%w: column %s (%s) keeps numbers as 8-byte floats of %d significant digits; %q has %d: declare the column TEXT to keep every digit", ErrBadValue, c.Name, tc.dbType, l.sigDigits, v.Text, len(digits))
			}
		}
	case "T":
		if l.secDigits < 0 {
			return nil
		}
		_, frac, _ := strings.Cut(strings.TrimSuffix(v.Text, "Z"), ".")
		if len(frac) > l.secDigits {
			return fmt.Errorf("%w: column %s (%s) keeps %d fractional-second digits; %q has %d and would be rounded", ErrBadValue, c.Name, tc.dbType, l.secDigits, v.Text, len(frac))
		}
	}
	return nil
}

// typeParams splits a declared type such as "decimal(20,6) unsigned" or
// "timestamp(3) with time zone" into its lower-case name without the
// parameters ("decimal unsigned", "timestamp with time zone") and the
// parameters.
func typeParams(typ string) (base string, params []int) {
	t := strings.ToLower(strings.TrimSpace(typ))
	i := strings.IndexByte(t, '(')
	if i < 0 {
		return t, nil
	}
	j := strings.IndexByte(t[i:], ')')
	if j < 0 {
		return t, nil
	}
	for _, p := range strings.Split(t[i+1:i+j], ",") {
		n, err := strconv.Atoi(strings.TrimSpace(p))
		if err != nil {
			return t, nil
		}
		params = append(params, n)
	}
	return strings.Join(strings.Fields(t[:i]+" "+t[i+j+1:]), " "), params
}
