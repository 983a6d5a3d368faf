package source_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"govshare/internal/agent/source"
)

func TestCSVFolderInfersColumnsAndReadsUTF8WithBOM(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	writeCSV(t, dir, "people", peopleNames, people(20))
	os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("not a table"), 0o600)
	src := openSource(t, source.CSVDir, dir)
	ts, err := src.Tables(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(ts) != 1 || ts[0].Name != "people" {
		t.Fatalf("tables %v", ts)
	}
	cols, err := src.Columns(ctx, ts[0])
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range cols {
		got = append(got, fmt.Sprintf("%s:%s%d", c.Name, c.DataType, c.Length))
	}
	want := []string{"id:I3", "name:C5", "amount:N5", "flag:L1", "born:D10", "seen:T19", "note:C15"}
	if !slices.Equal(got, want) {
		t.Errorf("columns %v, want %v", got, want)
	}
	if cols[0].Name != "id" { // the byte-order mark is not part of the name
		t.Errorf("first column %q", cols[0].Name)
	}
	if !cols[6].Nullable || cols[0].Nullable {
		t.Errorf("nullable: id %v note %v", cols[0].Nullable, cols[6].Nullable)
	}
	rows := full(t, src, source.Query{Table: ts[0], Key: []string{"id"}}, 7)
	if len(rows) != 20 || rows[6]["note"] != "NULL" || rows[1]["seen"] != "2024-05-01T00:02:00Z" || rows[1]["amount"] != "74.02" || rows[9]["amount"] != "370.1" {
		t.Errorf("rows %v", rows[:10])
	}
	if err := src.Full(ctx, source.Query{Table: ts[0]}, 10, func(source.Chunk) error { return nil }); !errors.Is(err, source.ErrNoKey) {
		t.Errorf("no key given: %v, want ErrNoKey", err)
	}
	_, err = src.SinceTime(ctx, source.Query{Table: ts[0], Key: []string{"id"}}, "seen", time.Time{}, 0, 10, func(source.Chunk) error { return nil })
	if !errors.Is(err, source.ErrUnsupported) {
		t.Errorf("SinceTime on a CSV folder: %v, want ErrUnsupported", err)
	}
	if _, err := src.Columns(ctx, source.Table{Name: "../people"}); !errors.Is(err, source.ErrBadQuery) {
		t.Errorf("a name outside the folder: %v, want ErrBadQuery", err)
	}
}

func TestCSVFolderRefusesOtherEncodings(t *testing.T) {
	dir := t.TempDir()
	// "张三" in GBK.
	os.WriteFile(filepath.Join(dir, "gbk.csv"), []byte("id,name\n1,\xd5\xc5\xc8\xfd\n"), 0o600)
	src := openSource(t, source.CSVDir, dir)
	_, err := src.Columns(context.Background(), source.Table{Name: "gbk"})
	if err == nil || !strings.Contains(err.Error(), "UTF-8") {
		t.Errorf("GBK file: %v, want an error that asks for UTF-8", err)
	}
}

// TestCSVFolderSortsLargeFilesOnDisk writes rows in a shuffled order and
// reads them back in key order through sorted runs spilled to disk.
func TestCSVFolderSortsLargeFilesOnDisk(t *testing.T) {
	n := 50000
	if testing.Short() {
		n = 5000
	}
	dir := t.TempDir()
	rows := make([][]any, n)
	for i := range rows {
		// A permutation of 1..n with a stride coprime to n.
		id := (i*7919)%n + 1
		rows[i] = []any{"R" + strconv.Itoa(id%3), id, fmt.Sprintf("值%d", id)}
	}
	writeCSV(t, dir, "big", []string{"region", "id", "value"}, rows)
	src := source.OpenCSVDirForTest(dir, 256<<10, t.TempDir()) // runs of 256 KiB
	defer src.Close()
	ctx := context.Background()
	q := source.Query{Table: source.Table{Name: "big"}, Key: []string{"region", "id"}}
	var prev source.Key
	count := 0
	order := source.KeyOrder{"C", "I"}
	err := src.Keys(ctx, q, 1000, func(ks []source.Key) error {
		for _, k := range ks {
			if prev != nil && order.Compare(prev, k) >= 0 {
				return fmt.Errorf("%v after %v", k, prev)
			}
			prev = k
			count++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if count != n {
		t.Errorf("%d keys, want %d", count, n)
	}
	// Full carries the values along; the sort leaves no file behind.
	tmp := t.TempDir()
	src2 := source.OpenCSVDirForTest(dir, 256<<10, tmp)
	defer src2.Close()
	count = 0
	err = src2.Full(ctx, q, 4096, func(c source.Chunk) error {
		for _, r := range c.Rows {
			if r[2].Text != "值"+r[1].Text {
				return fmt.Errorf("row %v", r)
			}
			count++
		}
		return nil
	})
	if err != nil || count != n {
		t.Fatalf("full: %d rows, %v", count, err)
	}
	if left, _ := os.ReadDir(tmp); len(left) != 0 {
		t.Errorf("sort left %d files behind", len(left))
	}
	// Duplicate keys are refused rather than merged.
	writeCSV(t, dir, "dups", []string{"id"}, [][]any{{1}, {2}, {1}})
	err = src.Full(ctx, source.Query{Table: source.Table{Name: "dups"}, Key: []string{"id"}}, 10, func(source.Chunk) error { return nil })
	if !errors.Is(err, source.ErrKeyOrder) {
		t.Errorf("duplicate keys: %v, want ErrKeyOrder", err)
	}
}
