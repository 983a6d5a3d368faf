// Package wire is what the center and its exchange nodes (前置机) say to
// each other over the node endpoint (HTTPS with mutual TLS, certificates
// from the platform's own CA): the jobs a node is to run, the batches it
// sends, the deliveries it fetches and the status it reports. Both sides
// import it, so the two cannot drift apart.
//
// Values travel as the canonical text of internal/agent/source (nil =
// NULL), so a row reads the same on every database.
package wire

import (
	"time"
)

// Paths of the node endpoint.
const (
	PathCommands   = "/node/v1/commands"   // GET: the jobs and subscriptions the node is to run
	PathStatus     = "/node/v1/status"     // POST: heartbeat with job and delivery states
	PathBatches    = "/node/v1/batches"    // POST: one Batch from a job
	PathDeliveries = "/node/v1/deliveries" // GET ?subscription=&after=&max=&wait=: the next deliveries
	PathAcks       = "/node/v1/acks"       // POST: what the node applied (Ack)
	PathEnrol      = "/api/v1/nodes/enrol" // POST on the public API: code + CSR → certificate
)

// Header names.
const (
	HeaderBatchID = "Govshare-Batch-Id"
	// HeaderActive carries Deliveries.Active with ContentTypeDeliveries.
	HeaderActive = "Govshare-Active"
	// HeaderEpoch is a stored delivery's Epoch, on the bus.
	HeaderEpoch = "Govshare-Epoch"
)

// Job modes.
const (
	ModeFull     = "full"       // every row each run; deletes found by comparing keys
	ModeKey      = "key"        // rows whose increasing key column passed the checkpoint
	ModeTime     = "time"       // rows whose update-time column lies in the next window
	ScheduleOnce = "manual"     // runs only when started from the center or the CLI
	ScheduleInt  = "interval"   // every Interval
	ScheduleCron = "cron"       // by a cron expression
	ScheduleCont = "continuous" // again as soon as a run ends (with Interval as the idle pause)
)

// Batch kinds.
const (
	KindRows = "rows" // upserts and deletes for the resource
	KindKeys = "keys" // keys seen at the source, for delete detection
)

// ColumnMapping maps one source column to one data item of the resource.
type ColumnMapping struct {
	Column string `json:"column" doc:"源字段 / source column"`
	Item   string `json:"item" doc:"信息项字段名 / data item (machine name)"`
}

// JobSpec is an exchange job as the center defines it: where to read, how,
// when and into which resource.
type JobSpec struct {
	ID       int64    `json:"id" required:"false" doc:"由中心分配 / set by the center"`
	Version  int64    `json:"version" required:"false" doc:"每次修改加一，由中心维护 / increases with every change, kept by the center"`
	Name     string   `json:"name"`
	Resource string   `json:"resource" doc:"目标资源代码 / the resource the rows go into"`
	Source   string   `json:"source" doc:"前置机配置中的数据源名称 / data source name in the node's configuration"`
	Table    string   `json:"table,omitempty" doc:"源表(schema.table) / source table"`
	SQL      string   `json:"sql,omitempty" doc:"或自定义查询(只读 SELECT) / or a SELECT"`
	Key      []string `json:"key,omitempty" doc:"源主键字段 / source key columns (default: the table's primary key)"`
	// KeyItems are the resource's key items in order, filled in by the
	// center when it hands the job to its node.
	KeyItems []string        `json:"key_items,omitempty" readOnly:"true"`
	Mapping  []ColumnMapping `json:"mapping" doc:"字段映射 / column mapping"`
	Mode     string          `json:"mode" enum:"full,key,time" doc:"全量 full / 按递增键 key / 按更新时间 time"`
	// IncColumn is the increasing key column (mode key) or the update-time
	// column (mode time).
	IncColumn string `json:"inc_column,omitempty" doc:"增量字段 / incremental column"`
	// LagSeconds is the safety lag of mode time: a window ends at the
	// source database's clock minus the lag.
	LagSeconds int    `json:"lag_seconds,omitempty" doc:"时间窗安全滞后(秒) / safety lag (s)"`
	Schedule   string `json:"schedule" enum:"manual,interval,cron,continuous" doc:"调度 / schedule"`
	// IntervalSeconds: the period of interval, the idle pause of continuous.
	IntervalSeconds int    `json:"interval_seconds,omitempty"`
	Cron            string `json:"cron,omitempty" doc:"cron 表达式(分 时 日 月 周) / cron expression"`
	// KeyCheckSeconds is how often deletes are looked for by comparing the
	// source's keys with the resource's (modes key and time; 0 = never;
	// mode full compares on every run).
	KeyCheckSeconds int `json:"key_check_seconds,omitempty" doc:"删除检测周期(秒) / delete detection period (s)"`
	RateLimit       int `json:"rate_limit,omitempty" doc:"每秒行数上限 / rows per second (0 = unlimited)"`
	MaxErrors       int `json:"max_errors,omitempty" doc:"每批错误上限 / error limit per batch"`
	BatchRows       int `json:"batch_rows,omitempty" doc:"每批行数 / rows per batch (default 5000)"`
	// Running says the center wants the job to run on its schedule.
	Running bool `json:"running" required:"false" doc:"按调度运行 / run on the schedule"`
	// RunNow asks for one run now; it changes (increases) each time the
	// center asks again.
	RunNow int64 `json:"run_now,omitempty"`
}

