// Package exchange is the center of the exchange system (交换体系): the
// jobs it defines for the departments' nodes (前置交换), the batches the
// nodes send, which go through the resource store's one pipeline, the
// subscriptions that deliver granted resources into consumers' databases
// (交换桥接), runs counted at both ends (桥接核对), alarms, and the node
// endpoint the nodes talk to over mutual TLS.
//
// The bus carries it: batches from nodes are stored in the stream
// GOVSHARE_EXCHANGE_IN (message id = batch id, so a batch sent twice is
// stored once) before the node gets its answer, and taken from there into
// the pipeline; deliveries wait in GOVSHARE_EXCHANGE_OUT, one subject per
// subscription, until the consumer's node has applied them.
package exchange

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"govshare/internal/apperr"
	"govshare/internal/audit"
	"govshare/internal/bus"
	"govshare/internal/cron"
	"govshare/internal/exchange/wire"
	"govshare/internal/mask"
	"govshare/internal/pki"
	"govshare/internal/policy"
	"govshare/internal/resource"
	"govshare/internal/share"
	"govshare/internal/store"
)

// Auditor appends audit events.
type Auditor interface {
	Append(ctx context.Context, e audit.Event) error
}

// Notifier tells people about alarms.
type Notifier interface {
	Alarm(ctx context.Context, deptIDs []int64, zh, en, href string)
}

// Deps are the parts the center works with.
type Deps struct {
	DB        *store.DB
	Audit     Auditor
	Bus       *bus.Bus
	Resources *resource.Service
	Share     *share.Service
	PKI       *pki.Service
	Masker    *mask.Masker
	Notify    Notifier // optional
	Log       *slog.Logger
	// Replicas is the bus streams' replica count: 1 for the embedded
	// server, 3 on a three-node cluster.
	Replicas int
}

// Service is the exchange center.
type Service struct {
	Deps
	now  func() time.Time
	wake chan struct{} // nudges the fan-out
}

// New builds the center. Start runs its workers.
func New(d Deps) *Service {
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	if d.Replicas <= 0 {
		d.Replicas = 1
	}
	return &Service{Deps: d, now: store.Now, wake: make(chan struct{}, 1)}
}

// SetClock replaces the clock for tests.
func (s *Service) SetClock(now func() time.Time) { s.now = now }

// Errors.
var (
	ErrJobInvalid = func(field, zh, en string) error { return apperr.Invalid("exchange.job_invalid", field, zh, en) }
	ErrNodeState  = apperr.New(http.StatusConflict, "exchange.node_not_active", "前置机未注册或已吊销", "the node has not enrolled or was revoked")
	ErrNoExchange = apperr.New(http.StatusForbidden, "exchange.no_grant", "没有允许以交换方式使用该资源的有效授权", "no valid grant allows exchange of this resource")
)

