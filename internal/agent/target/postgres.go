package target

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib" // registers the "pgx" driver

	"govshare/internal/agent/source"
)

// PostgreSQL types of the data items in a table Ensure creates. Date-times
// are instants (timestamptz) and read back in UTC whatever the server's
// zone; numeric without a precision keeps every digit.
var pgTypes = map[string]string{
	"C": "text", "M": "text", "I": "bigint", "N": "numeric", "Y": "numeric",
	"B": "double precision", "F": "real", "L": "boolean", "D": "date",
	"T": "timestamp with time zone", "G": "bytea",
}

// pgEngine writes a delivery with COPY into a temporary table and one
// INSERT … ON CONFLICT … DO UPDATE … WHERE (row IS DISTINCT) that counts
// inserted (xmax = 0) and updated rows, then one DELETE … USING.
type pgEngine struct {
	db      *sql.DB
	display string

	mu       sync.Mutex
	upsertIn map[tableName]int // deliveries still to upsert before copying again
}

func openPostgres(dsn string) (engine, error) {
	cfg, err := pgconn.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("read the connection URL: %w", err)
	}
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(8)
	db.SetMaxIdleConns(2)
	db.SetConnMaxIdleTime(5 * time.Minute)
	display := fmt.Sprintf("postgres://%s@%s:%d/%s", cfg.User, cfg.Host, cfg.Port, cfg.Database)
	return &pgEngine{db: db, display: display, upsertIn: map[tableName]int{}}, nil
}

func (e *pgEngine) close() error { return e.db.Close() }

func (e *pgEngine) test(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if err := e.db.PingContext(ctx); err != nil {
		return fmt.Errorf("connect to postgres %s: %w", e.display, pgExplain(err))
	}
	return nil
}

// raw runs fn on one pgx connection of the pool: COPY needs pgx itself.
func (e *pgEngine) raw(ctx context.Context, fn func(c *pgx.Conn) error) error {
	conn, err := e.db.Conn(ctx)
	if err != nil {
		return pgExplain(err)
	}
	defer conn.Close()
	err = conn.Raw(func(dc any) error { return fn(dc.(*stdlib.Conn).Conn()) })
	if err != nil {
		return pgExplain(err)
	}
	return nil
}

func (e *pgEngine) columns(ctx context.Context, t tableName) (cols []tableColumn, err error) {
	err = e.raw(ctx, func(c *pgx.Conn) error {
		cols, err = pgColumns(ctx, c, t)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("read the columns of %s: %w", t, err)
	}
	return cols, nil
}

type pgQuerier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

func pgColumns(ctx context.Context, q pgQuerier, t tableName) ([]tableColumn, error) {
	rows, err := q.Query(ctx, `SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
			a.atthasdef OR a.attidentity <> '' OR a.attgenerated <> '',
			COALESCE((SELECT k.n FROM unnest(i.indkey) WITH ORDINALITY AS k(attnum, n) WHERE k.attnum = a.attnum), 0)::int,
			t.typcategory = 'S'
		FROM pg_catalog.pg_attribute a
		JOIN pg_catalog.pg_class c ON c.oid = a.attrelid
		JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
		JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
		LEFT JOIN pg_catalog.pg_index i ON i.indrelid = c.oid AND i.indisprimary
		WHERE n.nspname = COALESCE(NULLIF($1, ''), current_schema()) AND c.relname = $2
		  AND c.relkind IN ('r', 'p', 'f') AND a.attnum > 0 AND NOT a.attisdropped
		ORDER BY a.attnum`, t.schema, t.name)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var cols []tableColumn
	for rows.Next() {
		var c tableColumn
		if err := rows.Scan(&c.name, &c.dbType, &c.notNull, &c.defaulted, &c.key, &c.str); err != nil {
			return nil, err
		}
		cols = append(cols, c)
	}
	return cols, rows.Err()
}

func (e *pgEngine) quoteTable(t tableName) string {
	if t.schema == "" {
		return quoteDouble(t.name)
	}
	return quoteDouble(t.schema) + "." + quoteDouble(t.name)
}

func (e *pgEngine) create(ctx context.Context, t tableName, cols []Column) error {
	var defs, keys []string
	for _, c := range cols {
		typ := pgTypes[c.DataType]
		if c.DataType == "C" && c.Length > 0 {
			typ = fmt.Sprintf("varchar(%d)", c.Length)
		}
		def := quoteDouble(c.Name) + " " + typ
		if c.Key {
			def += " NOT NULL"
			keys = append(keys, quoteDouble(c.Name))
		}
		defs = append(defs, def)
	}
	defs = append(defs, "PRIMARY KEY ("+strings.Join(keys, ", ")+")")
	_, err := e.db.ExecContext(ctx, "CREATE TABLE IF NOT EXISTS "+e.quoteTable(t)+" ("+strings.Join(defs, ", ")+")")
	return pgExplain(err)
}

func (e *pgEngine) createBook(ctx context.Context) error {
	_, err := e.db.ExecContext(ctx, bookSQL(quoteDouble,
		"CREATE TABLE IF NOT EXISTS {book} ({stream} text PRIMARY KEY, {seq} bigint NOT NULL, {at} timestamp with time zone NOT NULL, {note} text)"))
	return pgExplain(err)
}

func (e *pgEngine) addNote(ctx context.Context) error {
	_, err := e.db.ExecContext(ctx, bookSQL(quoteDouble, "ALTER TABLE {book} ADD COLUMN IF NOT EXISTS {note} text"))
	return pgExplain(err)
}

func (e *pgEngine) last(ctx context.Context, stream string) (uint64, []byte, error) {
	seq, note, err := scanLast(e.db.QueryRowContext(ctx, bookSQL(quoteDouble, "SELECT {seq}, {note} FROM {book} WHERE {stream} = $1"), stream))
	if err != nil {
		return 0, nil, pgExplain(err)
	}
	return seq, note, nil
}

func (e *pgEngine) reset(ctx context.Context, stream string, t *tableName) error {
	return e.raw(ctx, func(c *pgx.Conn) error {
		return pgx.BeginFunc(ctx, c, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, bookSQL(quoteDouble, "DELETE FROM {book} WHERE {stream} = $1"), stream); err != nil {
				return err
			}
			if t == nil {
				return nil
			}
			// TRUNCATE is transactional in PostgreSQL, and instant.
			_, err := tx.Exec(ctx, "TRUNCATE "+e.quoteTable(*t))
			return err
		})
	})
}

