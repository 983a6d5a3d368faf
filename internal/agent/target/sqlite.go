package target

import (
	"context"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"math"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"modernc.org/sqlite" // registers the "sqlite" driver

	"govshare/internal/agent/source"
)

// SQLite types of the data items in a table Ensure creates, each read back
// by source as the type it was written as. Decimals are TEXT: SQLite would
// keep a DECIMAL column's values as 8-byte floats of 15 significant digits,
// and the text keeps every digit (SQLite's arithmetic still reads it as a
// number). Date-times are DATETIME text of China Standard Time without a
// zone ("2024-05-01 08:00:00.5"), the form a department's own programs
// write and the one source reads as +08:00.
var liteTypes = map[string]string{
	"C": "TEXT", "M": "TEXT", "I": "INTEGER", "N": "TEXT", "Y": "TEXT",
	"B": "DOUBLE", "F": "DOUBLE", "L": "BOOLEAN", "D": "DATE", "T": "DATETIME", "G": "BLOB",
}

// liteDateTime is how a date-time is stored: CST, to the nanosecond.
const liteDateTime = "2006-01-02 15:04:05.999999999"

type liteDialect struct{}

func openSQLite(dsn string) (engine, error) {
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "journal_mode(WAL)")
	// A delivery takes the write lock when it begins, not when it first
	// writes: two writers never deadlock upgrading their read locks.
	q.Set("_txlock", "immediate")
	path, u, err := source.SQLiteURL(dsn, q)
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

// sqliteEngine adds to sqlEngine a test that tells a missing folder, a file
// that is not a database and a file the node may not write apart.
type sqliteEngine struct {
	sqlEngine
	path string
}

func (e *sqliteEngine) test(ctx context.Context) error {
	dir := filepath.Dir(e.path)
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		if err == nil {
			err = os.ErrInvalid
		}
		return fmt.Errorf("open sqlite %s: %w", e.path, &source.ConnError{Kind: source.ErrNotFound, ZH: "数据库文件所在的文件夹不存在，请检查路径", EN: "the folder of the database file does not exist: check the path", Err: err})
	}
	if st, err := os.Stat(e.path); err == nil && st.IsDir() {
		return fmt.Errorf("open sqlite %s: %w", e.path, &source.ConnError{Kind: source.ErrNotFound, ZH: "该路径是文件夹，不是数据库文件", EN: "the path is a folder, not a database file", Err: os.ErrInvalid})
	}
	var n int
	if err := e.db.QueryRowContext(ctx, "SELECT count(*) FROM sqlite_schema").Scan(&n); err != nil {
		return fmt.Errorf("open sqlite %s: %w", e.path, &source.ConnError{Kind: source.ErrAccessDenied, ZH: "无法打开：文件不是 SQLite 数据库，或前置机无读写权限", EN: "cannot open it: the file is not an SQLite database, or the node may not read and write it", Err: err})
	}
	tx, err := e.db.BeginTx(ctx, nil) // immediate: takes the write lock
	if err == nil {
		err = tx.Rollback()
	}
	if err != nil {
		return fmt.Errorf("open sqlite %s: %w", e.path, &source.ConnError{Kind: source.ErrAccessDenied, ZH: "无法写入数据库文件，请检查前置机对该文件及其文件夹的写权限", EN: "cannot write the database: check that the node may write the file and its folder", Err: err})
	}
	return nil
}

func (liteDialect) name() string                           { return source.SQLite }
func (liteDialect) quote(id string) string                 { return quoteDouble(id) }
func (liteDialect) lockSuffix() string                     { return "" } // the transaction holds the write lock
func (liteDialect) timeArg(t time.Time) any                { return t.In(cst).Format(liteDateTime) }
func (liteDialect) updated(affected, inserted int64) int64 { return affected - inserted }

// batchArgs: the driver binds arguments in time quadratic in their number.
func (liteDialect) batchArgs() int { return 200 }

func (liteDialect) keyIn(keys []string, n int) string { return keyIn(keys, n, "VALUES ") }

func (liteDialect) upsertTail(keys, others []string) string {
	tail := "ON CONFLICT (" + strings.Join(keys, ", ") + ") DO "
	if len(others) == 0 {
		return tail + "NOTHING"
	}
	set := make([]string, len(others))
	excluded := make([]string, len(others))
	for i, o := range others {
		set[i] = o + " = excluded." + o
		excluded[i] = "excluded." + o
	}
	return tail + "UPDATE SET " + strings.Join(set, ", ") +
		" WHERE (" + strings.Join(others, ", ") + ") IS NOT (" + strings.Join(excluded, ", ") + ")"
}

func (d liteDialect) insertStreamSQL() string {
	return bookSQL(d.quote, "INSERT INTO {book} ({stream}, {seq}, {at}) VALUES (?, 0, ?) ON CONFLICT ({stream}) DO NOTHING")
}

