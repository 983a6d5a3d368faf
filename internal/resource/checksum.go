package resource

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"govshare/internal/store"
)

// What the exchange's full check (全量核对) reads of a resource: its live
// records in a key range, in the key order internal/agent/source merges
// keys in, so that the center's side can be compared with a node's table
// chunk by chunk.

// LiveRange calls fn with the live records whose key k lies in
// after < k <= through (nil: open), as rows of cols in the canonical text
// Snapshot gives, in chunks of at most chunk. Keys, given and read, are
// the key columns' canonical text in key order. Records come in the order
// of internal/agent/source.KeyOrder: text keys by their UTF-8 bytes,
// whatever the database's collation, numbers by value, date-times by
// instant. An error from fn stops the reading and is returned.
func (s *Service) LiveRange(ctx context.Context, r Resource, cols []Column, after, through []string, chunk int, fn func(rows [][]*string) error) error {
	keys := r.Keys()
	if len(keys) == 0 {
		return fmt.Errorf("resource %s has no key", r.Code)
	}
	if after != nil && len(after) != len(keys) || through != nil && len(through) != len(keys) {
		return ErrKeyArity
	}
	if chunk <= 0 {
		chunk = 5000
	}
	d := s.db.Dialect()
	bytewise, err := s.bytewise(ctx)
	if err != nil {
		return err
	}
	exprs := make([]string, len(keys))
	params := make([]string, len(keys))
	for i, k := range keys {
		exprs[i], params[i] = quote(k.MachineName), "?"
		if d == store.Postgres {
			typ := sqlType(d, k)
			params[i] = "CAST(? AS " + typ + ")"
			if !bytewise && (typ == "TEXT" || strings.HasPrefix(typ, "VARCHAR")) {
				exprs[i] += ` COLLATE "C"`
				params[i] += ` COLLATE "C"`
			}
		}
	}
	bound := func(op string, k []string) (string, []any, error) {
		args := make([]any, len(k))
		for i, v := range k {
			var err error
			if args[i], err = dbValue(keys[i], v); err != nil {
				return "", nil, fmt.Errorf("key value %q of %s: %w", v, keys[i].MachineName, err)
			}
		}
		if len(keys) == 1 {
			return exprs[0] + " " + op + " " + params[0], args, nil
		}
		return "(" + strings.Join(exprs, ", ") + ") " + op + " (" + strings.Join(params, ", ") + ")", args, nil
	}
	sel := make([]string, 0, len(cols)+len(keys))
	for i, c := range cols {
		sel = append(sel, canonicalExpr(d, c)+fmt.Sprintf(` AS "_c%d"`, i))
	}
	for i, k := range keys {
		sel = append(sel, canonicalExpr(d, k)+fmt.Sprintf(` AS "_k%d"`, i))
	}
	head := fmt.Sprintf(`SELECT %s FROM %s WHERE "_deleted_at" IS NULL`, strings.Join(sel, ", "), tablesOf(r.Table).main)
	var upper string
	var upperArgs []any
	if through != nil {
		if upper, upperArgs, err = bound("<=", through); err != nil {
			return err
		}
	}
	for {
		q, args := head, []any(nil)
		if after != nil {
			cond, a, err := bound(">", after)
			if err != nil {
				return err
			}
			q, args = q+" AND "+cond, append(args, a...)
		}
		if upper != "" {
			q, args = q+" AND "+upper, append(args, upperArgs...)
		}
		q += " ORDER BY " + strings.Join(exprs, ", ") + " LIMIT ?"
		rows, last, err := s.rangePage(ctx, q, append(args, chunk), cols, keys)
		if err != nil {
			return err
		}
		if len(rows) > 0 {
			if err := fn(rows); err != nil {
				return err
			}
		}
		if len(rows) < chunk {
			return nil
		}
		after = last
	}
}

// rangePage reads one page of LiveRange: the rows and the last row's key.
func (s *Service) rangePage(ctx context.Context, q string, args []any, cols, keys []Column) ([][]*string, []string, error) {
	rs, err := s.db.Query(ctx, q, args...)
	if err != nil {
		return nil, nil, err
	}
	defer rs.Close()
	ncols := len(cols)
	vals := canonicalTexts(append(slices.Clone(cols), keys...))
	dest := make([]any, len(vals))
	for i := range vals {
		dest[i] = &vals[i]
	}
	var out [][]*string
	var last []string
	for rs.Next() {
		if err := rs.Scan(dest...); err != nil {
			return nil, nil, err
		}
		row := make([]*string, ncols)
		for i, v := range vals[:ncols] {
			if v.Valid {
				t := v.String
				row[i] = &t
			}
		}
		out = append(out, row)
		last = last[:0]
		for _, v := range vals[ncols:] {
			last = append(last, v.String)
		}
	}
	return out, last, rs.Err()
}

// bytewise says whether the database orders text by its bytes already
// (SQLite always; PostgreSQL under the C or POSIX collation, or C.UTF-8,
// which orders by code point), so that key order needs no COLLATE clause
// and the primary key's index serves it.
func (s *Service) bytewise(ctx context.Context) (bool, error) {
	if s.db.Dialect() != store.Postgres {
		return true, nil
	}
	var coll string
	if err := s.db.QueryRow(ctx, "SELECT datcollate FROM pg_database WHERE datname = current_database()").Scan(&coll); err != nil {
		return false, err
	}
	switch strings.ToLower(strings.ReplaceAll(coll, "-", "")) {
	case "c", "posix", "c.utf8":
		return true, nil
	}
	return false, nil
}
