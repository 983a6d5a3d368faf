package exchange

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"time"

	"govshare/internal/agent/source"
	"govshare/internal/apperr"
	"govshare/internal/audit"
	"govshare/internal/exchange/wire"
	"govshare/internal/policy"
	"govshare/internal/resource"
	"govshare/internal/share"
	"govshare/internal/store"
)

// The full check (全量核对) compares per-key checksums of the two sides of
// a job (the provider's source table, through the job's mapping, against
// the resource) or of a subscription (the resource as fan-out delivers it —
// granted items, masked, row-scoped — against the consumer's target table)
// and lists the keys that differ. The center never connects to a node: it
// puts the check into the node's commands, and the node runs it, asking
// the center for its side's checksums chunk by chunk (PathChecksums) and
// reporting the result (PathChecks). Keys that differ raise an alarm.
//
// A check waiting or running can be cancelled by those who may request
// it; one no node has started within checkWait fails by itself, so that a
// node offline for good does not block the next check.

// Check is one full check.
type Check struct {
	ID          int64      `json:"id"`
	Kind        string     `json:"kind" enum:"job,subscription" doc:"job 任务(源表对资源) / subscription 订阅(分发视图对目标表)"`
	JobID       int64      `json:"job_id,omitempty"`
	SubID       int64      `json:"subscription_id,omitempty"`
	NodeID      int64      `json:"node_id" doc:"执行核对的前置机 / the node that runs it"`
	State       string     `json:"state" enum:"requested,running,done,failed,cancelled" doc:"requested 待执行 / running 进行中 / done 完成 / failed 失败 / cancelled 已取消"`
	RequestedBy string     `json:"requested_by" doc:"发起人 / requested by (login)"`
	RequestedAt time.Time  `json:"requested_at"`
	StartedAt   *time.Time `json:"started_at,omitempty"`
	FinishedAt  *time.Time `json:"finished_at,omitempty"`
	Rows        int64      `json:"rows" doc:"比对的主键数 / keys compared"`
	Chunks      int        `json:"chunks" doc:"分块数 / chunks compared"`
	Differ      int        `json:"differ" doc:"不一致的主键数 / keys that differ"`
	Keys        []CheckKey `json:"keys" doc:"前 1000 个不一致的主键 / the first 1000 keys that differ"`
	Error       string     `json:"error,omitempty" doc:"失败或取消的原因 / why it failed or who cancelled it"`
	spec        wire.CheckRequest
}

// CheckCancelled is the state of a check cancelled before it ended. Only
// the center knows it: the node hears of a check while it is requested
// or running, and is refused it once it is over (ErrCheckOver).
const CheckCancelled = "cancelled"

// checkWait is how long a requested check waits for its node to start
// it before it fails.
const checkWait = 24 * time.Hour

// CheckKey is one key that differs: changed, missing at the target or
// extra (only at the target). The target is the resource for a job, the
// consumer's table for a subscription.
type CheckKey = wire.CheckKey

// Errors of the full check.
var (
	ErrCheckKind = apperr.Invalid("exchange.check_kind_invalid", "kind", "核对对象应为 job(交换任务) 或 subscription(订阅)",
		"a check is of a job or of a subscription")
	ErrCheckPending = apperr.New(http.StatusConflict, "exchange.check_pending", "已有一次全量核对在等待或进行中，请待其结束后再发起",
		"a full check of it is already waiting or running; wait for it to end")
	ErrCheckOver      = apperr.New(http.StatusConflict, "exchange.check_over", "该核对已结束(已完成、失败或已取消)", "the check is over (done, failed or cancelled)")
	ErrCheckKeyMasked = apperr.Invalid("exchange.check_key_masked", "subscription", "授权对主键信息项脱敏，无法按主键核对",
		"the grant masks a key item, so keys cannot be compared")
	ErrCheckKeyUnmapped = apperr.Invalid("exchange.check_key_unmapped", "job", "任务未映射资源的全部主键信息项，无法核对",
		"the job does not map every key item of the resource, so keys cannot be compared")
	ErrCheckChanged = apperr.New(http.StatusConflict, "exchange.check_changed", "发起核对后授权或字段映射已变化，请重新发起",
		"the grant or the mapping changed since the check was requested; request it again")
	ErrCheckKeyOrder = apperr.New(http.StatusConflict, "exchange.check_key_order", "资源的记录无法按主键顺序读出，不能与前置机比对",
		"the resource's records cannot be read in key order, so they cannot be compared")
)

