package source

import (
	"context"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

func openSQLite(dsn string) (engine, error) {
	// Read-only: the node never writes to a department's database, and a
	// custom query cannot either.
	q := url.Values{}
	q.Set("mode", "ro")
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "query_only(1)")
	path, u, err := SQLiteURL(dsn, q)
	if err != nil {
		return nil, err
	}
	db, err := sql.Open("sqlite", u)
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(4)
	return &sqliteEngine{sqlEngine{db: db, d: liteDialect{}, display: path}, path}, nil
}

// SQLiteURL reads the file of a node's SQLite DSN (a path, sqlite://path
// or file:path, options after "?" dropped) and gives the driver's URL for
// it with the options q.
func SQLiteURL(dsn string, q url.Values) (path, driverURL string, err error) {
	path = strings.TrimPrefix(strings.TrimPrefix(dsn, "sqlite://"), "file:")
	if i := strings.IndexByte(path, '?'); i >= 0 {
		path = path[:i]
	}
	if path == "" {
		return "", "", errors.New("no database file given")
	}
	return path, "file:" + strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(path) + "?" + q.Encode(), nil
}

// sqliteEngine adds to sqlEngine a test that tells a missing file from a
// file that is not a database.
type sqliteEngine struct {
	sqlEngine
	path string
}

func (e *sqliteEngine) test(ctx context.Context) error {
	if st, err := os.Stat(e.path); err != nil {
		return fmt.Errorf("open sqlite %s: %w", e.path, &ConnError{Kind: ErrNotFound, ZH: "找不到数据库文件，请检查路径", EN: "the database file does not exist: check the path", Err: err})
	} else if st.IsDir() {
		return fmt.Errorf("open sqlite %s: %w", e.path, &ConnError{Kind: ErrNotFound, ZH: "该路径是文件夹，不是数据库文件", EN: "the path is a folder, not a database file", Err: os.ErrInvalid})
	}
	var n int
	if err := e.db.QueryRowContext(ctx, "SELECT count(*) FROM sqlite_schema").Scan(&n); err != nil {
		return fmt.Errorf("open sqlite %s: %w", e.path, &ConnError{Kind: ErrAccessDenied, ZH: "无法读取：文件不是 SQLite 数据库，或前置机无读取权限", EN: "cannot read it: the file is not an SQLite database, or the node may not read it", Err: err})
	}
	return nil
}

type liteDialect struct{}

func (liteDialect) name() string             { return SQLite }
func (liteDialect) quote(id string) string   { return quoteDouble(id) }
func (liteDialect) param(int) string         { return "?" }
func (liteDialect) nowSQL() string           { return "SELECT strftime('%Y-%m-%d %H:%M:%f', 'now')" }
func (liteDialect) precision() time.Duration { return time.Millisecond }
func (liteDialect) readOnlyTx() bool         { return false }
func (liteDialect) explain(err error) error  { return err }

// timeExpr reads a date-time stored as text (SQLite has no date type) as
// Unix seconds: text with a zone (Z, ±hh:mm) as written, text without one
// as China Standard Time, like every other source. SQLite's date functions
// keep milliseconds, hence precision.
func (liteDialect) timeExpr(col string, _ *Column) string {
	return "unixepoch(" + col + ", 'subsec', CASE WHEN " + col + " GLOB '*[+-][0-9][0-9]:[0-9][0-9]' OR " + col +
		" GLOB '*[Zz]' THEN '+0 hours' ELSE '-8 hours' END)"
}

func (liteDialect) bindTime(_ *Column, t time.Time, _ int) (string, any) {
	return "unixepoch(?, 'subsec')", t.UTC().Format("2006-01-02 15:04:05.000")
}

// selectExpr hides a date column's declared type behind a no-op '+': the
// driver would otherwise parse its text into a time.Time and lose whether
// it had a zone.
func (liteDialect) selectExpr(col string, c *Column) string {
	switch c.kind {
	case kDate, kDateTime, kDateTimeTZ:
		return "+" + col
	}
	return col
}

func (d liteDialect) orderExpr(col string, c *Column) string {
	switch c.kind {
	case kText:
		return col + " COLLATE BINARY"
	case kDateTime, kDateTimeTZ:
		return d.timeExpr(col, c)
	}
	return col
}

func (d liteDialect) bind(c *Column, v string, n int) (string, any, error) {
	switch c.kind {
	case kInt:
		i, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return "", nil, fmt.Errorf("%w: %q is not an integer", ErrBadQuery, v)
		}
		return "?", i, nil
	case kDecimal:
		return "CAST(? AS NUMERIC)", v, nil
	case kFloat32, kFloat64:
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return "", nil, fmt.Errorf("%w: %q is not a number", ErrBadQuery, v)
		}
		return "?", f, nil
	case kBool:
		if v == "true" {
			return "?", int64(1), nil
		}
		return "?", int64(0), nil
	case kDateTime, kDateTimeTZ:
		t, ok := parseRFC3339(v)
		if !ok {
			return "", nil, fmt.Errorf("%w: %q is not an RFC 3339 date-time", ErrBadQuery, v)
		}
		s, arg := d.bindTime(c, t, n)
		return s, arg, nil
	case kBytes:
		b, err := base64.StdEncoding.DecodeString(v)
		if err != nil {
			return "", nil, fmt.Errorf("%w: %q is not base64", ErrBadQuery, v)
		}
		return "?", b, nil
	case kText:
		return "? COLLATE BINARY", v, nil
	}
	return "?", v, nil
}

func (liteDialect) tables(ctx context.Context, db *sql.DB) ([]Table, error) {
	return queryAll(ctx, db, func(r *sql.Rows) (t Table, err error) { err = r.Scan(&t.Name, &t.View); return t, err },
		`SELECT name, type = 'view' FROM sqlite_schema
		WHERE type IN ('table', 'view') AND name NOT LIKE 'sqlite\_%' ESCAPE '\' ORDER BY name`)
}

func (liteDialect) columns(ctx context.Context, db *sql.DB, t Table) ([]Column, error) {
	schema := t.Schema
	if schema == "" {
		schema = "main"
	}
	return queryAll(ctx, db, scanColumn(SQLite),
		`SELECT name, type, "notnull" = 0, pk FROM pragma_table_info(?, ?) ORDER BY cid`, t.Name, schema)
}
