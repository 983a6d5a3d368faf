package mask_test

import (
	"errors"
	"regexp"
	"testing"

	"govshare/internal/mask"
)

// testKey is a synthetic deployment key.
var testKey = []byte("0123456789abcdef0123456789abcdef")

func apply(t *testing.T, rule, value string) string {
	t.Helper()
	r, err := mask.Parse(rule)
	if err != nil {
		t.Fatalf("Parse(%q): %v", rule, err)
	}
	return mask.New(testKey).Apply(r, value)
}

func TestParseGivesCanonicalRules(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", ""},
		{"   ", ""},
		{"keep(6,4)", "keep(6,4)"},
		{" keep( 6 , 4 ) ", "keep(6,4)"},
		{"KEEP(06,4)", "keep(6,4)"},
		{"keep（3，4）", "keep(3,4)"}, // full-width, as a Chinese input method types it
		{"keep(0,0)", "keep(0,0)"},
		{"keep(99,99)", "keep(99,99)"},
		{"surname", "surname"},
		{"Surname", "surname"},
		{"district", "district"},
		{"hash", "hash"},
		{"replace(*)", "replace(*)"},
		{"replace( *** )", "replace(***)"},
		{"replace（已脱敏）", "replace(已脱敏)"},
		{"replace(12345678)", "replace(12345678)"},
		{"replace(*)*)", "replace(*)*)"},
		{"replace(( ))", "replace(( ))"},
	} {
		r, err := mask.Parse(tc.in)
		if err != nil {
			t.Errorf("Parse(%q): %v", tc.in, err)
			continue
		}
		if got := r.String(); got != tc.want {
			t.Errorf("Parse(%q).String() = %q, want %q", tc.in, got, tc.want)
		}
		again, err := mask.Parse(r.String())
		if err != nil || again != r {
			t.Errorf("Parse(%q) does not round-trip: %v, %v", r.String(), again, err)
		}
	}
}

func TestParseRefusesUnknownRules(t *testing.T) {
	for _, in := range []string{
		"keep", "keep()", "keep(6)", "keep(6,4,2)", "keep(first)", "keep(-1,4)", "keep(100,4)", "keep(6,004)",
		"keep(6,4", "keep 6,4", "keep(6.5,4)", "keep(６,4)",
		"surname()", "hash(sha256)", "district(3)",
		"replace", "replace()", "replace(  )", "replace(123456789)", "replace(a\tb)", "replace(\x00)", "replace(\xff)",
		"mask", "sha256", "keep(6,4);hash", "(6,4)",
	} {
		r, err := mask.Parse(in)
		if !errors.Is(err, mask.ErrInvalidRule) {
			t.Errorf("Parse(%q) = %v, %v; want ErrInvalidRule", in, r, err)
		}
		if r != (mask.Rule{}) {
			t.Errorf("Parse(%q) returned a rule with its error", in)
		}
	}
}

func TestZeroRuleLeavesValuesUnchanged(t *testing.T) {
	m := mask.New(testKey)
	for _, v := range []string{"", "张三", "11010519491231002X"} {
		if got := m.Apply(mask.Rule{}, v); got != v {
			t.Errorf("zero rule on %q = %q", v, got)
		}
	}
	if (mask.Rule{}).String() != "" {
		t.Error("zero rule has a name")
	}
}

func TestEmptyValuesStayEmpty(t *testing.T) {
	for _, rule := range []string{"keep(6,4)", "keep(0,0)", "surname", "district", "hash", "replace(***)"} {
		if got := apply(t, rule, ""); got != "" {
			t.Errorf("%s on empty = %q", rule, got)
		}
	}
	if got := mask.New(nil).Apply(must(mask.Parse("hash")), ""); got != "" {
		t.Errorf("unkeyed hash on empty = %q", got)
	}
}

func TestKeepHidesTheMiddle(t *testing.T) {
	for _, tc := range []struct{ rule, in, want string }{
		// SPEC §10 defaults on its documented example ID and synthetic numbers.
		{"keep(6,4)", "11010519491231002X", "110105********002X"},
		{"keep(3,4)", "13800138000", "138****8000"},
		{"keep(6,4)", "6222020200112233445", "622202*********3445"},
		{"keep(0,4)", "13800138000", "*******8000"},
		{"keep(3,0)", "13800138000", "138********"},
		{"keep(0,0)", "张三丰", "***"},
		{"keep(1,1)", "福州市鼓楼区", "福****区"},
		{"keep(2,1)", "中华人民共和国", "中华****国"},
		{"keep(1,0)", "a", "*"},
		{"keep(1,1)", "abc", "a*c"},
		// Too short to hide anything: at most one character shows.
		{"keep(6,4)", "1101051949", "1*********"},
		{"keep(6,4)", "110105", "1*****"},
		{"keep(1,1)", "张三", "张*"},
		{"keep(6,4)", "张", "*"},
		{"keep(0,4)", "8000", "***0"},
		{"keep(0,1)", "Z", "*"},
		{"keep(2,2)", "ab", "a*"},
		// Invalid UTF-8 counts byte by byte and is never split.
		{"keep(1,1)", "a\xffb\xfec", "a***c"},
	} {
		if got := apply(t, tc.rule, tc.in); got != tc.want {
			t.Errorf("%s on %q = %q, want %q", tc.rule, tc.in, got, tc.want)
		}
	}
}