// checkChunk is the chunk size of a check of a resource of n records:
// about 500 chunks, from 50 to 5,000 rows each. Small chunks narrow what
// is compared key by key; the bound keeps the chunk list of a table of a
// hundred million records at some 20,000 entries.
func checkChunk(n int64) int {
	return int(min(max(n/500, 50), 5000))
}

const checkCols = `c.id, c.kind, c.job_id, c.subscription_id, c.node_id, c.state, c.spec, COALESCE(u.login, ''), c.requested_at, c.started_at,
	c.finished_at, c.rows_compared, c.chunks, c.differ, c.diff_keys, c.error`

const checkFrom = ` FROM exchange_checks c LEFT JOIN users u ON u.id = c.requested_by`

func scanCheck(row store.Row) (Check, error) {
	var c Check
	var spec, keys string
	var started, finished sql.NullTime
	err := row.Scan(&c.ID, &c.Kind, &c.JobID, &c.SubID, &c.NodeID, &c.State, &spec, &c.RequestedBy, &c.RequestedAt, &started, &finished,
		&c.Rows, &c.Chunks, &c.Differ, &keys, &c.Error)
	if err != nil {
		return c, err
	}
	if started.Valid {
		c.StartedAt = &started.Time
	}
	if finished.Valid {
		c.FinishedAt = &finished.Time
	}
	if err := json.Unmarshal([]byte(spec), &c.spec); err != nil {
		return c, err
	}
	c.spec.ID = c.ID
	c.Keys = []CheckKey{}
	return c, json.Unmarshal([]byte(keys), &c.Keys)
}

func (s *Service) checkByID(ctx context.Context, id int64) (Check, error) {
	list, err := s.selectChecks(ctx, "c.id = ?", id)
	if err != nil {
		return Check{}, err
	}
	if len(list) == 0 {
		return Check{}, apperr.ErrNotFound
	}
	return list[0], nil
}

// Expiry. The center has no periodic work of its own for checks, and a
// check's state matters only when it is read or another is requested: so
// every read of checks goes through selectChecks, which fails the expired
// ones it meets before answering, and RequestCheck fails them when one
// stands in the way of the new one. Nothing is written while no check has
// expired.

// expired says whether a check has waited checkWait for its node.
func (s *Service) expired(c Check) bool {
	return c.State == wire.CheckRequested && !c.RequestedAt.After(s.now().Add(-checkWait))
}

