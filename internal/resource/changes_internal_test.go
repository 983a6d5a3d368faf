package resource

import (
	"context"
	"os"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"govshare/internal/storetest"
)

// TestInstantsReadAsPostgreSQLWritesThem: a date-time read in binary is
// made the text canonicalExpr has PostgreSQL write — fractions without
// trailing zeros, years before 2000, BC and past 9999, the ends of the
// range — and infinity is NULL, as there.
func TestInstantsReadAsPostgreSQLWritesThem(t *testing.T) {
	if os.Getenv(storetest.EnvPostgres) == "" {
		t.Skip(storetest.EnvPostgres + " not set")
	}
	db := storetest.OpenPostgres(t)
	expr := canonicalExpr(db.Dialect(), Column{MachineName: "t", DataType: "T"})
	q := `SELECT "t", ` + expr + ` FROM (VALUES ('infinity'::timestamptz), ('-infinity'), ('2000-01-01 00:00:00+00'), ('1999-12-31 23:59:59.999999+00'),
		('2020-05-06 07:08:09.1+00'), ('2020-05-06 07:08:09.000010+00'), ('2020-01-01 00:00:10+00'), ('1970-01-01 00:00:00+00'),
		('0044-03-15 12:00:00+00 BC'), ('0001-01-01 00:00:00+00 BC'), ('0001-12-31 23:59:59.5+00 BC'), ('4713-01-01 00:00:00+00 BC'),
		('12345-01-01 10:00:00.123+00'), ('294276-12-31 23:59:59.999999+00'), ('2026-11-21 23:45:57.123456+08')) v("t")
		UNION ALL SELECT "t", ` + expr + ` FROM (SELECT timestamptz '1900-01-01 00:00:00+00' + g * interval '3 days 7 hours 11 minutes 13.017 seconds' AS "t"
		FROM generate_series(0, 20000) g) s`
	n := 0
	err := db.WithPgx(context.Background(), func(c *pgx.Conn) error {
		rows, err := c.Query(context.Background(), q, pgx.QueryResultFormatsByOID{pgtype.TimestamptzOID: pgx.BinaryFormatCode})
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			raw := rows.RawValues()
			got, finite, err := appendInstant(nil, raw[0])
			if err != nil {
				return err
			}
			n++
			if finite != (raw[1] != nil) || string(got) != string(raw[1]) {
				t.Errorf("%x: %q (finite %v), PostgreSQL writes %q", raw[0], got, finite, raw[1])
			}
		}
		return rows.Err()
	})
	if err != nil || n < 20000 {
		t.Fatalf("%d instants compared: %v", n, err)
	}
}
