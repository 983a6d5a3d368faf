// Package calendar counts working days (工作日) for legal deadlines. Until
// the platform keeps a holiday calendar, Weekdays counts Monday to Friday;
// deadline code depends only on the WorkingDays interface, so the holiday
// calendar with adjusted working days (调休) replaces it without changes
// elsewhere.
package calendar

import "time"

// WorkingDays adds working days to a time.
type WorkingDays interface {
	// AddWorkingDays returns the end of the n-th working day after t, in
	// China Standard Time. It fails when it cannot know (e.g. a year with
	// no calendar loaded) rather than guess.
	AddWorkingDays(t time.Time, n int) (time.Time, error)
}

// CST is China Standard Time, the zone deadlines are counted in.
var CST = time.FixedZone("CST", 8*3600)

// Weekdays counts Monday to Friday as working days.
type Weekdays struct{}

// AddWorkingDays implements WorkingDays.
func (Weekdays) AddWorkingDays(t time.Time, n int) (time.Time, error) {
	d := t.In(CST)
	day := time.Date(d.Year(), d.Month(), d.Day(), 0, 0, 0, 0, CST)
	for n > 0 {
		day = day.AddDate(0, 0, 1)
		if wd := day.Weekday(); wd != time.Saturday && wd != time.Sunday {
			n--
		}
	}
	// The deadline is the end of that day.
	return day.Add(24*time.Hour - time.Nanosecond).UTC().Truncate(time.Microsecond), nil
}
