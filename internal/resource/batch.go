package resource

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"govshare/internal/apperr"
	"govshare/internal/audit"
	"govshare/internal/policy"
	"govshare/internal/quality"
	"govshare/internal/store"
)

// Source is where a batch came from.
type Source string

// Sources of batches: every way in goes through the same pipeline.
const (
	SourceUpload     Source = "upload"     // 模板上传
	SourceAPI        Source = "api"        // 接口推送
	SourceNode       Source = "node"       // 前置交换节点
	SourceQuarantine Source = "quarantine" // 问题数据修正后重新提交
)

// Rows is a batch's records as they arrive: a header naming the columns,
// then rows of text in the header's order. Next returns io.EOF after the
// last row; the slice it returns may be reused by the next call. A column
// named _op holds "upsert" (the default) or "delete".
type Rows interface {
	Header() []string
	Next() ([]string, error)
}

// SubmitOptions describe a batch.
type SubmitOptions struct {
	Source Source
	Detail string // file name, app key, node name
	// ClientBatchID makes a batch idempotent: a batch sent again with the
	// same id is applied once, and the second answer is the first batch.
	ClientBatchID string
	// MaxErrors is how many records may fail before the whole batch is
	// refused; 0 means DefaultMaxErrors, a negative number no limit.
	MaxErrors int
	// Progress, when set, is told the number of rows read so far, every
	// thousand rows and at the end, one call at a time from the goroutine
	// that reads the rows.
	Progress func(rows int64)
	// Applying, when set, is called in the apply's transaction, after
	// everything else the batch writes and before the commit, with the
	// batch as it is about to be committed (state applied, its counts).
	// What it writes through tx commits with the batch or not at all, so
	// a caller can keep its own record of the batch exactly once; an error
	// rolls the whole batch back and Submit returns it. It is not called
	// for a batch refused for too many errors, nor for a replay.
	Applying func(ctx context.Context, tx Execer, b Batch) error
}

