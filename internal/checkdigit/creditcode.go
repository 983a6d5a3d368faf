package checkdigit

import (
	"fmt"
	"strings"
)

// creditCodeChars are the 31 characters GB 32100-2015 allows, in value
// order (no I, O, Z, S, V).
const creditCodeChars = "0123456789ABCDEFGHJKLMNPQRTUWXY"

var creditCodeWeights = [17]int{1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28}

// creditValue maps a byte to its value, -1 when not allowed.
var creditValue = func() (v [256]int8) {
	for i := range v {
		v[i] = -1
	}
	for i := 0; i < len(creditCodeChars); i++ {
		v[creditCodeChars[i]] = int8(i)
	}
	return v
}()

// Errors of a unified social credit code.
var (
	ErrCreditCodeLength = &Error{Part: PartLength, ZH: "统一社会信用代码应为18位", EN: "a unified social credit code has 18 characters"}
	ErrCreditCodeCheck  = &Error{Part: PartCheck, Pos: 18, ZH: "校验码(第18位)错误", EN: "the check character (18th) is wrong"}

	errCreditCodeChar = func() (out [18]*Error) {
		for i := range out {
			out[i] = charError(i+1, "不是允许的字符(数字或除I、O、Z、S、V以外的大写字母)", "is not allowed (digits and capital letters except I, O, Z, S, V)")
		}
		return out
	}()
)

// CreditCode checks a unified social credit code (GB 32100-2015): 18
// characters from 0-9 and the capital letters but I, O, Z, S and V, with
// the check character 31 − (Σ value×weight mod 31). The returned *Error
// names the wrong part.
func CreditCode(s string) error {
	if len(s) != 18 {
		return ErrCreditCodeLength
	}
	sum := 0
	for i := 0; i < 17; i++ {
		v := creditValue[s[i]]
		if v < 0 {
			return errCreditCodeChar[i]
		}
		sum += int(v) * creditCodeWeights[i]
	}
	if creditValue[s[17]] < 0 {
		return errCreditCodeChar[17]
	}
	if s[17] != creditCodeChars[(31-sum%31)%31] {
		return ErrCreditCodeCheck
	}
	return nil
}

// CreditCodeCheckChar computes the 18th character for a 17-character
// prefix of allowed characters (0 when a character is not allowed).
func CreditCodeCheckChar(prefix string) byte {
	if len(prefix) < 17 {
		return 0
	}
	sum := 0
	for i := 0; i < 17; i++ {
		v := creditValue[prefix[i]]
		if v < 0 {
			return 0
		}
		sum += int(v) * creditCodeWeights[i]
	}
	return creditCodeChars[(31-sum%31)%31]
}

// SyntheticCreditCode builds a valid, made-up credit code for a
// government organ (registering authority 1, type 1) in region, numbered
// n, for demo and test data. It never names a real organisation.
func SyntheticCreditCode(region string, n int) string {
	p := fmt.Sprintf("11%s%09d", region, n)
	if len(p) != 17 || strings.Trim(p, "0123456789") != "" {
		panic("synthetic credit code: region must be 6 digits")
	}
	return p + string(CreditCodeCheckChar(p))
}
