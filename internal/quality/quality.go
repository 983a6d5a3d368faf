// Package quality is the rule engine of data governance (数据治理 / 质量规则):
// every data item of a catalog entry may declare quality rules, and every
// record collected for the resource is checked against them and against
// the item's data type. Bad records are kept aside with their violations,
// never silently dropped; that is the collecting pipeline's job, this
// package only says what is wrong. It knows nothing of the catalog: the
// catalog asks Parse to validate a rule string, the pipeline asks Compile
// for a Checker.
//
// # Rule grammar
//
// A rule string is a list of rules separated by semicolons, e.g.
// "required;citizen_id" or "code:GB/T 2261.1". Spaces around rules are
// ignored; a literal semicolon inside an argument is written \;.
//
//	required               a value must be given (key items are always required)
//	length:N               at most N characters; C and M items are also held to their length
//	regex:PATTERN          the whole value matches the Go RE2 PATTERN (anchored)
//	code:TABLE             the value is a code of the code table TABLE (代码表, e.g. GB/T 2261.1)
//	citizen_id             a citizen ID (GB 11643): check character, real birth date not in the
//	                       future, region part known to the region table (retired codes accepted)
//	credit_code            a unified social credit code (GB 32100): alphabet and check character
//	region                 a region code (GB/T 2260) known to the region table, current or retired
//	range:MIN..MAX         a number from MIN to MAX inclusive; either side may be empty
//	date_range:FROM..TO    a date from FROM to TO inclusive (YYYY-MM-DD or "today"); either side may be empty
//	unique                 no two records of the resource have the same value (key items are unique too)
//	id_birth:ITEM          this date equals the birth date inside the citizen ID of item ITEM
//	id_sex:ITEM            this GB/T 2261.1 sex code (1 male, 2 female) agrees with the citizen ID of ITEM
//	phone                  a mainland mobile number or a landline with its area code
//
// ITEM is the other item's machine name (or its name). The data type
// checks come with the item and need no rule: N and Y decimals, I
// integers, B and F floating-point numbers, D dates (YYYYMMDD or
// YYYY-MM-DD), T date-times (China Standard Time unless a zone is given),
// L logicals (1/0, true/false, 是/否), G base64, C and M text.
//
// Violations carry a stable rule code (the rule's name, or "type") and a
// message in Chinese and English that says what is wrong with the value
// without repeating it: values are often personal data.
package quality

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// Item is a data item as the rules see it.
type Item struct {
	Name, MachineName, DataType string
	Length                      int
	Key                         bool
	Rule                        string
}

// Reference is the reference data rules are checked against: the region
// table and the code tables. Implementations must be safe for concurrent
// reads.
type Reference interface {
	RegionKnown(code string) bool
	CodeKnown(table, code string) bool
	HasTable(table string) bool
}

// Violation is one broken rule of one item of a record.
type Violation struct {
	Item string `json:"item"`
	Rule string `json:"rule"`
	ZH   string `json:"message_zh"`
	EN   string `json:"message_en"`
}

// RuleError is a rule string that cannot be used, naming the offending
// part.
type RuleError struct {
	Item   string // the item's machine name; "" from Parse
	Part   string // the offending rule, as written
	ZH, EN string
}

func (e *RuleError) Error() string {
	s := "quality rule"
	if e.Item != "" {
		s += " of " + e.Item
	}
	if e.Part != "" {
		s += " " + strconv.Quote(e.Part)
	}
	return s + ": " + e.EN
}

type kind int

const (
	kRequired kind = iota
	kLength
	kRegex
	kCode
	kCitizenID
	kCreditCode
	kRegion
	kRange
	kDateRange
	kUnique
	kIDBirth
	kIDSex
	kPhone
)

// names are the rules' names, which are also their violations' codes.
var names = map[string]kind{
	"required": kRequired, "length": kLength, "regex": kRegex, "code": kCode, "citizen_id": kCitizenID,
	"credit_code": kCreditCode, "region": kRegion, "range": kRange, "date_range": kDateRange, "unique": kUnique,
	"id_birth": kIDBirth, "id_sex": kIDSex, "phone": kPhone,
}

// withArg says which rules take an argument after a colon.
var withArg = map[kind]bool{kLength: true, kRegex: true, kCode: true, kRange: true, kDateRange: true, kIDBirth: true, kIDSex: true}

// rule is one parsed rule.
type rule struct {
	kind kind
	text string // as written, for messages
	arg  string
	n    int
	re   *regexp.Regexp
	num  numRange
	date dateRange
}

type numRange struct {
	min, max       float64
	hasMin, hasMax bool
	minS, maxS     string
}

// dateRange bounds are YYYYMMDD numbers; a "today" bound is resolved at
// each check.
type dateRange struct {
	from, to           int
	fromToday, toToday bool
	fromS, toS         string
}

// Parse checks a rule string's syntax (for catalog validation); the error
// is a *RuleError naming the offending part.
func Parse(rule string) error {
	_, err := parse(rule)
	return err
}

func ruleErr(part, zh, en string) *RuleError { return &RuleError{Part: part, ZH: zh, EN: en} }

