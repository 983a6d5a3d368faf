package exchange

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"govshare/internal/apperr"
	"govshare/internal/audit"
	"govshare/internal/exchange/wire"
	"govshare/internal/policy"
	"govshare/internal/resource"
	"govshare/internal/share"
	"govshare/internal/store"
)

// Run is one run counted at both ends (桥接核对).
type Run struct {
	ID             int64          `json:"id"`
	Direction      string         `json:"direction" doc:"in 归集(前置机→中心) / out 分发(中心→前置机)"`
	JobID          int64          `json:"job_id,omitempty"`
	SubscriptionID int64          `json:"subscription_id,omitempty"`
	Epoch          int64          `json:"epoch,omitempty"`
	RunNo          int64          `json:"run_no" doc:"in: 前置机的运行序号 / the node's run number; out: 资源批次 / the resource batch (0 = initial snapshot)"`
	Mode           string         `json:"mode,omitempty"`
	State          string         `json:"state" doc:"running / complete / mismatch"`
	BatchesSent    int64          `json:"batches_sent" doc:"发送方批次数(运行结束后) / batches the sender sent (known at the end)"`
	BatchesRecv    int64          `json:"batches_received"`
	Sent           wire.RunCounts `json:"sent" doc:"发送方计数 / the sender's counts"`
	Received       wire.RunCounts `json:"received" doc:"接收方计数 / the receiver's counts"`
	KeyDeletes     int64          `json:"key_deletes,omitempty" doc:"比对主键发现的删除 / deletes found by comparing keys"`
	StartedAt      time.Time      `json:"started_at"`
	UpdatedAt      time.Time      `json:"updated_at"`
	FinishedAt     time.Time      `json:"finished_at,omitzero"`
	Note           string         `json:"note,omitempty"`
}

// Duration is how long the run took (so far).
func (r Run) Duration() time.Duration {
	end := r.FinishedAt
	if end.IsZero() {
		end = r.UpdatedAt
	}
	return end.Sub(r.StartedAt)
}

const runCols = `x.id, x.direction, x.job_id, x.subscription_id, x.epoch, x.run_no, x.mode, x.state, x.batches_sent, x.sent, x.started_at, x.updated_at,
	x.finished_at, x.note,
	(SELECT COUNT(*) FROM exchange_run_batches b WHERE b.run_id = x.id AND b.seq > 0),
	(SELECT COALESCE(SUM(recv_rows), 0) FROM exchange_run_batches b WHERE b.run_id = x.id AND b.seq > 0),
	(SELECT COALESCE(SUM(inserted), 0) FROM exchange_run_batches b WHERE b.run_id = x.id AND b.seq > 0),
	(SELECT COALESCE(SUM(updated), 0) FROM exchange_run_batches b WHERE b.run_id = x.id AND b.seq > 0),
	(SELECT COALESCE(SUM(unchanged), 0) FROM exchange_run_batches b WHERE b.run_id = x.id AND b.seq > 0),
	(SELECT COALESCE(SUM(deleted), 0) FROM exchange_run_batches b WHERE b.run_id = x.id AND b.seq > 0),
	(SELECT COALESCE(SUM(missing), 0) FROM exchange_run_batches b WHERE b.run_id = x.id AND b.seq > 0),
	(SELECT COALESCE(SUM(rejected), 0) FROM exchange_run_batches b WHERE b.run_id = x.id AND b.seq > 0),
	(SELECT COALESCE(SUM(deleted), 0) FROM exchange_run_batches b WHERE b.run_id = x.id AND b.seq = 0)`

func scanRun(row store.Row) (Run, error) {
	var r Run
	var sent string
	var fin sql.NullTime
	c := &r.Received
	err := row.Scan(&r.ID, &r.Direction, &r.JobID, &r.SubscriptionID, &r.Epoch, &r.RunNo, &r.Mode, &r.State, &r.BatchesSent, &sent, &r.StartedAt,
		&r.UpdatedAt, &fin, &r.Note, &r.BatchesRecv, &c.Rows, &c.Inserted, &c.Updated, &c.Unchanged, &c.Deleted, &c.Missing, &c.Rejected, &r.KeyDeletes)
	if err != nil {
		return r, err
	}
	r.FinishedAt = fin.Time
	if sent != "" {
		err = json.Unmarshal([]byte(sent), &r.Sent)
	}
	return r, err
}

