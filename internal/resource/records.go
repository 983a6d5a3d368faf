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
	"govshare/internal/mask"
	"govshare/internal/policy"
	"govshare/internal/quality"
	"govshare/internal/store"
)

// Record is one record as shown: values of the visible columns, with its
// lineage.
type Record struct {
	Values       []string  `json:"values"`
	Key          []string  `json:"key" doc:"主键值 / key values"`
	BatchCreated int64     `json:"batch_created" doc:"创建它的批次 / batch that created it"`
	BatchUpdated int64     `json:"batch_updated" doc:"最后修改它的批次 / batch that last changed it"`
	Source       Source    `json:"source" doc:"最后一次来源 / source of the last change"`
	CreatedAt    time.Time `json:"created_at"`
	UpdatedAt    time.Time `json:"updated_at"`
}

// Preview is the first records of a resource, masked by the items' rules.
type Preview struct {
	Columns []Column `json:"columns"`
	Records []Record `json:"records"`
}

// Previewer masks values for previews.
type Previewer = *mask.Masker

// Preview returns the first n live records, each value masked by its
// item's masking rule. Any logged-in person of a government department
// may look; apps may not, and every look is audited.
func (s *Service) Preview(ctx context.Context, actor policy.Actor, code string, n int, m *mask.Masker) (Preview, error) {
	r, err := s.ByCode(ctx, code)
	if err != nil {
		return Preview{}, err
	}
	if err := s.authorize(ctx, actor, policy.DataPreview, r.DeptID, "resource", r.Code); err != nil {
		return Preview{}, err
	}
	if n <= 0 || n > 50 {
		n = 10
	}
	cols := r.Visible()
	rules := make([]mask.Rule, len(cols))
	for i, c := range cols {
		if rules[i], err = mask.Parse(c.MaskRule); err != nil {
			return Preview{}, err
		}
	}
	recs, err := s.records(ctx, r, cols, `"_deleted_at" IS NULL ORDER BY "_updated_at" DESC`, n)
	if err != nil {
		return Preview{}, err
	}
	for i := range recs {
		for j := range recs[i].Values {
			recs[i].Values[j] = m.Apply(rules[j], recs[i].Values[j])
		}
		// The key is masked as its column is; lineage links use the
		// record's position, never its unmasked key.
		recs[i].Key = nil
	}
	if err := s.audit.Append(ctx, audit.By(actor, "resource.preview", "resource", r.Code, audit.ResultOK, map[string]any{"records": len(recs)})); err != nil {
		return Preview{}, err
	}
	return Preview{Columns: cols, Records: recs}, nil
}

// records reads records of a resource; where is SQL over the main table.
func (s *Service) records(ctx context.Context, r Resource, cols []Column, where string, limit int, args ...any) ([]Record, error) {
	d := s.db.Dialect()
	sel := make([]string, len(cols))
	for i, c := range cols {
		sel[i] = selectExpr(d, "", c)
	}
	q := fmt.Sprintf(`SELECT %s, "_batch_created", "_batch_updated", "_source", "_created_at", "_updated_at" FROM %s WHERE %s LIMIT ?`,
		strings.Join(sel, ", "), tablesOf(r.Table).main, where)
	keys := keyPositions(cols)
	return store.All(ctx, s.db, func(row store.Row) (Record, error) {
		var rec Record
		vals := canonicalTexts(cols)
		dest := make([]any, 0, len(cols)+5)
		for i := range vals {
			dest = append(dest, &vals[i])
		}
		dest = append(dest, &rec.BatchCreated, &rec.BatchUpdated, &rec.Source, &rec.CreatedAt, &rec.UpdatedAt)
		if err := row.Scan(dest...); err != nil {
			return rec, err
		}
		rec.Values = make([]string, len(cols))
		for i, v := range vals {
			rec.Values[i] = v.String
		}
		for _, k := range keys {
			rec.Key = append(rec.Key, rec.Values[k])
		}
		return rec, nil
	}, q, append(args, limit)...)
}

func keyPositions(cols []Column) []int {
	var out []int
	for i, c := range cols {
		if c.Key {
			out = append(out, i)
		}
	}
	return out
}

// RecordVersion is one state of a record in its history.
type RecordVersion struct {
	Op     string    `json:"op" doc:"insert / update / delete"`
	Values []string  `json:"values"`
	Batch  int64     `json:"batch"`
	Source Source    `json:"source"`
	At     time.Time `json:"at"`
}

// ErrKeyArity is returned when a key lookup names the wrong number of values.
var ErrKeyArity = apperr.Invalid("resource.key_invalid", "key", "主键值的个数与主键信息项不符", "the key values do not match the key items")

