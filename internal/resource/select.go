package resource

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	"govshare/internal/store"
)

// Cond is one condition of a Selection on a column: Op is eq, in, gt,
// ge, lt, le or prefix, and Values are canonical texts (one, or several
// for in); any is in for the data services' batched lookups of one key
// item (one array parameter on PostgreSQL, rows in no order). Conditions are built by the data services from catalog
// metadata; Select turns them into SQL with every value a parameter.
type Cond struct {
	Column Column
	Op     string
	Values []string
}

// Selection is a read of live records for the data services: the
// columns to return, conditions joined by AND, an optional sort column
// (the key always follows, so the order is total), and keyset paging
// after the position of the last row of the previous page.
type Selection struct {
	Columns []Column
	Where   []Cond
	SortBy  *Column
	Desc    bool
	After   *Position
	Limit   int
}

// Position is where a row stands in a Selection's order: the value of
// the sort column (nil when it is empty or there is none) and the key.
type Position struct {
	Sort *string  `json:"s,omitempty"`
	Keys []string `json:"k"`
}

// Indexed reports whether a column has an index a lookup can use: key
// items and items that must be unique.
func (c Column) Indexed() bool { return c.Key || hasRule(c.QualityRule, "unique") }

// Ops a Cond may have.
var condOps = map[string]string{"eq": "=", "gt": ">", "ge": ">=", "lt": "<", "le": "<="}

// ValidOp reports whether op is an operator Select knows.
func ValidOp(op string) bool {
	_, ok := condOps[op]
	return ok || op == "in" || op == "prefix"
}

// Select streams the live records sel matches, in its order, calling fn
// with the values of sel.Columns (nil for empty) and the row's position.
// The slice fn receives is reused for the next row.
func (s *Service) Select(ctx context.Context, r Resource, sel Selection, fn func(vals []*string, pos Position) error) error {
	q, args, err := SelectSQL(s.db.Dialect(), r, sel)
	if err != nil {
		return err
	}
	rr := newRowReader(r, sel)
	if s.db.Dialect() == store.Postgres {
		// Every value is selected as text: pgx hands over its bytes.
		return s.db.WithPgx(ctx, func(c *pgx.Conn) error {
			rows, err := c.Query(ctx, s.db.Rebind(q), args...)
			if err != nil {
				return err
			}
			defer rows.Close()
			for rows.Next() {
				raw := rows.RawValues()
				for i := range rr.texts {
					rr.texts[i].String, rr.texts[i].Valid = string(raw[i]), raw[i] != nil
				}
				for i := range rr.pos {
					rr.pos[i].String, rr.pos[i].Valid = string(raw[len(rr.texts)+i]), raw[len(rr.texts)+i] != nil
				}
				if err := rr.emit(fn); err != nil {
					return err
				}
			}
			return rows.Err()
		})
	}
	rows, err := s.db.Query(ctx, q, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	dest := make([]any, 0, len(rr.texts)+len(rr.pos))
	for i := range rr.texts {
		dest = append(dest, &rr.texts[i])
	}
	for i := range rr.pos {
		dest = append(dest, &rr.pos[i])
	}
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return err
		}
		if err := rr.emit(fn); err != nil {
			return err
		}
	}
	return rows.Err()
}

// rowReader turns a row of a Selection's statement (the values, the sort
// value, the key) into what Select's caller receives.
type rowReader struct {
	sorted bool
	texts  []canonicalText
	pos    []canonicalText // the sort value, then the key
	out    []*string
	strs   []string
}

func newRowReader(r Resource, sel Selection) *rowReader {
	return &rowReader{sorted: sel.SortBy != nil, texts: canonicalTexts(sel.Columns), pos: make([]canonicalText, len(r.Keys())+1),
		out: make([]*string, len(sel.Columns)), strs: make([]string, len(sel.Columns))}
}

