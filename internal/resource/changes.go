package resource

import (
	"context"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

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
	_, err := s.db.Exec(ctx, changeIndexDDL(r.Table, "IF NOT EXISTS "))
	return err
}

// changeIndexName names the index EnsureChangeIndex makes. A load drops
// it and builds it after, as it does the key's (load.go).
func changeIndexName(table string) string { return table + "_changed" }

func changeIndexDDL(table, ifNotExists string) string {
	return fmt.Sprintf(`CREATE INDEX %s%s ON %s ("_batch_updated")`, ifNotExists, quote(changeIndexName(table)), tablesOf(table).main)
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

// Changes calls fn with the records batch last changed, in chunks of at
// most chunk (in key order on SQLite, in no particular order on
// PostgreSQL): live records as rows of cols, soft-deleted ones
// as keys (the key columns' values in cols order). A record a later batch
// changed again comes with that batch instead.
func (s *Service) Changes(ctx context.Context, r Resource, cols []Column, batch int64, chunk int, fn func(rows [][]*string, deleted [][]string) error) error {
	return s.scanRecords(ctx, r, cols, `"_batch_updated" = ?`, []any{batch}, true, true, chunk, fn)
}

// Snapshot calls fn with every live record, in key-ordered chunks. It
// reads page by page, not in one transaction: a record a batch changes
// meanwhile is read old or new, and that batch's changes follow it.
func (s *Service) Snapshot(ctx context.Context, r Resource, cols []Column, chunk int, fn func(rows [][]*string) error) error {
	return s.scanRecords(ctx, r, cols, `"_deleted_at" IS NULL`, nil, false, false, chunk, func(rows [][]*string, _ [][]string) error { return fn(rows) })
}

// LiveKeys calls fn with the keys of every live record, in key-ordered
// chunks, each key its key columns' values in column order.
func (s *Service) LiveKeys(ctx context.Context, r Resource, chunk int, fn func(keys [][]string) error) error {
	keys := r.Keys()
	return s.scanRecords(ctx, r, keys, `"_deleted_at" IS NULL`, nil, false, false, chunk, func(rows [][]*string, _ [][]string) error {
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
// (keyset paging on the primary key, never an offset) — or, onePass on
// PostgreSQL, reads them with one statement in no particular order.
func (s *Service) scanRecords(ctx context.Context, r Resource, cols []Column, where string, args []any, withDeleted, onePass bool, chunk int,
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
	// On PostgreSQL the pages are read through pgx (pageRaw), with
	// date-times as they are stored, made canonical here; otherwise, or
	// should pgx not hand them over so, through database/sql with every
	// value made canonical by the database.
	raw := d == store.Postgres
	selectList := func(raw bool) string {
		sel := make([]string, 0, len(cols)+len(keys)+1)
		for i, c := range cols {
			e := canonicalExpr(d, c)
			if raw && c.DataType == "T" {
				e = quote(c.MachineName)
			}
			sel = append(sel, e+fmt.Sprintf(` AS "_c%d"`, i))
		}
		sel = append(sel, keyNames...) // native key values, for the next page (the only output columns so named)
		if raw {
			sel = append(sel, `CASE WHEN "_deleted_at" IS NULL THEN '0' ELSE '1' END`)
		} else {
			sel = append(sel, `CASE WHEN "_deleted_at" IS NULL THEN 0 ELSE 1 END`)
		}
		return strings.Join(sel, ", ")
	}
	keyPos := keyPositions(cols)
	keyList := strings.Join(keyNames, ", ")
	after := "(" + keyList + ") > (" + store.Placeholders(len(keys)) + ")"
	if len(keys) == 1 {
		after = keyList + " > ?"
	}
	if raw && onePass {
		// One statement, in the order PostgreSQL finds the records: paging
		// by key through records scattered over the table read most of it
		// again for every page.
		q := fmt.Sprintf("SELECT %s FROM %s WHERE %s", selectList(raw), tablesOf(r.Table).main, where)
		err := s.streamRaw(ctx, q, args, cols, len(keys), keyPos, chunk, func(up [][]*string, del [][]string) error {
			if !withDeleted {
				del = nil
			}
			if len(up)+len(del) == 0 {
				return nil
			}
			return fn(up, del)
		})
		if !errors.Is(err, errNotBinary) {
			return err
		}
		raw = false
	}
	var last []any
	for {
		q := fmt.Sprintf("SELECT %s FROM %s WHERE %s", selectList(raw), tablesOf(r.Table).main, where)
		qargs := append([]any(nil), args...)
		if last != nil {
			q += " AND " + after
			qargs = append(qargs, last...)
		}
		q += " ORDER BY " + keyList + " LIMIT ?"
		qargs = append(qargs, chunk)
		var up [][]*string
		var del [][]string
		var next []any
		var err error
		if raw {
			up, del, next, err = s.pageRaw(ctx, q, qargs, cols, len(keys), keyPos)
			if errors.Is(err, errNotBinary) {
				raw = false
				continue
			}
		} else {
			up, del, next, err = s.page(ctx, q, qargs, cols, len(keys), keyPos)
		}
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

// errNotBinary: pgx did not hand a date-time over in its binary form
// (a connection in the simple protocol).
var errNotBinary = errors.New("date-time not in binary")

// pageRaw is page on PostgreSQL, through pgx: every value but the
// date-times (items "T") selected as canonical text, whose bytes pgx
// hands over; the date-times as stored, in binary, made canonical here —
// PostgreSQL's to_char and regexp_replace took a second of its CPU for a
// million rows. A row's values share one string.
func (s *Service) pageRaw(ctx context.Context, q string, args []any, cols []Column, nkeys int, keyPos []int) (up [][]*string, del [][]string, next []any, err error) {
	limit := args[len(args)-1].(int)
	err = s.readRaw(ctx, q, args, cols, nkeys, keyPos, func(rows pgx.Rows, n int, row []*string, key []string) error {
		if row != nil {
			up = append(up, row)
		} else {
			del = append(del, key)
		}
		if n == limit {
			vs, err := rows.Values()
			if err != nil {
				return err
			}
			next = append([]any(nil), vs[len(cols):len(cols)+nkeys]...)
		}
		return nil
	})
	return up, del, next, err
}

// streamRaw reads every record q selects in one statement, as pageRaw
// reads a page, and calls fn with them in chunks of at most chunk.
func (s *Service) streamRaw(ctx context.Context, q string, args []any, cols []Column, nkeys int, keyPos []int, chunk int,
	fn func(rows [][]*string, deleted [][]string) error) error {
	var up [][]*string
	var del [][]string
	err := s.readRaw(ctx, q, args, cols, nkeys, keyPos, func(_ pgx.Rows, _ int, row []*string, key []string) error {
		if row != nil {
			up = append(up, row)
		} else {
			del = append(del, key)
		}
		if len(up)+len(del) < chunk {
			return nil
		}
		err := fn(up, del)
		up, del = nil, nil
		return err
	})
	if err == nil && len(up)+len(del) > 0 {
		err = fn(up, del)
	}
	return err
}

// readRaw runs q through pgx and calls each with every record it reads,
// counting from 1: a live one as its row, a deleted one as its key.
func (s *Service) readRaw(ctx context.Context, q string, args []any, cols []Column, nkeys int, keyPos []int,
	each func(rows pgx.Rows, n int, row []*string, key []string) error) error {
	ncols := len(cols)
	return s.db.WithPgx(ctx, func(c *pgx.Conn) error {
		args := append([]any{pgx.QueryResultFormatsByOID{pgtype.TimestamptzOID: pgx.BinaryFormatCode}}, args...)
		rows, err := c.Query(ctx, s.db.Rebind(q), args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for i, f := range rows.FieldDescriptions()[:ncols] {
			if cols[i].DataType == "T" && f.Format != pgx.BinaryFormatCode {
				return errNotBinary
			}
		}
		var buf []byte
		ends := make([]int, ncols)
		n := 0
		for rows.Next() {
			raw := rows.RawValues()
			n++
			buf = buf[:0]
			for i := range ncols {
				v := raw[i]
				switch {
				case v == nil:
					ends[i] = -1
					continue
				case cols[i].DataType == "T":
					var finite bool
					if buf, finite, err = appendInstant(buf, v); err != nil {
						return err
					}
					if !finite {
						ends[i] = -1 // infinity: to_char's NULL
						continue
					}
				default:
					buf = append(buf, v...)
				}
				ends[i] = len(buf)
			}
			deleted := string(raw[ncols+nkeys]) == "1"
			all := string(buf)
			var row []*string
			var key []string
			if deleted {
				key = make([]string, len(keyPos))
				for i, p := range keyPos {
					if ends[p] >= 0 {
						key[i] = all[startOf(ends, p):ends[p]]
					}
				}
			} else {
				vals := make([]string, ncols)
				row = make([]*string, ncols)
				for i, e := range ends {
					if e >= 0 {
						vals[i] = all[startOf(ends, i):e]
						row[i] = &vals[i]
					}
				}
			}
			if err := each(rows, n, row, key); err != nil {
				return err
			}
		}
		return rows.Err()
	})
}

// startOf is where value i of a row starts in its buffer: where the last
// value before it that is not NULL ends.
func startOf(ends []int, i int) int {
	for i--; i >= 0; i-- {
		if ends[i] >= 0 {
			return ends[i]
		}
	}
	return 0
}

// appendInstant appends the canonical text of a timestamptz in
// PostgreSQL's binary form (microseconds since 2000-01-01 UTC) as
// canonicalExpr writes it: UTC, fractional seconds only when they are not
// zero, without trailing zeros, and the year as to_char writes it (BC
// years as their number, at least four digits). Infinity is NULL there:
// nothing is appended, and finite is false.
func appendInstant(buf, v []byte) (out []byte, finite bool, err error) {
	if len(v) != 8 {
		return buf, false, fmt.Errorf("date-time of %d bytes", len(v))
	}
	us := int64(binary.BigEndian.Uint64(v))
	if us == math.MaxInt64 || us == math.MinInt64 {
		return buf, false, nil
	}
	const day = 86400 * 1_000_000
	days, rem := us/day, us%day
	if rem < 0 {
		days, rem = days-1, rem+day
	}
	t := time.Date(2000, 1, 1+int(days), 0, 0, 0, 0, time.UTC)
	year, month, dom := t.Date()
	if year <= 0 {
		year = 1 - year
	}
	buf = appendDigits(buf, year, 4)
	buf = append(buf, '-')
	buf = appendDigits(buf, int(month), 2)
	buf = append(buf, '-')
	buf = appendDigits(buf, dom, 2)
	buf = append(buf, 'T')
	secs, frac := rem/1_000_000, rem%1_000_000
	buf = appendDigits(buf, int(secs/3600), 2)
	buf = append(buf, ':')
	buf = appendDigits(buf, int(secs/60%60), 2)
	buf = append(buf, ':')
	buf = appendDigits(buf, int(secs%60), 2)
	if frac != 0 {
		buf = append(buf, '.')
		buf = appendDigits(buf, int(frac), 6)
		for buf[len(buf)-1] == '0' {
			buf = buf[:len(buf)-1]
		}
	}
	return append(buf, 'Z'), true, nil
}

// appendDigits appends n in decimal, zero-padded to width digits.
func appendDigits(buf []byte, n, width int) []byte {
	var d [20]byte
	i := len(d)
	for n > 0 || i > len(d)-width {
		i--
		d[i] = byte('0' + n%10)
		n /= 10
	}
	return append(buf, d[i:]...)
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
