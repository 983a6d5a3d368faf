package target_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"govshare/internal/agent/source"
	"govshare/internal/agent/target"
)

// row makes a row of canonical values; nil is NULL.
func row(vals ...any) source.Row {
	r := make(source.Row, len(vals))
	for i, v := range vals {
		if v == nil {
			r[i] = source.Value{Null: true}
		} else {
			r[i] = source.Value{Text: v.(string)}
		}
	}
	return r
}

// everyType is a table with a composite key and a column of each catalog
// type.
var everyType = []target.Column{
	{Name: "region", DataType: "C", Length: 20, Key: true},
	{Name: "id", DataType: "I", Key: true},
	{Name: "name", DataType: "C", Length: 50},
	{Name: "note", DataType: "M"},
	{Name: "amount", DataType: "N"},
	{Name: "price", DataType: "Y"},
	{Name: "ratio", DataType: "B"},
	{Name: "small", DataType: "F"},
	{Name: "active", DataType: "L"},
	{Name: "day", DataType: "D"},
	{Name: "changed_at", DataType: "T"},
	{Name: "photo", DataType: "G"},
	{Name: "remark", DataType: "C"}, // unbounded
}

// everyTypeRows are canonical values at the edges of each type.
func everyTypeRows() []source.Row {
	rows := []source.Row{
		row("北京", "1", "张三丰", "多行\n文本 'single' \"double\" \\ back", "12345678901234567890.123456789012345678", "-0.5",
			"0.30000000000000004", "1.1", "true", "2024-05-01", "2024-05-01T00:00:00Z", "AAEC/w==", "备注"),
		row("北京", "2", "", nil, nil, nil, nil, nil, nil, nil, nil, nil, nil),
		row("上海", "-9223372036854775808", "O'Brien", "", "0", "100", "1e+21", "3.4028235e+38", "false", "1999-12-31",
			"1999-12-31T16:00:00.123456Z", "", ""),
		row("a", "9223372036854775807", "emoji 😀", "x", "-12345678901234567890123456789012345.123456789012345678901234567891", "0.01",
			"-2.5e-7", "-2.5e-7", "true", "2000-02-29", "2024-02-29T23:59:59.999999Z", "/w==", strings.Repeat("长", 300)),
		row("A", "0", "upper", "y", "1", "-1", "1.7976931348623157e+308", "16777216", "false", "9999-12-31", "1970-01-01T00:00:00Z", "AA==", nil),
		row("a ", "0", "trailing space", "z", "0.000000000000000000000000000001", "1", "5e-324", "1e-45", "true", "1000-01-01", "2000-01-01T00:00:00.5Z", "AAAA", " "),
	}
	for i := range 150 {
		rows = append(rows, row("批量", strconv.Itoa(i), fmt.Sprintf("名称%d", i), nil, fmt.Sprintf("%d.25", i), fmt.Sprintf("%d", i*100),
			fmt.Sprintf("%d.5", i), "0.5", strconv.FormatBool(i%2 == 0), "2024-05-01", fmt.Sprintf("2024-05-01T00:00:%02dZ", i%60), "AQID", nil))
	}
	return rows
}

func names(cols []target.Column) []string {
	out := make([]string, len(cols))
	for i, c := range cols {
		out[i] = c.Name
	}
	return out
}

// readBack reads every row of table through package source, in key order.
func readBack(t *testing.T, b *backend, table string, cols []target.Column) []source.Row {
	t.Helper()
	var out []source.Row
	err := b.source(t).Full(context.Background(), source.Query{Table: source.Table{Name: table}, Columns: names(cols)}, 100, func(c source.Chunk) error {
		out = append(out, c.Rows...)
		return nil
	})
	if err != nil {
		t.Fatalf("read back %s: %v", table, err)
	}
	return out
}

func apply(t *testing.T, b *backend, table string, cols []target.Column, stream string, seq uint64, ups []source.Row, dels ...source.Key) target.Counts {
	t.Helper()
	c, skipped, err := b.tgt.Apply(context.Background(), table, cols, stream, seq, ups, dels, nil)
	if err != nil {
		t.Fatalf("apply %s #%d: %v", stream, seq, err)
	}
	if skipped {
		t.Fatalf("apply %s #%d: skipped", stream, seq)
	}
	return c
}

func ensure(t *testing.T, b *backend, table string, cols []target.Column) {
	t.Helper()
	if err := b.tgt.Ensure(context.Background(), table, cols, true); err != nil {
		t.Fatalf("ensure %s: %v", table, err)
	}
}

func TestEnsureCreatesEveryType(t *testing.T) {
	eachBackend(t, func(t *testing.T, b *backend) {
		ctx := context.Background()
		ensure(t, b, "every_type", everyType)
		// Once made, the table passes without create, and a second create
		// changes nothing.
		if err := b.tgt.Ensure(ctx, "every_type", everyType, false); err != nil {
			t.Fatalf("ensure an existing table: %v", err)
		}
		ensure(t, b, "every_type", everyType)
		cols, err := b.source(t).Columns(ctx, source.Table{Name: "every_type"})
		if err != nil {
			t.Fatal(err)
		}
		if got := len(cols); got != len(everyType) {
			t.Fatalf("the table has %d columns, want %d", got, len(everyType))
		}
		for i, c := range cols {
			if c.Name != everyType[i].Name {
				t.Errorf("column %d is %s, want %s", i, c.Name, everyType[i].Name)
			}
			if want := everyType[i].Key; (c.Key > 0) != want {
				t.Errorf("column %s: key position %d, want key %v", c.Name, c.Key, want)
			}
			t.Logf("%s %s → %s", c.Name, everyType[i].DataType, c.DatabaseType)
		}
		if n := b.count(t, "govshare_applied"); n != 0 {
			t.Errorf("the bookkeeping table has %d rows, want none", n)
		}
	})
}

