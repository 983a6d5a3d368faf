package sharebench

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"govshare/client"
	"govshare/internal/store"
	"govshare/internal/storetest"
)

// TestBenchSmall runs the benchmark end to end for a moment. Beyond "it
// runs", it proves the signed sides did what they claim: every signed
// request passed the signature check (any other answer stops the bench)
// and left exactly one nonce behind.
func TestBenchSmall(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		var progress strings.Builder
		r, err := Bench(ctx, db, Options{Clients: 3, Duration: 300 * time.Millisecond, SignMethod: client.HMACSM3}, &progress)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("\n%s", r)
		for _, s := range []Side{r.Unsigned, r.Ping, r.Check} {
			if s.Requests == 0 || s.PerSec <= 0 || s.P50 <= 0 || s.P50 > s.P99 || s.Elapsed < 300*time.Millisecond {
				t.Errorf("%s: %+v", s.Name, s)
			}
		}
		if r.PingRatio <= 0 || r.CheckRatio <= 0 || r.Clients != 3 || r.SignMethod != client.HMACSM3 {
			t.Errorf("result %+v", r)
		}
		if want := int64(r.Ping.Requests + r.Check.Requests + 2*3*warmup); r.Signed != want || r.Nonces != want {
			t.Errorf("%d signed requests and %d nonces, want %d of each", r.Signed, r.Nonces, want)
		}
		if !strings.Contains(progress.String(), "signed GET /api/v1/grants/check: "+strconv.Itoa(r.Check.Requests)+" requests in") {
			t.Errorf("progress:\n%s", progress.String())
		}
		if !strings.Contains(r.String(), "× the unsigned no-op's requests/s") {
			t.Errorf("table:\n%s", r)
		}

		if _, err := Bench(ctx, db, Options{Clients: 1, Duration: time.Millisecond}, nil); !errors.Is(err, ErrNotScratch) {
			t.Fatalf("second bench on the same database: %v, want ErrNotScratch", err)
		}
	})
}
