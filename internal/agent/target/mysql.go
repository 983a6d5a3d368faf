package target

import (
	"context"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"

	"govshare/internal/agent/source"
)

// MySQL/MariaDB types of the data items in a table Ensure creates.
//
// Decimals are DECIMAL(65,30): MySQL's widest precision with its widest
// scale, so 35 digits before the point and 30 after; Apply refuses a value
// beyond that rather than let the server round it. Floats of both widths
// are DOUBLE, because MariaDB prints a FLOAT with 6 digits only. Date-times
// are DATETIME(6) holding China Standard Time, which is how source reads a
// DATETIME. Text is utf8mb4 with a binary, no-pad collation (where the
// server has one), so that keys compare byte by byte as everywhere else:
// "a", "A" and "a " are three keys.
var myTypes = map[string]string{
	"C": "MEDIUMTEXT", "M": "MEDIUMTEXT", "I": "BIGINT", "N": "DECIMAL(65,30)", "Y": "DECIMAL(65,30)",
	"B": "DOUBLE", "F": "DOUBLE", "L": "BOOLEAN", "D": "DATE", "T": "DATETIME(6)", "G": "MEDIUMBLOB",
}

// Key columns must fit InnoDB's 3,072-byte index: text keys are
// VARCHAR(768) at most (4 bytes a character), binary keys VARBINARY(255).
const (
	myMaxKeyChars  = 768
	myBinaryKeyLen = 255
	myShortText    = 255 // a longer non-key C column is MEDIUMTEXT, out of the 64 KB row
)

type myDialect struct{}

func openMySQL(dsn string) (engine, error) {
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		return nil, fmt.Errorf("read the DSN (user:password@tcp(host:3306)/database): %w", err)
	}
	cfg.ParseTime = false
	// Updated and unchanged rows are told apart by the rows changed: an
	// unchanged row must count 0, not 1 as "found".
	cfg.ClientFoundRows = false
	if cfg.Params == nil {
		cfg.Params = map[string]string{}
	}
	// Date-times are written as China Standard Time text: a DATETIME keeps
	// it, and a TIMESTAMP column reads it in the session's zone.
	cfg.Params["time_zone"] = "'+08:00'"
	// Strict: a value that does not fit is an error, never a warning and
	// a cut or zeroed value.
	if _, ok := cfg.Params["sql_mode"]; !ok {
		cfg.Params["sql_mode"] = "'TRADITIONAL,NO_AUTO_VALUE_ON_ZERO'"
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 10 * time.Second
	}
	conn, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, err
	}
	db := sql.OpenDB(conn)
	db.SetMaxOpenConns(8)
	db.SetMaxIdleConns(2)
	db.SetConnMaxIdleTime(5 * time.Minute)
	display := fmt.Sprintf("%s@%s(%s)/%s", cfg.User, cfg.Net, cfg.Addr, cfg.DBName)
	return &sqlEngine{db: db, d: myDialect{}, display: display}, nil
}

func (myDialect) name() string       { return source.MySQL }
func (myDialect) batchArgs() int     { return 8000 }
func (myDialect) lockSuffix() string { return " FOR UPDATE" }

// updated: MySQL counts an inserted row 1, an updated one 2 and one set to
// the values it had 0.
func (myDialect) updated(affected, inserted int64) int64 { return (affected - inserted) / 2 }

func (myDialect) quote(id string) string { return "`" + strings.ReplaceAll(id, "`", "``") + "`" }

func (d myDialect) keyIn(keys []string, n int) string {
	return keyIn(keys, n, "")
}

func (d myDialect) upsertTail(keys, others []string) string {
	if len(others) == 0 {
		return "ON DUPLICATE KEY UPDATE " + keys[0] + " = " + keys[0]
	}
	set := make([]string, len(others))
	for i, o := range others {
		set[i] = o + " = VALUES(" + o + ")"
	}
	return "ON DUPLICATE KEY UPDATE " + strings.Join(set, ", ")
}

