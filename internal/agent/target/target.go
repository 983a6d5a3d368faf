// Package target is the exchange node's (前置机) side of a consumer
// department's own business database (交换桥接): it writes the deliveries of
// a subscribed resource into a table there — PostgreSQL, MySQL/MariaDB or
// SQLite — each exactly once, and stores every value so that package source
// reads it back as the same canonical text. That is what lets the full check
// compare the publisher's data with the copy here, chunk by chunk.
package target

import (
	"context"
	"errors"
	"fmt"
	"math"
	"regexp"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"govshare/internal/agent/source"
)

// Column is one column of a target table, as the catalog describes the data
// item.
type Column struct {
	Name     string // column name in the target table ([a-z][a-z0-9_]*)
	DataType string // catalog type code: C (char) M (long text) I (integer) N, Y (decimal) B, F (float) L (logical) D (date) T (date-time) G (binary)
	Length   int    // C: max characters (0 = unbounded)
	Key      bool   // part of the primary key (in Column order)
}

// Counts is what one Apply did.
type Counts struct {
	Inserted, Updated, Unchanged, Deleted int64
	Missing                               int64 // deletes of keys not present
}

// Errors a caller may test with errors.Is. Connection problems come as a
// *source.ConnError, whose kinds (source.ErrWrongPassword …) say what to fix.
var (
	// ErrNoTable: Ensure without create, or Apply, found no such table.
	ErrNoTable = errors.New("table does not exist")
	// ErrMismatch: the table lacks a column, has another primary key, or
	// has a NOT NULL column without a default that no data item fills.
	ErrMismatch = errors.New("table does not match the data items")
	// ErrBadValue: a value is not valid for its data item's type, or the
	// existing column would round or cut it.
	ErrBadValue = errors.New("invalid value")
	// ErrBadColumns: the column list itself is invalid.
	ErrBadColumns = errors.New("invalid columns")
)

// Target is a department's database that deliveries are written into. Its
// methods are safe for concurrent use; deliveries of one stream are
// serialised by the database (the stream's bookkeeping row is locked).
type Target struct {
	e engine

	mu     sync.Mutex
	booked bool // the bookkeeping table exists
}

// engine is what a kind of database does; Target checks the arguments and
// the values first.
type engine interface {
	test(ctx context.Context) error
	// columns describes table t, or returns nil when it does not exist.
	columns(ctx context.Context, t tableName) ([]tableColumn, error)
	create(ctx context.Context, t tableName, cols []Column) error
	createBook(ctx context.Context) error
	// addNote adds the note column to a bookkeeping table made before it.
	addNote(ctx context.Context) error
	// apply writes deliveries of one stream and table, seqs ascending,
	// in one transaction (see Target.ApplyBatches): the counts of those
	// applied and how many were applied before.
	apply(ctx context.Context, ds []*delivery, note func([]Counts) []byte) ([]Counts, int, error)
	// last reads stream's bookkeeping row: its seq and note (0, nil when
	// there is none).
	last(ctx context.Context, stream string) (uint64, []byte, error)
	// reset forgets stream and, when t is not nil, empties t.
	reset(ctx context.Context, stream string, t *tableName) error
	close() error
}

// bookTable is the bookkeeping table: per stream, the last delivery
// applied and the caller's note of it. It lives in the connection's
// default schema (database). A database administrator may create it
// beforehand — govshare_applied(stream text PRIMARY KEY, seq bigint NOT
// NULL, applied_at date-time NOT NULL, note text NULL) — so that the
// node's user needs no CREATE right; a table made without note gets the
// column added (ALTER) when the node first uses it.
const bookTable = "govshare_applied"

// noteColumn is the bookkeeping table's column added after the first
// version: a table without it is altered by book.
const noteColumn = "note"

// bookSQL writes a bookkeeping statement with its identifiers quoted.
func bookSQL(quote func(string) string, q string) string {
	return strings.NewReplacer("{book}", quote(bookTable), "{stream}", quote("stream"),
		"{seq}", quote("seq"), "{at}", quote("applied_at"), "{note}", quote(noteColumn)).Replace(q)
}

