package dataservicebench

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"govshare/internal/audit"
	"govshare/internal/calendar"
	"govshare/internal/resource"
	"govshare/internal/server"
)

// fill replaces the resource's records with rows synthetic people in one
// transaction, straight into its table (the product's pipeline would
// check and stage every row; the ingest bench measures that): a batch
// row says where they came from, every record carries it in its lineage
// columns, and the resource's counts say how many it holds. The key and
// the person number's index are dropped for the COPY and built after it,
// as they were; the rows are written frozen (COPY … FREEZE into the
// table truncated in the same transaction), so the first reads do not
// rewrite every page to set hint bits.
func fill(ctx context.Context, p *server.Platform, dsn string, fx *fixture, rows int64, progress io.Writer) error {
	if rows <= 0 || rows > MaxRows {
		return fmt.Errorf("population: %d people: give 1 to %d", rows, MaxRows)
	}
	start := time.Now()
	r := fx.res
	fmt.Fprintf(progress, "population: filling resource %s (table %s) with %d synthetic people; this is done once and kept\n", r.Code, r.Table, rows)
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return fmt.Errorf("population: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	tx, err := conn.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	exec := func(q string, args ...any) error {
		if _, err := tx.Exec(ctx, q, args...); err != nil {
			return fmt.Errorf("population: %s: %w", firstWords(q), err)
		}
		return nil
	}
	table := pgx.Identifier{r.Table}.Sanitize()
	hist := pgx.Identifier{r.Table + "_hist"}.Sanitize()
	if err := exec("SET LOCAL maintenance_work_mem = '512MB'"); err != nil {
		return err
	}

	// The table's key and indexes, to build again after the COPY.
	var pkName, pkDef string
	if err := tx.QueryRow(ctx, `SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = $1::regclass AND contype = 'p'`,
		table).Scan(&pkName, &pkDef); err != nil {
		return fmt.Errorf("population: the table's key: %w", err)
	}
	idx, err := tx.Query(ctx, `SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema() AND tablename = $1 AND indexname <> $2`,
		r.Table, pkName)
	if err != nil {
		return err
	}
	var names, defs []string
	for idx.Next() {
		var n, d string
		if err := idx.Scan(&n, &d); err != nil {
			idx.Close()
			return err
		}
		names, defs = append(names, n), append(defs, d)
	}
	idx.Close()
	if err := idx.Err(); err != nil {
		return err
	}
	if err := exec("ALTER TABLE " + table + " DROP CONSTRAINT " + pgx.Identifier{pkName}.Sanitize()); err != nil {
		return err
	}
	for _, n := range names {
		if err := exec("DROP INDEX " + pgx.Identifier{n}.Sanitize()); err != nil {
			return err
		}
	}
	if err := exec("TRUNCATE " + table + ", " + hist); err != nil {
		return err
	}

	now := time.Now().UTC().Truncate(time.Microsecond)
	var batch int64
	if err := tx.QueryRow(ctx, `INSERT INTO resource_batches (resource_id, source, source_detail, state, submitted_by, started_at)
		VALUES ($1, $2, $3, 'running', $4, $5) RETURNING id`, r.ID, string(resource.SourceAPI),
		fmt.Sprintf("govshare bench dataservice: %d synthetic people (COPY)", rows), fx.provider.UserID, now).Scan(&batch); err != nil {
		return fmt.Errorf("population: batch: %w", err)
	}

	// The columns in the order Person makes them, then the lineage.
	its := items()
	cols := make([]string, 0, len(its)+6)
	for _, it := range its {
		if _, ok := columnOf(r, it.MachineName); !ok {
			return fmt.Errorf("population: the resource has no column %s (drop the bench database to start again)", it.MachineName)
		}
		cols = append(cols, pgx.Identifier{it.MachineName}.Sanitize())
	}
	cols = append(cols, `"_batch_created"`, `"_batch_updated"`, `"_source"`, `"_created_at"`, `"_updated_at"`, `"_deleted_at"`)
	lineage := "\t" + strconv.FormatInt(batch, 10) + "\t" + strconv.FormatInt(batch, 10) + "\t" + string(resource.SourceAPI) +
		"\t" + now.Format("2006-01-02 15:04:05.999999Z07:00") + "\t" + now.Format("2006-01-02 15:04:05.999999Z07:00") + "\t\\N\n"

	pr, pw := io.Pipe()
	go func() {
		w := bufio.NewWriterSize(pw, 1<<20)
		ppl := newPeople()
		t0 := time.Now()
		for i := range rows {
			p := ppl.Person(i)
			for j, v := range p {
				if j > 0 {
					w.WriteByte('\t')
				}
				if v == "" {
					w.WriteString(`\N`)
				} else {
					w.WriteString(v) // no tabs, newlines or backslashes
				}
			}
			w.WriteString(lineage)
			if (i+1)%1_000_000 == 0 {
				el := time.Since(t0)
				fmt.Fprintf(progress, "population: %d / %d rows copied (%.0f rows/s)\n", i+1, rows, float64(i+1)/el.Seconds())
			}
		}
		pw.CloseWithError(w.Flush())
	}()
	copySQL := fmt.Sprintf("COPY %s (%s) FROM STDIN WITH (FREEZE)", table, strings.Join(cols, ", "))
	tag, err := tx.Conn().PgConn().CopyFrom(ctx, pr, copySQL)
	pr.CloseWithError(io.ErrClosedPipe)
	if err != nil {
		return fmt.Errorf("population: copy: %w", err)
	}
	if tag.RowsAffected() != rows {
		return fmt.Errorf("population: copied %d rows, want %d", tag.RowsAffected(), rows)
	}
	fmt.Fprintf(progress, "population: %d rows copied in %s; building the key\n", rows, time.Since(start).Round(time.Second))
	t := time.Now()
	if err := exec("ALTER TABLE " + table + " ADD CONSTRAINT " + pgx.Identifier{pkName}.Sanitize() + " " + pkDef); err != nil {
		return err
	}
	fmt.Fprintf(progress, "population: key built in %s\n", time.Since(t).Round(100*time.Millisecond))
	for i, d := range defs {
		t := time.Now()
		if err := exec(d); err != nil {
			return err
		}
		fmt.Fprintf(progress, "population: index %s built in %s\n", names[i], time.Since(t).Round(100*time.Millisecond))
	}

	done := time.Now().UTC().Truncate(time.Microsecond)
	if err := exec(`UPDATE resource_batches SET state = 'applied', rows_total = $1, rows_inserted = $1, finished_at = $2 WHERE id = $3`,
		rows, done, batch); err != nil {
		return err
	}
	if err := exec(`UPDATE resources SET record_count = $1, received_count = received_count + $1, passed_count = passed_count + $1,
		last_update_at = $2 WHERE id = $3`, rows, done, r.ID); err != nil {
		return err
	}
	if err := exec(`INSERT INTO resource_daily (resource_id, day, records_in) VALUES ($1, $2, $3)
		ON CONFLICT (resource_id, day) DO UPDATE SET records_in = resource_daily.records_in + excluded.records_in`,
		r.ID, done.In(calendar.CST).Format("2006-01-02"), rows); err != nil {
		return err
	}
	if err := exec(`INSERT INTO `+metaTable+` (k, v) VALUES ('rows', $1) ON CONFLICT (k) DO UPDATE SET v = excluded.v`,
		strconv.FormatInt(rows, 10)); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("population: commit: %w", err)
	}
	if _, err := conn.Exec(ctx, "ANALYZE "+table); err != nil {
		return fmt.Errorf("population: analyze: %w", err)
	}
	if err := p.Audit.Append(ctx, audit.By(fx.provider, "resource.batch", "resource", r.Code, audit.ResultOK,
		map[string]any{"batch": batch, "rows": rows, "inserted": rows, "source": "govshare bench dataservice"})); err != nil {
		return err
	}
	fmt.Fprintf(progress, "population: %d people in %s\n", rows, time.Since(start).Round(time.Second))
	return nil
}

// columnOf finds a visible column of the resource.
func columnOf(r resource.Resource, name string) (resource.Column, bool) {
	for _, c := range r.Visible() {
		if c.MachineName == name {
			return c, true
		}
	}
	return resource.Column{}, false
}

func firstWords(q string) string {
	f := strings.Fields(q)
	return strings.Join(f[:min(3, len(f))], " ")
}
