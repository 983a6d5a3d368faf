package ingestbench

import (
	"context"
	"errors"
	"strings"
	"testing"

	"govshare/internal/store"
	"govshare/internal/storetest"
)

// TestBenchSmall runs the benchmark end to end on a few hundred rows.
// Beyond "it runs", Bench itself checks that the pipeline stored every
// good row with its history and quarantined every bad one under the rule
// it was made to break; a bad row of every kind is in the file.
func TestBenchSmall(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		var progress strings.Builder
		r, err := Bench(ctx, db, Options{Rows: 400, BadEvery: 20, Dir: t.TempDir()}, &progress)
		if err != nil {
			t.Fatalf("%v\n%s", err, progress.String())
		}
		t.Logf("\n%s", r)
		if r.Bad != 20 || len(r.Batch.Report.Rules) != len(BadKinds) {
			t.Errorf("%d bad rows, %d rules in the report, want 20 and %d", r.Bad, len(r.Batch.Report.Rules), len(BadKinds))
		}
		for _, s := range []Side{r.Baseline, r.Pipeline} {
			if s.Rows != 400 || s.PerSec <= 0 || s.Memory.PeakRSS == 0 || s.Memory.PeakHeap == 0 {
				t.Errorf("%s: %+v", s.Name, s)
			}
		}
		if r.Ratio <= 0 || len(r.Phases) < 3 || !strings.Contains(r.String(), "× the plain load's rows/s") {
			t.Errorf("result:\n%s", r)
		}
		if !strings.Contains(progress.String(), "pipeline: 400 rows in") {
			t.Errorf("progress:\n%s", progress.String())
		}
		if _, err := Bench(ctx, db, Options{Rows: 10}, nil); !errors.Is(err, ErrNotScratch) {
			t.Fatalf("second bench on the same database: %v, want ErrNotScratch", err)
		}
	})
}

// TestGeneratedRowsAreDistinct: no two generated people share a citizen
// ID or a phone, so only the rows made to repeat one do.
func TestGeneratedRowsAreDistinct(t *testing.T) {
	g := newGenerator(0)
	ids, phones := map[string]bool{}, map[string]bool{}
	for i := range 20000 {
		p := g.good(i)
		if ids[p.id] || phones[p.phone] {
			t.Fatalf("row %d repeats an id or a phone: %+v", i, p)
		}
		ids[p.id], phones[p.phone] = true, true
	}
}
