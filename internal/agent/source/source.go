// Package source is the exchange node's (前置机) side of a department's
// business data: it connects to a data source — PostgreSQL, MySQL/MariaDB,
// SQLite or a folder of CSV files —, reports its tables and columns so that a
// data administrator can map them to a catalog entry's data items, and
// streams rows out of it for exchange jobs (full, incremental by key or by
// update time), keys for delete detection, and chunk checksums for the
// full check.
//
// Every value leaves this package as a canonical string, the same on every
// backend (see Value), so that rows, keys and checksums of the same data
// compare equal whichever database holds them. Everything streams in
// chunks: a source of millions of rows is never held in memory.
package source

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Kinds of data source.
const (
	Postgres = "postgres" // PostgreSQL: a postgres:// URL or key=value DSN
	MySQL    = "mysql"    // MySQL or MariaDB: user:pass@tcp(host:port)/db
	SQLite   = "sqlite"   // SQLite: path of the database file, opened read-only
	CSVDir   = "csvdir"   // a folder of .csv files, one table per file
)

// Kinds lists the kinds Open accepts.
var Kinds = []string{Postgres, MySQL, SQLite, CSVDir}

// Source is one data source of a node. All methods are safe for concurrent
// use. Rows handed to a ChunkFunc stay valid after it returns.
type Source interface {
	// Test connects and reports what is wrong in words a data
	// administrator can act on (see ConnError).
	Test(ctx context.Context) error
	// Tables lists the tables and views the source's user can read.
	Tables(ctx context.Context) ([]Table, error)
	// Columns describes a table's columns in table order.
	Columns(ctx context.Context, t Table) ([]Column, error)
	// Describe describes the columns a query returns, with Key positions
	// from q.Key (or the table's primary key). It reads no rows.
	Describe(ctx context.Context, q Query) ([]Column, error)
	// Now is the source database's own clock: incremental windows are cut
	// by it so that a skewed node clock cannot lose rows.
	Now(ctx context.Context) (time.Time, error)

	// Full streams every row of q in key order.
	Full(ctx context.Context, q Query, chunk int, fn ChunkFunc) error
	// SinceKey streams the rows whose keyColumn is greater than after
	// ("" = from the start), in keyColumn order, and returns the new
	// high-water mark: the last keyColumn value of the chunks fn accepted,
	// or after when there were none. keyColumn must be unique and grow
	// monotonically (an identity or a sequence); a value committed out of
	// order behind the mark is not seen again, which the full check finds.
	SinceKey(ctx context.Context, q Query, keyColumn, after string, chunk int, fn ChunkFunc) (string, error)
	// SinceTime streams the rows whose timeColumn lies in the window
	// (from, upper], upper being the source's Now minus lag, ordered by
	// timeColumn then key, and returns upper: the next call's from. A zero
	// from starts at the beginning. sincetime.go explains why rows are
	// neither lost nor applied twice, and how overlapping windows are
	// deduplicated by key.
	SinceTime(ctx context.Context, q Query, timeColumn string, from time.Time, lag time.Duration, chunk int, fn ChunkFunc) (time.Time, error)
	// Keys streams the keys of q in key order (see KeyOrder).
	Keys(ctx context.Context, q Query, chunk int, fn func(keys []Key) error) error
	// Checksums cuts q's rows, in key order, into chunks of about
	// chunkSize rows and returns each chunk's key range, row count and
	// hash (see ChunkSum).
	Checksums(ctx context.Context, q Query, chunkSize int) ([]ChunkSum, error)
	// KeyHashes streams the key and row hash of every row of q whose key
	// lies in r, in key order: what FullCheck compares inside a chunk that
	// differs.
	KeyHashes(ctx context.Context, q Query, r KeyRange, chunk int, fn func([]KeyHash) error) error

	Close() error
}

// ChunkFunc receives the rows of one chunk. An error stops the stream and
// is returned by the call that streams.
type ChunkFunc func(Chunk) error

// Chunk is a run of consecutive rows of one stream.
type Chunk struct {
	Columns []string // names of the values of each row; the same slice for every chunk
	Rows    []Row
}

// Row is one row's canonical values, in Chunk.Columns order.
type Row []Value

// Value is one canonical value. Null tells SQL NULL from the empty string.
// Text is canonical for the column's type, the same on every backend:
//   - character (C, M): the text as stored, UTF-8;
//   - integer and decimal (I, N, Y): exact digits, never through float64,
//     with no '+', no leading zeros, no trailing fractional zeros
//     ("1.500000" reads "1.5", "-0" reads "0");
//   - float (B, F): the shortest text that reads back to the same float,
//     exponent only below 1e-6 or from 1e21 ("1.1", "1e+21");
//   - logical (L): "true" or "false";
//   - date (D): YYYY-MM-DD;
//   - date-time (T): RFC 3339 in UTC with fractional seconds only when not
//     zero ("2024-05-01T00:00:00Z"); a date-time stored without a zone
//     (DATETIME, timestamp without time zone) is read as China Standard
//     Time, as the platform's quality checker reads one;
//   - binary (G): standard base64 with padding.
type Value struct {
	Text string
	Null bool
}

// String returns the text, or "NULL".
func (v Value) String() string {
	if v.Null {
		return "NULL"
	}
	return v.Text
}

// Key is the canonical values of a row's key columns, in key order.
type Key []string

// String joins the key's values with "|", for messages.
func (k Key) String() string { return strings.Join(k, "|") }

// Table names a table or view. Schema is empty where the source has none
// (SQLite, CSV folders) and means the connection's default schema
// (PostgreSQL current_schema(), MySQL DATABASE()) otherwise.
type Table struct {
	Schema string `json:"schema,omitempty"`
	Name   string `json:"name"`
	View   bool   `json:"view,omitempty"`
}

