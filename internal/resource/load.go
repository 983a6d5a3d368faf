package resource

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/binary"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/stdlib"

	"govshare/internal/store"
)

// A batch into an empty resource is loaded: its good rows go straight
// into the records table while they are read, instead of through the
// stage, and the table's key index and the unique items' indexes are
// dropped first and built once after the load, which costs far less
// than writing a million keys into them one by one. Only the rows that
// may not be the first of their key or unique value — those the repeat
// filter marked — and the bad rows and deletes go to the stage, to be
// decided as any batch's are; the staged upserts that pass are inserted
// after. A record loaded is its first state, so it writes no history.
//
// An upsert the filter has certainly not seen is the first of its key
// and of its unique values in the batch, and the table held nothing
// before: it can be neither a repeat nor a clash, so loading it early
// changes nothing of what the batch decides. Every later row with its
// key or values is marked, staged, and found a repeat of it.
//
// The load needs the table to itself, in one transaction from the first
// row to the commit: on PostgreSQL the resource's row is locked for the
// whole batch and the table's indexes are dropped in it (readers of the
// empty table wait for the commit); on SQLite the batch holds the write
// lock while it reads, which is why Submit is given data already at hand.
// When any of that cannot be had at once — another batch of the resource
// is applying, a reader is in the table, the table is not empty, a key or
// unique item holds date-times or binary values the filter cannot watch,
// or the table was mounted with its key as SQLite's primary key — the
// batch goes through the stage as usual.
type load struct {
	main    string // the records table, quoted
	width   int    // visible columns
	columns string // the columns a row fills, lineage included
	now     time.Time
	lineage []any // batch created, batch updated, source, created at, updated at
	// PostgreSQL: rows are COPY binary of the visible columns only; the
	// lineage, the same for every row of the batch, is the lineage
	// columns' defaults while the batch loads (setDefaults).
	binary bool
	pkey   string // PostgreSQL: the primary key constraint, dropped for the load
	// changed: the change index (changes.go) was there, and is dropped for
	// the load too — every row of a load has the same batch, and writing a
	// million of them into it one by one took PostgreSQL twice as long as
	// building it after.
	changed bool
	rows    int64 // rows loaded while reading
}

// beginLoad decides whether the batch is loaded and, if so, takes the
// table for it.
func (s *Service) beginLoad(ctx context.Context, st *stage, r Resource, batchID int64, source Source) error {
	// A resource that held live records when the batch came is not
	// empty; one that held none is looked at.
	if r.RecordCount > 0 || !st.watch.exact() {
		return nil
	}
	t := tablesOf(r.Table)
	var pkey string
	var ok bool
	var err error
	if st.d == store.Postgres {
		pkey, ok, err = st.takePostgres(ctx, r)
	} else {
		ok, err = st.takeSQLite(ctx, r)
	}
	if err != nil || !ok {
		return err
	}
	now := s.now()
	names := make([]string, 0, len(st.cols)+6)
	for _, c := range st.cols {
		names = append(names, quote(c.MachineName))
	}
	names = append(names, `"_batch_created"`, `"_batch_updated"`, `"_source"`, `"_created_at"`, `"_updated_at"`, `"_deleted_at"`)
	l := &load{main: t.main, width: len(st.cols), columns: strings.Join(names, ", "), now: now, pkey: pkey, changed: st.changed,
		lineage: []any{batchID, batchID, string(source), now, now}}
	if st.d == store.Postgres {
		l.binary = true
		if _, err := st.conn.ExecContext(ctx, l.setDefaults(batchID, source)); err != nil {
			return fmt.Errorf("load: %w", err)
		}
	}
	st.load = l
	return nil
}

// lineageNames are the lineage columns a load sets once per batch.
var lineageNames = []string{`"_batch_created"`, `"_batch_updated"`, `"_source"`, `"_created_at"`, `"_updated_at"`}

// setDefaults makes the batch's lineage the lineage columns' defaults,
// so the COPY sends the visible columns only and the server fills the
// rest: about a quarter less of its time for the COPY (a million rows of
// ten items: 0.85–0.94 s instead of 1.13–1.19 s). The table is the
// batch's alone until it commits (its key was dropped in the same
// transaction), and dropDefaults puts the columns back before the
// commit; a batch that fails rolls both back.
func (l *load) setDefaults(batchID int64, source Source) string {
	at := "'" + l.now.UTC().Truncate(time.Microsecond).Format("2006-01-02 15:04:05.000000") + "+00'::timestamptz"
	vals := []string{strconv.FormatInt(batchID, 10), strconv.FormatInt(batchID, 10),
		"'" + strings.ReplaceAll(string(source), "'", "''") + "'", at, at}
	sets := make([]string, len(lineageNames))
	for i, c := range lineageNames {
		sets[i] = "ALTER " + c + " SET DEFAULT " + vals[i]
	}
	return "ALTER TABLE " + l.main + " " + strings.Join(sets, ", ")
}

