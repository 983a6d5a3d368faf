package resource

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"govshare/internal/store"
)

// What the exchange reads back out of a resource to deliver it to the
// departments subscribed to it (交换桥接): the records each applied batch
// changed, a snapshot of every live record for a new subscriber, and the
// live keys for delete detection. Values come out as canonical text, as
// internal/agent/source gives them; nil is NULL.

// EnsureChangeIndex indexes the records by the batch that last changed
// them, so reading a batch's changes does not scan the table. The index is
// made when a resource gets its first subscriber, not at mount, so loading
// a resource nobody subscribes to pays nothing for it.
func (s *Service) EnsureChangeIndex(ctx context.Context, r Resource) error {
	_, err := s.db.Exec(ctx, fmt.Sprintf(`CREATE INDEX IF NOT EXISTS %s ON %s ("_batch_updated")`,
		quote(r.Table+"_changed"), tablesOf(r.Table).main))
	return err
}

// NextBatches returns the ids of r's batches applied after batch after, in
// order, at most limit. It stops before the first batch still running: a
// batch opened earlier but applied later must not be passed over.
// Batches left running for over an hour by a server that stopped are
// not waited for.
func (s *Service) NextBatches(ctx context.Context, r Resource, after int64, limit int) ([]int64, error) {
	stale := s.now().Add(-staleRunning)
	rows, err := s.db.Query(ctx, `SELECT id, state, started_at FROM resource_batches WHERE resource_id = ? AND id > ? AND state <> 'failed' ORDER BY id LIMIT ?`,
		r.ID, after, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []int64
	for rows.Next() {
		var id int64
		var state string
		var started sql.NullTime
		if err := rows.Scan(&id, &state, &started); err != nil {
			return nil, err
		}
		if state == "running" {
			if started.Valid && started.Time.Before(stale) {
				continue
			}
			break
		}
		out = append(out, id)
	}
	return out, rows.Err()
}

// staleRunning is how long a running batch holds back deliveries.
const staleRunning = time.Hour

// LastApplied returns the newest batch NextBatches would pass: deliveries
// that start from a snapshot read after this call continue after it.
func (s *Service) LastApplied(ctx context.Context, r Resource) (int64, error) {
	var last int64
	for {
		ids, err := s.NextBatches(ctx, r, last, 1000)
		if err != nil {
			return 0, err
		}
		if len(ids) == 0 {
			return last, nil
		}
		last = ids[len(ids)-1]
	}
}

// Changes calls fn with the records batch last changed, in key-ordered
// chunks of at most chunk: live records as rows of cols, soft-deleted ones
// as keys (the key columns' values in cols order). A record a later batch
// changed again comes with that batch instead.
func (s *Service) Changes(ctx context.Context, r Resource, cols []Column, batch int64, chunk int, fn func(rows [][]*string, deleted [][]string) error) error {
	return s.scanRecords(ctx, r, cols, `"_batch_updated" = ?`, []any{batch}, true, chunk, fn)
}

// Snapshot calls fn with every live record, in key-ordered chunks. It
// reads page by page, not in one transaction: a record a batch changes
// meanwhile is read old or new, and that batch's changes follow it.
func (s *Service) Snapshot(ctx context.Context, r Resource, cols []Column, chunk int, fn func(rows [][]*string) error) error {
	return s.scanRecords(ctx, r, cols, `"_deleted_at" IS NULL`, nil, false, chunk, func(rows [][]*string, _ [][]string) error { return fn(rows) })
}

// LiveKeys calls fn with the keys of every live record, in key-ordered
// chunks, each key its key columns' values in column order.
func (s *Service) LiveKeys(ctx context.Context, r Resource, chunk int, fn func(keys [][]string) error) error {
	keys := r.Keys()
	return s.scanRecords(ctx, r, keys, `"_deleted_at" IS NULL`, nil, false, chunk, func(rows [][]*string, _ [][]string) error {
		out := make([][]string, len(rows))
		for i, row := range rows {
			k := make([]string, len(row))
			for j, v := range row {
				if v != nil {
					k[j] = *v
				}
			}
			out[i] = k
		}
		return fn(out)
	})
}

// scanRecords pages through the records matching where in key order
// (keyset paging on the primary key, never an offset).
func (s *Service) scanRecords(ctx context.Context, r Resource, cols []Column, where string, args []any, withDeleted bool, chunk int,
	fn func(rows [][]*string, deleted [][]string) error) error {
	if chunk <= 0 {
		chunk = 5000
	}
	d := s.db.Dialect()
	keys := r.Keys()
	keyNames := make([]string, len(keys))
	for i, k := range keys {
		keyNames[i] = quote(k.MachineName)
	}
	sel := make([]string, 0, len(cols)+len(keys)+1)
	for i, c := range cols {
		sel = append(sel, canonicalExpr(d, c)+fmt.Sprintf(` AS "_c%d"`, i))
	}
	sel = append(sel, keyNames...) // native key values, for the next page (the only output columns so named)
	sel = append(sel, `CASE WHEN "_deleted_at" IS NULL THEN 0 ELSE 1 END`)
	keyPos := keyPositions(cols)
	keyList := strings.Join(keyNames, ", ")
	after := "(" + keyList + ") > (" + store.Placeholders(len(keys)) + ")"
	if len(keys) == 1 {
		after = keyList + " > ?"
	}
	var last []any
	for {
		q := fmt.Sprintf("SELECT %s FROM %s WHERE %s", strings.Join(sel, ", "), tablesOf(r.Table).main, where)
		qargs := append([]any(nil), args...)
		if last != nil {
			q += " AND " + after
			qargs = append(qargs, last...)
		}
		q += " ORDER BY " + keyList + " LIMIT ?"
		qargs = append(qargs, chunk)
		up, del, next, err := s.page(ctx, q, qargs, cols, len(keys), keyPos)
		if err != nil {
			return err
		}
		if !withDeleted {
			del = nil
		}
		if len(up) > 0 || len(del) > 0 {
			if err := fn(up, del); err != nil {
				return err
			}
		}
		if next == nil {
			return nil
		}
		last = next
	}
}

// page reads one page: live rows, deleted keys, and the native key of the
// page's last row when the page was full (nil: no more pages).
func (s *Service) page(ctx context.Context, q string, args []any, cols []Column, nkeys int, keyPos []int) (up [][]*string, del [][]string, next []any, err error) {
	rows, err := s.db.Query(ctx, q, args...)
	if err != nil {
		return nil, nil, nil, err
	}
	defer rows.Close()
	n := 0
	ncols := len(cols)
	vals := canonicalTexts(cols)
	native := make([]any, nkeys)
	var deleted int
	dest := make([]any, 0, ncols+nkeys+1)
	for i := range vals {
		dest = append(dest, &vals[i])
	}
	for i := range native {
		dest = append(dest, &native[i])
	}
	dest = append(dest, &deleted)
	limit := args[len(args)-1].(int)
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return nil, nil, nil, err
		}
		n++
		if deleted == 1 {
			k := make([]string, len(keyPos))
			for i, p := range keyPos {
				k[i] = vals[p].String
			}
			del = append(del, k)
		} else {
			row := make([]*string, ncols)
			for i, v := range vals {
				if v.Valid {
					t := v.String
					row[i] = &t
				}
			}
			up = append(up, row)
		}
		if n == limit {
			next = append([]any(nil), native...)
		}
	}
	return up, del, next, rows.Err()
}

// canonicalExpr reads a column as the canonical text of
// internal/agent/source: date-times in UTC with fractional seconds only
// when they are not zero.
func canonicalExpr(d store.Dialect, c Column) string {
	if d == store.Postgres && c.DataType == "T" {
		col := quote(c.MachineName)
		return `regexp_replace(to_char(` + col + ` AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US'), '\.?0+$', '') || 'Z'`
	}
	return selectExpr(d, "", c)
}