// String is schema.name, or name alone without a schema.
func (t Table) String() string {
	if t.Schema == "" {
		return t.Name
	}
	return t.Schema + "." + t.Name
}

// ParseTable reads "schema.name" or "name" (split at the first dot).
func ParseTable(s string) Table {
	if i := strings.IndexByte(s, '.'); i > 0 {
		return Table{Schema: s[:i], Name: s[i+1:]}
	}
	return Table{Name: s}
}

// Column describes one column of a table or a query result.
type Column struct {
	Name string `json:"name"`
	// DatabaseType is the type as the database declares it, such as
	// "decimal(20,6)" or "timestamp with time zone".
	DatabaseType string `json:"database_type"`
	Nullable     bool   `json:"nullable"`
	// Key is the column's position in the primary key (or in Query.Key),
	// from 1; 0 when it is not part of it.
	Key int `json:"key,omitempty"`
	// DataType and Length suggest the catalog data item for the column
	// (C N Y D T L M G B I F, and a length from 1 to 100000); Scale is the
	// number of decimals of an N or Y column.
	DataType string `json:"data_type"`
	Length   int    `json:"length"`
	Scale    int    `json:"scale,omitempty"`

	kind kind // how values are made canonical and keys are ordered
	// collatable says a text column takes a COLLATE clause (PostgreSQL
	// character types), so that it can be ordered byte-wise.
	collatable bool
}

// Query says what to read: a table (optionally some of its columns) or a
// custom SELECT, and the key that orders it. Rows carry Columns (or every
// column), then each key column — and SinceKey's or SinceTime's column —
// that Columns leaves out, as Chunk.Columns names them.
type Query struct {
	Table   Table    `json:"table,omitzero"`
	Columns []string `json:"columns,omitempty"` // default: every column
	// SQL is a single SELECT (or WITH … SELECT) used instead of Table. It
	// runs as a derived table inside a read-only transaction (SQLite:
	// on a read-only connection); it may not contain ';' or start with a
	// comment. It is the data administrator's own SQL, never a value from
	// a request: it takes no parameters.
	SQL string `json:"sql,omitempty"`
	// Key lists the key columns in order; default: the table's primary
	// key. Keys may be composite; they must be unique.
	Key []string `json:"key,omitempty"`
}

func (q Query) String() string {
	if q.SQL != "" {
		return "query"
	}
	return q.Table.String()
}

// ChunkSum is the checksum of one chunk of rows in key order. Chunks are
// cut by content, not by count: a chunk ends after a row whose key hashes to
// 0 modulo the chunk size (or at four times the chunk size), so that both
// sides of a comparison cut at the same keys and one added or removed row
// changes one chunk rather than shifting every chunk after it.
type ChunkSum struct {
	First Key    `json:"first"`
	Last  Key    `json:"last"`
	Count int    `json:"count"`
	Hash  string `json:"hash"` // hex SHA-256 over the rows' canonical values in key order
}

// KeyHash is one row's key and the hash of its canonical values.
type KeyHash struct {
	Key  Key    `json:"key"`
	Hash string `json:"hash"` // hex, 128 bits of SHA-256
}

// KeyRange selects the keys k with After < k <= Through; a nil bound is
// open.
type KeyRange struct {
	After   Key `json:"after,omitempty"`
	Through Key `json:"through,omitempty"`
}

// Errors a caller may test with errors.Is.
var (
	ErrUnsupported = errors.New("not supported by this kind of source")
	ErrNoKey       = errors.New("no key")
	ErrNotFound    = errors.New("not found")
	ErrBadQuery    = errors.New("invalid query")
	// ErrKeyOrder means a stream's keys were not strictly increasing in
	// KeyOrder: the key is not unique, or the database orders it
	// differently from the platform (a collation, mixed storage types).
	ErrKeyOrder = errors.New("keys not unique or not in key order")

	ErrWrongPassword   = errors.New("wrong user name or password")
	ErrUnreachable     = errors.New("server unreachable")
	ErrUnknownDatabase = errors.New("unknown database")
	ErrAccessDenied    = errors.New("access denied")
)

// ConnError is what Test (and any call that connects) returns when the
// source cannot be used: a kind (ErrWrongPassword, ErrUnreachable,
// ErrUnknownDatabase, ErrAccessDenied, ErrNotFound) and what to do, in
// Chinese and English, around the driver's error.
type ConnError struct {
	Kind error
	ZH   string
	EN   string
	Err  error
}

func (e *ConnError) Error() string {
	if e.Err == nil {
		return e.EN
	}
	return e.EN + ": " + e.Err.Error()
}

// Unwrap lets errors.Is see both the kind and the driver's error.
func (e *ConnError) Unwrap() []error { return []error{e.Kind, e.Err} }

// Open makes a source of a kind (one of Kinds; "mariadb" is taken for
// MySQL) from its DSN. It does not connect: Test does, and so does the
// first call that needs the database.
func Open(kind, dsn string) (Source, error) {
	var (
		e   engine
		err error
	)
	switch kind {
	case Postgres:
		e, err = openPostgres(dsn)
	case MySQL, "mariadb":
		e, err = openMySQL(dsn)
	case SQLite:
		e, err = openSQLite(dsn)
	case CSVDir:
		e, err = openCSVDir(dsn)
	default:
		return nil, fmt.Errorf("open source: unknown kind %q (want one of %s)", kind, strings.Join(Kinds, ", "))
	}
	if err != nil {
		return nil, fmt.Errorf("open %s source: %w", kind, err)
	}
	return &source{e: e}, nil
}
