package resource

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"govshare/internal/calendar"
	"govshare/internal/quality"
	"govshare/internal/store"
)

// querier runs '?' SQL on the stage's connection or a transaction on it.
type querier struct {
	q interface {
		ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
		QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
		QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	}
	d store.Dialect
}

func (q querier) exec(ctx context.Context, s string, args ...any) (sql.Result, error) {
	return q.q.ExecContext(ctx, store.RebindFor(q.d, s), args...)
}

func (q querier) queryRow(ctx context.Context, s string, args ...any) *sql.Row {
	return q.q.QueryRowContext(ctx, store.RebindFor(q.d, s), args...)
}

func (q querier) query(ctx context.Context, s string, args ...any) (*sql.Rows, error) {
	return q.q.QueryContext(ctx, store.RebindFor(q.d, s), args...)
}

// flag marks the good rows that the query rows selects ("_row" values) as
// failing v, reports them, and takes them off the rows to apply.
func (st *stage) flag(ctx context.Context, q querier, v quality.Violation, rows string, rep *reportBuilder) (int64, error) {
	viol, _ := json.Marshal([]quality.Violation{v})
	res, err := q.query(ctx, fmt.Sprintf(`UPDATE %s SET "_viol" = ? WHERE "_row" IN (%s) RETURNING "_row", "_op"`, st.table, rows), string(viol))
	if err != nil {
		return 0, err
	}
	defer res.Close()
	var n int64
	var first []int64 // the first rows, as examples
	for res.Next() {
		var row int64
		var op string
		if err := res.Scan(&row, &op); err != nil {
			return n, err
		}
		n++
		if op == "delete" {
			st.deletes--
		} else {
			st.upserts--
		}
		if i, _ := slices.BinarySearch(first, row); i < 5 {
			first = slices.Insert(first, i, row)[:min(len(first)+1, 5)]
		}
	}
	rep.addMany(v, n, first)
	return n, res.Err()
}