// Subscription is a delivery of a granted resource into a table of the
// consumer node's database (交换桥接).
type SubscriptionSpec struct {
	ID       int64             `json:"id"`
	Version  int64             `json:"version"`
	Resource string            `json:"resource"`
	Target   string            `json:"target" doc:"前置机配置中的目标库名称 / target database name in the node's configuration"`
	Table    string            `json:"table" doc:"目标表 / target table"`
	Create   bool              `json:"create" doc:"不存在时建表 / create the table when missing"`
	Columns  []DeliveredColumn `json:"columns" doc:"授权的信息项 / the granted items, keys first"`
	// Active is false once the grant is revoked or has expired, or the
	// subscription was stopped: the node stops applying.
	Active bool `json:"active"`
	// Realtime applies deliveries as they come; otherwise every
	// IntervalSeconds.
	Realtime        bool `json:"realtime"`
	IntervalSeconds int  `json:"interval_seconds,omitempty"`
	// Epoch changes when the subscription is re-synced from scratch: the
	// node forgets its position and empties the table.
	Epoch int64 `json:"epoch"`
}

// DeliveredColumn is one delivered data item.
type DeliveredColumn struct {
	Name     string `json:"name"`
	DataType string `json:"data_type"`
	Length   int    `json:"length,omitempty"`
	Key      bool   `json:"key,omitempty"`
}

// Commands is what GET PathCommands answers: everything the node is to
// run. The node compares it with what it runs and adjusts.
type Commands struct {
	NodeID        int64              `json:"node_id"`
	NodeName      string             `json:"node_name"`
	Jobs          []JobSpec          `json:"jobs"`
	Subscriptions []SubscriptionSpec `json:"subscriptions"`
	// Checks are the full checks waiting for the node or running on it
	// (check.go).
	Checks []CheckRequest `json:"checks,omitempty"`
	// Revision changes whenever anything above changes, so a node can
	// wait for the next one (?after=revision&wait=seconds).
	Revision int64 `json:"revision"`
}

// RunCounts are a run's counts on one side.
type RunCounts struct {
	Rows      int64 `json:"rows" doc:"记录数(含删除) / records, deletes included"`
	Upserts   int64 `json:"upserts,omitempty"`
	Deletes   int64 `json:"deletes,omitempty"`
	Inserted  int64 `json:"inserted,omitempty"`
	Updated   int64 `json:"updated,omitempty"`
	Unchanged int64 `json:"unchanged,omitempty"`
	Deleted   int64 `json:"deleted,omitempty"`
	Missing   int64 `json:"missing,omitempty" doc:"删除时不存在 / deletes of keys not there"`
	Rejected  int64 `json:"rejected,omitempty" doc:"未通过校验 / failed checks"`
}

// Add adds o to c.
func (c *RunCounts) Add(o RunCounts) {
	c.Rows += o.Rows
	c.Upserts += o.Upserts
	c.Deletes += o.Deletes
	c.Inserted += o.Inserted
	c.Updated += o.Updated
	c.Unchanged += o.Unchanged
	c.Deleted += o.Deleted
	c.Missing += o.Missing
	c.Rejected += o.Rejected
}

// Batch is one message of a job's run: many rows, never one message per
// row. Its ID is the message id on the bus, so a batch sent twice is
// applied once.
type Batch struct {
	ID      string `json:"id"` // "n<node>-j<job>-r<run>-<seq>"
	JobID   int64  `json:"job_id"`
	Version int64  `json:"version"`
	Run     int64  `json:"run"` // the node's run number for the job, from 1
	Seq     int64  `json:"seq"` // the batch's number in its run, from 1
	Mode    string `json:"mode"`
	Kind    string `json:"kind"`
	// Columns names the values of Rows (resource machine names); Deletes
	// hold key values in the resource's key order.
	Columns []string    `json:"columns"`
	Rows    [][]*string `json:"rows,omitempty"`
	Deletes [][]string  `json:"deletes,omitempty"`
	// Keys (kind keys) are keys seen at the source, in key order.
	Keys [][]string `json:"keys,omitempty"`
	// Last marks the run's last batch; Total is then the run's counts at
	// the sender and Batches the number of its batches.
	Last    bool       `json:"last,omitempty"`
	Total   *RunCounts `json:"total,omitempty"`
	Batches int64      `json:"batches,omitempty"`
	// Checkpoint is the job's position after this batch (node's meaning).
	Checkpoint  string    `json:"checkpoint,omitempty"`
	ExtractedAt time.Time `json:"extracted_at"`
	// Oldest is the source commit time of the batch's oldest row when the
	// source tells it (mode time), for lag.
	Oldest time.Time `json:"oldest,omitzero"`
}

