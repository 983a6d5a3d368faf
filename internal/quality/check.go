package quality

import (
	"errors"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"govshare/internal/checkdigit"
)

// status of one value after the first pass of Check.
const (
	stOK       byte = iota
	stEmpty         // null, and allowed to be
	stRequired      // null, but required
	stType          // not a value of the item's data type
)

// span is a canonical value written into the arena of one Check.
type span struct{ item, start, end int }

// Check validates one record given as strings aligned with the items
// ("" is null; missing trailing values are null, extra ones ignored) and
// returns canonical values (dates as YYYY-MM-DD, datetimes RFC 3339 in
// UTC, numbers without grouping, logicals "true"/"false", trimmed text,
// citizen IDs and credit codes in capitals) plus every violation, in item
// order, as of now. Safe for concurrent use.
func (c *Checker) Check(values []string) (canonical []string, violations []Violation) {
	canonical = make([]string, len(c.items))
	return canonical, c.CheckInto(canonical, values, Moment{})
}

// Moment is the time records are checked as of ("today" of date ranges,
// the latest birth date of a citizen ID), with its date in China
// Standard Time. The zero Moment is now, whenever a record is checked.
type Moment struct {
	now   time.Time
	today int // YYYYMMDD
}

// At is the moment t.
func At(t time.Time) Moment {
	y, m, d := t.In(cst).Date()
	return Moment{now: t, today: y*10000 + int(m)*100 + d}
}

// CheckInto is Check as of at, writing the canonical values into
// canonical, one for each item: for a pipeline checking a million
// records, which reads the time once for a thousand of them and keeps
// their values in one slice, rather than one each.
func (c *Checker) CheckInto(canonical, values []string, at Moment) (violations []Violation) {
	if c.needsToday && at.now.IsZero() {
		at = At(time.Now())
	}
	n := len(c.items)
	canonical = canonical[:n]
	clear(canonical)
	var statusBuf [64]byte
	status := statusBuf[:0]
	if n > len(statusBuf) {
		status = make([]byte, 0, n)
	}
	status = status[:n]
	// Rewritten values go to one arena, turned into one string at the end
	// of the first pass: a record costs at most one allocation beyond the
	// result slices, and none when every value is already canonical.
	var arenaBuf [256]byte
	arena := arenaBuf[:0]
	var spanBuf [16]span
	spans := spanBuf[:0]

	for i := range c.items {
		it := &c.items[i]
		v := ""
		if i < len(values) {
			v = trimSpace(values[i])
		}
		if v == "" {
			status[i] = stEmpty
			if it.required {
				status[i] = stRequired
			}
			continue
		}
		status[i] = stOK
		canonical[i] = v
		start := len(arena)
		switch it.typ {
		case 'C', 'M':
			if it.citizenID && v[len(v)-1] == 'x' {
				arena = append(append(arena, v[:len(v)-1]...), 'X')
			} else if it.creditCode && hasLower(v) {
				for j := 0; j < len(v); j++ {
					arena = append(arena, upper(v[j]))
				}
			}
		case 'N', 'Y', 'I':
			ok, clean := number(v, it.typ != 'I', false)
			switch {
			case !ok || it.typ == 'I' && !fitsInt64(v):
				status[i] = stType
			case !clean:
				arena = appendNumber(arena, v)
			}
		case 'B', 'F':
			ok, clean := number(v, true, true)
			switch {
			case !ok:
				status[i] = stType
			case !clean:
				arena = appendNumber(arena, v)
			}
		case 'D':
			if isCanonicalDate(v) && realDate(digits(v[:4]), digits(v[5:7]), digits(v[8:])) {
				break
			}
			y, m, d, ok := parseDate(v)
			if !ok {
				status[i] = stType
				break
			}
			arena = appendDate(arena, y, m, d)
		case 'T':
			t, ok := parseDateTime(v)
			if !ok {
				status[i] = stType
				break
			}
			arena = t.UTC().AppendFormat(arena, time.RFC3339Nano)
			if string(arena[start:]) == v { // already canonical: keep it
				arena = arena[:start]
			}
		case 'L':
			l, ok := logical(v)
			if !ok {
				status[i] = stType
			}
			canonical[i] = l
		case 'G':
			if !base64OK(v) {
				status[i] = stType
			}
		}
		if status[i] == stType {
			canonical[i] = v
			arena = arena[:start]
		} else if len(arena) > start {
			spans = append(spans, span{i, start, len(arena)})
		}
	}
	if len(spans) > 0 {
		s := string(arena)
		for _, sp := range spans {
			canonical[sp.item] = s[sp.start:sp.end]
		}
	}

	as := asOf{Moment: at}
	for i := range c.items {
		it := &c.items[i]
		switch status[i] {
		case stEmpty:
			continue
		case stRequired:
			violations = append(violations, c.violation(it, "required", "必填，不能为空", "is required"))
			continue
		case stType:
			zh, en := typeProblem(it.typ)
			violations = append(violations, c.violation(it, "type", zh, en))
			continue
		}
		violations = c.rules(it, canonical, status, &as, canonical[i], violations)
	}
	return violations
}