// Execer runs a statement with '?' placeholders in a transaction.
type Execer interface {
	Exec(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// DefaultMaxErrors is the error limit of a batch that sets none.
const DefaultMaxErrors = 1000

// Batch is one delivery of data and what became of it.
type Batch struct {
	ID            int64         `json:"id"`
	ResourceCode  string        `json:"resource"`
	ClientBatchID string        `json:"client_batch_id,omitempty"`
	Source        Source        `json:"source"`
	Detail        string        `json:"detail,omitempty"`
	State         string        `json:"state" doc:"running / applied / failed"`
	RowsTotal     int64         `json:"rows_total" doc:"收到的记录 / records received"`
	Inserted      int64         `json:"inserted"`
	Updated       int64         `json:"updated"`
	Unchanged     int64         `json:"unchanged"`
	Deleted       int64         `json:"deleted"`
	Quarantined   int64         `json:"quarantined" doc:"转入问题数据 / records put aside"`
	Report        QualityReport `json:"report"`
	Error         string        `json:"error,omitempty"`
	StartedAt     time.Time     `json:"started_at"`
	FinishedAt    time.Time     `json:"finished_at,omitzero"`
	// Replayed is true when the answer is an earlier batch with the same
	// client batch id.
	Replayed bool `json:"replayed,omitempty"`
}

// QualityReport is a batch's quality report: how many records failed each rule,
// with the first rows as examples.
type QualityReport struct {
	Rules []RuleCount `json:"rules"`
}

// RuleCount counts one rule's failures on one item.
type RuleCount struct {
	Item  string  `json:"item"`
	Rule  string  `json:"rule"`
	ZH    string  `json:"message_zh"`
	EN    string  `json:"message_en"`
	Count int64   `json:"count"`
	Rows  []int64 `json:"rows" doc:"示例行号 / example row numbers"`
}

// Errors of batches.
var (
	ErrBatchRunning = apperr.New(http.StatusConflict, "resource.batch_running", "同一批次号的批次正在处理中，请稍后查询结果", "a batch with this id is being processed; ask for its result later")
	ErrHeader       = apperr.Invalid("resource.header_invalid", "header", "表头无法识别", "the header is not recognised")
	ErrEmpty        = apperr.Invalid("resource.batch_empty", "file", "没有数据行", "there are no rows")
)

// key of a rule in a report.
type ruleKey struct{ item, rule string }

type reportBuilder struct {
	order []ruleKey
	rules map[ruleKey]*RuleCount
}

func (b *reportBuilder) add(row int64, v quality.Violation) {
	if b.rules == nil {
		b.rules = map[ruleKey]*RuleCount{}
	}
	k := ruleKey{v.Item, v.Rule}
	rc := b.rules[k]
	if rc == nil {
		rc = &RuleCount{Item: v.Item, Rule: v.Rule, ZH: v.ZH, EN: v.EN}
		b.rules[k] = rc
		b.order = append(b.order, k)
	}
	rc.Count++
	if len(rc.Rows) < 5 {
		rc.Rows = append(rc.Rows, row)
	}
}

// addMany counts n failures of v found together, with the first rows.
func (b *reportBuilder) addMany(v quality.Violation, n int64, rows []int64) {
	if n == 0 || len(rows) == 0 {
		return
	}
	b.add(rows[0], v)
	rc := b.rules[ruleKey{v.Item, v.Rule}]
	rc.Count += n - 1
	for _, row := range rows[1:] {
		if len(rc.Rows) < 5 {
			rc.Rows = append(rc.Rows, row)
		}
	}
}

func (b *reportBuilder) report() QualityReport {
	r := QualityReport{Rules: []RuleCount{}}
	for _, k := range b.order {
		r.Rules = append(r.Rules, *b.rules[k])
	}
	return r
}

// header maps a batch's columns onto the resource's visible columns.
type header struct {
	pos []int // for each visible column, its position in the input, or -1
	op  int   // position of _op, or -1
}

// mapHeader accepts machine names, item names, or the template's
// "名称(machine_name)" form.
func mapHeader(in []string, cols []Column) (header, error) {
	h := header{pos: make([]int, len(cols)), op: -1}
	for i := range h.pos {
		h.pos[i] = -1
	}
	for i, name := range in {
		name = strings.TrimSpace(strings.TrimPrefix(name, "\ufeff"))
		if name == "" {
			continue
		}
		if name == "_op" || name == "操作" {
			h.op = i
			continue
		}
		machine := name
		if open := strings.LastIndexAny(name, "(（"); open >= 0 && (strings.HasSuffix(name, ")") || strings.HasSuffix(name, "）")) {
			machine = strings.TrimRight(name[open+len(string([]rune(name[open:])[0])):], ")）")
		}
		found := -1
		for j, c := range cols {
			if strings.EqualFold(c.MachineName, machine) || c.Name == name {
				found = j
				break
			}
		}
		if found < 0 {
			return h, ErrHeader.With(fmt.Sprintf("第%d列“%s”不是该资源的信息项", i+1, name), fmt.Sprintf("column %d %q is not a data item of the resource", i+1, name))
		}
		if h.pos[found] >= 0 {
			return h, ErrHeader.With(fmt.Sprintf("信息项“%s”出现了两次", cols[found].Name), fmt.Sprintf("the item %q appears twice", cols[found].MachineName))
		}
		h.pos[found] = i
	}
	for j, c := range cols {
		if c.Key && h.pos[j] < 0 {
			return h, ErrHeader.With(fmt.Sprintf("缺少主键信息项“%s”(%s)", c.Name, c.MachineName), fmt.Sprintf("the key item %q is missing", c.MachineName))
		}
	}
	return h, nil
}

func opOf(v string) (string, bool) {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "", "upsert", "u", "insert", "update", "新增", "更新":
		return "upsert", true
	case "delete", "d", "删除":
		return "delete", true
	}
	return "", false
}

func hasRule(rule, name string) bool {
	for _, part := range strings.Split(rule, ";") {
		if strings.TrimSpace(part) == name {
			return true
		}
	}
	return false
}

// Submit runs a batch through the pipeline: every record is checked
// against the types and quality rules of the resource's items; records
// that fail go to the quarantine with their reasons; if more fail than the
// batch allows, nothing is applied; otherwise the good records are applied
// in one transaction (inserts, updates and deletes by key, with history
// and lineage) and the batch's report is kept. Rows are streamed through a
// temporary table (stage.go), so memory does not grow with the batch.
func (s *Service) Submit(ctx context.Context, actor policy.Actor, code string, opt SubmitOptions, rows Rows) (Batch, error) {
	r, err := s.ByCode(ctx, code)
	if err != nil {
		return Batch{}, err
	}
	if err := s.authorize(ctx, actor, policy.DataSubmit, r.DeptID, "resource", r.Code); err != nil {
		return Batch{}, err
	}
	cols := r.Visible()
	h, err := mapHeader(rows.Header(), cols)
	if err != nil {
		return Batch{}, err
	}
	chk, err := s.checker(ctx, r.Columns)
	if err != nil {
		return Batch{}, err
	}
	if opt.Source == "" {
		opt.Source = SourceAPI
	}
	if opt.MaxErrors == 0 {
		opt.MaxErrors = DefaultMaxErrors
	}
	b, replay, err := s.openBatch(ctx, actor, r, opt)
	if err != nil || replay {
		return b, err
	}
	// While it runs, the batch renews its lease; a batch whose server
	// died mid-run is taken over when its client sends it again.
	renewed := make(chan struct{})
	go func() {
		t := time.NewTicker(batchLease / 4)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				_, _ = s.db.Exec(context.WithoutCancel(ctx), "UPDATE resource_batches SET started_at = ? WHERE id = ? AND state = 'running'", s.now(), b.ID)
			case <-renewed:
				return
			}
		}
	}()
	res, runErr := s.run(ctx, r, cols, h, chk, b.ID, opt, rows)
	close(renewed)
	if runErr != nil && res.state != "failed" {
		// An error of the platform or of the file: nothing was applied;
		// the batch can be sent again with the same id.
		_, _ = s.db.Exec(context.WithoutCancel(ctx), "UPDATE resource_batches SET state = 'failed', error = ?, finished_at = ? WHERE id = ?",
			runErr.Error(), s.now(), b.ID)
		return Batch{}, runErr
	}
	b, err = s.Batch(ctx, r.Code, b.ID)
	if err != nil {
		return b, err
	}
	details := map[string]any{"batch_id": b.ID, "source": b.Source, "state": b.State, "rows": b.RowsTotal, "inserted": b.Inserted,
		"updated": b.Updated, "unchanged": b.Unchanged, "deleted": b.Deleted, "quarantined": b.Quarantined}
	if err := s.audit.Append(ctx, audit.By(actor, "resource.batch", "resource", r.Code, audit.ResultOK, details)); err != nil {
		return b, err
	}
	return b, runErr
}