// RunFilter selects runs.
type RunFilter struct {
	JobID          int64
	SubscriptionID int64
	State          string
	Limit          int
}

// Runs lists runs the actor may see, newest first.
func (s *Service) Runs(ctx context.Context, actor policy.Actor, f RunFilter) ([]Run, error) {
	var where []string
	var args []any
	switch {
	case f.JobID != 0:
		j, err := s.Job(ctx, actor, f.JobID)
		if err != nil {
			return nil, err
		}
		where, args = append(where, "x.direction = 'in' AND x.job_id = ?"), append(args, j.ID)
	case f.SubscriptionID != 0:
		x, err := s.Subscription(ctx, actor, f.SubscriptionID)
		if err != nil {
			return nil, err
		}
		where, args = append(where, "x.direction = 'out' AND x.subscription_id = ?"), append(args, x.ID)
	default:
		dept, err := s.viewScope(ctx, actor)
		if err != nil {
			return nil, err
		}
		if dept != 0 {
			where = append(where, `((x.direction = 'in' AND x.job_id IN (SELECT j.id FROM exchange_jobs j JOIN nodes n ON n.id = j.node_id WHERE n.dept_id = ?))
				OR (x.direction = 'out' AND x.subscription_id IN (SELECT s.id FROM exchange_subscriptions s JOIN nodes n ON n.id = s.node_id JOIN resources r ON r.id = s.resource_id WHERE n.dept_id = ? OR r.dept_id = ?)))`)
			args = append(args, dept, dept, dept)
		}
	}
	if f.State != "" {
		where, args = append(where, "x.state = ?"), append(args, f.State)
	}
	if f.Limit <= 0 {
		f.Limit = 100
	}
	f.Limit = min(f.Limit, 1000)
	q := "SELECT " + runCols + " FROM exchange_runs x"
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY x.id DESC LIMIT ?"
	return store.All(ctx, s.DB, scanRun, q, append(args, f.Limit)...)
}

// viewScope is the department whose exchange the actor sees (0: all).
func (s *Service) viewScope(ctx context.Context, actor policy.Actor) (int64, error) {
	if policy.Allowed(actor, policy.ExchangeView, policy.Target{}) {
		return 0, nil
	}
	return actor.DeptID, s.authorize(ctx, actor, policy.ExchangeView, actor.DeptID, "exchange_run", "")
}

func (s *Service) runByID(ctx context.Context, id int64) (Run, error) {
	return scanRun(s.DB.QueryRow(ctx, "SELECT "+runCols+" FROM exchange_runs x WHERE x.id = ?", id))
}

// openRun finds or makes the run's row.
func (s *Service) openRun(ctx context.Context, direction string, jobID, subID, epoch, runNo int64, mode string, liveBefore int64) (int64, error) {
	now := s.now()
	_, err := s.DB.Exec(ctx, `INSERT INTO exchange_runs (direction, job_id, subscription_id, epoch, run_no, mode, live_before, started_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`, direction, jobID, subID, epoch, runNo, mode, liveBefore, now, now)
	if err != nil {
		return 0, err
	}
	var id int64
	err = s.DB.QueryRow(ctx, "SELECT id FROM exchange_runs WHERE direction = ? AND job_id = ? AND subscription_id = ? AND epoch = ? AND run_no = ?",
		direction, jobID, subID, epoch, runNo).Scan(&id)
	return id, err
}

