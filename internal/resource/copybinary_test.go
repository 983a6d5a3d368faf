package resource

import (
	"encoding/binary"
	"slices"
	"testing"
	"time"
)

// TestNumericsEncodeAsTheServerReadsThem: base-10000 digits, the weight
// of the first, the sign, the display scale as written; zero is positive.
func TestNumericsEncodeAsTheServerReadsThem(t *testing.T) {
	for _, tc := range []struct {
		in     string
		weight int16
		sign   uint16
		dscale uint16
		digits []uint16
	}{
		{"0", 0, 0, 0, nil},
		{"-0.00", 0, 0, 2, nil},
		{"007", 0, 0, 0, []uint16{7}},
		{"1.50", 0, 0, 2, []uint16{1, 5000}},
		{"21301.50", 1, 0, 2, []uint16{2, 1301, 5000}},
		{"-12345678.9", 1, 0x4000, 1, []uint16{1234, 5678, 9000}},
		{"0.0001", -1, 0, 4, []uint16{1}},
		{"0.00001", -2, 0, 5, []uint16{1000}},
		{"10000", 1, 0, 0, []uint16{1}},
		{"1000000.0000", 1, 0, 4, []uint16{100}},
	} {
		b, err := appendNumeric(nil, tc.in)
		if err != nil {
			t.Fatalf("%s: %v", tc.in, err)
		}
		n := int(binary.BigEndian.Uint16(b))
		var digits []uint16
		for i := range n {
			digits = append(digits, binary.BigEndian.Uint16(b[8+2*i:]))
		}
		weight, sign, dscale := int16(binary.BigEndian.Uint16(b[2:])), binary.BigEndian.Uint16(b[4:]), binary.BigEndian.Uint16(b[6:])
		if weight != tc.weight || sign != tc.sign || dscale != tc.dscale || !slices.Equal(digits, tc.digits) || len(b) != 8+2*n {
			t.Errorf("%s: weight %d sign %#x dscale %d digits %v, want %d %#x %d %v", tc.in, weight, sign, dscale, digits, tc.weight, tc.sign, tc.dscale, tc.digits)
		}
	}
	if _, err := appendNumeric(nil, "1e5"); err == nil {
		t.Error("an exponent was taken for a numeric")
	}
}

// TestDatesAndTimesCountFrom2000 as the server does, the fraction of a
// second rounded to microseconds as its text input rounds it.
func TestDatesAndTimesCountFrom2000(t *testing.T) {
	for in, want := range map[string]int32{"2000-01-01": 0, "1999-12-31": -1, "2000-03-01": 60, "1930-01-01": -25567, "0001-01-01": -730119} {
		if got, err := pgDate(in); err != nil || got != want {
			t.Errorf("%s: %d %v, want %d", in, got, err, want)
		}
	}
	base := time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)
	us := (base.Unix() - pgEpochUnix) * 1_000_000
	for in, want := range map[string]int64{
		"2026-03-01T08:00:00Z":           us,
		"2026-03-01T08:00:00.5Z":         us + 500_000,
		"2026-03-01T08:00:00.123456789Z": us + 123_457,
		"2026-03-01T08:00:00.0000005Z":   us,     // half a microsecond: to even
		"2026-03-01T08:00:00.0000015Z":   us + 2, // to even
		"2026-03-01T08:00:00.9999996Z":   us + 1_000_000,
	} {
		if got, err := pgTimestamp(in); err != nil || got != want {
			t.Errorf("%s: %d %v, want %d", in, got, err, want)
		}
	}
	if _, err := pgFloat("1e-400"); err == nil {
		t.Error("a double that underflows to zero was taken")
	}
	if f, err := pgFloat("0.000"); err != nil || f != 0 {
		t.Errorf("zero: %v %v", f, err)
	}
}