// Open opens a target database for writing. kind is source.Postgres,
// source.MySQL (or "mariadb") or source.SQLite with the same DSN forms as
// source.Open (SQLite: a file path; created if missing, WAL mode, busy
// timeout). It does not connect: Test does, and so does the first call that
// needs the database. Connection errors are explained like source.ConnError
// does.
func Open(kind, dsn string) (*Target, error) {
	var (
		e   engine
		err error
	)
	switch kind {
	case source.Postgres:
		e, err = openPostgres(dsn)
	case source.MySQL, "mariadb":
		e, err = openMySQL(dsn)
	case source.SQLite:
		e, err = openSQLite(dsn)
	default:
		return nil, fmt.Errorf("open target: unknown kind %q (want %s, %s or %s)", kind, source.Postgres, source.MySQL, source.SQLite)
	}
	if err != nil {
		return nil, fmt.Errorf("open %s target: %w", kind, err)
	}
	return &Target{e: e}, nil
}

// Test connects and reports what is wrong in words a data administrator can
// act on (see source.ConnError).
func (t *Target) Test(ctx context.Context) error { return t.e.test(ctx) }

// Close closes the database's connections.
func (t *Target) Close() error { return t.e.close() }

// Ensure checks that table exists with these columns (names) and this
// primary key; with create it makes the table when it does not exist (types
// mapped per backend: see postgres.go, mysql.go and sqlite.go). A table that
// exists but lacks a column or has a different key is an error saying which
// column (ErrMismatch). Extra target columns are allowed if nullable or
// defaulted. It also makes the bookkeeping table, so that a user who may
// create tables only at set-up time can still run deliveries.
func (t *Target) Ensure(ctx context.Context, table string, cols []Column, create bool) error {
	tn, err := parseTable(table)
	if err == nil {
		err = checkColumns(cols)
	}
	if err != nil {
		return fmt.Errorf("ensure table %s: %w", table, err)
	}
	have, err := t.e.columns(ctx, tn)
	if err != nil {
		return fmt.Errorf("ensure table %s: %w", tn, err)
	}
	if have == nil {
		if !create {
			return fmt.Errorf("ensure table %s: %w", tn, ErrNoTable)
		}
		if err := t.e.create(ctx, tn, cols); err != nil {
			return fmt.Errorf("create table %s: %w", tn, err)
		}
		if have, err = t.e.columns(ctx, tn); err != nil {
			return fmt.Errorf("ensure table %s: %w", tn, err)
		}
	}
	if _, err := match(tn, cols, have); err != nil {
		return fmt.Errorf("ensure table %s: %w", tn, err)
	}
	return t.book(ctx)
}

// Apply applies one delivery in ONE transaction: rows are upserted by key
// (values in cols order, canonical text as source.Value defines it; Null =
// SQL NULL), keys are deleted, and (stream, seq) is recorded in the
// bookkeeping table govshare_applied(stream PRIMARY KEY, seq, applied_at) in
// the same transaction. If seq <= the seq already recorded for stream (0 if
// none: sequences start at 1) it changes nothing and returns skipped=true —
// so a delivery redelivered after a crash has no second effect. Upserts are
// applied before deletes; a key present in both is deleted. A key upserted
// twice counts once, its last row winning.
//
// note, when not nil, is called inside the transaction once the counts
// are known, and what it returns (text: UTF-8) is recorded with the seq as
// the stream's note, which LastNote reads back; without it the note is
// NULL. So whatever the caller must still do about an applied delivery
// (tell the center its counts) survives a crash right after the commit.
//
// Any invalid value, or one the existing column would round (a decimal
// with more decimals than the column keeps, say), fails the whole delivery
// with ErrBadValue before anything is written.
//
// The values of upserts that are not canonical are made so where they
// are, and read as applied afterwards: a delivery's rows are not copied
// (the copies of a bulk exchange's rows kept a node's collector busy).
// Rows of canonical values are only read.
func (t *Target) Apply(ctx context.Context, table string, cols []Column, stream string, seq uint64, upserts []source.Row, deletes []source.Key,
	note func(Counts) []byte) (c Counts, skipped bool, err error) {
	var notes func([]Counts) []byte
	if note != nil {
		notes = func(cs []Counts) []byte { return note(cs[0]) }
	}
	applied, before, err := t.ApplyBatches(ctx, table, cols, stream, []Batch{{Seq: seq, Upserts: upserts, Deletes: deletes}}, notes)
	if err != nil || before == 1 {
		return Counts{}, before == 1, err
	}
	return applied[0], false, nil
}

