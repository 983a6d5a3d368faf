package calendar

import (
	"context"
	"encoding/json"

	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"govshare/internal/apperr"
	"govshare/internal/audit"
	"govshare/internal/policy"
	"govshare/internal/store"
)

// Day is a day that differs from the Monday–Friday rule: a statutory
// holiday (Off) or an adjusted working day on a weekend (调休, !Off).
type Day struct {
	Date string `json:"date" doc:"日期 YYYY-MM-DD / date"`
	Name string `json:"name,omitempty" doc:"名称，如 春节 / name, e.g. Spring Festival"`
	Off  bool   `json:"isOffDay" doc:"true 放假 / day off; false 调休上班 / adjusted working day"`
}

// Year is one year's calendar in the holiday-cn layout.
type Year struct {
	Year int   `json:"year"`
	Days []Day `json:"days"`
}

// YearInfo says a year is loaded and how.
type YearInfo struct {
	Year     int       `json:"year"`
	LoadedAt time.Time `json:"loaded_at"`
	Source   string    `json:"source,omitempty"`
	Days     int       `json:"days"`
}

// Errors of the calendar.
var (
	ErrYearMissing = apperr.New(http.StatusConflict, "calendar.year_missing", "该年度工作日历尚未维护，无法计算期限；请平台管理员导入该年度节假日安排",
		"the working-day calendar for that year is not loaded, so the deadline cannot be computed; a platform administrator must import the year")
	ErrYearInvalid = apperr.Invalid("calendar.year_invalid", "year", "年份应为2000至2100之间", "the year is between 2000 and 2100")
	ErrDayInvalid  = apperr.Invalid("calendar.day_invalid", "date", "日期应为 YYYY-MM-DD 且属于该年度", "the date is YYYY-MM-DD within the year")
	ErrDayTwice    = apperr.Invalid("calendar.day_twice", "date", "同一日期出现两次", "the same date appears twice")
	ErrJSON        = apperr.Invalid("calendar.json_invalid", "file", "文件不是 holiday-cn 格式的 JSON：{\"year\":…, \"days\":[{\"name\",\"date\",\"isOffDay\"}]}", "not holiday-cn JSON: {\"year\":…, \"days\":[{\"name\",\"date\",\"isOffDay\"}]}")
)

// Auditor is the part of the audit log the calendar needs.
type Auditor interface {
	Append(ctx context.Context, e audit.Event) error
}

// Calendar is the working-day calendar kept in the database. Deadlines
// ask it, so every server of a deployment counts the same way.
type Calendar struct {
	db    *store.DB
	audit Auditor
}

// New returns the calendar on db.
func New(db *store.DB, a Auditor) *Calendar { return &Calendar{db: db, audit: a} }

// AddWorkingDays implements WorkingDays with the loaded holidays and
// adjusted working days. It fails with ErrYearMissing (naming the year)
// when it would have to count through a year that is not loaded.
func (c *Calendar) AddWorkingDays(t time.Time, n int) (time.Time, error) {
	ctx := context.Background()
	d := t.In(CST)
	day := time.Date(d.Year(), d.Month(), d.Day(), 0, 0, 0, 0, CST)
	special := map[string]bool{} // date → off
	loaded := map[int]bool{}
	for n > 0 {
		day = day.AddDate(0, 0, 1)
		y := day.Year()
		if !loaded[y] {
			ok, err := c.loadYear(ctx, y, special)
			if err != nil {
				return time.Time{}, err
			}
			if !ok {
				e := *ErrYearMissing
				e.ZH = fmt.Sprintf("%d年%s", y, ErrYearMissing.ZH)
				e.EN = fmt.Sprintf("%s (year %d)", ErrYearMissing.EN, y)
				return time.Time{}, &e
			}
			loaded[y] = true
		}
		off, listed := special[day.Format("2006-01-02")]
		working := !off
		if !listed {
			wd := day.Weekday()
			working = wd != time.Saturday && wd != time.Sunday
		}
		if working {
			n--
		}
	}
	return day.Add(24*time.Hour - time.Nanosecond).UTC().Truncate(time.Microsecond), nil
}

func (c *Calendar) loadYear(ctx context.Context, year int, into map[string]bool) (bool, error) {
	var n int
	if err := c.db.QueryRow(ctx, "SELECT COUNT(*) FROM calendar_years WHERE year = ?", year).Scan(&n); err != nil {
		return false, err
	}
	if n == 0 {
		return false, nil
	}
	rows, err := c.db.Query(ctx, "SELECT day, off_day FROM calendar_days WHERE year = ?", year)
	if err != nil {
		return false, err
	}
	defer rows.Close()
	for rows.Next() {
		var day string
		var off bool
		if err := rows.Scan(&day, &off); err != nil {
			return false, err
		}
		into[day] = off
	}
	return true, rows.Err()
}

// ParseYear reads a year in the holiday-cn JSON layout.
func ParseYear(r io.Reader) (Year, error) {
	var y Year
	dec := json.NewDecoder(io.LimitReader(r, 1<<20))
	if err := dec.Decode(&y); err != nil {
		return y, ErrJSON
	}
	return y, nil
}

