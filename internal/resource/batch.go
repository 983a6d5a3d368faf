package resource

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"govshare/internal/apperr"
	"govshare/internal/audit"
	"govshare/internal/calendar"
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
// last row. A column named _op holds "upsert" (the default) or "delete".
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
	// Progress, when set, is told the number of rows read so far.
	Progress func(rows int64)
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
// and lineage) and the batch's report is kept.
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
	res, runErr := s.run(ctx, r, cols, h, chk, b.ID, opt, rows)
	if runErr != nil && res.state != "failed" {
		// An error of the platform, not of the data: nothing was applied;
		// the batch can be sent again with the same id.
		s.cleanup(context.WithoutCancel(ctx), r, b.ID)
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
	case "running":
		return Batch{}, false, ErrBatchRunning
	}
	// A failed attempt is run again under the same id.
	res, err := s.db.Exec(ctx, `UPDATE resource_batches SET state = 'running', source = ?, source_detail = ?, rows_total = 0, rows_inserted = 0, rows_updated = 0,
		rows_unchanged = 0, rows_deleted = 0, rows_quarantined = 0, report = '', error = '', submitted_by = ?, submitted_app = ?, started_at = ?, finished_at = NULL
		WHERE id = ? AND state = 'failed'`, opt.Source, opt.Detail, actor.UserID, actor.App, s.now(), id)
	if err != nil {
		return Batch{}, false, err
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return Batch{}, false, ErrBatchRunning
	}
	return Batch{ID: id}, false, nil
}

type runResult struct{ state string }

// chunk is how many rows are staged per transaction.
const chunk = 500

