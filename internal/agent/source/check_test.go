package source_test

import (
	"context"
	"encoding/csv"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"govshare/internal/agent/source"
)

// peopleCols is a table every backend can hold exactly.
var peopleCols = []col{
	{"id", "integer", "INT", "INTEGER"},
	{"name", "varchar(50)", "VARCHAR(50)", "VARCHAR(50)"},
	{"amount", "numeric(20,6)", "DECIMAL(20,6)", "DECIMAL(20,6)"},
	{"flag", "boolean", "BOOLEAN", "BOOLEAN"},
	{"born", "date", "DATE", "DATE"},
	{"seen", "timestamp", "DATETIME", "DATETIME"},
	{"note", "text", "TEXT", "TEXT"},
}

var peopleNames = []string{"id", "name", "amount", "flag", "born", "seen", "note"}

func person(i int) []any {
	var note any = fmt.Sprintf("备注 %d, \"quoted\"", i)
	if i%7 == 0 {
		note = nil
	}
	born := time.Date(1980, 1, 1, 0, 0, 0, 0, time.UTC).AddDate(0, 0, i*13)
	seen := time.Date(2024, 5, 1, 8, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Minute)
	return []any{i, fmt.Sprintf("居民%d号", i), fmt.Sprintf("%d.%02d", i*37, i%100), i%2 == 0,
		born.Format("2006-01-02"), seen.Format("2006-01-02 15:04:05"), note}
}

func people(n int) [][]any {
	var rows [][]any
	for i := 1; i <= n; i++ {
		rows = append(rows, person(i))
	}
	return rows
}