// countBatch records one batch's counts once; false when they were
// already recorded. db is the store, or the transaction of the pipeline
// batch that applied the batch (ref: that batch, for batches taken in).
func (s *Service) countBatch(ctx context.Context, db resource.Execer, runID, seq, ref int64, sentRows, sentDeletes int64, recv wire.RunCounts) (bool, error) {
	res, err := db.Exec(ctx, `INSERT INTO exchange_run_batches (run_id, seq, ref, sent_rows, sent_deletes, received, recv_rows, inserted, updated,
		unchanged, deleted, missing, rejected, at) VALUES (?, ?, ?, ?, ?, 1, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
		runID, seq, ref, sentRows, sentDeletes, recv.Rows, recv.Inserted, recv.Updated, recv.Unchanged, recv.Deleted, recv.Missing, recv.Rejected, s.now())
	if err != nil {
		return false, err
	}
	n, _ := res.RowsAffected()
	_, err = db.Exec(ctx, "UPDATE exchange_runs SET updated_at = ? WHERE id = ?", s.now(), runID)
	return n == 1, err
}

// closeRun records the sender's totals at the end of a run.
func (s *Service) closeRun(ctx context.Context, runID, batches int64, total wire.RunCounts) error {
	b, _ := json.Marshal(total)
	_, err := s.DB.Exec(ctx, "UPDATE exchange_runs SET batches_sent = ?, sent = ?, updated_at = ? WHERE id = ?", batches, string(b), s.now(), runID)
	return err
}

// reconcile compares a run's two sides once every batch is in: equal
// counts complete the run, any difference raises an alarm.
func (s *Service) reconcile(ctx context.Context, runID int64) error {
	r, err := s.runByID(ctx, runID)
	if err != nil {
		return err
	}
	if r.State != "running" || r.BatchesSent == 0 || r.BatchesRecv < r.BatchesSent {
		return nil
	}
	var diffs []string
	if r.BatchesRecv != r.BatchesSent {
		diffs = append(diffs, fmt.Sprintf("batches %d/%d", r.BatchesRecv, r.BatchesSent))
	}
	if r.Sent.Rows != r.Received.Rows {
		diffs = append(diffs, fmt.Sprintf("rows sent %d, received %d", r.Sent.Rows, r.Received.Rows))
	}
	c := r.Received
	if done := c.Inserted + c.Updated + c.Unchanged + c.Deleted + c.Missing + c.Rejected; done != c.Rows {
		diffs = append(diffs, fmt.Sprintf("received %d, accounted %d", c.Rows, done))
	}
	state := "complete"
	if len(diffs) > 0 {
		state = "mismatch"
	}
	res, err := s.DB.Exec(ctx, "UPDATE exchange_runs SET state = ?, finished_at = ?, note = ? WHERE id = ? AND state = 'running'",
		state, s.now(), strings.Join(diffs, "; "), runID)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 1 && state == "mismatch" {
		return s.raiseRun(ctx, r, strings.Join(diffs, "; "))
	}
	return nil
}

// raiseRun raises the alarm of a run whose sides disagree.
func (s *Service) raiseRun(ctx context.Context, r Run, diff string) error {
	depts, what, err := s.runParties(ctx, r)
	if err != nil {
		return err
	}
	return s.raise(ctx, Alarm{Kind: "mismatch", JobID: r.JobID, SubscriptionID: r.SubscriptionID, RunID: r.ID, DeptIDs: depts,
		MessageZH: fmt.Sprintf("%s 第 %d 次运行两端计数不一致：%s", what, r.RunNo, diff),
		MessageEN: fmt.Sprintf("%s run %d: the two sides' counts differ: %s", what, r.RunNo, diff)})
}

// runParties names the departments of a run's two ends.
func (s *Service) runParties(ctx context.Context, r Run) ([]int64, string, error) {
	if r.Direction == "in" {
		var dept int64
		var name string
		err := s.DB.QueryRow(ctx, "SELECT n.dept_id, j.name FROM exchange_jobs j JOIN nodes n ON n.id = j.node_id WHERE j.id = ?", r.JobID).Scan(&dept, &name)
		return []int64{dept}, "交换任务「" + name + "」/ job", err
	}
	x, err := s.sub(ctx, r.SubscriptionID)
	return []int64{x.ProviderID, x.DeptID}, "订阅 #" + itoa(x.ID) + "「" + x.ResourceName + "」/ subscription", err
}

// Alarm is a problem of the exchange someone must look at.
type Alarm struct {
	ID             int64     `json:"id"`
	Kind           string    `json:"kind" doc:"mismatch 计数不一致 / job_error 任务出错 / delivery_error 交付出错 / node_offline 前置机离线"`
	JobID          int64     `json:"job_id,omitempty"`
	SubscriptionID int64     `json:"subscription_id,omitempty"`
	RunID          int64     `json:"run_id,omitempty"`
	DeptIDs        []int64   `json:"dept_ids"`
	MessageZH      string    `json:"message_zh"`
	MessageEN      string    `json:"message_en"`
	State          string    `json:"state" doc:"open / closed"`
	CreatedAt      time.Time `json:"created_at"`
	ClosedAt       time.Time `json:"closed_at,omitzero"`
	Note           string    `json:"note,omitempty"`
}

// raise records an alarm unless the same one is open, and tells the
// departments' data administrators and the platform administrators.
func (s *Service) raise(ctx context.Context, a Alarm) error {
	var open int
	if err := s.DB.QueryRow(ctx, "SELECT COUNT(*) FROM exchange_alarms WHERE state = 'open' AND kind = ? AND job_id = ? AND subscription_id = ? AND run_id = ?",
		a.Kind, a.JobID, a.SubscriptionID, a.RunID).Scan(&open); err != nil || open > 0 {
		return err
	}
	depts, _ := json.Marshal(a.DeptIDs)
	_, err := s.DB.Exec(ctx, `INSERT INTO exchange_alarms (kind, job_id, subscription_id, run_id, dept_ids, message_zh, message_en, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, a.Kind, a.JobID, a.SubscriptionID, a.RunID, string(depts), a.MessageZH, a.MessageEN, s.now())
	if store.IsUniqueViolation(err) {
		return nil
	} else if err != nil {
		return err
	}
	s.Log.Warn("exchange alarm", "kind", a.Kind, "job", a.JobID, "subscription", a.SubscriptionID, "run", a.RunID, "message", a.MessageEN)
	_ = s.Audit.Append(ctx, audit.Event{ActorType: audit.ActorSystem, ActorName: "system", Action: "exchange.alarm", ObjectType: "exchange_alarm",
		ObjectID: a.Kind, Result: audit.ResultOK, Details: audit.Details(map[string]any{"job_id": a.JobID, "subscription_id": a.SubscriptionID,
			"run_id": a.RunID, "message": a.MessageEN})})
	if s.Notify != nil {
		s.Notify.Alarm(ctx, a.DeptIDs, a.MessageZH, a.MessageEN, "/exchange/alarms")
	}
	return nil
}

func scanAlarm(row store.Row) (Alarm, error) {
	var a Alarm
	var depts string
	var closed sql.NullTime
	if err := row.Scan(&a.ID, &a.Kind, &a.JobID, &a.SubscriptionID, &a.RunID, &depts, &a.MessageZH, &a.MessageEN, &a.State, &a.CreatedAt, &closed, &a.Note); err != nil {
		return a, err
	}
	a.ClosedAt = closed.Time
	return a, json.Unmarshal([]byte(depts), &a.DeptIDs)
}

const alarmCols = "id, kind, job_id, subscription_id, run_id, dept_ids, message_zh, message_en, state, created_at, closed_at, note"

// Alarms lists alarms the actor may see; open ones only unless all.
func (s *Service) Alarms(ctx context.Context, actor policy.Actor, all bool) ([]Alarm, error) {
	dept, err := s.viewScope(ctx, actor)
	if err != nil {
		return nil, err
	}
	q := "SELECT " + alarmCols + " FROM exchange_alarms"
	if !all {
		q += " WHERE state = 'open'"
	}
	list, err := store.All(ctx, s.DB, scanAlarm, q+" ORDER BY id DESC LIMIT 500")
	if err != nil || dept == 0 {
		return list, err
	}
	var out []Alarm
	for _, a := range list {
		for _, d := range a.DeptIDs {
			if d == dept {
				out = append(out, a)
				break
			}
		}
	}
	return out, nil
}

// CloseAlarm closes an alarm with a note saying what was done.
func (s *Service) CloseAlarm(ctx context.Context, actor policy.Actor, id int64, note string) (Alarm, error) {
	a, err := scanAlarm(s.DB.QueryRow(ctx, "SELECT "+alarmCols+" FROM exchange_alarms WHERE id = ?", id))
	if errors.Is(err, sql.ErrNoRows) {
		return a, apperr.ErrNotFound
	} else if err != nil {
		return a, err
	}
	allowed := policy.Allowed(actor, policy.AlarmClose, policy.Target{})
	for _, d := range a.DeptIDs {
		allowed = allowed || policy.Allowed(actor, policy.AlarmClose, policy.Target{DeptID: d})
	}
	if !allowed {
		_ = s.Audit.Append(ctx, audit.By(actor, string(policy.AlarmClose), "exchange_alarm", itoa(id), audit.ResultDenied, nil))
		return Alarm{}, apperr.ErrDenied
	}
	if strings.TrimSpace(note) == "" {
		return Alarm{}, apperr.Invalid("exchange.note_required", "note", "请说明处理情况", "say what was done")
	}
	if _, err := s.DB.Exec(ctx, "UPDATE exchange_alarms SET state = 'closed', closed_at = ?, closed_by = ?, note = ? WHERE id = ? AND state = 'open'",
		s.now(), actor.UserID, note, id); err != nil {
		return Alarm{}, err
	}
	if err := s.Audit.Append(ctx, audit.By(actor, "exchange.alarm_close", "exchange_alarm", itoa(id), audit.ResultOK, map[string]any{"note": note})); err != nil {
		return Alarm{}, err
	}
	return scanAlarm(s.DB.QueryRow(ctx, "SELECT "+alarmCols+" FROM exchange_alarms WHERE id = ?", id))
}

// report stores a node's heartbeat.
func (s *Service) report(ctx context.Context, n nodeCtx, st wire.Status) error {
	if err := s.PKI.Seen(ctx, n.id); err != nil {
		return err
	}
	now := s.now()
	if len(st.Sources) > 0 {
		b, _ := json.Marshal(st.Sources)
		if _, err := s.DB.Exec(ctx, "UPDATE nodes SET version = ?, started_at = ?, sources = ? WHERE id = ?", st.Version, st.Started, string(b), n.id); err != nil {
			return err
		}
	} else if _, err := s.DB.Exec(ctx, "UPDATE nodes SET version = ?, started_at = ? WHERE id = ?", st.Version, st.Started, n.id); err != nil {
		return err
	}
	for _, j := range st.Jobs {
		var last any
		if !j.LastRunAt.IsZero() {
			last = j.LastRunAt
		}
		res, err := s.DB.Exec(ctx, `UPDATE exchange_jobs SET node_state = ?, node_version = ?, checkpoint = ?, last_run_at = ?, lag_seconds = ?, rows_per_sec = ?,
			queued = ?, error = ?, reported_at = ? WHERE id = ? AND node_id = ?`, j.State, j.Version, j.Checkpoint, last, j.LagSeconds, j.RowsPerSec,
			j.Queued, j.Error, now, j.JobID, n.id)
		if err != nil {
			return err
		}
		rows, _ := res.RowsAffected()
		if rows == 1 && j.Error == "" && (j.State == "running" || j.State == "idle" || j.State == "waiting") {
			// A real-time resource is timely while its node delivers.
			var resourceID int64
			var running bool
			if err := s.DB.QueryRow(ctx, "SELECT resource_id, running FROM exchange_jobs WHERE id = ?", j.JobID).Scan(&resourceID, &running); err != nil {
				return err
			}
			if running {
				if err := s.Resources.NodeDelivering(ctx, resourceID); err != nil {
					return err
				}
			}
		}
		if rows == 1 && j.Error != "" {
			var name string
			_ = s.DB.QueryRow(ctx, "SELECT name FROM exchange_jobs WHERE id = ?", j.JobID).Scan(&name)
			if err := s.raise(ctx, Alarm{Kind: "job_error", JobID: j.JobID, DeptIDs: []int64{n.dept},
				MessageZH: "交换任务「" + name + "」出错：" + j.Error, MessageEN: "exchange job " + name + " failed: " + j.Error}); err != nil {
				return err
			}
		}
	}
	for _, x := range st.Subscriptions {
		var last any
		if !x.LastAt.IsZero() {
			last = x.LastAt
		}
		if _, err := s.DB.Exec(ctx, `UPDATE exchange_subscriptions SET node_state = ?, error = ?, last_applied_at = COALESCE(?, last_applied_at)
			WHERE id = ? AND node_id = ?`, x.State, x.Error, last, x.Subscription, n.id); err != nil {
			return err
		}
	}
	return nil
}

// recentRuns are the center's side of a node's latest runs.
func (s *Service) recentRuns(ctx context.Context, nodeID int64) ([]wire.RunResult, error) {
	runs, err := store.All(ctx, s.DB, scanRun, "SELECT "+runCols+` FROM exchange_runs x WHERE x.direction = 'in'
		AND x.job_id IN (SELECT id FROM exchange_jobs WHERE node_id = ?) ORDER BY x.id DESC LIMIT 50`, nodeID)
	if err != nil {
		return nil, err
	}
	out := make([]wire.RunResult, len(runs))
	for i, r := range runs {
		out[i] = wire.RunResult{JobID: r.JobID, Run: r.RunNo, State: r.State, Received: r.Received}
	}
	return out, nil
}

// permitted says whether a subscription's grant still allows delivery.
func (s *Service) permitted(ctx context.Context, x Subscription) bool {
	_, err := s.Share.Permit(ctx, share.Use{DeptID: x.DeptID, Resource: x.Resource, Items: x.Items, Method: "exchange"})
	return err == nil
}

// acknowledge records what a consumer's node applied, and lets the bus
// forget the deliveries up to it.
func (s *Service) acknowledge(ctx context.Context, x Subscription, a wire.Ack) error {
	if a.Epoch != x.Epoch {
		return nil // from before a re-sync
	}
	now := s.now()
	if a.Error != "" {
		if _, err := s.DB.Exec(ctx, "UPDATE exchange_subscriptions SET node_state = 'failed', error = ? WHERE id = ?", a.Error, x.ID); err != nil {
			return err
		}
		return s.raise(ctx, Alarm{Kind: "delivery_error", SubscriptionID: x.ID, DeptIDs: []int64{x.ProviderID, x.DeptID},
			MessageZH: "订阅 #" + itoa(x.ID) + "「" + x.ResourceName + "」写入目标库出错：" + a.Error,
			MessageEN: "subscription " + itoa(x.ID) + " (" + x.Resource + "): writing to the target failed: " + a.Error})
	}
	var runID, attempt int64
	err := s.DB.QueryRow(ctx, "SELECT id, attempt FROM exchange_runs WHERE direction = 'out' AND job_id = 0 AND subscription_id = ? AND epoch = ? AND run_no = ?",
		x.ID, x.Epoch, a.Run).Scan(&runID, &attempt)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return err
	}
	if err == nil && attempt == a.Attempt {
		c := a.Counts
		fresh, err := s.countBatch(ctx, s.DB, runID, a.Part, int64(a.Seq), 0, 0, c)
		if err != nil {
			return err
		}
		if fresh {
			if err := s.Resources.AddDelivered(ctx, x.resourceID, c.Rows); err != nil {
				return err
			}
		}
		if err := s.reconcile(ctx, runID); err != nil {
			return err
		}
	}
	if _, err := s.DB.Exec(ctx, `UPDATE exchange_subscriptions SET applied_seq = ?, last_applied_at = ?, node_state = 'applying', error = ''
		WHERE id = ? AND applied_seq < ?`, int64(a.Seq), now, x.ID, int64(a.Seq)); err != nil {
		return err
	}
	st, err := s.Bus.JetStream().Stream(ctx, streamOut)
	if err != nil {
		return err
	}
	return st.Purge(ctx, jetstream.WithPurgeSubject(subjectOut(x.ID)), jetstream.WithPurgeSequence(a.Seq+1))
}
