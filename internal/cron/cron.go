// Package cron reads the five-field cron expressions exchange jobs are
// scheduled with (minute hour day-of-month month day-of-week) and finds
// the next time one fires. Fields take *, numbers, ranges a-b, steps */n
// and a-b/n, and lists separated by commas; day-of-week 0 and 7 are
// Sunday. As in the classic cron, when both day fields are restricted a
// day matches either.
package cron

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Schedule is a parsed expression.
type Schedule struct {
	min, hour, dom, month, dow uint64 // bit sets
	domAny, dowAny             bool
}

var fields = []struct {
	name     string
	min, max int
}{{"minute", 0, 59}, {"hour", 0, 23}, {"day of month", 1, 31}, {"month", 1, 12}, {"day of week", 0, 7}}

// Parse reads an expression such as "*/5 * * * *" or "30 2 * * 1-5".
func Parse(expr string) (Schedule, error) {
	parts := strings.Fields(expr)
	if len(parts) != 5 {
		return Schedule{}, fmt.Errorf("cron %q: want 5 fields (minute hour day-of-month month day-of-week), got %d", expr, len(parts))
	}
	var sets [5]uint64
	for i, p := range parts {
		set, err := parseField(p, fields[i].min, fields[i].max)
		if err != nil {
			return Schedule{}, fmt.Errorf("cron %q: %s: %w", expr, fields[i].name, err)
		}
		sets[i] = set
	}
	if sets[4]&(1<<7) != 0 {
		sets[4] |= 1
	}
	return Schedule{min: sets[0], hour: sets[1], dom: sets[2], month: sets[3], dow: sets[4],
		domAny: parts[2] == "*", dowAny: parts[4] == "*"}, nil
}

func parseField(f string, lo, hi int) (uint64, error) {
	var set uint64
	for _, item := range strings.Split(f, ",") {
		rng, step := item, 1
		if i := strings.IndexByte(item, '/'); i >= 0 {
			n, err := strconv.Atoi(item[i+1:])
			if err != nil || n <= 0 {
				return 0, fmt.Errorf("bad step in %q", item)
			}
			rng, step = item[:i], n
		}
		a, b := lo, hi
		if rng != "*" {
			if i := strings.IndexByte(rng, '-'); i >= 0 {
				var err1, err2 error
				a, err1 = strconv.Atoi(rng[:i])
				b, err2 = strconv.Atoi(rng[i+1:])
				if err1 != nil || err2 != nil {
					return 0, fmt.Errorf("bad range %q", rng)
				}
			} else {
				n, err := strconv.Atoi(rng)
				if err != nil {
					return 0, fmt.Errorf("bad value %q", rng)
				}
				a, b = n, n
				if step > 1 {
					b = hi
				}
			}
		}
		if a < lo || b > hi || a > b {
			return 0, fmt.Errorf("%q is outside %d-%d", item, lo, hi)
		}
		for v := a; v <= b; v += step {
			set |= 1 << uint(v)
		}
	}
	return set, nil
}

// Next returns the first time after t (to the minute, in t's location)
// the schedule fires.
func (s Schedule) Next(t time.Time) time.Time {
	t = t.Truncate(time.Minute).Add(time.Minute)
	limit := t.AddDate(5, 0, 0)
	for t.Before(limit) {
		if s.month&(1<<uint(t.Month())) == 0 {
			t = time.Date(t.Year(), t.Month()+1, 1, 0, 0, 0, 0, t.Location())
			continue
		}
		if !s.dayMatches(t) {
			t = time.Date(t.Year(), t.Month(), t.Day()+1, 0, 0, 0, 0, t.Location())
			continue
		}
		if s.hour&(1<<uint(t.Hour())) == 0 {
			t = time.Date(t.Year(), t.Month(), t.Day(), t.Hour()+1, 0, 0, 0, t.Location())
			continue
		}
		if s.min&(1<<uint(t.Minute())) == 0 {
			t = t.Add(time.Minute)
			continue
		}
		return t
	}
	return time.Time{}
}

func (s Schedule) dayMatches(t time.Time) bool {
	dom := s.dom&(1<<uint(t.Day())) != 0
	dow := s.dow&(1<<uint(t.Weekday())) != 0
	switch {
	case s.domAny && s.dowAny:
		return true
	case s.domAny:
		return dow
	case s.dowAny:
		return dom
	}
	return dom || dow
}
