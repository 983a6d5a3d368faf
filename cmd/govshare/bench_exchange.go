package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"time"

	"govshare/internal/exchangebench"
)

func benchExchange(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench exchange", flag.ContinueOnError)
	fs.SetOutput(stderr)
	pg := fs.String("pg", "", "PostgreSQL server, a postgres:// URL: the provider's and consumer's databases and the center's store are fresh schemas there, dropped afterwards")
	rows := fs.Int("rows", 1_000_000, "rows in the provider's table")
	batch := fs.Int("batch-rows", 0, "the job's rows per batch (0: the job's default)")
	rate := fs.Float64("rate", 5, "single-row changes a second at the source in the latency phase")
	latency := fs.Duration("latency-for", 60*time.Second, "how long the latency phase commits changes (0: skip it)")
	dir := fs.String("dir", "", "folder for the nodes' data and logs and the center's bus (default: a temporary folder)")
	prof := fs.String("profile", "", "write CPU profiles of the center and both nodes during the bulk phase into this folder")
	profFor := fs.Duration("profile-for", 30*time.Second, "how long the profiles run")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *pg == "" {
		return fmt.Errorf("give the PostgreSQL server: --pg 'postgres://postgres@127.0.0.1:5432/test?sslmode=disable'")
	}
	if *latency == 0 {
		*latency = -1
	}
	res, err := exchangebench.Bench(ctx, exchangebench.Options{Postgres: *pg, Rows: *rows, BatchRows: *batch, Rate: *rate, LatencyFor: *latency,
		Dir: *dir, Profile: *prof, ProfileFor: *profFor}, stderr)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, res.String())
	return nil
}
