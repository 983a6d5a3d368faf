package exchange

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"govshare/internal/audit"
	"govshare/internal/exchange/wire"
	"govshare/internal/mask"
	"govshare/internal/resource"
	"govshare/internal/share"
	"govshare/internal/store"
)

// deliveryRows is the most rows one delivery carries.
const deliveryRows = 5000

// fanOutLoop delivers each applied batch's changes to the subscriptions of
// its resource, as their grants allow, until ctx ends. It wakes when a
// batch is taken in and at least every second.
func (s *Service) fanOutLoop(ctx context.Context) {
	for ctx.Err() == nil {
		if err := s.FanOut(ctx); err != nil && ctx.Err() == nil {
			s.Log.Error("exchange fan-out", "err", err)
		}
		t := time.NewTimer(time.Second)
		select {
		case <-s.wake:
		case <-t.C:
		case <-ctx.Done():
		}
		t.Stop()
	}
}

// FanOut brings every active subscription up to date once.
func (s *Service) FanOut(ctx context.Context) error {
	subs, err := store.All(ctx, s.DB, scanSub, "SELECT "+subCols+subFrom+" WHERE s.state = 'active' ORDER BY s.id")
	if err != nil {
		return err
	}
	var errs []error
	for _, x := range subs {
		if err := s.fanOutOne(ctx, x); err != nil {
			errs = append(errs, fmt.Errorf("subscription %d: %w", x.ID, err))
		}
	}
	if len(errs) > 0 {
		return errs[0]
	}
	return nil
}

// view is what a subscription may see of its resource.
type view struct {
	cols    []resource.Column
	names   []string
	masks   []*mask.Rule
	keyPos  []int
	scope   *share.RowScope
	scopeAt int
}

func (s *Service) viewOf(r resource.Resource, p share.Permit) view {
	granted := map[string]string{}
	for _, it := range p.Items {
		granted[it.MachineName] = it.MaskRule
	}
	v := view{scope: p.RowScope, scopeAt: -1}
	for _, c := range r.Visible() {
		rule, ok := granted[c.MachineName]
		if !ok {
			continue
		}
		v.cols = append(v.cols, c)
		v.names = append(v.names, c.MachineName)
		var m *mask.Rule
		if rule != "" {
			if parsed, err := mask.Parse(rule); err == nil {
				m = &parsed
			}
		}
		v.masks = append(v.masks, m)
		if c.Key {
			v.keyPos = append(v.keyPos, len(v.cols)-1)
		}
		if v.scope != nil && c.MachineName == v.scope.Item {
			v.scopeAt = len(v.cols) - 1
		}
	}
	return v
}

// inScope says whether a row lies in the grant's row scope.
func (v view) inScope(row []*string) bool {
	if v.scope == nil {
		return true
	}
	if v.scopeAt < 0 || row[v.scopeAt] == nil {
		return false
	}
	val := *row[v.scopeAt]
	for _, want := range v.scope.Values {
		if v.scope.Op == "prefix" && strings.HasPrefix(val, want) || v.scope.Op != "prefix" && val == want {
			return true
		}
	}
	return false
}

// shape turns records read from the store into a delivery's rows and
// deletes: masked as the grant says; records outside the row scope are
// deletes for the consumer (one that moved out of scope must go).
func (s *Service) shape(v view, rows [][]*string, deleted [][]string) (out [][]*string, del [][]string) {
	for _, row := range rows {
		if !v.inScope(row) {
			k := make([]string, len(v.keyPos))
			for i, p := range v.keyPos {
				k[i] = s.maskValue(v.masks[p], row[p])
			}
			del = append(del, k)
			continue
		}
		for i, m := range v.masks {
			if m != nil && row[i] != nil {
				masked := s.Masker.Apply(*m, *row[i])
				row[i] = &masked
			}
		}
		out = append(out, row)
	}
	for _, k := range deleted {
		mk := make([]string, len(k))
		for i, p := range v.keyPos {
			mk[i] = s.maskValue(v.masks[p], &k[i])
		}
		del = append(del, mk)
	}
	return out, del
}

func (s *Service) maskValue(m *mask.Rule, v *string) string {
	if v == nil {
		return ""
	}
	if m == nil {
		return *v
	}
	return s.Masker.Apply(*m, *v)
}

// fanOutOne delivers what a subscription has not had yet: everything (a
// snapshot) for a new or re-synced one, then each applied batch's changes.
func (s *Service) fanOutOne(ctx context.Context, x Subscription) error {
	p, err := s.Share.Permit(ctx, share.Use{DeptID: x.DeptID, Resource: x.Resource, Items: x.Items, Method: "exchange"})
	if err != nil {
		return s.stopRevoked(ctx, x)
	}
	r, err := s.Resources.ByCode(ctx, x.Resource)
	if err != nil {
		return err
	}
	v := s.viewOf(r, p)
	if len(v.keyPos) == 0 {
		return nil
	}
	if x.Cursor < 0 {
		upTo, err := s.Resources.LastApplied(ctx, r)
		if err != nil {
			return err
		}
		err = s.deliverRun(ctx, x, v, 0, func(fn func(rows [][]*string, del [][]string) error) error {
			return s.Resources.Snapshot(ctx, r, v.cols, deliveryRows, func(rows [][]*string) error { return fn(rows, nil) })
		})
		if err != nil {
			return err
		}
		if err := s.setCursor(ctx, x, upTo); err != nil {
			return err
		}
		x.Cursor = upTo
	}
	for {
		ids, err := s.Resources.NextBatches(ctx, r, x.Cursor, 100)
		if err != nil || len(ids) == 0 {
			return err
		}
		for _, id := range ids {
			err := s.deliverRun(ctx, x, v, id, func(fn func(rows [][]*string, del [][]string) error) error {
				return s.Resources.Changes(ctx, r, v.cols, id, deliveryRows, fn)
			})
			if err != nil {
				return err
			}
			if err := s.setCursor(ctx, x, id); err != nil {
				return err
			}
			x.Cursor = id
		}
	}
}

