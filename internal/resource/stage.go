package resource

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"slices"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/stdlib"

	"govshare/internal/quality"
	"govshare/internal/store"
)

// A batch is staged in a temporary table, on one connection held for the
// whole batch: every row read, in file order, the good ones with their
// canonical values in the resource's column types, the bad ones with their
// violations and values as received. Keys repeated within the batch and
// clashes of unique items are then found set-based, and the apply reads
// the table on the same connection.
//
// Temporary tables are written without the write-ahead log on both
// engines, are seen by their connection only and need no batch column.
// Each connection keeps one per resource and shape of its columns, empty
// between batches, so a small batch (the push API's) pays for no table
// being created and finds its statements prepared. On PostgreSQL the
// whole batch is one transaction and the table is emptied when it ends
// (ON COMMIT DELETE ROWS): whatever fails, nothing is left behind. On
// SQLite, which has one writer, the table lives across transactions:
// staging writes only the temporary table and takes no lock on the
// database, so a million rows being staged hold up neither the audit log
// nor other batches; only the apply takes the write lock, and the table is
// emptied after it. A batch into an empty resource is the exception: it
// is loaded straight into the resource's table, in one transaction from
// its first row (load.go).
type stage struct {
	conn  *sql.Conn
	d     store.Dialect
	table string // qualified and quoted
	cols  []Column
	keys  []int // positions of the key columns in cols
	// unique are the items that must be unique, and watch the filter
	// that marks rows whose key or unique values probably repeat.
	unique []Column
	// changed: the load took the table with its change index, dropped
	// (load.go).
	changed bool
	watch   *repeatWatch
	// open is true while a transaction is: on PostgreSQL the batch's, on
	// SQLite a load's.
	open bool
	// load, when set, takes the good rows straight into the resource's
	// empty table (load.go); the stage holds only the others.
	load *load
	// sorted names the copy of the good rows in key order, and filled
	// which tables hold rows to clear (SQLite).
	sorted string
	filled []string
	// upserts and deletes count the good rows to apply.
	upserts, deletes int64
	// applying is the caller's part of the apply's transaction
	// (SubmitOptions.Applying).
	applying func(ctx context.Context, tx Execer, b Batch) error
}

// stageChunk is how many rows travel together from the reader to the
// writer; a few chunks are in flight at most, so memory stays bounded
// whatever the size of the batch.
const stageChunk = 1000

// sqliteRowsPerInsert is how many rows one INSERT stages on SQLite: the
// driver binds arguments in time growing with the square of their number
// per statement, so ten rows (150 values) is faster than a hundred.
const sqliteRowsPerInsert = 10

func (s *Service) openStage(ctx context.Context, r Resource, cols []Column) (*stage, error) {
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return nil, err
	}
	d := s.db.Dialect()
	st := &stage{conn: conn, d: d, cols: cols, keys: keyPositions(cols), unique: s.uniqueColumns(cols)}
	var unique []int
	for _, u := range st.unique {
		unique = append(unique, slices.IndexFunc(cols, func(c Column) bool { return c.MachineName == u.MachineName }))
	}
	st.watch = newRepeatWatch(cols, st.keys, unique)
	defs := st.defs(true)
	shape := fnv.New32a()
	shape.Write([]byte(defs))
	name := quote(fmt.Sprintf("stage_%d_%08x", r.ID, shape.Sum32()))
	create := fmt.Sprintf("CREATE TEMPORARY TABLE IF NOT EXISTS %s (%s)", name, defs)
	st.table = "temp." + name
	if d == store.Postgres {
		st.table = "pg_temp." + name
		// Sorts and hashes over a million rows get memory enough not to
		// spill to disk. The batch's statements are compiled by no JIT:
		// over tables it has no statistics of yet, the planner's costs
		// would call for it, and compiling takes longer than running.
		// A records table is read through its key index at the cost of
		// storage that seeks freely (SSD, or the table in memory): at
		// the default cost of a disk's seek, the planner would rather
		// scan a million records than look up a batch's thousands of keys.
		create = "BEGIN; SET LOCAL work_mem = '64MB'; SET LOCAL jit = off; SET LOCAL random_page_cost = 1.1; " + create + " ON COMMIT DELETE ROWS"
		st.open = true
	} else {
		st.filled = append(st.filled, st.table)
	}
	if _, err := conn.ExecContext(ctx, create); err != nil {
		st.close(ctx)
		return nil, fmt.Errorf("stage: %w", err)
	}
	return st, nil
}