// Batch is one delivery of a stream: its seq, the rows it upserts and the
// keys it deletes (see Apply).
type Batch struct {
	Seq     uint64
	Upserts []source.Row
	Deletes []source.Key
}

// ApplyBatches applies several deliveries of one stream, seqs ascending,
// in ONE transaction, each exactly as Apply would one after the other
// (same rows, same counts), and records the last seq: one commit instead
// of one per delivery. The deliveries applied before — those with a seq up
// to the one recorded, always the first ones — change nothing: skipped
// says how many, and applied holds the counts of the others, in order.
// note gets those counts and its text is recorded as the stream's note
// (see Apply), so it must say all the caller still has to do about every
// delivery of the transaction; it is not called when all were applied
// before. A bad value in any delivery fails them all
// before anything is written.
func (t *Target) ApplyBatches(ctx context.Context, table string, cols []Column, stream string, batches []Batch,
	note func([]Counts) []byte) (applied []Counts, skipped int, err error) {
	if len(batches) == 0 {
		return nil, 0, nil
	}
	p, err := Prepare(table, cols, stream, batches)
	if err != nil {
		return nil, 0, err
	}
	return t.ApplyPrepared(ctx, p, note)
}

// Prepared is deliveries checked and converted for ApplyPrepared, as
// ApplyBatches does before its transaction: a node prepares the next
// deliveries while the target writes the ones before.
type Prepared struct {
	table, what string
	ds          []*delivery
}

// Prepare checks and converts the deliveries batches (at least one) as
// ApplyBatches would; it needs no database. A bad value in any of them
// is an error, as it would be in ApplyBatches.
func Prepare(table string, cols []Column, stream string, batches []Batch) (*Prepared, error) {
	if len(batches) == 0 {
		return nil, fmt.Errorf("apply to %s: %w: no deliveries", table, ErrBadValue)
	}
	p := &Prepared{table: table, what: fmt.Sprintf("%s #%d", stream, batches[0].Seq), ds: make([]*delivery, len(batches))}
	if n := len(batches); n > 1 {
		p.what = fmt.Sprintf("%s #%d to #%d", stream, batches[0].Seq, batches[n-1].Seq)
	}
	for i, b := range batches {
		if i > 0 && b.Seq <= batches[i-1].Seq {
			return nil, fmt.Errorf("apply %s to %s: %w: sequence number %d follows %d", p.what, table, ErrBadValue, b.Seq, batches[i-1].Seq)
		}
		var err error
		if p.ds[i], err = newDelivery(table, cols, stream, b.Seq, b.Upserts, b.Deletes); err != nil {
			if len(batches) > 1 {
				err = fmt.Errorf("delivery #%d: %w", b.Seq, err)
			}
			return nil, fmt.Errorf("apply %s to %s: %w", p.what, table, err)
		}
	}
	return p, nil
}

// ApplyPrepared is ApplyBatches of the deliveries Prepare made ready.
func (t *Target) ApplyPrepared(ctx context.Context, p *Prepared, note func([]Counts) []byte) (applied []Counts, skipped int, err error) {
	if err := t.book(ctx); err != nil {
		return nil, 0, fmt.Errorf("apply %s to %s: %w", p.what, p.table, err)
	}
	applied, skipped, err = t.e.apply(ctx, p.ds, note)
	if err != nil {
		return nil, 0, fmt.Errorf("apply %s to %s: %w", p.what, p.ds[0].table, err)
	}
	return applied, skipped, nil
}

// Applied returns the last seq applied for stream (0 if none).
func (t *Target) Applied(ctx context.Context, stream string) (uint64, error) {
	if err := checkStream(stream); err != nil {
		return 0, err
	}
	if err := t.book(ctx); err != nil {
		return 0, fmt.Errorf("last delivery of %s: %w", stream, err)
	}
	seq, _, err := t.e.last(ctx, stream)
	if err != nil {
		return 0, fmt.Errorf("last delivery of %s: %w", stream, err)
	}
	return seq, nil
}