func (s *Service) authorize(ctx context.Context, actor policy.Actor, act policy.Action, dept int64, obj, id string) error {
	if err := policy.Check(actor, act, policy.Target{DeptID: dept}); err != nil {
		_ = s.Audit.Append(ctx, audit.By(actor, string(act), obj, id, audit.ResultDenied, nil))
		return err
	}
	return nil
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// Job is an exchange job with what its node last reported.
type Job struct {
	wire.JobSpec
	NodeID       int64     `json:"node_id"`
	NodeName     string    `json:"node_name"`
	DeptID       int64     `json:"dept_id"`
	ResourceName string    `json:"resource_name"`
	NodeState    string    `json:"node_state" doc:"前置机报告的状态 / state the node reports"`
	NodeVersion  int64     `json:"node_version" doc:"前置机运行的版本 / version the node runs"`
	Checkpoint   string    `json:"checkpoint,omitempty"`
	LastRunAt    time.Time `json:"last_run_at,omitzero"`
	LagSeconds   float64   `json:"lag_seconds"`
	RowsPerSec   float64   `json:"rows_per_sec"`
	Queued       int64     `json:"queued"`
	Error        string    `json:"error,omitempty"`
	ReportedAt   time.Time `json:"reported_at,omitzero"`
	CreatedAt    time.Time `json:"created_at"`
	UpdatedAt    time.Time `json:"updated_at"`
}

const jobCols = `j.id, j.version, j.name, j.spec, j.running, j.run_now, j.node_id, n.name, n.dept_id, r.code, e.name,
	j.node_state, j.node_version, j.checkpoint, j.last_run_at, j.lag_seconds, j.rows_per_sec, j.queued, j.error, j.reported_at, j.created_at, j.updated_at`

const jobFrom = ` FROM exchange_jobs j JOIN nodes n ON n.id = j.node_id JOIN resources r ON r.id = j.resource_id JOIN entries e ON e.id = r.entry_id`

func scanJob(row store.Row) (Job, error) {
	var j Job
	var spec string
	var lastRun, reported sql.NullTime
	err := row.Scan(&j.ID, &j.Version, &j.Name, &spec, &j.Running, &j.RunNow, &j.NodeID, &j.NodeName, &j.DeptID, &j.Resource, &j.ResourceName,
		&j.NodeState, &j.NodeVersion, &j.Checkpoint, &lastRun, &j.LagSeconds, &j.RowsPerSec, &j.Queued, &j.Error, &reported, &j.CreatedAt, &j.UpdatedAt)
	if err != nil {
		return j, err
	}
	id, version, name, res, running, runNow := j.ID, j.Version, j.Name, j.Resource, j.Running, j.RunNow
	if err := json.Unmarshal([]byte(spec), &j.JobSpec); err != nil {
		return j, err
	}
	j.ID, j.Version, j.Name, j.Resource, j.Running, j.RunNow = id, version, name, res, running, runNow
	j.LastRunAt, j.ReportedAt = lastRun.Time, reported.Time
	return j, nil
}

// Jobs lists the jobs of a department (0: all departments).
func (s *Service) Jobs(ctx context.Context, actor policy.Actor, deptID int64) ([]Job, error) {
	if err := s.authorize(ctx, actor, policy.ExchangeView, deptID, "exchange_job", ""); err != nil {
		return nil, err
	}
	if deptID == 0 {
		return store.All(ctx, s.DB, scanJob, "SELECT "+jobCols+jobFrom+" WHERE j.deleted_at IS NULL ORDER BY j.id")
	}
	return store.All(ctx, s.DB, scanJob, "SELECT "+jobCols+jobFrom+" WHERE j.deleted_at IS NULL AND n.dept_id = ? ORDER BY j.id", deptID)
}

func (s *Service) job(ctx context.Context, id int64) (Job, error) {
	j, err := scanJob(s.DB.QueryRow(ctx, "SELECT "+jobCols+jobFrom+" WHERE j.id = ? AND j.deleted_at IS NULL", id))
	if errors.Is(err, sql.ErrNoRows) {
		return j, apperr.ErrNotFound
	}
	return j, err
}

// Job returns one job.
func (s *Service) Job(ctx context.Context, actor policy.Actor, id int64) (Job, error) {
	j, err := s.job(ctx, id)
	if err != nil {
		return j, err
	}
	return j, s.authorize(ctx, actor, policy.ExchangeView, j.DeptID, "exchange_job", itoa(id))
}

// node loads a node and checks it is active.
func (s *Service) node(ctx context.Context, id int64) (deptID int64, name string, err error) {
	var state string
	err = s.DB.QueryRow(ctx, "SELECT dept_id, name, state FROM nodes WHERE id = ?", id).Scan(&deptID, &name, &state)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, "", apperr.Invalid("exchange.node_unknown", "node_id", "前置机不存在", "no such node")
	}
	if err == nil && state == string(pki.NodeRevoked) {
		err = ErrNodeState.OnField("node_id")
	}
	return deptID, name, err
}