func (liteDialect) columns(ctx context.Context, q querier, t tableName) ([]tableColumn, error) {
	schema := t.schema
	if schema == "" {
		schema = "main"
	}
	rows, err := q.QueryContext(ctx, `SELECT name, type, "notnull", dflt_value IS NOT NULL OR hidden IN (2, 3), pk
		FROM pragma_table_xinfo(?, ?) ORDER BY cid`, t.name, schema)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var cols []tableColumn
	for rows.Next() {
		var c tableColumn
		if err := rows.Scan(&c.name, &c.dbType, &c.notNull, &c.defaulted, &c.key); err != nil {
			return nil, err
		}
		c.name = strings.ToLower(c.name) // SQLite column names ignore case
		cols = append(cols, c)
	}
	return cols, rows.Err()
}

func (d liteDialect) createSQL(_ context.Context, _ *sql.DB, t string, cols []Column) (string, error) {
	var defs, keys []string
	for _, c := range cols {
		typ := liteTypes[c.DataType]
		if c.DataType == "C" && c.Length > 0 {
			typ = fmt.Sprintf("VARCHAR(%d)", c.Length)
		}
		def := d.quote(c.Name) + " " + typ
		if c.Key {
			def += " NOT NULL"
			keys = append(keys, d.quote(c.Name))
		}
		defs = append(defs, def)
	}
	defs = append(defs, "PRIMARY KEY ("+strings.Join(keys, ", ")+")")
	return "CREATE TABLE IF NOT EXISTS " + t + " (" + strings.Join(defs, ", ") + ")", nil
}

func (d liteDialect) createBookSQL(context.Context, *sql.DB) (string, error) {
	return bookSQL(d.quote, "CREATE TABLE IF NOT EXISTS {book} ({stream} TEXT PRIMARY KEY, {seq} INTEGER NOT NULL, {at} DATETIME NOT NULL, {note} TEXT)"), nil
}

func (d liteDialect) addNoteSQL() string {
	return bookSQL(d.quote, "ALTER TABLE {book} ADD COLUMN {note} TEXT")
}

// limit: a column of numeric, integer or real affinity turns decimal text
// into an 8-byte float, exact to 15 significant digits.
func (liteDialect) limit(c *Column, tc *tableColumn) limit {
	switch c.DataType {
	case "N", "Y":
		switch affinity(tc.dbType) {
		case "NUMERIC", "INTEGER", "REAL":
			l := noLimit
			l.sigDigits = 15
			return l
		}
	}
	return noLimit
}

// affinity is SQLite's type affinity of a declared type.
func affinity(typ string) string {
	t := strings.ToUpper(typ)
	switch {
	case strings.Contains(t, "INT"):
		return "INTEGER"
	case strings.Contains(t, "CHAR") || strings.Contains(t, "CLOB") || strings.Contains(t, "TEXT"):
		return "TEXT"
	case strings.Contains(t, "BLOB") || t == "":
		return "BLOB"
	case strings.Contains(t, "REAL") || strings.Contains(t, "FLOA") || strings.Contains(t, "DOUB"):
		return "REAL"
	}
	return "NUMERIC"
}

func (liteDialect) arg(c *Column, v source.Value) (any, error) {
	if v.Null {
		return nil, nil
	}
	switch c.DataType {
	case "I":
		return strconv.ParseInt(v.Text, 10, 64)
	case "B", "F":
		f, err := strconv.ParseFloat(v.Text, 64)
		if err == nil && math.IsNaN(f) {
			return nil, fmt.Errorf("%w: column %s: SQLite stores NaN as NULL", ErrBadValue, c.Name)
		}
		return f, err
	case "L":
		if v.Text == "true" {
			return int64(1), nil
		}
		return int64(0), nil
	case "T":
		t, err := time.Parse(time.RFC3339Nano, v.Text)
		if err != nil {
			return nil, err
		}
		return t.In(cst).Format(liteDateTime), nil
	case "G":
		b, err := base64.StdEncoding.DecodeString(v.Text)
		if b == nil {
			b = []byte{} // an empty BLOB, not NULL
		}
		return b, err
	}
	return v.Text, nil
}

func (liteDialect) explain(err error) error {
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() & 0xff {
		case 8, 23: // SQLITE_READONLY, SQLITE_AUTH
			return &source.ConnError{Kind: source.ErrAccessDenied, ZH: "无法写入数据库文件，请检查前置机对该文件及其文件夹的写权限", EN: "cannot write the database: check that the node may write the file and its folder", Err: err}
		case 14: // SQLITE_CANTOPEN
			return &source.ConnError{Kind: source.ErrNotFound, ZH: "无法打开数据库文件，请检查路径和权限", EN: "cannot open the database file: check the path and the permissions", Err: err}
		case 26: // SQLITE_NOTADB
			return &source.ConnError{Kind: source.ErrAccessDenied, ZH: "该文件不是 SQLite 数据库", EN: "the file is not an SQLite database", Err: err}
		}
	}
	return err
}
