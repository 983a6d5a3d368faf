package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"time"

	"govshare/client"
	"govshare/internal/dataservicebench"
)

func benchDataService(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench dataservice", flag.ContinueOnError)
	fs.SetOutput(stderr)
	pg := fs.String("pg", "", "PostgreSQL server, a postgres:// URL; the bench's database (--database) is created there once and kept")
	database := fs.String("database", "govshare_bench", "the bench's own database: the population resource is built there on the first run and kept")
	rows := fs.Int64("rows", 10_000_000, "people in the population resource (a different number rebuilds it)")
	clients := fs.Int("clients", 64, "concurrent clients of the lookups")
	warmup := fs.Duration("warmup", 5*time.Second, "warm-up before each lookup side")
	duration := fs.Duration("duration", 20*time.Second, "measured time of each lookup side")
	rounds := fs.Int("rounds", 1, "lookup rounds (full path, then baseline, each round)")
	download := fs.Int64("download-rows", 1_000_000, "rows of the download (0: skip it)")
	verify := fs.Int64("verify-records", 1_000_000, "records of the comparison job (0: skip it)")
	method := fs.String("sign-method", client.HMACSHA256, "signature: HMAC-SHA256 or HMAC-SM3")
	prof := fs.String("profile", "", "write CPU profiles of the server's process (and of the load generator's, NAME.loadgen.pprof) during the full-path lookups and the download into this folder")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *pg == "" {
		return fmt.Errorf("give the PostgreSQL server: --pg 'postgres://postgres@127.0.0.1:5432/test?sslmode=disable'")
	}
	if *download == 0 {
		*download = -1
	}
	if *verify == 0 {
		*verify = -1
	}
	res, err := dataservicebench.Bench(ctx, dataservicebench.Options{Postgres: *pg, Database: *database, Rows: *rows, Clients: *clients,
		Warmup: *warmup, Duration: *duration, Rounds: *rounds, DownloadRows: *download, VerifyRecords: *verify, SignMethod: *method,
		Profile: *prof}, stderr)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, res.String())
	return nil
}

// benchLoadgen is the data services bench's load generator, a process of
// its own: a spec as JSON on stdin, its result as JSON on stdout.
func benchLoadgen(ctx context.Context, stdin io.Reader, stdout, stderr io.Writer) error {
	return dataservicebench.RunLoad(ctx, stdin, stdout, stderr)
}
