package store_test

import (
	"context"
	"testing"
	"time"

	"govshare/internal/store"
	"govshare/internal/storetest"
)

func TestMigrateIsIdempotent(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		again, err := db.Migrate(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if len(again) != 0 {
			t.Fatalf("second migrate applied %v", again)
		}
	})
}

func TestTimesRoundTripEqually(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		now := store.Now()
		var id int64
		err := db.QueryRow(ctx, `INSERT INTO departments (name, credit_code, region_code, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?) RETURNING id`, "测试", "X", "350100", now, now).Scan(&id)
		if err != nil {
			t.Fatal(err)
		}
		var got time.Time
		if err := db.QueryRow(ctx, "SELECT created_at FROM departments WHERE id = ?", id).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if !got.Equal(now) {
			t.Fatalf("time changed on the way through: wrote %v read %v", now, got)
		}
	})
}

func TestTransactionRollsBackOnError(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		now := store.Now()
		err := db.InTx(ctx, func(tx *store.Tx) error {
			if _, err := tx.Exec(ctx, `INSERT INTO departments (name, credit_code, region_code, created_at, updated_at) VALUES (?, ?, ?, ?, ?)`, "a", "A", "350100", now, now); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, `INSERT INTO departments (name, credit_code, region_code, created_at, updated_at) VALUES (?, ?, ?, ?, ?)`, "b", "A", "350100", now, now)
			return err
		})
		if !store.IsUniqueViolation(err) {
			t.Fatalf("want unique violation, got %v", err)
		}
		var n int
		if err := db.QueryRow(ctx, "SELECT COUNT(*) FROM departments").Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != 0 {
			t.Fatalf("rollback left %d rows", n)
		}
	})
}

func TestRebind(t *testing.T) {
	cases := []struct{ in, want string }{
		{"SELECT ? , ?", "SELECT $1 , $2"},
		{"SELECT '?' , ?", "SELECT '?' , $1"},
		{"SELECT 1", "SELECT 1"},
	}
	for _, c := range cases {
		if got := store.RebindFor(store.Postgres, c.in); got != c.want {
			t.Errorf("rebind(%q) = %q, want %q", c.in, got, c.want)
		}
		if got := store.RebindFor(store.SQLite, c.in); got != c.in {
			t.Errorf("sqlite rebind changed %q", c.in)
		}
	}
}
