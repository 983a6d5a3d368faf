package source_test

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"govshare/internal/agent/source"
)

// pgAllTypes is a column of every type a PostgreSQL source reads.
var pgAllTypes = []struct{ name, typ string }{
	{"id", "integer"},
	{"i2", "smallint"},
	{"i4", "integer"},
	{"i8", "bigint"},
	{"num", "numeric"},
	{"num6", "numeric(20,6)"},
	{"cash", "money"},
	{"f4", "real"},
	{"f8", "double precision"},
	{"flag", "boolean"},
	{"bit1", "bit(1)"},
	{"day", "date"},
	{"tod", "time"},
	{"todtz", "time(3) with time zone"},
	{"local_at", "timestamp"},
	{"local3", "timestamp(3)"},
	{"instant", "timestamptz"},
	{"bin", "bytea"},
	{"txt", "text"},
	{"vc", "varchar(20)"},
	{"ch", "char(5)"},
	{"ci", "citext"},
	{"u", "uuid"},
	{"j", "json"},
	{"jb", "jsonb"},
	{"x", "xml"},
	{"iv", "interval"},
	{"addr", "inet"},
	{"o", "oid"},
	{"nm", "name"},
	{"ints", "integer[]"},
	{"mood", "mood"},
	{"posint", "posint"},
	{"vb", "varbit(8)"},
}

// pgAllRows are literals of pgAllTypes; a row shorter than the table leaves
// its last columns NULL.
var pgAllRows = [][]string{
	{"1"},
	{"2", "-32768", "-2147483648", "-9223372036854775808",
		"-123456789012345678901234567890.123456789012345678901234567890", "-99999999999999.999999", "-92233720368547758.08",
		"-3.4028235e38", "-1.7976931348623157e308", "false", "0",
		"-infinity", "00:00:00", "00:00:00+14:59", "-infinity", "4713-01-01 00:00:00 BC", "-infinity",
		`\x00`, "", "", "", "", "00000000-0000-0000-0000-000000000000", "{}", "[]", "<a/>",
		"-178000000 years", "0.0.0.0", "0", "", "{}", "sad", "1", ""},
	{"3", "32767", "2147483647", "9223372036854775807",
		"NaN", "99999999999999.999999", "92233720368547758.07",
		"Infinity", "NaN", "true", "1",
		"infinity", "24:00:00", "23:59:59.999-15:59", "infinity", "294276-12-31 23:59:59.999", "infinity",
		`\xff00ff00`, "   ", "  x  ", "ab", "ÄÖ", "ffffffff-ffff-ffff-ffff-ffffffffffff", `{"a": [1, 2.50, "中"]}`, `{"b": 1, "a": null}`, "<p>中文</p>",
		"1 year 2 mons 3 days 04:05:06.789", "::1/128", "4294967295", "pg_class", "{1,NULL,-3}", "happy", "2147483647", "10101"},
	{"4", "0", "-1", "1",
		"0.000000000000000000001", "-0.500000", "0",
		"0.1", "-2.25e-7", "true", "0",
		"0044-03-15 BC", "12:34:56.123456", "12:34:56.789+08", "2024-05-01 12:34:56.123456", "1999-12-31 23:59:59.5", "2024-05-01 12:34:56.123456+08",
		`\x000102ff`, "中文字符 测试\n第二行", "张三丰", "李", "Straße", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "null", `"中"`, "文本",
		"-1 days +00:00:00.000001", "192.168.0.1/24", "16384", "名字", "{{1,2},{3,4}}", "ok", "42", "1"},
	{"5", "7", "1000000", "1000000000000",
		"1e30", "0.000001", "1234.5",
		"16777217", "1e21", "false", "1",
		"5874897-12-31", "23:59:59.999999", "00:00:00Z", "1970-01-01 00:00:00", "0001-01-01 00:00:00.001", "0001-01-01 00:00:00+00 BC",
		`\x`, "O'Brien \"q\" \\ \t", "trailing  ", "     ", "MiXeD", "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11", " [ 1 ,2 ] ", `{"k": 1e500}`, "<!-- c -->",
		"0", "10.0.0.0/8", "4000000000", "", "{}", "sad", "0", "00000000"},
}