// expireChecks fails the checks no node started within checkWait, and
// says how many.
func (s *Service) expireChecks(ctx context.Context) (int64, error) {
	now := s.now()
	res, err := s.DB.Exec(ctx, "UPDATE exchange_checks SET state = 'failed', finished_at = ?, error = ? WHERE state = 'requested' AND requested_at <= ?",
		now, "前置机24小时内未开始核对(可能离线)，请确认前置机在线后重新发起 / "+
			"the node did not start the check within 24 hours (it may be offline); make sure it is online and request the check again",
		now.Add(-checkWait).UTC())
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// selectChecks reads the checks that match where (a condition, and an
// ORDER BY if any), failing first those that expired.
func (s *Service) selectChecks(ctx context.Context, where string, args ...any) ([]Check, error) {
	q := "SELECT " + checkCols + checkFrom + " WHERE " + where
	list, err := store.All(ctx, s.DB, scanCheck, q, args...)
	if err != nil || !slices.ContainsFunc(list, s.expired) {
		return list, err
	}
	if _, err := s.expireChecks(ctx); err != nil {
		return nil, err
	}
	return store.All(ctx, s.DB, scanCheck, q, args...)
}

// RequestCheck asks for a full check of a job or a subscription (kind job
// or subscription). The department that owns it — the job's, the
// subscription's consumer — asks; its node runs the check when it next
// hears from the center.
func (s *Service) RequestCheck(ctx context.Context, actor policy.Actor, kind string, id int64) (Check, error) {
	var (
		spec   wire.CheckRequest
		nodeID int64
		err    error
	)
	switch kind {
	case wire.CheckJob:
		j, jerr := s.job(ctx, id)
		if jerr != nil {
			return Check{}, jerr
		}
		if err := s.authorize(ctx, actor, policy.ExchangeManage, j.DeptID, "exchange_job", itoa(id)); err != nil {
			return Check{}, err
		}
		nodeID = j.NodeID
		spec, err = s.jobCheck(ctx, j)
	case wire.CheckSubscription:
		x, xerr := s.sub(ctx, id)
		if xerr == nil && x.State == "deleted" {
			xerr = apperr.ErrNotFound
		}
		if xerr != nil {
			return Check{}, xerr
		}
		if err := s.authorize(ctx, actor, policy.ExchangeManage, x.DeptID, "exchange_subscription", itoa(id)); err != nil {
			return Check{}, err
		}
		nodeID = x.NodeID
		spec, err = s.subCheck(ctx, x)
	default:
		return Check{}, ErrCheckKind
	}
	if err != nil {
		return Check{}, err
	}
	if _, _, err := s.node(ctx, nodeID); err != nil {
		return Check{}, err
	}
	b, _ := json.Marshal(spec)
	var checkID int64
	insert := func() error {
		return s.DB.QueryRow(ctx, `INSERT INTO exchange_checks (kind, job_id, subscription_id, node_id, spec, requested_by, requested_at)
			VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id`, kind, spec.JobID, spec.Subscription, nodeID, string(b), actor.UserID, s.now()).Scan(&checkID)
	}
	err = insert()
	if store.IsUniqueViolation(err) {
		// The check in the way may have expired: then it is no longer.
		if n, xerr := s.expireChecks(ctx); xerr != nil {
			err = xerr
		} else if n > 0 {
			err = insert()
		}
	}
	if store.IsUniqueViolation(err) {
		return Check{}, ErrCheckPending
	} else if err != nil {
		return Check{}, err
	}
	if err := s.Audit.Append(ctx, audit.By(actor, "exchange.check_request", "exchange_check", itoa(checkID), audit.ResultOK,
		map[string]any{"kind": kind, "job_id": spec.JobID, "subscription_id": spec.Subscription, "node_id": nodeID})); err != nil {
		return Check{}, err
	}
	c, err := s.checkByID(ctx, checkID)
	s.nudge(nodeID)
	return c, err
}

// jobCheck is the check of a job: the mapped items, in the resource's
// column order, each read from its source column.
func (s *Service) jobCheck(ctx context.Context, j Job) (wire.CheckRequest, error) {
	r, err := s.Resources.ByCode(ctx, j.Resource)
	if err != nil {
		return wire.CheckRequest{}, err
	}
	column := map[string]string{}
	for _, m := range j.Mapping {
		column[m.Item] = m.Column
	}
	keys := r.Keys()
	var cols []wire.CheckColumn
	for _, c := range r.Visible() {
		if col, ok := column[c.MachineName]; ok {
			cols = append(cols, wire.CheckColumn{Item: c.MachineName, DataType: c.DataType, Key: keyPosition(keys, c.MachineName), Column: col})
		}
	}
	if countKeys(cols) != len(keys) {
		return wire.CheckRequest{}, ErrCheckKeyUnmapped
	}
	return wire.CheckRequest{Kind: wire.CheckJob, JobID: j.ID, Source: j.Source, Table: j.Table, SQL: j.SQL, Columns: cols,
		ChunkSize: checkChunk(r.RecordCount)}, nil
}

// subCheck is the check of a subscription: the items its grant lets
// fan-out deliver, each in the target table's column of its name.
func (s *Service) subCheck(ctx context.Context, x Subscription) (wire.CheckRequest, error) {
	r, v, err := s.subView(ctx, x)
	if err != nil {
		return wire.CheckRequest{}, err
	}
	keys := r.Keys()
	cols := make([]wire.CheckColumn, len(v.cols))
	for i, c := range v.cols {
		cols[i] = wire.CheckColumn{Item: c.MachineName, DataType: c.DataType, Key: keyPosition(keys, c.MachineName), Column: c.MachineName}
	}
	return wire.CheckRequest{Kind: wire.CheckSubscription, Subscription: x.ID, Target: x.Target, Table: x.Table, Columns: cols,
		ChunkSize: checkChunk(r.RecordCount)}, nil
}

// subView is what fan-out delivers to a subscription, provided its keys
// can be compared: every key item granted and none masked.
func (s *Service) subView(ctx context.Context, x Subscription) (resource.Resource, view, error) {
	p, err := s.Share.Permit(ctx, share.Use{DeptID: x.DeptID, Resource: x.Resource, Items: x.Items, Method: "exchange"})
	if err != nil {
		return resource.Resource{}, view{}, ErrNoExchange
	}
	r, err := s.Resources.ByCode(ctx, x.Resource)
	if err != nil {
		return r, view{}, err
	}
	v := s.viewOf(r, p)
	if len(v.keyPos) != len(r.Keys()) {
		return r, v, ErrCheckKeyMasked.With("授权未包含全部主键信息项，无法按主键核对", "the grant does not include every key item, so keys cannot be compared")
	}
	for _, at := range v.keyPos {
		if v.masks[at] != nil {
			return r, v, ErrCheckKeyMasked
		}
	}
	return r, v, nil
}

func keyPosition(keys []resource.Column, item string) int {
	return slices.IndexFunc(keys, func(k resource.Column) bool { return k.MachineName == item }) + 1
}

func countKeys(cols []wire.CheckColumn) int {
	n := 0
	for _, c := range cols {
		if c.Key > 0 {
			n++
		}
	}
	return n
}

// Checks lists the checks of a job or a subscription, newest first, to
// those who may see it.
func (s *Service) Checks(ctx context.Context, actor policy.Actor, kind string, id int64) ([]Check, error) {
	var where string
	switch kind {
	case wire.CheckJob:
		if _, err := s.Job(ctx, actor, id); err != nil {
			return nil, err
		}
		where = "c.kind = 'job' AND c.job_id = ?"
	case wire.CheckSubscription:
		if _, err := s.Subscription(ctx, actor, id); err != nil {
			return nil, err
		}
		where = "c.kind = 'subscription' AND c.subscription_id = ?"
	default:
		return nil, ErrCheckKind
	}
	return s.selectChecks(ctx, where+" ORDER BY c.id DESC LIMIT 100", id)
}

// Check returns one check to those who may see its job or subscription.
func (s *Service) Check(ctx context.Context, actor policy.Actor, id int64) (Check, error) {
	c, err := s.checkByID(ctx, id)
	if err != nil {
		return c, err
	}
	if c.Kind == wire.CheckSubscription {
		_, err = s.Subscription(ctx, actor, c.SubID)
	} else {
		var dept int64
		if err = s.DB.QueryRow(ctx, "SELECT dept_id FROM nodes WHERE id = ?", c.NodeID).Scan(&dept); err == nil {
			err = s.authorize(ctx, actor, policy.ExchangeView, dept, "exchange_check", itoa(id))
		}
	}
	if err != nil {
		return Check{}, err
	}
	return c, nil
}

// CancelCheck ends a check that is waiting or running. Those who may
// request a check of its job or subscription may cancel it; the node
// running it is refused from then on (ErrCheckOver) and stops.
func (s *Service) CancelCheck(ctx context.Context, actor policy.Actor, id int64) (Check, error) {
	c, err := s.checkByID(ctx, id)
	if err != nil {
		return c, err
	}
	dept, err := s.checkDept(ctx, c)
	if err != nil {
		return Check{}, err
	}
	if err := s.authorize(ctx, actor, policy.ExchangeManage, dept, "exchange_check", itoa(id)); err != nil {
		return Check{}, err
	}
	if c.State != wire.CheckRequested && c.State != wire.CheckRunning {
		return Check{}, ErrCheckOver
	}
	who := actor.Login
	if who == "" {
		who = actor.App
	}
	// Conditional: a node that reports the end at the same moment wins,
	// and the check is not cancelled after it.
	res, err := s.DB.Exec(ctx, `UPDATE exchange_checks SET state = ?, finished_at = ?, error = ? WHERE id = ? AND state IN ('requested', 'running')`,
		CheckCancelled, s.now(), "已由 "+who+" 取消 / cancelled by "+who, id)
	if err != nil {
		return Check{}, err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return Check{}, ErrCheckOver
	}
	if err := s.Audit.Append(ctx, audit.By(actor, "exchange.check_cancel", "exchange_check", itoa(id), audit.ResultOK,
		map[string]any{"kind": c.Kind, "job_id": c.JobID, "subscription_id": c.SubID, "node_id": c.NodeID, "was": c.State})); err != nil {
		return Check{}, err
	}
	s.nudge(c.NodeID) // its commands no longer list the check: a node running it stops
	return s.checkByID(ctx, id)
}

// checkDept is the department that requests and cancels a check: the
// subscription's (the consumer's), or the job's, which is its node's.
// A job deleted since still has its check's node.
func (s *Service) checkDept(ctx context.Context, c Check) (int64, error) {
	if c.Kind == wire.CheckSubscription {
		x, err := s.sub(ctx, c.SubID)
		return x.DeptID, err
	}
	var dept int64
	err := s.DB.QueryRow(ctx, "SELECT dept_id FROM nodes WHERE id = ?", c.NodeID).Scan(&dept)
	return dept, err
}

// pendingChecks are the checks a node is to run or is running: a node
// that restarted mid-check runs it again.
func (s *Service) pendingChecks(ctx context.Context, nodeID int64) ([]wire.CheckRequest, error) {
	list, err := s.selectChecks(ctx, "c.node_id = ? AND c.state IN ('requested', 'running') ORDER BY c.id", nodeID)
	if err != nil {
		return nil, err
	}
	var out []wire.CheckRequest
	for _, c := range list {
		out = append(out, c.spec)
	}
	return out, nil
}

// checkSide is the center's side of a check: the resource, the columns
// read from it in the check's order, and for a subscription the view
// (masks and row scope) fan-out applies.
type checkSide struct {
	r    resource.Resource
	cols []resource.Column
	v    *view
}

// sideOf resolves a check's center side as the check was requested; a job
// or grant that changed since makes it fail.
func (s *Service) sideOf(ctx context.Context, c Check) (checkSide, error) {
	items := make([]string, len(c.spec.Columns))
	for i, col := range c.spec.Columns {
		items[i] = col.Item
	}
	if c.Kind == wire.CheckSubscription {
		x, err := s.sub(ctx, c.SubID)
		if err != nil {
			return checkSide{}, err
		}
		r, v, err := s.subView(ctx, x)
		if err != nil {
			return checkSide{}, err
		}
		if !slices.Equal(v.names, items) {
			return checkSide{}, ErrCheckChanged
		}
		return checkSide{r: r, cols: v.cols, v: &v}, nil
	}
	j, err := s.job(ctx, c.JobID)
	if err != nil {
		return checkSide{}, err
	}
	r, err := s.Resources.ByCode(ctx, j.Resource)
	if err != nil {
		return checkSide{}, err
	}
	side := checkSide{r: r}
	visible := r.Visible()
	for _, it := range items {
		i := slices.IndexFunc(visible, func(c resource.Column) bool { return c.MachineName == it })
		if i < 0 {
			return checkSide{}, ErrCheckChanged
		}
		side.cols = append(side.cols, visible[i])
	}
	return side, nil
}

// readSide streams the center's side of a check in key order, each row as
// the check reads it (wire.CheckRows), with its key.
func (s *Service) readSide(ctx context.Context, side checkSide, rows *wire.CheckRows, after, through source.Key,
	each func(source.Row, source.Key) error) error {
	return s.Resources.LiveRange(ctx, side.r, side.cols, keyOrNil(after), keyOrNil(through), checkReadRows, func(page [][]*string) error {
		if side.v != nil {
			page, _ = s.shape(*side.v, page, nil)
		}
		for _, vals := range page {
			row, k, err := rows.Row(vals)
			if err != nil {
				return err
			}
			if err := each(row, k); err != nil {
				return err
			}
		}
		return nil
	})
}

func keyOrNil(k source.Key) []string {
	if len(k) == 0 {
		return nil
	}
	return k
}

// Bounds of one answer of PathChecksums: it must come back well within
// the node's response timeout.
const (
	checkReadRows   = 2000    // rows read from the store at a time
	checkPageRows   = 200_000 // rows one answer of chunk sums covers, at most (ending at a chunk end)
	checkPageChunks = 1000    // chunk sums in one answer, at most
	checkPageKeys   = 10_000  // key hashes in one answer, at most
)

var errEnough = errors.New("enough for one answer")

// centerChecksums answers a node's query for the center's side of a check.
func (s *Service) centerChecksums(ctx context.Context, c Check, q wire.ChecksumQuery) (wire.Checksums, error) {
	var out wire.Checksums
	if c.State != wire.CheckRequested && c.State != wire.CheckRunning {
		return out, checkOver(c)
	}
	side, err := s.sideOf(ctx, c)
	if err != nil {
		return out, err
	}
	rows, err := wire.NewCheckRows(c.spec.Columns)
	if err != nil {
		return out, err
	}
	rows.After(keyOrNil(q.After))
	if q.Keys {
		limit := min(max(q.Max, 1), checkPageKeys)
		err = s.readSide(ctx, side, rows, q.After, q.Through, func(row source.Row, k source.Key) error {
			if len(out.Hashes) == limit {
				out.More = true
				return errEnough
			}
			out.Hashes = append(out.Hashes, source.KeyHash{Key: k, Hash: source.RowHash(row)})
			return nil
		})
	} else {
		limit := min(max(q.Max, 1), checkPageChunks)
		sm := source.NewSummer(c.spec.ChunkSize)
		n := 0
		err = s.readSide(ctx, side, rows, q.After, nil, func(row source.Row, k source.Key) error {
			n++
			if sm.Add(k, row) && (len(sm.Sums()) >= limit || n >= checkPageRows) {
				out.More = true
				return errEnough
			}
			return nil
		})
		if !out.More {
			sm.Flush()
		}
		out.Chunks = sm.Sums()
	}
	if errors.Is(err, errEnough) {
		err = nil
	}
	if errors.Is(err, wire.ErrCheckKey) {
		return out, ErrCheckKeyOrder.With(ErrCheckKeyOrder.ZH+"："+err.Error(), ErrCheckKeyOrder.EN+": "+err.Error())
	}
	return out, err
}

func (s *Service) serveChecksums(w http.ResponseWriter, r *http.Request, n nodeCtx) error {
	var q wire.ChecksumQuery
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&q); err != nil {
		return apperr.Invalid("node.checksums_invalid", "body", "核对请求格式错误", "the checksum query is not valid JSON")
	}
	c, err := s.checkByID(r.Context(), q.Check)
	if err != nil || c.NodeID != n.id {
		return apperr.ErrNotFound
	}
	out, err := s.centerChecksums(r.Context(), c, q)
	if err != nil {
		return err
	}
	return writeJSON(w, out)
}

