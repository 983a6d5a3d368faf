package source

import (
	"context"
	"database/sql"
	"encoding/binary"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/stdlib"
)

// PostgreSQL rows are read with pgx directly: going through database/sql
// costs a driver value per column (most of them allocated and boxed), a
// conversion to the Scan destination and a lock per row, which was about
// half the node's CPU when streaming a large table. The values must stay
// byte for byte what the database/sql path gives (sqlRows with the pgx
// stdlib driver), so this reader asks for the same wire formats and
// decodes each column into the Go value stdlib.Rows.Next would have made,
// then makes it canonical with the same functions appendCanonical uses.

// pgResultFormats is the pgx stdlib driver's choice of result formats
// (databaseSQLResultFormats, unexported there): binary for these types,
// text for every other.
var pgResultFormats = pgx.QueryResultFormatsByOID{
	pgtype.BoolOID:        pgx.BinaryFormatCode,
	pgtype.ByteaOID:       pgx.BinaryFormatCode,
	pgtype.CIDOID:         pgx.BinaryFormatCode,
	pgtype.DateOID:        pgx.BinaryFormatCode,
	pgtype.Float4OID:      pgx.BinaryFormatCode,
	pgtype.Float8OID:      pgx.BinaryFormatCode,
	pgtype.Int2OID:        pgx.BinaryFormatCode,
	pgtype.Int4OID:        pgx.BinaryFormatCode,
	pgtype.Int8OID:        pgx.BinaryFormatCode,
	pgtype.OIDOID:         pgx.BinaryFormatCode,
	pgtype.TimestampOID:   pgx.BinaryFormatCode,
	pgtype.TimestamptzOID: pgx.BinaryFormatCode,
	pgtype.XIDOID:         pgx.BinaryFormatCode,
}

// pgxRows is PostgreSQL's rowsFunc: it borrows a connection of db's pool
// and reads the rows with pgx on it.
func pgxRows(db *sql.DB) rowsFunc {
	return func(ctx context.Context, query string, args []any, cols []Column, each func(Row) error) error {
		conn, err := db.Conn(ctx)
		if err != nil {
			return err
		}
		defer conn.Close()
		return conn.Raw(func(dc any) error {
			sc, ok := dc.(*stdlib.Conn)
			if !ok {
				return fmt.Errorf("unexpected PostgreSQL driver connection %T", dc)
			}
			return readPgx(ctx, sc.Conn(), query, args, cols, each)
		})
	}
}

func readPgx(ctx context.Context, c *pgx.Conn, query string, args []any, cols []Column, each func(Row) error) error {
	// READ ONLY, as sqlEngine.read opens it: a custom query (or a function
	// it calls) cannot write.
	tx, err := c.BeginTx(ctx, pgx.TxOptions{AccessMode: pgx.ReadOnly})
	if err != nil {
		return err
	}
	defer tx.Rollback(ctx) //nolint:errcheck // read-only: nothing to keep
	rows, err := tx.Query(ctx, query, append([]any{pgResultFormats}, args...)...)
	if err != nil {
		return err
	}
	defer rows.Close()
	rb := newRowBuilder(cols)
	var decoders []pgDecoder
	for rows.Next() {
		if decoders == nil {
			// Made at the first row, as stdlib does: only then are the
			// field descriptions sure to be known.
			fds := rows.FieldDescriptions()
			if len(fds) != len(cols) {
				return fmt.Errorf("the query returns %d columns, not %d", len(fds), len(cols))
			}
			decoders = make([]pgDecoder, len(fds))
			for i, fd := range fds {
				decoders[i] = newPgDecoder(c.TypeMap(), fd, rb.kinds[i])
			}
		}
		for i, src := range rows.RawValues() {
			cell := &rb.cells[i]
			cell.start, cell.null = len(rb.buf), src == nil
			if src != nil {
				if rb.buf, cell.null, err = decoders[i](rb.buf, src); err != nil {
					return fmt.Errorf("convert field %d: %w", i, err)
				}
			}
			cell.end = len(rb.buf)
		}
		if err := each(rb.row()); err != nil {
			return err
		}
	}
	return rows.Err()
}

// pgDecoder appends the canonical text of a column's non-NULL raw value.
type pgDecoder func(b, src []byte) (out []byte, null bool, err error)