// LastNote returns the last seq applied for stream and the note Apply
// recorded with it (0, nil if none; a nil note if Apply had none).
func (t *Target) LastNote(ctx context.Context, stream string) (seq uint64, note []byte, err error) {
	if err := checkStream(stream); err != nil {
		return 0, nil, err
	}
	if err := t.book(ctx); err != nil {
		return 0, nil, fmt.Errorf("note of the last delivery of %s: %w", stream, err)
	}
	seq, note, err = t.e.last(ctx, stream)
	if err != nil {
		return 0, nil, fmt.Errorf("note of the last delivery of %s: %w", stream, err)
	}
	return seq, note, nil
}

// Reset forgets stream's seq and note (used when a subscription is
// re-synced from scratch), and with truncate empties the table, in one
// transaction.
func (t *Target) Reset(ctx context.Context, stream, table string, truncate bool) error {
	if err := checkStream(stream); err != nil {
		return err
	}
	var tp *tableName
	if truncate {
		tn, err := parseTable(table)
		if err != nil {
			return fmt.Errorf("reset %s: %w", stream, err)
		}
		tp = &tn
	}
	if err := t.book(ctx); err != nil {
		return fmt.Errorf("reset %s: %w", stream, err)
	}
	if err := t.e.reset(ctx, stream, tp); err != nil {
		return fmt.Errorf("reset %s: %w", stream, err)
	}
	return nil
}

// book makes the bookkeeping table, or adds the note column to one made
// without it, once per Target. Nodes sharing the database may race to do
// either: the loser finds the column there when it reads them again.
func (t *Target) book(ctx context.Context) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.booked {
		return nil
	}
	book := tableName{name: bookTable}
	have, err := t.e.columns(ctx, book)
	if err != nil {
		return err
	}
	if have == nil {
		if err := t.e.createBook(ctx); err != nil {
			return fmt.Errorf("create the bookkeeping table %s: %w", bookTable, err)
		}
	} else if !hasColumn(have, noteColumn) {
		if err := t.e.addNote(ctx); err != nil {
			again, rerr := t.e.columns(ctx, book)
			if rerr != nil || !hasColumn(again, noteColumn) {
				return fmt.Errorf("add the column %s to the bookkeeping table %s (a database administrator may add it: %s text NULL): %w",
					noteColumn, bookTable, noteColumn, err)
			}
		}
	}
	t.booked = true
	return nil
}

func hasColumn(cols []tableColumn, name string) bool {
	for _, c := range cols {
		if c.name == name {
			return true
		}
	}
	return false
}

// tableName is a table, in the connection's default schema when Schema is
// empty.
type tableName struct{ schema, name string }

func (t tableName) String() string {
	if t.schema == "" {
		return t.name
	}
	return t.schema + "." + t.name
}

// parseTable reads "schema.name" or "name".
func parseTable(s string) (tableName, error) {
	st := source.ParseTable(s)
	if st.Name == "" || strings.ContainsRune(st.Name, 0) || strings.ContainsRune(st.Schema, 0) {
		return tableName{}, fmt.Errorf("%w: invalid table name %q", ErrBadColumns, s)
	}
	return tableName{schema: st.Schema, name: st.Name}, nil
}

var columnName = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)

// checkColumns checks the data items: names, types and a key.
func checkColumns(cols []Column) error {
	if len(cols) == 0 {
		return fmt.Errorf("%w: no columns", ErrBadColumns)
	}
	seen := make(map[string]bool, len(cols))
	keys := 0
	for _, c := range cols {
		switch {
		case !columnName.MatchString(c.Name) || len(c.Name) > 63:
			return fmt.Errorf("%w: column name %q is not [a-z][a-z0-9_]* of at most 63 characters", ErrBadColumns, c.Name)
		case seen[c.Name]:
			return fmt.Errorf("%w: column %s appears twice", ErrBadColumns, c.Name)
		case !strings.Contains("CMINYBFLDTG", c.DataType) || len(c.DataType) != 1:
			return fmt.Errorf("%w: column %s has unknown data type %q (want one of C M I N Y B F L D T G)", ErrBadColumns, c.Name, c.DataType)
		case c.Length < 0:
			return fmt.Errorf("%w: column %s has negative length %d", ErrBadColumns, c.Name, c.Length)
		}
		seen[c.Name] = true
		if c.Key {
			keys++
		}
	}
	if keys == 0 {
		return fmt.Errorf("%w: no key column: a target table needs a primary key to apply deliveries", ErrBadColumns)
	}
	return nil
}

