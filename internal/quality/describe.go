package quality

import (
	"strconv"
	"strings"
)

// Describe lists each item's rules in words (zh, en), in item order, for
// the upload template's second sheet: its type first, then what is
// required of a value.
func (c *Checker) Describe() [][2]string {
	out := make([][2]string, len(c.items))
	for i := range c.items {
		it := &c.items[i]
		var zh, en []string
		add := func(z, e string) { zh, en = append(zh, z), append(en, e) }
		tz, te := typeWords(it.typ)
		add(tz, te)
		if it.Key {
			add("主键，必填且唯一", "key: required and unique")
		}
		for _, r := range it.rules {
			switch r.kind {
			case kRequired:
				if !it.Key {
					add("必填", "required")
				}
			case kLength:
				// Shown with the item's own length below.
			case kRegex:
				add("须符合格式 "+r.arg, "matches "+r.arg)
			case kCode:
				add("填写代码表“"+r.arg+"”中的代码", "a code of the code table "+strconv.Quote(r.arg))
			case kCitizenID:
				add("公民身份号码(18位，校验码正确，出生日期真实，地址码为行政区划代码)", "a citizen ID (18 characters, correct check character, real birth date, known region)")
			case kCreditCode:
				add("统一社会信用代码(18位，校验码正确，不含I、O、Z、S、V)", "a unified social credit code (18 characters, correct check character, no I, O, Z, S, V)")
			case kRegion:
				add("行政区划代码(6位，GB/T 2260，含已撤销代码)", "a region code (6 digits, GB/T 2260, retired codes accepted)")
			case kRange:
				add("数值"+r.num.zh(), "a number "+r.num.en())
			case kDateRange:
				add("日期"+r.date.zh(), "a date "+r.date.en())
			case kUnique:
				if !it.Key {
					add("在本资源内唯一", "unique within the resource")
				}
			case kIDBirth:
				add("与“"+r.arg+"”中的出生日期一致", "equals the birth date in "+r.arg)
			case kIDSex:
				add("与“"+r.arg+"”中的性别一致(1男 2女)", "agrees with the sex in "+r.arg+" (1 male, 2 female)")
			case kPhone:
				add("手机号码或带区号的固定电话", "a mobile number or a landline with its area code")
			}
		}
		if it.maxLen > 0 {
			add("不超过"+strconv.Itoa(it.maxLen)+"个字符", "at most "+strconv.Itoa(it.maxLen)+" characters")
		}
		out[i] = [2]string{strings.Join(zh, "；"), strings.Join(en, "; ")}
	}
	return out
}

func typeWords(typ byte) (zh, en string) {
	switch typ {
	case 'C':
		return "字符", "text"
	case 'M':
		return "长文本", "long text"
	case 'N':
		return "数值(可带小数)", "a number (decimals allowed)"
	case 'Y':
		return "金额(可带小数)", "an amount (decimals allowed)"
	case 'I':
		return "整数", "a whole number"
	case 'B', 'F':
		return "浮点数", "a floating-point number"
	case 'D':
		return "日期(YYYYMMDD 或 YYYY-MM-DD)", "a date (YYYYMMDD or YYYY-MM-DD)"
	case 'T':
		return "日期时间(如 2026-03-01 08:30:00，北京时间)", "a date-time (e.g. 2026-03-01 08:30:00, China Standard Time)"
	case 'L':
		return "逻辑值(1/0、true/false、是/否)", "a logical value (1/0, true/false, 是/否)"
	case 'G':
		return "二进制(Base64编码)", "binary (base64)"
	}
	return "", ""
}
