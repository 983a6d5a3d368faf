package quality

import (
	"math/rand/v2"
	"regexp"
	"strings"
	"testing"
)

// TestFixedPatternsMatchAsTheRegexpDoes: a regex rule matched without
// the regexp machine says what the regexp says, value by value.
func TestFixedPatternsMatchAsTheRegexpDoes(t *testing.T) {
	fixed := []string{`[1-9][0-9]{5}`, `[A-Z]{2}\d{4}`, `JX-[0-9]{3}`, `\d{6}`, `(?:[0-9]{3})-[0-9]{4}`, `[^0-9]{2}`, `a.c`, `(?s)a.c`,
		`[\p{Han}]{2}`, `(?i:[a-z])[0-9]`, `é\x{FFFD}`, `[[:alpha:]]{3}`, `(ab){2}`, `\.`, `a|b`}
	other := []string{`[0-9]{2,4}`, `a*`, `ab|cd`, `(?i)abc`, `^a`, `\bx`, `a+`, `x?`, ``, `[0-9]{65}`}
	values := []string{"", "1", "100000", "012345", "350102", "3501021", "AB1234", "ab1234", "JX-123", "JX-12", "jx-123", "123-4567",
		"中文", "中", "abc", "a\nc", "aXc", "a0", "A0", "é\xff", "é\uFFFD", "ééé", "abab", "ab", ".", "x", "\xff\xfe"}
	rng := rand.New(rand.NewPCG(1, 2))
	const alphabet = "0123456789ABZabz-.\n\xff\xc3\xa9"
	for range 2000 {
		b := make([]byte, rng.IntN(8))
		for i := range b {
			b[i] = alphabet[rng.IntN(len(alphabet))]
		}
		values = append(values, string(b))
	}
	for _, expr := range fixed {
		p, ok := compileFixed(expr)
		if !ok {
			t.Errorf("%s: not a fixed pattern", expr)
			continue
		}
		re := regexp.MustCompile(`^(?:` + expr + `)$`)
		for _, v := range values {
			if got, want := p.match(v), re.MatchString(v); got != want {
				t.Errorf("%s on %q: %v, the regexp says %v", expr, v, got, want)
			}
		}
	}
	for _, expr := range other {
		if _, ok := compileFixed(expr); ok {
			t.Errorf("%s: taken for a fixed pattern", expr)
		}
	}
}

// TestTrimSpaceTrimsAsTheStandardLibrary: the quick trim gives what
// strings.TrimSpace gives.
func TestTrimSpaceTrimsAsTheStandardLibrary(t *testing.T) {
	for _, v := range []string{"", " ", "a", " a", "a ", "\ta\n", "张三", " 张三", "张三\u3000", "\u00a0x", "x\u0085", "\u2028",
		"\xff", " \xff", "\xff ", "a\x7f", "\x00a", "\u200bx", "é", "é\u00a0"} {
		if got, want := trimSpace(v), strings.TrimSpace(v); got != want {
			t.Errorf("%q: %q, want %q", v, got, want)
		}
	}
}
