package source

import (
	"context"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

func openPostgres(dsn string) (engine, error) {
	cfg, err := pgconn.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("read the connection URL: %w", err)
	}
	// The pgx stdlib package, which pgrows.go imports, registers "pgx".
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		return nil, err
	}
	// A node streams a few jobs at a time; each holds one connection.
	db.SetMaxOpenConns(8)
	db.SetMaxIdleConns(2)
	db.SetConnMaxIdleTime(5 * time.Minute)
	display := fmt.Sprintf("postgres://%s@%s:%d/%s", cfg.User, cfg.Host, cfg.Port, cfg.Database)
	return &sqlEngine{db: db, d: pgDialect{}, display: display, rows: pgxRows(db)}, nil
}

type pgDialect struct{}

func (pgDialect) name() string                          { return Postgres }
func (pgDialect) quote(id string) string                { return quoteDouble(id) }
func (pgDialect) param(n int) string                    { return fmt.Sprintf("$%d", n) }
func (pgDialect) nowSQL() string                        { return "SELECT statement_timestamp()" }
func (pgDialect) precision() time.Duration              { return time.Microsecond }
func (pgDialect) readOnlyTx() bool                      { return true }
func (pgDialect) timeExpr(col string, _ *Column) string { return col }

// selectExpr reads numeric (and money, through numeric) as PostgreSQL's
// own text: exact, and cheaper than the driver's conversion of the binary
// form.
func (pgDialect) selectExpr(col string, c *Column) string {
	if c.kind == kDecimal {
		return "CAST(CAST(" + col + " AS numeric) AS text)"
	}
	return col
}

func (pgDialect) orderExpr(col string, c *Column) string {
	if c.kind == kText && c.collatable {
		return col + ` COLLATE "C"`
	}
	return col
}

func (d pgDialect) bind(c *Column, v string, n int) (string, any, error) {
	p := d.param(n)
	cast := func(typ string) string { return "CAST(CAST(" + p + " AS text) AS " + typ + ")" }
	switch c.kind {
	case kInt:
		if !isDecimal(v) {
			return "", nil, fmt.Errorf("%w: %q is not an integer", ErrBadQuery, v)
		}
		return cast("bigint"), v, nil
	case kDecimal:
		return cast("numeric"), v, nil
	case kFloat32, kFloat64:
		return cast("float8"), v, nil
	case kBool:
		return cast("boolean"), v, nil
	case kDate:
		return cast("date"), v, nil
	case kTimeOfDay:
		return cast("time"), v, nil
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
		return p, b, nil
	}
	if c.collatable {
		return p + ` COLLATE "C"`, v, nil
	}
	return p, v, nil
}

func (d pgDialect) bindTime(c *Column, t time.Time, n int) (string, any) {
	p := d.param(n)
	if c.kind == kDateTime {
		return "CAST(CAST(" + p + " AS text) AS timestamp)", t.In(sourceZone).Format("2006-01-02 15:04:05.999999")
	}
	return "CAST(CAST(" + p + " AS text) AS timestamptz)", t.UTC().Format(time.RFC3339Nano)
}

func (pgDialect) tables(ctx context.Context, db *sql.DB) ([]Table, error) {
	return queryAll(ctx, db, func(r *sql.Rows) (t Table, err error) { err = r.Scan(&t.Schema, &t.Name, &t.View); return t, err },
		`SELECT table_schema, table_name, table_type = 'VIEW'
		FROM information_schema.tables
		WHERE table_schema NOT IN ('pg_catalog', 'information_schema')
		  AND table_schema NOT LIKE 'pg\_toast%' AND table_schema NOT LIKE 'pg\_temp%'
		ORDER BY table_schema, table_name`)
}

func (pgDialect) columns(ctx context.Context, db *sql.DB, t Table) ([]Column, error) {
	rows, err := db.QueryContext(ctx, `SELECT a.attname, format_type(a.atttypid, a.atttypmod), NOT a.attnotnull,
			COALESCE((SELECT k.n FROM unnest(i.indkey) WITH ORDINALITY AS k(attnum, n) WHERE k.attnum = a.attnum), 0),
			t.typcategory = 'S' OR t.typname = 'citext'
		FROM pg_catalog.pg_attribute a
		JOIN pg_catalog.pg_class c ON c.oid = a.attrelid
		JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
		JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
		LEFT JOIN pg_catalog.pg_index i ON i.indrelid = c.oid AND i.indisprimary
		WHERE n.nspname = COALESCE(NULLIF($1, ''), current_schema()) AND c.relname = $2
		  AND c.relkind IN ('r', 'v', 'm', 'f', 'p') AND a.attnum > 0 AND NOT a.attisdropped
		ORDER BY a.attnum`, t.Schema, t.Name)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var cols []Column
	for rows.Next() {
		var (
			name, typ     string
			nullable, str bool
			key           int
		)
		if err := rows.Scan(&name, &typ, &nullable, &key, &str); err != nil {
			return nil, err
		}
		c := classify(Postgres, typ).column(name, typ, nullable)
		c.Key = key
		c.collatable = c.kind == kText && str
		cols = append(cols, c)
	}
	return cols, rows.Err()
}

func (pgDialect) explain(err error) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code {
		case "28P01":
			return &ConnError{Kind: ErrWrongPassword, ZH: "用户名或密码错误，请核对数据库账号", EN: "wrong user name or password: check the database account", Err: err}
		case "28000":
			return &ConnError{Kind: ErrAccessDenied, ZH: "数据库拒绝该用户从本机登录，请数据库管理员在 pg_hba.conf 中放行前置机", EN: "the server refuses this user from this node: ask the database administrator to allow the node in pg_hba.conf", Err: err}
		case "3D000":
			return &ConnError{Kind: ErrUnknownDatabase, ZH: "数据库不存在，请检查数据库名", EN: "the database does not exist: check the database name", Err: err}
		case "42501":
			return &ConnError{Kind: ErrAccessDenied, ZH: "该用户没有读取权限，请为其授予 SELECT 权限", EN: "the user may not read this: grant it SELECT", Err: err}
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
	b := make([]byte, 0, len(id)+2)
	b = append(b, '"')
	for i := 0; i < len(id); i++ {
		if id[i] == '"' {
			b = append(b, '"')
		}
		b = append(b, id[i])
	}
	return string(append(b, '"'))
}
