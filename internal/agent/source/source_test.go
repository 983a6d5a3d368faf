package source_test

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"govshare/internal/agent/source"
)

var cst = time.FixedZone("CST", 8*3600)

// typesTable is one column of each kind a department's database holds.
var typesCols = []col{
	{"id", "bigint", "BIGINT", "INTEGER"},
	{"amount", "numeric(20,6)", "DECIMAL(20,6)", "DECIMAL(20,6)"},
	{"flag", "boolean", "BOOLEAN", "BOOLEAN"},
	{"local_at", "timestamp(6)", "DATETIME(6) NULL", "DATETIME"},
	{"instant", "timestamp(6) with time zone", "TIMESTAMP(6) NULL", "TIMESTAMP"},
	{"day", "date", "DATE", "DATE"},
	{"bin", "bytea", "BLOB", "BLOB"},
	{"name", "varchar(50)", "VARCHAR(50)", "VARCHAR(50)"},
	{"note", "text", "TEXT", "TEXT"},
	{"ratio", "double precision", "DOUBLE", "REAL"},
	{"small", "real", "FLOAT", "REAL"},
}

func createTypes(t *testing.T, b *backend) source.Table {
	tbl := b.create(t, "types", typesCols, "id")
	names := []string{"id", "amount", "flag", "local_at", "instant", "day", "bin", "name", "note", "ratio", "small"}
	instant := "2024-05-01T00:00:00Z" // how each backend is told the instant
	if b.kind == source.MySQL {
		instant = "2024-05-01 00:00:00" // the session is in UTC
	}
	amount := "12345678901234.123456"
	if b.kind == source.SQLite {
		amount = "12345678.123456" // SQLite keeps NUMERIC as REAL: 15 digits
	}
	b.insert(t, tbl, names,
		[]any{1, amount, true, "2024-05-01 08:00:00", instant, "2024-05-01", []byte{0, 1, 2, 0xff}, "张三丰", "", 1.5, 1.1},
		[]any{2, "-0.500000", false, nil, nil, nil, nil, "李四", nil, nil, nil},
		[]any{3, "100", true, "2024-05-01 08:00:00.123456", nil, "1999-12-31", []byte{}, "O'Brien \"q\"", "多行\n文本", -2.25e-7, nil},
	)
	return tbl
}

func TestColumnsSuggestCatalogTypes(t *testing.T) {
	eachBackend(t, func(t *testing.T, b *backend) {
		ctx := context.Background()
		tbl := createTypes(t, b)
		cols, err := b.src.Columns(ctx, tbl)
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]string{ // name: type length [scale]
			"id": "I", "amount": "N 20 6", "flag": "L 1", "local_at": "T", "instant": "T", "day": "D 10",
			"bin": "G", "name": "C 50", "note": "M", "ratio": "B", "small": "F",
		}
		if b.kind == source.SQLite {
			want["small"] = "B" // SQLite REAL is a double
		}
		if len(cols) != len(typesCols) {
			t.Fatalf("got %d columns, want %d: %+v", len(cols), len(typesCols), cols)
		}
		for i, c := range cols {
			if c.Name != typesCols[i].name {
				t.Errorf("column %d is %s, want %s", i, c.Name, typesCols[i].name)
			}
			w := strings.Fields(want[c.Name])
			got := []string{c.DataType, fmt.Sprint(c.Length), fmt.Sprint(c.Scale)}
			if !slices.Equal(got[:len(w)], w) {
				t.Errorf("%s (%s) suggests %v, want %v", c.Name, c.DatabaseType, got, w)
			}
			if c.Length < 1 || c.Length > 100000 {
				t.Errorf("%s suggests length %d, outside 1–100000", c.Name, c.Length)
			}
			if (c.Key == 1) != (c.Name == "id") {
				t.Errorf("%s has key position %d", c.Name, c.Key)
			}
			if c.Name == "id" && c.Nullable && b.kind != source.SQLite {
				t.Errorf("id is nullable")
			}
			if c.Name == "note" && !c.Nullable {
				t.Errorf("note is not nullable")
			}
		}
		ts, err := b.src.Tables(ctx)
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, x := range ts {
			if x.Name == tbl.Name && (tbl.Schema == "" || x.Schema == tbl.Schema) {
				found = true
			}
			if b.kind != source.SQLite && x.Schema == "" {
				t.Errorf("table %s is not schema-qualified", x)
			}
		}
		if !found {
			t.Errorf("Tables does not list %s: %v", tbl, ts)
		}
		if _, err := b.src.Columns(ctx, b.table("no_such_table")); !errors.Is(err, source.ErrNotFound) {
			t.Errorf("columns of a missing table: %v, want ErrNotFound", err)
		}
	})
}