func (s *Service) serveCheckReport(w http.ResponseWriter, r *http.Request, n nodeCtx) error {
	var rep wire.CheckReport
	if err := json.NewDecoder(io.LimitReader(r.Body, 8<<20)).Decode(&rep); err != nil {
		return apperr.Invalid("node.check_report_invalid", "body", "核对结果报文格式错误", "the check report is not valid JSON")
	}
	ctx := r.Context()
	c, err := s.checkByID(ctx, rep.ID)
	if err != nil || c.NodeID != n.id {
		return apperr.ErrNotFound
	}
	switch rep.State {
	case wire.CheckRunning:
		err = s.startCheck(ctx, c)
	case wire.CheckDone, wire.CheckFailed:
		err = s.finishCheck(ctx, n, c, rep)
	default:
		return apperr.Invalid("node.check_report_invalid", "state", "核对状态应为 running、done 或 failed", "the state is running, done or failed")
	}
	if err != nil {
		return err
	}
	return writeJSON(w, map[string]any{"recorded": true})
}

// checkOver is the refusal of a node's call about a check that is over:
// it says how it ended, so that the node's log and its report of the
// failure say why it stopped.
func checkOver(c Check) error {
	switch c.State {
	case CheckCancelled:
		return ErrCheckOver.With("该核对已取消："+c.Error, "the check was cancelled: "+c.Error)
	case wire.CheckFailed:
		return ErrCheckOver.With("该核对已结束(失败)："+c.Error, "the check is over (failed): "+c.Error)
	}
	return ErrCheckOver.With("该核对已完成", "the check is done")
}

