package checkdigit

import (
	"fmt"
	"time"
)

// Citizen ID numbers (GB 11643-1999): 6-digit region, birth date YYYYMMDD,
// 3-digit sequence (odd for men), and a check character computed with
// ISO 7064 MOD 11-2.
var (
	idWeights = [17]int{7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2}
	idChecks  = "10X98765432"
)

// Errors of a citizen ID, by part.
var (
	ErrCitizenIDLength = &Error{Part: PartLength, ZH: "公民身份号码应为18位", EN: "a citizen ID has 18 characters"}
	ErrCitizenIDBirth  = &Error{Part: PartBirthDate, ZH: "出生日期部分(第7–14位)不是真实的日期", EN: "the birth date part (characters 7–14) is not a real date"}
	ErrCitizenIDFuture = &Error{Part: PartBirthDate, ZH: "出生日期部分(第7–14位)晚于今天", EN: "the birth date part (characters 7–14) is after today"}
	ErrCitizenIDCheck  = &Error{Part: PartCheck, Pos: 18, ZH: "校验码(第18位)错误", EN: "the check character (18th) is wrong"}
	ErrCitizenIDRegion = &Error{Part: PartRegion, ZH: "地址码(前6位)不是有效的行政区划代码", EN: "the region part (first 6 characters) is not a known region code"}

	// errCitizenIDChar holds the error for each position, made once so a
	// failed check allocates nothing either.
	errCitizenIDChar = func() (out [18]*Error) {
		for i := range out {
			out[i] = charError(i+1, "应为数字", "must be a digit")
		}
		out[17] = charError(18, "应为数字或X", "must be a digit or X")
		return out
	}()
)

// minBirthYear bounds birth dates from below: earlier ones are typing
// errors, not people.
const minBirthYear = 1800

// CitizenID checks a citizen ID number: 18 characters, digits but for a
// final X, a real birth date that is not in the future (China Standard
// Time), and the check character. The region part is only checked for
// digits here; whether it names a region (current or retired) is for the
// region table. The returned *Error names the wrong part.
func CitizenID(s string) error { return CitizenIDAsOf(s, time.Now()) }

// CitizenIDAsOf is CitizenID with "today" taken from now.
func CitizenIDAsOf(s string, now time.Time) error {
	if len(s) != 18 {
		return ErrCitizenIDLength
	}
	sum := 0
	for i := 0; i < 17; i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return errCitizenIDChar[i]
		}
		sum += int(c-'0') * idWeights[i]
	}
	last := s[17]
	if (last < '0' || last > '9') && last != 'X' {
		return errCitizenIDChar[17]
	}
	y, m, d := digits(s[6:10]), digits(s[10:12]), digits(s[12:14])
	if !realDate(y, m, d) {
		return ErrCitizenIDBirth
	}
	if y*10000+m*100+d > todayCST(now) {
		return ErrCitizenIDFuture
	}
	if last != idChecks[sum%11] {
		return ErrCitizenIDCheck
	}
	return nil
}

// CitizenIDBirth returns the birth date inside an 18-character citizen ID
// (midnight UTC of that day), when the date part is a real date.
func CitizenIDBirth(s string) (time.Time, bool) {
	if len(s) != 18 || !allDigits(s[6:14]) {
		return time.Time{}, false
	}
	y, m, d := digits(s[6:10]), digits(s[10:12]), digits(s[12:14])
	if !realDate(y, m, d) {
		return time.Time{}, false
	}
	return time.Date(y, time.Month(m), d, 0, 0, 0, 0, time.UTC), true
}

// CitizenIDBirthString returns the birth date part as YYYYMMDD without
// allocating, when it is a real date.
func CitizenIDBirthString(s string) (string, bool) {
	if len(s) != 18 || !allDigits(s[6:14]) || !realDate(digits(s[6:10]), digits(s[10:12]), digits(s[12:14])) {
		return "", false
	}
	return s[6:14], true
}

// CitizenIDRegion returns the region part (first six characters) of a
// citizen ID, or "" when s is not shaped like one.
func CitizenIDRegion(s string) string {
	if len(s) != 18 || !allDigits(s[:6]) {
		return ""
	}
	return s[:6]
}

// CitizenIDMale reports the sex the sequence part says (odd: male), when
// s is shaped like a citizen ID.
func CitizenIDMale(s string) (male, ok bool) {
	if len(s) != 18 || s[16] < '0' || s[16] > '9' {
		return false, false
	}
	return (s[16]-'0')%2 == 1, true
}

// CitizenIDCheckChar computes the 18th character for the first 17 digits.
func CitizenIDCheckChar(first17 string) byte {
	sum := 0
	for i := 0; i < 17; i++ {
		sum += int(first17[i]-'0') * idWeights[i]
	}
	return idChecks[sum%11]
}

// SyntheticCitizenID makes a made-up citizen ID with a correct check
// character, for test and demo data: region (6 digits), birth date and
// sequence (0–999; odd for a man). It never names a real person's
// number on purpose; use it for generated people only.
func SyntheticCitizenID(region string, birth time.Time, seq int) string {
	p := fmt.Sprintf("%s%s%03d", region, birth.Format("20060102"), ((seq%1000)+1000)%1000)
	if len(p) != 17 || !allDigits(p) {
		panic("synthetic citizen ID: region must be 6 digits")
	}
	return p + string(CitizenIDCheckChar(p))
}

// Dates, without the time package's allocations.

func digits(s string) int {
	n := 0
	for i := 0; i < len(s); i++ {
		n = n*10 + int(s[i]-'0')
	}
	return n
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func realDate(y, m, d int) bool {
	if y < minBirthYear || m < 1 || m > 12 || d < 1 {
		return false
	}
	return d <= DaysIn(y, m)
}

// DaysIn returns the number of days of month m (1–12) in year y of the
// Gregorian calendar.
func DaysIn(y, m int) int {
	switch m {
	case 2:
		if y%4 == 0 && (y%100 != 0 || y%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

var cst = time.FixedZone("CST", 8*3600)

// todayCST is today's date in China Standard Time as YYYYMMDD.
func todayCST(now time.Time) int {
	y, m, d := now.In(cst).Date()
	return y*10000 + int(m)*100 + d
}