// pgDelivery is the temporary table a delivery is copied into: a flag
// telling deletes from upserts, then per data item a text column ("v0" …)
// or, for binary items, a bytea column ("g0" …) — the name carries the type
// so that pgx's cached description of the table stays right.
const pgDelivery = "govshare_delivery"

func pgTempColumn(i int, c *Column) string {
	if c.DataType == "G" {
		return "g" + strconv.Itoa(i)
	}
	return "v" + strconv.Itoa(i)
}

func (e *pgEngine) apply(ctx context.Context, ds []*delivery, note func([]Counts) []byte) (cs []Counts, skipped int, err error) {
	stream, table := ds[0].stream, ds[0].table
	err = e.raw(ctx, func(conn *pgx.Conn) error {
		return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			// A date-time assigned to an existing timestamp-without-zone
			// column is stored as China Standard Time, as source reads it.
			if _, err := tx.Exec(ctx, "SET LOCAL TIME ZONE INTERVAL '+08:00' HOUR TO MINUTE"); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, bookSQL(quoteDouble, "INSERT INTO {book} ({stream}, {seq}, {at}) VALUES ($1, 0, $2) ON CONFLICT ({stream}) DO NOTHING"), stream, now()); err != nil {
				return err
			}
			var last int64
			if err := tx.QueryRow(ctx, bookSQL(quoteDouble, "SELECT {seq} FROM {book} WHERE {stream} = $1 FOR UPDATE"), stream).Scan(&last); err != nil {
				return err
			}
			if skipped = appliedBefore(ds, last); skipped == len(ds) {
				return errSkip
			}
			have, err := pgColumns(ctx, tx, table)
			if err != nil {
				return fmt.Errorf("read the columns: %w", err)
			}
			temp := false // the delivery's temporary table exists
			for _, d := range ds[skipped:] {
				tcs, err := d.check(have, pgLimit)
				if err != nil {
					return inGroup(d, len(ds), err)
				}
				c, err := e.write(ctx, tx, d, tcs, &temp)
				if err != nil {
					return inGroup(d, len(ds), err)
				}
				cs = append(cs, c)
			}
			note, err := noteArg(note, cs)
			if err != nil {
				return err
			}
			_, err = tx.Exec(ctx, bookSQL(quoteDouble, "UPDATE {book} SET {seq} = $2, {at} = $3, {note} = $4 WHERE {stream} = $1"), stream, ds[len(ds)-1].seq, now(), note)
			return err
		})
	})
	if errors.Is(err, errSkip) {
		return nil, len(ds), nil
	}
	if err != nil {
		return nil, 0, err
	}
	return cs, skipped, nil
}

