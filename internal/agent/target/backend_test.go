package target_test

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/go-sql-driver/mysql"
	_ "github.com/jackc/pgx/v5/stdlib"
	_ "modernc.org/sqlite"

	"govshare/internal/agent/source"
	"govshare/internal/agent/target"
)

// The variables that switch the server backends on, as in package source.
const (
	envPostgres = "GOVSHARE_TEST_POSTGRES"
	envMySQL    = "GOVSHARE_TEST_MYSQL"
)

// backend is one real database the tests write into: the Target under
// test, a plain handle for fixtures and checks, and the DSN that
// source.Open reads it back with. Server backends get a scratch schema
// (PostgreSQL, through search_path) or database (MariaDB/MySQL) of their
// own, dropped at the end, so that the bookkeeping table is theirs too.
type backend struct {
	name string
	kind string
	dsn  string
	db   *sql.DB
	tgt  *target.Target
}

func randHex(t testing.TB) string {
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// backends returns SQLite always, and PostgreSQL and MariaDB/MySQL when
// their variables name a server; a named server that cannot be reached
// fails the test.
func backends(t *testing.T) []*backend {
	t.Helper()
	bs := []*backend{sqliteBackend(t)}
	if b := postgresBackend(t); b != nil {
		bs = append(bs, b)
	} else {
		t.Logf("PostgreSQL run skipped: set %s='postgres://postgres@127.0.0.1:5432/test?sslmode=disable' to run it", envPostgres)
	}
	if b := mysqlBackend(t); b != nil {
		bs = append(bs, b)
	} else {
		t.Logf("MariaDB/MySQL run skipped: set %s='root@tcp(127.0.0.1:3306)/test' to run it", envMySQL)
	}
	return bs
}

func eachBackend(t *testing.T, fn func(t *testing.T, b *backend)) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) { fn(t, b) })
	}
}

func openTarget(t testing.TB, kind, dsn string) *target.Target {
	t.Helper()
	tgt, err := target.Open(kind, dsn)
	if err != nil {
		t.Fatalf("open %s: %v", kind, err)
	}
	t.Cleanup(func() { tgt.Close() })
	if err := tgt.Test(context.Background()); err != nil {
		t.Fatalf("test %s: %v", kind, err)
	}
	return tgt
}

func sqliteBackend(t testing.TB) *backend {
	path := filepath.Join(t.TempDir(), "dept.db")
	tgt := openTarget(t, source.SQLite, path)
	db, err := sql.Open("sqlite", path+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return &backend{name: "sqlite", kind: source.SQLite, dsn: path, db: db, tgt: tgt}
}

func postgresBackend(t testing.TB) *backend {
	dsn := os.Getenv(envPostgres)
	if dsn == "" {
		return nil
	}
	admin, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatalf("%s: %v", envPostgres, err)
	}
	t.Cleanup(func() { admin.Close() })
	if err := admin.Ping(); err != nil {
		t.Fatalf("%s is set but PostgreSQL is unreachable: %v", envPostgres, err)
	}
	schema := "tgt_" + randHex(t)
	if _, err := admin.Exec(`CREATE SCHEMA "` + schema + `"`); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Exec(`DROP SCHEMA "` + schema + `" CASCADE`) })
	// Everything unqualified, the bookkeeping table too, lands in the
	// scratch schema.
	if strings.Contains(dsn, "://") {
		u, err := url.Parse(dsn)
		if err != nil {
			t.Fatalf("%s: %v", envPostgres, err)
		}
		q := u.Query()
		q.Set("search_path", schema)
		u.RawQuery = q.Encode()
		dsn = u.String()
	} else {
		dsn += " search_path=" + schema
	}
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return &backend{name: "postgres", kind: source.Postgres, dsn: dsn, db: db, tgt: openTarget(t, source.Postgres, dsn)}
}

func mysqlBackend(t testing.TB) *backend {
	dsn := os.Getenv(envMySQL)
	if dsn == "" {
		return nil
	}
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		t.Fatalf("%s: %v", envMySQL, err)
	}
	admin, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close() })
	if err := admin.Ping(); err != nil {
		t.Fatalf("%s is set but MariaDB/MySQL is unreachable: %v", envMySQL, err)
	}
	scratch := "tgt_" + randHex(t)
	if _, err := admin.Exec("CREATE DATABASE `" + scratch + "`"); err != nil {
		t.Fatalf("%s: the tests make a scratch database and need CREATE and DROP for it: %v", envMySQL, err)
	}
	t.Cleanup(func() { admin.Exec("DROP DATABASE `" + scratch + "`") })
	cfg.DBName = scratch
	dsn = cfg.FormatDSN()
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return &backend{name: "mysql", kind: source.MySQL, dsn: dsn, db: db, tgt: openTarget(t, source.MySQL, dsn)}
}

// quote quotes a fixture identifier for the backend.
func (b *backend) quote(name string) string {
	if b.kind == source.MySQL {
		return "`" + name + "`"
	}
	return `"` + name + `"`
}

func (b *backend) exec(t testing.TB, query string, args ...any) {
	t.Helper()
	if _, err := b.db.Exec(query, args...); err != nil {
		t.Fatalf("%s: %s: %v", b.name, query, err)
	}
}

func (b *backend) count(t testing.TB, table string) int {
	t.Helper()
	var n int
	if err := b.db.QueryRow("SELECT count(*) FROM " + b.quote(table)).Scan(&n); err != nil {
		t.Fatalf("%s: count %s: %v", b.name, table, err)
	}
	return n
}

// source opens the backend for reading, as an exchange job would.
func (b *backend) source(t testing.TB) source.Source {
	t.Helper()
	src, err := source.Open(b.kind, b.dsn)
	if err != nil {
		t.Fatalf("open source %s: %v", b.kind, err)
	}
	t.Cleanup(func() { src.Close() })
	return src
}