func (s *Service) run(ctx context.Context, r Resource, cols []Column, h header, chk *quality.Checker, batchID int64, opt SubmitOptions, rows Rows) (runResult, error) {
	t := tablesOf(r.Table)
	d := s.db.Dialect()
	names := make([]string, len(cols))
	var keyIdx []int
	for i, c := range cols {
		names[i] = quote(c.MachineName)
		if c.Key {
			keyIdx = append(keyIdx, i)
		}
	}
	insertStage := store.RebindFor(d, fmt.Sprintf(`INSERT INTO %s ("_batch", "_row", "_op", %s) VALUES (?, ?, ?, %s) ON CONFLICT DO NOTHING`,
		t.stage, strings.Join(names, ", "), store.Placeholders(len(cols))))
	insertQuarantine := `INSERT INTO resource_quarantine (resource_id, batch_id, row_no, op, vals, violations, state, created_at) VALUES (?, ?, ?, ?, ?, ?, 'pending', ?)`
	var rep reportBuilder
	var total, bad int64
	now := s.now()
	type pending struct {
		row        int64
		op         string
		raw, canon []string
		viol       []quality.Violation
	}
	buf := make([]pending, 0, chunk)
	flush := func() error {
		if len(buf) == 0 {
			return nil
		}
		err := s.db.InTx(ctx, func(tx *store.Tx) error {
			for _, p := range buf {
				if len(p.viol) == 0 {
					args := make([]any, 0, 3+len(cols))
					args = append(args, batchID, p.row, p.op)
					for i, c := range cols {
						v := p.canon[i]
						if p.op == "delete" && !c.Key {
							v = ""
						}
						dv, err := dbValue(c, v)
						if err != nil {
							return fmt.Errorf("row %d %s: %w", p.row, c.MachineName, err)
						}
						args = append(args, dv)
					}
					res, err := tx.Exec(ctx, insertStage, args...)
					if err != nil {
						return fmt.Errorf("stage row %d: %w", p.row, err)
					}
					if n, _ := res.RowsAffected(); n == 1 {
						continue
					}
					// The same key earlier in this batch.
					p.viol = []quality.Violation{{Item: cols[keyIdx[0]].MachineName, Rule: "duplicate_key",
						ZH: "主键与本批次前面的记录重复", EN: "the key repeats an earlier record of this batch"}}
				}
				vals, _ := json.Marshal(p.raw)
				viol, _ := json.Marshal(p.viol)
				if _, err := tx.Exec(ctx, insertQuarantine, r.ID, batchID, p.row, p.op, string(vals), string(viol), now); err != nil {
					return err
				}
				bad++
				for _, v := range p.viol {
					rep.add(p.row, v)
				}
			}
			return nil
		})
		buf = buf[:0]
		return err
	}
	for {
		in, err := rows.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return runResult{}, err
		}
		total++
		raw := make([]string, len(cols))
		for i, p := range h.pos {
			if p >= 0 && p < len(in) {
				raw[i] = in[p]
			}
		}
		op := "upsert"
		var viol []quality.Violation
		if h.op >= 0 && h.op < len(in) {
			var ok bool
			if op, ok = opOf(in[h.op]); !ok {
				op = "upsert"
				viol = append(viol, quality.Violation{Item: "_op", Rule: "op", ZH: "操作应为 upsert 或 delete", EN: "the operation is upsert or delete"})
			}
		}
		canon, v := chk.Check(raw)
		for _, x := range v {
			// A delete needs only its key.
			if op == "delete" && !slices.ContainsFunc(keyIdx, func(i int) bool { return cols[i].MachineName == x.Item }) {
				continue
			}
			viol = append(viol, x)
		}
		for _, i := range keyIdx {
			if canon[i] == "" && !slices.ContainsFunc(viol, func(x quality.Violation) bool { return x.Item == cols[i].MachineName }) {
				viol = append(viol, quality.Violation{Item: cols[i].MachineName, Rule: "required", ZH: "主键不能为空", EN: "the key is required"})
			}
		}
		buf = append(buf, pending{row: total, op: op, raw: raw, canon: canon, viol: viol})
		if len(buf) == chunk {
			if err := flush(); err != nil {
				return runResult{}, err
			}
			if opt.Progress != nil {
				opt.Progress(total)
			}
			if opt.MaxErrors > 0 && bad > int64(opt.MaxErrors) {
				break
			}
		}
	}
	if err := flush(); err != nil {
		return runResult{}, err
	}
	if opt.Progress != nil {
		opt.Progress(total)
	}
	if total == 0 {
		return runResult{}, ErrEmpty
	}
	uniq, err := s.quarantineUniqueClashes(ctx, r, cols, batchID, &rep)
	if err != nil {
		return runResult{}, err
	}
	bad += uniq
	report, _ := json.Marshal(rep.report())
	if opt.MaxErrors > 0 && bad > int64(opt.MaxErrors) {
		s.cleanup(ctx, r, batchID)
		msg := fmt.Sprintf("问题记录超过上限(%d)，整批未入库 / more records failed than the batch allows (%d): nothing was applied", opt.MaxErrors, opt.MaxErrors)
		_, err := s.db.Exec(ctx, `UPDATE resource_batches SET state = 'failed', rows_total = ?, rows_quarantined = ?, report = ?, error = ?, finished_at = ? WHERE id = ?`,
			total, bad, string(report), msg, s.now(), batchID)
		if err != nil {
			return runResult{}, err
		}
		return runResult{state: "failed"}, ErrTooManyErrors.With(
			fmt.Sprintf("%d条记录未通过检查，超过本批次允许的%d条，整批未入库；请查看质量报告修正后重新提交", bad, opt.MaxErrors),
			fmt.Sprintf("%d records failed the checks, more than the %d the batch allows; nothing was applied. Fix them as the quality report says and send the batch again", bad, opt.MaxErrors))
	}
	return runResult{state: "applied"}, s.apply(ctx, r, cols, batchID, opt.Source, total, bad, report)
}

// ErrTooManyErrors refuses a batch with more bad records than it allows.
var ErrTooManyErrors = apperr.New(http.StatusUnprocessableEntity, "resource.too_many_errors", "问题记录过多，整批未入库", "too many records failed; nothing was applied")

// cleanup removes what a batch that is not applied left behind.
func (s *Service) cleanup(ctx context.Context, r Resource, batchID int64) {
	_ = s.db.InTx(ctx, func(tx *store.Tx) error {
		if _, err := tx.Exec(ctx, `DELETE FROM `+tablesOf(r.Table).stage+` WHERE "_batch" = ?`, batchID); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, "DELETE FROM resource_quarantine WHERE batch_id = ? AND state = 'pending'", batchID)
		return err
	})
}

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

