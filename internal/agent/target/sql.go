package target

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"govshare/internal/agent/source"
)

// dialect is what MySQL and SQLite do differently; sqlEngine writes
// deliveries into both the same way: per batch of rows it counts the keys
// that exist already (locking them, on MySQL), upserts the batch in one
// multi-row statement, and tells updated rows from unchanged ones by the
// rows the database says it changed. PostgreSQL has its own engine
// (postgres.go): COPY and one INSERT … ON CONFLICT.
type dialect interface {
	name() string
	quote(id string) string
	// columns describes table t, or returns nil when it does not exist.
	columns(ctx context.Context, q querier, t tableName) ([]tableColumn, error)
	createSQL(ctx context.Context, db *sql.DB, t string, cols []Column) (string, error)
	createBookSQL(ctx context.Context, db *sql.DB) (string, error)
	// addNoteSQL adds the note column to a bookkeeping table without it.
	addNoteSQL() string
	// limit says what an existing column keeps exactly of data item c.
	limit(c *Column, tc *tableColumn) limit
	// arg is the driver argument of canonical value v of c.
	arg(c *Column, v source.Value) (any, error)
	// batchArgs is the most arguments one statement takes.
	batchArgs() int
	// keyIn is "k IN (?, …)" for n keys of the quoted key columns.
	keyIn(keys []string, n int) string
	// upsertTail follows "INSERT INTO t (…) VALUES (…), …".
	upsertTail(keys, others []string) string
	// lockSuffix ends the query that counts a batch's existing keys.
	lockSuffix() string
	// updated is how many rows an upsert updated, from the rows it
	// affected as the database counts them and the rows it inserted.
	updated(affected, inserted int64) int64
	// insertStreamSQL adds the stream's bookkeeping row (seq 0) unless it
	// exists, and locks it.
	insertStreamSQL() string
	timeArg(t time.Time) any
	explain(err error) error
}

type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

type sqlEngine struct {
	db      *sql.DB
	d       dialect
	display string // the DSN without its password, for messages
}

func (e *sqlEngine) close() error { return e.db.Close() }

func (e *sqlEngine) test(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if err := e.db.PingContext(ctx); err != nil {
		return fmt.Errorf("connect to %s %s: %w", e.d.name(), e.display, e.d.explain(err))
	}
	return nil
}

func (e *sqlEngine) quoteTable(t tableName) string {
	if t.schema == "" {
		return e.d.quote(t.name)
	}
	return e.d.quote(t.schema) + "." + e.d.quote(t.name)
}

func (e *sqlEngine) columns(ctx context.Context, t tableName) ([]tableColumn, error) {
	cols, err := e.d.columns(ctx, e.db, t)
	if err != nil {
		return nil, fmt.Errorf("read the columns of %s: %w", t, e.d.explain(err))
	}
	return cols, nil
}

func (e *sqlEngine) create(ctx context.Context, t tableName, cols []Column) error {
	q, err := e.d.createSQL(ctx, e.db, e.quoteTable(t), cols)
	if err == nil {
		_, err = e.db.ExecContext(ctx, q)
	}
	if err != nil {
		return e.d.explain(err)
	}
	return nil
}

func (e *sqlEngine) createBook(ctx context.Context) error {
	q, err := e.d.createBookSQL(ctx, e.db)
	if err == nil {
		_, err = e.db.ExecContext(ctx, q)
	}
	if err != nil {
		return e.d.explain(err)
	}
	return nil
}

func (e *sqlEngine) addNote(ctx context.Context) error {
	if _, err := e.db.ExecContext(ctx, e.d.addNoteSQL()); err != nil {
		return e.d.explain(err)
	}
	return nil
}

func (e *sqlEngine) last(ctx context.Context, stream string) (uint64, []byte, error) {
	seq, note, err := scanLast(e.db.QueryRowContext(ctx, bookSQL(e.d.quote, "SELECT {seq}, {note} FROM {book} WHERE {stream} = ?"), stream))
	if err != nil {
		return 0, nil, e.d.explain(err)
	}
	return seq, note, nil
}

// scanLast reads a stream's seq and note; no row is seq 0 without a note.
func scanLast(row *sql.Row) (uint64, []byte, error) {
	var (
		seq  int64
		note sql.NullString
	)
	err := row.Scan(&seq, &note)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil, nil
	}
	if err != nil {
		return 0, nil, err
	}
	if !note.Valid {
		return uint64(seq), nil, nil
	}
	return uint64(seq), []byte(note.String), nil
}

func (e *sqlEngine) reset(ctx context.Context, stream string, t *tableName) error {
	err := e.inTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, bookSQL(e.d.quote, "DELETE FROM {book} WHERE {stream} = ?"), stream); err != nil {
			return err
		}
		if t == nil {
			return nil
		}
		// DELETE, not TRUNCATE: MySQL's TRUNCATE commits on its own.
		_, err := tx.ExecContext(ctx, "DELETE FROM "+e.quoteTable(*t))
		return err
	})
	if err != nil {
		return e.d.explain(err)
	}
	return nil
}