// repeats quarantines, set-based over the whole batch, the staged rows
// whose key repeats an earlier row of the batch (the first occurrence
// wins), then, item by item, the upserts whose value of an item that must
// be unique repeats an earlier upsert of the batch or a live record with
// another key. Where the reader's filter can tell, only the values it
// marked as probably repeated are looked at, so nothing sorts the whole
// batch. When loading, the rows in the table are the first of their keys
// and values, so a staged row holding the key or a unique value of one
// repeats it. It returns how many rows it put aside.
func (s *Service) repeats(ctx context.Context, st *stage, r Resource, rep *reportBuilder, rc readCounts) (int64, error) {
	st.upserts, st.deletes = rc.upserts, rc.deletes
	cols, t := st.cols, tablesOf(r.Table)
	list := func(pos []int) string {
		var names []string
		for _, i := range pos {
			names = append(names, quote(cols[i].MachineName))
		}
		return strings.Join(names, ", ")
	}
	// within selects the rows whose values of watch b repeat an earlier
	// row's; "" when the filter saw no repeat.
	within := func(b int, where string) string {
		w := st.watch.watches[b]
		among := ""
		if w.seen != nil {
			if st.watch.marked[b] == 0 {
				return ""
			}
			l := list(w.cols)
			tuple := l
			if len(w.cols) > 1 {
				tuple = "(" + l + ")"
			}
			among = fmt.Sprintf(` AND %s IN (SELECT %s FROM %s WHERE ("_maybe" & %d) <> 0)`, tuple, l, st.table, int64(1)<<b)
		}
		return fmt.Sprintf(`SELECT "_row" FROM (SELECT "_row", ROW_NUMBER() OVER (PARTITION BY %s ORDER BY "_row") AS n
			FROM %s WHERE "_viol" IS NULL%s%s) d WHERE n > 1`, list(w.cols), st.table, where, among)
	}
	// When loading, the table holds the rows loaded, many, and the stage
	// the rest, few: those are looked up in the table one by one, which
	// planners would rather not do for a table they know nothing of.
	lookup := func(where string) string {
		return fmt.Sprintf(`(SELECT 1 FROM %s t WHERE %s LIMIT 1) IS NOT NULL`, t.main, where)
	}
	keys := within(0, "")
	if keys != "" && st.load != nil {
		// A loaded row is the first of its key: a staged row with its key
		// repeats it.
		keys += fmt.Sprintf(` UNION ALL SELECT s."_row" FROM %s s WHERE s."_viol" IS NULL AND %s`, st.table, lookup(keyMatch("t", "s", cols)))
	}
	if keys == "" && len(st.unique) == 0 {
		return 0, nil
	}
	var n int64
	err := st.step(ctx, func(q querier) error {
		if keys != "" {
			dup := quality.Violation{Item: cols[st.keys[0]].MachineName, Rule: "duplicate_key",
				ZH: "主键与本批次前面的记录重复", EN: "the key repeats an earlier record of this batch"}
			k, err := st.flag(ctx, q, dup, keys, rep)
			if err != nil {
				return fmt.Errorf("repeated keys: %w", err)
			}
			n += k
		}
		var live bool
		if len(st.unique) > 0 {
			if err := q.queryRow(ctx, `SELECT EXISTS (SELECT 1 FROM `+t.main+` WHERE "_deleted_at" IS NULL)`).Scan(&live); err != nil {
				return err
			}
		}
		for u, c := range st.unique {
			col := quote(c.MachineName)
			var rows []string
			if w := within(1+u, fmt.Sprintf(` AND "_op" = 'upsert' AND %s IS NOT NULL`, col)); w != "" {
				rows = append(rows, w)
			}
			switch {
			case live && st.load != nil:
				rows = append(rows, fmt.Sprintf(`SELECT s."_row" FROM %s s WHERE s."_viol" IS NULL AND s."_op" = 'upsert' AND %s`, st.table,
					lookup(fmt.Sprintf(`t.%s = s.%s AND t."_deleted_at" IS NULL AND NOT (%s)`, col, col, keyMatch("t", "s", cols)))))
			case live:
				rows = append(rows, fmt.Sprintf(`SELECT s."_row" FROM %s s JOIN %s t ON t.%s = s.%s
					WHERE s."_viol" IS NULL AND s."_op" = 'upsert' AND t."_deleted_at" IS NULL AND NOT (%s)`, st.table, t.main, col, col, keyMatch("t", "s", cols)))
			}
			if len(rows) == 0 {
				continue
			}
			v := quality.Violation{Item: c.MachineName, Rule: "unique", ZH: "该值在资源中已存在(须唯一)", EN: "the value already exists in the resource (must be unique)"}
			k, err := st.flag(ctx, q, v, strings.Join(rows, " UNION ALL "), rep)
			if err != nil {
				return fmt.Errorf("unique %s: %w", c.MachineName, err)
			}
			n += k
		}
		return nil
	})
	return n, err
}

// sortFrom is the size of batch from which rows are applied in key order.
const sortFrom = 10000

// applied is what an apply did.
type applied struct{ upserts, deletes, inserted, updated, deleted int64 }

