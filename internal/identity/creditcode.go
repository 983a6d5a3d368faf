package identity

import "govshare/internal/checkdigit"

// ValidCreditCode reports whether s is a unified social credit code
// (统一社会信用代码) with a correct check character (checkdigit.CreditCode).
func ValidCreditCode(s string) bool { return checkdigit.CreditCode(s) == nil }

// CreditCodeCheckChar computes the 18th character for a 17-character
// prefix, for generating synthetic test and demo data.
func CreditCodeCheckChar(prefix string) byte { return checkdigit.CreditCodeCheckChar(prefix) }

// ValidRegionCode reports whether s has the shape of a GB/T 2260 region
// code (行政区划代码): six digits, first digit 1–8.
func ValidRegionCode(s string) bool { return checkdigit.RegionCode(s) == nil }

// SyntheticCreditCode builds a valid, made-up credit code for a
// government organ (registering authority 1, type 1) in region, numbered
// n, for demo and test data. It never names a real organisation.
func SyntheticCreditCode(region string, n int) string {
	return checkdigit.SyntheticCreditCode(region, n)
}
