package target_test

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"govshare/internal/agent/source"
	"govshare/internal/agent/target"
)

// benchCols is the usual shape of a shared resource: a key, short text, an
// exact decimal, an instant, a logical and nullable Chinese text.
var benchCols = []target.Column{
	{Name: "id", DataType: "I", Key: true},
	{Name: "name", DataType: "C", Length: 50},
	{Name: "amount", DataType: "N"},
	{Name: "changed_at", DataType: "T"},
	{Name: "active", DataType: "L"},
	{Name: "note", DataType: "M"},
}

const (
	benchRows     = 100000
	benchDelivery = 5000
)

func benchData(round int) []source.Row {
	base := time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC)
	rows := make([]source.Row, benchRows)
	for i := range rows {
		note := source.Value{Text: "备注" + strconv.Itoa(i)}
		if i%10 == 0 {
			note = source.Value{Null: true}
		}
		rows[i] = source.Row{
			{Text: strconv.Itoa(i + 1)},
			{Text: "名称 " + strconv.Itoa(i)},
			{Text: fmt.Sprintf("%d.%02d", i*3+round, i%100)},
			{Text: base.Add(time.Duration(i) * time.Second).Format(time.RFC3339Nano)},
			{Text: strconv.FormatBool(i%2 == 0)},
			note,
		}
	}
	return rows
}

// BenchmarkApply applies 100,000 rows in 5,000-row deliveries on each
// available backend: into an empty table (insert) and over the same keys
// with every row changed (update).
func BenchmarkApply(b *testing.B) {
	for _, name := range []string{source.SQLite, source.Postgres, source.MySQL} {
		b.Run(name, func(b *testing.B) {
			var be *backend
			switch name {
			case source.SQLite:
				be = sqliteBackend(b)
			case source.Postgres:
				if be = postgresBackend(b); be == nil {
					b.Skipf("set %s='postgres://postgres@127.0.0.1:5432/test?sslmode=disable' to run", envPostgres)
				}
			case source.MySQL:
				if be = mysqlBackend(b); be == nil {
					b.Skipf("set %s='root@tcp(127.0.0.1:3306)/test' to run", envMySQL)
				}
			}
			ctx := context.Background()
			if err := be.tgt.Ensure(ctx, "bench", benchCols, true); err != nil {
				b.Fatal(err)
			}
			data := [2][]source.Row{benchData(0), benchData(1)}
			seq := uint64(0)
			deliver := func(b *testing.B, rows []source.Row, want func(target.Counts) int64) {
				for start := 0; start < len(rows); start += benchDelivery {
					seq++
					c, skipped, err := be.tgt.Apply(ctx, "bench", benchCols, "bench", seq, rows[start:start+benchDelivery], nil, nil)
					if err != nil || skipped {
						b.Fatalf("delivery %d: %v (skipped %v)", seq, err, skipped)
					}
					if n := want(c); n != benchDelivery {
						b.Fatalf("delivery %d: %+v", seq, c)
					}
				}
			}
			b.Run("insert", func(b *testing.B) {
				for b.Loop() {
					b.StopTimer()
					if err := be.tgt.Reset(ctx, "bench", "bench", true); err != nil {
						b.Fatal(err)
					}
					seq = 0
					b.StartTimer()
					deliver(b, data[0], func(c target.Counts) int64 { return c.Inserted })
				}
				b.ReportMetric(float64(b.N*benchRows)/b.Elapsed().Seconds(), "rows/s")
			})
			b.Run("update", func(b *testing.B) {
				if err := be.tgt.Reset(ctx, "bench", "bench", true); err != nil {
					b.Fatal(err)
				}
				seq = 0
				deliver(b, data[0], func(c target.Counts) int64 { return c.Inserted })
				round := 0
				for b.Loop() {
					round = 1 - round
					deliver(b, data[round], func(c target.Counts) int64 { return c.Updated })
				}
				b.ReportMetric(float64(b.N*benchRows)/b.Elapsed().Seconds(), "rows/s")
			})
		})
	}
}