// write applies one delivery; made says whether the transaction made the
// temporary table already (it is then emptied first).
func (e *pgEngine) write(ctx context.Context, tx pgx.Tx, d *delivery, tcs []*tableColumn, made *bool) (Counts, error) {
	var c Counts
	if len(d.rows) == 0 && len(d.dels) == 0 {
		return c, nil
	}
	if ok, err := e.copyNew(ctx, tx, d, tcs); err != nil || ok {
		return Counts{Inserted: int64(len(d.rows))}, err
	}
	temp := []string{"del"}
	defs := []string{`"del" boolean NOT NULL`}
	for i := range d.cols {
		name := pgTempColumn(i, &d.cols[i])
		temp = append(temp, name)
		typ := "text"
		if d.cols[i].DataType == "G" {
			typ = "bytea"
		}
		defs = append(defs, quoteDouble(name)+" "+typ)
	}
	prepare := "CREATE TEMPORARY TABLE " + quoteDouble(pgDelivery) + " (" + strings.Join(defs, ", ") + ") ON COMMIT DROP"
	if *made {
		prepare = "TRUNCATE " + quoteDouble(pgDelivery)
	}
	if _, err := tx.Exec(ctx, prepare); err != nil {
		return c, err
	}
	*made = true
	copied := make([][]any, 0, len(d.rows)+len(d.dels))
	for _, r := range d.rows {
		vals := make([]any, 1+len(d.cols))
		vals[0] = false
		for i := range d.cols {
			v, err := pgArg(&d.cols[i], r[i])
			if err != nil {
				return c, fmt.Errorf("upsert of key %s: %w", d.key(r), err)
			}
			vals[1+i] = v
		}
		copied = append(copied, vals)
	}
	for _, k := range d.dels {
		vals := make([]any, 1+len(d.cols))
		vals[0] = true
		for i, j := range d.keys {
			v, err := pgArg(&d.cols[j], source.Value{Text: k[i]})
			if err != nil {
				return c, fmt.Errorf("delete of key %s: %w", k, err)
			}
			vals[1+j] = v
		}
		copied = append(copied, vals)
	}
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{pgDelivery}, temp, pgx.CopyFromRows(copied)); err != nil {
		return c, fmt.Errorf("copy the delivery: %w", err)
	}

	tbl := e.quoteTable(d.table)
	var names, exprs, keys, set, old, fresh []string
	for i := range d.cols {
		col := &d.cols[i]
		q := quoteDouble(col.Name)
		names = append(names, q)
		exprs = append(exprs, pgExpr(col, tcs[i], "d."+quoteDouble(temp[1+i])))
		if col.Key {
			keys = append(keys, q)
			continue
		}
		set = append(set, q+" = EXCLUDED."+q)
		old = append(old, "t."+q)
		fresh = append(fresh, "EXCLUDED."+q)
	}
	if len(d.rows) > 0 {
		conflict := "DO NOTHING"
		if len(set) > 0 {
			conflict = "DO UPDATE SET " + strings.Join(set, ", ") +
				" WHERE ROW(" + strings.Join(old, ", ") + ") IS DISTINCT FROM ROW(" + strings.Join(fresh, ", ") + ")"
		}
		q := "WITH u AS (INSERT INTO " + tbl + " AS t (" + strings.Join(names, ", ") + ") SELECT " + strings.Join(exprs, ", ") +
			" FROM " + quoteDouble(pgDelivery) + ` d WHERE NOT d."del" ON CONFLICT (` + strings.Join(keys, ", ") + ") " + conflict +
			" RETURNING xmax = 0 AS ins) SELECT count(*) FILTER (WHERE ins), count(*) FROM u"
		var ins, changed int64
		if err := tx.QueryRow(ctx, q).Scan(&ins, &changed); err != nil {
			return c, fmt.Errorf("upsert %d rows: %w", len(d.rows), err)
		}
		c.Inserted, c.Updated, c.Unchanged = ins, changed-ins, int64(len(d.rows))-changed
	}
	if len(d.dels) > 0 {
		// Statistics let the planner join a few keys by the primary key
		// rather than scan the whole table.
		if _, err := tx.Exec(ctx, "ANALYZE "+quoteDouble(pgDelivery)); err != nil {
			return c, err
		}
		var on []string
		for _, j := range d.keys {
			on = append(on, "t."+names[j]+" = "+exprs[j])
		}
		tag, err := tx.Exec(ctx, "DELETE FROM "+tbl+" AS t USING "+quoteDouble(pgDelivery)+` d WHERE d."del" AND `+strings.Join(on, " AND "))
		if err != nil {
			return c, fmt.Errorf("delete %d keys: %w", len(d.dels), err)
		}
		c.Deleted = tag.RowsAffected()
		c.Missing = int64(len(d.dels)) - c.Deleted
	}
	return c, nil
}