// dropDefaults is the statement that takes setDefaults back.
func (l *load) dropDefaults() string {
	drops := make([]string, len(lineageNames))
	for i, c := range lineageNames {
		drops[i] = "ALTER " + c + " DROP DEFAULT"
	}
	return "ALTER TABLE " + l.main + " " + strings.Join(drops, ", ")
}

// takeSQLite begins the load's transaction, which takes the write lock,
// if the table is empty and its key index can be dropped, and drops the
// indexes. If the lock cannot be had within 200 ms the batch is staged.
func (st *stage) takeSQLite(ctx context.Context, r Resource) (bool, error) {
	t := tablesOf(r.Table)
	check := `SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = ?) AND NOT EXISTS (SELECT 1 FROM ` + t.main + `)`
	var ok bool
	if err := st.conn.QueryRowContext(ctx, check, keyIndexName(r.Table)).Scan(&ok); err != nil || !ok {
		return false, err
	}
	// The lock is waited for 200 ms at most: a batch that has it loads
	// for long, and another one rather stages meanwhile.
	var wait int
	if err := st.conn.QueryRowContext(ctx, "PRAGMA busy_timeout").Scan(&wait); err != nil {
		return false, err
	}
	if _, err := st.conn.ExecContext(ctx, "PRAGMA busy_timeout = 200"); err != nil {
		return false, err
	}
	_, err := st.conn.ExecContext(ctx, "BEGIN IMMEDIATE")
	if _, rerr := st.conn.ExecContext(ctx, fmt.Sprintf("PRAGMA busy_timeout = %d", wait)); rerr != nil {
		st.open = err == nil
		return false, rerr
	}
	if err != nil {
		return false, nil
	}
	st.open = true
	// Another batch may have filled the table before the lock was ours.
	err = st.conn.QueryRowContext(ctx, check, keyIndexName(r.Table)).Scan(&ok)
	if err == nil && ok {
		_, err = st.conn.ExecContext(ctx, "DROP INDEX "+quote(keyIndexName(r.Table)))
		for _, c := range st.unique {
			if err == nil {
				_, err = st.conn.ExecContext(ctx, "DROP INDEX IF EXISTS "+quote(uniqueIndexName(r.Table, c)))
			}
		}
		if err == nil {
			err = st.conn.QueryRowContext(ctx, "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = ?)",
				changeIndexName(r.Table)).Scan(&st.changed)
		}
		if err == nil && st.changed {
			_, err = st.conn.ExecContext(ctx, "DROP INDEX "+quote(changeIndexName(r.Table)))
		}
	}
	if err != nil || !ok {
		st.changed = false
		// If this fails the transaction stays open, for close to end or
		// the connection to be discarded.
		if _, rerr := st.conn.ExecContext(context.WithoutCancel(ctx), "ROLLBACK"); rerr != nil {
			return false, fmt.Errorf("load: %w", rerr)
		}
		st.open = false
		return false, err
	}
	return true, nil
}