func (rr *rowReader) emit(fn func(vals []*string, pos Position) error) error {
	for i, v := range rr.texts {
		rr.out[i] = nil
		if v.Valid {
			rr.strs[i] = v.String
			rr.out[i] = &rr.strs[i]
		}
	}
	var pos Position
	if rr.sorted && rr.pos[0].Valid {
		v := rr.pos[0].String
		pos.Sort = &v
	}
	pos.Keys = make([]string, len(rr.pos)-1)
	for i := range pos.Keys {
		pos.Keys[i] = rr.pos[i+1].String
	}
	return fn(rr.out, pos)
}

// SelectSQL builds the statement of a Selection in dialect d.
// Identifiers come from the resource's columns (machine names, quoted);
// values are parameters, never text of the statement.
func SelectSQL(d store.Dialect, r Resource, sel Selection) (string, []any, error) {
	cols := make([]string, 0, len(sel.Columns)+4)
	for _, c := range sel.Columns {
		cols = append(cols, selectExpr(d, "", c))
	}
	if sel.SortBy != nil {
		cols = append(cols, canonicalExpr(d, *sel.SortBy))
	} else {
		cols = append(cols, "NULL")
	}
	keys := r.Keys()
	keyNames := make([]string, len(keys))
	for i, k := range keys {
		cols = append(cols, canonicalExpr(d, k))
		keyNames[i] = quote(k.MachineName)
	}
	where := []string{`"_deleted_at" IS NULL`}
	var args []any
	for _, c := range sel.Where {
		w, a, err := condSQL(d, c)
		if err != nil {
			return "", nil, err
		}
		where = append(where, w)
		args = append(args, a...)
	}
	dir, cmp := "", ">"
	if sel.Desc {
		dir, cmp = " DESC", "<"
	}
	order := make([]string, 0, len(keys)+2)
	if sel.SortBy != nil {
		col := quote(sel.SortBy.MachineName)
		if !sel.SortBy.Key {
			// Empty values first (last when descending) on both engines.
			order = append(order, fmt.Sprintf("(CASE WHEN %s IS NULL THEN 0 ELSE 1 END)%s", col, dir))
		}
		order = append(order, col+dir)
	}
	for _, k := range keyNames {
		order = append(order, k+dir)
	}
	if a := sel.After; a != nil {
		if len(a.Keys) != len(keys) {
			return "", nil, ErrKeyArity
		}
		keyArgs := make([]any, len(keys))
		for i, k := range keys {
			v, err := dbValue(k, a.Keys[i])
			if err != nil {
				return "", nil, ErrKeyArity
			}
			keyArgs[i] = v
		}
		keyAfter := rowCompare(keyNames, cmp)
		switch {
		case sel.SortBy == nil:
			where = append(where, keyAfter)
			args = append(args, keyArgs...)
		case a.Sort == nil && !sel.SortBy.Key:
			col := quote(sel.SortBy.MachineName)
			if sel.Desc { // empty values come last: only more empty ones follow
				where = append(where, fmt.Sprintf("(%s IS NULL AND %s)", col, keyAfter))
			} else {
				where = append(where, fmt.Sprintf("((%s IS NULL AND %s) OR %s IS NOT NULL)", col, keyAfter, col))
			}
			args = append(args, keyArgs...)
		default:
			if a.Sort == nil {
				return "", nil, ErrKeyArity
			}
			v, err := dbValue(*sel.SortBy, *a.Sort)
			if err != nil {
				return "", nil, ErrKeyArity
			}
			col := quote(sel.SortBy.MachineName)
			both := rowCompare(append([]string{col}, keyNames...), cmp)
			if sel.Desc && !sel.SortBy.Key {
				where = append(where, fmt.Sprintf("((%s IS NOT NULL AND %s) OR %s IS NULL)", col, both, col))
			} else {
				where = append(where, both)
			}
			args = append(args, v)
			args = append(args, keyArgs...)
		}
	}
	q := fmt.Sprintf("SELECT %s FROM %s WHERE %s", strings.Join(cols, ", "), tablesOf(r.Table).main, strings.Join(where, " AND "))
	if keyFixed(keys, sel.Where) {
		// At most one live record: nothing to order or to cut (a keyed
		// lookup then runs the plainest statement the server has).
		return q, args, nil
	}
	q += " ORDER BY " + strings.Join(order, ", ")
	if sel.Limit > 0 {
		q += " LIMIT ?"
		args = append(args, sel.Limit)
	}
	return q, args, nil
}