// defs are the stage's column definitions. On SQLite the row number is
// the table's rowid when rowid is set, so rows are found by it without a
// scan.
func (st *stage) defs(rowid bool) string {
	row := `"_row" BIGINT NOT NULL`
	if st.d == store.SQLite && rowid {
		row = `"_row" INTEGER PRIMARY KEY`
	}
	defs := []string{row, `"_op" TEXT NOT NULL`}
	for _, c := range st.cols {
		defs = append(defs, columnDef(st.d, c))
	}
	return strings.Join(append(defs, `"_maybe" BIGINT NOT NULL`, `"_viol" TEXT`, `"_raw" TEXT`), ", ")
}

// sortByKey copies the good rows into a second temporary table, in key
// order.
func (st *stage) sortByKey(ctx context.Context) error {
	name := strings.TrimSuffix(st.table, `"`) + `_sorted"`
	var keys []string
	for _, i := range st.keys {
		keys = append(keys, quote(st.cols[i].MachineName))
	}
	create := fmt.Sprintf("CREATE TEMPORARY TABLE IF NOT EXISTS %s (%s)", name[strings.IndexByte(name, '.')+1:], st.defs(false))
	if st.d == store.Postgres {
		create += " ON COMMIT DELETE ROWS"
	}
	return st.step(ctx, func(q querier) error {
		if _, err := q.exec(ctx, create); err != nil {
			return err
		}
		st.sorted = name
		if st.d == store.SQLite {
			st.filled = append(st.filled, name)
		}
		_, err := q.exec(ctx, fmt.Sprintf(`INSERT INTO %s (%s) SELECT %s FROM %s WHERE "_viol" IS NULL ORDER BY %s`,
			name, st.stageColumns(), st.stageColumns(), st.table, strings.Join(keys, ", ")))
		return err
	})
}

// close gives the connection back with its tables empty: on PostgreSQL
// by ending the batch's transaction if it is still open, on SQLite by
// deleting their rows. A connection that cannot be cleaned is discarded,
// never reused with rows or a transaction left on it. It may be called
// more than once.
func (st *stage) close(ctx context.Context) {
	if st.conn == nil {
		return
	}
	ctx = context.WithoutCancel(ctx)
	var err error
	if st.open {
		_, err = st.conn.ExecContext(ctx, "ROLLBACK")
		st.open = false
	}
	for _, t := range st.filled {
		if err == nil {
			_, err = st.conn.ExecContext(ctx, "DELETE FROM "+t)
		}
	}
	if err != nil {
		_ = st.conn.Raw(func(any) error { return driver.ErrBadConn })
	}
	st.conn.Close()
	st.conn = nil
}

func (st *stage) exec(ctx context.Context, q string, args ...any) (sql.Result, error) {
	return st.conn.ExecContext(ctx, store.RebindFor(st.d, q), args...)
}

// counts of what the reader found.
type readCounts struct {
	total, bad       int64
	upserts, deletes int64 // good rows
	loaded           int64 // good rows taken straight into the table
	rep              reportBuilder
}