func TestApplyCountsInsertedUpdatedUnchanged(t *testing.T) {
	cols := []target.Column{
		{Name: "id", DataType: "I", Key: true},
		{Name: "name", DataType: "C", Length: 20},
		{Name: "amount", DataType: "N"},
	}
	eachBackend(t, func(t *testing.T, b *backend) {
		ensure(t, b, "counts", cols)
		c := apply(t, b, "counts", cols, "s", 1, []source.Row{
			row("1", "甲", "1.5"), row("2", "乙", nil), row("3", "丙", "3"),
		})
		if want := (target.Counts{Inserted: 3}); c != want {
			t.Errorf("first delivery: %+v, want %+v", c, want)
		}
		// 1 unchanged (the decimal written as another text of the same
		// number), 2 updated (NULL to a value), 3 updated (to NULL), 4 new.
		c = apply(t, b, "counts", cols, "s", 2, []source.Row{
			row("1", "甲", "+1.50"), row("2", "乙", "2"), row("3", "丙", nil), row("4", "丁", "4"),
		})
		if want := (target.Counts{Inserted: 1, Updated: 2, Unchanged: 1}); c != want {
			t.Errorf("second delivery: %+v, want %+v", c, want)
		}
		// A key given twice counts once, its last row winning.
		c = apply(t, b, "counts", cols, "s", 3, []source.Row{
			row("5", "戊", "5"), row("1", "甲", "1.5"), row("5", "己", "5"),
		})
		if want := (target.Counts{Inserted: 1, Unchanged: 1}); c != want {
			t.Errorf("third delivery: %+v, want %+v", c, want)
		}
		got := readBack(t, b, "counts", cols)
		want := []source.Row{row("1", "甲", "1.5"), row("2", "乙", "2"), row("3", "丙", nil), row("4", "丁", "4"), row("5", "己", "5")}
		if !slices.EqualFunc(got, want, slices.Equal) {
			t.Errorf("read back %v, want %v", got, want)
		}
	})
}

// TestApplyMakesTheRowsCanonicalWhereTheyAre: a delivery's rows are not
// copied; after Apply they hold the canonical text that was applied.
func TestApplyMakesTheRowsCanonicalWhereTheyAre(t *testing.T) {
	cols := []target.Column{{Name: "id", DataType: "I", Key: true}, {Name: "amount", DataType: "N"}, {Name: "at", DataType: "T"}}
	eachBackend(t, func(t *testing.T, b *backend) {
		ensure(t, b, "in_place", cols)
		ups := []source.Row{row("+7", "+001.50", "2024-05-01T08:00:00+08:00"), row("8", "2", nil)}
		if c := apply(t, b, "in_place", cols, "s", 1, ups); c != (target.Counts{Inserted: 2}) {
			t.Errorf("counts %+v", c)
		}
		want := []source.Row{row("7", "1.5", "2024-05-01T00:00:00Z"), row("8", "2", nil)}
		if !slices.EqualFunc(ups, want, slices.Equal) {
			t.Errorf("rows after Apply %v, want %v", ups, want)
		}
		if got := readBack(t, b, "in_place", cols); !slices.EqualFunc(got, want, slices.Equal) {
			t.Errorf("read back %v, want %v", got, want)
		}
	})
}

func TestDeletesFollowUpsertsAndCountMissing(t *testing.T) {
	cols := []target.Column{
		{Name: "city", DataType: "C", Length: 10, Key: true},
		{Name: "seq", DataType: "I", Key: true},
		{Name: "v", DataType: "C"},
	}
	eachBackend(t, func(t *testing.T, b *backend) {
		ensure(t, b, "dels", cols)
		apply(t, b, "dels", cols, "d", 1, []source.Row{
			row("杭州", "1", "a"), row("杭州", "2", "b"), row("宁波", "1", "c"),
		})
		c := apply(t, b, "dels", cols, "d", 2,
			[]source.Row{row("温州", "9", "new and gone"), row("宁波", "1", "c2")},
			source.Key{"杭州", "1"}, source.Key{"杭州", "3"}, source.Key{"温州", "9"}, source.Key{"杭州", "1"}, source.Key{"宁波", "2"})
		want := target.Counts{Inserted: 1, Updated: 1, Deleted: 2, Missing: 2}
		if c != want {
			t.Errorf("counts %+v, want %+v", c, want)
		}
		got := readBack(t, b, "dels", cols)
		wantRows := []source.Row{row("宁波", "1", "c2"), row("杭州", "2", "b")}
		if !slices.EqualFunc(got, wantRows, slices.Equal) {
			t.Errorf("read back %v, want %v", got, wantRows)
		}
		// A delivery of deletes only.
		c = apply(t, b, "dels", cols, "d", 3, nil, source.Key{"杭州", "2"})
		if want := (target.Counts{Deleted: 1}); c != want {
			t.Errorf("deletes only: %+v, want %+v", c, want)
		}
	})
}

func TestRedeliveryHasNoSecondEffect(t *testing.T) {
	cols := []target.Column{{Name: "id", DataType: "I", Key: true}, {Name: "v", DataType: "C"}}
	eachBackend(t, func(t *testing.T, b *backend) {
		ctx := context.Background()
		ensure(t, b, "redeliver", cols)
		if seq, err := b.tgt.Applied(ctx, "r"); err != nil || seq != 0 {
			t.Fatalf("applied before any delivery: %d, %v; want 0", seq, err)
		}
		apply(t, b, "redeliver", cols, "r", 5, []source.Row{row("1", "five")})
		for _, seq := range []uint64{5, 4, 0} {
			c, skipped, err := b.tgt.Apply(ctx, "redeliver", cols, "r", seq, []source.Row{row("1", "again"), row("2", "x")}, []source.Key{{"1"}}, nil)
			if err != nil || !skipped || c != (target.Counts{}) {
				t.Errorf("seq %d after 5: %+v skipped=%v err=%v; want skipped with no counts", seq, c, skipped, err)
			}
		}
		if got := readBack(t, b, "redeliver", cols); !slices.EqualFunc(got, []source.Row{row("1", "five")}, slices.Equal) {
			t.Errorf("a skipped delivery changed the table: %v", got)
		}
		if seq, err := b.tgt.Applied(ctx, "r"); err != nil || seq != 5 {
			t.Errorf("applied: %d, %v; want 5", seq, err)
		}
		// Another stream into the same table keeps its own sequence.
		apply(t, b, "redeliver", cols, "other", 1, []source.Row{row("3", "other")})
		if seq, _ := b.tgt.Applied(ctx, "r"); seq != 5 {
			t.Errorf("applied r: %d after another stream's delivery, want 5", seq)
		}
		apply(t, b, "redeliver", cols, "r", 7, []source.Row{row("1", "seven")})
		if seq, _ := b.tgt.Applied(ctx, "r"); seq != 7 {
			t.Errorf("applied r: %d, want 7", seq)
		}
	})
}