// checkSpec validates a job against its resource.
func (s *Service) checkSpec(ctx context.Context, deptID int64, spec *wire.JobSpec) (resource.Resource, error) {
	spec.Name = strings.TrimSpace(spec.Name)
	if spec.Name == "" {
		return resource.Resource{}, ErrJobInvalid("name", "请填写任务名称", "name the job")
	}
	r, err := s.Resources.ByCode(ctx, spec.Resource)
	if err != nil {
		return r, apperr.Invalid("exchange.resource_unknown", "resource", "资源不存在或未挂接", "no such mounted resource")
	}
	if r.DeptID != deptID {
		return r, apperr.Invalid("exchange.resource_other_dept", "resource", "只能向本部门的资源归集数据", "a node delivers into its own department's resources only")
	}
	if strings.TrimSpace(spec.Source) == "" {
		return r, ErrJobInvalid("source", "请填写前置机上的数据源名称", "name the node's data source")
	}
	if (spec.Table == "") == (strings.TrimSpace(spec.SQL) == "") {
		return r, ErrJobInvalid("table", "源表与自定义查询二选一", "give either a source table or a query")
	}
	if len(spec.Mapping) == 0 {
		return r, ErrJobInvalid("mapping", "请至少映射一个字段", "map at least one column")
	}
	visible := map[string]bool{}
	for _, c := range r.Visible() {
		visible[c.MachineName] = true
	}
	seenItem, seenCol := map[string]bool{}, map[string]bool{}
	for i, m := range spec.Mapping {
		field := "mapping[" + strconv.Itoa(i) + "]"
		if m.Column == "" || m.Item == "" {
			return r, ErrJobInvalid(field, "字段映射不完整", "a mapping needs a column and an item")
		}
		if !visible[m.Item] {
			return r, ErrJobInvalid(field+".item", "资源没有信息项 "+m.Item, "the resource has no item "+m.Item)
		}
		if seenItem[m.Item] || seenCol[m.Column] {
			return r, ErrJobInvalid(field, "字段重复映射", "a column or item is mapped twice")
		}
		seenItem[m.Item], seenCol[m.Column] = true, true
	}
	for _, k := range r.Keys() {
		if !seenItem[k.MachineName] {
			return r, ErrJobInvalid("mapping", "主键信息项 "+k.MachineName+" 必须映射", "the key item "+k.MachineName+" must be mapped")
		}
	}
	switch spec.Mode {
	case wire.ModeFull:
	case wire.ModeKey, wire.ModeTime:
		if spec.IncColumn == "" {
			return r, ErrJobInvalid("inc_column", "增量方式需要增量字段", "incremental modes need the incremental column")
		}
	default:
		return r, ErrJobInvalid("mode", "方式应为 full、key 或 time", "mode is full, key or time")
	}
	switch spec.Schedule {
	case wire.ScheduleOnce:
	case wire.ScheduleInt, wire.ScheduleCont:
		if spec.Schedule == wire.ScheduleInt && spec.IntervalSeconds <= 0 {
			return r, ErrJobInvalid("interval_seconds", "请填写间隔秒数", "give the interval in seconds")
		}
	case wire.ScheduleCron:
		if _, err := cron.Parse(spec.Cron); err != nil {
			return r, ErrJobInvalid("cron", "cron 表达式有误："+err.Error(), err.Error())
		}
	default:
		return r, ErrJobInvalid("schedule", "调度应为 manual、interval、cron 或 continuous", "schedule is manual, interval, cron or continuous")
	}
	for field, v := range map[string]int{"lag_seconds": spec.LagSeconds, "interval_seconds": spec.IntervalSeconds, "key_check_seconds": spec.KeyCheckSeconds,
		"rate_limit": spec.RateLimit, "batch_rows": spec.BatchRows} {
		if v < 0 {
			return r, ErrJobInvalid(field, "不能为负数", "must not be negative")
		}
	}
	if spec.BatchRows > 50000 {
		return r, ErrJobInvalid("batch_rows", "每批最多 50000 行", "at most 50,000 rows per batch")
	}
	return r, nil
}

func specJSON(spec wire.JobSpec) string {
	spec.ID, spec.Version, spec.Running, spec.RunNow = 0, 0, false, 0
	b, _ := json.Marshal(spec)
	return string(b)
}

