package ingestbench

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync/atomic"

	"github.com/jackc/pgx/v5/stdlib"

	"govshare/internal/store"
)

// baselineTable is the plain table the baseline loads: the resource's
// columns with the same types, and nothing else (no key, no index, no
// lineage, no history).
const baselineTable = "ingest_baseline"

// createBaseline makes the plain table from the resource table's shape.
func createBaseline(ctx context.Context, db *store.DB, resTable string, cols []string) error {
	_, err := db.Exec(ctx, fmt.Sprintf(`CREATE TABLE %s AS SELECT %s FROM %q WHERE 1 = 0`, baselineTable, strings.Join(cols, ", "), resTable))
	return err
}

// countingReader counts the bytes read, for progress.
type countingReader struct {
	r io.Reader
	n *atomic.Int64
}

func (c countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// baseline loads the file into the plain table the plain way: on
// PostgreSQL one COPY … FROM STDIN of the file as it is (the server parses
// the CSV), on SQLite a prepared multi-row INSERT of 10 rows, 10,000 rows
// per transaction (with the modernc driver, whose argument binding grows
// with the square of the arguments of a statement, 10 rows beat 100 by
// more than two to one). It returns the rows loaded.
func baseline(ctx context.Context, db *store.DB, path string, cols []string, read *atomic.Int64) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	r := countingReader{f, read}
	if db.Dialect() == store.Postgres {
		return copyFile(ctx, db, r, cols)
	}
	return insertBatches(ctx, db, r, cols)
}

func copyFile(ctx context.Context, db *store.DB, r io.Reader, cols []string) (int64, error) {
	conn, err := db.Conn(ctx)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	var n int64
	err = conn.Raw(func(dc any) error {
		c, ok := dc.(*stdlib.Conn)
		if !ok {
			return fmt.Errorf("baseline: not a pgx connection (%T)", dc)
		}
		tag, err := c.Conn().PgConn().CopyFrom(ctx, r,
			fmt.Sprintf("COPY %s (%s) FROM STDIN WITH (FORMAT csv, HEADER true)", baselineTable, strings.Join(cols, ", ")))
		n = tag.RowsAffected()
		return err
	})
	return n, err
}

func insertBatches(ctx context.Context, db *store.DB, r io.Reader, cols []string) (int64, error) {
	const perInsert, perTx = 10, 10000
	cr := csv.NewReader(r)
	cr.ReuseRecord = true
	if _, err := cr.Read(); err != nil {
		return 0, err
	}
	row := "(" + store.Placeholders(len(cols)) + ")"
	full := fmt.Sprintf("INSERT INTO %s (%s) VALUES %s", baselineTable, strings.Join(cols, ", "), strings.TrimSuffix(strings.Repeat(row+", ", perInsert), ", "))
	var n int64
	args := make([]any, 0, perInsert*len(cols))
	eof := false
	for !eof {
		tx, err := db.SQL().BeginTx(ctx, nil)
		if err != nil {
			return n, err
		}
		stmt, err := tx.PrepareContext(ctx, full)
		if err != nil {
			_ = tx.Rollback()
			return n, err
		}
		inTx := 0
		for inTx < perTx {
			rec, err := cr.Read()
			if errors.Is(err, io.EOF) {
				eof = true
				break
			}
			if err != nil {
				_ = tx.Rollback()
				return n, err
			}
			for _, v := range rec {
				args = append(args, v)
			}
			inTx++
			if len(args) == cap(args) {
				if _, err := stmt.ExecContext(ctx, args...); err != nil {
					_ = tx.Rollback()
					return n, err
				}
				args = args[:0]
			}
		}
		if len(args) > 0 {
			q := fmt.Sprintf("INSERT INTO %s (%s) VALUES %s", baselineTable, strings.Join(cols, ", "),
				strings.TrimSuffix(strings.Repeat(row+", ", len(args)/len(cols)), ", "))
			if _, err := tx.ExecContext(ctx, q, args...); err != nil {
				_ = tx.Rollback()
				return n, err
			}
			args = args[:0]
		}
		stmt.Close()
		if err := tx.Commit(); err != nil {
			return n, err
		}
		n += int64(inTx)
	}
	return n, nil
}
