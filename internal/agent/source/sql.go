package source

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"
)

// dialect is what PostgreSQL, MySQL and SQLite do differently; sqlEngine
// does the rest with database/sql.
type dialect interface {
	name() string
	quote(ident string) string
	param(n int) string // the n-th placeholder, from 1
	// selectExpr is how a column is selected.
	selectExpr(col string, c *Column) string
	// orderExpr is the expression a key column sorts and compares by:
	// text byte-wise, everything else natively (see KeyOrder).
	orderExpr(col string, c *Column) string
	// bind returns SQL comparable with orderExpr for the canonical value v
	// of column c, held in placeholder n, and that placeholder's argument.
	bind(c *Column, v string, n int) (string, any, error)
	// timeExpr and bindTime compare a date-time column with an instant.
	timeExpr(col string, c *Column) string
	bindTime(c *Column, t time.Time, n int) (string, any)
	nowSQL() string
	// precision is the finest time step the database compares; window
	// bounds are cut to it so that no row falls between two windows.
	precision() time.Duration
	tables(ctx context.Context, db *sql.DB) ([]Table, error)
	columns(ctx context.Context, db *sql.DB, t Table) ([]Column, error)
	// explain turns a connection error into a ConnError saying what to do,
	// or returns it unchanged.
	explain(err error) error
	// readOnlyTx says reads run in a READ ONLY transaction (SQLite is
	// opened read-only instead).
	readOnlyTx() bool
}

type sqlEngine struct {
	db      *sql.DB
	d       dialect
	display string // the DSN without its password, for messages
	// rows, when set, streams a query's rows in place of sqlRows: a
	// dialect's faster path around database/sql.
	rows rowsFunc
}

// rowsFunc runs query with args in a read-only transaction (where the
// dialect has one) and hands each row, made canonical for cols, to each.
// It holds no more than the current row.
type rowsFunc func(ctx context.Context, query string, args []any, cols []Column, each func(Row) error) error

func (e *sqlEngine) close() error             { return e.db.Close() }
func (e *sqlEngine) precision() time.Duration { return e.d.precision() }

func (e *sqlEngine) test(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if err := e.db.PingContext(ctx); err != nil {
		return fmt.Errorf("connect to %s %s: %w", e.d.name(), e.display, e.d.explain(err))
	}
	return nil
}

func (e *sqlEngine) tables(ctx context.Context) ([]Table, error) {
	ts, err := e.d.tables(ctx, e.db)
	if err != nil {
		return nil, fmt.Errorf("list tables of %s: %w", e.display, e.d.explain(err))
	}
	return ts, nil
}

func (e *sqlEngine) columns(ctx context.Context, t Table) ([]Column, error) {
	if t.Name == "" {
		return nil, fmt.Errorf("columns: %w: no table name", ErrBadQuery)
	}
	cols, err := e.d.columns(ctx, e.db, t)
	if err != nil {
		return nil, fmt.Errorf("columns of %s: %w", t, e.d.explain(err))
	}
	if len(cols) == 0 {
		return nil, fmt.Errorf("columns of %s: table %w (or the user may not read it)", t, ErrNotFound)
	}
	return cols, nil
}

func (e *sqlEngine) now(ctx context.Context) (time.Time, error) {
	var v nowValue
	if err := e.db.QueryRowContext(ctx, e.d.nowSQL()).Scan(&v); err != nil {
		return time.Time{}, fmt.Errorf("read the clock of %s: %w", e.display, e.d.explain(err))
	}
	return v.t, v.err
}

// nowValue reads the clock query's result: an instant, or UTC text.
type nowValue struct {
	t   time.Time
	err error
}

func (n *nowValue) Scan(src any) error {
	switch v := src.(type) {
	case time.Time:
		n.t = v.UTC()
		return nil
	case []byte:
		src = string(v)
	}
	s, _ := src.(string)
	t, ok := parseDateTime(s, time.UTC)
	if !ok {
		return fmt.Errorf("unexpected clock value %v", src)
	}
	n.t = t.UTC()
	return nil
}

// from is the FROM item of a query: the quoted table or the custom SELECT
// as a derived table.
func (e *sqlEngine) from(q Query) (string, error) {
	if q.SQL == "" {
		return e.quoteTable(q.Table), nil
	}
	s, err := checkSelect(q.SQL)
	if err != nil {
		return "", err
	}
	return "(" + s + ") q", nil
}

func (e *sqlEngine) quoteTable(t Table) string {
	if t.Schema == "" {
		return e.d.quote(t.Name)
	}
	return e.d.quote(t.Schema) + "." + e.d.quote(t.Name)
}