// CreateJob defines a job for a node of the actor's department.
func (s *Service) CreateJob(ctx context.Context, actor policy.Actor, nodeID int64, spec wire.JobSpec) (Job, error) {
	deptID, _, err := s.node(ctx, nodeID)
	if err != nil {
		if errors.Is(err, apperr.ErrNotFound) {
			return Job{}, err
		}
		// Authorize against the actor's own department so a stranger
		// learns nothing about other departments' nodes.
		if aerr := s.authorize(ctx, actor, policy.ExchangeManage, actor.DeptID, "exchange_job", ""); aerr != nil {
			return Job{}, aerr
		}
		return Job{}, err
	}
	if err := s.authorize(ctx, actor, policy.ExchangeManage, deptID, "exchange_job", ""); err != nil {
		return Job{}, err
	}
	r, err := s.checkSpec(ctx, deptID, &spec)
	if err != nil {
		return Job{}, err
	}
	now := s.now()
	var id int64
	err = s.DB.QueryRow(ctx, `INSERT INTO exchange_jobs (node_id, resource_id, name, spec, running, created_by, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`, nodeID, r.ID, spec.Name, specJSON(spec), spec.Running, actor.UserID, now, now).Scan(&id)
	if store.IsUniqueViolation(err) {
		return Job{}, apperr.Invalid("exchange.job_name_taken", "name", "该前置机已有同名任务", "the node already has a job of that name")
	} else if err != nil {
		return Job{}, err
	}
	if err := s.Audit.Append(ctx, audit.By(actor, "exchange.job_create", "exchange_job", itoa(id), audit.ResultOK,
		map[string]any{"node_id": nodeID, "resource": r.Code, "mode": spec.Mode, "schedule": spec.Schedule})); err != nil {
		return Job{}, err
	}
	s.nudge(nodeID)
	return s.job(ctx, id)
}

// UpdateJob changes a job; the node picks up the new version.
func (s *Service) UpdateJob(ctx context.Context, actor policy.Actor, id int64, spec wire.JobSpec) (Job, error) {
	j, err := s.job(ctx, id)
	if err != nil {
		return j, err
	}
	if err := s.authorize(ctx, actor, policy.ExchangeManage, j.DeptID, "exchange_job", itoa(id)); err != nil {
		return Job{}, err
	}
	r, err := s.checkSpec(ctx, j.DeptID, &spec)
	if err != nil {
		return Job{}, err
	}
	_, err = s.DB.Exec(ctx, `UPDATE exchange_jobs SET resource_id = ?, name = ?, spec = ?, running = ?, version = version + 1, updated_at = ? WHERE id = ?`,
		r.ID, spec.Name, specJSON(spec), spec.Running, s.now(), id)
	if store.IsUniqueViolation(err) {
		return Job{}, apperr.Invalid("exchange.job_name_taken", "name", "该前置机已有同名任务", "the node already has a job of that name")
	} else if err != nil {
		return Job{}, err
	}
	if err := s.Audit.Append(ctx, audit.By(actor, "exchange.job_update", "exchange_job", itoa(id), audit.ResultOK,
		map[string]any{"resource": r.Code, "mode": spec.Mode, "schedule": spec.Schedule, "version": j.Version + 1})); err != nil {
		return Job{}, err
	}
	s.nudge(j.NodeID)
	return s.job(ctx, id)
}

// JobAction is start, stop, run (once now) or delete.
type JobAction string

// Job actions.
const (
	JobStart  JobAction = "start"
	JobStop   JobAction = "stop"
	JobRun    JobAction = "run"
	JobDelete JobAction = "delete"
)

// ControlJob starts, stops, runs once or deletes a job.
func (s *Service) ControlJob(ctx context.Context, actor policy.Actor, id int64, act JobAction) (Job, error) {
	j, err := s.job(ctx, id)
	if err != nil {
		return j, err
	}
	if err := s.authorize(ctx, actor, policy.ExchangeManage, j.DeptID, "exchange_job", itoa(id)); err != nil {
		return Job{}, err
	}
	now := s.now()
	var q string
	args := []any{now, id}
	switch act {
	case JobStart, JobStop:
		q = "UPDATE exchange_jobs SET running = ?, version = version + 1, updated_at = ? WHERE id = ?"
		args = []any{act == JobStart, now, id}
	case JobRun:
		q = "UPDATE exchange_jobs SET run_now = run_now + 1, version = version + 1, updated_at = ? WHERE id = ?"
	case JobDelete:
		q = "UPDATE exchange_jobs SET deleted_at = ?, running = ? WHERE id = ?"
		args = []any{now, false, id}
	default:
		return Job{}, apperr.Invalid("exchange.action_invalid", "action", "操作应为 start、stop、run 或 delete", "the action is start, stop, run or delete")
	}
	if _, err := s.DB.Exec(ctx, q, args...); err != nil {
		return Job{}, err
	}
	if err := s.Audit.Append(ctx, audit.By(actor, "exchange.job_"+string(act), "exchange_job", itoa(id), audit.ResultOK, nil)); err != nil {
		return Job{}, err
	}
	s.nudge(j.NodeID)
	if act == JobDelete {
		j.Running = false
		return j, nil
	}
	return s.job(ctx, id)
}