func checkStream(stream string) error {
	if stream == "" || len(stream) > 255 || !utf8.ValidString(stream) {
		return fmt.Errorf("%w: stream name %q must be 1 to 255 bytes of UTF-8", ErrBadColumns, clip(stream))
	}
	return nil
}

// tableColumn is one column of an existing table.
type tableColumn struct {
	name      string
	dbType    string // as the database declares it
	notNull   bool
	defaulted bool // has a default, or is generated, an identity or auto-increment
	key       int  // position in the primary key, from 1; 0 when not in it
	str       bool // PostgreSQL: a string type, which text is assigned to as it is
}

// match checks that the table has a column of every data item (names as
// the engine reports them: lower-cased where the database ignores case),
// its primary key is the key items in order, and any other column may be
// left out; it returns the table's column of each item.
func match(t tableName, cols []Column, have []tableColumn) ([]*tableColumn, error) {
	if have == nil {
		return nil, fmt.Errorf("table %s: %w", t, ErrNoTable)
	}
	byName := make(map[string]*tableColumn, len(have))
	for i := range have {
		byName[have[i].name] = &have[i]
	}
	out := make([]*tableColumn, len(cols))
	var want []string
	used := make(map[*tableColumn]bool, len(cols))
	for i, c := range cols {
		tc := byName[c.Name]
		if tc == nil {
			return nil, fmt.Errorf("%w: table %s has no column %s", ErrMismatch, t, c.Name)
		}
		out[i], used[tc] = tc, true
		if c.Key {
			want = append(want, c.Name)
		}
	}
	pk := make([]string, 0, len(want))
	for i := 1; ; i++ {
		n := len(pk)
		for j := range have {
			if have[j].key == i {
				pk = append(pk, have[j].name)
			}
		}
		if len(pk) == n {
			break
		}
	}
	if len(pk) == 0 {
		return nil, fmt.Errorf("%w: table %s has no primary key; it needs PRIMARY KEY (%s)", ErrMismatch, t, strings.Join(want, ", "))
	}
	for i, name := range want {
		switch {
		case i >= len(pk) || !contains(pk, name):
			return nil, fmt.Errorf("%w: key column %s is not in the primary key (%s) of table %s", ErrMismatch, name, strings.Join(pk, ", "), t)
		case pk[i] != name:
			return nil, fmt.Errorf("%w: key column %s is at another place in the primary key (%s) of table %s; the data items' key is (%s)", ErrMismatch, name, strings.Join(pk, ", "), t, strings.Join(want, ", "))
		}
	}
	if len(pk) > len(want) {
		return nil, fmt.Errorf("%w: primary key column %s of table %s is not a key data item; the data items' key is (%s)", ErrMismatch, pk[len(want)], t, strings.Join(want, ", "))
	}
	for i := range have {
		tc := &have[i]
		if !used[tc] && tc.notNull && !tc.defaulted {
			return nil, fmt.Errorf("%w: column %s of table %s is NOT NULL without a default, and no data item fills it", ErrMismatch, tc.name, t)
		}
	}
	return out, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// delivery is one Apply's checked arguments: canonical values, keys
// without repeats.
type delivery struct {
	table  tableName
	cols   []Column
	keys   []int // positions of the key columns in cols
	stream string
	seq    int64
	rows   []source.Row
	dels   []source.Key
}

// appliedBefore is how many of ds (seqs ascending) have a seq up to last,
// the stream's seq recorded.
func appliedBefore(ds []*delivery, last int64) int {
	n := 0
	for n < len(ds) && ds[n].seq <= last {
		n++
	}
	return n
}

// inGroup says which delivery of a transaction of several failed.
func inGroup(d *delivery, n int, err error) error {
	if n > 1 {
		return fmt.Errorf("delivery #%d: %w", d.seq, err)
	}
	return err
}

// noteArg is the driver argument of the note recorded with counts cs:
// NULL without a note function.
func noteArg(note func([]Counts) []byte, cs []Counts) (any, error) {
	if note == nil {
		return nil, nil
	}
	b := note(cs)
	if b == nil {
		return nil, nil
	}
	if !utf8.Valid(b) {
		return nil, fmt.Errorf("%w: the delivery's note is not UTF-8 text", ErrBadValue)
	}
	return string(b), nil
}

func newDelivery(table string, cols []Column, stream string, seq uint64, upserts []source.Row, deletes []source.Key) (*delivery, error) {
	tn, err := parseTable(table)
	if err != nil {
		return nil, err
	}
	if err := checkColumns(cols); err != nil {
		return nil, err
	}
	if err := checkStream(stream); err != nil {
		return nil, err
	}
	if seq > math.MaxInt64 {
		return nil, fmt.Errorf("%w: sequence number %d is above 2^63-1", ErrBadValue, seq)
	}
	d := &delivery{table: tn, cols: cols, stream: stream, seq: int64(seq)}
	for i, c := range cols {
		if c.Key {
			d.keys = append(d.keys, i)
		}
	}
	var (
		seen = make(map[string]int, len(upserts))
		buf  []byte
	)
	d.rows = make([]source.Row, 0, len(upserts))
	for n, r := range upserts {
		if len(r) != len(cols) {
			return nil, fmt.Errorf("upsert %d: %w: %d values for %d columns", n+1, ErrBadValue, len(r), len(cols))
		}
		row := r // made canonical in place (see Apply)
		for i := range r {
			v, err := canonical(&cols[i], r[i])
			if err != nil {
				return nil, fmt.Errorf("upsert %d: %w", n+1, err)
			}
			if v != r[i] {
				row[i] = v
			}
		}
		buf = buf[:0]
		for _, k := range d.keys {
			if row[k].Null {
				return nil, fmt.Errorf("upsert %d: %w: key column %s is NULL", n+1, ErrBadValue, cols[k].Name)
			}
			buf = appendKey(buf, row[k].Text)
		}
		if at, ok := seen[string(buf)]; ok {
			d.rows[at] = row // the last row of a key wins
			continue
		}
		seen[string(buf)] = len(d.rows)
		d.rows = append(d.rows, row)
	}
	clear(seen)
	d.dels = make([]source.Key, 0, len(deletes))
	for n, k := range deletes {
		if len(k) != len(d.keys) {
			return nil, fmt.Errorf("delete %d: %w: %d values for %d key columns", n+1, ErrBadValue, len(k), len(d.keys))
		}
		key := make(source.Key, len(k))
		buf = buf[:0]
		for i, s := range k {
			v, err := canonical(&cols[d.keys[i]], source.Value{Text: s})
			if err != nil {
				return nil, fmt.Errorf("delete %d: %w", n+1, err)
			}
			key[i] = v.Text
			buf = appendKey(buf, v.Text)
		}
		if _, ok := seen[string(buf)]; ok {
			continue
		}
		seen[string(buf)] = 0
		d.dels = append(d.dels, key)
	}
	return d, nil
}

// appendKey appends a key value length-prefixed, so that joined keys are
// unambiguous.
func appendKey(b []byte, s string) []byte {
	b = fmt.Appendf(b, "%d:", len(s))
	return append(b, s...)
}

// key returns the key of row r, for messages.
func (d *delivery) key(r source.Row) source.Key {
	k := make(source.Key, len(d.keys))
	for i, j := range d.keys {
		k[i] = r[j].Text
	}
	return k
}

// check matches the delivery with the table's columns, read inside the
// transaction, and checks every value against what its column keeps.
func (d *delivery) check(have []tableColumn, limitOf func(*Column, *tableColumn) limit) ([]*tableColumn, error) {
	tcs, err := match(d.table, d.cols, have)
	if err != nil {
		return nil, err
	}
	for i := range d.cols {
		c, tc := &d.cols[i], tcs[i]
		l := limitOf(c, tc)
		if l == noLimit {
			continue
		}
		for _, r := range d.rows {
			if err := checkLimit(c, tc, l, r[i]); err != nil {
				return nil, fmt.Errorf("upsert of key %s: %w", d.key(r), err)
			}
		}
		if !c.Key {
			continue
		}
		ki := 0
		for ki < len(d.keys) && d.keys[ki] != i {
			ki++
		}
		for _, k := range d.dels {
			if err := checkLimit(c, tc, l, source.Value{Text: k[ki]}); err != nil {
				return nil, fmt.Errorf("delete of key %s: %w", k, err)
			}
		}
	}
	return tcs, nil
}

// now is the applied_at of a delivery.
func now() time.Time { return time.Now().Round(time.Microsecond) }
