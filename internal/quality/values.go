package quality

import (
	"strings"
	"time"

	"govshare/internal/checkdigit"
)

// The value parsers below work on bytes and allocate nothing: Check runs
// them on every cell of a million-row upload.

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// num reads up to max digits from s at i, at least one.
func num(s string, i, max int) (n, next int, ok bool) {
	j := i
	for j < len(s) && j-i < max && isDigit(s[j]) {
		n = n*10 + int(s[j]-'0')
		j++
	}
	return n, j, j > i
}

// parseDatePart reads a date at the start of s: YYYYMMDD, or YYYY-M-D with
// '-', '/' or '.' between the parts. It returns where the date ends.
func parseDatePart(s string) (y, m, d, end int, ok bool) {
	if len(s) >= 8 && allDigits(s[:8]) && (len(s) == 8 || !isDigit(s[8])) {
		y, m, d = digits(s[:4]), digits(s[4:6]), digits(s[6:8])
		return y, m, d, 8, realDate(y, m, d)
	}
	var i int
	if y, i, ok = num(s, 0, 4); !ok || i != 4 || i >= len(s) {
		return 0, 0, 0, 0, false
	}
	sep := s[i]
	if sep != '-' && sep != '/' && sep != '.' {
		return 0, 0, 0, 0, false
	}
	if m, i, ok = num(s, i+1, 2); !ok || i >= len(s) || s[i] != sep {
		return 0, 0, 0, 0, false
	}
	if d, i, ok = num(s, i+1, 2); !ok {
		return 0, 0, 0, 0, false
	}
	return y, m, d, i, realDate(y, m, d)
}

// parseDate reads a date value; a midnight time after it ("2026-03-01
// 00:00:00", as databases export dates) is allowed.
func parseDate(s string) (y, m, d int, ok bool) {
	if isCanonicalDate(s) {
		y, m, d = digits(s[:4]), digits(s[5:7]), digits(s[8:])
		return y, m, d, realDate(y, m, d)
	}
	y, m, d, end, ok := parseDatePart(s)
	if !ok {
		return 0, 0, 0, false
	}
	if rest := s[end:]; rest != "" {
		if rest[0] != ' ' && rest[0] != 'T' || !strings.HasPrefix(rest[1:], "00:00") || strings.Trim(rest[1:], "0:.") != "" {
			return 0, 0, 0, false
		}
	}
	return y, m, d, true
}

func realDate(y, m, d int) bool {
	return y >= 1000 && y <= 9999 && m >= 1 && m <= 12 && d >= 1 && d <= checkdigit.DaysIn(y, m)
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return false
		}
	}
	return true
}

func digits(s string) int {
	n := 0
	for i := 0; i < len(s); i++ {
		n = n*10 + int(s[i]-'0')
	}
	return n
}

// isCanonicalDate reports whether s is already YYYY-MM-DD.
func isCanonicalDate(s string) bool {
	return len(s) == 10 && s[4] == '-' && s[7] == '-' && allDigits(s[:4]) && allDigits(s[5:7]) && allDigits(s[8:])
}

// appendDate writes YYYY-MM-DD.
func appendDate(b []byte, y, m, d int) []byte {
	return append(b, byte('0'+y/1000), byte('0'+y/100%10), byte('0'+y/10%10), byte('0'+y%10), '-',
		byte('0'+m/10), byte('0'+m%10), '-', byte('0'+d/10), byte('0'+d%10))
}

// cst is China Standard Time, the zone of date-times written without one.
var cst = time.FixedZone("CST", 8*3600)