// Subscription delivers a granted resource into a consumer node's table.
type Subscription struct {
	ID           int64     `json:"id"`
	GrantID      int64     `json:"grant_id"`
	NodeID       int64     `json:"node_id"`
	NodeName     string    `json:"node_name"`
	DeptID       int64     `json:"dept_id" doc:"使用部门 / consumer department"`
	ProviderID   int64     `json:"provider_dept_id"`
	Resource     string    `json:"resource"`
	ResourceName string    `json:"resource_name"`
	Target       string    `json:"target"`
	Table        string    `json:"table"`
	Create       bool      `json:"create"`
	Realtime     bool      `json:"realtime"`
	Interval     int       `json:"interval_seconds,omitempty"`
	Items        []string  `json:"items"`
	State        string    `json:"state" doc:"active / stopped / revoked"`
	StopReason   string    `json:"stop_reason,omitempty"`
	Version      int64     `json:"version"`
	Epoch        int64     `json:"epoch"`
	Cursor       int64     `json:"cursor_batch" doc:"已分发到的资源批次 / last resource batch fanned out"`
	AppliedSeq   uint64    `json:"applied_seq"`
	NodeState    string    `json:"node_state"`
	Error        string    `json:"error,omitempty"`
	LastApplied  time.Time `json:"last_applied_at,omitzero"`
	CreatedAt    time.Time `json:"created_at"`
	resourceID   int64
	providerDept int64
}

const subCols = `s.id, s.grant_id, s.node_id, n.name, n.dept_id, r.dept_id, r.code, e.name, s.target, s.target_table, s.create_table, s.realtime,
	s.interval_seconds, s.items, s.state, s.stop_reason, s.version, s.epoch, s.cursor_batch, s.applied_seq, s.node_state, s.error, s.last_applied_at,
	s.created_at, s.resource_id`

const subFrom = ` FROM exchange_subscriptions s JOIN nodes n ON n.id = s.node_id JOIN resources r ON r.id = s.resource_id JOIN entries e ON e.id = r.entry_id`

func scanSub(row store.Row) (Subscription, error) {
	var x Subscription
	var items string
	var last sql.NullTime
	err := row.Scan(&x.ID, &x.GrantID, &x.NodeID, &x.NodeName, &x.DeptID, &x.ProviderID, &x.Resource, &x.ResourceName, &x.Target, &x.Table, &x.Create,
		&x.Realtime, &x.Interval, &items, &x.State, &x.StopReason, &x.Version, &x.Epoch, &x.Cursor, &x.AppliedSeq, &x.NodeState, &x.Error, &last,
		&x.CreatedAt, &x.resourceID)
	if err != nil {
		return x, err
	}
	x.LastApplied = last.Time
	x.providerDept = x.ProviderID
	return x, json.Unmarshal([]byte(items), &x.Items)
}

func (s *Service) sub(ctx context.Context, id int64) (Subscription, error) {
	x, err := scanSub(s.DB.QueryRow(ctx, "SELECT "+subCols+subFrom+" WHERE s.id = ?", id))
	if errors.Is(err, sql.ErrNoRows) {
		return x, apperr.ErrNotFound
	}
	return x, err
}

// Subscriptions lists the subscriptions a department receives or whose
// resources it provides (0: all).
func (s *Service) Subscriptions(ctx context.Context, actor policy.Actor, deptID int64) ([]Subscription, error) {
	if err := s.authorize(ctx, actor, policy.ExchangeView, deptID, "exchange_subscription", ""); err != nil {
		return nil, err
	}
	if deptID == 0 {
		return store.All(ctx, s.DB, scanSub, "SELECT "+subCols+subFrom+" WHERE s.state <> 'deleted' ORDER BY s.id")
	}
	return store.All(ctx, s.DB, scanSub, "SELECT "+subCols+subFrom+" WHERE s.state <> 'deleted' AND (n.dept_id = ? OR r.dept_id = ?) ORDER BY s.id", deptID, deptID)
}