// writeCSV writes rows as a CSV file with a byte-order mark.
func writeCSV(t testing.TB, dir, name string, header []string, rows [][]any) {
	t.Helper()
	f, err := os.Create(filepath.Join(dir, name+".csv"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	f.WriteString("\xEF\xBB\xBF")
	w := csv.NewWriter(f)
	w.Write(header)
	for _, r := range rows {
		rec := make([]string, len(r))
		for i, v := range r {
			if v != nil {
				rec[i] = fmt.Sprint(v)
			}
		}
		w.Write(rec)
	}
	w.Flush()
	if err := w.Error(); err != nil {
		t.Fatal(err)
	}
}

func TestChecksumsAgreeAcrossBackends(t *testing.T) {
	ctx := context.Background()
	rows := people(300)
	type result struct {
		name string
		sums []source.ChunkSum
	}
	var results []result
	for _, b := range backends(t) {
		tbl := b.create(t, "people", peopleCols, "id")
		b.insert(t, tbl, peopleNames, rows...)
		sums, err := b.src.Checksums(ctx, source.Query{Table: tbl, Columns: peopleNames}, 16)
		if err != nil {
			t.Fatalf("%s: %v", b.name, err)
		}
		results = append(results, result{b.name, sums})
	}
	dir := t.TempDir()
	writeCSV(t, dir, "people", peopleNames, rows)
	csvSrc := openSource(t, source.CSVDir, dir)
	sums, err := csvSrc.Checksums(ctx, source.Query{Table: source.Table{Name: "people"}, Key: []string{"id"}, Columns: peopleNames}, 16)
	if err != nil {
		t.Fatal(err)
	}
	results = append(results, result{"csvdir", sums})

	first := results[0]
	total := 0
	for _, c := range first.sums {
		total += c.Count
		if c.Count > 4*16 {
			t.Errorf("chunk of %d rows, want at most 4 × 16", c.Count)
		}
	}
	if total != 300 || len(first.sums) < 5 {
		t.Fatalf("%s: %d rows in %d chunks", first.name, total, len(first.sums))
	}
	for _, r := range results[1:] {
		if !slices.EqualFunc(r.sums, first.sums, func(a, b source.ChunkSum) bool { return fmt.Sprint(a) == fmt.Sprint(b) }) {
			for i := range min(len(r.sums), len(first.sums)) {
				if fmt.Sprint(r.sums[i]) != fmt.Sprint(first.sums[i]) {
					t.Errorf("%s chunk %d: %+v, %s has %+v", r.name, i, r.sums[i], first.name, first.sums[i])
					break
				}
			}
			t.Errorf("%s checksums (%d chunks) differ from %s (%d chunks)", r.name, len(r.sums), first.name, len(first.sums))
		}
	}
	t.Logf("identical checksums on %d sources: %d chunks", len(results), len(first.sums))
}

// drift applies the same three changes to a copy of people: key 5 holds
// another name, key 301 is new, key 150 is gone.
func wantDrift() []source.KeyDiff {
	return []source.KeyDiff{
		{Key: source.Key{"5"}, Kind: source.Changed},
		{Key: source.Key{"150"}, Kind: source.Deleted},
		{Key: source.Key{"301"}, Kind: source.Added},
	}
}

func driftedPeople() [][]any {
	rows := people(301)
	rows[4][1] = "改名"
	return slices.Delete(rows, 149, 150)
}

func checkDiff(t *testing.T, src source.Source, sq source.Query, dst source.Source, dq source.Query) {
	t.Helper()
	ctx := context.Background()
	diffs, err := source.FullCheck(ctx, src, sq, dst, dq, 8)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.EqualFunc(diffs, wantDrift(), func(a, b source.KeyDiff) bool { return fmt.Sprint(a) == fmt.Sprint(b) }) {
		t.Errorf("diffs %v, want %v", diffs, wantDrift())
	}
	// Only the chunks around the three keys are compared key by key.
	a, err := src.Checksums(ctx, sq, 8)
	if err != nil {
		t.Fatal(err)
	}
	b, err := dst.Checksums(ctx, dq, 8)
	if err != nil {
		t.Fatal(err)
	}
	ranges := source.DiffChunks(a, b)
	if len(ranges) == 0 || len(ranges) > 3 {
		t.Errorf("ranges %v", ranges)
	}
	for _, r := range ranges {
		if r.After == nil && r.Through == nil {
			t.Errorf("a range covers the whole table: %v", ranges)
		}
	}
}

func TestFullCheckFindsChangedAddedDeletedKeys(t *testing.T) {
	eachBackend(t, func(t *testing.T, b *backend) {
		target := b.create(t, "target", peopleCols, "id")
		b.insert(t, target, peopleNames, people(300)...)
		src := b.create(t, "source", peopleCols, "id")
		b.insert(t, src, peopleNames, driftedPeople()...)
		checkDiff(t, b.src, source.Query{Table: src, Columns: peopleNames}, b.src, source.Query{Table: target, Columns: peopleNames})
	})
}

func TestFullCheckAcrossBackends(t *testing.T) {
	bs := backends(t)
	dir := t.TempDir()
	writeCSV(t, dir, "source", peopleNames, driftedPeople())
	csvSrc := openSource(t, source.CSVDir, dir)
	csvQ := source.Query{Table: source.Table{Name: "source"}, Columns: peopleNames, Key: []string{"id"}}
	for i, target := range bs {
		tt := target.create(t, "target", peopleCols, "id")
		target.insert(t, tt, peopleNames, people(300)...)
		tq := source.Query{Table: tt, Columns: peopleNames}
		t.Run("csvdir→"+target.name, func(t *testing.T) { checkDiff(t, csvSrc, csvQ, target.src, tq) })
		for _, from := range bs[:i] {
			st := from.create(t, "source_for_"+target.name, peopleCols, "id")
			from.insert(t, st, peopleNames, driftedPeople()...)
			t.Run(from.name+"→"+target.name, func(t *testing.T) {
				checkDiff(t, from.src, source.Query{Table: st, Columns: peopleNames}, target.src, tq)
			})
		}
	}
}

func TestDiffChunksRealignsAfterADifference(t *testing.T) {
	c := func(first, last string, n int, h string) source.ChunkSum {
		return source.ChunkSum{First: source.Key{first}, Last: source.Key{last}, Count: n, Hash: h}
	}
	k := func(s string) source.Key { return source.Key{s} }
	tests := []struct {
		name     string
		src, dst []source.ChunkSum
		want     []source.KeyRange
	}{
		{"equal", []source.ChunkSum{c("1", "3", 3, "a"), c("4", "9", 6, "b")}, []source.ChunkSum{c("1", "3", 3, "a"), c("4", "9", 6, "b")}, nil},
		{"one chunk changed", []source.ChunkSum{c("1", "3", 3, "a"), c("4", "9", 6, "b"), c("10", "12", 3, "c")},
			[]source.ChunkSum{c("1", "3", 3, "a"), c("4", "9", 6, "X"), c("10", "12", 3, "c")},
			[]source.KeyRange{{After: k("3"), Through: k("9")}}},
		{"a new key that ends a chunk", []source.ChunkSum{c("1", "3", 3, "a"), c("4", "5", 2, "n"), c("6", "9", 4, "m"), c("10", "12", 3, "c")},
			[]source.ChunkSum{c("1", "3", 3, "a"), c("4", "9", 5, "b"), c("10", "12", 3, "c")},
			[]source.KeyRange{{After: k("3"), Through: k("9")}}},
		{"rows added at the end", []source.ChunkSum{c("1", "3", 3, "a"), c("4", "9", 6, "b")}, []source.ChunkSum{c("1", "3", 3, "a")},
			[]source.KeyRange{{After: k("3")}}},
		{"empty target", []source.ChunkSum{c("1", "3", 3, "a")}, nil, []source.KeyRange{{}}},
		{"adjacent ranges join", []source.ChunkSum{c("1", "3", 3, "a"), c("4", "9", 6, "b")}, []source.ChunkSum{c("1", "3", 3, "X"), c("4", "9", 6, "Y")},
			[]source.KeyRange{{Through: k("9")}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := source.DiffChunks(tt.src, tt.dst)
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}