// apply writes the staged batch into the resource in one transaction:
// the states that changed records leave behind go to the history first,
// while the table still shows them; then new records are inserted,
// changed ones updated, deleted ones marked, with their lineage; then the
// quarantine and the counts. Applies of one resource run one at a time
// (the resource's row is locked first on PostgreSQL; SQLite has one
// writer), so records can be told new or known without conflicts, and
// the counts kept by difference.
func (s *Service) apply(ctx context.Context, st *stage, r Resource, batchID int64, source Source, total, bad int64, report []byte) error {
	t := tablesOf(r.Table)
	d, cols := st.d, st.cols
	src := st.table
	if st.upserts+st.deletes >= sortFrom {
		// Writing a million keys into an index in random order is slow
		// once the index outgrows the cache (SQLite's is 2 MB,
		// PostgreSQL's shared buffers 128 MB by default): the good rows of
		// a large batch are put in key order first, on SQLite outside the
		// write lock, so the records' key index grows at its end.
		if err := st.sortByKey(ctx); err != nil {
			return fmt.Errorf("sort: %w", err)
		}
		src = st.sorted
	}
	now := s.now()
	names := make([]string, len(cols))
	sNames := make([]string, len(cols))
	tNames := make([]string, len(cols))
	sets := make([]string, len(cols))
	for i, c := range cols {
		names[i] = quote(c.MachineName)
		sNames[i] = "s." + names[i]
		tNames[i] = "t." + names[i]
		sets[i] = names[i] + " = s." + names[i]
	}
	var keyNames, sKeys []string
	for _, i := range st.keys {
		keyNames = append(keyNames, names[i])
		sKeys = append(sKeys, sNames[i])
	}
	match := keyMatch("t", "s", cols)
	firstKey := "t." + keyNames[0]
	keyTuple := strings.Join(keyNames, ", ")
	if len(keyNames) > 1 {
		keyTuple = "(" + keyTuple + ")"
	}
	good := `s."_viol" IS NULL AND s."_op" = `
	// A state left behind says how it came about: deleted, the record's
	// first (its batch created it), or an update. A record's first state
	// after a delete is stored as an update and read as an insert, by
	// the delete before it (versions).
	superseded := fmt.Sprintf(`INSERT INTO %s (%s, "_op", "_batch", "_source", "_at")
		SELECT %s, CASE WHEN t."_deleted_at" IS NOT NULL THEN 'delete' WHEN t."_batch_created" = t."_batch_updated" THEN 'insert' ELSE 'update' END,
			t."_batch_updated", t."_source", t."_updated_at"`, t.hist, strings.Join(names, ", "), strings.Join(tNames, ", "))
	a := applied{upserts: st.upserts, deletes: st.deletes}
	return st.commit(ctx, func(q querier) error {
		// held counts the live records; known is whether the table holds
		// any record, live or deleted. On PostgreSQL the lock is taken by
		// a statement of its own, so that the next one reads what an
		// apply it waited for wrote.
		if d == store.Postgres {
			if _, err := q.exec(ctx, "SELECT id FROM resources WHERE id = ? FOR UPDATE", r.ID); err != nil {
				return err
			}
		}
		var held int64
		var known bool
		if err := q.queryRow(ctx, fmt.Sprintf(`SELECT r.record_count, EXISTS (SELECT 1 FROM %s) FROM resources r WHERE r.id = ?`, t.main),
			r.ID).Scan(&held, &known); err != nil {
			return err
		}
		// The upserts are told apart in one pass: new keys, records that
		// changed or come back after a delete (counted as inserts), and
		// the rest, unchanged.
		fresh, changed, back := a.upserts, int64(0), int64(0)
		if known && a.upserts > 0 {
			if err := q.queryRow(ctx, fmt.Sprintf(`SELECT COALESCE(SUM(CASE WHEN %s IS NULL THEN 1 ELSE 0 END), 0),
				COALESCE(SUM(CASE WHEN %s IS NOT NULL AND (t."_deleted_at" IS NOT NULL OR %s) THEN 1 ELSE 0 END), 0),
				COALESCE(SUM(CASE WHEN t."_deleted_at" IS NOT NULL THEN 1 ELSE 0 END), 0)
				FROM %s s LEFT JOIN %s t ON %s WHERE %s'upsert'`, firstKey, firstKey, differs(d, "t", "s", cols), src, t.main, match, good),
			).Scan(&fresh, &changed, &back); err != nil {
				return err
			}
		}
		a.updated = changed - back
		// The states changed and deleted records leave behind go to the
		// history first.
		if changed > 0 {
			if _, err := q.exec(ctx, superseded+fmt.Sprintf(` FROM %s s JOIN %s t ON %s WHERE %s'upsert' AND (t."_deleted_at" IS NOT NULL OR %s)`,
				src, t.main, match, good, differs(d, "t", "s", cols))); err != nil {
				return fmt.Errorf("history of changes: %w", err)
			}
		}
		if known && a.deletes > 0 {
			res, err := q.exec(ctx, superseded+fmt.Sprintf(` FROM %s t JOIN %s s ON %s WHERE %s'delete' AND t."_deleted_at" IS NULL`,
				t.main, src, match, good))
			if err != nil {
				return fmt.Errorf("history of deletes: %w", err)
			}
			if a.deleted, err = res.RowsAffected(); err != nil {
				return err
			}
		}
		// An index of a unique item is built anew, rather than written
		// row by row in random order, when the table is empty, and on
		// SQLite also when a large batch brings at least as many values
		// as the table holds. On PostgreSQL dropping the index would keep
		// readers out of a filled table until the commit; SQLite's
		// readers go on reading the state before the batch.
		rebuild := len(st.unique) > 0 && fresh+changed > 0 &&
			(!known || d == store.SQLite && fresh+changed >= sortFrom && fresh+changed >= held)
		if rebuild {
			var err error
			if rebuild, err = st.dropIndexes(ctx, q, r); err != nil {
				return err
			}
		}
		// New records are inserted; then records known to the table that
		// changed, or come back after a delete, are updated.
		if fresh > 0 {
			isNew := ""
			if known {
				isNew = fmt.Sprintf(` AND NOT EXISTS (SELECT 1 FROM %s t WHERE %s)`, t.main, match)
			}
			res, err := q.exec(ctx, fmt.Sprintf(`INSERT INTO %s (%s, "_batch_created", "_batch_updated", "_source", "_created_at", "_updated_at", "_deleted_at")
				SELECT %s, ?, ?, ?, ?, ?, NULL FROM %s s WHERE %s'upsert'%s`,
				t.main, strings.Join(names, ", "), strings.Join(sNames, ", "), src, good, isNew), batchID, batchID, source, now, now)
			if err != nil {
				return fmt.Errorf("insert: %w", err)
			}
			if a.inserted, err = res.RowsAffected(); err != nil {
				return err
			}
		}
		a.inserted += back
		if changed > 0 {
			if _, err := q.exec(ctx, fmt.Sprintf(`UPDATE %s AS t SET %s, "_batch_updated" = ?, "_source" = ?, "_updated_at" = ?, "_deleted_at" = NULL
				FROM %s s WHERE %s AND %s'upsert' AND (t."_deleted_at" IS NOT NULL OR %s)`,
				t.main, strings.Join(sets, ", "), src, match, good, differs(d, "t", "s", cols)), batchID, source, now); err != nil {
				return fmt.Errorf("update: %w", err)
			}
		}
		if rebuild {
			for _, c := range st.unique {
				if _, err := q.exec(ctx, uniqueIndexDDL(r.Table, c)); err != nil {
					return err
				}
			}
		}
		// Deletes are recorded, not lost: the record stays, marked
		// deleted with its last values, and the state before is in the
		// history.
		if a.deleted > 0 {
			if _, err := q.exec(ctx, fmt.Sprintf(`UPDATE %s SET "_deleted_at" = ?, "_batch_updated" = ?, "_source" = ?, "_updated_at" = ?
				WHERE "_deleted_at" IS NULL AND %s IN (SELECT %s FROM %s s WHERE %s'delete')`,
				t.main, keyTuple, strings.Join(sKeys, ", "), src, good), now, batchID, source, now); err != nil {
				return fmt.Errorf("delete: %w", err)
			}
		}
		return s.finish(ctx, q, st, r, batchID, a, total, bad, report, now)
	})
}