// parseDateTime reads a date-time: YYYYMMDDhhmmss (or hhmm), or a date
// as parseDatePart reads it, then ' ' or 'T', hh:mm[:ss[.fraction]] and an
// optional zone (Z, ±hh:mm, ±hhmm, ±hh). A date alone is midnight.
func parseDateTime(s string) (time.Time, bool) {
	if (len(s) == 14 || len(s) == 12) && allDigits(s) {
		y, mo, d := digits(s[:4]), digits(s[4:6]), digits(s[6:8])
		h, mi, sec := digits(s[8:10]), digits(s[10:12]), 0
		if len(s) == 14 {
			sec = digits(s[12:14])
		}
		if !realDate(y, mo, d) || h > 23 || mi > 59 || sec > 59 {
			return time.Time{}, false
		}
		return time.Date(y, time.Month(mo), d, h, mi, sec, 0, cst), true
	}
	y, mo, d, i, ok := parseDatePart(s)
	if !ok {
		return time.Time{}, false
	}
	if i == len(s) {
		return time.Date(y, time.Month(mo), d, 0, 0, 0, 0, cst), true
	}
	if s[i] != ' ' && s[i] != 'T' {
		return time.Time{}, false
	}
	var h, mi, sec, nsec int
	if h, i, ok = num(s, i+1, 2); !ok || i >= len(s) || s[i] != ':' {
		return time.Time{}, false
	}
	if mi, i, ok = num(s, i+1, 2); !ok {
		return time.Time{}, false
	}
	if i < len(s) && s[i] == ':' {
		if sec, i, ok = num(s, i+1, 2); !ok {
			return time.Time{}, false
		}
		if i < len(s) && s[i] == '.' {
			j := i + 1
			scale := 100000000
			for j < len(s) && isDigit(s[j]) {
				nsec += int(s[j]-'0') * scale
				scale /= 10
				j++
			}
			if j == i+1 || j-i-1 > 9 {
				return time.Time{}, false
			}
			i = j
		}
	}
	if h > 23 || mi > 59 || sec > 59 {
		return time.Time{}, false
	}
	loc := cst
	if i < len(s) {
		zone := s[i:]
		switch {
		case zone == "Z" || zone == "z":
			loc = time.UTC
		case zone[0] == '+' || zone[0] == '-':
			zh, j, ok := num(zone, 1, 2)
			if !ok || j != 3 {
				return time.Time{}, false
			}
			zm := 0
			if j < len(zone) && zone[j] == ':' {
				j++
			}
			if j < len(zone) {
				if zm, j, ok = num(zone, j, 2); !ok || j != len(zone) {
					return time.Time{}, false
				}
			}
			if zh > 14 || zm > 59 {
				return time.Time{}, false
			}
			off := (zh*60 + zm) * 60
			if zone[0] == '-' {
				off = -off
			}
			if off == 8*3600 {
				loc = cst
			} else {
				// A fixed zone per value allocates, but only for the
				// rare values written in a zone other than CST or UTC.
				loc = time.FixedZone("", off)
			}
		default:
			return time.Time{}, false
		}
	}
	return time.Date(y, time.Month(mo), d, h, mi, sec, nsec, loc), true
}

// number checks a number: an optional sign, digits (optionally grouped in
// thousands with commas), then for decimals an optional fraction and for
// floats an optional exponent. clean says whether s is already canonical
// (no '+', no commas); if not, appendNumber writes the canonical form.
func number(s string, fraction, exponent bool) (ok, clean bool) {
	i := 0
	clean = true
	if i < len(s) && (s[i] == '+' || s[i] == '-') {
		clean = s[i] == '-'
		i++
	}
	start := i
	group, groups := 0, 0
	for i < len(s) && (isDigit(s[i]) || s[i] == ',') {
		if s[i] == ',' {
			// Groups: 1–3 digits first, exactly 3 after each comma.
			if (groups == 0 && (group == 0 || group > 3)) || (groups > 0 && group != 3) {
				return false, false
			}
			groups++
			group = 0
			clean = false
		} else {
			group++
		}
		i++
	}
	if i == start || group == 0 || (groups > 0 && group != 3) {
		return false, false
	}
	if i < len(s) && s[i] == '.' && fraction {
		i++
		j := i
		for i < len(s) && isDigit(s[i]) {
			i++
		}
		if i == j {
			return false, false
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') && exponent {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		j := i
		for i < len(s) && isDigit(s[i]) {
			i++
		}
		if i == j {
			return false, false
		}
	}
	return i == len(s), clean
}

// appendNumber writes s without a '+' sign and without commas.
func appendNumber(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if s[i] != ',' && s[i] != '+' {
			b = append(b, s[i])
		}
	}
	return b
}

// fitsInt64 reports whether an integer that number accepted (optional
// sign, digits, thousands commas) fits in 64 bits.
func fitsInt64(s string) bool {
	neg := s != "" && s[0] == '-'
	var d [24]byte
	n := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !isDigit(c) || (c == '0' && n == 0) {
			continue
		}
		if n == len(d) {
			return false
		}
		d[n] = c
		n++
	}
	const maxPos, maxNeg = "9223372036854775807", "9223372036854775808"
	switch {
	case n < 19:
		return true
	case n > 19:
		return false
	case neg:
		return string(d[:n]) <= maxNeg
	}
	return string(d[:n]) <= maxPos
}

// logical maps the accepted spellings of a logical value to "true" or
// "false".
func logical(s string) (string, bool) {
	switch {
	case s == "1" || s == "是" || strings.EqualFold(s, "true"):
		return "true", true
	case s == "0" || s == "否" || strings.EqualFold(s, "false"):
		return "false", true
	}
	return "", false
}

// base64OK checks standard base64 with padding.
func base64OK(s string) bool {
	if len(s)%4 != 0 {
		return false
	}
	pad := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '=':
			pad++
			if i < len(s)-2 {
				return false
			}
		case pad > 0:
			return false
		case c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z', isDigit(c), c == '+', c == '/':
		default:
			return false
		}
	}
	return pad <= 2
}

// sexCode reads a sex value that names a sex: GB/T 2261.1 "1"/"2" or the
// words. ok is false for 0 (unknown) and 9 (not stated) and anything else.
func sexCode(s string) (male, ok bool) {
	switch s {
	case "1", "男", "男性":
		return true, true
	case "2", "女", "女性":
		return false, true
	}
	return false, false
}