// takePostgres locks the resource's row, if no other batch has it, and
// drops the table's primary key and unique items' indexes, if the table
// is empty and no one else is in it. Whatever it cannot have within
// 200 ms leaves the batch to the stage as it was.
func (st *stage) takePostgres(ctx context.Context, r Resource) (string, bool, error) {
	t := tablesOf(r.Table)
	if _, err := st.conn.ExecContext(ctx, "SAVEPOINT load; SET LOCAL lock_timeout = '200ms'"); err != nil {
		return "", false, fmt.Errorf("load: %w", err)
	}
	take := func() (string, error) {
		if _, err := st.exec(ctx, "SELECT id FROM resources WHERE id = ? FOR UPDATE NOWAIT", r.ID); err != nil {
			return "", err
		}
		var pkey sql.NullString
		var empty bool
		if err := st.conn.QueryRowContext(ctx, `SELECT (SELECT conname FROM pg_constraint WHERE conrelid = to_regclass($1) AND contype = 'p'),
			NOT EXISTS (SELECT 1 FROM `+t.main+`)`, t.main).Scan(&pkey, &empty); err != nil || !empty || !pkey.Valid {
			return "", err
		}
		if _, err := st.conn.ExecContext(ctx, "ALTER TABLE "+t.main+" DROP CONSTRAINT "+quote(pkey.String)); err != nil {
			return "", err
		}
		for _, c := range st.unique {
			if _, err := st.conn.ExecContext(ctx, "DROP INDEX IF EXISTS "+quote(uniqueIndexName(r.Table, c))); err != nil {
				return "", err
			}
		}
		if err := st.conn.QueryRowContext(ctx, "SELECT to_regclass($1) IS NOT NULL", quote(changeIndexName(r.Table))).Scan(&st.changed); err != nil {
			return "", err
		}
		if st.changed {
			if _, err := st.conn.ExecContext(ctx, "DROP INDEX "+quote(changeIndexName(r.Table))); err != nil {
				return "", err
			}
		}
		return pkey.String, nil
	}
	pkey, err := take()
	if err != nil || pkey == "" {
		st.changed = false
		if _, rerr := st.conn.ExecContext(ctx, "ROLLBACK TO SAVEPOINT load"); rerr != nil {
			return "", false, fmt.Errorf("load: %w", rerr)
		}
		return "", false, nil
	}
	// Index builds sort a million keys in memory rather than on disk.
	if _, err := st.conn.ExecContext(ctx, "SET LOCAL lock_timeout TO DEFAULT; RELEASE SAVEPOINT load; SET LOCAL maintenance_work_mem = '256MB'"); err != nil {
		return "", false, fmt.Errorf("load: %w", err)
	}
	return pkey, true, nil
}

// encode appends a row for the table: on PostgreSQL to b in COPY's
// binary format, on SQLite its values to args, len(cols) of them
// whatever happens.
func (l *load) encode(b []byte, args []any, cols []Column, canon []string) ([]byte, []any, error) {
	if !l.binary {
		var first error
		for i, col := range cols {
			v, err := dbValue(col, canon[i])
			if err != nil && first == nil {
				first = fmt.Errorf("%s: %w", col.MachineName, err)
			}
			args = append(args, v)
		}
		return b, args, first
	}
	start := len(b)
	b = binary.BigEndian.AppendUint16(b, uint16(len(cols)))
	var err error
	for i := range cols {
		if b, err = appendBinary(b, &cols[i], canon[i]); err != nil {
			return b[:start], args, err
		}
	}
	return b, args, nil
}

// insertSQLite is the statement that loads n rows on SQLite, the lineage
// bound once before them.
func (l *load) insertSQLite(n int) string {
	sel := make([]string, l.width)
	for i := range sel {
		sel[i] = fmt.Sprintf("column%d", i+1)
	}
	row := "(" + store.Placeholders(l.width) + ")"
	return fmt.Sprintf("INSERT INTO %s (%s) SELECT %s, ?, ?, ?, ?, ?, NULL FROM (VALUES %s)",
		l.main, l.columns, strings.Join(sel, ", "), strings.TrimSuffix(strings.Repeat(row+", ", n), ", "))
}

// asideFlush is how many bytes of staged rows a load keeps while it
// copies rows into the table (PostgreSQL), before it pauses to copy them
// into the stage.
const asideFlush = 1 << 20

// copyLoad streams the chunks' rows for the table with COPY … (FORMAT
// binary) on the held connection, and their rows for the stage with COPY
// in text format, between two streams of the first: one connection runs
// one COPY at a time.
func (st *stage) copyLoad(ctx context.Context, full, free chan *chunk) error {
	return st.conn.Raw(func(dc any) error {
		c, ok := dc.(*stdlib.Conn)
		if !ok {
			return fmt.Errorf("not a pgx connection: %T", dc)
		}
		pg := c.Conn().PgConn()
		in := &loadReader{full: full, free: free}
		for !in.done {
			in.pending, in.ended = copyBinaryHeader, false
			if _, err := pg.CopyFrom(ctx, in, fmt.Sprintf("COPY %s (%s) FROM STDIN (FORMAT binary)", st.load.main, st.load.visible(st.cols))); err != nil {
				return err
			}
			if len(in.aside) > 0 {
				if _, err := pg.CopyFrom(ctx, bytes.NewReader(in.aside), fmt.Sprintf("COPY %s (%s) FROM STDIN", st.table, st.stageColumns())); err != nil {
					return err
				}
				in.aside = in.aside[:0]
			}
		}
		return nil
	})
}

