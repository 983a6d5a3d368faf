package dataservicebench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"govshare/internal/checkdigit"
)

// The test binary is its own load generator, as the govshare binary is.
func TestMain(m *testing.M) {
	if os.Getenv("GOVSHARE_DATASERVICEBENCH_LOADGEN") == "1" {
		if err := RunLoad(context.Background(), os.Stdin, os.Stdout, os.Stderr); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func TestPeopleAreValidAndDistinct(t *testing.T) {
	if MaxRows != int64(len(districts))*birthDays*500 {
		t.Fatalf("MaxRows %d", MaxRows)
	}
	ppl := newPeople()
	seen := map[string]int64{}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, i := range []int64{0, 1, 2, 9, 10, 292199, 292200, 292201, 1_000_000, 9_999_999, MaxRows - 1} {
		p := ppl.Person(i)
		if err := checkdigit.CitizenIDAsOf(p[0], now); err != nil {
			t.Errorf("row %d: %s: %v", i, p[0], err)
		}
		if j, ok := seen[p[0]]; ok {
			t.Errorf("rows %d and %d share ID %s", i, j, p[0])
		}
		seen[p[0]] = i
		if b, _ := checkdigit.CitizenIDBirthString(p[0]); b != strings.ReplaceAll(p[3], "-", "") {
			t.Errorf("row %d: birth %s, ID says %s", i, p[3], b)
		}
		if male, _ := checkdigit.CitizenIDMale(p[0]); male != (p[2] == "1") {
			t.Errorf("row %d: sex %s disagrees with %s", i, p[2], p[0])
		}
		if p[0] != ppl.ID(i) || p[8] != PersonNo(i) || len(p[8]) != 16 || len(p[7]) != 11 || len(p[9]) != 12 {
			t.Errorf("row %d: %q", i, p)
		}
	}
	// Every row of a small population is distinct; so are the
	// comparison's records, made-up ones included.
	ids := map[string]bool{}
	for i := range int64(300_000) {
		id := ppl.ID(i)
		if ids[id] {
			t.Fatalf("row %d repeats ID %s", i, id)
		}
		ids[id] = true
	}
	recs := map[string]bool{}
	for k := range int64(50_000) {
		id, _, _, want := ppl.verifyRecord(k, 300_000)
		if recs[id] || (want == "not_found") == ids[id] {
			t.Fatalf("record %d: %s (%s) repeated or wrongly present", k, id, want)
		}
		recs[id] = true
	}
}

// TestBenchSmall runs the whole bench on a small population twice: the
// second run keeps what the first built. Each side must have answered
// correctly (a lookup is counted only with the person asked for; the
// comparison's answers are checked against the records' making), and
// every answered lookup must have left its audit event.
func TestBenchSmall(t *testing.T) {
	dsn := os.Getenv("GOVSHARE_TEST_POSTGRES")
	if dsn == "" {
		t.Skip("set GOVSHARE_TEST_POSTGRES to run the data services bench on PostgreSQL")
	}
	ctx := context.Background()
	var rnd [4]byte
	_, _ = rand.Read(rnd[:])
	name := "govshare_bench_test_" + hex.EncodeToString(rnd[:])
	t.Cleanup(func() {
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			t.Error(err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Error(err)
		}
	})
	loadgen := func(ctx context.Context) *exec.Cmd {
		cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), "GOVSHARE_DATASERVICEBENCH_LOADGEN=1")
		return cmd
	}
	opt := Options{Postgres: dsn, Database: name, Rows: 20_000, Clients: 4, Warmup: 200 * time.Millisecond, Duration: 500 * time.Millisecond,
		DownloadRows: 3000, VerifyRecords: 4000, Loadgen: loadgen}
	for run := range 2 {
		var progress strings.Builder
		r, err := Bench(ctx, opt, &progress)
		if err != nil {
			t.Fatalf("run %d: %v\n%s", run+1, err, progress.String())
		}
		t.Logf("run %d:\n%s", run+1, r)
		if len(r.Rounds) != 1 {
			t.Fatalf("rounds %+v", r.Rounds)
		}
		for _, s := range []Side{r.Rounds[0].Full, r.Rounds[0].Baseline} {
			if s.Requests == 0 || s.Errors != 0 || s.PerSec <= 0 || s.P50 <= 0 || s.P50 > s.P99 {
				t.Errorf("%s: %+v", s.Name, s.LoadResult)
			}
		}
		if r.Audited != r.FullOK || r.FullOK < int64(r.Rounds[0].Full.Requests) {
			t.Errorf("%d audit events for %d answered lookups", r.Audited, r.FullOK)
		}
		if d := r.Download; d == nil || d.Rows != 3000 || d.Memory.PeakRSS == 0 {
			t.Errorf("download %+v", d)
		}
		if r.VerifyMissing {
			t.Log("no comparison job API in this build")
		} else if v := r.Verify; v == nil || v.Job.Rows != 4000 || v.NotFound != 4000/notFoundEvery || len(v.Plain) != 2 || v.Ratio <= 0 {
			t.Errorf("comparison %+v", v)
		}
		kept := strings.Contains(progress.String(), "kept from an earlier run")
		if kept != (run == 1) {
			t.Errorf("run %d: population kept %v:\n%s", run+1, kept, progress.String())
		}
		if !strings.Contains(r.String(), "audit: ") {
			t.Errorf("report:\n%s", r)
		}
	}
}
