// Package storetest gives every store conformance test the same two
// backends: a fresh SQLite file always, and a fresh PostgreSQL schema when
// GOVSHARE_TEST_POSTGRES names a server. When that variable is set and the
// server cannot be reached the test fails: a CI run that means to test
// PostgreSQL must never pass without it.
package storetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"path/filepath"
	"testing"

	"govshare/internal/store"
)

// EnvPostgres is the variable that switches the PostgreSQL run on.
const EnvPostgres = "GOVSHARE_TEST_POSTGRES"

// Backend is one database the conformance suite runs against.
type Backend struct {
	Name string
	Open func(t testing.TB) *store.DB
}

// Backends lists SQLite and, when configured, PostgreSQL.
func Backends() []Backend {
	b := []Backend{{Name: "sqlite", Open: OpenSQLite}}
	if os.Getenv(EnvPostgres) != "" {
		b = append(b, Backend{Name: "postgres", Open: OpenPostgres})
	}
	return b
}

// Each runs fn as a subtest on every backend, with a fresh migrated database.
func Each(t *testing.T, fn func(t *testing.T, db *store.DB)) {
	t.Helper()
	if os.Getenv(EnvPostgres) == "" {
		t.Logf("PostgreSQL run skipped: set %s=postgres://… to run it", EnvPostgres)
	}
	for _, b := range Backends() {
		t.Run(b.Name, func(t *testing.T) { fn(t, b.Open(t)) })
	}
}

// OpenSQLite returns a migrated SQLite database in a temporary folder.
func OpenSQLite(t testing.TB) *store.DB {
	t.Helper()
	db, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "govshare.db"))
	if err != nil {
		t.Fatalf("open sqlite: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	migrate(t, db)
	return db
}

// OpenPostgres returns a migrated PostgreSQL database in a new schema that
// is dropped when the test ends. It fails the test if the server named by
// GOVSHARE_TEST_POSTGRES is unreachable.
func OpenPostgres(t testing.TB) *store.DB {
	t.Helper()
	dsn, err := PostgresDSN(t)
	if err != nil {
		t.Fatalf("%s: %v", EnvPostgres, err)
	}
	db, err := store.Open(context.Background(), dsn)
	if err != nil {
		t.Fatalf("%s is set but PostgreSQL is unreachable: %v", EnvPostgres, err)
	}
	t.Cleanup(func() { db.Close() })
	migrate(t, db)
	return db
}

// PostgresDSN creates a fresh schema on the server named by
// GOVSHARE_TEST_POSTGRES and returns a URL whose search_path selects it.
func PostgresDSN(t testing.TB) (string, error) {
	base := os.Getenv(EnvPostgres)
	admin, err := store.Open(context.Background(), base)
	if err != nil {
		t.Fatalf("%s is set but PostgreSQL is unreachable: %v", EnvPostgres, err)
	}
	defer admin.Close()
	var rnd [6]byte
	_, _ = rand.Read(rnd[:])
	schema := "t_" + hex.EncodeToString(rnd[:])
	if _, err := admin.Exec(context.Background(), "CREATE SCHEMA "+schema); err != nil {
		return "", err
	}
	t.Cleanup(func() {
		a, err := store.Open(context.Background(), base)
		if err != nil {
			return
		}
		defer a.Close()
		_, _ = a.Exec(context.Background(), "DROP SCHEMA "+schema+" CASCADE")
	})
	u, err := url.Parse(base)
	if err != nil {
		return "", err
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String(), nil
}

func migrate(t testing.TB, db *store.DB) {
	t.Helper()
	if _, err := db.Migrate(context.Background()); err != nil {
		t.Fatalf("migrate %s: %v", db.Dialect(), err)
	}
}
