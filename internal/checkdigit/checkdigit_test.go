package checkdigit_test

import (
	"errors"
	"testing"
	"time"

	"govshare/internal/checkdigit"
)

// withCheck completes 17 digits with their correct check character, so a
// case fails for the reason it names and not for its check character.
func withCheck(first17 string) string {
	return first17 + string(checkdigit.CitizenIDCheckChar(first17))
}

func part(err error) checkdigit.Part {
	var e *checkdigit.Error
	if errors.As(err, &e) {
		return e.Part
	}
	return ""
}

var today = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func TestCitizenIDAcceptsTheSpecExamples(t *testing.T) {
	for _, id := range []string{"11010519491231002X", "440524188001010014", withCheck("35010220000229123"),
		checkdigit.SyntheticCitizenID("350102", time.Date(1990, 7, 15, 0, 0, 0, 0, time.UTC), 7)} {
		if err := checkdigit.CitizenIDAsOf(id, today); err != nil {
			t.Errorf("%s: %v", id, err)
		}
	}
}

func TestCitizenIDNamesTheWrongPart(t *testing.T) {
	cases := []struct {
		name, id string
		want     checkdigit.Part
		pos      int
	}{
		{"wrong check character", "110105194912310021", checkdigit.PartCheck, 18},
		{"wrong check character, X expected", "440524188001010015", checkdigit.PartCheck, 18},
		{"lower-case x is not X", "11010519491231002x", checkdigit.PartCharacter, 18},
		{"17 characters", "11010519491231002", checkdigit.PartLength, 0},
		{"19 characters", "11010519491231002X1", checkdigit.PartLength, 0},
		{"15-digit first-generation number", "110105491231002", checkdigit.PartLength, 0},
		{"a letter inside", "1101A519491231002X", checkdigit.PartCharacter, 5},
		{"X not at the end", "11010519491231X021", checkdigit.PartCharacter, 15},
		{"February 30th", withCheck("11010519490230002"), checkdigit.PartBirthDate, 0},
		{"February 29th of 1900 (not a leap year)", withCheck("11010519000229002"), checkdigit.PartBirthDate, 0},
		{"13th month", withCheck("11010519491301002"), checkdigit.PartBirthDate, 0},
		{"day 00", withCheck("11010519491200002"), checkdigit.PartBirthDate, 0},
		{"year 0001", withCheck("11010500010101002"), checkdigit.PartBirthDate, 0},
		{"born tomorrow", withCheck("11010520260302002"), checkdigit.PartBirthDate, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := checkdigit.CitizenIDAsOf(c.id, today)
			var e *checkdigit.Error
			if !errors.As(err, &e) || e.Part != c.want || e.Pos != c.pos {
				t.Fatalf("%s: %v (%+v), want part %s at %d", c.id, err, e, c.want, c.pos)
			}
			if e.ZH == "" || e.EN == "" {
				t.Fatal("message missing a language")
			}
		})
	}
}

func TestCitizenIDParts(t *testing.T) {
	b, ok := checkdigit.CitizenIDBirth("11010519491231002X")
	if !ok || !b.Equal(time.Date(1949, 12, 31, 0, 0, 0, 0, time.UTC)) {
		t.Fatalf("birth %v %v", b, ok)
	}
	if s, ok := checkdigit.CitizenIDBirthString("440524188001010014"); !ok || s != "18800101" {
		t.Fatalf("birth string %q", s)
	}
	if _, ok := checkdigit.CitizenIDBirth(withCheck("11010519490230002")); ok {
		t.Fatal("impossible birth date returned")
	}
	if r := checkdigit.CitizenIDRegion("440524188001010014"); r != "440524" {
		t.Fatalf("region %q", r)
	}
	if r := checkdigit.CitizenIDRegion("4405"); r != "" {
		t.Fatalf("region of a short value %q", r)
	}
	if male, ok := checkdigit.CitizenIDMale("11010519491231002X"); !ok || male {
		t.Fatal("sequence 002 is a woman")
	}
	if male, ok := checkdigit.CitizenIDMale("440524188001010014"); !ok || !male {
		t.Fatal("sequence 001 is a man")
	}
}