// stageRows reads the batch, checks every row and writes it to the stage,
// or the table when loading. Reading and checking run in goroutines of
// their own (read.go), beside the writer, with a few chunks between them.
// It stops early, with the rows read so far, once more rows failed than
// the batch allows.
func (s *Service) stageRows(ctx context.Context, st *stage, h header, chk *quality.Checker, opt SubmitOptions, rows Rows) (readCounts, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	full := make(chan *chunk, 2)
	free := make(chan *chunk, 4)
	for range cap(free) {
		free <- &chunk{}
	}
	var rc readCounts
	readErr := make(chan error, 1)
	go func() {
		defer close(full)
		defer func() {
			// A panic here would take the whole server down, not just the
			// request: it becomes the batch's error.
			if p := recover(); p != nil {
				readErr <- fmt.Errorf("read rows: panic: %v", p)
			}
		}()
		readErr <- st.read(ctx, h, chk, opt, rows, &rc, full, free)
	}()
	var werr error
	switch {
	case st.d == store.SQLite:
		werr = st.insertChunks(ctx, full, free)
	case st.load != nil:
		werr = st.copyLoad(ctx, full, free)
	default:
		werr = st.copyChunks(ctx, full, free)
	}
	if werr != nil {
		cancel()
		for range full { // the reader must be done with rows before Submit returns
		}
	}
	switch rerr := <-readErr; {
	case rerr != nil && (werr == nil || !errors.Is(rerr, context.Canceled)):
		return rc, rerr // the data's error, or the caller's
	case werr != nil:
		return rc, fmt.Errorf("stage: %w", werr)
	}
	if st.d == store.Postgres && rc.total-rc.loaded > 1000 {
		// The planner knows nothing of a temporary table until told.
		if _, err := st.exec(ctx, "ANALYZE "+st.table); err != nil {
			return rc, fmt.Errorf("stage: %w", err)
		}
	}
	return rc, nil
}

// chunk is rows on their way to the stage, encoded for the engine.
type chunk struct {
	n    int
	text []byte // PostgreSQL: rows for the stage, COPY text format
	args []any  // SQLite: values of rows for the stage, row after row
	// Rows for the table, when loading: on PostgreSQL in COPY's binary
	// format, on SQLite their values.
	load     []byte
	loadArgs []any
}

func (st *stage) encodeGood(c *chunk, row int64, op string, canon []string, maybe int64) error {
	if st.d == store.Postgres {
		c.text = strconv.AppendInt(c.text, row, 10)
		c.text = append(c.text, '\t')
		c.text = append(c.text, op...)
		for i, col := range st.cols {
			c.text = append(c.text, '\t')
			v := canon[i]
			switch {
			case v == "":
				c.text = append(c.text, `\N`...)
			case col.DataType == "G":
				b, err := base64.StdEncoding.DecodeString(v)
				if err != nil {
					return fmt.Errorf("%s: %w", col.MachineName, err)
				}
				c.text = append(c.text, `\\x`...)
				c.text = hex.AppendEncode(c.text, b)
			default:
				c.text = appendCopyText(c.text, v)
			}
		}
		c.text = append(c.text, '\t')
		c.text = strconv.AppendInt(c.text, maybe, 10)
		c.text = append(c.text, "\t\\N\t\\N\n"...)
		return nil
	}
	c.args = append(c.args, row, op)
	for i, col := range st.cols {
		v, err := dbValue(col, canon[i])
		if err != nil {
			return fmt.Errorf("%s: %w", col.MachineName, err)
		}
		c.args = append(c.args, v)
	}
	c.args = append(c.args, maybe, nil, nil)
	return nil
}

func (st *stage) encodeBad(c *chunk, row int64, op, raw, viol string) error {
	if st.d == store.Postgres {
		c.text = strconv.AppendInt(c.text, row, 10)
		c.text = append(c.text, '\t')
		c.text = append(c.text, op...)
		for range st.cols {
			c.text = append(c.text, "\t\\N"...)
		}
		c.text = append(c.text, "\t0\t"...)
		c.text = appendCopyText(c.text, viol)
		c.text = append(c.text, '\t')
		c.text = appendCopyText(c.text, raw)
		c.text = append(c.text, '\n')
		return nil
	}
	c.args = append(c.args, row, op)
	for range st.cols {
		c.args = append(c.args, nil)
	}
	c.args = append(c.args, int64(0), viol, raw)
	return nil
}

