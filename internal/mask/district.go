package mask

import (
	"strings"
	"unicode"
)

// The district rule keeps an address up to its district or county level and
// marks the cut with districtMarker, always — also when nothing followed — so
// the masked value depends on the district alone: rows group and join by it,
// and nobody can tell a bare district from a full address.
//
// Addresses are free text, so it reads administrative units from the start,
// each one a run of Chinese characters ending in a level word:
//
//	province    省, 自治区, 特别行政区
//	prefecture  地区, 自治州, 盟
//	city        市 — prefecture-level, or county-level after a prefecture
//	county      区, 县, 旗 (so also 自治县, 自治旗, 林区, 特区)
//
// and stops at the first county-level unit: 福建省福州市鼓楼区五四路100号 →
// 福建省福州市鼓楼区. A 市 after a city or prefecture is a county-level city
// (江苏省苏州市昆山市 …). A city followed by no county stands for one
// (湖北省仙桃市, 广东省东莞市 have no districts), so is kept; as are a lone
// province or prefecture. The code-table placeholders 市辖区 and
// 省直辖县级行政区划 are passed over, not taken for a district. Units need
// no province first (广州市海珠区…, 鼓楼区…), and spaces between units are
// kept (福建省 福州市 鼓楼区).
//
// Some names hold a level word: a unit runs on over a second level word right
// after the first (红旗区, 社旗县, 梅县区, 辉县市, 津市市, 新市区) and up to an
// autonomous ending before any other level word (西盟佤族自治县), when the
// longer reading is a plausible unit.
//
// When unsure, the rule keeps less: a candidate unit is refused if it holds
// anything but Chinese characters, is longer than any real unit (9
// characters, 16 for autonomous ones such as 双江拉祜族佤族布朗族傣族自治县), holds a
// street word (路 街 巷 弄 号 镇 村 栋 幢 室) other than as its first character
// or right before its level word (镇海区, 上街区 are real), ends in a word
// for a place inside a district (小区, 社区, 工业园区 …) or in a section of one
// (花园东区), is a two-character banner (红旗), or runs on into a street
// (红旗路, 市场). Reading stops at the first refused unit and keeps what was
// read before. An address with no unit at all keeps its first characters —
// half of them, at most 6.
//
// These heuristics were checked, once, against all ~2,800 county-level
// divisions of the national code table (GB/T 2260) — with and without
// province and prefecture, with spaces, followed by streets, compounds and
// buildings; all were cut right. The known shortfall is a municipal county
// written with its table placeholder (重庆市县城口县 → 重庆市县), which keeps less.
const districtMarker = "****"

// maxUndistricted is the most characters kept of an address without any
// recognisable unit.
const maxUndistricted = 6

type unit uint8

const (
	noUnit unit = iota
	placeholderUnit
	provinceUnit
	prefectureUnit
	cityUnit
	countyUnit
)

// levelWords end units, longer ones first where they overlap.
var levelWords = []struct {
	word string
	unit unit
}{
	{"特别行政区", provinceUnit}, {"自治区", provinceUnit}, {"自治州", prefectureUnit}, {"地区", prefectureUnit},
	{"省", provinceUnit}, {"盟", prefectureUnit}, {"市", cityUnit}, {"区", countyUnit}, {"县", countyUnit}, {"旗", countyUnit},
}

var (
	placeholders = []string{"市辖区", "省直辖县级行政区划", "自治区直辖县级行政区划"}
	// notDistricts end in 区 but name a place inside a district.
	notDistricts = []string{"小区", "社区", "校区", "景区", "厂区", "片区", "院区", "分区", "工业园区", "产业园区", "科技园区",
		"住宅区", "生活区", "宿舍区", "商业区", "工业区", "服务区", "保护区", "旅游区", "度假区", "示范区", "试验区", "实验区"}
	// levelWordPairs are the level words that follow each other in real
	// names: 红旗区, 社旗县, 梅县区, 辉县市, 津市市, 新市区.
	levelWordPairs   = [][2]rune{{'旗', '区'}, {'旗', '县'}, {'县', '区'}, {'县', '市'}, {'市', '市'}, {'市', '区'}}
	streetWords      = "路街巷弄号镇村栋幢室"
	streetFollowers  = "路街巷弄号村"
	notCityFollowers = "场民政委府" // 市场, 市民, 市政, 市委, 市府
)

const (
	maxUnitLen           = 9
	maxAutonomousUnitLen = 16
)

func district(value string) string {
	rs := []rune(strings.TrimSpace(value))
	end := districtEnd(rs)
	if end < 0 {
		end = min(maxUndistricted, len(rs)/2)
	}
	return strings.TrimRightFunc(string(rs[:end]), unicode.IsSpace) + districtMarker
}

// districtEnd returns how many runes of the address to keep: through its
// county-level unit, or the last unit read before a refusal; -1 when no
// unit was read.
func districtEnd(rs []rune) int {
	end, pos := -1, 0
	var last unit // the highest level read so far: noUnit, provinceUnit or prefectureUnit
	for {
		for pos < len(rs) && unicode.IsSpace(rs[pos]) {
			pos++
		}
		next, u := readUnit(rs, pos)
		switch u {
		case noUnit:
			return end
		case placeholderUnit:
			pos = next
			continue
		case provinceUnit:
			if last != noUnit {
				return end
			}
			last = provinceUnit
		case prefectureUnit:
			if last == prefectureUnit {
				return end
			}
			last = prefectureUnit
		case cityUnit:
			if last == prefectureUnit { // a county-level city
				return next
			}
			last = prefectureUnit
		case countyUnit:
			return next
		}
		end, pos = next, next
	}
}

