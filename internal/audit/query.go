package audit

import (
	"context"
	"fmt"
	"strings"
	"time"

	"govshare/internal/store"
)

// Filter selects events for browsing and export. Zero fields match all.
type Filter struct {
	From, To   time.Time
	Actor      string // login or app key, exact
	DeptID     int64
	Action     string // prefix, e.g. "user." matches every user action
	ObjectType string
	ObjectID   string
	Result     string
	BeforeSeq  int64 // keyset paging: events with seq < BeforeSeq
	Limit      int
}

func (f Filter) where() (string, []any) {
	var conds []string
	var args []any
	add := func(c string, a any) { conds = append(conds, c); args = append(args, a) }
	if !f.From.IsZero() {
		add("occurred_at >= ?", f.From.UTC())
	}
	if !f.To.IsZero() {
		add("occurred_at < ?", f.To.UTC())
	}
	if f.Actor != "" {
		add("actor_name = ?", f.Actor)
	}
	if f.DeptID != 0 {
		add("dept_id = ?", f.DeptID)
	}
	if f.Action != "" {
		add(`action LIKE ? ESCAPE '\'`, store.LikeEscape(f.Action)+"%")
	}
	if f.ObjectType != "" {
		add("object_type = ?", f.ObjectType)
	}
	if f.ObjectID != "" {
		add("object_id = ?", f.ObjectID)
	}
	if f.Result != "" {
		add("result = ?", f.Result)
	}
	if f.BeforeSeq > 0 {
		add("seq < ?", f.BeforeSeq)
	}
	if len(conds) == 0 {
		return "", nil
	}
	return " WHERE " + strings.Join(conds, " AND "), args
}

const selectEvents = `SELECT seq, occurred_at, actor_type, actor_id, actor_name, COALESCE(dept_id, 0), action, object_type, object_id,
	result, client_addr, request_id, purpose, details, prev_hash, hash FROM audit_events`

// List returns matching events, newest first.
func (l *Log) List(ctx context.Context, f Filter) ([]Event, error) {
	if f.Limit <= 0 || f.Limit > 500 {
		f.Limit = 50
	}
	var out []Event
	err := l.Each(ctx, f, func(e Event) error { out = append(out, e); return nil })
	return out, err
}

// Each streams matching events, newest first, to fn. A Limit of 0 with
// Each means no limit (exports).
func (l *Log) Each(ctx context.Context, f Filter, fn func(Event) error) error {
	where, args := f.where()
	q := selectEvents + where + " ORDER BY seq DESC"
	if f.Limit > 0 {
		q += fmt.Sprintf(" LIMIT %d", f.Limit)
	}
	rows, err := l.db.Query(ctx, q, args...)
	if err != nil {
		return fmt.Errorf("query audit events: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var e Event
		if err := rows.Scan(&e.Seq, &e.Time, &e.ActorType, &e.ActorID, &e.ActorName, &e.DeptID, &e.Action, &e.ObjectType,
			&e.ObjectID, &e.Result, &e.ClientAddr, &e.RequestID, &e.Purpose, &e.Details, &e.PrevHash, &e.Hash); err != nil {
			return err
		}
		if err := fn(e); err != nil {
			return err
		}
	}
	return rows.Err()
}