// Subscription returns one subscription to those of either department.
func (s *Service) Subscription(ctx context.Context, actor policy.Actor, id int64) (Subscription, error) {
	x, err := s.sub(ctx, id)
	if err != nil {
		return x, err
	}
	if !policy.Allowed(actor, policy.ExchangeView, policy.Target{DeptID: x.DeptID}) {
		if err := s.authorize(ctx, actor, policy.ExchangeView, x.ProviderID, "exchange_subscription", itoa(id)); err != nil {
			return Subscription{}, err
		}
	}
	return x, nil
}

// SubscriptionRequest asks for a resource to be delivered.
type SubscriptionRequest struct {
	GrantID  int64    `json:"grant_id" doc:"含交换方式的授权 / a grant that allows exchange"`
	NodeID   int64    `json:"node_id" doc:"本部门前置机 / the department's node"`
	Target   string   `json:"target" doc:"前置机配置中的目标库名称 / target database name in the node's configuration"`
	Table    string   `json:"table" doc:"目标表 / target table"`
	Create   bool     `json:"create,omitempty" doc:"不存在时建表 / create the table when missing"`
	Realtime bool     `json:"realtime,omitempty" doc:"实时 / real time (otherwise on schedule)"`
	Interval int      `json:"interval_seconds,omitempty" doc:"定时间隔(秒) / schedule interval (s)"`
	Items    []string `json:"items,omitempty" doc:"信息项，空为授权的全部 / items; empty: every granted item"`
}

