package quality

import (
	"regexp/syntax"
	"unicode"
	"unicode/utf8"
)

// fixedPattern is a regex rule that is a fixed run of characters, each a
// literal or a class ("[1-9][0-9]{5}", `[A-Z]{2}\d{4}`, "JX-[0-9]{3}"),
// as most format rules are: such a value matches when it has exactly as
// many characters, each in its class. Matching it so costs a tenth of
// the regexp machine's time, which counts at a million values a batch.
// Each position holds its class's ranges as pairs, as syntax has them.
type fixedPattern [][]rune

// maxFixed is the longest pattern matched so.
const maxFixed = 64

// compileFixed makes the fixed pattern of expr (as a regex rule has it,
// to be matched whole), if it is one.
func compileFixed(expr string) (fixedPattern, bool) {
	re, err := syntax.Parse(expr, syntax.Perl)
	if err != nil {
		return nil, false
	}
	var p fixedPattern
	var add func(re *syntax.Regexp) bool
	add = func(re *syntax.Regexp) bool {
		if len(p) > maxFixed {
			return false
		}
		switch re.Op {
		case syntax.OpConcat:
			for _, sub := range re.Sub {
				if !add(sub) {
					return false
				}
			}
			return true
		case syntax.OpCapture:
			return add(re.Sub[0])
		case syntax.OpRepeat:
			if re.Min != re.Max || re.Max > maxFixed {
				return false
			}
			for range re.Min {
				if !add(re.Sub[0]) {
					return false
				}
			}
			return true
		case syntax.OpLiteral:
			if re.Flags&syntax.FoldCase != 0 {
				return false
			}
			for _, r := range re.Rune {
				p = append(p, []rune{r, r})
			}
			return true
		case syntax.OpCharClass:
			p = append(p, re.Rune)
			return true
		case syntax.OpAnyCharNotNL:
			p = append(p, []rune{0, '\n' - 1, '\n' + 1, unicode.MaxRune})
			return true
		case syntax.OpAnyChar:
			p = append(p, []rune{0, unicode.MaxRune})
			return true
		}
		return false
	}
	if !add(re) || len(p) == 0 || len(p) > maxFixed {
		return nil, false
	}
	return p, true
}

// match reports whether the whole of s matches, as the regexp would: a
// byte that is not UTF-8 reads as U+FFFD.
func (p fixedPattern) match(s string) bool {
	i := 0
	for _, class := range p {
		if i >= len(s) {
			return false
		}
		r, w := rune(s[i]), 1
		if r >= utf8.RuneSelf {
			r, w = utf8.DecodeRuneInString(s[i:])
		}
		in := false
		for k := 0; k+1 < len(class); k += 2 {
			if r >= class[k] && r <= class[k+1] {
				in = true
				break
			}
		}
		if !in {
			return false
		}
		i += w
	}
	return i == len(s)
}