// History returns every state a record took (数据追溯), oldest first, for
// its provider and the platform administrators; at, when set, keeps only
// the states up to that time, so the last one is what the record said
// then. The states are the history table's, which holds the states a
// record left behind, followed by its current state in the records table.
func (s *Service) History(ctx context.Context, actor policy.Actor, code string, key []string, at time.Time) ([]RecordVersion, []Column, error) {
	r, err := s.ByCode(ctx, code)
	if err != nil {
		return nil, nil, err
	}
	if err := s.authorize(ctx, actor, policy.DataView, r.DeptID, "resource", r.Code); err != nil {
		return nil, nil, err
	}
	cols := r.Visible()
	keys := r.Keys()
	if len(key) != len(keys) {
		return nil, nil, ErrKeyArity
	}
	d := s.db.Dialect()
	sel := make([]string, len(cols))
	for i, c := range cols {
		sel[i] = selectExpr(d, "", c)
	}
	var where []string
	args := []any{}
	for i, c := range keys {
		where = append(where, quote(c.MachineName)+" = ?")
		v, err := dbValue(c, key[i])
		if err != nil {
			return nil, nil, ErrKeyArity
		}
		args = append(args, v)
	}
	t := tablesOf(r.Table)
	scan := func(row store.Row) (RecordVersion, error) {
		var v RecordVersion
		vals := canonicalTexts(cols)
		dest := make([]any, 0, len(cols)+4)
		for i := range vals {
			dest = append(dest, &vals[i])
		}
		dest = append(dest, &v.Op, &v.Batch, &v.Source, &v.At)
		if err := row.Scan(dest...); err != nil {
			return v, err
		}
		for _, x := range vals {
			v.Values = append(v.Values, x.String)
		}
		v.At = v.At.UTC()
		return v, nil
	}
	cond := strings.Join(where, " AND ")
	past, err := store.All(ctx, s.db, scan, fmt.Sprintf(`SELECT %s, "_op", "_batch", "_source", "_at" FROM %s WHERE %s ORDER BY "_hid"`,
		strings.Join(sel, ", "), t.hist, cond), args...)
	if err != nil {
		return nil, nil, err
	}
	current, err := store.All(ctx, s.db, scan, fmt.Sprintf(`SELECT %s, CASE WHEN "_deleted_at" IS NULL THEN 'current' ELSE 'delete' END,
		"_batch_updated", "_source", "_updated_at" FROM %s WHERE %s`, strings.Join(sel, ", "), t.main, cond), args...)
	if err != nil {
		return nil, nil, err
	}
	var vs []RecordVersion
	for _, v := range versions(append(past, current...)) {
		if at.IsZero() || !v.At.After(at) {
			vs = append(vs, v)
		}
	}
	if err := s.audit.Append(ctx, audit.By(actor, "resource.history", "resource", r.Code, audit.ResultOK, map[string]any{"versions": len(vs)})); err != nil {
		return nil, nil, err
	}
	return vs, cols, nil
}

// versions turns a record's states, oldest first, into its versions. A
// batch writes one state of a record, so two states in a row from the
// same batch are one (tables mounted before kept the current state in the
// history too). What made each state follows from the states before: a
// delete is stored as such; a record's first state, or its first after a
// delete, is an insert; any other an update.
func versions(states []RecordVersion) []RecordVersion {
	var out []RecordVersion
	for _, v := range states {
		if n := len(out); n > 0 && out[n-1].Batch == v.Batch {
			continue
		}
		switch n := len(out); {
		case v.Op == "delete":
		case n == 0 || out[n-1].Op == "delete":
			v.Op = "insert"
		default:
			v.Op = "update"
		}
		out = append(out, v)
	}
	return out
}

// Quarantined is a record put aside by a batch (问题数据), with its reasons.
type Quarantined struct {
	ID         int64               `json:"id"`
	BatchID    int64               `json:"batch_id"`
	Row        int64               `json:"row" doc:"在批次中的行号 / row in its batch"`
	Op         string              `json:"op"`
	Values     []string            `json:"values" doc:"原始值 / values as received"`
	Violations []quality.Violation `json:"violations"`
	State      string              `json:"state" doc:"open / resubmitted / discarded"`
	Reason     string              `json:"reason,omitempty" doc:"丢弃理由 / why it was discarded"`
	CreatedAt  time.Time           `json:"created_at"`
}

func scanQuarantined(row store.Row) (Quarantined, error) {
	var q Quarantined
	var vals, viol string
	if err := row.Scan(&q.ID, &q.BatchID, &q.Row, &q.Op, &vals, &viol, &q.State, &q.Reason, &q.CreatedAt); err != nil {
		return q, err
	}
	if err := json.Unmarshal([]byte(vals), &q.Values); err != nil {
		return q, err
	}
	return q, json.Unmarshal([]byte(viol), &q.Violations)
}

const quarantineCols = "id, batch_id, row_no, op, vals, violations, state, reason, created_at"

// Quarantine lists a resource's records put aside; state "" lists the
// open ones.
func (s *Service) Quarantine(ctx context.Context, actor policy.Actor, code, state string, limit int) ([]Quarantined, error) {
	r, err := s.ByCode(ctx, code)
	if err != nil {
		return nil, err
	}
	if err := s.authorize(ctx, actor, policy.DataView, r.DeptID, "resource", r.Code); err != nil {
		return nil, err
	}
	if state == "" {
		state = "open"
	}
	if limit <= 0 || limit > 1000 {
		limit = 200
	}
	return store.All(ctx, s.db, scanQuarantined, "SELECT "+quarantineCols+" FROM resource_quarantine WHERE resource_id = ? AND state = ? ORDER BY id LIMIT ?", r.ID, state, limit)
}