// finish ends an apply, in its transaction: the quarantine, the batch's
// counts and report, the resource's counts, the day's volume.
func (s *Service) finish(ctx context.Context, q querier, st *stage, r Resource, batchID int64, a applied, total, bad int64, report []byte, now time.Time) error {
	if bad > 0 {
		// The values of a row put aside after staging (a repeat) are
		// its staged values, as JSON like those of the rows put aside
		// while read; on SQLite, which cannot write a binary value as
		// base64, they are written here first.
		vals := `"_raw"`
		if st.d == store.SQLite && hasBinary(st.cols) {
			if err := st.writeRaw(ctx, q); err != nil {
				return fmt.Errorf("quarantine: %w", err)
			}
		} else {
			quoteJSON := "json_quote"
			if st.d == store.Postgres {
				quoteJSON = "to_json"
			}
			each := make([]string, len(st.cols))
			for i, c := range st.cols {
				each[i] = quoteJSON + "(COALESCE(" + selectExpr(st.d, "", c) + ", ''))"
				if st.d == store.Postgres {
					each[i] += "::text"
				}
			}
			vals = `COALESCE("_raw", '[' || ` + strings.Join(each, " || ',' || ") + ` || ']')`
		}
		if _, err := q.exec(ctx, fmt.Sprintf(`INSERT INTO resource_quarantine (resource_id, batch_id, row_no, op, vals, violations, state, created_at)
			SELECT ?, ?, "_row", "_op", %s, "_viol", 'open', ? FROM %s WHERE "_viol" IS NOT NULL ORDER BY "_row"`,
			vals, st.table), r.ID, batchID, now); err != nil {
			return fmt.Errorf("quarantine: %w", err)
		}
	}
	unchanged := a.upserts - a.inserted - a.updated
	if _, err := q.exec(ctx, `UPDATE resource_batches SET state = 'applied', rows_total = ?, rows_inserted = ?, rows_updated = ?, rows_unchanged = ?,
		rows_deleted = ?, rows_quarantined = ?, report = ?, finished_at = ? WHERE id = ?`,
		total, a.inserted, a.updated, unchanged, a.deleted, bad, string(report), now, batchID); err != nil {
		return err
	}
	if _, err := q.exec(ctx, `UPDATE resources SET record_count = record_count + ?, received_count = received_count + ?, passed_count = passed_count + ?,
		last_update_at = ? WHERE id = ?`, a.inserted-a.deleted, total, total-bad, now, r.ID); err != nil {
		return err
	}
	day := now.In(calendar.CST).Format("2006-01-02")
	if _, err := q.exec(ctx, `INSERT INTO resource_daily (resource_id, day, records_in) VALUES (?, ?, ?)
		ON CONFLICT (resource_id, day) DO UPDATE SET records_in = resource_daily.records_in + excluded.records_in`, r.ID, day, total-bad); err != nil {
		return err
	}
	if st.applying == nil {
		return nil
	}
	return st.applying(ctx, q, Batch{ID: batchID, ResourceCode: r.Code, State: "applied", RowsTotal: total, Inserted: a.inserted, Updated: a.updated,
		Unchanged: unchanged, Deleted: a.deleted, Quarantined: bad, Report: QualityReport{Rules: []RuleCount{}}, FinishedAt: now.UTC()})
}