// CreateSubscription subscribes a node of the consumer department to a
// resource it holds an exchange grant for. Only granted items are ever
// delivered; key items must be among them.
func (s *Service) CreateSubscription(ctx context.Context, actor policy.Actor, req SubscriptionRequest) (Subscription, error) {
	deptID, _, err := s.node(ctx, req.NodeID)
	if err != nil {
		return Subscription{}, err
	}
	// Only the node's own department subscribes it.
	if err := s.authorize(ctx, actor, policy.ExchangeBridge, deptID, "exchange_subscription", ""); err != nil {
		return Subscription{}, err
	}
	if deptID != actor.DeptID {
		return Subscription{}, apperr.Invalid("exchange.node_other_dept", "node_id", "只能使用本部门的前置机", "use a node of your own department")
	}
	g, err := s.Share.Grant(ctx, actor, req.GrantID)
	if err != nil {
		return Subscription{}, err
	}
	if g.ConsumerDeptID != actor.DeptID {
		return Subscription{}, apperr.Invalid("exchange.grant_other_dept", "grant_id", "该授权不属于本部门", "the grant is not your department's")
	}
	items := req.Items
	if len(items) == 0 {
		items = g.Items
	}
	permit, err := s.Share.Permit(ctx, share.Use{DeptID: actor.DeptID, Resource: g.EntryCode, Items: items, Method: "exchange"})
	if err != nil {
		return Subscription{}, ErrNoExchange
	}
	r, err := s.Resources.ByCode(ctx, g.EntryCode)
	if err != nil {
		return Subscription{}, apperr.Invalid("exchange.resource_unmounted", "grant_id", "提供部门尚未挂接该资源", "the provider has not mounted the resource yet")
	}
	for _, k := range r.Keys() {
		if slices.ContainsFunc(permit.Items, func(p share.PermitItem) bool { return p.MachineName == k.MachineName }) {
			continue
		}
		// Granted but left out of the chosen items: the consumer can put
		// it back, so say that rather than send them to apply again.
		if slices.Contains(g.Items, k.MachineName) {
			return Subscription{}, apperr.Invalid("exchange.key_not_chosen", "items", "主键信息项 "+k.MachineName+" 必须交付", "the key item "+k.MachineName+" is always delivered")
		}
		return Subscription{}, apperr.Invalid("exchange.key_not_granted", "items", "交换需要主键信息项 "+k.MachineName+"，但未获授权", "exchange needs the key item "+k.MachineName+", which is not granted")
	}
	if !validTable(req.Table) {
		return Subscription{}, apperr.Invalid("exchange.table_invalid", "table", "目标表名只能由小写字母、数字和下划线组成，可带 schema.", "table names are lowercase letters, digits and underscores, optionally schema.table")
	}
	if strings.TrimSpace(req.Target) == "" {
		return Subscription{}, apperr.Invalid("exchange.target_missing", "target", "请填写目标库名称", "name the target database")
	}
	if !req.Realtime && req.Interval <= 0 {
		return Subscription{}, apperr.Invalid("exchange.interval_missing", "interval_seconds", "定时交付需要间隔秒数", "scheduled delivery needs an interval")
	}
	itemsJSON, _ := json.Marshal(items)
	now := s.now()
	var id int64
	if err := s.DB.QueryRow(ctx, `INSERT INTO exchange_subscriptions (grant_id, node_id, resource_id, target, target_table, create_table, realtime, interval_seconds,
		items, created_by, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
		g.ID, req.NodeID, r.ID, req.Target, req.Table, req.Create, req.Realtime, req.Interval, string(itemsJSON), actor.UserID, now, now).Scan(&id); err != nil {
		return Subscription{}, err
	}
	if err := s.Resources.EnsureChangeIndex(ctx, r); err != nil {
		return Subscription{}, err
	}
	if err := s.Audit.Append(ctx, audit.By(actor, "exchange.subscribe", "exchange_subscription", itoa(id), audit.ResultOK,
		map[string]any{"grant_id": g.ID, "resource": r.Code, "node_id": req.NodeID, "items": items, "table": req.Table})); err != nil {
		return Subscription{}, err
	}
	s.nudge(req.NodeID)
	s.kick()
	return s.sub(ctx, id)
}

func validTable(t string) bool {
	if t == "" || len(t) > 120 {
		return false
	}
	for _, part := range strings.Split(t, ".") {
		if part == "" || !(part[0] >= 'a' && part[0] <= 'z' || part[0] == '_') {
			return false
		}
		for _, c := range part {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
				return false
			}
		}
	}
	return strings.Count(t, ".") <= 1
}

// SubscriptionAction is stop, start, resync or delete.
type SubscriptionAction string

// Subscription actions.
const (
	SubStop   SubscriptionAction = "stop"
	SubStart  SubscriptionAction = "start"
	SubResync SubscriptionAction = "resync"
	SubDelete SubscriptionAction = "delete"
)

// ControlSubscription stops, restarts, re-syncs (delivers everything again
// into an emptied table) or deletes a subscription. The consumer's data
// administrator does it; the provider's stops it by revoking the grant.
func (s *Service) ControlSubscription(ctx context.Context, actor policy.Actor, id int64, act SubscriptionAction) (Subscription, error) {
	x, err := s.sub(ctx, id)
	if err != nil {
		return x, err
	}
	if err := s.authorize(ctx, actor, policy.ExchangeBridge, x.DeptID, "exchange_subscription", itoa(id)); err != nil {
		return Subscription{}, err
	}
	now := s.now()
	switch act {
	case SubStop:
		_, err = s.DB.Exec(ctx, "UPDATE exchange_subscriptions SET state = 'stopped', stop_reason = 'stopped', version = version + 1, updated_at = ? WHERE id = ? AND state = 'active'", now, id)
	case SubStart:
		if _, perr := s.Share.Permit(ctx, share.Use{DeptID: x.DeptID, Resource: x.Resource, Items: x.Items, Method: "exchange"}); perr != nil {
			return Subscription{}, ErrNoExchange
		}
		_, err = s.DB.Exec(ctx, "UPDATE exchange_subscriptions SET state = 'active', stop_reason = '', version = version + 1, updated_at = ? WHERE id = ? AND state = 'stopped'", now, id)
	case SubResync:
		if err = s.purgeDeliveries(ctx, id); err == nil {
			_, err = s.DB.Exec(ctx, "UPDATE exchange_subscriptions SET epoch = epoch + 1, cursor_batch = -1, applied_seq = 0, version = version + 1, updated_at = ? WHERE id = ?", now, id)
		}
	case SubDelete:
		if err = s.purgeDeliveries(ctx, id); err == nil {
			_, err = s.DB.Exec(ctx, "UPDATE exchange_subscriptions SET state = 'deleted', version = version + 1, updated_at = ? WHERE id = ?", now, id)
		}
	default:
		return Subscription{}, apperr.Invalid("exchange.action_invalid", "action", "操作应为 stop、start、resync 或 delete", "the action is stop, start, resync or delete")
	}
	if err != nil {
		return Subscription{}, err
	}
	if err := s.Audit.Append(ctx, audit.By(actor, "exchange.subscription_"+string(act), "exchange_subscription", itoa(id), audit.ResultOK, nil)); err != nil {
		return Subscription{}, err
	}
	s.nudge(x.NodeID)
	s.kick()
	return s.sub(ctx, id)
}
