package source_test

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/go-sql-driver/mysql"
	_ "github.com/jackc/pgx/v5/stdlib"
	_ "modernc.org/sqlite"

	"govshare/internal/agent/source"
)

// The variables that switch the server backends on.
const (
	envPostgres = "GOVSHARE_TEST_POSTGRES"
	envMySQL    = "GOVSHARE_TEST_MYSQL"
)

// backend is one real database the conformance tests run against: a
// writable handle for fixtures and the Source under test.
type backend struct {
	name  string
	kind  string
	dsn   string
	db    *sql.DB
	src   source.Source
	table func(name string) source.Table
	ph    func(n int) string
	// ddl picks the column type for this backend.
	ddl func(c col) string
}

// col is one column of a fixture table, with its type per backend.
type col struct{ name, pg, my, lite string }

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

func openSource(t testing.TB, kind, dsn string) source.Source {
	t.Helper()
	src, err := source.Open(kind, dsn)
	if err != nil {
		t.Fatalf("open %s: %v", kind, err)
	}
	t.Cleanup(func() { src.Close() })
	if err := src.Test(context.Background()); err != nil {
		t.Fatalf("test %s: %v", kind, err)
	}
	return src
}

func sqliteBackend(t testing.TB) *backend {
	path := filepath.Join(t.TempDir(), "dept.db")
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := db.Exec("CREATE TABLE created_first (x INTEGER)"); err != nil { // the file must exist for a read-only open
		t.Fatal(err)
	}
	return &backend{
		name: "sqlite", kind: source.SQLite, dsn: path, db: db,
		src:   openSource(t, source.SQLite, path),
		table: func(name string) source.Table { return source.Table{Name: name} },
		ph:    func(int) string { return "?" },
		ddl:   func(c col) string { return c.lite },
	}
}

func postgresBackend(t testing.TB) *backend {
	dsn := os.Getenv(envPostgres)
	if dsn == "" {
		return nil
	}
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatalf("%s: %v", envPostgres, err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.Ping(); err != nil {
		t.Fatalf("%s is set but PostgreSQL is unreachable: %v", envPostgres, err)
	}
	schema := "src_" + randHex(t)
	if _, err := db.Exec(`CREATE SCHEMA "` + schema + `"`); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Exec(`DROP SCHEMA "` + schema + `" CASCADE`) })
	return &backend{
		name: "postgres", kind: source.Postgres, dsn: dsn, db: db,
		src:   openSource(t, source.Postgres, dsn),
		table: func(name string) source.Table { return source.Table{Schema: schema, Name: name} },
		ph:    func(n int) string { return fmt.Sprintf("$%d", n) },
		ddl:   func(c col) string { return c.pg },
	}
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
	// Fixtures write TIMESTAMP values in UTC, as the source reads them.
	if cfg.Params == nil {
		cfg.Params = map[string]string{}
	}
	cfg.Params["time_zone"] = "'+00:00'"
	conn, err := mysql.NewConnector(cfg)
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(conn)
	t.Cleanup(func() { db.Close() })
	if err := db.Ping(); err != nil {
		t.Fatalf("%s is set but MariaDB/MySQL is unreachable: %v", envMySQL, err)
	}
	prefix := "src_" + randHex(t) + "_"
	t.Cleanup(func() {
		rows, err := db.Query("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME LIKE ?", prefix+"%")
		if err != nil {
			return
		}
		var names []string
		for rows.Next() {
			var n string
			rows.Scan(&n)
			names = append(names, n)
		}
		rows.Close()
		for _, n := range names {
			db.Exec("DROP TABLE `" + n + "`")
		}
	})
	return &backend{
		name: "mysql", kind: source.MySQL, dsn: dsn, db: db,
		src:   openSource(t, source.MySQL, dsn),
		table: func(name string) source.Table { return source.Table{Name: prefix + name} },
		ph:    func(int) string { return "?" },
		ddl:   func(c col) string { return c.my },
	}
}

// quote quotes a fixture identifier for the backend.
func (b *backend) quote(t source.Table) string {
	q := func(s string) string { return `"` + s + `"` }
	if b.kind == source.MySQL {
		q = func(s string) string { return "`" + s + "`" }
	}
	if t.Schema == "" {
		return q(t.Name)
	}
	return q(t.Schema) + "." + q(t.Name)
}

func (b *backend) exec(t testing.TB, query string, args ...any) {
	t.Helper()
	if _, err := b.db.Exec(query, args...); err != nil {
		t.Fatalf("%s: %s: %v", b.name, query, err)
	}
}

// create makes a fixture table; key lists the primary-key columns.
func (b *backend) create(t testing.TB, name string, cols []col, key ...string) source.Table {
	t.Helper()
	tbl := b.table(name)
	var defs []string
	for _, c := range cols {
		defs = append(defs, c.name+" "+b.ddl(c))
	}
	if len(key) > 0 {
		defs = append(defs, "PRIMARY KEY ("+strings.Join(key, ", ")+")")
	}
	b.exec(t, "CREATE TABLE "+b.quote(tbl)+" ("+strings.Join(defs, ", ")+")")
	return tbl
}

// insert adds rows through placeholders.
func (b *backend) insert(t testing.TB, tbl source.Table, names []string, rows ...[]any) {
	t.Helper()
	ph := make([]string, len(names))
	for i := range ph {
		ph[i] = b.ph(i + 1)
	}
	q := "INSERT INTO " + b.quote(tbl) + " (" + strings.Join(names, ", ") + ") VALUES (" + strings.Join(ph, ", ") + ")"
	tx, err := b.db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback() // after a failed insert: a MySQL transaction left open would block DROP TABLE
	stmt, err := tx.Prepare(q)
	if err != nil {
		t.Fatalf("%s: %s: %v", b.name, q, err)
	}
	for _, r := range rows {
		if _, err := stmt.Exec(r...); err != nil {
			t.Fatalf("%s: insert %v: %v", b.name, r, err)
		}
	}
	stmt.Close()
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
}