// quarantineUniqueClashes moves staged rows whose value of a column that
// must be unique repeats an earlier row of the batch, or a live record
// with another key, to the quarantine.
func (s *Service) quarantineUniqueClashes(ctx context.Context, r Resource, cols []Column, batchID int64, rep *reportBuilder) (int64, error) {
	t := tablesOf(r.Table)
	d := s.db.Dialect()
	var n int64
	for _, c := range s.uniqueColumns(cols) {
		col := quote(c.MachineName)
		sel := make([]string, len(cols))
		for i, x := range cols {
			sel[i] = selectExpr(d, "s.", x)
		}
		q := fmt.Sprintf(`SELECT s."_row", %s FROM %s s WHERE s."_batch" = ? AND s."_op" = 'upsert' AND s.%s IS NOT NULL AND (
			EXISTS (SELECT 1 FROM %s s2 WHERE s2."_batch" = s."_batch" AND s2."_op" = 'upsert' AND s2.%s = s.%s AND s2."_row" < s."_row")
			OR EXISTS (SELECT 1 FROM %s t WHERE t.%s = s.%s AND t."_deleted_at" IS NULL AND NOT (%s)))`,
			strings.Join(sel, ", "), t.stage, col, t.stage, col, col, t.main, col, col, keyMatch("t", "s", cols))
		type clash struct {
			row  int64
			vals []string
		}
		clashes, err := store.All(ctx, s.db, func(row store.Row) (clash, error) {
			var c clash
			vals := make([]sql.NullString, len(cols))
			dest := []any{&c.row}
			for i := range vals {
				dest = append(dest, &vals[i])
			}
			err := row.Scan(dest...)
			for _, v := range vals {
				c.vals = append(c.vals, v.String)
			}
			return c, err
		}, q, batchID)
		if err != nil {
			return n, err
		}
		if len(clashes) == 0 {
			continue
		}
		v := quality.Violation{Item: c.MachineName, Rule: "unique", ZH: "该值在资源中已存在(须唯一)", EN: "the value already exists in the resource (must be unique)"}
		viol, _ := json.Marshal([]quality.Violation{v})
		err = s.db.InTx(ctx, func(tx *store.Tx) error {
			for _, x := range clashes {
				vals, _ := json.Marshal(x.vals)
				if _, err := tx.Exec(ctx, `INSERT INTO resource_quarantine (resource_id, batch_id, row_no, op, vals, violations, state, created_at)
					VALUES (?, ?, ?, 'upsert', ?, ?, 'pending', ?)`, r.ID, batchID, x.row, string(vals), string(viol), s.now()); err != nil {
					return err
				}
				if _, err := tx.Exec(ctx, `DELETE FROM `+t.stage+` WHERE "_batch" = ? AND "_row" = ?`, batchID, x.row); err != nil {
					return err
				}
				rep.add(x.row, v)
			}
			return nil
		})
		if err != nil {
			return n, err
		}
		n += int64(len(clashes))
	}
	return n, nil
}

