// Package checkdigit checks the national identifier codes the platform
// meets in departments and in collected data: the citizen ID number
// (公民身份号码, GB 11643), the unified social credit code (统一社会信用代码,
// GB 32100) and the shape of a region code (行政区划代码, GB/T 2260). It
// knows the structure and the check characters only; whether a region code
// exists is the region table's business (package refdata).
//
// The checks allocate nothing when the code is valid, so the quality rules
// can run them over a million-row upload.
package checkdigit

import "fmt"

// Part names the part of a code that is wrong.
type Part string

// Parts of a code.
const (
	PartLength    Part = "length"     // wrong number of characters
	PartCharacter Part = "character"  // a character not allowed at its position
	PartRegion    Part = "region"     // the region part (citizen ID, positions 1–6)
	PartBirthDate Part = "birth_date" // the birth date part (citizen ID, positions 7–14)
	PartCheck     Part = "check"      // the check character (the last one)
)

// Error says which part of a code is wrong, in Chinese and English. It
// never repeats the code: a citizen ID is personal data.
type Error struct {
	Part   Part
	Pos    int // 1-based position of the offending character, 0 when the part as a whole is wrong
	ZH, EN string
}

func (e *Error) Error() string { return e.EN }

func charError(pos int, zh, en string) *Error {
	return &Error{Part: PartCharacter, Pos: pos, ZH: fmt.Sprintf("第%d位%s", pos, zh), EN: fmt.Sprintf("character %d %s", pos, en)}
}

// RegionCode checks the shape of a GB/T 2260 region code: six digits, the
// first 1–8.
func RegionCode(s string) error {
	if len(s) != 6 {
		return &Error{Part: PartLength, ZH: "行政区划代码应为6位数字", EN: "a region code has 6 digits"}
	}
	if s[0] < '1' || s[0] > '8' {
		return charError(1, "应为1至8", "must be 1 to 8")
	}
	for i := 1; i < 6; i++ {
		if s[i] < '0' || s[i] > '9' {
			return charError(i+1, "应为数字", "must be a digit")
		}
	}
	return nil
}
