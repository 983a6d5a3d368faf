package cron

import (
	"testing"
	"time"
)

func TestNext(t *testing.T) {
	loc := time.FixedZone("CST", 8*3600)
	at := time.Date(2026, 11, 21, 10, 7, 30, 0, loc) // a Saturday
	cases := []struct{ expr, want string }{
		{"*/5 * * * *", "2026-11-21 10:10"},
		{"30 2 * * *", "2026-11-22 02:30"},
		{"0 9 * * 1-5", "2026-11-23 09:00"}, // next Monday
		{"0 0 1 * *", "2026-12-01 00:00"},
		{"15 10 * * 6", "2026-11-21 10:15"},
		{"0 12 25 12 *", "2026-12-25 12:00"},
		{"0 0 * * 0", "2026-11-22 00:00"},
		{"0 0 * * 7", "2026-11-22 00:00"},
		{"0 0 31 * 1", "2026-11-23 00:00"}, // either day field
		{"5,35 8-9 * * *", "2026-11-22 08:05"},
	}
	for _, c := range cases {
		s, err := Parse(c.expr)
		if err != nil {
			t.Fatalf("%s: %v", c.expr, err)
		}
		if got := s.Next(at).Format("2006-01-02 15:04"); got != c.want {
			t.Errorf("%s: next %s, want %s", c.expr, got, c.want)
		}
	}
}

func TestParseErrors(t *testing.T) {
	for _, expr := range []string{"", "* * * *", "60 * * * *", "* 24 * * *", "* * 0 * *", "* * * 13 *", "* * * * 8", "*/0 * * * *", "a * * * *", "5-1 * * * *"} {
		if _, err := Parse(expr); err == nil {
			t.Errorf("%q parsed", expr)
		}
	}
}