// Exec makes the apply's transaction an Execer for SubmitOptions.Applying.
func (q querier) Exec(ctx context.Context, s string, args ...any) (sql.Result, error) {
	return q.exec(ctx, s, args...)
}

// writeRaw writes the values of the staged rows put aside after staging
// as the JSON of their canonical text, as the quarantine keeps them, a
// page of rows at a time.
func (st *stage) writeRaw(ctx context.Context, q querier) error {
	sel := make([]string, len(st.cols))
	for i, c := range st.cols {
		sel[i] = selectExpr(st.d, "", c)
	}
	page := fmt.Sprintf(`SELECT "_row", %s FROM %s WHERE "_viol" IS NOT NULL AND "_raw" IS NULL AND "_row" > ? ORDER BY "_row" LIMIT 1000`,
		strings.Join(sel, ", "), st.table)
	type flagged struct {
		row int64
		raw []byte
	}
	vals := canonicalTexts(st.cols)
	dest := make([]any, 1, len(vals)+1)
	for i := range vals {
		dest = append(dest, &vals[i])
	}
	var after int64
	for {
		var rows []flagged
		err := func() error {
			res, err := q.query(ctx, page, after)
			if err != nil {
				return err
			}
			defer res.Close()
			for res.Next() {
				var f flagged
				dest[0] = &f.row
				if err := res.Scan(dest...); err != nil {
					return err
				}
				text := make([]string, len(vals))
				for i, v := range vals {
					text[i] = v.String
				}
				f.raw, _ = json.Marshal(text)
				rows = append(rows, f)
			}
			return res.Err()
		}()
		if err != nil || len(rows) == 0 {
			return err
		}
		for _, f := range rows {
			if _, err := q.exec(ctx, `UPDATE `+st.table+` SET "_raw" = ? WHERE "_row" = ?`, string(f.raw), f.row); err != nil {
				return err
			}
		}
		after = rows[len(rows)-1].row
	}
}

// dropIndexes drops the unique items' indexes for the apply to build them
// anew, and says whether it did. On PostgreSQL another batch of the same
// resource may be reading the table in its transaction, waiting for this
// one's lock on the resource: rather than wait for it (a deadlock), the
// indexes are then kept and written row by row.
func (st *stage) dropIndexes(ctx context.Context, q querier, r Resource) (bool, error) {
	drop := func() error {
		for _, c := range st.unique {
			if _, err := q.exec(ctx, "DROP INDEX IF EXISTS "+quote(uniqueIndexName(r.Table, c))); err != nil {
				return err
			}
		}
		return nil
	}
	if st.d == store.SQLite {
		return true, drop()
	}
	if _, err := q.exec(ctx, "SAVEPOINT drop_indexes; SET LOCAL lock_timeout = '200ms'"); err != nil {
		return false, err
	}
	if err := drop(); err != nil {
		_, rerr := q.exec(ctx, "ROLLBACK TO SAVEPOINT drop_indexes")
		return false, rerr
	}
	_, err := q.exec(ctx, "SET LOCAL lock_timeout TO DEFAULT; RELEASE SAVEPOINT drop_indexes")
	return err == nil, err
}