// loadReader serves the chunks' rows for the table as one binary COPY
// stream and keeps their rows for the stage aside; when those pass
// asideFlush, or the chunks end, it ends the stream.
type loadReader struct {
	full, free chan *chunk
	cur        *chunk
	off        int
	aside      []byte
	pending    []byte // header or trailer still to send
	ended      bool   // the trailer is pending: EOF after it
	done       bool   // no more chunks
}

func (r *loadReader) Read(p []byte) (int, error) {
	for {
		if len(r.pending) > 0 {
			n := copy(p, r.pending)
			r.pending = r.pending[n:]
			return n, nil
		}
		if r.ended {
			return 0, io.EOF
		}
		if r.cur != nil && r.off < len(r.cur.load) {
			n := copy(p, r.cur.load[r.off:])
			r.off += n
			return n, nil
		}
		if r.cur != nil {
			r.aside = append(r.aside, r.cur.text...)
			r.free <- r.cur
			r.cur = nil
			if len(r.aside) >= asideFlush {
				r.pending, r.ended = copyBinaryEnd, true
				continue
			}
		}
		c, ok := <-r.full
		if !ok {
			r.pending, r.ended, r.done = copyBinaryEnd, true, true
			continue
		}
		r.cur, r.off = c, 0
	}
}

// visible names the columns a row of the COPY fills.
func (l *load) visible(cols []Column) string {
	names := make([]string, len(cols))
	for i, c := range cols {
		names[i] = quote(c.MachineName)
	}
	return strings.Join(names, ", ")
}

// endLoad builds the indexes dropped for the load (on PostgreSQL after
// taking back the lineage defaults).
func (st *stage) endLoad(ctx context.Context, r Resource) error {
	t := tablesOf(r.Table)
	if st.load.binary {
		if _, err := st.conn.ExecContext(ctx, st.load.dropDefaults()); err != nil {
			return fmt.Errorf("load: %w", err)
		}
	}
	build := []string{keyIndexDDL(r.Table, st.cols)}
	if st.d == store.Postgres {
		var keys []string
		for _, i := range st.keys {
			keys = append(keys, quote(st.cols[i].MachineName))
		}
		build[0] = fmt.Sprintf("ALTER TABLE %s ADD CONSTRAINT %s PRIMARY KEY (%s)", t.main, quote(st.load.pkey), strings.Join(keys, ", "))
	}
	for _, c := range st.unique {
		build = append(build, uniqueIndexDDL(r.Table, c))
	}
	if st.load.changed {
		build = append(build, changeIndexDDL(r.Table, ""))
	}
	for _, q := range build {
		if _, err := st.conn.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("load: build index: %w", err)
		}
	}
	if st.d == store.Postgres {
		// The planner's statistics still say the table is empty until
		// autovacuum gets to it, a while after the commit: reading the
		// batch's changes back for the subscribers (keyset pages of
		// changes.go) would meanwhile be planned as sorts of the whole
		// table, page after page (a million rows: 2.5 s a page). ANALYZE
		// in the load's transaction samples the rows it loaded.
		if _, err := st.conn.ExecContext(ctx, "ANALYZE "+t.main); err != nil {
			return fmt.Errorf("load: analyze: %w", err)
		}
	}
	return nil
}

// applyLoad finishes a load: the staged upserts that passed are inserted
// (the first of their keys and values, as the loaded rows are), then the
// quarantine, the counts, the commit.
func (s *Service) applyLoad(ctx context.Context, st *stage, r Resource, batchID int64, total, bad int64, report []byte) error {
	l := st.load
	a := applied{upserts: st.upserts, deletes: st.deletes, inserted: l.rows}
	return st.commit(ctx, func(q querier) error {
		if st.upserts > l.rows {
			sel := make([]string, len(st.cols))
			for i, c := range st.cols {
				sel[i] = "s." + quote(c.MachineName)
			}
			res, err := q.exec(ctx, fmt.Sprintf(`INSERT INTO %s (%s) SELECT %s, ?, ?, ?, ?, ?, NULL FROM %s s WHERE s."_viol" IS NULL AND s."_op" = 'upsert'`,
				l.main, l.columns, strings.Join(sel, ", "), st.table), l.lineage...)
			if err != nil {
				return fmt.Errorf("insert: %w", err)
			}
			n, err := res.RowsAffected()
			if err != nil {
				return err
			}
			a.inserted += n
		}
		return s.finish(ctx, q, st, r, batchID, a, total, bad, report, l.now)
	})
}