// copyAfterConflict is how many deliveries into a table are upserted
// after one whose rows could not all be copied in as new ones: a stream of
// updates does not pay for a failed COPY each time.
const copyAfterConflict = 16

// copyNew copies a delivery of new rows only straight into its table, as
// the fastest load there is, and reports whether it did. COPY into a table
// with a primary key either adds every row — none of the keys was there,
// so every row is one the upsert would have inserted: same rows, same
// counts — or fails as a whole at the first key that was (or at anything
// else the upsert would also have to report); then the savepoint drops
// what it did and the delivery is upserted as ever. Deliveries with
// deletes are always upserted, and so is every column whose type would
// not read the canonical text exactly as the upsert's cast does
// (pgDirect). Rows are deduplicated by newDelivery.
func (e *pgEngine) copyNew(ctx context.Context, tx pgx.Tx, d *delivery, tcs []*tableColumn) (bool, error) {
	if len(d.dels) > 0 || len(d.rows) == 0 {
		return false, nil
	}
	for i := range d.cols {
		if !pgDirect(&d.cols[i], tcs[i]) {
			return false, nil
		}
	}
	e.mu.Lock()
	wait := e.upsertIn[d.table]
	if wait > 0 {
		e.upsertIn[d.table] = wait - 1
	}
	e.mu.Unlock()
	if wait > 0 {
		return false, nil
	}
	buf := copyBufs.Get().(*bytes.Buffer)
	defer func() {
		if buf.Cap() <= 8<<20 {
			buf.Reset()
			copyBufs.Put(buf)
		}
	}()
	for _, r := range d.rows {
		for i := range d.cols {
			if i > 0 {
				buf.WriteByte('\t')
			}
			if err := pgCopyText(buf, &d.cols[i], r[i]); err != nil {
				return false, fmt.Errorf("upsert of key %s: %w", d.key(r), err)
			}
		}
		buf.WriteByte('\n')
	}
	names := make([]string, len(d.cols))
	for i := range d.cols {
		names[i] = quoteDouble(d.cols[i].Name)
	}
	sp, err := tx.Begin(ctx)
	if err != nil {
		return false, err
	}
	_, err = sp.Conn().PgConn().CopyFrom(ctx, buf, "COPY "+e.quoteTable(d.table)+" ("+strings.Join(names, ", ")+") FROM STDIN")
	if err != nil {
		if rerr := sp.Rollback(ctx); rerr != nil {
			return false, rerr
		}
		if ctx.Err() != nil {
			return false, ctx.Err()
		}
		e.mu.Lock()
		e.upsertIn[d.table] = copyAfterConflict
		e.mu.Unlock()
		return false, nil
	}
	return true, sp.Commit(ctx)
}

// copyBufs hold the text of the COPYs of new rows, a delivery's at a
// time: grown anew for each (a megabyte for 5,000 rows), they kept a
// node's collector busy in a bulk exchange.
var copyBufs = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// pgDirect reports whether column tc's own input reads data item c's
// canonical text as the upsert's expression (pgExpr) makes it: the
// item's type or, for numbers, one whose limits d.check enforces before
// anything is written. A timestamp without a zone would drop the
// instant's zone, a float into numeric round otherwise.
func pgDirect(c *Column, tc *tableColumn) bool {
	base, _ := typeParams(tc.dbType)
	switch c.DataType {
	case "C", "M":
		return tc.str
	case "G":
		return tc.dbType == "bytea"
	case "I":
		return base == "bigint" || base == "integer" || base == "smallint" || base == "numeric"
	case "N", "Y":
		return base == "numeric"
	}
	return tc.dbType == pgTypes[c.DataType]
}