func TestConcurrentRedeliveryAppliesOnce(t *testing.T) {
	cols := []target.Column{{Name: "id", DataType: "I", Key: true}, {Name: "v", DataType: "C"}}
	eachBackend(t, func(t *testing.T, b *backend) {
		ensure(t, b, "race", cols)
		var ups []source.Row
		for i := range 500 {
			ups = append(ups, row(strconv.Itoa(i), "v"))
		}
		type result struct {
			c       target.Counts
			skipped bool
			err     error
		}
		results := make(chan result)
		for range 4 {
			go func() {
				c, skipped, err := b.tgt.Apply(context.Background(), "race", cols, "same", 1, ups, nil, nil)
				results <- result{c, skipped, err}
			}()
		}
		applied := 0
		for range 4 {
			r := <-results
			switch {
			case r.err != nil:
				t.Errorf("concurrent apply: %v", r.err)
			case !r.skipped:
				applied++
				if r.c.Inserted != 500 {
					t.Errorf("the applying delivery: %+v, want 500 inserted", r.c)
				}
			}
		}
		if applied != 1 {
			t.Errorf("%d of 4 concurrent deliveries of one seq applied, want 1", applied)
		}
	})
}

func TestBadValueChangesNothing(t *testing.T) {
	cols := []target.Column{{Name: "id", DataType: "I", Key: true}, {Name: "n", DataType: "I"}, {Name: "note", DataType: "C", Length: 20}}
	eachBackend(t, func(t *testing.T, b *backend) {
		ctx := context.Background()
		// A NOT NULL column the data item allows NULL in: the database
		// refuses the last row after the first batches were written.
		b.exec(t, "CREATE TABLE "+b.quote("bad")+" (id BIGINT NOT NULL PRIMARY KEY, n BIGINT, note VARCHAR(20) NOT NULL)")
		if err := b.tgt.Ensure(ctx, "bad", cols, false); err != nil {
			t.Fatal(err)
		}
		if _, _, err := b.tgt.Apply(ctx, "bad", cols, "b", 1, []source.Row{row("0", "0", "before")}, nil, countsNote); err != nil {
			t.Fatal(err)
		}
		var ups []source.Row
		for i := 1; i <= 1000; i++ {
			ups = append(ups, row(strconv.Itoa(i), strconv.Itoa(i), "ok"))
		}
		cases := []struct {
			name string
			ups  []source.Row
			is   error
		}{
			{"text in an integer column", append(slices.Clone(ups), row("1001", "十二", "x")), target.ErrBadValue},
			{"integer out of range", append(slices.Clone(ups), row("1001", "9223372036854775808", "x")), target.ErrBadValue},
			{"text longer than its data item", append(slices.Clone(ups), row("1001", "1", strings.Repeat("长", 21))), target.ErrBadValue},
			{"NULL key", append(slices.Clone(ups), row(nil, "1", "x")), target.ErrBadValue},
			{"row of the wrong width", append(slices.Clone(ups), row("1001", "1")), target.ErrBadValue},
			{"NULL refused by the database", append(slices.Clone(ups), row("1001", "1", nil)), nil},
		}
		for _, tc := range cases {
			_, skipped, err := b.tgt.Apply(ctx, "bad", cols, "b", 2, tc.ups, []source.Key{{"0"}}, countsNote)
			if err == nil || skipped {
				t.Errorf("%s: applied (skipped=%v), want an error", tc.name, skipped)
				continue
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("%s: %v, want %v", tc.name, err, tc.is)
			}
			t.Logf("%s: %v", tc.name, err)
			if n := b.count(t, "bad"); n != 1 {
				t.Errorf("%s: the table has %d rows after the failed delivery, want 1", tc.name, n)
			}
			if seq, note, err := b.tgt.LastNote(ctx, "b"); seq != 1 || string(note) != "inserted 1" || err != nil {
				t.Errorf("%s: applied %d with note %q (%v) after the failed delivery, want 1 and the first delivery's note", tc.name, seq, note, err)
			}
		}
		// The delivery, fixed, goes through with the same seq.
		c := apply(t, b, "bad", cols, "b", 2, append(ups, row("1001", "1", "fixed")), source.Key{"0"})
		if want := (target.Counts{Inserted: 1001, Deleted: 1}); c != want {
			t.Errorf("fixed delivery: %+v, want %+v", c, want)
		}
	})
}

// countsNote is a delivery's note: what it inserted.
func countsNote(c target.Counts) []byte { return fmt.Appendf(nil, "inserted %d", c.Inserted) }