// openBatch records a new batch, or finds the earlier one with the same
// client batch id.
func (s *Service) openBatch(ctx context.Context, actor policy.Actor, r Resource, opt SubmitOptions) (Batch, bool, error) {
	var client any
	if opt.ClientBatchID != "" {
		client = opt.ClientBatchID
	}
	var id int64
	err := s.db.QueryRow(ctx, `INSERT INTO resource_batches (resource_id, client_batch_id, source, source_detail, state, submitted_by, submitted_app, started_at)
		VALUES (?, ?, ?, ?, 'running', ?, ?, ?) RETURNING id`, r.ID, client, opt.Source, opt.Detail, actor.UserID, actor.App, s.now()).Scan(&id)
	if err == nil {
		return Batch{ID: id}, false, nil
	}
	if !store.IsUniqueViolation(err) {
		return Batch{}, false, err
	}
	var state string
	if err := s.db.QueryRow(ctx, "SELECT id, state FROM resource_batches WHERE resource_id = ? AND client_batch_id = ?", r.ID, opt.ClientBatchID).Scan(&id, &state); err != nil {
		return Batch{}, false, err
	}
	switch state {
	case "applied":
		b, err := s.Batch(ctx, r.Code, id)
		b.Replayed = true
		return b, true, err
	}
	// A failed attempt is run again under the same id, and so is one
	// still marked running whose lease lapsed: its server stopped, and
	// since a batch is applied and marked applied in one transaction, it
	// left nothing behind.
	now := s.now()
	res, err := s.db.Exec(ctx, `UPDATE resource_batches SET state = 'running', source = ?, source_detail = ?, rows_total = 0, rows_inserted = 0, rows_updated = 0,
		rows_unchanged = 0, rows_deleted = 0, rows_quarantined = 0, report = '', error = '', submitted_by = ?, submitted_app = ?, started_at = ?, finished_at = NULL
		WHERE id = ? AND (state = 'failed' OR state = 'running' AND started_at < ?)`, opt.Source, opt.Detail, actor.UserID, actor.App, now, id, now.Add(-batchLease))
	if err != nil {
		return Batch{}, false, err
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return Batch{}, false, ErrBatchRunning
	}
	return Batch{ID: id}, false, nil
}