// keyFixed reports whether the conditions fix every key column to one
// value (eq), or the only key column to a set of values the caller tells
// apart by key (any: the data services' batched lookups).
func keyFixed(keys []Column, where []Cond) bool {
	for _, k := range keys {
		if !slices.ContainsFunc(where, func(c Cond) bool {
			return c.Column.MachineName == k.MachineName && (c.Op == "eq" && len(c.Values) == 1 || c.Op == "any" && len(keys) == 1)
		}) {
			return false
		}
	}
	return len(keys) > 0
}

// rowCompare compares a row of columns with as many parameters.
func rowCompare(cols []string, cmp string) string {
	if len(cols) == 1 {
		return cols[0] + " " + cmp + " ?"
	}
	return "(" + strings.Join(cols, ", ") + ") " + cmp + " (" + store.Placeholders(len(cols)) + ")"
}

// condSQL is one condition as SQL with its parameters.
func condSQL(d store.Dialect, c Cond) (string, []any, error) {
	col := quote(c.Column.MachineName)
	switch c.Op {
	case "any":
		// The data services' batched keyed lookups: on PostgreSQL one
		// array parameter, so every batch runs the same statement.
		if len(c.Values) == 0 {
			return "1 = 0", nil, nil
		}
		if d == store.Postgres && c.Column.DataType == "C" {
			return col + " = ANY(?)", []any{c.Values}, nil
		}
		c.Op = "in"
		return condSQL(d, c)
	case "in":
		if len(c.Values) == 0 {
			return "1 = 0", nil, nil
		}
		args := make([]any, len(c.Values))
		for i, v := range c.Values {
			x, err := dbValue(c.Column, v)
			if err != nil {
				return "", nil, err
			}
			args[i] = x
		}
		return col + " IN (" + store.Placeholders(len(args)) + ")", args, nil
	case "prefix":
		if len(c.Values) == 0 {
			return "1 = 0", nil, nil
		}
		var ors []string
		var args []any
		for _, p := range c.Values {
			if d == store.Postgres {
				esc := strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(p)
				ors = append(ors, col+` LIKE ? ESCAPE '\'`)
				args = append(args, esc+"%")
				continue
			}
			// SQLite's LIKE ignores the case of ASCII letters; compare the
			// first characters exactly, with a range the index can use.
			ors = append(ors, fmt.Sprintf("(%s >= ? AND substr(%s, 1, ?) = ?)", col, col))
			args = append(args, p, utf8.RuneCountInString(p), p)
		}
		if len(ors) == 1 {
			return ors[0], args, nil
		}
		return "(" + strings.Join(ors, " OR ") + ")", args, nil
	}
	sym, ok := condOps[c.Op]
	if !ok || len(c.Values) != 1 {
		return "", nil, fmt.Errorf("unknown condition %q", c.Op)
	}
	v, err := dbValue(c.Column, c.Values[0])
	if err != nil {
		return "", nil, err
	}
	if v == nil {
		if c.Op == "eq" {
			return col + " IS NULL", nil, nil
		}
		return "1 = 0", nil, nil
	}
	return col + " " + sym + " ?", []any{v}, nil
}

// Count is how many live records the conditions match.
func (s *Service) Count(ctx context.Context, r Resource, where []Cond) (int64, error) {
	conds := []string{`"_deleted_at" IS NULL`}
	var args []any
	for _, c := range where {
		w, a, err := condSQL(s.db.Dialect(), c)
		if err != nil {
			return 0, err
		}
		conds = append(conds, w)
		args = append(args, a...)
	}
	var n int64
	err := s.db.QueryRow(ctx, fmt.Sprintf("SELECT COUNT(*) FROM %s WHERE %s", tablesOf(r.Table).main, strings.Join(conds, " AND ")), args...).Scan(&n)
	return n, err
}