// TestPostgresReadersAgree reads every PostgreSQL type through the pgx
// reader and through database/sql, which it replaces for speed, and
// requires the same canonical rows: by table, by custom query, by key
// range and by update-time window.
func TestPostgresReadersAgree(t *testing.T) {
	b := postgresBackend(t)
	if b == nil {
		t.Skipf("set %s='postgres://postgres@127.0.0.1:5432/test?sslmode=disable' to run", envPostgres)
	}
	ctx := context.Background()
	schema := b.table("").Schema
	b.exec(t, `CREATE EXTENSION IF NOT EXISTS citext WITH SCHEMA "`+schema+`"`)
	b.exec(t, `CREATE TYPE "`+schema+`".mood AS ENUM ('sad', 'ok', 'happy')`)
	b.exec(t, `CREATE DOMAIN "`+schema+`".posint AS integer CHECK (VALUE >= 0)`)
	var cols []col
	var names []string
	for _, c := range pgAllTypes {
		typ := c.typ
		if typ == "citext" || typ == "mood" || typ == "posint" {
			typ = `"` + schema + `".` + typ
		}
		cols = append(cols, col{name: c.name, pg: typ})
		names = append(names, c.name)
	}
	tbl := b.create(t, "alltypes", cols, "id")
	for _, r := range pgAllRows {
		vals := make([]string, len(pgAllTypes))
		for i := range vals {
			vals[i] = "NULL"
			if i < len(r) {
				vals[i] = "'" + strings.ReplaceAll(r[i], "'", "''") + "'"
			}
		}
		b.exec(t, `INSERT INTO `+b.quote(tbl)+` (`+strings.Join(names, ", ")+`) VALUES (`+strings.Join(vals, ", ")+`)`)
	}

	ref, err := source.OpenPostgresDatabaseSQLForTest(os.Getenv(envPostgres))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ref.Close() })

	full := func(src source.Source, q source.Query) []source.Row {
		t.Helper()
		var rows []source.Row
		if err := src.Full(ctx, q, 2, func(c source.Chunk) error { rows = append(rows, c.Rows...); return nil }); err != nil {
			t.Fatalf("full %v: %v", q, err)
		}
		return rows
	}
	hashes := func(src source.Source, q source.Query) []source.KeyHash {
		t.Helper()
		var hs []source.KeyHash
		err := src.KeyHashes(ctx, q, source.KeyRange{After: source.Key{"2"}, Through: source.Key{"4"}}, 2,
			func(h []source.KeyHash) error { hs = append(hs, h...); return nil })
		if err != nil {
			t.Fatalf("key hashes %v: %v", q, err)
		}
		return hs
	}
	window := func(src source.Source, q source.Query) []source.Row {
		t.Helper()
		var rows []source.Row
		_, err := src.SinceTime(ctx, q, "instant", time.Time{}, 0, 2, func(c source.Chunk) error { rows = append(rows, c.Rows...); return nil })
		if err != nil {
			t.Fatalf("since time %v: %v", q, err)
		}
		return rows
	}
	compare := func(what string, got, want []source.Row) {
		t.Helper()
		if len(got) != len(want) {
			t.Fatalf("%s: %d rows through pgx, %d through database/sql", what, len(got), len(want))
		}
		for i := range want {
			for j := range want[i] {
				if got[i][j] != want[i][j] {
					t.Errorf("%s: row %d column %d: pgx %#v, database/sql %#v", what, i+1, j, got[i][j], want[i][j])
				}
			}
		}
	}

	for _, q := range []source.Query{
		{Table: tbl},
		{SQL: "SELECT * FROM " + b.quote(tbl), Key: []string{"id"}},
	} {
		want := full(ref, q)
		if len(want) != len(pgAllRows) {
			t.Fatalf("database/sql read %d rows, want %d", len(want), len(pgAllRows))
		}
		compare("full", full(b.src, q), want)
		compare("window", window(b.src, q), window(ref, q))
		got, wantHashes := hashes(b.src, q), hashes(ref, q)
		if len(got) != 2 || len(got) != len(wantHashes) {
			t.Fatalf("key hashes: %d through pgx, %d through database/sql, want 2", len(got), len(wantHashes))
		}
		for i := range got {
			if got[i].Hash != wantHashes[i].Hash || got[i].Key[0] != wantHashes[i].Key[0] {
				t.Errorf("key hash %d: pgx %v, database/sql %v", i, got[i], wantHashes[i])
			}
		}
	}
	if t.Failed() {
		for _, r := range full(ref, source.Query{Table: tbl}) {
			t.Logf("database/sql: %v", r)
		}
	}
}

// TestPostgresCustomQueryCannotWrite runs a custom query that writes (it
// advances a sequence) through the pgx reader: its READ ONLY transaction
// must refuse it.
func TestPostgresCustomQueryCannotWrite(t *testing.T) {
	b := postgresBackend(t)
	if b == nil {
		t.Skipf("set %s='postgres://postgres@127.0.0.1:5432/test?sslmode=disable' to run", envPostgres)
	}
	seq := b.quote(b.table("seq"))
	b.exec(t, "CREATE SEQUENCE "+seq)
	q := source.Query{SQL: "SELECT nextval('" + strings.ReplaceAll(seq, "'", "''") + "') AS id", Key: []string{"id"}}
	err := b.src.Full(context.Background(), q, 10, func(source.Chunk) error { return nil })
	if err == nil || !strings.Contains(err.Error(), "read-only transaction") {
		t.Fatalf("a writing query read with %v, want a read-only transaction error", err)
	}
	var called bool
	if err := b.db.QueryRow("SELECT is_called FROM " + seq).Scan(&called); err != nil || called {
		t.Fatalf("the sequence advanced (%v)", err)
	}
	tbl := b.create(t, "one", []col{{name: "id", pg: "integer"}}, "id")
	b.exec(t, "INSERT INTO "+b.quote(tbl)+" VALUES (1)")
	stop := errors.New("stop")
	err = b.src.Full(context.Background(), source.Query{Table: tbl}, 10, func(source.Chunk) error { return stop })
	if err != stop {
		t.Fatalf("Full returned %v, want the callback's error as it is", err)
	}
}

// TestPostgresReaderCancel cancels a stream midway: the call fails with
// the context's error and the connection pool still serves the next one.
func TestPostgresReaderCancel(t *testing.T) {
	b := postgresBackend(t)
	if b == nil {
		t.Skipf("set %s='postgres://postgres@127.0.0.1:5432/test?sslmode=disable' to run", envPostgres)
	}
	q := source.Query{SQL: "SELECT g AS id FROM generate_series(1, 200000) g", Key: []string{"id"}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	err := b.src.Full(ctx, q, 10, func(source.Chunk) error { cancel(); return nil })
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("a cancelled stream returned %v, want context.Canceled", err)
	}
	for range 3 {
		n := 0
		err := b.src.Full(context.Background(), q, 1000, func(c source.Chunk) error { n += len(c.Rows); return nil })
		if err != nil || n != 200000 {
			t.Fatalf("after a cancelled stream: %d rows, %v", n, err)
		}
	}
}