// pgCopyText writes a canonical value as a field of COPY's text format.
func pgCopyText(buf *bytes.Buffer, c *Column, v source.Value) error {
	if v.Null {
		buf.WriteString(`\N`)
		return nil
	}
	if c.DataType == "G" {
		b, err := base64.StdEncoding.DecodeString(v.Text)
		if err != nil {
			return err
		}
		buf.WriteString(`\\x`)
		buf.WriteString(hex.EncodeToString(b))
		return nil
	}
	s := v.Text
	plain := true
	for i := 0; i < len(s) && plain; i++ {
		ch := s[i]
		plain = ch != '\\' && ch != '\t' && ch != '\n' && ch != '\r'
	}
	if plain {
		buf.WriteString(s) // nothing to escape: most values
		return nil
	}
	for i := 0; i < len(s); i++ {
		switch ch := s[i]; ch {
		case '\\':
			buf.WriteString(`\\`)
		case '\t':
			buf.WriteString(`\t`)
		case '\n':
			buf.WriteString(`\n`)
		case '\r':
			buf.WriteString(`\r`)
		default:
			buf.WriteByte(ch)
		}
	}
	return nil
}

// pgArg is what is copied for a canonical value: its text, which
// PostgreSQL casts exactly, or the bytes of a binary value.
func pgArg(c *Column, v source.Value) (any, error) {
	if v.Null {
		return nil, nil
	}
	if c.DataType == "G" {
		return base64.StdEncoding.DecodeString(v.Text)
	}
	return v.Text, nil
}

// pgExpr turns the copied text of data item c into its column's value:
// cast to the item's type, which PostgreSQL's assignment casts then fit to
// the column (bigint to integer, timestamptz to timestamp in the
// transaction's +08:00); text goes into a string column as it is (an
// explicit cast to varchar(n) would cut it silently) and into any other
// (uuid, jsonb, an enum) through that type's input.
func pgExpr(c *Column, tc *tableColumn, v string) string {
	switch c.DataType {
	case "G":
		return v
	case "C", "M":
		if tc.str {
			return v
		}
		return "CAST(" + v + " AS " + tc.dbType + ")"
	}
	return "CAST(" + v + " AS " + pgTypes[c.DataType] + ")"
}

// pgLimit reads what an existing column keeps: numeric(p,s) its digits,
// an integer column no decimals, timestamp(p) p fractional-second digits.
func pgLimit(c *Column, tc *tableColumn) limit {
	base, params := typeParams(tc.dbType)
	l := noLimit
	switch c.DataType {
	case "I", "N", "Y":
		switch {
		case base == "numeric" && len(params) >= 1:
			s := 0
			if len(params) == 2 {
				s = params[1]
			}
			l.intDigits, l.fracDigits = params[0]-s, max(s, 0)
		case base == "smallint" || base == "integer" || base == "bigint":
			l.fracDigits = 0
		}
	case "T":
		if strings.HasPrefix(base, "timestamp") {
			l.secDigits = 6
			if len(params) == 1 {
				l.secDigits = params[0]
			}
		}
	}
	return l
}

func pgExplain(err error) error {
	if err == nil {
		return nil
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code {
		case "28P01":
			return &source.ConnError{Kind: source.ErrWrongPassword, ZH: "用户名或密码错误，请核对数据库账号", EN: "wrong user name or password: check the database account", Err: err}
		case "28000":
			return &source.ConnError{Kind: source.ErrAccessDenied, ZH: "数据库拒绝该用户从本机登录，请数据库管理员在 pg_hba.conf 中放行前置机", EN: "the server refuses this user from this node: ask the database administrator to allow the node in pg_hba.conf", Err: err}
		case "3D000":
			return &source.ConnError{Kind: source.ErrUnknownDatabase, ZH: "数据库不存在，请检查数据库名", EN: "the database does not exist: check the database name", Err: err}
		case "3F000":
			return &source.ConnError{Kind: source.ErrNotFound, ZH: "模式（schema）不存在，请检查表名中的模式名", EN: "the schema does not exist: check the schema of the table name", Err: err}
		case "42501":
			return &source.ConnError{Kind: source.ErrAccessDenied, ZH: grantZH, EN: grantEN, Err: err}
		}
		return err
	}
	if p := netProblem(err); p != nil {
		return p
	}
	return err
}

// quoteDouble quotes an identifier the SQL standard way.
func quoteDouble(id string) string {
	return `"` + strings.ReplaceAll(id, `"`, `""`) + `"`
}