func TestNoteIsRecordedWithTheSeq(t *testing.T) {
	cols := []target.Column{{Name: "id", DataType: "I", Key: true}, {Name: "v", DataType: "C"}}
	eachBackend(t, func(t *testing.T, b *backend) {
		ctx := context.Background()
		ensure(t, b, "noted", cols)
		if seq, note, err := b.tgt.LastNote(ctx, "n"); seq != 0 || note != nil || err != nil {
			t.Fatalf("before any delivery: %d %q %v; want 0 and no note", seq, note, err)
		}
		var seen target.Counts
		note := func(c target.Counts) []byte {
			seen = c
			return fmt.Appendf(nil, `{"inserted":%d,"updated":%d,"deleted":%d,"text":"长 '\"}`, c.Inserted, c.Updated, c.Deleted)
		}
		apply(t, b, "noted", cols, "n", 1, []source.Row{row("1", "a"), row("2", "b")})
		c, skipped, err := b.tgt.Apply(ctx, "noted", cols, "n", 2, []source.Row{row("1", "a2"), row("3", "c")}, []source.Key{{"2"}}, note)
		if err != nil || skipped {
			t.Fatalf("apply #2: %v skipped=%v", err, skipped)
		}
		if c != seen {
			t.Errorf("the note was made from %+v, Apply returned %+v", seen, c)
		}
		want := `{"inserted":1,"updated":1,"deleted":1,"text":"长 '\"}`
		if seq, got, err := b.tgt.LastNote(ctx, "n"); seq != 2 || string(got) != want || err != nil {
			t.Fatalf("after #2: %d %q %v; want 2 %q", seq, got, err, want)
		}
		// A redelivery is skipped without asking for a note or changing it.
		for _, seq := range []uint64{2, 1} {
			_, skipped, err := b.tgt.Apply(ctx, "noted", cols, "n", seq, []source.Row{row("9", "x")}, nil, func(target.Counts) []byte {
				t.Errorf("redelivery #%d asked for a note", seq)
				return []byte("redelivered")
			})
			if err != nil || !skipped {
				t.Errorf("redelivery #%d: %v skipped=%v; want skipped", seq, err, skipped)
			}
		}
		if seq, got, _ := b.tgt.LastNote(ctx, "n"); seq != 2 || string(got) != want {
			t.Errorf("after redeliveries: %d %q; want 2 %q", seq, got, want)
		}
		// Another stream has its own note; a delivery without one
		// records none.
		apply(t, b, "noted", cols, "other", 7, []source.Row{row("4", "d")})
		if seq, got, _ := b.tgt.LastNote(ctx, "other"); seq != 7 || got != nil {
			t.Errorf("stream without a note: %d %q; want 7 and none", seq, got)
		}
		if seq, got, _ := b.tgt.LastNote(ctx, "n"); seq != 2 || string(got) != want {
			t.Errorf("n after another stream's delivery: %d %q", seq, got)
		}
		if _, _, err := b.tgt.Apply(ctx, "noted", cols, "n", 3, []source.Row{row("5", "e")}, nil, nil); err != nil {
			t.Fatal(err)
		}
		if seq, got, _ := b.tgt.LastNote(ctx, "n"); seq != 3 || got != nil {
			t.Errorf("after #3 without a note: %d %q; want 3 and none", seq, got)
		}
		if _, _, err := b.tgt.Apply(ctx, "noted", cols, "n", 4, nil, nil, func(target.Counts) []byte { return []byte{0xff} }); !errors.Is(err, target.ErrBadValue) {
			t.Errorf("a note that is not UTF-8: %v, want %v", err, target.ErrBadValue)
		}
		if _, _, err := b.tgt.Apply(ctx, "noted", cols, "n", 4, nil, nil, note); err != nil {
			t.Fatal(err)
		}
		if err := b.tgt.Reset(ctx, "n", "noted", false); err != nil {
			t.Fatal(err)
		}
		if seq, got, err := b.tgt.LastNote(ctx, "n"); seq != 0 || got != nil || err != nil {
			t.Errorf("after reset: %d %q %v; want 0 and no note", seq, got, err)
		}
	})
}

func TestOldBookkeepingTableGetsTheNoteColumn(t *testing.T) {
	cols := []target.Column{{Name: "id", DataType: "I", Key: true}, {Name: "v", DataType: "C"}}
	eachBackend(t, func(t *testing.T, b *backend) {
		ctx := context.Background()
		// The table as earlier versions made it, with a stream applied.
		old := map[string]string{
			source.SQLite:   "stream TEXT PRIMARY KEY, seq INTEGER NOT NULL, applied_at DATETIME NOT NULL",
			source.Postgres: "stream text PRIMARY KEY, seq bigint NOT NULL, applied_at timestamp with time zone NOT NULL",
			source.MySQL:    "stream VARCHAR(255) NOT NULL PRIMARY KEY, seq BIGINT NOT NULL, applied_at DATETIME(6) NOT NULL",
		}[b.kind]
		b.exec(t, "CREATE TABLE govshare_applied ("+old+")")
		b.exec(t, "INSERT INTO govshare_applied (stream, seq, applied_at) VALUES ('old', 4, '2024-05-01 08:00:00')")
		// Nodes sharing the database race to add the column.
		errs := make(chan error)
		for range 4 {
			go func() {
				tgt, err := target.Open(b.kind, b.dsn)
				if err != nil {
					errs <- err
					return
				}
				defer tgt.Close()
				seq, note, err := tgt.LastNote(ctx, "old")
				if err == nil && (seq != 4 || note != nil) {
					err = fmt.Errorf("the old row reads %d %q, want 4 and no note", seq, note)
				}
				errs <- err
			}()
		}
		for range 4 {
			if err := <-errs; err != nil {
				t.Errorf("a node using the old bookkeeping table: %v", err)
			}
		}
		ensure(t, b, "upgraded", cols)
		if c, skipped, err := b.tgt.Apply(ctx, "upgraded", cols, "old", 4, []source.Row{row("1", "x")}, nil, countsNote); err != nil || !skipped || c != (target.Counts{}) {
			t.Errorf("redelivery of the old stream's last seq: %+v skipped=%v %v; want skipped", c, skipped, err)
		}
		if _, _, err := b.tgt.Apply(ctx, "upgraded", cols, "old", 5, []source.Row{row("1", "x")}, nil, countsNote); err != nil {
			t.Fatal(err)
		}
		if seq, note, err := b.tgt.LastNote(ctx, "old"); seq != 5 || string(note) != "inserted 1" || err != nil {
			t.Errorf("after the upgrade: %d %q %v; want 5 \"inserted 1\"", seq, note, err)
		}
	})
}