// inTx runs fn in a transaction and commits it when fn returns nil.
func (e *sqlEngine) inTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := e.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback() //nolint:errcheck // after Commit, or on the error returned
	if err := fn(tx); err != nil {
		return err
	}
	return tx.Commit()
}

// errSkip ends the transaction of a delivery applied before.
var errSkip = errors.New("applied before")

func (e *sqlEngine) apply(ctx context.Context, ds []*delivery, note func([]Counts) []byte) (cs []Counts, skipped int, err error) {
	stream, table := ds[0].stream, ds[0].table
	err = e.inTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, e.d.insertStreamSQL(), stream, e.d.timeArg(now())); err != nil {
			return err
		}
		var last int64
		if err := tx.QueryRowContext(ctx, bookSQL(e.d.quote, "SELECT {seq} FROM {book} WHERE {stream} = ?")+e.d.lockSuffix(), stream).Scan(&last); err != nil {
			return err
		}
		if skipped = appliedBefore(ds, last); skipped == len(ds) {
			return errSkip
		}
		have, err := e.d.columns(ctx, tx, table)
		if err != nil {
			return fmt.Errorf("read the columns: %w", err)
		}
		for _, d := range ds[skipped:] {
			if _, err := d.check(have, e.d.limit); err != nil {
				return inGroup(d, len(ds), err)
			}
			c, err := e.write(ctx, tx, d)
			if err != nil {
				return inGroup(d, len(ds), err)
			}
			cs = append(cs, c)
		}
		note, err := noteArg(note, cs)
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, bookSQL(e.d.quote, "UPDATE {book} SET {seq} = ?, {at} = ?, {note} = ? WHERE {stream} = ?"),
			ds[len(ds)-1].seq, e.d.timeArg(now()), note, stream)
		return err
	})
	if errors.Is(err, errSkip) {
		return nil, len(ds), nil
	}
	if err != nil {
		return nil, 0, e.d.explain(err)
	}
	return cs, skipped, nil
}

// write upserts and deletes d's rows in batches of at most batchArgs
// arguments, each statement prepared once for all its full batches.
func (e *sqlEngine) write(ctx context.Context, tx *sql.Tx, d *delivery) (Counts, error) {
	var (
		c      Counts
		tbl    = e.quoteTable(d.table)
		names  = make([]string, len(d.cols))
		keys   []string
		others []string
	)
	for i, col := range d.cols {
		names[i] = e.d.quote(col.Name)
		if col.Key {
			keys = append(keys, names[i])
		} else {
			others = append(others, names[i])
		}
	}
	if len(d.rows) > 0 {
		per := max(1, e.d.batchArgs()/len(d.cols))
		row := "(" + strings.Repeat("?, ", len(d.cols)-1) + "?)"
		upsert := func(n int) string {
			return "INSERT INTO " + tbl + " (" + strings.Join(names, ", ") + ") VALUES " +
				strings.Repeat(row+", ", n-1) + row + " " + e.d.upsertTail(keys, others)
		}
		count := func(n int) string {
			return "SELECT COUNT(*) FROM " + tbl + " WHERE " + e.d.keyIn(keys, n) + e.d.lockSuffix()
		}
		b := newBatcher(tx, per, len(d.rows))
		defer b.close()
		args := make([]any, 0, per*len(d.cols))
		keyArgs := make([]any, 0, per*len(keys))
		for start := 0; start < len(d.rows); start += per {
			batch := d.rows[start:min(start+per, len(d.rows))]
			args, keyArgs = args[:0], keyArgs[:0]
			for _, r := range batch {
				for i := range d.cols {
					a, err := e.d.arg(&d.cols[i], r[i])
					if err != nil {
						return c, fmt.Errorf("upsert of key %s: %w", d.key(r), err)
					}
					args = append(args, a)
					if d.cols[i].Key {
						keyArgs = append(keyArgs, a)
					}
				}
			}
			var existing int64
			if err := b.queryRow(ctx, "count", count, len(batch), keyArgs).Scan(&existing); err != nil {
				return c, fmt.Errorf("count the existing keys: %w", err)
			}
			res, err := b.exec(ctx, "upsert", upsert, len(batch), args)
			if err != nil {
				return c, fmt.Errorf("upsert %d rows from key %s: %w", len(batch), d.key(batch[0]), err)
			}
			affected, err := res.RowsAffected()
			if err != nil {
				return c, err
			}
			ins := int64(len(batch)) - existing
			upd := e.d.updated(affected, ins)
			c.Inserted += ins
			c.Updated += upd
			c.Unchanged += existing - upd
		}
	}
	if len(d.dels) > 0 {
		per := max(1, e.d.batchArgs()/len(keys))
		del := func(n int) string { return "DELETE FROM " + tbl + " WHERE " + e.d.keyIn(keys, n) }
		b := newBatcher(tx, per, len(d.dels))
		defer b.close()
		args := make([]any, 0, per*len(keys))
		for start := 0; start < len(d.dels); start += per {
			batch := d.dels[start:min(start+per, len(d.dels))]
			args = args[:0]
			for _, k := range batch {
				for i, s := range k {
					a, err := e.d.arg(&d.cols[d.keys[i]], source.Value{Text: s})
					if err != nil {
						return c, fmt.Errorf("delete of key %s: %w", k, err)
					}
					args = append(args, a)
				}
			}
			res, err := b.exec(ctx, "delete", del, len(batch), args)
			if err != nil {
				return c, fmt.Errorf("delete %d keys from %s: %w", len(batch), batch[0], err)
			}
			n, err := res.RowsAffected()
			if err != nil {
				return c, err
			}
			c.Deleted += n
			c.Missing += int64(len(batch)) - n
		}
	}
	return c, nil
}