func TestSurnameKeepsOnlyTheSurname(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"张三", "张*"},
		{"王小明", "王**"},
		{"欧阳修", "欧阳*"},
		{"诸葛孔明", "诸葛**"},
		{"司马相如", "司马**"},
		{"上官婉儿", "上官**"},
		{"独孤求败", "独孤**"},
		{"令狐冲", "令狐*"},
		{"欧阳", "欧*"},   // two characters: a single surname and a given name
		{"司徒", "司*"},   // likewise
		{"马司徒", "马**"}, // the compound must lead
		{"张", "*"},
		{"John Smith", "J*********"},
		{"Li", "L*"},
	} {
		if got := apply(t, "surname", tc.in); got != tc.want {
			t.Errorf("surname on %q = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestReplaceBlanksTheWholeValueOnce(t *testing.T) {
	for _, tc := range []struct{ rule, in, want string }{
		{"replace(***)", "福建省福州市鼓楼区五四路100号", "***"},
		{"replace(***)", "x", "***"},
		{"replace(*)", "张三", "*"},
		{"replace(*)", "王小明", "*"}, // the length does not show
		{"replace(已脱敏)", "13800138000", "已脱敏"},
	} {
		if got := apply(t, tc.rule, tc.in); got != tc.want {
			t.Errorf("%s on %q = %q, want %q", tc.rule, tc.in, got, tc.want)
		}
	}
}

var hexDigest = regexp.MustCompile(`^[0-9a-f]{64}$`)

func TestHashIsKeyedAndJoinable(t *testing.T) {
	r := must(mask.Parse("hash"))
	a, b := mask.New(testKey), mask.New(testKey)
	other := mask.New([]byte("another deployment's key........"))
	const id = "11010519491231002X"

	h := a.Apply(r, id)
	if !hexDigest.MatchString(h) {
		t.Fatalf("hash = %q, want 64 hex digits", h)
	}
	if h != a.Apply(r, id) || h != b.Apply(r, id) {
		t.Error("equal values under one key hash differently")
	}
	if h == other.Apply(r, id) {
		t.Error("the hash does not depend on the key")
	}
	if h == a.Apply(r, "440524188001010014") || a.Apply(r, "张三") == a.Apply(r, "张三 ") {
		t.Error("different values hash alike")
	}
}

func TestHashMatchesHMACSM3(t *testing.T) {
	// Computed with OpenSSL's SM3 (Python: hmac.new(testKey, b"abc",
	// lambda d=b"": hashlib.new("sm3", d))) and pinned: a change of algorithm
	// or encoding would stop hashed values joining with those already given out.
	const want = "27d5235d7f025fdda35a71e22d0026cd4ed95a3506e9ca1f7c2a44fa74aa85dd"
	m := mask.New(testKey)
	for range 3 { // a pooled hasher is reset between values
		if got := m.Apply(must(mask.Parse("hash")), "abc"); got != want {
			t.Errorf("hash = %s, want HMAC-SM3 %s", got, want)
		}
	}
}

func TestHashWithoutKeyFailsClosed(t *testing.T) {
	r := must(mask.Parse("hash"))
	for _, m := range []*mask.Masker{mask.New(nil), mask.New([]byte{})} {
		if got := m.Apply(r, "11010519491231002X"); got != "****" {
			t.Errorf("unkeyed hash = %q, want ****", got)
		}
	}
}

func TestMaskerIsSafeForConcurrentUse(t *testing.T) {
	m := mask.New(testKey)
	r := must(mask.Parse("hash"))
	want := m.Apply(r, "11010519491231002X")
	done := make(chan string)
	for range 8 {
		go func() {
			var got string
			for range 100 {
				got = m.Apply(r, "11010519491231002X")
				if got != want {
					break
				}
			}
			done <- got
		}()
	}
	for range 8 {
		if got := <-done; got != want {
			t.Errorf("concurrent hash = %q, want %q", got, want)
		}
	}
}

func BenchmarkApply(b *testing.B) {
	m := mask.New(testKey)
	r := must(mask.Parse("keep(6,4)"))
	b.ReportAllocs()
	for b.Loop() {
		if m.Apply(r, "11010519491231002X") != "110105********002X" {
			b.Fatal("wrong mask")
		}
	}
}

func BenchmarkApplyHash(b *testing.B) {
	m := mask.New(testKey)
	r := must(mask.Parse("hash"))
	b.ReportAllocs()
	for b.Loop() {
		m.Apply(r, "11010519491231002X")
	}
}

func BenchmarkApplyDistrict(b *testing.B) {
	m := mask.New(testKey)
	r := must(mask.Parse("district"))
	b.ReportAllocs()
	for b.Loop() {
		m.Apply(r, "福建省福州市鼓楼区五四路100号")
	}
}

func must(r mask.Rule, err error) mask.Rule {
	if err != nil {
		panic(err)
	}
	return r
}