func (y *Year) validate() error {
	if y.Year < 2000 || y.Year > 2100 {
		return ErrYearInvalid
	}
	seen := map[string]bool{}
	for i := range y.Days {
		d := &y.Days[i]
		d.Date, d.Name = strings.TrimSpace(d.Date), strings.TrimSpace(d.Name)
		t, err := time.Parse("2006-01-02", d.Date)
		if err != nil || t.Year() != y.Year {
			return ErrDayInvalid.OnRow(i + 1)
		}
		if seen[d.Date] {
			return ErrDayTwice.OnRow(i + 1)
		}
		seen[d.Date] = true
	}
	return nil
}

// ImportYear replaces a year's calendar, all or nothing.
func (c *Calendar) ImportYear(ctx context.Context, actor policy.Actor, y Year, source string) error {
	if err := c.authorize(ctx, actor, strconv.Itoa(y.Year)); err != nil {
		return err
	}
	if err := y.validate(); err != nil {
		return err
	}
	err := c.db.InTx(ctx, func(tx *store.Tx) error {
		if _, err := tx.Exec(ctx, "DELETE FROM calendar_days WHERE year = ?", y.Year); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "DELETE FROM calendar_years WHERE year = ?", y.Year); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "INSERT INTO calendar_years (year, loaded_at, source) VALUES (?, ?, ?)", y.Year, store.Now(), source); err != nil {
			return err
		}
		for _, d := range y.Days {
			if _, err := tx.Exec(ctx, "INSERT INTO calendar_days (day, year, off_day, name) VALUES (?, ?, ?, ?)", d.Date, y.Year, d.Off, d.Name); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("import calendar %d: %w", y.Year, err)
	}
	return c.record(ctx, actor, "calendar.import", strconv.Itoa(y.Year), map[string]any{"days": len(y.Days), "source": source})
}

// SetDay adds or changes one special day of a loaded year.
func (c *Calendar) SetDay(ctx context.Context, actor policy.Actor, d Day) error {
	t, err := time.Parse("2006-01-02", strings.TrimSpace(d.Date))
	if err != nil {
		return ErrDayInvalid
	}
	if err := c.authorize(ctx, actor, d.Date); err != nil {
		return err
	}
	var n int
	if err := c.db.QueryRow(ctx, "SELECT COUNT(*) FROM calendar_years WHERE year = ?", t.Year()).Scan(&n); err != nil {
		return err
	}
	if n == 0 {
		if _, err := c.db.Exec(ctx, "INSERT INTO calendar_years (year, loaded_at, source) VALUES (?, ?, 'manual')", t.Year(), store.Now()); err != nil {
			return err
		}
	}
	if _, err := c.db.Exec(ctx, `INSERT INTO calendar_days (day, year, off_day, name) VALUES (?, ?, ?, ?)
		ON CONFLICT (day) DO UPDATE SET off_day = excluded.off_day, name = excluded.name`, t.Format("2006-01-02"), t.Year(), d.Off, strings.TrimSpace(d.Name)); err != nil {
		return err
	}
	return c.record(ctx, actor, "calendar.set_day", t.Format("2006-01-02"), map[string]any{"off": d.Off, "name": d.Name})
}

// DeleteDay returns a date to the Monday–Friday rule.
func (c *Calendar) DeleteDay(ctx context.Context, actor policy.Actor, date string) error {
	if err := c.authorize(ctx, actor, date); err != nil {
		return err
	}
	if _, err := c.db.Exec(ctx, "DELETE FROM calendar_days WHERE day = ?", date); err != nil {
		return err
	}
	return c.record(ctx, actor, "calendar.delete_day", date, nil)
}

// Years lists the loaded years.
func (c *Calendar) Years(ctx context.Context) ([]YearInfo, error) {
	rows, err := c.db.Query(ctx, `SELECT y.year, y.loaded_at, y.source, (SELECT COUNT(*) FROM calendar_days d WHERE d.year = y.year)
		FROM calendar_years y ORDER BY y.year DESC`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []YearInfo
	for rows.Next() {
		var y YearInfo
		if err := rows.Scan(&y.Year, &y.LoadedAt, &y.Source, &y.Days); err != nil {
			return nil, err
		}
		out = append(out, y)
	}
	return out, rows.Err()
}

// Days lists a year's special days in date order.
func (c *Calendar) Days(ctx context.Context, year int) ([]Day, error) {
	rows, err := c.db.Query(ctx, "SELECT day, name, off_day FROM calendar_days WHERE year = ? ORDER BY day", year)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []Day{}
	for rows.Next() {
		var d Day
		if err := rows.Scan(&d.Date, &d.Name, &d.Off); err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

func (c *Calendar) authorize(ctx context.Context, actor policy.Actor, obj string) error {
	if err := policy.Check(actor, policy.CalendarManage, policy.Target{}); err != nil {
		_ = c.audit.Append(ctx, audit.By(actor, string(policy.CalendarManage), "calendar", obj, audit.ResultDenied, nil))
		return err
	}
	return nil
}

func (c *Calendar) record(ctx context.Context, actor policy.Actor, action, obj string, details map[string]any) error {
	return c.audit.Append(ctx, audit.By(actor, action, "calendar", obj, audit.ResultOK, details))
}
