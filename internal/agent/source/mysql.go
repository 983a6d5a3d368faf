package source

import (
	"context"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/go-sql-driver/mysql"
)

func openMySQL(dsn string) (engine, error) {
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		return nil, fmt.Errorf("read the DSN (user:password@tcp(host:3306)/database): %w", err)
	}
	// Values are read as the server's text and made canonical here, with
	// the column's type in hand: DATETIME and TIMESTAMP differ, and the
	// driver's time parsing cannot tell them apart.
	cfg.ParseTime = false
	if cfg.Params == nil {
		cfg.Params = map[string]string{}
	}
	// TIMESTAMP values (instants) come out in UTC.
	cfg.Params["time_zone"] = "'+00:00'"
	// The server drops a connection whose reader pauses longer than
	// net_write_timeout (60 s by default) in the middle of a result; a
	// chunk callback that sends over a slow link may pause that long.
	if _, ok := cfg.Params["net_write_timeout"]; !ok {
		cfg.Params["net_write_timeout"] = "3600"
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

type myDialect struct{}

func (myDialect) name() string                          { return MySQL }
func (myDialect) param(int) string                      { return "?" }
func (myDialect) nowSQL() string                        { return "SELECT UTC_TIMESTAMP(6)" }
func (myDialect) precision() time.Duration              { return time.Microsecond }
func (myDialect) readOnlyTx() bool                      { return true }
func (myDialect) timeExpr(col string, _ *Column) string { return col }

func (myDialect) quote(id string) string {
	b := make([]byte, 0, len(id)+2)
	b = append(b, '`')
	for i := 0; i < len(id); i++ {
		if id[i] == '`' {
			b = append(b, '`')
		}
		b = append(b, id[i])
	}
	return string(append(b, '`'))
}

func (myDialect) selectExpr(col string, _ *Column) string { return col }

// orderExpr sorts text by its UTF-8 bytes whatever the column's character
// set and collation: case-insensitive and PAD SPACE collations would sort
// (and compare) differently from every other source.
func (myDialect) orderExpr(col string, c *Column) string {
	if c.kind == kText {
		return "CAST(CONVERT(" + col + " USING utf8mb4) AS BINARY)"
	}
	return col
}

func (d myDialect) bind(c *Column, v string, n int) (string, any, error) {
	switch c.kind {
	case kInt:
		if i, err := strconv.ParseInt(v, 10, 64); err == nil {
			return "?", i, nil
		}
		if !isDecimal(v) {
			return "", nil, fmt.Errorf("%w: %q is not an integer", ErrBadQuery, v)
		}
		return "CAST(? AS DECIMAL(65,0))", v, nil
	case kDecimal:
		return "CAST(? AS DECIMAL(65,30))", v, nil
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
	case kDate:
		return "CAST(? AS DATE)", v, nil
	case kTimeOfDay:
		return "CAST(? AS TIME(6))", v, nil
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
	}
	return "CAST(CONVERT(? USING utf8mb4) AS BINARY)", v, nil
}

// bindTime writes the instant as the column stores it: a DATETIME holds
// China Standard Time, a TIMESTAMP reads in the session's UTC.
func (myDialect) bindTime(c *Column, t time.Time, _ int) (string, any) {
	if c.kind == kDateTime {
		t = t.In(sourceZone)
	} else {
		t = t.UTC()
	}
	return "CAST(? AS DATETIME(6))", t.Format("2006-01-02 15:04:05.999999")
}

func (myDialect) tables(ctx context.Context, db *sql.DB) ([]Table, error) {
	return queryAll(ctx, db, func(r *sql.Rows) (t Table, err error) { err = r.Scan(&t.Schema, &t.Name, &t.View); return t, err },
		`SELECT TABLE_SCHEMA, TABLE_NAME, TABLE_TYPE = 'VIEW'
		FROM information_schema.TABLES
		WHERE TABLE_SCHEMA = COALESCE(DATABASE(), TABLE_SCHEMA)
		  AND TABLE_SCHEMA NOT IN ('mysql', 'information_schema', 'performance_schema', 'sys')
		ORDER BY TABLE_SCHEMA, TABLE_NAME`)
}

func (myDialect) columns(ctx context.Context, db *sql.DB, t Table) ([]Column, error) {
	return queryAll(ctx, db, scanColumn(MySQL),
		`SELECT c.COLUMN_NAME, c.COLUMN_TYPE, c.IS_NULLABLE = 'YES', COALESCE(k.ORDINAL_POSITION, 0)
		FROM information_schema.COLUMNS c
		LEFT JOIN information_schema.KEY_COLUMN_USAGE k
		  ON k.TABLE_SCHEMA = c.TABLE_SCHEMA AND k.TABLE_NAME = c.TABLE_NAME
		 AND k.COLUMN_NAME = c.COLUMN_NAME AND k.CONSTRAINT_NAME = 'PRIMARY'
		WHERE c.TABLE_SCHEMA = COALESCE(NULLIF(?, ''), DATABASE()) AND c.TABLE_NAME = ?
		ORDER BY c.ORDINAL_POSITION`, t.Schema, t.Name)
}

func (myDialect) explain(err error) error {
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		switch me.Number {
		case 1045, 1698:
			return &ConnError{Kind: ErrWrongPassword, ZH: "用户名或密码错误，请核对数据库账号", EN: "wrong user name or password: check the database account", Err: err}
		case 1049:
			return &ConnError{Kind: ErrUnknownDatabase, ZH: "数据库不存在，请检查数据库名", EN: "the database does not exist: check the database name", Err: err}
		case 1044:
			return &ConnError{Kind: ErrAccessDenied, ZH: "该用户无权访问此数据库，请授予权限", EN: "the user may not use this database: grant it access", Err: err}
		case 1130:
			return &ConnError{Kind: ErrAccessDenied, ZH: "数据库不允许从前置机所在主机登录，请数据库管理员为该主机授权", EN: "the server does not let this user in from the node's host: ask the database administrator to allow it", Err: err}
		case 1142, 1143:
			return &ConnError{Kind: ErrAccessDenied, ZH: "该用户没有读取权限，请为其授予 SELECT 权限", EN: "the user may not read this: grant it SELECT", Err: err}
		}
		return err
	}
	if p := netProblem(err); p != nil {
		return p
	}
	return err
}
