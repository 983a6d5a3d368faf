package resource

import (
	"context"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"govshare/internal/apperr"
	"govshare/internal/audit"
	"govshare/internal/calendar"
	"govshare/internal/notify"
	"govshare/internal/policy"
	"govshare/internal/todo"
)

// Timeliness (更新时效) of a resource under its update cycle.
type Timeliness struct {
	State string    `json:"state" doc:"timely 按时 / due 本周期待更新 / overdue 逾期 / none 无周期要求"`
	Last  time.Time `json:"last,omitzero" doc:"最近一次更新或零上报 / last update or zero report"`
	Due   time.Time `json:"due,omitzero" doc:"本周期截止 / end of the current cycle"`
}

// cycleEnd is when a resource last refreshed at last must be refreshed
// again: the end of the next calendar period in China Standard Time.
func cycleEnd(cycle string, last time.Time) (time.Time, bool) {
	d := last.In(calendar.CST)
	day := time.Date(d.Year(), d.Month(), d.Day(), 0, 0, 0, 0, calendar.CST)
	switch cycle {
	case "realtime", "daily":
		// Real-time resources are timely while their node delivers
		// (Timeliness); without a node, a day without data makes them due
		// like daily ones.
		return day.AddDate(0, 0, 2), true
	case "weekly":
		return day.AddDate(0, 0, 8), true
	case "monthly":
		return time.Date(d.Year(), d.Month()+2, 1, 0, 0, 0, 0, calendar.CST), true
	case "quarterly":
		q := (int(d.Month())-1)/3*3 + 1
		return time.Date(d.Year(), time.Month(q+6), 1, 0, 0, 0, 0, calendar.CST), true
	case "half_yearly":
		h := (int(d.Month())-1)/6*6 + 1
		return time.Date(d.Year(), time.Month(h+12), 1, 0, 0, 0, 0, calendar.CST), true
	case "yearly":
		return time.Date(d.Year()+2, 1, 1, 0, 0, 0, 0, calendar.CST), true
	}
	return time.Time{}, false
}

// Timeliness says whether the resource is refreshed on cycle: due once the
// current period has begun without data or a zero report, overdue once it
// ended.
func (r Resource) Timeliness(now time.Time) Timeliness {
	last := r.MountedAt
	for _, t := range []time.Time{r.LastUpdateAt, r.LastZeroAt} {
		if t.After(last) {
			last = t
		}
	}
	if r.UpdateCycle == "realtime" && !r.NodeSeenAt.IsZero() && now.Sub(r.NodeSeenAt) < NodeGrace {
		if r.NodeSeenAt.After(last) {
			last = r.NodeSeenAt
		}
		return Timeliness{State: "timely", Last: last, Due: r.NodeSeenAt.Add(NodeGrace).UTC()}
	}
	t := Timeliness{State: "none", Last: last}
	end, ok := cycleEnd(r.UpdateCycle, last)
	if !ok {
		return t
	}
	t.Due = end.UTC()
	switch {
	case now.After(end):
		t.State = "overdue"
	case now.After(periodStart(r.UpdateCycle, end)):
		t.State = "due"
	default:
		t.State = "timely"
	}
	return t
}

// NodeGrace is how long a node's report of delivering keeps a real-time
// resource timely: nodes report every few seconds, so minutes of silence
// mean the exchange stopped.
const NodeGrace = 10 * time.Minute

// NodeDelivering records that a node reported a running job into the
// resource without error.
func (s *Service) NodeDelivering(ctx context.Context, resourceID int64) error {
	_, err := s.db.Exec(ctx, "UPDATE resources SET node_seen_at = ? WHERE id = ?", s.now(), resourceID)
	return err
}

// periodStart is the beginning of the period that ends at end.
func periodStart(cycle string, end time.Time) time.Time {
	e := end.In(calendar.CST)
	switch cycle {
	case "realtime", "daily":
		return e.AddDate(0, 0, -1)
	case "weekly":
		return e.AddDate(0, 0, -7)
	case "monthly":
		return e.AddDate(0, -1, 0)
	case "quarterly":
		return e.AddDate(0, -3, 0)
	case "half_yearly":
		return e.AddDate(0, -6, 0)
	}
	return e.AddDate(-1, 0, 0)
}

// ErrZeroNote is a zero report whose note is too long.
var ErrZeroNote = apperr.Invalid("resource.zero_note_invalid", "note", "说明不超过200字", "the note is at most 200 characters")

// ZeroReport records that nothing changed this cycle (零上报), which
// counts as an update for timeliness.
func (s *Service) ZeroReport(ctx context.Context, actor policy.Actor, code, note string) (Resource, error) {
	r, err := s.ByCode(ctx, code)
	if err != nil {
		return r, err
	}
	if err := s.authorize(ctx, actor, policy.DataSubmit, r.DeptID, "resource", r.Code); err != nil {
		return r, err
	}
	note = strings.TrimSpace(note)
	if utf8.RuneCountInString(note) > 200 {
		return r, ErrZeroNote
	}
	now := s.now()
	if _, err := s.db.Exec(ctx, "INSERT INTO resource_zero_reports (resource_id, note, reported_by, reported_app, reported_at) VALUES (?, ?, ?, ?, ?)",
		r.ID, note, actor.UserID, actor.App, now); err != nil {
		return r, err
	}
	if _, err := s.db.Exec(ctx, "UPDATE resources SET last_zero_at = ? WHERE id = ?", now, r.ID); err != nil {
		return r, err
	}
	if err := s.audit.Append(ctx, audit.By(actor, "resource.zero_report", "resource", r.Code, audit.ResultOK, map[string]any{"note": note})); err != nil {
		return r, err
	}
	return s.ByCode(ctx, code)
}

