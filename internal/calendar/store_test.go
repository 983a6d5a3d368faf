package calendar_test

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"govshare/internal/apperr"
	"govshare/internal/audit"
	"govshare/internal/calendar"
	"govshare/internal/policy"
	"govshare/internal/store"
	"govshare/internal/storetest"
)

// A holiday-cn style year with a week-long national holiday and two
// adjusted working weekend days around it.
const year2026 = `{"year":2026,"papers":[],"days":[
 {"name":"国庆节","date":"2026-09-27","isOffDay":false},
 {"name":"国庆节","date":"2026-10-01","isOffDay":true},{"name":"国庆节","date":"2026-10-02","isOffDay":true},
 {"name":"国庆节","date":"2026-10-03","isOffDay":true},{"name":"国庆节","date":"2026-10-04","isOffDay":true},
 {"name":"国庆节","date":"2026-10-05","isOffDay":true},{"name":"国庆节","date":"2026-10-06","isOffDay":true},
 {"name":"国庆节","date":"2026-10-07","isOffDay":true},
 {"name":"国庆节","date":"2026-10-10","isOffDay":false}]}`

func cal(t *testing.T, db *store.DB) (*calendar.Calendar, *audit.Log) {
	log, err := audit.Open(db, audit.Options{Key: make([]byte, 32)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { log.Close() })
	return calendar.New(db, log), log
}

var admin = policy.Actor{UserID: 1, Login: "admin", Roles: []policy.Role{policy.PlatformAdmin}}

func day(s string) time.Time {
	t, _ := time.ParseInLocation("2006-01-02 15:04", s, calendar.CST)
	return t
}

func TestWorkingDaysFollowHolidaysAndAdjustedDays(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		c, _ := cal(t, db)
		ctx := context.Background()
		y, err := calendar.ParseYear(strings.NewReader(year2026))
		if err != nil {
			t.Fatal(err)
		}
		if err := c.ImportYear(ctx, admin, y, "test"); err != nil {
			t.Fatal(err)
		}
		cases := []struct {
			from string
			n    int
			want string
		}{
			{"2026-09-25 10:00", 3, "2026-09-29"}, // Sunday the 27th is worked
			{"2026-09-30 10:00", 2, "2026-10-09"}, // the holiday week does not count
			{"2026-10-09 10:00", 1, "2026-10-10"}, // Saturday the 10th is worked
			{"2026-11-20 10:00", 15, "2026-12-11"},
		}
		for _, tc := range cases {
			got, err := c.AddWorkingDays(day(tc.from), tc.n)
			if err != nil || got.In(calendar.CST).Format("2006-01-02") != tc.want {
				t.Errorf("%s + %d = %v %v, want %s", tc.from, tc.n, got.In(calendar.CST), err, tc.want)
			}
		}
		// A deadline in a year with no calendar is an error, never a guess.
		_, err = c.AddWorkingDays(day("2026-12-28 10:00"), 10)
		if !errors.Is(err, calendar.ErrYearMissing) || !strings.Contains(err.Error(), "2027") {
			t.Fatalf("missing year: %v", err)
		}
		// A manual day changes the count.
		if err := c.SetDay(ctx, admin, calendar.Day{Date: "2026-09-28", Name: "测试", Off: true}); err != nil {
			t.Fatal(err)
		}
		if got, _ := c.AddWorkingDays(day("2026-09-25 10:00"), 3); got.In(calendar.CST).Format("2006-01-02") != "2026-09-30" {
			t.Fatalf("after setting a day off: %v", got.In(calendar.CST))
		}
		years, _ := c.Years(ctx)
		if len(years) != 1 || years[0].Days != 10 {
			t.Fatalf("years: %+v", years)
		}
	})
}

func TestImportIsAllOrNothingAndAdministratorsOnly(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		c, log := cal(t, db)
		ctx := context.Background()
		bad := calendar.Year{Year: 2026, Days: []calendar.Day{{Date: "2026-10-01", Off: true}, {Date: "2027-01-01", Off: true}}}
		err := c.ImportYear(ctx, admin, bad, "test")
		if ae, ok := apperr.As(err); !ok || ae.Code != "calendar.day_invalid" || ae.Row != 2 {
			t.Fatalf("bad day: %v", err)
		}
		if ys, _ := c.Years(ctx); len(ys) != 0 {
			t.Fatal("refused import stored a year")
		}
		if _, err := calendar.ParseYear(strings.NewReader(`{"year":"x"}`)); !errors.Is(err, calendar.ErrJSON) {
			t.Fatalf("bad json: %v", err)
		}
		da := policy.Actor{UserID: 2, Login: "gaj.admin", DeptID: 5, Roles: []policy.Role{policy.DeptAdmin}}
		if err := c.ImportYear(ctx, da, calendar.Year{Year: 2026}, "test"); !errors.Is(err, apperr.ErrDenied) {
			t.Fatalf("dept admin imports: %v", err)
		}
		evs, _ := log.List(ctx, audit.Filter{Action: "calendar.", Result: audit.ResultDenied})
		if len(evs) != 1 {
			t.Fatal("denial not audited")
		}
	})
}

// TestNationalDay2025 uses the State Council's 2025 arrangement: ten
// working days from Friday 26 September skip the National Day and
// Mid-Autumn holiday (1–8 October) and count the adjusted working days
// Sunday 28 September and Saturday 11 October, ending on 16 October.
func TestNationalDay2025(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		c, _ := cal(t, db)
		f, err := os.Open("testdata/2025.json")
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		y, err := calendar.ParseYear(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.ImportYear(context.Background(), admin, y, "2025.json"); err != nil {
			t.Fatal(err)
		}
		got, err := c.AddWorkingDays(day("2025-09-26 09:30"), 10)
		if err != nil || got.In(calendar.CST).Format("2006-01-02") != "2025-10-16" {
			t.Fatalf("10 working days from 2025-09-26: %v %v, want 2025-10-16", got.In(calendar.CST), err)
		}
		// Counting through the holiday without the adjusted days would
		// give 10-20; without the holiday, 10-10.
		if got, _ := c.AddWorkingDays(day("2025-09-26 09:30"), 1); got.In(calendar.CST).Format("2006-01-02") != "2025-09-28" {
			t.Fatalf("the first working day after 2025-09-26 is Sunday 09-28, got %v", got.In(calendar.CST))
		}
		// 2026 is not loaded here: a deadline running into it is an error.
		if _, err := c.AddWorkingDays(day("2025-12-24 09:30"), 10); !errors.Is(err, calendar.ErrYearMissing) || !strings.Contains(err.Error(), "2026") {
			t.Fatalf("deadline into 2026 without a calendar: %v", err)
		}
	})
}