// asOf is the moment one record is checked as of, and whether its
// citizen IDs are valid, worked out when a rule first asks and then kept:
// up to three rules of a record ask about the same ID.
type asOf struct {
	Moment
	ids [2]struct {
		item int // the citizen ID item + 1; 0: none
		err  error
	}
}

// citizenID checks v, the value of item j, as a citizen ID as of now.
func (a *asOf) citizenID(j int, v string) error {
	for _, id := range a.ids {
		if id.item == j+1 {
			return id.err
		}
	}
	err := checkdigit.CitizenIDAsOf(v, a.now)
	for k := range a.ids {
		if a.ids[k].item == 0 {
			a.ids[k].item, a.ids[k].err = j+1, err
			break
		}
	}
	return err
}

// rules checks one present, well-typed value against its item's rules.
func (c *Checker) rules(it *item, canonical []string, status []byte, at *asOf, v string, vs []Violation) []Violation {
	if it.maxLen > 0 && len(v) > it.maxLen && utf8.RuneCountInString(v) > it.maxLen {
		vs = append(vs, c.violation(it, "length", "超过"+strconv.Itoa(it.maxLen)+"个字符", "is longer than "+strconv.Itoa(it.maxLen)+" characters"))
	}
	if it.regex != nil && (it.fixed == nil && !it.regex.MatchString(v) || it.fixed != nil && !it.fixed.match(v)) {
		vs = append(vs, c.violation(it, "regex", "不符合规定的格式", "does not match the required pattern"))
	}
	if it.code != "" && !c.ref.CodeKnown(it.code, v) {
		vs = append(vs, c.violation(it, "code", "不是代码表“"+it.code+"”中的代码", "is not a code of the code table "+strconv.Quote(it.code)))
	}
	if it.citizenID {
		if err := at.citizenID(it.index, v); err != nil {
			vs = append(vs, c.codeViolation(it, "citizen_id", "公民身份号码", "citizen ID", err))
		} else if !c.regionKnown(v[:6]) {
			vs = append(vs, c.codeViolation(it, "citizen_id", "公民身份号码", "citizen ID", checkdigit.ErrCitizenIDRegion))
		}
	}
	if it.creditCode {
		if err := checkdigit.CreditCode(v); err != nil {
			vs = append(vs, c.codeViolation(it, "credit_code", "统一社会信用代码", "credit code", err))
		}
	}
	if it.region && !c.regionKnown(v) {
		if checkdigit.RegionCode(v) != nil {
			vs = append(vs, c.violation(it, "region", "应为6位行政区划代码", "is not a 6-digit region code"))
		} else {
			vs = append(vs, c.violation(it, "region", "不在行政区划代码表中(含已撤销代码)", "is not in the region table (retired codes included)"))
		}
	}
	if it.phone && !phoneOK(v) {
		vs = append(vs, c.violation(it, "phone", "不是手机号码或带区号的固定电话", "is not a mobile number or a landline with its area code"))
	}
	if r := it.num; r != nil {
		f, err := strconv.ParseFloat(v, 64)
		switch {
		case err != nil && !errors.Is(err, strconv.ErrRange):
			vs = append(vs, c.violation(it, "range", "不是数值，无法检查范围", "is not a number, so its range cannot be checked"))
		case r.hasMin && f < r.min || r.hasMax && f > r.max:
			vs = append(vs, c.violation(it, "range", "超出范围："+r.zh(), "is out of range: "+r.en()))
		}
	}
	if r := it.date; r != nil {
		y, m, d, ok := parseDate(v)
		if it.typ == 'T' {
			// A date-time's day is the day in China Standard Time.
			t, err := time.Parse(time.RFC3339Nano, v)
			ty, tm, td := t.In(cst).Date()
			y, m, d, ok = ty, int(tm), td, err == nil
		}
		day := y*10000 + m*100 + d
		from, to := r.from, r.to
		if r.fromToday || r.toToday {
			today := at.today
			if r.fromToday {
				from = today
			}
			if r.toToday {
				to = today
			}
		}
		switch {
		case !ok:
			vs = append(vs, c.violation(it, "date_range", "不是日期，无法检查范围", "is not a date, so its range cannot be checked"))
		case from != 0 && day < from || to != 0 && day > to:
			vs = append(vs, c.violation(it, "date_range", "超出日期范围："+r.zh(), "is out of the date range: "+r.en()))
		}
	}
	if j := it.idBirth; j >= 0 && status[j] == stOK && at.citizenID(j, canonical[j]) == nil {
		birth, _ := checkdigit.CitizenIDBirthString(canonical[j])
		y, m, d, ok := parseDate(v)
		if !ok || y*10000+m*100+d != digits(birth) {
			vs = append(vs, c.violation(it, "id_birth", "与“"+c.items[j].Name+"”中的出生日期不一致", "differs from the birth date in "+c.items[j].Name))
		}
	}
	if j := it.idSex; j >= 0 && status[j] == stOK && at.citizenID(j, canonical[j]) == nil {
		idMale, _ := checkdigit.CitizenIDMale(canonical[j])
		if male, ok := sexCode(v); ok && male != idMale {
			vs = append(vs, c.violation(it, "id_sex", "与“"+c.items[j].Name+"”中的性别不一致", "differs from the sex in "+c.items[j].Name))
		}
	}
	return vs
}