// Delivery is one message for a subscription.
type Delivery struct {
	Subscription int64  `json:"subscription"`
	Epoch        int64  `json:"epoch"`
	Seq          uint64 `json:"seq"` // position in the subscription's stream: apply in order, once
	Run          int64  `json:"run"` // the resource batch it carries (0 = the initial snapshot)
	// Part is the delivery's number among the Parts of its run; Attempt
	// counts how often the center started delivering the run (a restart
	// mid-run delivers it again whole, and only the last attempt counts).
	Part      int64       `json:"part"`
	Parts     int64       `json:"parts"`
	Attempt   int64       `json:"attempt"`
	Columns   []string    `json:"columns"`
	Rows      [][]*string `json:"rows,omitempty"`
	Deletes   [][]string  `json:"deletes,omitempty"`
	Sent      RunCounts   `json:"sent"`
	Published time.Time   `json:"published"`
	// Changed is when the oldest change it carries was committed at the
	// center, for latency.
	Changed time.Time `json:"changed,omitzero"`
}

// Deliveries is what GET PathDeliveries answers.
type Deliveries struct {
	Items []Delivery `json:"items"`
	// Active false: stop (grant revoked or expired, subscription stopped).
	Active bool `json:"active"`
}

// Ack reports what the node did with a delivery.
type Ack struct {
	Subscription int64     `json:"subscription"`
	Epoch        int64     `json:"epoch"`
	Seq          uint64    `json:"seq"`
	Run          int64     `json:"run"`
	Part         int64     `json:"part"`
	Attempt      int64     `json:"attempt"`
	Counts       RunCounts `json:"counts"`
	AppliedAt    time.Time `json:"applied_at"`
	Error        string    `json:"error,omitempty"`
}

// JobStatus is a node's report on one job.
type JobStatus struct {
	JobID       int64     `json:"job_id"`
	Version     int64     `json:"version"`
	State       string    `json:"state" doc:"idle / running / waiting / failed / stopped"`
	Checkpoint  string    `json:"checkpoint,omitempty"`
	Run         int64     `json:"run,omitempty"`
	LastRunAt   time.Time `json:"last_run_at,omitzero"`
	LagSeconds  float64   `json:"lag_seconds"`
	RowsPerSec  float64   `json:"rows_per_sec"`
	Queued      int64     `json:"queued" doc:"前置库中待发送的批次 / batches waiting in the node's store"`
	Error       string    `json:"error,omitempty"`
	RunProgress int64     `json:"run_progress,omitempty" doc:"本次已抽取行数 / rows extracted this run"`
}

// SubStatus is a node's report on one subscription.
type SubStatus struct {
	Subscription int64     `json:"subscription"`
	State        string    `json:"state"`
	Applied      uint64    `json:"applied"`
	LastAt       time.Time `json:"last_at,omitzero"`
	Error        string    `json:"error,omitempty"`
}

// Status is a node's heartbeat.
type Status struct {
	Version       string      `json:"version"`
	Started       time.Time   `json:"started"`
	Jobs          []JobStatus `json:"jobs"`
	Subscriptions []SubStatus `json:"subscriptions"`
	// Sources are the node's configured data sources with their tables,
	// sent when asked (Commands.Describe) or when they change.
	Sources []SourceInfo `json:"sources,omitempty"`
	Targets []string     `json:"targets,omitempty"`
}

// SourceInfo describes one data source of a node.
type SourceInfo struct {
	Name   string        `json:"name"`
	Kind   string        `json:"kind"`
	Error  string        `json:"error,omitempty" doc:"连接测试结果 / connection test"`
	Tables []SourceTable `json:"tables,omitempty"`
}

// SourceTable is one table and its columns.
type SourceTable struct {
	Name    string         `json:"name"`
	Columns []SourceColumn `json:"columns"`
}

// SourceColumn is one source column with the data item type it suggests.
type SourceColumn struct {
	Name     string `json:"name"`
	Type     string `json:"type"`
	Key      int    `json:"key,omitempty"`
	DataType string `json:"data_type"`
	Length   int    `json:"length,omitempty"`
}

// StatusReply answers a heartbeat: the runs of the node's jobs as the
// center counted them, so the node knows what was rejected.
type StatusReply struct {
	Revision int64       `json:"revision"`
	Runs     []RunResult `json:"runs,omitempty"`
}

// RunResult is the center's side of a run.
type RunResult struct {
	JobID    int64     `json:"job_id"`
	Run      int64     `json:"run"`
	State    string    `json:"state"`
	Received RunCounts `json:"received"`
}

// Enrolment is the body of PathEnrol.
type Enrolment struct {
	Code string `json:"code" doc:"一次性注册码 / one-time enrolment code"`
	CSR  string `json:"csr" doc:"PEM 证书请求 / PEM certificate request"`
}

// Enrolled answers PathEnrol.
type Enrolled struct {
	Certificate string `json:"certificate" doc:"PEM 节点证书 / PEM node certificate"`
	CA          string `json:"ca" doc:"PEM 平台根证书 / PEM platform CA"`
	NodeURL     string `json:"node_url,omitempty" doc:"节点接口地址 / the node endpoint"`
}