// Errors of the quarantine.
var (
	ErrQuarantineState = apperr.New(http.StatusConflict, "resource.quarantine_state", "该问题数据已处理", "this record was already dealt with")
	ErrDiscardReason   = apperr.Invalid("resource.discard_reason_required", "reason", "丢弃问题数据须说明理由", "discarding a record needs a reason")
	ErrStillInvalid    = apperr.Invalid("resource.record_invalid", "values", "修正后的记录仍未通过检查", "the corrected record still fails the checks")
)

func (s *Service) quarantined(ctx context.Context, actor policy.Actor, code string, id int64) (Resource, Quarantined, error) {
	r, err := s.ByCode(ctx, code)
	if err != nil {
		return r, Quarantined{}, err
	}
	if err := s.authorize(ctx, actor, policy.DataSubmit, r.DeptID, "resource", r.Code); err != nil {
		return r, Quarantined{}, err
	}
	q, err := scanQuarantined(s.db.QueryRow(ctx, "SELECT "+quarantineCols+" FROM resource_quarantine WHERE id = ? AND resource_id = ?", id, r.ID))
	if errors.Is(err, sql.ErrNoRows) {
		return r, q, apperr.ErrNotFound
	} else if err != nil {
		return r, q, err
	}
	if q.State != "open" {
		return r, q, ErrQuarantineState
	}
	return r, q, nil
}

// Resubmit sends a corrected quarantined record through the pipeline as a
// batch of its own. A record that still fails is refused with its
// violations and stays in the quarantine.
func (s *Service) Resubmit(ctx context.Context, actor policy.Actor, code string, id int64, values []string) (Batch, []quality.Violation, error) {
	r, q, err := s.quarantined(ctx, actor, code, id)
	if err != nil {
		return Batch{}, nil, err
	}
	cols := r.Visible()
	if len(values) != len(cols) {
		return Batch{}, nil, ErrStillInvalid
	}
	chk, err := s.checker(ctx, r.Columns)
	if err != nil {
		return Batch{}, nil, err
	}
	if _, viol := chk.Check(values); len(viol) > 0 && q.Op != "delete" {
		return Batch{}, viol, ErrStillInvalid
	}
	header := make([]string, len(cols)+1)
	for i, c := range cols {
		header[i] = c.MachineName
	}
	header[len(cols)] = "_op"
	b, err := s.Submit(ctx, actor, code, SubmitOptions{Source: SourceQuarantine, Detail: fmt.Sprintf("quarantine #%d", id), MaxErrors: -1},
		&sliceRows{header: header, rows: [][]string{append(append([]string(nil), values...), q.Op)}})
	if err != nil {
		return b, nil, err
	}
	if b.Quarantined > 0 {
		// It clashed with another record (a repeated unique value): the
		// new quarantine entry holds it now.
		_, _ = s.db.Exec(ctx, "UPDATE resource_quarantine SET state = 'resubmitted', resubmitted_batch_id = ?, resolved_by = ?, resolved_at = ? WHERE id = ?",
			b.ID, actor.UserID, s.now(), id)
		return b, nil, nil
	}
	if _, err := s.db.Exec(ctx, "UPDATE resource_quarantine SET state = 'resubmitted', resubmitted_batch_id = ?, resolved_by = ?, resolved_at = ? WHERE id = ? AND state = 'open'",
		b.ID, actor.UserID, s.now(), id); err != nil {
		return b, nil, err
	}
	return b, nil, nil
}

// Discard closes a quarantined record without loading it; a reason is
// required and kept.
func (s *Service) Discard(ctx context.Context, actor policy.Actor, code string, id int64, reason string) error {
	r, _, err := s.quarantined(ctx, actor, code, id)
	if err != nil {
		return err
	}
	reason = strings.TrimSpace(reason)
	if reason == "" {
		return ErrDiscardReason
	}
	res, err := s.db.Exec(ctx, "UPDATE resource_quarantine SET state = 'discarded', reason = ?, resolved_by = ?, resolved_at = ? WHERE id = ? AND state = 'open'",
		reason, actor.UserID, s.now(), id)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return ErrQuarantineState
	}
	return s.audit.Append(ctx, audit.By(actor, "resource.quarantine.discard", "resource", r.Code, audit.ResultOK, map[string]any{"quarantine_id": id, "reason": reason}))
}

// sliceRows serves rows held in memory (a single corrected record).
type sliceRows struct {
	header []string
	rows   [][]string
	i      int
}

func (r *sliceRows) Header() []string { return r.header }

func (r *sliceRows) Next() ([]string, error) {
	if r.i >= len(r.rows) {
		return nil, errEOF
	}
	r.i++
	return r.rows[r.i-1], nil
}