func (d myDialect) insertStreamSQL() string {
	return bookSQL(d.quote, "INSERT INTO {book} ({stream}, {seq}, {at}) VALUES (?, 0, ?) ON DUPLICATE KEY UPDATE {seq} = {seq}")
}

func (myDialect) timeArg(t time.Time) any { return t.In(cst).Format("2006-01-02 15:04:05.999999") }

func (myDialect) columns(ctx context.Context, q querier, t tableName) ([]tableColumn, error) {
	rows, err := q.QueryContext(ctx, `SELECT c.COLUMN_NAME, c.COLUMN_TYPE, c.IS_NULLABLE = 'NO',
			c.COLUMN_DEFAULT IS NOT NULL OR c.EXTRA LIKE '%auto_increment%' OR c.EXTRA LIKE '%GENERATED%'
			  OR c.EXTRA LIKE '%VIRTUAL%' OR c.EXTRA LIKE '%PERSISTENT%' OR c.EXTRA LIKE '%STORED%',
			COALESCE(k.ORDINAL_POSITION, 0)
		FROM information_schema.COLUMNS c
		LEFT JOIN information_schema.KEY_COLUMN_USAGE k
		  ON k.TABLE_SCHEMA = c.TABLE_SCHEMA AND k.TABLE_NAME = c.TABLE_NAME
		 AND k.COLUMN_NAME = c.COLUMN_NAME AND k.CONSTRAINT_NAME = 'PRIMARY'
		WHERE c.TABLE_SCHEMA = COALESCE(NULLIF(?, ''), DATABASE()) AND c.TABLE_NAME = ?
		ORDER BY c.ORDINAL_POSITION`, t.schema, t.name)
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
		c.name = strings.ToLower(c.name) // MySQL column names ignore case
		cols = append(cols, c)
	}
	return cols, rows.Err()
}

// collation is the binary utf8mb4 collation that does not pad: MySQL 8's
// utf8mb4_0900_bin or MariaDB's utf8mb4_nopad_bin, else utf8mb4_bin.
func (myDialect) collation(ctx context.Context, db *sql.DB) (string, error) {
	var name string
	err := db.QueryRowContext(ctx, `SELECT COLLATION_NAME FROM information_schema.COLLATIONS
		WHERE COLLATION_NAME IN ('utf8mb4_0900_bin', 'utf8mb4_nopad_bin')
		ORDER BY COLLATION_NAME = 'utf8mb4_0900_bin' DESC LIMIT 1`).Scan(&name)
	if errors.Is(err, sql.ErrNoRows) {
		return "utf8mb4_bin", nil
	}
	return name, err
}

func (d myDialect) createSQL(ctx context.Context, db *sql.DB, t string, cols []Column) (string, error) {
	coll, err := d.collation(ctx, db)
	if err != nil {
		return "", err
	}
	var defs, keys []string
	for _, c := range cols {
		typ := myTypes[c.DataType]
		switch {
		case c.Key && (c.DataType == "C" || c.DataType == "M"):
			n := c.Length
			if n <= 0 || n > myMaxKeyChars || c.DataType == "M" {
				n = myMaxKeyChars
			}
			typ = fmt.Sprintf("VARCHAR(%d)", n)
		case c.Key && c.DataType == "G":
			typ = fmt.Sprintf("VARBINARY(%d)", myBinaryKeyLen)
		case c.DataType == "C" && c.Length > 0 && c.Length <= myShortText:
			typ = fmt.Sprintf("VARCHAR(%d)", c.Length)
		}
		def := d.quote(c.Name) + " " + typ
		if c.Key {
			def += " NOT NULL"
			keys = append(keys, d.quote(c.Name))
		} else {
			def += " NULL"
		}
		defs = append(defs, def)
	}
	defs = append(defs, "PRIMARY KEY ("+strings.Join(keys, ", ")+")")
	return "CREATE TABLE IF NOT EXISTS " + t + " (" + strings.Join(defs, ", ") + ") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=" + coll, nil
}