// split cuts a rule string at semicolons that are not escaped.
func split(s string) []string {
	var out []string
	start := 0
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) && s[i+1] == ';' {
			i++
			continue
		}
		if s[i] == ';' {
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}

func parse(s string) ([]rule, error) {
	var rules []rule
	seen := map[kind]bool{}
	for _, tok := range split(s) {
		tok = strings.TrimSpace(tok)
		if tok == "" {
			continue
		}
		name, arg, hasArg := strings.Cut(tok, ":")
		name = strings.ToLower(strings.TrimSpace(name))
		k, ok := names[name]
		if !ok {
			return nil, ruleErr(tok, "未知的规则“"+name+"”，可用："+ruleNames(), "unknown rule "+strconv.Quote(name)+"; use "+ruleNames())
		}
		if seen[k] {
			return nil, ruleErr(tok, "规则“"+name+"”重复", "the rule "+name+" appears twice")
		}
		seen[k] = true
		r := rule{kind: k, text: tok}
		if k != kRegex {
			arg = strings.ReplaceAll(strings.TrimSpace(arg), `\;`, ";")
		}
		switch {
		case withArg[k] && (!hasArg || strings.TrimSpace(arg) == ""):
			return nil, ruleErr(tok, "规则“"+name+"”需要参数，写作 "+name+":…", "the rule "+name+" needs an argument: "+name+":…")
		case !withArg[k] && hasArg:
			return nil, ruleErr(tok, "规则“"+name+"”不带参数", "the rule "+name+" takes no argument")
		}
		r.arg = arg
		switch k {
		case kLength:
			n, err := strconv.Atoi(arg)
			if err != nil || n < 1 || n > 100000 {
				return nil, ruleErr(tok, "长度应为1到100000之间的整数", "the length is a whole number from 1 to 100000")
			}
			r.n = n
		case kRegex:
			re, err := regexp.Compile(`^(?:` + arg + `)$`)
			if err != nil {
				return nil, ruleErr(tok, "正则表达式无效："+err.Error(), "invalid regular expression: "+err.Error())
			}
			r.re = re
		case kCode:
			if len(arg) > 64 {
				return nil, ruleErr(tok, "代码表名称不超过64个字符", "a code table name has at most 64 characters")
			}
		case kRange:
			lo, hi, ok := strings.Cut(arg, "..")
			if !ok {
				return nil, ruleErr(tok, "范围写作 range:最小值..最大值，一侧可省略", "write a range as range:MIN..MAX; either side may be empty")
			}
			nr := numRange{minS: strings.TrimSpace(lo), maxS: strings.TrimSpace(hi)}
			var err error
			if nr.minS != "" {
				if nr.min, err = strconv.ParseFloat(nr.minS, 64); err != nil {
					return nil, ruleErr(tok, "范围的最小值不是数值", "the range's minimum is not a number")
				}
				nr.hasMin = true
			}
			if nr.maxS != "" {
				if nr.max, err = strconv.ParseFloat(nr.maxS, 64); err != nil {
					return nil, ruleErr(tok, "范围的最大值不是数值", "the range's maximum is not a number")
				}
				nr.hasMax = true
			}
			if !nr.hasMin && !nr.hasMax {
				return nil, ruleErr(tok, "范围至少需要一侧", "a range needs at least one side")
			}
			if nr.hasMin && nr.hasMax && nr.min > nr.max {
				return nil, ruleErr(tok, "范围的最小值大于最大值", "the range's minimum is above its maximum")
			}
			r.num = nr
		case kDateRange:
			lo, hi, ok := strings.Cut(arg, "..")
			if !ok {
				return nil, ruleErr(tok, "日期范围写作 date_range:YYYY-MM-DD..YYYY-MM-DD，一侧可省略或写 today", "write a date range as date_range:YYYY-MM-DD..YYYY-MM-DD; either side may be empty or today")
			}
			dr := dateRange{fromS: strings.TrimSpace(lo), toS: strings.TrimSpace(hi)}
			var okFrom, okTo bool
			dr.from, dr.fromToday, okFrom = dateBound(dr.fromS)
			dr.to, dr.toToday, okTo = dateBound(dr.toS)
			if !okFrom || !okTo {
				return nil, ruleErr(tok, "日期范围的边界应为 YYYY-MM-DD 或 today", "a date range's bounds are YYYY-MM-DD or today")
			}
			if dr.fromS == "" && dr.toS == "" {
				return nil, ruleErr(tok, "日期范围至少需要一侧", "a date range needs at least one side")
			}
			if dr.from != 0 && dr.to != 0 && dr.from > dr.to {
				return nil, ruleErr(tok, "日期范围的起始日期晚于结束日期", "the date range starts after it ends")
			}
			r.date = dr
		}
		rules = append(rules, r)
	}
	return rules, nil
}

// dateBound reads one side of a date range: "" (open), "today" or a date.
func dateBound(s string) (day int, today, ok bool) {
	switch strings.ToLower(s) {
	case "":
		return 0, false, true
	case "today":
		return 0, true, true
	}
	y, m, d, ok := parseDate(s)
	return y*10000 + m*100 + d, false, ok
}