// batchLease is how long a running batch counts as running without its
// server renewing it.
const batchLease = 20 * time.Second

type runResult struct{ state string }

// run stages the batch, or loads it into an empty resource, puts
// repeated keys and unique values aside, and applies it unless more
// records failed than the batch allows.
func (s *Service) run(ctx context.Context, r Resource, cols []Column, h header, chk *quality.Checker, batchID int64, opt SubmitOptions, rows Rows) (runResult, error) {
	started := time.Now()
	st, err := s.openStage(ctx, r, cols)
	if err != nil {
		return runResult{}, err
	}
	defer st.close(ctx)
	st.applying = opt.Applying
	if err := s.beginLoad(ctx, st, r, batchID, opt.Source); err != nil {
		return runResult{}, err
	}
	rc, err := s.stageRows(ctx, st, h, chk, opt, rows)
	if err != nil {
		return runResult{}, err
	}
	if rc.total == 0 {
		return runResult{}, ErrEmpty
	}
	phases := []any{"read_check_stage", time.Since(started)}
	if st.load != nil {
		phases[0] = "read_check_load"
		st.load.rows = rc.loaded
		built := time.Now()
		if err := st.endLoad(ctx, r); err != nil {
			return runResult{}, err
		}
		phases = append(phases, "indexes", time.Since(built))
	}
	staged := time.Now()
	rep := &rc.rep
	repeated, err := s.repeats(ctx, st, r, rep, rc)
	if err != nil {
		return runResult{}, err
	}
	bad := rc.bad + repeated
	report, _ := json.Marshal(rep.report())
	checked := time.Now()
	phases = append(phases, "repeats", checked.Sub(staged))
	if opt.MaxErrors > 0 && bad > int64(opt.MaxErrors) {
		// Nothing is applied; a load gives the table back first (on
		// SQLite its lock).
		st.close(ctx)
		msg := fmt.Sprintf("问题记录超过上限(%d)，整批未入库 / more records failed than the batch allows (%d): nothing was applied", opt.MaxErrors, opt.MaxErrors)
		_, err := s.db.Exec(ctx, `UPDATE resource_batches SET state = 'failed', rows_total = ?, rows_quarantined = ?, report = ?, error = ?, finished_at = ? WHERE id = ?`,
			rc.total, bad, string(report), msg, s.now(), batchID)
		if err != nil {
			return runResult{}, err
		}
		return runResult{state: "failed"}, ErrTooManyErrors.With(
			fmt.Sprintf("%d条记录未通过检查，超过本批次允许的%d条，整批未入库；请查看质量报告修正后重新提交", bad, opt.MaxErrors),
			fmt.Sprintf("%d records failed the checks, more than the %d the batch allows; nothing was applied. Fix them as the quality report says and send the batch again", bad, opt.MaxErrors))
	}
	if st.load != nil {
		err = s.applyLoad(ctx, st, r, batchID, rc.total, bad, report)
	} else {
		err = s.apply(ctx, st, r, batchID, opt.Source, rc.total, bad, report)
	}
	if err != nil {
		return runResult{}, err
	}
	phases = append(phases, "apply", time.Since(checked))
	s.log.Info("resource batch applied", append([]any{"resource", r.Code, "batch", batchID, "rows", rc.total, "quarantined", bad,
		"loaded", st.load != nil}, phases...)...)
	return runResult{state: "applied"}, nil
}

// ErrTooManyErrors refuses a batch with more bad records than it allows.
var ErrTooManyErrors = apperr.New(http.StatusUnprocessableEntity, "resource.too_many_errors", "问题记录过多，整批未入库", "too many records failed; nothing was applied")