func TestEnsureSaysWhichColumn(t *testing.T) {
	cols := []target.Column{
		{Name: "org", DataType: "C", Length: 18, Key: true},
		{Name: "year", DataType: "I", Key: true},
		{Name: "total", DataType: "Y"},
	}
	eachBackend(t, func(t *testing.T, b *backend) {
		ctx := context.Background()
		b.exec(t, "CREATE TABLE "+b.quote("existing")+" (org VARCHAR(18) NOT NULL, year INT NOT NULL, total DECIMAL(20,2), "+
			"extra_nullable VARCHAR(5), extra_default INT NOT NULL DEFAULT 0, PRIMARY KEY (org, year))")
		if err := b.tgt.Ensure(ctx, "existing", cols, false); err != nil {
			t.Errorf("a table with extra nullable and defaulted columns: %v", err)
		}
		b.exec(t, "CREATE TABLE "+b.quote("required_extra")+" (org VARCHAR(18) NOT NULL, year INT NOT NULL, total DECIMAL(20,2), "+
			"must VARCHAR(5) NOT NULL, PRIMARY KEY (org, year))")
		b.exec(t, "CREATE TABLE "+b.quote("other_key")+" (org VARCHAR(18) NOT NULL, year INT NOT NULL, total DECIMAL(20,2), PRIMARY KEY (org))")
		b.exec(t, "CREATE TABLE "+b.quote("swapped_key")+" (org VARCHAR(18) NOT NULL, year INT NOT NULL, total DECIMAL(20,2), PRIMARY KEY (year, org))")
		b.exec(t, "CREATE TABLE "+b.quote("no_key")+" (org VARCHAR(18) NOT NULL, year INT NOT NULL, total DECIMAL(20,2))")
		b.exec(t, "CREATE TABLE "+b.quote("wider_key")+" (org VARCHAR(18) NOT NULL, year INT NOT NULL, total DECIMAL(20,2) NOT NULL, PRIMARY KEY (org, year, total))")
		cases := []struct {
			table  string
			create bool
			is     error
			says   string
		}{
			{"missing", false, target.ErrNoTable, "missing"},
			{"existing", false, nil, ""},
			{"required_extra", false, target.ErrMismatch, "column must"},
			{"other_key", false, target.ErrMismatch, "key column year"},
			{"swapped_key", false, target.ErrMismatch, "key column org"},
			{"no_key", false, target.ErrMismatch, "no primary key"},
			{"wider_key", false, target.ErrMismatch, "column total"},
		}
		for _, tc := range cases {
			err := b.tgt.Ensure(ctx, tc.table, cols, tc.create)
			if tc.is == nil {
				if err != nil {
					t.Errorf("%s: %v", tc.table, err)
				}
				continue
			}
			if !errors.Is(err, tc.is) || !strings.Contains(err.Error(), tc.says) {
				t.Errorf("%s: %v, want %v saying %q", tc.table, err, tc.is, tc.says)
			}
		}
		lacking := append(slices.Clone(cols), target.Column{Name: "budget", DataType: "Y"})
		if err := b.tgt.Ensure(ctx, "existing", lacking, true); !errors.Is(err, target.ErrMismatch) || !strings.Contains(err.Error(), "no column budget") {
			t.Errorf("a missing column: %v, want ErrMismatch naming budget", err)
		}
		// Apply checks the table as well: a key it does not have would
		// upsert by another key.
		if _, _, err := b.tgt.Apply(ctx, "other_key", cols, "e", 1, []source.Row{row("x", "2024", "1")}, nil, nil); !errors.Is(err, target.ErrMismatch) {
			t.Errorf("apply to a table with another key: %v, want ErrMismatch", err)
		}
		if _, _, err := b.tgt.Apply(ctx, "missing", cols, "e", 1, []source.Row{row("x", "2024", "1")}, nil, nil); !errors.Is(err, target.ErrNoTable) {
			t.Errorf("apply to a missing table: %v, want ErrNoTable", err)
		}
		// And the data items themselves.
		bad := []struct {
			name string
			cols []target.Column
		}{
			{"no key", []target.Column{{Name: "a", DataType: "C"}}},
			{"upper-case name", []target.Column{{Name: "Org", DataType: "C", Key: true}}},
			{"unknown type", []target.Column{{Name: "a", DataType: "X", Key: true}}},
			{"repeated name", []target.Column{{Name: "a", DataType: "C", Key: true}, {Name: "a", DataType: "I"}}},
		}
		for _, tc := range bad {
			if err := b.tgt.Ensure(ctx, "anything", tc.cols, true); !errors.Is(err, target.ErrBadColumns) {
				t.Errorf("%s: %v, want ErrBadColumns", tc.name, err)
			}
		}
	})
}

func TestExistingColumnThatWouldRoundIsRefused(t *testing.T) {
	cols := []target.Column{{Name: "id", DataType: "I", Key: true}, {Name: "amount", DataType: "N"}}
	eachBackend(t, func(t *testing.T, b *backend) {
		ctx := context.Background()
		b.exec(t, "CREATE TABLE "+b.quote("narrow")+" (id BIGINT NOT NULL PRIMARY KEY, amount DECIMAL(10,2))")
		if err := b.tgt.Ensure(ctx, "narrow", cols, false); err != nil {
			t.Fatal(err)
		}
		fits, rounded := "12345678.12", "1.125"
		if b.kind == source.SQLite {
			// SQLite keeps a DECIMAL column's numbers as 8-byte floats.
			fits, rounded = "1234567890123.12", "1234567890123.125"
		}
		apply(t, b, "narrow", cols, "n", 1, []source.Row{row("1", fits)})
		_, _, err := b.tgt.Apply(ctx, "narrow", cols, "n", 2, []source.Row{row("2", "1"), row("3", rounded)}, nil, nil)
		if !errors.Is(err, target.ErrBadValue) {
			t.Fatalf("a value the column would round: %v, want ErrBadValue", err)
		}
		t.Log(err)
		if got := readBack(t, b, "narrow", cols); !slices.EqualFunc(got, []source.Row{row("1", fits)}, slices.Equal) {
			t.Errorf("read back %v", got)
		}
	})
}