func TestSyntheticCitizenIDsAreValid(t *testing.T) {
	birth := time.Date(1960, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := 0; i < 2000; i++ {
		id := checkdigit.SyntheticCitizenID("350102", birth.AddDate(0, 0, i*7), i)
		if err := checkdigit.CitizenIDAsOf(id, today); err != nil {
			t.Fatalf("%s: %v", id, err)
		}
	}
}

func TestCreditCodeAcceptsTheSpecExamples(t *testing.T) {
	for _, c := range []string{"91350100M000100Y43", "91440300708461136T", checkdigit.SyntheticCreditCode("350100", 42)} {
		if err := checkdigit.CreditCode(c); err != nil {
			t.Errorf("%s: %v", c, err)
		}
	}
}

func TestCreditCodeNamesTheWrongPart(t *testing.T) {
	cases := []struct {
		name, code string
		want       checkdigit.Part
		pos        int
	}{
		{"wrong check character", "91350100M000100Y44", checkdigit.PartCheck, 18},
		{"wrong check character (letter)", "91440300708461136U", checkdigit.PartCheck, 18},
		{"17 characters", "91350100M000100Y4", checkdigit.PartLength, 0},
		{"forbidden I", "91350100I000100Y43", checkdigit.PartCharacter, 9},
		{"forbidden O", "91350100O000100Y43", checkdigit.PartCharacter, 9},
		{"forbidden Z", "9135010Z0000100Y43", checkdigit.PartCharacter, 8},
		{"forbidden S", "91350100M000100S43", checkdigit.PartCharacter, 16},
		{"forbidden V as check character", "91440300708461136V", checkdigit.PartCharacter, 18},
		{"lower case", "91350100m000100Y43", checkdigit.PartCharacter, 9},
		{"punctuation", "91350100-000100Y43", checkdigit.PartCharacter, 9},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := checkdigit.CreditCode(c.code)
			var e *checkdigit.Error
			if !errors.As(err, &e) || e.Part != c.want || e.Pos != c.pos {
				t.Fatalf("%s: %v (%+v), want part %s at %d", c.code, err, e, c.want, c.pos)
			}
		})
	}
}

func TestCreditCodeCheckCharCompletesAPrefix(t *testing.T) {
	if c := checkdigit.CreditCodeCheckChar("91350100M000100Y4"); c != '3' {
		t.Fatalf("check char %q", c)
	}
	if c := checkdigit.CreditCodeCheckChar("91350100I000100Y4"); c != 0 {
		t.Fatalf("check char of a prefix with I: %q", c)
	}
}

func TestRegionCodeShape(t *testing.T) {
	for _, c := range []string{"110105", "350100", "820000"} {
		if err := checkdigit.RegionCode(c); err != nil {
			t.Errorf("%s: %v", c, err)
		}
	}
	for c, want := range map[string]checkdigit.Part{"35010": checkdigit.PartLength, "950100": checkdigit.PartCharacter, "012345": checkdigit.PartCharacter, "3501a0": checkdigit.PartCharacter} {
		if got := part(checkdigit.RegionCode(c)); got != want {
			t.Errorf("%s: part %q, want %q", c, got, want)
		}
	}
}

func TestChecksDoNotAllocate(t *testing.T) {
	n := testing.AllocsPerRun(100, func() {
		_ = checkdigit.CitizenIDAsOf("11010519491231002X", today)
		_ = checkdigit.CitizenIDAsOf("110105194912310021", today)
		_ = checkdigit.CreditCode("91350100M000100Y43")
		_ = checkdigit.CreditCode("91350100I000100Y43")
	})
	if n != 0 {
		t.Fatalf("%v allocations per run", n)
	}
}

func BenchmarkCitizenID(b *testing.B) {
	for b.Loop() {
		_ = checkdigit.CitizenIDAsOf("11010519491231002X", today)
	}
}