// appendCopyText writes s as a field of COPY's text format.
func appendCopyText(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\\':
			b = append(b, '\\', '\\')
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		case '\t':
			b = append(b, '\\', 't')
		default:
			b = append(b, c)
		}
	}
	return b
}

// stageColumns lists the stage's columns in the order rows are encoded.
func (st *stage) stageColumns() string {
	names := []string{`"_row"`, `"_op"`}
	for _, c := range st.cols {
		names = append(names, quote(c.MachineName))
	}
	return strings.Join(append(names, `"_maybe"`, `"_viol"`, `"_raw"`), ", ")
}

// copyChunks streams the chunks into the stage with one COPY … FROM STDIN
// on the held connection (pgx underneath database/sql).
func (st *stage) copyChunks(ctx context.Context, full, free chan *chunk) error {
	return st.conn.Raw(func(dc any) error {
		c, ok := dc.(*stdlib.Conn)
		if !ok {
			return fmt.Errorf("not a pgx connection: %T", dc)
		}
		r := &chunkReader{full: full, free: free}
		_, err := c.Conn().PgConn().CopyFrom(ctx, r, fmt.Sprintf("COPY %s (%s) FROM STDIN", st.table, st.stageColumns()))
		return err
	})
}

// chunkReader serves the chunks' text as one stream.
type chunkReader struct {
	full, free chan *chunk
	cur        *chunk
	off        int
}

func (r *chunkReader) Read(p []byte) (int, error) {
	for r.cur == nil || r.off == len(r.cur.text) {
		if r.cur != nil {
			r.free <- r.cur
			r.cur = nil
		}
		c, ok := <-r.full
		if !ok {
			return 0, io.EOF
		}
		r.cur, r.off = c, 0
	}
	n := copy(p, r.cur.text[r.off:])
	r.off += n
	return n, nil
}

// insertChunks stages the chunks with multi-row INSERTs on SQLite, a
// transaction per chunk. The table is temporary, so these transactions
// do not lock the database file. When loading, the rows for the table are
// inserted the same way, in the load's transaction.
//
// The statements run on the driver's connection itself: database/sql
// would check and copy every one of a million rows' values, and allocate
// their list for every statement, for nothing the driver needs.
func (st *stage) insertChunks(ctx context.Context, full, free chan *chunk) error {
	return st.conn.Raw(func(dc any) error {
		conn, ok := dc.(sqliteConn)
		if !ok {
			return fmt.Errorf("not a driver connection with contexts: %T", dc)
		}
		width := len(st.cols) + 5
		row := "(" + store.Placeholders(width) + ")"
		toStage, err := newRowInserter(ctx, conn, width, nil, func(n int) string {
			return fmt.Sprintf("INSERT INTO %s (%s) VALUES %s", st.table, st.stageColumns(), strings.TrimSuffix(strings.Repeat(row+", ", n), ", "))
		})
		if err != nil {
			return err
		}
		defer toStage.close()
		var toLoad *rowInserter
		if st.load != nil {
			if toLoad, err = newRowInserter(ctx, conn, len(st.cols), st.load.lineage, st.load.insertSQLite); err != nil {
				return err
			}
			defer toLoad.close()
		}
		exec := func(q string) error {
			_, err := conn.ExecContext(ctx, q, nil)
			return err
		}
		for c := range full {
			// In a deferred transaction of its own, as step does, unless
			// the load's is open.
			err := func() error {
				if !st.open {
					if err := exec("BEGIN DEFERRED"); err != nil {
						return err
					}
				}
				err := toStage.insert(ctx, c.args)
				if err == nil && toLoad != nil {
					err = toLoad.insert(ctx, c.loadArgs)
				}
				switch {
				case st.open:
				case err != nil:
					if _, rerr := conn.ExecContext(context.WithoutCancel(ctx), "ROLLBACK", nil); rerr != nil {
						// Never reused with the transaction open.
						return fmt.Errorf("%w (rollback: %w)", err, driver.ErrBadConn)
					}
				default:
					err = exec("COMMIT")
				}
				return err
			}()
			free <- c
			if err != nil {
				return err
			}
		}
		return nil
	})
}