func TestRoundTripReadsBackCanonicalValues(t *testing.T) {
	eachBackend(t, func(t *testing.T, b *backend) {
		ctx := context.Background()
		ensure(t, b, "round_trip", everyType)
		rows := everyTypeRows()
		// Two deliveries: the second updates half the rows back to the
		// same values, which must count as unchanged.
		c := apply(t, b, "round_trip", everyType, "rt", 1, rows)
		if c.Inserted != int64(len(rows)) {
			t.Errorf("first delivery: %+v, want %d inserted", c, len(rows))
		}
		c = apply(t, b, "round_trip", everyType, "rt", 2, rows[:len(rows)/2])
		if want := (target.Counts{Unchanged: int64(len(rows) / 2)}); c != want {
			t.Errorf("redelivering the same values: %+v, want %+v", c, want)
		}

		src := b.source(t)
		q := source.Query{Table: source.Table{Name: "round_trip"}, Columns: names(everyType)}
		described, err := src.Describe(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		order := source.OrderOf(described)
		want := slices.Clone(rows)
		keyOf := func(r source.Row) source.Key { return source.Key{r[0].Text, r[1].Text} }
		slices.SortFunc(want, func(a, b source.Row) int { return order.Compare(keyOf(a), keyOf(b)) })

		got := readBack(t, b, "round_trip", everyType)
		if len(got) != len(want) {
			t.Fatalf("read back %d rows, want %d", len(got), len(want))
		}
		for i := range want {
			for j := range everyType {
				if got[i][j] != want[i][j] {
					t.Errorf("key %v column %s (%s): read back %q, wrote %q", keyOf(want[i]), everyType[j].Name, everyType[j].DataType, got[i][j], want[i][j])
				}
			}
		}

		for _, size := range []int{1, 7, 1000} {
			sums, err := src.Checksums(ctx, q, size)
			if err != nil {
				t.Fatal(err)
			}
			if exp := checksums(want, keyOf, size); !slices.EqualFunc(sums, exp, sameSum) {
				t.Errorf("checksums in chunks of %d differ from those of the written values:\n got %v\nwant %v", size, sums, exp)
			}
		}
		var hashes []source.KeyHash
		err = src.KeyHashes(ctx, q, source.KeyRange{}, 50, func(h []source.KeyHash) error {
			hashes = append(hashes, h...)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		for i, h := range hashes {
			sum := sha256.Sum256(encode(want[i]))
			if !slices.Equal(h.Key, keyOf(want[i])) || h.Hash != hex.EncodeToString(sum[:16]) {
				t.Errorf("key hash %d: %v %s, want %v %x", i, h.Key, h.Hash, keyOf(want[i]), sum[:16])
			}
		}
	})
}

func TestKeysOfEveryKindMatch(t *testing.T) {
	cols := []target.Column{
		{Name: "day", DataType: "D", Key: true},
		{Name: "at", DataType: "T", Key: true},
		{Name: "code", DataType: "G", Key: true},
		{Name: "flag", DataType: "L", Key: true},
		{Name: "amount", DataType: "N", Key: true},
		{Name: "v", DataType: "C", Length: 10},
	}
	eachBackend(t, func(t *testing.T, b *backend) {
		ensure(t, b, "key_kinds", cols)
		rows := []source.Row{
			row("2024-05-01", "2024-05-01T00:00:00Z", "AQ==", "true", "1.5", "一"),
			row("2024-05-01", "2024-05-01T00:00:00.000001Z", "AQ==", "true", "1.5", "二"),
			row("2024-05-01", "2024-05-01T00:00:00Z", "Ag==", "true", "1.5", "三"),
			row("2024-05-01", "2024-05-01T00:00:00Z", "AQ==", "false", "1.5", "四"),
			row("2024-05-01", "2024-05-01T00:00:00Z", "AQ==", "true", "-1.5", "五"),
		}
		if c := apply(t, b, "key_kinds", cols, "k", 1, rows); c.Inserted != 5 {
			t.Errorf("first delivery: %+v, want 5 inserted", c)
		}
		// The same keys written another way (an offset, a longer decimal)
		// are the same rows.
		c := apply(t, b, "key_kinds", cols, "k", 2,
			[]source.Row{row("2024-05-01", "2024-05-01T08:00:00+08:00", "AQ==", "true", "1.50", "一改")},
			source.Key{"2024-05-01", "2024-05-01T00:00:00.000001Z", "AQ==", "true", "1.5"},
			source.Key{"2024-05-01", "2024-05-01T00:00:00Z", "Ag==", "true", "+01.5"},
			source.Key{"2024-05-02", "2024-05-01T00:00:00Z", "AQ==", "true", "1.5"})
		if want := (target.Counts{Updated: 1, Deleted: 2, Missing: 1}); c != want {
			t.Errorf("second delivery: %+v, want %+v", c, want)
		}
		got := readBack(t, b, "key_kinds", cols)
		var vs []string
		for _, r := range got {
			vs = append(vs, r[5].Text)
		}
		slices.Sort(vs)
		if want := []string{"一改", "五", "四"}; !slices.Equal(vs, want) {
			t.Errorf("rows left: %v, want %v", vs, want)
		}
	})
}

func TestResetForgetsStreamAndEmptiesTable(t *testing.T) {
	cols := []target.Column{{Name: "id", DataType: "I", Key: true}, {Name: "v", DataType: "C"}}
	eachBackend(t, func(t *testing.T, b *backend) {
		ctx := context.Background()
		ensure(t, b, "resync", cols)
		apply(t, b, "resync", cols, "x", 3, []source.Row{row("1", "a"), row("2", "b")})
		if err := b.tgt.Reset(ctx, "x", "resync", false); err != nil {
			t.Fatal(err)
		}
		if seq, _ := b.tgt.Applied(ctx, "x"); seq != 0 {
			t.Errorf("applied after reset: %d, want 0", seq)
		}
		if n := b.count(t, "resync"); n != 2 {
			t.Errorf("reset without truncate left %d rows, want 2", n)
		}
		apply(t, b, "resync", cols, "x", 1, []source.Row{row("1", "a")})
		if err := b.tgt.Reset(ctx, "x", "resync", true); err != nil {
			t.Fatal(err)
		}
		if n := b.count(t, "resync"); n != 0 {
			t.Errorf("reset with truncate left %d rows", n)
		}
		if seq, _ := b.tgt.Applied(ctx, "x"); seq != 0 {
			t.Errorf("applied after reset: %d, want 0", seq)
		}
	})
}

func TestConnectionErrorsAreExplained(t *testing.T) {
	ctx := context.Background()
	tgt, err := target.Open(source.SQLite, filepath.Join(t.TempDir(), "no", "such", "folder", "dept.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer tgt.Close()
	var ce *source.ConnError
	if err := tgt.Test(ctx); !errors.As(err, &ce) || !errors.Is(err, source.ErrNotFound) || ce.ZH == "" {
		t.Errorf("a missing folder: %v, want a ConnError of ErrNotFound", err)
	}
	if _, err := target.Open("oracle", "x"); err == nil {
		t.Error("an unknown kind opened")
	}
	eachBackend(t, func(t *testing.T, b *backend) {
		var dsn string
		switch b.kind {
		case source.Postgres:
			dsn = strings.Replace(b.dsn, "/test?", "/no_such_database_here?", 1)
		case source.MySQL:
			i := strings.LastIndex(b.dsn, "/")
			dsn = b.dsn[:i+1] + "no_such_database_here"
		default:
			return
		}
		tgt, err := target.Open(b.kind, dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer tgt.Close()
		if err := tgt.Test(ctx); !errors.Is(err, source.ErrUnknownDatabase) {
			t.Errorf("an unknown database: %v, want ErrUnknownDatabase", err)
		}
	})
}

// checksums is what source.Checksums must return for rows in key order:
// content-defined chunks, each hashing its rows' encodings (see
// source.ChunkSum).
func checksums(rows []source.Row, keyOf func(source.Row) source.Key, size int) []source.ChunkSum {
	var (
		sums []source.ChunkSum
		cur  source.ChunkSum
		h    = sha256.New()
	)
	for _, r := range rows {
		k := keyOf(r)
		if cur.Count == 0 {
			cur.First = k
		}
		cur.Count++
		h.Write(encode(r))
		if boundary(encodeKey(k), size) || cur.Count >= 4*size {
			cur.Last, cur.Hash = k, hex.EncodeToString(h.Sum(nil))
			sums = append(sums, cur)
			cur = source.ChunkSum{}
			h.Reset()
		}
	}
	if cur.Count > 0 {
		cur.Last, cur.Hash = keyOf(rows[len(rows)-1]), hex.EncodeToString(h.Sum(nil))
		sums = append(sums, cur)
	}
	return sums
}

func sameSum(a, b source.ChunkSum) bool {
	return slices.Equal(a.First, b.First) && slices.Equal(a.Last, b.Last) && a.Count == b.Count && a.Hash == b.Hash
}

// encode is source's hashing encoding of a row: per value 0 for NULL, or
// 1, the length as a uvarint and the bytes.
func encode(r source.Row) []byte {
	var b []byte
	for _, v := range r {
		if v.Null {
			b = append(b, 0)
			continue
		}
		b = append(b, 1)
		b = appendUvarint(b, uint64(len(v.Text)))
		b = append(b, v.Text...)
	}
	return b
}

func encodeKey(k source.Key) []byte {
	var b []byte
	for _, s := range k {
		b = append(b, 1)
		b = appendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	return b
}

func appendUvarint(b []byte, x uint64) []byte {
	for x >= 0x80 {
		b = append(b, byte(x)|0x80)
		x >>= 7
	}
	return append(b, byte(x))
}

// boundary is source's chunk end rule: FNV-1a of the key, mixed, 0 modulo
// the chunk size.
func boundary(k []byte, size int) bool {
	if size <= 1 {
		return true
	}
	h := uint64(14695981039346656037)
	for _, c := range k {
		h ^= uint64(c)
		h *= 1099511628211
	}
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return h%uint64(size) == 0
}

// TestNewRowsMeetingKnownKeysAreUpserted: a delivery of rows new to its
// stream may still meet keys another writer put in the table (PostgreSQL
// copies a delivery of new rows straight in, and must then upsert it):
// nothing is doubled or lost, and the counts say what happened. A
// timestamp column without a zone still gets the instant in +08:00.
func TestNewRowsMeetingKnownKeysAreUpserted(t *testing.T) {
	cols := []target.Column{
		{Name: "id", DataType: "I", Key: true},
		{Name: "name", DataType: "C", Length: 20},
		{Name: "at", DataType: "T"},
	}
	eachBackend(t, func(t *testing.T, b *backend) {
		ensure(t, b, "known", cols)
		b.exec(t, "INSERT INTO "+b.quote("known")+" (id, name) VALUES (2, 'other')")
		c := apply(t, b, "known", cols, "k", 1, []source.Row{
			row("1", "a\tb", "2024-01-01T00:00:00Z"), row("2", "乙", nil), row("3", `c\d`, nil),
		})
		if want := (target.Counts{Inserted: 2, Updated: 1}); c != want {
			t.Errorf("delivery meeting a known key: %+v, want %+v", c, want)
		}
		for seq, id := range []string{"4", "5", "6"} {
			if c := apply(t, b, "known", cols, "k", uint64(seq+2), []source.Row{row(id, "新", nil)}); c != (target.Counts{Inserted: 1}) {
				t.Errorf("delivery #%d of a new row: %+v, want 1 inserted", seq+2, c)
			}
		}
		got := readBack(t, b, "known", cols)
		want := []source.Row{row("1", "a\tb", "2024-01-01T00:00:00Z"), row("2", "乙", nil), row("3", `c\d`, nil),
			row("4", "新", nil), row("5", "新", nil), row("6", "新", nil)}
		if !slices.EqualFunc(got, want, slices.Equal) {
			t.Errorf("read back %v, want %v", got, want)
		}
		if b.kind != source.Postgres {
			return
		}
		b.exec(t, `CREATE TABLE "local_at" (id bigint PRIMARY KEY, at timestamp without time zone)`)
		apply(t, b, "local_at", []target.Column{{Name: "id", DataType: "I", Key: true}, {Name: "at", DataType: "T"}}, "l", 1,
			[]source.Row{row("1", "2024-01-01T00:00:00Z")})
		var local string
		if err := b.db.QueryRow(`SELECT to_char(at, 'YYYY-MM-DD HH24:MI') FROM "local_at"`).Scan(&local); err != nil {
			t.Fatal(err)
		}
		if local != "2024-01-01 08:00" {
			t.Errorf("an instant in a timestamp column without a zone: %s, want 2024-01-01 08:00 (+08:00)", local)
		}
	})
}

// TestBatchesInOneTransactionCountEachDelivery: deliveries applied in one
// transaction count each as if applied alone, the note holds them all, a
// redelivery of any of them has no second effect, and one bad delivery
// leaves the whole transaction unwritten.
func TestBatchesInOneTransactionCountEachDelivery(t *testing.T) {
	cols := []target.Column{{Name: "id", DataType: "I", Key: true}, {Name: "v", DataType: "C"}}
	eachBackend(t, func(t *testing.T, b *backend) {
		ctx := context.Background()
		ensure(t, b, "grouped", cols)
		var seen []target.Counts
		note := func(cs []target.Counts) []byte {
			seen = slices.Clone(cs)
			return fmt.Appendf(nil, "%d deliveries", len(cs))
		}
		batches := []target.Batch{
			{Seq: 1, Upserts: []source.Row{row("1", "a"), row("2", "b")}},
			{Seq: 2, Upserts: []source.Row{row("1", "a2"), row("3", "c")}},
			{Seq: 3, Upserts: []source.Row{row("3", "c")}, Deletes: []source.Key{{"2"}, {"9"}}},
		}
		applied, skipped, err := b.tgt.ApplyBatches(ctx, "grouped", cols, "g", batches, note)
		if err != nil || skipped != 0 {
			t.Fatalf("apply #1 to #3: %v, %d skipped", err, skipped)
		}
		want := []target.Counts{{Inserted: 2}, {Inserted: 1, Updated: 1}, {Unchanged: 1, Deleted: 1, Missing: 1}}
		if !slices.Equal(applied, want) || !slices.Equal(seen, want) {
			t.Errorf("counts %+v, the note made from %+v; want %+v", applied, seen, want)
		}
		if seq, got, err := b.tgt.LastNote(ctx, "g"); seq != 3 || string(got) != "3 deliveries" || err != nil {
			t.Fatalf("after #1 to #3: %d %q %v; want 3 and the note of all three", seq, got, err)
		}

		// Each of them delivered again, alone or with a new one.
		for _, seq := range []uint64{1, 2, 3} {
			if _, skipped, err := b.tgt.Apply(ctx, "grouped", cols, "g", seq, []source.Row{row("1", "again")}, []source.Key{{"3"}}, nil); err != nil || !skipped {
				t.Errorf("redelivery of #%d: skipped=%v %v, want skipped", seq, skipped, err)
			}
		}
		seen = nil
		applied, skipped, err = b.tgt.ApplyBatches(ctx, "grouped", cols, "g", []target.Batch{
			{Seq: 2, Upserts: []source.Row{row("1", "again")}}, {Seq: 3, Deletes: []source.Key{{"1"}}}, {Seq: 4, Upserts: []source.Row{row("4", "d")}},
		}, note)
		if err != nil || skipped != 2 || !slices.Equal(applied, []target.Counts{{Inserted: 1}}) || !slices.Equal(seen, applied) {
			t.Fatalf("#2 to #4 after #3: %+v, %d skipped, %v; want #4 alone applied, 1 inserted", applied, skipped, err)
		}
		if _, skipped, err := b.tgt.ApplyBatches(ctx, "grouped", cols, "g", batches, note); err != nil || skipped != 3 {
			t.Errorf("#1 to #3 again: %d skipped, %v; want all three skipped", skipped, err)
		}

		// A bad value in the second delivery: the first is not written either.
		_, _, err = b.tgt.ApplyBatches(ctx, "grouped", cols, "g", []target.Batch{
			{Seq: 5, Upserts: []source.Row{row("5", "e")}}, {Seq: 6, Upserts: []source.Row{row("x", "f")}},
		}, note)
		if !errors.Is(err, target.ErrBadValue) {
			t.Errorf("a bad value in #6: %v, want ErrBadValue", err)
		}
		if _, _, err := b.tgt.ApplyBatches(ctx, "grouped", cols, "g", []target.Batch{{Seq: 8}, {Seq: 7}}, note); !errors.Is(err, target.ErrBadValue) {
			t.Errorf("seqs out of order: %v, want ErrBadValue", err)
		}
		if seq, _ := b.tgt.Applied(ctx, "g"); seq != 4 {
			t.Errorf("applied seq %d after the failed transaction, want 4", seq)
		}
		got := readBack(t, b, "grouped", cols)
		if wantRows := []source.Row{row("1", "a2"), row("3", "c"), row("4", "d")}; !slices.EqualFunc(got, wantRows, slices.Equal) {
			t.Errorf("read back %v, want %v", got, wantRows)
		}
	})
}

// TestPreparedDeliveriesApplyAsBatches: deliveries prepared ahead, with
// no database, apply as ApplyBatches applies them, counts and redelivery
// included; a bad value is refused when they are prepared.
func TestPreparedDeliveriesApplyAsBatches(t *testing.T) {
	cols := []target.Column{{Name: "id", DataType: "I", Key: true}, {Name: "v", DataType: "N"}}
	eachBackend(t, func(t *testing.T, b *backend) {
		ctx := context.Background()
		ensure(t, b, "prepared", cols)
		batches := func() []target.Batch {
			return []target.Batch{
				{Seq: 1, Upserts: []source.Row{row("1", "1.50"), row("2", "2")}},
				{Seq: 2, Upserts: []source.Row{row("+1", "1.5"), row("3", "3")}, Deletes: []source.Key{{"2"}}},
			}
		}
		p, err := target.Prepare("prepared", cols, "p", batches())
		if err != nil {
			t.Fatal(err)
		}
		applied, skipped, err := b.tgt.ApplyPrepared(ctx, p, nil)
		if want := []target.Counts{{Inserted: 2}, {Inserted: 1, Unchanged: 1, Deleted: 1}}; err != nil || skipped != 0 || !slices.Equal(applied, want) {
			t.Fatalf("prepared #1 and #2: %+v, %d skipped, %v; want %+v", applied, skipped, err, want)
		}
		if p, err = target.Prepare("prepared", cols, "p", batches()); err != nil {
			t.Fatal(err)
		}
		if _, skipped, err := b.tgt.ApplyPrepared(ctx, p, nil); err != nil || skipped != 2 {
			t.Errorf("prepared again: %d skipped, %v; want both skipped", skipped, err)
		}
		if got, want := readBack(t, b, "prepared", cols), []source.Row{row("1", "1.5"), row("3", "3")}; !slices.EqualFunc(got, want, slices.Equal) {
			t.Errorf("read back %v, want %v", got, want)
		}
		if _, err := target.Prepare("prepared", cols, "p", []target.Batch{{Seq: 3, Upserts: []source.Row{row("x", "1")}}}); !errors.Is(err, target.ErrBadValue) {
			t.Errorf("a bad value prepared: %v, want ErrBadValue", err)
		}
	})
}