func (s *Service) setCursor(ctx context.Context, x Subscription, batch int64) error {
	_, err := s.DB.Exec(ctx, "UPDATE exchange_subscriptions SET cursor_batch = ? WHERE id = ? AND epoch = ?", batch, x.ID, x.Epoch)
	return err
}

// deliverRun publishes one run (a snapshot or a batch's changes) as
// deliveries of at most deliveryRows records. Each start is a new attempt:
// after a restart mid-run the run is delivered again whole (applying it
// twice has the effect of once), and only the last attempt is counted.
func (s *Service) deliverRun(ctx context.Context, x Subscription, v view, runNo int64,
	read func(fn func(rows [][]*string, del [][]string) error) error) error {
	runID, err := s.openRun(ctx, "out", 0, x.ID, x.Epoch, runNo, "", 0)
	if err != nil {
		return err
	}
	var attempt int64
	if err := s.DB.QueryRow(ctx, "UPDATE exchange_runs SET attempt = attempt + 1, state = 'running', updated_at = ? WHERE id = ? RETURNING attempt",
		s.now(), runID).Scan(&attempt); err != nil {
		return err
	}
	if _, err := s.DB.Exec(ctx, "DELETE FROM exchange_run_batches WHERE run_id = ?", runID); err != nil {
		return err
	}
	var part int64
	var total wire.RunCounts
	var changed time.Time
	if runNo > 0 {
		var fin sql.NullTime
		_ = s.DB.QueryRow(ctx, "SELECT finished_at FROM resource_batches WHERE id = ?", runNo).Scan(&fin)
		changed = fin.Time
	}
	win := &pubWindow{s: s, stored: func() { s.stored(x.ID) }}
	var publish func(rows [][]*string, del [][]string) error
	publish = func(rows [][]*string, del [][]string) error {
		part++
		d := wire.Delivery{Subscription: x.ID, Epoch: x.Epoch, Run: runNo, Part: part, Attempt: attempt, Columns: v.names, Rows: rows,
			Deletes: del, Published: s.now(), Changed: changed,
			Sent: wire.RunCounts{Rows: int64(len(rows) + len(del)), Upserts: int64(len(rows)), Deletes: int64(len(del))}}
		total.Add(d.Sent)
		body, err := wire.Encode(d)
		if err != nil {
			return err
		}
		if len(body) > wire.MaxMessage && len(rows)+len(del) > 1 {
			// Too large for one message: halve it.
			part--
			total = subtract(total, d.Sent)
			hr, hd := len(rows)/2, len(del)/2
			if err := publish(rows[:hr], del[:hd]); err != nil {
				return err
			}
			return publish(rows[hr:], del[hd:])
		}
		msgID := fmt.Sprintf("s%d-e%d-r%d-a%d-p%d", x.ID, x.Epoch, runNo, attempt, part)
		return win.add(ctx, message(subjectOut(x.ID), msgID, body, wire.HeaderEpoch, itoa(x.Epoch)))
	}
	err = read(func(rows [][]*string, del [][]string) error {
		out, gone := s.shape(v, rows, del)
		if len(out)+len(gone) == 0 {
			return nil
		}
		return publish(out, gone)
	})
	if err == nil {
		err = win.flush(ctx)
	}
	if err != nil {
		return err
	}
	if part == 0 {
		// Nothing for this subscriber in the run (e.g. all outside its row
		// scope): the run is complete with nothing on either side.
		_, err := s.DB.Exec(ctx, "UPDATE exchange_runs SET state = 'complete', finished_at = ?, sent = '{\"rows\":0}' WHERE id = ?", s.now(), runID)
		return err
	}
	if err := s.closeRun(ctx, runID, part, total); err != nil {
		return err
	}
	return s.reconcile(ctx, runID)
}

// subjectStored is where the center says a delivery for a subscription is
// stored. Long polls wait for it rather than for the delivery's own
// subject: a subscriber to that subject hears of the message before the
// stream has stored it, looks, finds nothing, and would sleep until the
// next delivery (a second later in a steady flow, or the whole wait).
func subjectStored(subID int64) string { return "gs.stored." + itoa(subID) }

// stored wakes the long polls of a subscription's node.
func (s *Service) stored(subID int64) {
	_ = s.Bus.Conn().Publish(subjectStored(subID), nil)
}

func subtract(a, b wire.RunCounts) wire.RunCounts {
	a.Rows -= b.Rows
	a.Upserts -= b.Upserts
	a.Deletes -= b.Deletes
	return a
}

// stopRevoked ends a subscription whose grant no longer allows exchange:
// nothing more is published, and what waits on the bus is dropped.
func (s *Service) stopRevoked(ctx context.Context, x Subscription) error {
	res, err := s.DB.Exec(ctx, `UPDATE exchange_subscriptions SET state = 'revoked', stop_reason = 'grant', version = version + 1, updated_at = ?
		WHERE id = ? AND state = 'active'`, s.now(), x.ID)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return nil
	}
	if err := s.purgeDeliveries(ctx, x.ID); err != nil {
		return err
	}
	s.nudge(x.NodeID)
	return s.Audit.Append(ctx, audit.Event{ActorType: audit.ActorSystem, ActorName: "system", DeptID: x.DeptID, Action: "exchange.subscription_stopped",
		ObjectType: "exchange_subscription", ObjectID: itoa(x.ID), Result: audit.ResultOK,
		Details: audit.Details(map[string]any{"reason": "grant revoked or expired", "grant_id": x.GrantID, "resource": x.Resource})})
}