// Volume is the records that came in on one day, and those the exchange
// delivered out to subscribers.
type Volume struct {
	Day        string `json:"day"`
	RecordsIn  int64  `json:"records_in" doc:"归集入库记录数 / records that came in"`
	RecordsOut int64  `json:"records_out" doc:"交换分发记录数 / records delivered to subscribers"`
}

// AddDelivered counts records the exchange delivered out of a resource
// today (China Standard Time).
func (s *Service) AddDelivered(ctx context.Context, resourceID, n int64) error {
	if n == 0 {
		return nil
	}
	day := s.now().In(calendar.CST).Format("2006-01-02")
	_, err := s.db.Exec(ctx, `INSERT INTO resource_daily (resource_id, day, records_in, records_out) VALUES (?, ?, 0, ?)
		ON CONFLICT (resource_id, day) DO UPDATE SET records_out = resource_daily.records_out + excluded.records_out`, resourceID, day, n)
	return err
}

// Volume returns records in per day over the last days, oldest first,
// with days without data as zero.
func (s *Service) Volume(ctx context.Context, code string, days int) ([]Volume, error) {
	r, err := s.ByCode(ctx, code)
	if err != nil {
		return nil, err
	}
	if days <= 0 || days > 366 {
		days = 30
	}
	today := s.now().In(calendar.CST)
	from := today.AddDate(0, 0, -(days - 1)).Format("2006-01-02")
	got := map[string]Volume{}
	vs, err := storeAllVolume(ctx, s, r.ID, from)
	if err != nil {
		return nil, err
	}
	for _, v := range vs {
		got[v.Day] = v
	}
	out := make([]Volume, days)
	for i := range out {
		d := today.AddDate(0, 0, -(days - 1 - i)).Format("2006-01-02")
		out[i] = got[d]
		out[i].Day = d
	}
	return out, nil
}

func storeAllVolume(ctx context.Context, s *Service, id int64, from string) ([]Volume, error) {
	rows, err := s.db.Query(ctx, "SELECT day, records_in, records_out FROM resource_daily WHERE resource_id = ? AND day >= ? ORDER BY day", id, from)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Volume
	for rows.Next() {
		var v Volume
		if err := rows.Scan(&v.Day, &v.RecordsIn, &v.RecordsOut); err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

var (
	_ todo.Source           = (*Service)(nil)
	_ notify.DeadlineSource = (*Service)(nil)
)

// Todos lists the department's resources that are due or overdue, for
// their data administrators; platform administrators see the overdue ones
// of every department.
func (s *Service) Todos(ctx context.Context, actor policy.Actor) ([]todo.Item, error) {
	var out []todo.Item
	now := s.now()
	add := func(dept int64, onlyOverdue bool) error {
		rs, err := s.List(ctx, dept)
		if err != nil {
			return err
		}
		for _, r := range rs {
			if _, c, err := s.cat.Published(ctx, r.EntryID); err == nil {
				r.UpdateCycle = c.UpdateCycle
			}
			t := r.Timeliness(now)
			if t.State == "overdue" || (t.State == "due" && !onlyOverdue) {
				out = append(out, todo.Item{Kind: "resource.update", Title: "按周期更新数据或零上报 / update the data or make a zero report",
					Object: r.Name + " " + r.Code, Href: "/resources/" + r.Code, Since: t.Last, Deadline: t.Due})
			}
		}
		return nil
	}
	if actor.DeptID != 0 && policy.Allowed(actor, policy.DataSubmit, policy.Target{DeptID: actor.DeptID}) {
		if err := add(actor.DeptID, false); err != nil {
			return nil, err
		}
	}
	if policy.Allowed(actor, policy.ShareCoordinate, policy.Target{}) {
		if err := add(0, true); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Deadlines lists the end of every mounted resource's current cycle, for
// reminders to its data administrators and overdue notices.
func (s *Service) Deadlines(ctx context.Context) ([]notify.Deadline, error) {
	rs, err := s.List(ctx, 0)
	if err != nil {
		return nil, err
	}
	now := s.now()
	var out []notify.Deadline
	for _, r := range rs {
		if _, c, err := s.cat.Published(ctx, r.EntryID); err == nil {
			r.UpdateCycle = c.UpdateCycle
		}
		t := r.Timeliness(now)
		if t.Due.IsZero() {
			continue
		}
		out = append(out, notify.Deadline{Kind: "resource.update", ObjectType: "resource", ObjectID: r.Code, DeptID: r.DeptID,
			Roles: []policy.Role{policy.DeptAdmin}, Href: "/resources/" + r.Code, Due: t.Due,
			TitleZH: fmt.Sprintf("更新数据或零上报：%s", r.Name), TitleEN: fmt.Sprintf("Update the data or make a zero report: %s", r.Name)})
	}
	return out, nil
}
