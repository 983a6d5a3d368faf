package target

import (
	"errors"
	"fmt"
	"testing"

	"govshare/internal/agent/source"
)

func TestCanonicalValuesAreTheSourceTexts(t *testing.T) {
	cases := []struct {
		typ, in, want string // want "" with bad: an error
		length        int
	}{
		{typ: "C", in: "张三", want: "张三", length: 2},
		{typ: "C", in: "张三丰", length: 2},
		{typ: "C", in: "\xff"},
		{typ: "M", in: "", want: ""},
		{typ: "I", in: "+007", want: "7"},
		{typ: "I", in: "-0", want: "0"},
		{typ: "I", in: "-9223372036854775808", want: "-9223372036854775808"},
		{typ: "I", in: "9223372036854775808"},
		{typ: "I", in: "1.5"},
		{typ: "I", in: "42", want: "42"},
		{typ: "N", in: "+001.500", want: "1.5"},
		{typ: "N", in: "-12.5", want: "-12.5"},
		{typ: "N", in: "0.5", want: "0.5"},
		{typ: "N", in: "-0.5", want: "-0.5"},
		{typ: "N", in: "10", want: "10"},
		{typ: "N", in: "10.", want: "10"},
		{typ: "N", in: "-0.000", want: "0"},
		{typ: "N", in: ".5", want: "0.5"},
		{typ: "N", in: "123456789012345678901234567890.123456789", want: "123456789012345678901234567890.123456789"},
		{typ: "Y", in: "1e3"},
		{typ: "N", in: "abc"},
		{typ: "B", in: "0.30000000000000004", want: "0.30000000000000004"},
		{typ: "B", in: "1e21", want: "1e+21"},
		{typ: "B", in: "0.00000025", want: "2.5e-7"},
		{typ: "B", in: "-0", want: "0"},
		{typ: "B", in: "Infinity", want: "Infinity"},
		{typ: "B", in: "1e999"},
		{typ: "F", in: "1.1", want: "1.1"},
		{typ: "F", in: "16777217", want: "16777216"},
		{typ: "F", in: "1e39"},
		{typ: "L", in: "true", want: "true"},
		{typ: "L", in: "1"},
		{typ: "D", in: "2024-02-29", want: "2024-02-29"},
		{typ: "D", in: "2023-02-29"},
		{typ: "D", in: "2024-5-1"},
		{typ: "T", in: "2024-05-01T08:00:00+08:00", want: "2024-05-01T00:00:00Z"},
		{typ: "T", in: "2024-05-01T00:00:00.120Z", want: "2024-05-01T00:00:00.12Z"},
		{typ: "T", in: "2024-05-01T00:00:00.12Z", want: "2024-05-01T00:00:00.12Z"},
		{typ: "T", in: "2024-05-01 00:00:00"},
		{typ: "G", in: "AAEC/w==", want: "AAEC/w=="},
		{typ: "G", in: "", want: ""},
		{typ: "G", in: "AAEC/w"},
		{typ: "G", in: "AAEC_w=="},
	}
	for _, tc := range cases {
		c := &Column{Name: "x", DataType: tc.typ, Length: tc.length}
		got, err := canonical(c, source.Value{Text: tc.in})
		switch {
		case tc.want == "" && tc.in != "" && err == nil:
			t.Errorf("%s %q: accepted as %q, want an error", tc.typ, tc.in, got.Text)
		case tc.want == "" && tc.in != "":
			if !errors.Is(err, ErrBadValue) {
				t.Errorf("%s %q: %v, want ErrBadValue", tc.typ, tc.in, err)
			}
		case err != nil || got.Text != tc.want || got.Null:
			t.Errorf("%s %q: %q, %v; want %q", tc.typ, tc.in, got.Text, err, tc.want)
		}
	}
	if v, err := canonical(&Column{Name: "x", DataType: "I"}, source.Value{Null: true}); err != nil || !v.Null {
		t.Errorf("NULL: %v, %v", v, err)
	}
}

func TestValuesAColumnWouldRoundAreRefused(t *testing.T) {
	dec := &Column{Name: "amount", DataType: "N"}
	ts := &Column{Name: "at", DataType: "T"}
	cases := []struct {
		c    *Column
		l    limit
		v    string
		fits bool
	}{
		{dec, limit{intDigits: 8, fracDigits: 2, sigDigits: -1, secDigits: -1}, "12345678.12", true},
		{dec, limit{intDigits: 8, fracDigits: 2, sigDigits: -1, secDigits: -1}, "123456789", false},
		{dec, limit{intDigits: 8, fracDigits: 2, sigDigits: -1, secDigits: -1}, "0.125", false},
		{dec, limit{intDigits: -1, fracDigits: -1, sigDigits: 15, secDigits: -1}, "123456789012345", true},
		{dec, limit{intDigits: -1, fracDigits: -1, sigDigits: 15, secDigits: -1}, "0.0000000000000000000001234", true},
		{dec, limit{intDigits: -1, fracDigits: -1, sigDigits: 15, secDigits: -1}, "9223372036854775807", true},
		{dec, limit{intDigits: -1, fracDigits: -1, sigDigits: 15, secDigits: -1}, "1234567890123456", true}, // an INTEGER
		{dec, limit{intDigits: -1, fracDigits: -1, sigDigits: 15, secDigits: -1}, "1234567890123456.5", false},
		{ts, limit{intDigits: -1, fracDigits: -1, sigDigits: -1, secDigits: 6}, "2024-05-01T00:00:00.123456Z", true},
		{ts, limit{intDigits: -1, fracDigits: -1, sigDigits: -1, secDigits: 6}, "2024-05-01T00:00:00.1234567Z", false},
		{ts, limit{intDigits: -1, fracDigits: -1, sigDigits: -1, secDigits: 0}, "2024-05-01T00:00:00Z", true},
	}
	for _, tc := range cases {
		err := checkLimit(tc.c, &tableColumn{dbType: "t"}, tc.l, source.Value{Text: tc.v})
		if (err == nil) != tc.fits {
			t.Errorf("%q in %+v: %v, want fits=%v", tc.v, tc.l, err, tc.fits)
		}
	}
}

func TestTypeParams(t *testing.T) {
	cases := map[string]string{
		"decimal(20,6) unsigned":      "decimal unsigned [20 6]",
		"timestamp(3) with time zone": "timestamp with time zone [3]",
		"numeric":                     "numeric []",
		"character varying(10)":       "character varying [10]",
		"DATETIME(6)":                 "datetime [6]",
	}
	for in, want := range cases {
		base, params := typeParams(in)
		if got := fmt.Sprint(base, " ", params); got != want {
			t.Errorf("%q: %q, want %q", in, got, want)
		}
	}
}

// TestCanonicalValuesCostNothing: a delivery's values are canonical
// already, and checking one allocates nothing.
func TestCanonicalValuesCostNothing(t *testing.T) {
	for typ, v := range map[string]string{"C": "张三", "I": "-9223372036854775808", "N": "12345.67", "Y": "-0.5", "L": "true", "D": "2024-02-29",
		"T": "2024-05-01T00:00:00.123456Z"} {
		c := &Column{Name: "x", DataType: typ}
		if n := testing.AllocsPerRun(100, func() { _, _ = canonical(c, source.Value{Text: v}) }); n != 0 {
			t.Errorf("%s %q: %v allocations", typ, v, n)
		}
	}
}
