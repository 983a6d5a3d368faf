package notify

import (
	"context"
	"errors"
	"fmt"
	"time"

	"govshare/internal/policy"
	"govshare/internal/store"
)

// Reminder stages: a deadline is reminded of once before it is due and
// once when it is overdue.
const (
	StageBefore  = "before"
	StageOverdue = "overdue"
)

// CheckDeadlines reminds of every open deadline the sources hold: within
// RemindBefore of its due time its department's role holders hear that it
// is due soon ("reminder."+kind); once it has passed they and the platform
// administrators hear that it is overdue ("overdue."+kind). Each stage is
// sent once per due time, even with several servers checking at once; a
// deadline that moves is reminded of anew. A failing source does not stop
// the others.
func (s *Service) CheckDeadlines(ctx context.Context, sources ...DeadlineSource) error {
	var errs []error
	for _, src := range sources {
		ds, err := src.Deadlines(ctx)
		if err != nil {
			errs = append(errs, fmt.Errorf("list deadlines: %w", err))
			continue
		}
		for _, d := range ds {
			if err := s.remind(ctx, d); err != nil {
				errs = append(errs, fmt.Errorf("remind %s %s/%s: %w", d.Kind, d.ObjectType, d.ObjectID, err))
			}
		}
	}
	return errors.Join(errs...)
}

func (s *Service) remind(ctx context.Context, d Deadline) error {
	if d.Due.IsZero() || d.Kind == "" {
		return nil
	}
	now := s.clock()
	due := d.Due.UTC().Truncate(time.Microsecond)
	zh, en := d.TitleZH, d.TitleEN
	if en == "" {
		en = zh
	}
	n := Notice{DeptID: d.DeptID, Roles: d.Roles, Href: d.Href, ObjectType: d.ObjectType, ObjectID: d.ObjectID}
	var stage string
	var also []Notice
	switch {
	case now.After(due):
		stage = StageOverdue
		n.Kind, n.TitleZH, n.TitleEN = "overdue."+d.Kind, "已逾期："+zh, "Overdue: "+en
		also = []Notice{{Roles: []policy.Role{policy.PlatformAdmin}}}
	case !now.Before(due.Add(-s.RemindBefore)):
		stage = StageBefore
		n.Kind, n.TitleZH, n.TitleEN = "reminder."+d.Kind, "即将到期："+zh, "Due soon: "+en
	default:
		return nil
	}
	n.Data = map[string]any{"deadline": d.Kind, "stage": stage, "due": due}
	queued := 0
	err := s.db.InTx(ctx, func(tx *store.Tx) error {
		// The mark and the notices commit together: a reminder is neither
		// lost nor, when servers race, sent twice.
		res, err := tx.Exec(ctx, `INSERT INTO notify_reminders (kind, object_type, object_id, stage, due, sent_at)
			VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`, d.Kind, d.ObjectType, d.ObjectID, stage, due, now)
		if err != nil {
			return err
		}
		if marked, err := res.RowsAffected(); err != nil || marked == 0 {
			return err // already sent
		}
		queued, err = s.send(ctx, tx, now, n, also...)
		return err
	})
	if err != nil {
		return err
	}
	if queued > 0 {
		s.poke()
	}
	return nil
}

// RunReminders checks the sources' deadlines every interval until ctx
// ends (every 5 minutes when every is not positive).
func (s *Service) RunReminders(ctx context.Context, every time.Duration, sources ...DeadlineSource) {
	if every <= 0 {
		every = 5 * time.Minute
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if err := s.CheckDeadlines(ctx, sources...); err != nil && ctx.Err() == nil {
			s.log.Error("deadline reminders", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