// checkSelect accepts one SELECT or WITH statement; a trailing ';' is
// dropped. It is the administrator's own SQL, run read-only: the check
// keeps a second statement out, not an attacker.
func checkSelect(s string) (string, error) {
	s = strings.TrimSpace(s)
	s = strings.TrimSpace(strings.TrimSuffix(s, ";"))
	n := 0
	for n < len(s) && (s[n]|0x20 >= 'a' && s[n]|0x20 <= 'z') {
		n++
	}
	first := strings.ToLower(s[:n])
	switch {
	case first != "select" && first != "with":
		return "", fmt.Errorf("%w: the custom query must be a SELECT", ErrBadQuery)
	case strings.Contains(s, ";"):
		return "", fmt.Errorf("%w: the custom query must be one statement, without ';'", ErrBadQuery)
	}
	return s, nil
}

// describe returns every column of the table or query result, with the
// table's primary-key positions.
func (e *sqlEngine) describe(ctx context.Context, q Query) ([]Column, error) {
	if q.SQL == "" {
		return e.columns(ctx, q.Table)
	}
	from, err := e.from(q)
	if err != nil {
		return nil, err
	}
	var cols []Column
	err = e.read(ctx, func(tx querier) error {
		rows, err := tx.QueryContext(ctx, "SELECT * FROM "+from+" WHERE 1=0")
		if err != nil {
			return err
		}
		defer rows.Close()
		cts, err := rows.ColumnTypes()
		if err != nil {
			return err
		}
		for _, ct := range cts {
			typ := ct.DatabaseTypeName()
			if p, s, ok := ct.DecimalSize(); ok && p > 0 && p < 1000 && !strings.Contains(typ, "(") {
				typ = fmt.Sprintf("%s(%d,%d)", typ, p, s)
			} else if l, ok := ct.Length(); ok && l > 0 && l < 1<<20 && !strings.Contains(typ, "(") {
				typ = fmt.Sprintf("%s(%d)", typ, l)
			}
			nullable, ok := ct.Nullable()
			cols = append(cols, classify(e.d.name(), typ).column(ct.Name(), typ, nullable || !ok))
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("describe the custom query: %w", e.d.explain(err))
	}
	return cols, nil
}

type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// read runs fn in a read-only transaction where the dialect has one, so
// that a custom query (or a function it calls) cannot write.
func (e *sqlEngine) read(ctx context.Context, fn func(q querier) error) error {
	if !e.d.readOnlyTx() {
		return fn(e.db)
	}
	tx, err := e.db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return err
	}
	defer tx.Rollback() //nolint:errcheck // read-only: nothing to keep
	return fn(tx)
}

// scan streams p's rows with keys in r, in key order.
func (e *sqlEngine) scan(ctx context.Context, p *plan, r KeyRange, each func(Row) error) error {
	from, err := e.from(p.q)
	if err != nil {
		return err
	}
	var (
		where []string
		args  []any
		order = make([]string, len(p.key))
	)
	for i, k := range p.key {
		order[i] = e.d.orderExpr(e.d.quote(p.cols[k].Name), &p.cols[k])
	}
	bound := func(k Key, op string) error {
		if k == nil {
			return nil
		}
		if len(k) != len(p.key) {
			return fmt.Errorf("%w: key %v has %d values, the key has %d columns", ErrBadQuery, k, len(k), len(p.key))
		}
		vals := make([]string, len(k))
		for i, v := range k {
			c := &p.cols[p.key[i]]
			s, arg, err := e.d.bind(c, v, len(args)+1)
			if err != nil {
				return fmt.Errorf("key column %s: %w", c.Name, err)
			}
			vals[i], args = s, append(args, arg)
		}
		if len(k) == 1 {
			where = append(where, order[0]+" "+op+" "+vals[0])
		} else {
			where = append(where, "("+strings.Join(order, ", ")+") "+op+" ("+strings.Join(vals, ", ")+")")
		}
		return nil
	}
	if err := bound(r.After, ">"); err != nil {
		return err
	}
	if err := bound(r.Through, "<="); err != nil {
		return err
	}
	return e.query(ctx, p, from, where, order, args, each)
}

// window streams p's rows whose column tc is in (from, upper], ordered by
// it and then by key.
func (e *sqlEngine) window(ctx context.Context, p *plan, tc int, from, upper time.Time, each func(Row) error) error {
	src, err := e.from(p.q)
	if err != nil {
		return err
	}
	c := &p.cols[tc]
	expr := e.d.timeExpr(e.d.quote(c.Name), c)
	var (
		where []string
		args  []any
	)
	if !from.IsZero() {
		s, arg := e.d.bindTime(c, from, len(args)+1)
		where, args = append(where, expr+" > "+s), append(args, arg)
	}
	s, arg := e.d.bindTime(c, upper, len(args)+1)
	where, args = append(where, expr+" <= "+s), append(args, arg)
	order := []string{expr}
	for _, k := range p.key {
		order = append(order, e.d.orderExpr(e.d.quote(p.cols[k].Name), &p.cols[k]))
	}
	return e.query(ctx, p, src, where, order, args, each)
}

func (e *sqlEngine) query(ctx context.Context, p *plan, from string, where, order []string, args []any, each func(Row) error) error {
	var b strings.Builder
	b.WriteString("SELECT ")
	for i, c := range p.cols {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(e.d.selectExpr(e.d.quote(c.Name), &c))
	}
	b.WriteString(" FROM ")
	b.WriteString(from)
	if len(where) > 0 {
		b.WriteString(" WHERE ")
		b.WriteString(strings.Join(where, " AND "))
	}
	if len(order) > 0 {
		b.WriteString(" ORDER BY ")
		b.WriteString(strings.Join(order, ", "))
	}
	rows := e.rows
	if rows == nil {
		rows = e.sqlRows
	}
	var stop error // an error of each, returned as it is
	err := rows(ctx, b.String(), args, p.cols, func(r Row) error {
		if err := each(r); err != nil {
			stop = err
			return err
		}
		return nil
	})
	if stop != nil {
		return stop
	}
	if err != nil {
		return fmt.Errorf("read %s from %s: %w", p.q, e.display, e.d.explain(err))
	}
	return nil
}

// sqlRows is the rowsFunc of database/sql, for every dialect.
func (e *sqlEngine) sqlRows(ctx context.Context, query string, args []any, cols []Column, each func(Row) error) error {
	return e.read(ctx, func(tx querier) error {
		rows, err := tx.QueryContext(ctx, query, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		rb := newRowBuilder(cols)
		for rows.Next() {
			if err := rows.Scan(rb.dest...); err != nil {
				return err
			}
			if err := each(rb.row()); err != nil {
				return err
			}
		}
		return rows.Err()
	})
}

// rowBuilder turns scanned driver values into canonical rows: each cell
// appends its value's text to one buffer, and a row's values are slices of
// one string, so that a row costs one allocation beyond its block.
type rowBuilder struct {
	kinds []kind
	dest  []any
	cells []cell
	buf   []byte
	block []Value
}

type cell struct {
	rb         *rowBuilder
	i          int
	start, end int
	null       bool
}

func (c *cell) Scan(src any) error {
	c.start = len(c.rb.buf)
	c.rb.buf, c.null = appendCanonical(c.rb.buf, c.rb.kinds[c.i], src)
	c.end = len(c.rb.buf)
	return nil
}

func newRowBuilder(cols []Column) *rowBuilder {
	rb := &rowBuilder{kinds: make([]kind, len(cols)), dest: make([]any, len(cols)), cells: make([]cell, len(cols))}
	for i, c := range cols {
		rb.kinds[i] = c.kind
		rb.cells[i] = cell{rb: rb, i: i}
		rb.dest[i] = &rb.cells[i]
	}
	return rb
}

const blockRows = 256

func (rb *rowBuilder) row() Row {
	n := len(rb.cells)
	if len(rb.block) < n {
		rb.block = make([]Value, n*blockRows)
	}
	row := Row(rb.block[:n:n])
	rb.block = rb.block[n:]
	s := string(rb.buf)
	for i := range rb.cells {
		c := &rb.cells[i]
		row[i] = Value{Text: s[c.start:c.end], Null: c.null}
	}
	rb.buf = rb.buf[:0]
	return row
}

// netProblem explains the network errors every server dialect shares.
func netProblem(err error) error {
	var dns *net.DNSError
	var op *net.OpError
	switch {
	case errors.As(err, &dns):
		return &ConnError{Kind: ErrUnreachable, ZH: "找不到数据库服务器主机名，请检查主机地址", EN: "unknown host: check the host name", Err: err}
	case errors.Is(err, context.DeadlineExceeded):
		return &ConnError{Kind: ErrUnreachable, ZH: "数据库服务器无应答，请检查地址、端口和防火墙", EN: "the server does not answer: check the address, the port and the firewall", Err: err}
	case errors.As(err, &op) && op.Op == "dial":
		return &ConnError{Kind: ErrUnreachable, ZH: "无法连接数据库服务器，请检查地址和端口，确认数据库已启动、防火墙已放行", EN: "cannot reach the server: check the host and port, that the database is running and that the firewall lets the node through", Err: err}
	}
	return nil
}

// queryAll runs q and scans every row with scan.
func queryAll[T any](ctx context.Context, db *sql.DB, scan func(*sql.Rows) (T, error), q string, args ...any) ([]T, error) {
	rows, err := db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// scanColumn reads a (name, type, nullable, key position) row of a
// catalog query and suggests the column's catalog type for kind.
func scanColumn(kind string) func(*sql.Rows) (Column, error) {
	return func(r *sql.Rows) (Column, error) {
		var (
			name, typ string
			nullable  bool
			key       int
		)
		if err := r.Scan(&name, &typ, &nullable, &key); err != nil {
			return Column{}, err
		}
		c := classify(kind, typ).column(name, typ, nullable)
		c.Key = key
		return c, nil
	}
}
