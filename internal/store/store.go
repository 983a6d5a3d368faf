// Package store owns the platform's database: opening SQLite (the embedded
// default) or PostgreSQL (production), applying the versioned migrations
// embedded in the binary, and running SQL written once for both dialects.
//
// Domain packages write their queries with '?' placeholders; the DB rebinds
// them to '$n' on PostgreSQL. Everything else in the SQL we write is the
// common subset both engines speak (RETURNING, ON CONFLICT, CTEs).
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib" // registers the "pgx" driver
	_ "modernc.org/sqlite"           // registers the "sqlite" driver
)

// Dialect names the SQL engine behind a DB.
type Dialect string

const (
	SQLite   Dialect = "sqlite"
	Postgres Dialect = "postgres"
)

// DB is a database handle that knows its dialect.
type DB struct {
	sql     *sql.DB
	dialect Dialect
	// display is the DSN with any password removed, safe to log.
	display string
}

// IsPostgres reports whether dsn selects PostgreSQL.
func IsPostgres(dsn string) bool {
	return strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://")
}

// Open connects to dsn: a postgres:// URL selects PostgreSQL, anything else
// is taken as the path of a SQLite file (created with its folder if missing).
func Open(ctx context.Context, dsn string) (*DB, error) {
	if IsPostgres(dsn) {
		return openPostgres(ctx, dsn)
	}
	return openSQLite(ctx, dsn)
}

func openSQLite(ctx context.Context, path string) (*DB, error) {
	path = strings.TrimPrefix(path, "sqlite://")
	if path == "" {
		return nil, errors.New("open sqlite: empty path")
	}
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return nil, fmt.Errorf("open sqlite: create folder %s: %w", dir, err)
		}
	}
	// WAL lets readers run beside the single writer; synchronous(FULL) makes
	// a commit durable before it returns, which the audit log relies on;
	// _txlock=immediate takes the write lock at BEGIN so read-then-write
	// transactions cannot deadlock into SQLITE_BUSY.
	q := url.Values{}
	for _, p := range []string{"busy_timeout(15000)", "journal_mode(WAL)", "synchronous(FULL)", "foreign_keys(1)"} {
		q.Add("_pragma", p)
	}
	q.Set("_txlock", "immediate")
	q.Set("_time_format", "sqlite")
	db, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	db.SetMaxOpenConns(8)
	db.SetConnMaxIdleTime(5 * time.Minute)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	return &DB{sql: db, dialect: SQLite, display: path}, nil
}

func openPostgres(ctx context.Context, dsn string) (*DB, error) {
	display := redact(dsn)
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		return nil, fmt.Errorf("open postgres %s: %w", display, err)
	}
	db.SetMaxOpenConns(32)
	// Keep every connection the pool opens: bursts (a group commit
	// releasing many requests at once) would otherwise open and close
	// PostgreSQL sessions by the hundred, each a process fork away.
	db.SetMaxIdleConns(32)
	db.SetConnMaxIdleTime(5 * time.Minute)
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := db.PingContext(pctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("connect to postgres %s: %w (is the server running and the URL right?)", display, err)
	}
	return &DB{sql: db, dialect: Postgres, display: display}, nil
}

func redact(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		return "postgres://…"
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	return u.String()
}

// Dialect returns the engine behind db.
func (db *DB) Dialect() Dialect { return db.dialect }

// String is the connection target with secrets removed.
func (db *DB) String() string { return string(db.dialect) + " " + db.display }

// Close closes the pool.
func (db *DB) Close() error { return db.sql.Close() }

// Ping checks the database answers.
func (db *DB) Ping(ctx context.Context) error { return db.sql.PingContext(ctx) }

// SQL exposes the pool for tests that must reach under the store, such as
// tampering with the audit log on purpose.
func (db *DB) SQL() *sql.DB { return db.sql }

// Conn holds one connection of the pool, for work that needs the same
// session throughout (temporary tables, COPY through the driver). Its
// queries use the dialect's placeholders; close it to give it back.
func (db *DB) Conn(ctx context.Context) (*sql.Conn, error) { return db.sql.Conn(ctx) }

// Exec runs a statement written with '?' placeholders.
func (db *DB) Exec(ctx context.Context, q string, args ...any) (sql.Result, error) {
	return db.sql.ExecContext(ctx, db.Rebind(q), args...)
}