func ruleNames() string {
	return "required, length:N, regex:…, code:TABLE, citizen_id, credit_code, region, range:MIN..MAX, date_range:FROM..TO, unique, id_birth:ITEM, id_sex:ITEM, phone"
}

// Checker checks records of one resource. It is immutable once compiled
// and safe for concurrent use.
type Checker struct {
	items      []item
	ref        Reference
	unique     []int
	needsToday bool
}

// item is a compiled data item.
type item struct {
	Item
	typ      byte
	required bool
	maxLen   int // 0: no limit
	rules    []rule
	// checks in the order they run; cross-item rules run after every
	// item has its canonical value.
	regex      *regexp.Regexp
	fixed      fixedPattern // regex, when it is a fixed run of characters
	code       string
	citizenID  bool
	creditCode bool
	region     bool
	phone      bool
	num        *numRange
	date       *dateRange
	idBirth    int // index of the citizen ID item, -1 if none
	idSex      int
	index      int // of the item itself
}

// Compile prepares the checks for a resource's items (in column order).
// Unknown code tables are an error. ref may be nil: then region codes are
// checked for their shape only and code tables cannot be used.
func Compile(items []Item, ref Reference) (*Checker, error) {
	c := &Checker{ref: ref}
	for i, in := range items {
		it := item{Item: in, idBirth: -1, idSex: -1, index: i}
		it.DataType = strings.ToUpper(strings.TrimSpace(in.DataType))
		if it.DataType == "" {
			it.DataType = "C"
		}
		if len(it.DataType) != 1 || !strings.Contains("CNYDTLMGBIF", it.DataType) {
			return nil, &RuleError{Item: in.MachineName, ZH: "数据类型应为 C/N/Y/D/T/L/M/G/B/I/F 之一", EN: "the data type is one of C/N/Y/D/T/L/M/G/B/I/F"}
		}
		it.typ = it.DataType[0]
		if (it.typ == 'C' || it.typ == 'M') && in.Length > 0 {
			it.maxLen = in.Length
		}
		rules, err := parse(in.Rule)
		if err != nil {
			re := err.(*RuleError)
			re.Item = in.MachineName
			return nil, re
		}
		it.rules = rules
		it.required = in.Key
		unique := in.Key
		for _, r := range rules {
			switch r.kind {
			case kRequired:
				it.required = true
			case kLength:
				if it.maxLen == 0 || r.n < it.maxLen {
					it.maxLen = r.n
				}
			case kRegex:
				it.regex = r.re
				it.fixed, _ = compileFixed(r.arg)
			case kCode:
				if ref == nil || !ref.HasTable(r.arg) {
					return nil, &RuleError{Item: in.MachineName, Part: r.text, ZH: "代码表“" + r.arg + "”不存在，请平台管理员先导入", EN: "there is no code table " + strconv.Quote(r.arg) + "; a platform administrator must load it first"}
				}
				it.code = r.arg
			case kCitizenID:
				it.citizenID = true
				c.needsToday = true
			case kCreditCode:
				it.creditCode = true
			case kRegion:
				it.region = true
			case kPhone:
				it.phone = true
			case kRange:
				nr := r.num
				it.num = &nr
			case kDateRange:
				dr := r.date
				it.date = &dr
				c.needsToday = c.needsToday || dr.fromToday || dr.toToday
			case kUnique:
				unique = true
			case kIDBirth, kIDSex:
				j := findItem(items, r.arg)
				if j < 0 || j == i {
					return nil, &RuleError{Item: in.MachineName, Part: r.text, ZH: "找不到公民身份号码信息项“" + r.arg + "”", EN: "no citizen ID item " + strconv.Quote(r.arg)}
				}
				if r.kind == kIDBirth {
					it.idBirth = j
				} else {
					it.idSex = j
				}
				c.needsToday = true // the citizen ID is checked as of today
			}
		}
		if unique {
			c.unique = append(c.unique, i)
		}
		c.items = append(c.items, it)
	}
	return c, nil
}

func findItem(items []Item, name string) int {
	for i, it := range items {
		if it.MachineName == name {
			return i
		}
	}
	for i, it := range items {
		if it.Name == name {
			return i
		}
	}
	return -1
}

// Unique lists the indices of items that must be unique within the
// resource (key items and items with the unique rule).
func (c *Checker) Unique() []int { return append([]int(nil), c.unique...) }

// UniqueViolation is the violation of item i's uniqueness, for the
// pipeline that finds the duplicate (uniqueness spans records, so Check
// cannot see it).
func (c *Checker) UniqueViolation(i int) Violation {
	it := &c.items[i]
	return c.violation(it, "unique", "与本资源中已有记录重复", "duplicates another record of the resource")
}

func (c *Checker) violation(it *item, rule, zh, en string) Violation {
	return Violation{Item: it.MachineName, Rule: rule, ZH: it.Name + "：" + zh, EN: fmt.Sprintf("%s (%s): %s", it.Name, it.MachineName, en)}
}
