package source

import (
	"testing"
	"time"
)

func TestCanonicalValuesAreTheSameWhateverTheDriverHandsOver(t *testing.T) {
	utc := time.Date(2024, 5, 1, 8, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		k    kind
		src  any
		want string
		null bool
	}{
		{"decimal text exact", kDecimal, []byte("12345678901234567890.123456"), "12345678901234567890.123456", false},
		{"decimal trailing zeros", kDecimal, "1.500000", "1.5", false},
		{"decimal whole", kDecimal, "2.000000", "2", false},
		{"decimal negative zero", kDecimal, "-0.000", "0", false},
		{"decimal leading zeros", kDecimal, "+007.50", "7.5", false},
		{"decimal below one", kDecimal, "-.25", "-0.25", false},
		{"decimal from SQLite REAL", kDecimal, 0.1, "0.1", false},
		{"money", kDecimal, "NaN", "NaN", false},
		{"integer", kInt, int64(-42), "-42", false},
		{"unsigned bigint", kInt, uint64(18446744073709551615), "18446744073709551615", false},
		{"integer text", kInt, []byte("0042"), "42", false},
		{"double", kFloat64, 1.5, "1.5", false},
		{"double tiny", kFloat64, 2.5e-7, "2.5e-7", false},
		{"double huge", kFloat64, 1e21, "1e+21", false},
		{"float32 widened", kFloat32, float64(float32(1.1)), "1.1", false},
		{"float32 text", kFloat32, []byte("1.1"), "1.1", false},
		{"bool", kBool, true, "true", false},
		{"tinyint(1)", kBool, int64(0), "false", false},
		{"bit(1)", kBool, []byte{1}, "true", false},
		{"bool text", kBool, "t", "true", false},
		{"date", kDate, time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC), "2024-05-01", false},
		{"date text", kDate, []byte("2024-05-01"), "2024-05-01", false},
		{"mysql zero date", kDate, []byte("0000-00-00"), "", true},
		{"local wall clock is CST", kDateTime, utc, "2024-05-01T00:00:00Z", false},
		{"local text", kDateTime, []byte("2024-05-01 08:00:00.5"), "2024-05-01T00:00:00.5Z", false},
		{"local text with a zone keeps it", kDateTime, "2024-05-01T08:00:00+08:00", "2024-05-01T00:00:00Z", false},
		{"instant", kDateTimeTZ, utc.In(time.FixedZone("", -5*3600)), "2024-05-01T08:00:00Z", false},
		{"instant text without zone is UTC", kDateTimeTZ, []byte("2024-05-01 08:00:00"), "2024-05-01T08:00:00Z", false},
		{"mysql zero datetime", kDateTime, []byte("0000-00-00 00:00:00"), "", true},
		{"bytes", kBytes, []byte{0, 1, 2, 255}, "AAEC/w==", false},
		{"empty bytes", kBytes, []byte{}, "", false},
		{"text", kText, []byte("张三"), "张三", false},
		{"empty text is not null", kText, "", "", false},
		{"null", kText, nil, "", true},
		{"sqlite untyped blob", kAny, []byte{0xff}, "/w==", false},
		{"sqlite untyped int", kAny, int64(7), "7", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, null := appendCanonical(nil, tt.k, tt.src)
			if string(got) != tt.want || null != tt.null {
				t.Errorf("got %q null=%v, want %q null=%v", got, null, tt.want, tt.null)
			}
		})
	}
}

func TestKeyOrderSortsNumbersByValueAndTextByBytes(t *testing.T) {
	tests := []struct {
		typ  string
		a, b string
		want int
	}{
		{"I", "9", "10", -1},
		{"I", "-10", "-9", -1},
		{"I", "-1", "0", -1},
		{"N", "1.5", "1.25", 1},
		{"N", "-1.5", "-1.25", -1},
		{"N", "0.5", "-0.5", 1},
		{"N", "100", "99.99", 1},
		{"B", "1e+21", "9.5", 1},
		{"C", "a", "B", 1},
		{"C", "中", "z", 1},
		{"C", "10", "9", -1},
		{"T", "2024-05-01T00:00:00.5Z", "2024-05-01T00:00:00Z", 1},
		{"D", "1999-12-31", "2000-01-01", -1},
		{"G", "AAE=", "/w==", -1},
	}
	for _, tt := range tests {
		if got := (KeyOrder{tt.typ}).Compare(Key{tt.a}, Key{tt.b}); got != tt.want {
			t.Errorf("%s: compare(%s, %s) = %d, want %d", tt.typ, tt.a, tt.b, got, tt.want)
		}
	}
	if got := (KeyOrder{"C", "I"}).Compare(Key{"A", "10"}, Key{"A", "9"}); got != 1 {
		t.Errorf("composite compare = %d", got)
	}
}

func TestClassifyReadsEachDialectsTypeNames(t *testing.T) {
	tests := []struct {
		d, typ string
		want   kind
		dt     string
		length int
	}{
		{Postgres, "timestamp(3) with time zone", kDateTimeTZ, "T", 23},
		{Postgres, "timestamp without time zone", kDateTime, "T", 19},
		{Postgres, "TIMESTAMPTZ", kDateTimeTZ, "T", 19},
		{Postgres, "character varying(50)", kText, "C", 50},
		{Postgres, "numeric(20,6)", kDecimal, "N", 20},
		{Postgres, "NUMERIC", kDecimal, "N", 38},
		{Postgres, "real", kFloat32, "F", 9},
		{Postgres, "time without time zone", kTimeOfDay, "C", 8},
		{Postgres, "money", kDecimal, "Y", 19},
		{Postgres, "uuid", kText, "C", 36},
		{MySQL, "tinyint(1)", kBool, "L", 1},
		{MySQL, "tinyint(4)", kInt, "I", 4},
		{MySQL, "bigint(20) unsigned", kInt, "I", 20},
		{MySQL, "UNSIGNED BIGINT", kInt, "I", 20},
		{MySQL, "timestamp(6)", kDateTimeTZ, "T", 26},
		{MySQL, "datetime", kDateTime, "T", 19},
		{MySQL, "float", kFloat32, "F", 9},
		{MySQL, "longblob", kBytes, "G", 100000},
		{MySQL, "enum('男','女')", kText, "C", 1},
		{MySQL, "mediumtext", kText, "M", 100000},
		{SQLite, "", kAny, "C", 255},
		{SQLite, "BOOLEAN", kBool, "L", 1},
		{SQLite, "DATETIME", kDateTime, "T", 19},
		{SQLite, "NVARCHAR(10)", kText, "C", 10},
		{SQLite, "REAL", kFloat64, "B", 17},
		{SQLite, "STRING", kDecimal, "N", 38}, // SQLite's NUMERIC affinity
	}
	for _, tt := range tests {
		ti := classify(tt.d, tt.typ)
		if ti.kind != tt.want || ti.dataType != tt.dt || ti.length != tt.length {
			t.Errorf("%s %q: kind %d %s%d, want kind %d %s%d", tt.d, tt.typ, ti.kind, ti.dataType, ti.length, tt.want, tt.dt, tt.length)
		}
	}
}
