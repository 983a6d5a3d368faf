package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"runtime/pprof"

	"govshare/internal/ingestbench"
	"govshare/internal/store"
)

func benchIngest(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench ingest", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dsn := fs.String("db", "", "a SQLite file path, or a postgres:// URL: the run then uses a fresh schema, dropped afterwards (default: a temporary SQLite file)")
	rows := fs.Int("rows", 1_000_000, "rows in the generated CSV file")
	badEvery := fs.Int("bad-every", 1000, "make every n-th row fail one quality rule (0: none)")
	dir := fs.String("dir", "", "folder for the generated file (default: a temporary folder)")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the whole run to this file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	if *badEvery == 0 {
		*badEvery = -1
	}
	target := *dsn
	if store.IsPostgres(target) {
		scratch, drop, err := freshSchema(ctx, target)
		if err != nil {
			return err
		}
		defer drop()
		target = scratch
	}
	db, done, err := scratchDB(ctx, target)
	if err != nil {
		return err
	}
	defer done()
	res, err := ingestbench.Bench(ctx, db, ingestbench.Options{Rows: *rows, BadEvery: *badEvery, Dir: *dir}, stderr)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, res.String())
	return nil
}

// freshSchema creates an empty schema bench_<random> on the server of dsn
// and returns dsn with search_path set to it, and a function that drops it.
func freshSchema(ctx context.Context, dsn string) (string, func(), error) {
	admin, err := store.Open(ctx, dsn)
	if err != nil {
		return "", nil, err
	}
	defer admin.Close()
	var rnd [6]byte
	_, _ = rand.Read(rnd[:])
	schema := "bench_" + hex.EncodeToString(rnd[:])
	if _, err := admin.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		return "", nil, fmt.Errorf("create scratch schema: %w", err)
	}
	drop := func() {
		a, err := store.Open(context.WithoutCancel(ctx), dsn)
		if err != nil {
			return
		}
		defer a.Close()
		_, _ = a.Exec(context.WithoutCancel(ctx), "DROP SCHEMA "+schema+" CASCADE")
	}
	u, err := url.Parse(dsn)
	if err != nil {
		drop()
		return "", nil, err
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String(), drop, nil
}