// full reads every row of q into maps by column name ("NULL" for NULL).
func full(t *testing.T, src source.Source, q source.Query, chunk int) []map[string]string {
	t.Helper()
	var out []map[string]string
	err := src.Full(context.Background(), q, chunk, func(c source.Chunk) error {
		if len(c.Rows) > chunk {
			t.Errorf("chunk of %d rows, want at most %d", len(c.Rows), chunk)
		}
		for _, r := range c.Rows {
			m := map[string]string{}
			for i, v := range r {
				m[c.Columns[i]] = v.String()
			}
			out = append(out, m)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestValuesAreCanonical(t *testing.T) {
	eachBackend(t, func(t *testing.T, b *backend) {
		tbl := createTypes(t, b)
		rows := full(t, b.src, source.Query{Table: tbl}, 2)
		if len(rows) != 3 {
			t.Fatalf("got %d rows", len(rows))
		}
		amount := "12345678901234.123456"
		if b.kind == source.SQLite {
			amount = "12345678.123456"
		}
		want := []map[string]string{{
			"id": "1", "amount": amount, "flag": "true",
			"local_at": "2024-05-01T00:00:00Z", // stored without a zone: CST
			"instant":  "2024-05-01T00:00:00Z",
			"day":      "2024-05-01", "bin": "AAEC/w==", "name": "张三丰", "note": "", "ratio": "1.5", "small": "1.1",
		}, {
			"id": "2", "amount": "-0.5", "flag": "false", "local_at": "NULL", "instant": "NULL", "day": "NULL",
			"bin": "NULL", "name": "李四", "note": "NULL", "ratio": "NULL", "small": "NULL",
		}, {
			"id": "3", "amount": "100", "flag": "true", "local_at": "2024-05-01T00:00:00.123456Z", "instant": "NULL",
			"day": "1999-12-31", "bin": "", "name": `O'Brien "q"`, "note": "多行\n文本", "ratio": "-2.25e-7", "small": "NULL",
		}}
		for i := range want {
			for k, w := range want[i] {
				if got := rows[i][k]; got != w {
					t.Errorf("row %d %s = %q, want %q", i+1, k, got, w)
				}
			}
		}
		// NULL and "" stay apart in the values themselves.
		err := b.src.Full(context.Background(), source.Query{Table: tbl, Columns: []string{"note"}}, 10, func(c source.Chunk) error {
			if !slices.Equal(c.Columns, []string{"note", "id"}) {
				t.Errorf("columns %v, want note and then the key", c.Columns)
			}
			if v := c.Rows[0][0]; v.Null || v.Text != "" {
				t.Errorf("empty note read as %+v", v)
			}
			if v := c.Rows[1][0]; !v.Null {
				t.Errorf("NULL note read as %+v", v)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	})
}

var partsCols = []col{
	{"region", "varchar(10)", "VARCHAR(10)", "VARCHAR(10)"},
	{"seq", "integer", "INT", "INTEGER"},
	{"val", "varchar(20)", "VARCHAR(20)", "VARCHAR(20)"},
}

func TestCompositeKeysStreamInKeyOrder(t *testing.T) {
	eachBackend(t, func(t *testing.T, b *backend) {
		ctx := context.Background()
		tbl := b.create(t, "parts", partsCols, "region", "seq")
		b.insert(t, tbl, []string{"region", "seq", "val"},
			[]any{"中", 1, "z"}, []any{"B", 1, "b1"}, []any{"A", 10, "a10"}, []any{"a", 3, "lower"},
			[]any{"A", 2, "a2"}, []any{"A", 1, "a1"})
		cols, err := b.src.Columns(ctx, tbl)
		if err != nil {
			t.Fatal(err)
		}
		if cols[0].Key != 1 || cols[1].Key != 2 || cols[2].Key != 0 {
			t.Errorf("key positions %d %d %d, want 1 2 0", cols[0].Key, cols[1].Key, cols[2].Key)
		}
		// Text by its UTF-8 bytes, numbers by value, whatever the collation.
		want := []string{"A|1", "A|2", "A|10", "B|1", "a|3", "中|1"}
		var got []string
		err = b.src.Keys(ctx, source.Query{Table: tbl}, 4, func(ks []source.Key) error {
			for _, k := range ks {
				got = append(got, k.String())
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, want) {
			t.Errorf("keys %v, want %v", got, want)
		}
		rows := full(t, b.src, source.Query{Table: tbl}, 5)
		got = got[:0]
		for _, r := range rows {
			got = append(got, r["region"]+"|"+r["seq"])
		}
		if !slices.Equal(got, want) {
			t.Errorf("Full order %v, want %v", got, want)
		}
		// A range of keys, as the full check asks for.
		var hs []string
		err = b.src.KeyHashes(ctx, source.Query{Table: tbl}, source.KeyRange{After: source.Key{"A", "2"}, Through: source.Key{"a", "3"}}, 10,
			func(ks []source.KeyHash) error {
				for _, k := range ks {
					hs = append(hs, k.Key.String())
				}
				return nil
			})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(hs, want[2:5]) {
			t.Errorf("keys in (A|2, a|3]: %v, want %v", hs, want[2:5])
		}
		// The same table read through a custom SELECT with an explicit key.
		q := source.Query{SQL: "SELECT region, seq, val FROM " + b.quote(tbl) + " WHERE seq < 10", Key: []string{"region", "seq"}}
		rows = full(t, b.src, q, 100)
		if len(rows) != 5 || rows[0]["val"] != "a1" || rows[4]["val"] != "z" {
			t.Errorf("custom query rows %v", rows)
		}
		desc, err := b.src.Describe(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		if desc[1].DataType != "I" || desc[0].DataType != "C" {
			t.Errorf("custom query columns %+v", desc)
		}
	})
}

func TestCustomQueryMustBeOneSelect(t *testing.T) {
	eachBackend(t, func(t *testing.T, b *backend) {
		ctx := context.Background()
		for _, s := range []string{"DELETE FROM x", "SELECT 1; DROP TABLE x", "  "} {
			err := b.src.Full(ctx, source.Query{SQL: s, Key: []string{"a"}}, 10, func(source.Chunk) error { return nil })
			if !errors.Is(err, source.ErrBadQuery) {
				t.Errorf("%q: %v, want ErrBadQuery", s, err)
			}
		}
		tbl := b.create(t, "nokey", []col{{"a", "integer", "INT", "INTEGER"}})
		err := b.src.Full(ctx, source.Query{Table: tbl}, 10, func(source.Chunk) error { return nil })
		if !errors.Is(err, source.ErrNoKey) {
			t.Errorf("table without a key: %v, want ErrNoKey", err)
		}
	})
}

var eventsCols = []col{
	{"id", "bigint", "BIGINT", "INTEGER"},
	{"msg", "varchar(20)", "VARCHAR(20)", "VARCHAR(20)"},
}

func TestSinceKeyReturnsHighWaterMark(t *testing.T) {
	eachBackend(t, func(t *testing.T, b *backend) {
		ctx := context.Background()
		tbl := b.create(t, "events", eventsCols, "id")
		for i := 1; i <= 5; i++ {
			b.insert(t, tbl, []string{"id", "msg"}, []any{i, fmt.Sprint("e", i)})
		}
		read := func(after string) ([]string, string) {
			var ids []string
			chunks := 0
			mark, err := b.src.SinceKey(ctx, source.Query{Table: tbl, Columns: []string{"msg"}}, "id", after, 2, func(c source.Chunk) error {
				chunks++
				for _, r := range c.Rows {
					ids = append(ids, r[1].Text)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if chunks != (len(ids)+1)/2 {
				t.Errorf("%d rows in %d chunks of 2", len(ids), chunks)
			}
			return ids, mark
		}
		ids, mark := read("")
		if !slices.Equal(ids, []string{"1", "2", "3", "4", "5"}) || mark != "5" {
			t.Fatalf("first run %v mark %q", ids, mark)
		}
		b.insert(t, tbl, []string{"id", "msg"}, []any{6, "e6"}, []any{10, "e10"}, []any{7, "e7"})
		ids, mark = read(mark)
		if !slices.Equal(ids, []string{"6", "7", "10"}) || mark != "10" {
			t.Fatalf("second run %v mark %q", ids, mark)
		}
		ids, mark = read(mark)
		if len(ids) != 0 || mark != "10" {
			t.Fatalf("idle run %v mark %q", ids, mark)
		}
		// A callback that fails keeps the mark before its chunk.
		boom := errors.New("boom")
		n := 0
		mark, err := b.src.SinceKey(ctx, source.Query{Table: tbl}, "id", "", 2, func(source.Chunk) error {
			if n++; n == 2 {
				return boom
			}
			return nil
		})
		if !errors.Is(err, boom) || mark != "2" {
			t.Errorf("failed run: mark %q err %v, want 2 and boom", mark, err)
		}
	})
}

func TestSinceTimeStopsAtSourceClockMinusLag(t *testing.T) {
	eachBackend(t, func(t *testing.T, b *backend) {
		ctx := context.Background()
		tzType := col{"", "timestamptz", "TIMESTAMP(6) NULL", "TIMESTAMP"}
		tbl := b.create(t, "changes", []col{
			{"id", "integer", "INT", "INTEGER"},
			{"upd_local", "timestamp", "DATETIME(6) NULL", "DATETIME"},
			{"upd_tz", tzType.pg, tzType.my, tzType.lite},
		}, "id")
		now, err := b.src.Now(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if d := time.Since(now); d > time.Minute || d < -time.Minute {
			t.Fatalf("source clock %v is far from ours", now)
		}
		local := func(at time.Time) any { return at.In(cst).Format("2006-01-02 15:04:05.000000") }
		tz := func(at time.Time) any {
			if b.kind == source.MySQL {
				return at.UTC().Format("2006-01-02 15:04:05.000000")
			}
			return at.UTC().Format(time.RFC3339Nano)
		}
		at := func(d time.Duration) time.Time { return now.Add(d) }
		for i, d := range []time.Duration{-2 * time.Hour, -20 * time.Minute, -5 * time.Minute, time.Hour} {
			b.insert(t, tbl, []string{"id", "upd_local", "upd_tz"}, []any{i + 1, local(at(d)), tz(at(d))})
		}
		b.insert(t, tbl, []string{"id"}, []any{5}) // no update time: never read

		for _, column := range []string{"upd_local", "upd_tz"} {
			t.Run(column, func(t *testing.T) {
				read := func(from time.Time, lag time.Duration) ([]string, time.Time) {
					var ids []string
					upper, err := b.src.SinceTime(ctx, source.Query{Table: tbl}, column, from, lag, 2, func(c source.Chunk) error {
						for _, r := range c.Rows {
							ids = append(ids, r[0].Text)
						}
						return nil
					})
					if err != nil {
						t.Fatal(err)
					}
					return ids, upper
				}
				ids, upper := read(time.Time{}, 10*time.Minute)
				if !slices.Equal(ids, []string{"1", "2"}) {
					t.Errorf("first window %v, want 1 2 (3 is within the lag, 4 in the future)", ids)
				}
				if lo, hi := now.Add(-10*time.Minute), time.Now().Add(-10*time.Minute+time.Minute); upper.Before(lo.Truncate(time.Millisecond)) || upper.After(hi) {
					t.Errorf("upper %v, want the source clock minus the lag (about %v)", upper, lo)
				}
				ids, upper2 := read(upper, 0)
				if !slices.Equal(ids, []string{"3"}) {
					t.Errorf("second window %v, want 3", ids)
				}
				ids, upper3 := read(upper2, 0)
				if len(ids) != 0 || upper3.Before(upper2) {
					t.Errorf("idle window %v upper %v after %v", ids, upper3, upper2)
				}
				// A window whose upper bound is not after from reads nothing.
				if ids, u := read(upper3.Add(time.Hour), 0); len(ids) != 0 || !u.Equal(upper3.Add(time.Hour)) {
					t.Errorf("window ahead of the clock: %v, %v", ids, u)
				}
			})
		}
		if _, err := b.src.SinceTime(ctx, source.Query{Table: tbl}, "id", time.Time{}, 0, 10, func(source.Chunk) error { return nil }); !errors.Is(err, source.ErrBadQuery) {
			t.Errorf("SinceTime on an integer column: %v, want ErrBadQuery", err)
		}
	})
}

func TestTestSaysWhatIsWrong(t *testing.T) {
	ctx := context.Background()
	check := func(t *testing.T, kind, dsn string, want error) {
		t.Helper()
		src, err := source.Open(kind, dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer src.Close()
		err = src.Test(ctx)
		var ce *source.ConnError
		if !errors.Is(err, want) || !errors.As(err, &ce) || ce.ZH == "" {
			t.Errorf("%s %s: %v, want %v with advice", kind, dsn, err, want)
		}
	}
	t.Run("sqlite", func(t *testing.T) {
		check(t, source.SQLite, t.TempDir()+"/missing.db", source.ErrNotFound)
	})
	t.Run("csvdir", func(t *testing.T) {
		check(t, source.CSVDir, t.TempDir()+"/missing", source.ErrNotFound)
	})
	t.Run("postgres", func(t *testing.T) {
		dsn := os.Getenv(envPostgres)
		if dsn == "" {
			t.Skipf("set %s='postgres://postgres@127.0.0.1:5432/test?sslmode=disable' to run", envPostgres)
		}
		postgresBackend(t) // fails when the server is unreachable
		check(t, source.Postgres, "postgres://postgres@127.0.0.1:1/test?sslmode=disable&connect_timeout=5", source.ErrUnreachable)
		u, err := url.Parse(dsn)
		if err != nil {
			t.Fatal(err)
		}
		u.Path = "/no_such_db_" + randHex(t)
		check(t, source.Postgres, u.String(), source.ErrUnknownDatabase)
	})
	t.Run("mysql", func(t *testing.T) {
		dsn := os.Getenv(envMySQL)
		if dsn == "" {
			t.Skipf("set %s='root@tcp(127.0.0.1:3306)/test' to run", envMySQL)
		}
		mysqlBackend(t)
		cfg, err := mysql.ParseDSN(dsn)
		if err != nil {
			t.Fatal(err)
		}
		c := cfg.Clone()
		c.Addr = "127.0.0.1:1"
		check(t, source.MySQL, c.FormatDSN(), source.ErrUnreachable)
		c = cfg.Clone()
		c.DBName = "no_such_db_" + randHex(t)
		check(t, source.MySQL, c.FormatDSN(), source.ErrUnknownDatabase)
		c = cfg.Clone()
		c.User, c.Passwd = "no_such_user_"+randHex(t), "wrong"
		check(t, source.MySQL, c.FormatDSN(), source.ErrWrongPassword)
	})
}
