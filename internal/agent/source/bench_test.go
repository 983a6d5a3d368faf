package source_test

import (
	"context"
	"os"
	"testing"

	"govshare/internal/agent/source"
)

// BenchmarkFullPostgres200k streams a 200,000-row table of the usual
// shape (key, text, exact decimal, instant, logical, nullable Chinese
// text) out of PostgreSQL in chunks of 1,000 rows.
func BenchmarkFullPostgres200k(b *testing.B) {
	if os.Getenv(envPostgres) == "" {
		b.Skipf("set %s='postgres://postgres@127.0.0.1:5432/test?sslmode=disable' to run", envPostgres)
	}
	const n = 200000
	be := postgresBackend(b)
	tbl := be.create(b, "bench", []col{
		{"id", "bigint", "", ""},
		{"name", "varchar(50)", "", ""},
		{"amount", "numeric(20,6)", "", ""},
		{"changed_at", "timestamptz", "", ""},
		{"active", "boolean", "", ""},
		{"note", "text", "", ""},
	}, "id")
	be.exec(b, `INSERT INTO `+be.quote(tbl)+` SELECT g, 'name ' || g, g * 1.25, now() - g * interval '1 second',
		g % 2 = 0, CASE WHEN g % 10 = 0 THEN NULL ELSE '备注' || g END FROM generate_series(1, $1::int) g`, n)
	be.exec(b, `ANALYZE `+be.quote(tbl))
	ctx := context.Background()
	q := source.Query{Table: tbl}
	rows := 0
	b.ReportAllocs()
	for b.Loop() {
		got := 0
		err := be.src.Full(ctx, q, 1000, func(c source.Chunk) error {
			got += len(c.Rows)
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
		if got != n {
			b.Fatalf("streamed %d rows, want %d", got, n)
		}
		rows += got
	}
	b.ReportMetric(float64(rows)/b.Elapsed().Seconds(), "rows/s")
}
