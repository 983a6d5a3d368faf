package web

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"govshare/internal/apperr"
	"govshare/internal/calendar"
	"govshare/internal/identity"
	"govshare/internal/policy"
)

func (s *Server) calendarRoutes() {
	m := s.mux
	m.HandleFunc("GET /calendar", s.withSession(identity.StageReady, s.calendarPage))
	m.HandleFunc("POST /calendar/import", s.withSession(identity.StageReady, s.calendarImport))
	m.HandleFunc("POST /calendar/day", s.withSession(identity.StageReady, s.calendarDay))
}

type calendarData struct {
	Years []calendar.YearInfo
	Year  int
	Days  []calendar.Day
}

func (s *Server) calendarPage(w http.ResponseWriter, r *http.Request, c *current) {
	s.renderCalendar(w, r, c, http.StatusOK, nil, nil)
}

func (s *Server) renderCalendar(w http.ResponseWriter, r *http.Request, c *current, status int, ae *apperr.Error, form url.Values) {
	if !policy.Allowed(c.user.Actor(), policy.CalendarManage, policy.Target{}) {
		s.denied(w, r, c, policy.CalendarManage, "calendar")
		return
	}
	d := calendarData{Year: time.Now().In(cst).Year()}
	if y, err := strconv.Atoi(r.URL.Query().Get("year")); err == nil {
		d.Year = y
	}
	var err error
	if d.Years, err = s.Calendar.Years(r.Context()); err == nil {
		d.Days, err = s.Calendar.Days(r.Context(), d.Year)
	}
	if err != nil {
		s.errorPage(w, r, &c.user, err)
		return
	}
	s.render(w, r, status, "calendar", &page{Title: T(langOf(r), "nav.calendar"), User: &c.user, Active: "/calendar", Data: d, Err: ae, Form: form})
}

func (s *Server) afterCalendar(w http.ResponseWriter, r *http.Request, c *current, err error) {
	if err != nil {
		ae, ok := fixable(err)
		if !ok {
			s.errorPage(w, r, &c.user, err)
			return
		}
		s.renderCalendar(w, r, c, ae.Status, ae, r.PostForm)
		return
	}
	http.Redirect(w, r, "/calendar?ok=common.saved&year="+url.QueryEscape(r.PostFormValue("year")), http.StatusSeeOther)
}

func (s *Server) calendarImport(w http.ResponseWriter, r *http.Request, c *current) {
	r.Body = http.MaxBytesReader(w, r.Body, 1<<20)
	f, _, err := r.FormFile("file")
	if err != nil {
		s.afterCalendar(w, r, c, calendar.ErrJSON)
		return
	}
	defer f.Close()
	y, err := calendar.ParseYear(f)
	if err == nil {
		err = s.Calendar.ImportYear(r.Context(), c.user.Actor(), y, "upload")
		r.PostForm.Set("year", strconv.Itoa(y.Year))
	}
	s.afterCalendar(w, r, c, err)
}

func (s *Server) calendarDay(w http.ResponseWriter, r *http.Request, c *current) {
	date := r.PostFormValue("date")
	var err error
	if r.PostFormValue("delete") != "" {
		err = s.Calendar.DeleteDay(r.Context(), c.user.Actor(), date)
	} else {
		err = s.Calendar.SetDay(r.Context(), c.user.Actor(), calendar.Day{Date: date, Name: r.PostFormValue("name"), Off: r.PostFormValue("off") == "true"})
	}
	if t, perr := time.Parse("2006-01-02", date); perr == nil {
		r.PostForm.Set("year", strconv.Itoa(t.Year()))
	}
	s.afterCalendar(w, r, c, err)
}

func (s *Server) calendarAPI(api huma.API) {
	const tag = "工作日历 Calendar"
	huma.Register(api, op("list-calendar-years", http.MethodGet, "/api/v1/calendar", tag, "已维护的年度 / loaded years"),
		func(ctx context.Context, _ *struct{}) (*struct{ Body []calendar.YearInfo }, error) {
			ys, err := s.Calendar.Years(ctx)
			if err != nil {
				return nil, s.fail(ctx, err)
			}
			if ys == nil {
				ys = []calendar.YearInfo{}
			}
			return &struct{ Body []calendar.YearInfo }{Body: ys}, nil
		})
	huma.Register(api, op("get-calendar-year", http.MethodGet, "/api/v1/calendar/{year}", tag, "某年度的节假日与调休 / a year's holidays and adjusted days (holiday-cn layout)"),
		func(ctx context.Context, in *struct {
			Year int `path:"year" minimum:"2000" maximum:"2100"`
		}) (*struct{ Body calendar.Year }, error) {
			ds, err := s.Calendar.Days(ctx, in.Year)
			if err != nil {
				return nil, s.fail(ctx, err)
			}
			return &struct{ Body calendar.Year }{Body: calendar.Year{Year: in.Year, Days: ds}}, nil
		})
	huma.Register(api, op("import-calendar-year", http.MethodPut, "/api/v1/calendar/{year}", tag, "导入年度日历(holiday-cn JSON，整年替换) / import a year (holiday-cn JSON, replaces the year)"),
		func(ctx context.Context, in *struct {
			Year int `path:"year" minimum:"2000" maximum:"2100"`
			Body calendar.Year
		}) (*struct{}, error) {
			if in.Body.Year != in.Year {
				return nil, s.fail(ctx, calendar.ErrYearInvalid)
			}
			return nil, s.failOrNil(ctx, s.Calendar.ImportYear(ctx, principalFrom(ctx).actor(), in.Body, "api"))
		})
}