// startCheck records that the node started a check, again after a
// restart: started_at stays the first start. A check over is refused, so
// that the node does not run it.
func (s *Service) startCheck(ctx context.Context, c Check) error {
	if c.State != wire.CheckRequested && c.State != wire.CheckRunning {
		return checkOver(c)
	}
	res, err := s.DB.Exec(ctx, "UPDATE exchange_checks SET state = 'running', started_at = COALESCE(started_at, ?) WHERE id = ? AND state IN ('requested', 'running')",
		s.now(), c.ID)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return s.refuseOver(ctx, c.ID)
	}
	return nil
}

// refuseOver is the refusal of a call about a check that ended while the
// call was answered.
func (s *Service) refuseOver(ctx context.Context, id int64) error {
	c, err := s.checkByID(ctx, id)
	if err != nil {
		return err
	}
	return checkOver(c)
}

// finishCheck records a check's result once, audits it, and raises an
// alarm when keys differ — before the check reads done, so that whoever
// sees it done sees its alarm too. A check over keeps its end: the same
// result reported again (its answer lost on the way) is taken as heard,
// any other report is refused, and a check cancelled stays cancelled.
func (s *Service) finishCheck(ctx context.Context, n nodeCtx, c Check, rep wire.CheckReport) error {
	if c.State == rep.State {
		return nil // reported before
	}
	if c.State != wire.CheckRequested && c.State != wire.CheckRunning {
		return checkOver(c)
	}
	if len(rep.Keys) > wire.MaxCheckKeys {
		rep.Keys = rep.Keys[:wire.MaxCheckKeys]
	}
	if rep.Keys == nil {
		rep.Keys = []wire.CheckKey{}
	}
	if rep.State == wire.CheckFailed && rep.Error == "" {
		rep.Error = "failed"
	}
	var name string
	_ = s.DB.QueryRow(ctx, "SELECT name FROM nodes WHERE id = ?", n.id).Scan(&name)
	result := audit.ResultOK
	if rep.State == wire.CheckFailed {
		result = audit.ResultError
	}
	node := policy.Actor{DeptID: n.dept, Login: name, Roles: []policy.Role{policy.NodeClient}, App: "node:" + itoa(n.id)}
	if err := s.Audit.Append(ctx, audit.By(node, "exchange.check_result", "exchange_check", itoa(c.ID), result,
		map[string]any{"kind": c.Kind, "job_id": c.JobID, "subscription_id": c.SubID, "state": rep.State, "rows": rep.Rows, "chunks": rep.Chunks,
			"differ": rep.Differ, "error": rep.Error})); err != nil {
		return err
	}
	if rep.State == wire.CheckDone && rep.Differ > 0 {
		run := Run{Direction: "in", JobID: c.JobID}
		if c.Kind == wire.CheckSubscription {
			run = Run{Direction: "out", SubscriptionID: c.SubID}
		}
		depts, what, err := s.runParties(ctx, run)
		if err != nil {
			return err
		}
		if err := s.raise(ctx, Alarm{Kind: "check_diff", JobID: c.JobID, SubscriptionID: c.SubID, DeptIDs: depts,
			MessageZH: fmt.Sprintf("%s 全量核对 #%d：%d 个主键中 %d 个数据不一致", what, c.ID, rep.Rows, rep.Differ),
			MessageEN: fmt.Sprintf("%s full check %d: %d of %d keys differ", what, c.ID, rep.Differ, rep.Rows)}); err != nil {
			return err
		}
	}
	keys, _ := json.Marshal(rep.Keys)
	now := s.now()
	res, err := s.DB.Exec(ctx, `UPDATE exchange_checks SET state = ?, started_at = COALESCE(started_at, ?), finished_at = ?, rows_compared = ?, chunks = ?,
		differ = ?, diff_keys = ?, error = ? WHERE id = ? AND state IN ('requested', 'running')`,
		rep.State, now, now, rep.Rows, rep.Chunks, rep.Differ, string(keys), rep.Error, c.ID)
	if err != nil {
		return err
	}
	s.nudge(n.id)
	if k, _ := res.RowsAffected(); k == 0 {
		return s.refuseOver(ctx, c.ID) // cancelled meanwhile
	}
	return nil
}
