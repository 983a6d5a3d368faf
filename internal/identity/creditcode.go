package identity

import (
	"fmt"
	"regexp"
	"strings"
)

// creditCodeChars are the 31 characters GB 32100-2015 allows, in value
// order (no I, O, Z, S, V).
const creditCodeChars = "0123456789ABCDEFGHJKLMNPQRTUWXY"

var creditCodeWeights = [17]int{1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28}

// ValidCreditCode reports whether s is a unified social credit code
// (统一社会信用代码) with a correct check character.
func ValidCreditCode(s string) bool {
	if len(s) != 18 {
		return false
	}
	sum := 0
	for i := 0; i < 17; i++ {
		v := strings.IndexByte(creditCodeChars, s[i])
		if v < 0 {
			return false
		}
		sum += v * creditCodeWeights[i]
	}
	check := (31 - sum%31) % 31
	return s[17] == creditCodeChars[check]
}

// CreditCodeCheckChar computes the 18th character for a 17-character
// prefix, for generating synthetic test and demo data.
func CreditCodeCheckChar(prefix string) byte {
	sum := 0
	for i := 0; i < 17; i++ {
		sum += strings.IndexByte(creditCodeChars, prefix[i]) * creditCodeWeights[i]
	}
	return creditCodeChars[(31-sum%31)%31]
}

var regionCodeRE = regexp.MustCompile(`^[1-8][0-9]{5}$`)

// ValidRegionCode reports whether s has the shape of a GB/T 2260 region
// code (行政区划代码): six digits, first digit 1–8.
func ValidRegionCode(s string) bool { return regionCodeRE.MatchString(s) }

// SyntheticCreditCode builds a valid, made-up credit code for a
// government organ (registering authority 1, type 1) in region, numbered
// n, for demo and test data. It never names a real organisation.
func SyntheticCreditCode(region string, n int) string {
	p := fmt.Sprintf("11%s%09d", region, n)
	if len(p) != 17 {
		panic("synthetic credit code: region must be 6 digits")
	}
	return p + string(CreditCodeCheckChar(p))
}