func (c *Checker) regionKnown(code string) bool {
	if c.ref == nil {
		return checkdigit.RegionCode(code) == nil
	}
	return c.ref.RegionKnown(code)
}

func (c *Checker) codeViolation(it *item, rule, zh, en string, err error) Violation {
	var e *checkdigit.Error
	if errors.As(err, &e) {
		return c.violation(it, rule, zh+e.ZH, en+": "+e.EN)
	}
	return c.violation(it, rule, zh+"无效", en+" is not valid")
}

// phoneOK accepts a mainland mobile number (optionally after +86) or a
// landline with its area code ("0591-87654321", "(0591)87654321",
// "01087654321") and an optional extension ("-123").
func phoneOK(s string) bool {
	m := s
	if strings.HasPrefix(m, "+86") {
		m = m[3:]
	} else if strings.HasPrefix(m, "86") && len(m) > 11 {
		m = m[2:]
	}
	if len(m) == 12 && (m[0] == '-' || m[0] == ' ') {
		m = m[1:]
	}
	if len(m) == 11 && m[0] == '1' && m[1] >= '3' && m[1] <= '9' && allDigits(m) {
		return true
	}
	if local, ext, ok := strings.Cut(s, ")"); ok {
		// (0591)87654321
		return len(local) >= 4 && len(local) <= 5 && local[0] == '(' && local[1] == '0' && allDigits(local[1:]) && localNumber(ext)
	}
	if len(s) < 10 || s[0] != '0' {
		return false
	}
	for _, area := range []int{3, 4} {
		if len(s) <= area || !allDigits(s[:area]) {
			continue
		}
		rest := s[area:]
		if rest[0] == '-' {
			rest = rest[1:]
		}
		if localNumber(rest) {
			return true
		}
	}
	return false
}