// differs is true when a stored row differs from the incoming one in any
// visible column.
func differs(d store.Dialect, a, b string, cols []Column) string {
	op := " IS NOT "
	if d == store.Postgres {
		op = " IS DISTINCT FROM "
	}
	parts := make([]string, len(cols))
	for i, c := range cols {
		parts[i] = a + "." + quote(c.MachineName) + op + b + "." + quote(c.MachineName)
	}
	return "(" + strings.Join(parts, " OR ") + ")"
}

func keyMatch(a, b string, cols []Column) string {
	var parts []string
	for _, c := range cols {
		if c.Key {
			parts = append(parts, a+"."+quote(c.MachineName)+" = "+b+"."+quote(c.MachineName))
		}
	}
	return strings.Join(parts, " AND ")
}

const batchCols = `b.id, r.code, COALESCE(b.client_batch_id, ''), b.source, b.source_detail, b.state, b.rows_total, b.rows_inserted, b.rows_updated,
	b.rows_unchanged, b.rows_deleted, b.rows_quarantined, b.report, b.error, b.started_at, b.finished_at`

func scanBatch(row store.Row) (Batch, error) {
	var b Batch
	var report string
	var finished sql.NullTime
	err := row.Scan(&b.ID, &b.ResourceCode, &b.ClientBatchID, &b.Source, &b.Detail, &b.State, &b.RowsTotal, &b.Inserted, &b.Updated,
		&b.Unchanged, &b.Deleted, &b.Quarantined, &report, &b.Error, &b.StartedAt, &finished)
	if err != nil {
		return b, err
	}
	b.Report = QualityReport{Rules: []RuleCount{}}
	if report != "" {
		if err := json.Unmarshal([]byte(report), &b.Report); err != nil {
			return b, err
		}
	}
	b.FinishedAt = finished.Time.UTC()
	return b, nil
}

// Batch returns one batch of a resource.
func (s *Service) Batch(ctx context.Context, code string, id int64) (Batch, error) {
	b, err := scanBatch(s.db.QueryRow(ctx, "SELECT "+batchCols+" FROM resource_batches b JOIN resources r ON r.id = b.resource_id WHERE r.code = ? AND b.id = ?", code, id))
	if errors.Is(err, sql.ErrNoRows) {
		return b, apperr.ErrNotFound
	}
	return b, err
}

// Batches lists a resource's latest batches.
func (s *Service) Batches(ctx context.Context, actor policy.Actor, code string, limit int) ([]Batch, error) {
	r, err := s.ByCode(ctx, code)
	if err != nil {
		return nil, err
	}
	if err := s.authorize(ctx, actor, policy.DataView, r.DeptID, "resource", r.Code); err != nil {
		return nil, err
	}
	if limit <= 0 || limit > 500 {
		limit = 50
	}
	return store.All(ctx, s.db, scanBatch, "SELECT "+batchCols+" FROM resource_batches b JOIN resources r ON r.id = b.resource_id WHERE b.resource_id = ? ORDER BY b.id DESC LIMIT ?", r.ID, limit)
}

// BatchFor returns one batch to those who may see the resource's batches.
func (s *Service) BatchFor(ctx context.Context, actor policy.Actor, code string, id int64) (Batch, error) {
	r, err := s.ByCode(ctx, code)
	if err != nil {
		return Batch{}, err
	}
	if err := s.authorize(ctx, actor, policy.DataView, r.DeptID, "resource", r.Code); err != nil {
		return Batch{}, err
	}
	return s.Batch(ctx, code, id)
}

// LatestReport returns a resource's last applied batch, for its quality
// report on the entry page: counts per item and rule and row numbers, no
// values.
func (s *Service) LatestReport(ctx context.Context, code string) (Batch, error) {
	b, err := scanBatch(s.db.QueryRow(ctx, "SELECT "+batchCols+` FROM resource_batches b JOIN resources r ON r.id = b.resource_id
		WHERE r.code = ? AND b.state = 'applied' AND b.source <> 'quarantine' ORDER BY b.id DESC LIMIT 1`, code))
	if errors.Is(err, sql.ErrNoRows) {
		return b, apperr.ErrNotFound
	}
	return b, err
}