// apply writes a staged batch into the resource in one transaction.
func (s *Service) apply(ctx context.Context, r Resource, cols []Column, batchID int64, source Source, total, bad int64, report []byte) error {
	t := tablesOf(r.Table)
	d := s.db.Dialect()
	now := s.now()
	names := make([]string, len(cols))
	sNames := make([]string, len(cols))
	tNames := make([]string, len(cols))
	sets := make([]string, len(cols))
	for i, c := range cols {
		names[i] = quote(c.MachineName)
		sNames[i] = "s." + names[i]
		tNames[i] = "t." + names[i]
		sets[i] = names[i] + " = excluded." + names[i]
	}
	var keyNames []string
	for _, c := range cols {
		if c.Key {
			keyNames = append(keyNames, quote(c.MachineName))
		}
	}
	match := keyMatch("t", "s", cols)
	firstKey := "t." + keyNames[0]
	live := fmt.Sprintf(`EXISTS (SELECT 1 FROM %s t WHERE %s AND t."_deleted_at" IS NULL)`, t.main, match)
	var inserted, unchanged, upserts, deleted int64
	return s.db.InTx(ctx, func(tx *store.Tx) error {
		count := func(q string, dst *int64) error {
			return tx.QueryRow(ctx, q, batchID).Scan(dst)
		}
		if err := count(fmt.Sprintf(`SELECT COUNT(*) FROM %s s WHERE s."_batch" = ? AND s."_op" = 'upsert'`, t.stage), &upserts); err != nil {
			return err
		}
		if err := count(fmt.Sprintf(`SELECT COUNT(*) FROM %s s WHERE s."_batch" = ? AND s."_op" = 'upsert' AND NOT %s`, t.stage, live), &inserted); err != nil {
			return err
		}
		if err := count(fmt.Sprintf(`SELECT COUNT(*) FROM %s s JOIN %s t ON %s WHERE s."_batch" = ? AND s."_op" = 'upsert' AND t."_deleted_at" IS NULL AND NOT %s`,
			t.stage, t.main, match, differs(d, "t", "s", cols)), &unchanged); err != nil {
			return err
		}
		if err := count(fmt.Sprintf(`SELECT COUNT(*) FROM %s s WHERE s."_batch" = ? AND s."_op" = 'delete' AND %s`, t.stage, live), &deleted); err != nil {
			return err
		}
		// History first, while the table still shows the old state.
		if _, err := tx.Exec(ctx, fmt.Sprintf(`INSERT INTO %s (%s, "_op", "_batch", "_source", "_at")
			SELECT %s, CASE WHEN %s IS NULL OR t."_deleted_at" IS NOT NULL THEN 'insert' ELSE 'update' END, ?, ?, ?
			FROM %s s LEFT JOIN %s t ON %s
			WHERE s."_batch" = ? AND s."_op" = 'upsert' AND (%s IS NULL OR t."_deleted_at" IS NOT NULL OR %s)`,
			t.hist, strings.Join(names, ", "), strings.Join(sNames, ", "), firstKey, t.stage, t.main, match, firstKey, differs(d, "t", "s", cols)),
			batchID, source, now, batchID); err != nil {
			return fmt.Errorf("history of changes: %w", err)
		}
		if _, err := tx.Exec(ctx, fmt.Sprintf(`INSERT INTO %s (%s, "_op", "_batch", "_source", "_at")
			SELECT %s, 'delete', ?, ?, ? FROM %s t JOIN %s s ON %s WHERE s."_batch" = ? AND s."_op" = 'delete' AND t."_deleted_at" IS NULL`,
			t.hist, strings.Join(names, ", "), strings.Join(tNames, ", "), t.main, t.stage, match), batchID, source, now, batchID); err != nil {
			return fmt.Errorf("history of deletes: %w", err)
		}
		if _, err := tx.Exec(ctx, fmt.Sprintf(`INSERT INTO %s AS t (%s, "_batch_created", "_batch_updated", "_source", "_created_at", "_updated_at", "_deleted_at")
			SELECT %s, ?, ?, ?, ?, ?, NULL FROM %s s WHERE s."_batch" = ? AND s."_op" = 'upsert'
			ON CONFLICT (%s) DO UPDATE SET %s, "_batch_updated" = excluded."_batch_updated", "_source" = excluded."_source",
				"_updated_at" = excluded."_updated_at", "_deleted_at" = NULL
			WHERE t."_deleted_at" IS NOT NULL OR %s`,
			t.main, strings.Join(names, ", "), strings.Join(sNames, ", "), t.stage, strings.Join(keyNames, ", "), strings.Join(sets, ", "),
			differs(d, "t", "excluded", cols)), batchID, batchID, source, now, now, batchID); err != nil {
			return fmt.Errorf("upsert: %w", err)
		}
		// Deletes are recorded, not lost: the record stays, marked deleted,
		// and its last state is in the history.
		if _, err := tx.Exec(ctx, fmt.Sprintf(`UPDATE %s SET "_deleted_at" = ?, "_batch_updated" = ?, "_source" = ?, "_updated_at" = ?
			WHERE "_deleted_at" IS NULL AND EXISTS (SELECT 1 FROM %s s WHERE s."_batch" = ? AND s."_op" = 'delete' AND %s)`,
			t.main, t.stage, strings.ReplaceAll(match, "t.", t.main+".")), now, batchID, source, now, batchID); err != nil {
			return fmt.Errorf("delete: %w", err)
		}
		if _, err := tx.Exec(ctx, `DELETE FROM `+t.stage+` WHERE "_batch" = ?`, batchID); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "UPDATE resource_quarantine SET state = 'open' WHERE batch_id = ? AND state = 'pending'", batchID); err != nil {
			return err
		}
		updated := upserts - inserted - unchanged
		if _, err := tx.Exec(ctx, `UPDATE resource_batches SET state = 'applied', rows_total = ?, rows_inserted = ?, rows_updated = ?, rows_unchanged = ?,
			rows_deleted = ?, rows_quarantined = ?, report = ?, finished_at = ? WHERE id = ?`,
			total, inserted, updated, unchanged, deleted, bad, string(report), now, batchID); err != nil {
			return err
		}
		var records int64
		if err := tx.QueryRow(ctx, `SELECT COUNT(*) FROM `+t.main+` WHERE "_deleted_at" IS NULL`).Scan(&records); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE resources SET record_count = ?, received_count = received_count + ?, passed_count = passed_count + ?,
			last_update_at = ? WHERE id = ?`, records, total, total-bad, now, r.ID); err != nil {
			return err
		}
		day := now.In(calendar.CST).Format("2006-01-02")
		_, err := tx.Exec(ctx, `INSERT INTO resource_daily (resource_id, day, records_in) VALUES (?, ?, ?)
			ON CONFLICT (resource_id, day) DO UPDATE SET records_in = resource_daily.records_in + excluded.records_in`, r.ID, day, total-bad)
		return err
	})
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