// Query runs a query written with '?' placeholders.
func (db *DB) Query(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	return db.sql.QueryContext(ctx, db.Rebind(q), args...)
}

// WithPgx runs fn on the pgx connection of one of the pool's PostgreSQL
// connections, for reads on hot paths that would otherwise pay for
// database/sql's conversions of every value; statements have '$n'
// placeholders (Rebind). The connection goes back to the pool after fn.
func (db *DB) WithPgx(ctx context.Context, fn func(c *pgx.Conn) error) error {
	if db.dialect != Postgres {
		return errors.New("store: WithPgx needs PostgreSQL")
	}
	conn, err := db.sql.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	return conn.Raw(func(dc any) error { return fn(dc.(*stdlib.Conn).Conn()) })
}

// QueryRow runs a single-row query written with '?' placeholders.
func (db *DB) QueryRow(ctx context.Context, q string, args ...any) *sql.Row {
	return db.sql.QueryRowContext(ctx, db.Rebind(q), args...)
}

// Tx is a transaction that rebinds like DB.
type Tx struct {
	tx      *sql.Tx
	dialect Dialect
}

// Exec runs a statement in the transaction.
func (tx *Tx) Exec(ctx context.Context, q string, args ...any) (sql.Result, error) {
	return tx.tx.ExecContext(ctx, rebind(tx.dialect, q), args...)
}

// Query runs a query in the transaction.
func (tx *Tx) Query(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	return tx.tx.QueryContext(ctx, rebind(tx.dialect, q), args...)
}

// QueryRow runs a single-row query in the transaction.
func (tx *Tx) QueryRow(ctx context.Context, q string, args ...any) *sql.Row {
	return tx.tx.QueryRowContext(ctx, rebind(tx.dialect, q), args...)
}

// Dialect returns the engine behind the transaction.
func (tx *Tx) Dialect() Dialect { return tx.dialect }

// InTx runs fn in a transaction, committing if fn returns nil and rolling
// back otherwise. Multi-step writes go through here so a failure changes
// nothing.
func (db *DB) InTx(ctx context.Context, fn func(*Tx) error) error {
	stx, err := db.sql.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	if err := fn(&Tx{tx: stx, dialect: db.dialect}); err != nil {
		_ = stx.Rollback()
		return err
	}
	if err := stx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// Rebind turns '?' placeholders into the dialect's form.
func (db *DB) Rebind(q string) string { return rebind(db.dialect, q) }

func rebind(d Dialect, q string) string {
	if d != Postgres || !strings.Contains(q, "?") {
		return q
	}
	var b strings.Builder
	b.Grow(len(q) + 8)
	n := 0
	inQuote := false
	for i := 0; i < len(q); i++ {
		c := q[i]
		switch {
		case c == '\'':
			inQuote = !inQuote
			b.WriteByte(c)
		case c == '?' && !inQuote:
			n++
			fmt.Fprintf(&b, "$%d", n)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// Placeholders returns "?, ?, …" with n marks, for IN lists and multi-row
// inserts built from a known count (never from request text).
func Placeholders(n int) string {
	if n <= 0 {
		return ""
	}
	return strings.TrimSuffix(strings.Repeat("?, ", n), ", ")
}

// IsUniqueViolation reports whether err is a unique-constraint failure on
// either engine, so services can answer "already exists" instead of 500.
func IsUniqueViolation(err error) bool {
	if err == nil {
		return false
	}
	s := err.Error()
	return strings.Contains(s, "UNIQUE constraint failed") || strings.Contains(s, "SQLSTATE 23505")
}

// Now is the clock the store writes: UTC, truncated to microseconds so a
// value reads back equal on both engines.
func Now() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }

// RebindFor rebinds q for dialect d.
func RebindFor(d Dialect, q string) string { return rebind(d, q) }

// LikeEscape escapes s for use in a LIKE pattern written with
// ESCAPE '\', so user text matches literally ("a_b" is not a wildcard).
func LikeEscape(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}

// Row is what a scan function reads: a *sql.Row or *sql.Rows.
type Row interface{ Scan(dest ...any) error }

// All runs a query on db and scans each row with scan.
func All[T any](ctx context.Context, db *DB, scan func(Row) (T, error), q string, args ...any) ([]T, error) {
	rows, err := db.Query(ctx, q, args...)
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
