package search

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"govshare/internal/store"
	"govshare/internal/storetest"
)

// TestBenchSmall runs the benchmark end to end on a small catalog, with
// fewer queries per length than the real run (200) to stay quick. Beyond
// "it runs", it proves the index matches what LIKE matches: for every query
// the index's total equals the SQL count.
func TestBenchSmall(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		// On disk as in production; under the race detector, whose slowdown
		// of Bleve's merging would dominate the run, in memory.
		dir, queries := filepath.Join(t.TempDir(), "bench-index"), 30
		if raceDetector {
			dir, queries = "", 5
		}
		idx := mustOpen(t, dir)
		var progress strings.Builder
		res, err := bench(context.Background(), db, idx, 2000, queries, &progress)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("\n%s", res)
		if len(res.Rows) != 3 || res.Docs != 2000 || (dir != "") != (res.IndexBytes > 0) {
			t.Fatalf("incomplete result %+v", res)
		}
		for _, row := range res.Rows {
			if row.Mismatches != 0 {
				t.Errorf("%d-character queries: %d totals differ from LIKE (mean %.1f vs %.1f)",
					row.Runes, row.Mismatches, row.IndexMatches, row.SQLMatches)
			}
			if row.IndexMatches == 0 || row.IndexP50 <= 0 || row.SQLP99 < row.SQLP50 {
				t.Errorf("implausible row %+v", row)
			}
		}
		if n, _ := idx.Count(); n != 2000 {
			t.Errorf("index holds %d documents", n)
		}
		// The scratch table is gone.
		var n int
		err = db.QueryRow(context.Background(), `SELECT COUNT(*) FROM search_bench`).Scan(&n)
		if err == nil {
			t.Errorf("search_bench still exists with %d rows", n)
		}
		// The made-up entries never pass for a complete catalog index.
		if !idx.Fresh() {
			t.Error("the bench marked its scratch index as built")
		}
		// A bench never fills an index that already holds documents.
		if _, err := Bench(context.Background(), db, idx, 10, nil); err == nil {
			t.Error("bench ran on a non-empty index")
		}
	})
}