// batcher prepares the statement of a full batch once per kind and runs
// the last, shorter batch unprepared.
type batcher struct {
	tx    *sql.Tx
	full  int // rows of a full batch
	total int
	stmts map[string]*sql.Stmt
}

func newBatcher(tx *sql.Tx, full, total int) *batcher {
	return &batcher{tx: tx, full: full, total: total, stmts: map[string]*sql.Stmt{}}
}

func (b *batcher) stmt(ctx context.Context, kind string, text func(n int) string, n int) (*sql.Stmt, error) {
	if n != b.full || b.total < 2*b.full {
		return nil, nil // used once: not worth a prepare
	}
	if s := b.stmts[kind]; s != nil {
		return s, nil
	}
	s, err := b.tx.PrepareContext(ctx, text(n))
	if err != nil {
		return nil, err
	}
	b.stmts[kind] = s
	return s, nil
}

func (b *batcher) exec(ctx context.Context, kind string, text func(n int) string, n int, args []any) (sql.Result, error) {
	s, err := b.stmt(ctx, kind, text, n)
	if err != nil {
		return nil, err
	}
	if s != nil {
		return s.ExecContext(ctx, args...)
	}
	return b.tx.ExecContext(ctx, text(n), args...)
}

func (b *batcher) queryRow(ctx context.Context, kind string, text func(n int) string, n int, args []any) *sql.Row {
	s, err := b.stmt(ctx, kind, text, n)
	if err != nil || s == nil {
		// A failed prepare fails the query again, with its error.
		return b.tx.QueryRowContext(ctx, text(n), args...)
	}
	return s.QueryRowContext(ctx, args...)
}

func (b *batcher) close() {
	for _, s := range b.stmts {
		s.Close()
	}
}

// keyIn writes "k IN (?, …)" for one key column and "(k1, k2) IN
// (values(?, ?), …)" for several.
func keyIn(keys []string, n int, values string) string {
	if len(keys) == 1 {
		return keys[0] + " IN (" + strings.Repeat("?, ", n-1) + "?)"
	}
	row := "(" + strings.Repeat("?, ", len(keys)-1) + "?)"
	return "(" + strings.Join(keys, ", ") + ") IN (" + values + strings.Repeat(row+", ", n-1) + row + ")"
}

// netProblem explains the network errors every server shares.
func netProblem(err error) error {
	var dns *net.DNSError
	var op *net.OpError
	switch {
	case errors.As(err, &dns):
		return &source.ConnError{Kind: source.ErrUnreachable, ZH: "找不到数据库服务器主机名，请检查主机地址", EN: "unknown host: check the host name", Err: err}
	case errors.Is(err, context.DeadlineExceeded):
		return &source.ConnError{Kind: source.ErrUnreachable, ZH: "数据库服务器无应答，请检查地址、端口和防火墙", EN: "the server does not answer: check the address, the port and the firewall", Err: err}
	case errors.As(err, &op) && op.Op == "dial":
		return &source.ConnError{Kind: source.ErrUnreachable, ZH: "无法连接数据库服务器，请检查地址和端口，确认数据库已启动、防火墙已放行", EN: "cannot reach the server: check the host and port, that the database is running and that the firewall lets the node through", Err: err}
	}
	return nil
}

// grantZH and grantEN say what a writing user needs.
const (
	grantZH = "该用户没有写入权限，请为其授予目标表的 SELECT、INSERT、UPDATE、DELETE 权限（首次建表还需 CREATE 权限）"
	grantEN = "the user may not write here: grant it SELECT, INSERT, UPDATE and DELETE on the table (and CREATE to make it)"
)