// newPgDecoder follows stdlib.Rows.initValueFuncs: per type the same scan
// target, and the value that target gives database/sql made canonical as
// appendCanonical makes it. Where that value is the raw bytes themselves
// (text formats scanned into a string or []byte, binary bytea), they are
// used in place; binary integers are decoded here.
func newPgDecoder(m *pgtype.Map, fd pgconn.FieldDescription, k kind) pgDecoder {
	bin := fd.Format == pgx.BinaryFormatCode
	switch fd.DataTypeOID {
	case pgtype.BoolOID:
		return scanned(m, fd, func(b []byte, v bool) ([]byte, bool) { return strconv.AppendBool(b, v), false })
	case pgtype.ByteaOID:
		if bin {
			return rawDecoder(k)
		}
		return scanned(m, fd, func(b []byte, v []byte) ([]byte, bool) { return appendText(b, k, v) })
	case pgtype.CIDOID, pgtype.OIDOID, pgtype.XIDOID:
		return scanned(m, fd, func(b []byte, v pgtype.Uint32) ([]byte, bool) {
			if !v.Valid {
				return b, true
			}
			return appendCanonicalInt(b, k, int64(v.Uint32)), false
		})
	case pgtype.DateOID:
		return scanned(m, fd, func(b []byte, v pgtype.Date) ([]byte, bool) {
			return appendPgTime(b, k, v.Time, v.InfinityModifier, v.Valid)
		})
	case pgtype.Float4OID:
		// stdlib hands a float4 over as a float64.
		return scanned(m, fd, func(b []byte, v float32) ([]byte, bool) { return appendCanonicalFloat(b, k, float64(v)), false })
	case pgtype.Float8OID:
		return scanned(m, fd, func(b []byte, v float64) ([]byte, bool) { return appendCanonicalFloat(b, k, v), false })
	case pgtype.Int2OID:
		if bin {
			return binaryIntDecoder(k, 2)
		}
		return scanned(m, fd, func(b []byte, v int16) ([]byte, bool) { return appendCanonicalInt(b, k, int64(v)), false })
	case pgtype.Int4OID:
		if bin {
			return binaryIntDecoder(k, 4)
		}
		return scanned(m, fd, func(b []byte, v int32) ([]byte, bool) { return appendCanonicalInt(b, k, int64(v)), false })
	case pgtype.Int8OID:
		if bin {
			return binaryIntDecoder(k, 8)
		}
		return scanned(m, fd, func(b []byte, v int64) ([]byte, bool) { return appendCanonicalInt(b, k, v), false })
	case pgtype.JSONOID, pgtype.JSONBOID, pgtype.XMLOID:
		if !bin {
			return rawDecoder(k) // pgtype copies text into a []byte as it is
		}
		return scanned(m, fd, func(b []byte, v []byte) ([]byte, bool) { return appendText(b, k, v) })
	case pgtype.TimestampOID:
		return scanned(m, fd, func(b []byte, v pgtype.Timestamp) ([]byte, bool) {
			return appendPgTime(b, k, v.Time, v.InfinityModifier, v.Valid)
		})
	case pgtype.TimestamptzOID:
		return scanned(m, fd, func(b []byte, v pgtype.Timestamptz) ([]byte, bool) {
			return appendPgTime(b, k, v.Time, v.InfinityModifier, v.Valid)
		})
	}
	if !bin {
		return rawDecoder(k) // pgtype scans any text value into a string as it is
	}
	return scanned(m, fd, func(b []byte, v string) ([]byte, bool) { return appendText(b, k, v) })
}

// scanned decodes with pgtype's scan plan into a T, reused from row to
// row, and appends its canonical text with add.
func scanned[T any](m *pgtype.Map, fd pgconn.FieldDescription, add func(b []byte, v T) ([]byte, bool)) pgDecoder {
	var v T
	plan := m.PlanScan(fd.DataTypeOID, fd.Format, &v)
	return func(b, src []byte) ([]byte, bool, error) {
		if err := plan.Scan(src, &v); err != nil {
			return b, false, err
		}
		b, null := add(b, v)
		return b, null, nil
	}
}

// rawDecoder passes the raw bytes to appendText, as database/sql passed
// the string or []byte the driver made of them. appendText tells the two
// apart only for kAny, a kind no PostgreSQL column has.
func rawDecoder(k kind) pgDecoder {
	return func(b, src []byte) ([]byte, bool, error) {
		b, null := appendText(b, k, src)
		return b, null, nil
	}
}

// binaryIntDecoder decodes a big-endian integer of size bytes, as pgtype
// does, without its scan plan's interface calls.
func binaryIntDecoder(k kind, size int) pgDecoder {
	return func(b, src []byte) ([]byte, bool, error) {
		if len(src) != size {
			return b, false, fmt.Errorf("invalid length %d for a %d-byte integer", len(src), size)
		}
		var v int64
		switch size {
		case 2:
			v = int64(int16(binary.BigEndian.Uint16(src)))
		case 4:
			v = int64(int32(binary.BigEndian.Uint32(src)))
		default:
			v = int64(binary.BigEndian.Uint64(src))
		}
		return appendCanonicalInt(b, k, v), false, nil
	}
}

// appendPgTime makes canonical what the Value method of pgtype's Date,
// Timestamp and Timestamptz gives database/sql: nil when not valid, the
// modifier's name ("infinity", "-infinity") when infinite, else the time.
func appendPgTime(b []byte, k kind, t time.Time, inf pgtype.InfinityModifier, valid bool) ([]byte, bool) {
	switch {
	case !valid:
		return b, true
	case inf != pgtype.Finite:
		return appendText(b, k, inf.String())
	}
	return appendCanonicalTime(b, k, t), false
}
