package calendar

import (
	"testing"
	"time"
)

func TestWeekdaysSkipWeekends(t *testing.T) {
	// Friday 2026-11-20 10:00 CST + 1 working day = Monday 23rd, end of day.
	fri := time.Date(2026, 11, 20, 10, 0, 0, 0, CST)
	got, _ := Weekdays{}.AddWorkingDays(fri, 1)
	if got.In(CST).Format("2006-01-02 15:04") != "2026-11-23 23:59" {
		t.Fatalf("got %s", got.In(CST))
	}
	got, _ = Weekdays{}.AddWorkingDays(fri, 15)
	if got.In(CST).Format("2006-01-02") != "2026-12-11" {
		t.Fatalf("15 working days: %s", got.In(CST))
	}
}