// readUnit reads the administrative unit starting at pos, returning where it
// ends and its level, or noUnit.
func readUnit(rs []rune, pos int) (int, unit) {
	if n := placeholderAt(rs[pos:]); n > 0 {
		return pos + n, placeholderUnit
	}
	limit := min(len(rs), pos+maxAutonomousUnitLen)
	for i := pos + 1; i < limit; i++ { // a unit has at least one character before its level word
		end, u := levelWordAt(rs, i)
		if u == noUnit {
			continue
		}
		if longer, v := longerReading(rs, end, limit); v != noUnit && acceptable(rs, pos, longer, v) {
			return longer, v
		}
		if acceptable(rs, pos, end, u) {
			return end, u
		}
		return 0, noUnit
	}
	return 0, noUnit
}

// levelWordAt returns the end and level of a level word starting at i.
func levelWordAt(rs []rune, i int) (int, unit) {
	if i >= len(rs) {
		return 0, noUnit
	}
	switch rs[i] { // the first characters of levelWords: most are none
	case '特', '自', '地', '省', '盟', '市', '区', '县', '旗':
	default:
		return 0, noUnit
	}
	for _, w := range levelWords {
		if hasRunePrefix(rs[i:], w.word) {
			return i + len([]rune(w.word)), w.unit
		}
	}
	return 0, noUnit
}

// longerReading returns where a unit whose level word ends at end would end
// if that word were part of its name: at a second level word right after it
// (红旗区, 辉县市; see levelWordPairs), or at an autonomous ending before any other level word
// (西盟佤族自治县); noUnit when there is none.
func longerReading(rs []rune, end, limit int) (int, unit) {
	if end < len(rs) && levelWordPair(rs[end-1], rs[end]) && !startsPlaceholder(rs[end:]) {
		return levelWordAt(rs, end)
	}
	for j := end; j < limit; j++ {
		if rs[j] == '自' && j+2 < len(rs) && rs[j+1] == '治' {
			switch rs[j+2] {
			case '州':
				return j + 3, prefectureUnit
			case '县', '旗':
				return j + 3, countyUnit
			}
		}
		if _, u := levelWordAt(rs, j); u != noUnit {
			break
		}
	}
	return 0, noUnit
}

// levelWordPair says whether a and b are one of levelWordPairs.
func levelWordPair(a, b rune) bool {
	for _, p := range levelWordPairs {
		if p[0] == a && p[1] == b {
			return true
		}
	}
	return false
}

func startsPlaceholder(rs []rune) bool { return placeholderAt(rs) > 0 }

// placeholderAt returns the length of the placeholder rs starts with, or 0.
func placeholderAt(rs []rune) int {
	if len(rs) == 0 || (rs[0] != '市' && rs[0] != '省' && rs[0] != '自') { // the placeholders' first characters
		return 0
	}
	for _, p := range placeholders {
		if hasRunePrefix(rs, p) {
			return len([]rune(p))
		}
	}
	return 0
}

// acceptable reports whether rs[pos:end] of level u is plausibly an
// administrative unit.
func acceptable(rs []rune, pos, end int, u unit) bool {
	return plausibleName(rs[pos:end], u) && !runsIntoStreet(rs, end, u)
}

func plausibleName(name []rune, u unit) bool {
	s := string(name)
	autonomous := strings.HasSuffix(s, "自治州") || strings.HasSuffix(s, "自治县") || strings.HasSuffix(s, "自治旗")
	if len(name) > maxUnitLen && !autonomous || len(name) > maxAutonomousUnitLen {
		return false
	}
	for i, r := range name {
		if !unicode.Is(unicode.Han, r) {
			return false
		}
		// A street word inside refuses the unit, but not as the first
		// character (镇海区, 路南区), right before the level word (上街区,
		// 景德镇市), nor in an autonomous name (孟村回族自治县).
		if i > 0 && i < len(name)-2 && !autonomous && strings.ContainsRune(streetWords, r) {
			return false
		}
	}
	if u == countyUnit {
		for _, w := range notDistricts {
			if strings.HasSuffix(s, w) {
				return false
			}
		}
		switch {
		case strings.HasSuffix(s, "旗") && len(name) < 3: // every banner has a name of two or more (镶黄旗); 红旗 is a street
			return false
		case len(name) > 3 && strings.HasSuffix(s, "区") && strings.ContainsRune("东西南北中", name[len(name)-2]):
			return false // a section of a compound (花园东区); real ones are short (河东区, 市中区)
		}
	}
	return true
}

// runsIntoStreet reports whether the unit ending at end is the start of a
// street or place name (红旗路, 市场) rather than a unit: it is followed by a
// street word, and no unit begins there (唐山市路南区 is a city and a district).
func runsIntoStreet(rs []rune, end int, u unit) bool {
	if end == len(rs) {
		return false
	}
	if next := rs[end]; !strings.ContainsRune(streetFollowers, next) && (u != cityUnit || !strings.ContainsRune(notCityFollowers, next)) {
		return false
	}
	_, following := readUnit(rs, end)
	return following != cityUnit && following != countyUnit
}

func hasRunePrefix(rs []rune, prefix string) bool {
	i := 0
	for _, r := range prefix {
		if i >= len(rs) || rs[i] != r {
			return false
		}
		i++
	}
	return true
}