// sqliteConn is the driver connection insertChunks uses.
type sqliteConn interface {
	driver.ConnPrepareContext
	driver.ExecerContext
}

// rowInserter inserts rows of width values with a statement of
// sqliteRowsPerInsert rows prepared once, and the rest with one of their
// own; fixed values, if any, come before each statement's rows.
type rowInserter struct {
	conn   sqliteConn
	width  int
	fixed  []any
	sql    func(rows int) string
	stmt   driver.StmtExecContext
	closer driver.Stmt
	args   []driver.NamedValue
}

func newRowInserter(ctx context.Context, conn sqliteConn, width int, fixed []any, sql func(rows int) string) (*rowInserter, error) {
	stmt, err := conn.PrepareContext(ctx, sql(sqliteRowsPerInsert))
	if err != nil {
		return nil, err
	}
	exec, ok := stmt.(driver.StmtExecContext)
	if !ok {
		stmt.Close()
		return nil, fmt.Errorf("not a driver statement with contexts: %T", stmt)
	}
	return &rowInserter{conn: conn, width: width, fixed: fixed, sql: sql, stmt: exec, closer: stmt}, nil
}

func (ri *rowInserter) insert(ctx context.Context, values []any) error {
	full := sqliteRowsPerInsert * ri.width
	for len(values) > 0 {
		n := min(len(values), full)
		ri.args = ri.args[:0]
		for _, v := range ri.fixed {
			ri.args = append(ri.args, driver.NamedValue{Ordinal: len(ri.args) + 1, Value: v})
		}
		for _, v := range values[:n] {
			ri.args = append(ri.args, driver.NamedValue{Ordinal: len(ri.args) + 1, Value: v})
		}
		var err error
		if n == full {
			_, err = ri.stmt.ExecContext(ctx, ri.args)
		} else {
			_, err = ri.conn.ExecContext(ctx, ri.sql(n/ri.width), ri.args)
		}
		if err != nil {
			return err
		}
		values = values[n:]
	}
	return nil
}

func (ri *rowInserter) close() { ri.closer.Close() }

// step runs fn, which writes only the temporary tables: on PostgreSQL in
// the batch's transaction, on SQLite in a deferred transaction of its own,
// which, unlike the immediate ones the store begins, takes no lock on the
// database for them.
func (st *stage) step(ctx context.Context, fn func(q querier) error) error {
	q := querier{st.conn, st.d}
	if st.open {
		return fn(q)
	}
	if _, err := st.conn.ExecContext(ctx, "BEGIN DEFERRED"); err != nil {
		return err
	}
	if err := fn(q); err != nil {
		if _, rerr := st.conn.ExecContext(context.WithoutCancel(ctx), "ROLLBACK"); rerr != nil {
			_ = st.conn.Raw(func(any) error { return driver.ErrBadConn })
		}
		return err
	}
	if _, err := st.conn.ExecContext(ctx, "COMMIT"); err != nil {
		_, _ = st.conn.ExecContext(context.WithoutCancel(ctx), "ROLLBACK")
		return err
	}
	return nil
}

// commit runs fn, the apply, and commits: the transaction open on the
// connection (the batch's on PostgreSQL, a load's on SQLite), or on
// SQLite an immediate transaction that holds the database's write lock
// until it commits.
func (st *stage) commit(ctx context.Context, fn func(q querier) error) error {
	if st.open {
		if err := fn(querier{st.conn, st.d}); err != nil {
			return err
		}
		st.open = false
		if _, err := st.conn.ExecContext(ctx, "COMMIT"); err != nil {
			return fmt.Errorf("commit: %w", err)
		}
		return nil
	}
	tx, err := st.conn.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	if err := fn(querier{tx, st.d}); err != nil {
		_ = tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}