func (d myDialect) createBookSQL(ctx context.Context, db *sql.DB) (string, error) {
	coll, err := d.collation(ctx, db)
	if err != nil {
		return "", err
	}
	return bookSQL(d.quote, "CREATE TABLE IF NOT EXISTS {book} ({stream} VARCHAR(255) NOT NULL, {seq} BIGINT NOT NULL, "+
		"{at} DATETIME(6) NOT NULL, {note} MEDIUMTEXT NULL, PRIMARY KEY ({stream})) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=") + coll, nil
}

// addNoteSQL: the column takes the table's character set and collation.
func (d myDialect) addNoteSQL() string {
	return bookSQL(d.quote, "ALTER TABLE {book} ADD COLUMN {note} MEDIUMTEXT NULL")
}

// limit reads what an existing column keeps: DECIMAL(p,s) its digits, an
// integer column no decimals, DATETIME(p) and TIMESTAMP(p) p
// fractional-second digits (0 without a p).
func (myDialect) limit(c *Column, tc *tableColumn) limit {
	base, params := typeParams(tc.dbType)
	base = strings.TrimSpace(strings.NewReplacer("unsigned", "", "zerofill", "").Replace(base))
	l := noLimit
	switch c.DataType {
	case "I", "N", "Y":
		switch base {
		case "decimal", "numeric", "dec", "fixed":
			p, s := 10, 0
			if len(params) >= 1 {
				p = params[0]
			}
			if len(params) == 2 {
				s = params[1]
			}
			l.intDigits, l.fracDigits = p-s, s
		case "tinyint", "smallint", "mediumint", "int", "integer", "bigint":
			l.fracDigits = 0
		}
	case "T":
		if base == "datetime" || base == "timestamp" {
			l.secDigits = 0
			if len(params) == 1 {
				l.secDigits = params[0]
			}
		}
	}
	return l
}

func (myDialect) arg(c *Column, v source.Value) (any, error) {
	if v.Null {
		return nil, nil
	}
	switch c.DataType {
	case "I":
		return strconv.ParseInt(v.Text, 10, 64)
	case "B", "F":
		f, err := strconv.ParseFloat(v.Text, 64)
		if err == nil && (math.IsNaN(f) || math.IsInf(f, 0)) {
			return nil, fmt.Errorf("%w: column %s: MySQL cannot store %s", ErrBadValue, c.Name, v.Text)
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
		return t.In(cst).Format("2006-01-02 15:04:05.999999"), nil
	case "G":
		return base64.StdEncoding.DecodeString(v.Text)
	}
	return v.Text, nil // text, decimals (converted exactly by the server) and dates
}

func (myDialect) explain(err error) error {
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		switch me.Number {
		case 1045, 1698:
			return &source.ConnError{Kind: source.ErrWrongPassword, ZH: "用户名或密码错误，请核对数据库账号", EN: "wrong user name or password: check the database account", Err: err}
		case 1049:
			return &source.ConnError{Kind: source.ErrUnknownDatabase, ZH: "数据库不存在，请检查数据库名", EN: "the database does not exist: check the database name", Err: err}
		case 1044:
			return &source.ConnError{Kind: source.ErrAccessDenied, ZH: "该用户无权访问此数据库，请授予权限", EN: "the user may not use this database: grant it access", Err: err}
		case 1130:
			return &source.ConnError{Kind: source.ErrAccessDenied, ZH: "数据库不允许从前置机所在主机登录，请数据库管理员为该主机授权", EN: "the server does not let this user in from the node's host: ask the database administrator to allow it", Err: err}
		case 1142, 1143:
			return &source.ConnError{Kind: source.ErrAccessDenied, ZH: grantZH, EN: grantEN, Err: err}
		}
		return err
	}
	if p := netProblem(err); p != nil {
		return p
	}
	return err
}