// localNumber is 7 or 8 digits, not starting with 0, and an optional
// extension of 1–6 digits after '-'.
func localNumber(s string) bool {
	n, ext, hasExt := strings.Cut(s, "-")
	if hasExt && (ext == "" || len(ext) > 6 || !allDigits(ext)) {
		return false
	}
	return (len(n) == 7 || len(n) == 8) && n[0] != '0' && allDigits(n)
}

func typeProblem(typ byte) (zh, en string) {
	switch typ {
	case 'N', 'Y':
		return "不是数值(数字，可带小数点和千分位逗号)", "is not a number (digits, an optional decimal point and thousands commas)"
	case 'I':
		return "不是整数", "is not a whole number"
	case 'B', 'F':
		return "不是数值", "is not a number"
	case 'D':
		return "不是真实的日期，应写作 YYYYMMDD 或 YYYY-MM-DD", "is not a real date; write YYYYMMDD or YYYY-MM-DD"
	case 'T':
		return "不是有效的日期时间，如 2026-03-01 08:30:00(北京时间)或 20260301083000", "is not a valid date-time, e.g. 2026-03-01 08:30:00 (China Standard Time) or 20260301083000"
	case 'L':
		return "不是逻辑值，应为 1/0、true/false 或 是/否", "is not a logical value: 1/0, true/false or 是/否"
	case 'G':
		return "不是Base64编码", "is not base64"
	}
	return "类型不符", "has the wrong type"
}

// trimSpace is strings.TrimSpace, quicker for a value whose first and
// last characters are no spaces, as most values' are.
func trimSpace(s string) string {
	if s == "" {
		return s
	}
	first, last := rune(s[0]), rune(s[len(s)-1])
	if first > ' ' && first < utf8.RuneSelf && last > ' ' && last < utf8.RuneSelf {
		return s
	}
	if first >= utf8.RuneSelf {
		first, _ = utf8.DecodeRuneInString(s)
	}
	if last >= utf8.RuneSelf {
		last, _ = utf8.DecodeLastRuneInString(s)
	}
	if first > ' ' && first != utf8.RuneError && !unicode.IsSpace(first) && last > ' ' && last != utf8.RuneError && !unicode.IsSpace(last) {
		return s
	}
	return strings.TrimSpace(s)
}

func hasLower(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 'a' && s[i] <= 'z' {
			return true
		}
	}
	return false
}

func upper(c byte) byte {
	if c >= 'a' && c <= 'z' {
		return c - 'a' + 'A'
	}
	return c
}

func (r *numRange) zh() string {
	switch {
	case !r.hasMin:
		return "应不大于" + r.maxS
	case !r.hasMax:
		return "应不小于" + r.minS
	}
	return "应在" + r.minS + "至" + r.maxS + "之间"
}

func (r *numRange) en() string {
	switch {
	case !r.hasMin:
		return "at most " + r.maxS
	case !r.hasMax:
		return "at least " + r.minS
	}
	return "from " + r.minS + " to " + r.maxS
}

func (r *dateRange) zh() string {
	from, to := r.fromS, r.toS
	if r.fromToday {
		from = "今天"
	}
	if r.toToday {
		to = "今天"
	}
	switch {
	case from == "":
		return "应不晚于" + to
	case to == "":
		return "应不早于" + from
	}
	return "应在" + from + "至" + to + "之间"
}

func (r *dateRange) en() string {
	switch {
	case r.fromS == "":
		return "on or before " + r.toS
	case r.toS == "":
		return "on or after " + r.fromS
	}
	return "from " + r.fromS + " to " + r.toS
}
