package exchangebench

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"testing"
	"time"

	"govshare/internal/agent"
	"govshare/internal/storetest"
)

// envNode makes the test binary an exchange node: the bench starts its
// nodes as processes of their own, and a test has no govshare binary, so
// it starts itself with the node's configuration file in this variable.
const envNode = "GOVSHARE_XBENCH_TEST_NODE"

func TestMain(m *testing.M) {
	if cfg := os.Getenv(envNode); cfg != "" {
		if err := runNode(cfg); err != nil {
			fmt.Fprintln(os.Stderr, "node:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// runNode is `govshare agent run --config cfg`.
func runNode(cfg string) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	c, err := agent.LoadConfig(cfg)
	if err != nil {
		return err
	}
	a, err := agent.Open(ctx, c, agent.Options{Version: "test", Log: slog.New(slog.NewJSONHandler(os.Stderr, nil))})
	if err != nil {
		return err
	}
	defer a.Close()
	return a.Run(ctx)
}

func testNode(cfg string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envNode+"="+cfg)
	return cmd
}

// TestBenchSmall runs the whole bench on 2,000 rows and a few seconds of
// changes. Beyond "it runs", Bench itself checks that the baseline's copy
// and the consumer's table match the source row for row (count and sums
// over every column) and that every change committed at the source
// arrived.
func TestBenchSmall(t *testing.T) {
	pg := os.Getenv(storetest.EnvPostgres)
	if pg == "" {
		t.Skipf("the exchange bench runs on PostgreSQL only: set %s=postgres://… to run it", storetest.EnvPostgres)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	var progress strings.Builder
	r, err := Bench(ctx, Options{Postgres: pg, Rows: 2000, BatchRows: 500, Rate: 10, LatencyFor: 3 * time.Second, Node: testNode,
		Dir: t.TempDir()}, &progress)
	if err != nil {
		t.Fatalf("%v\nprogress:\n%s", err, progress.String())
	}
	t.Logf("\n%s", r)
	for _, s := range []Side{r.Baseline, r.Exchange} {
		if s.Rows != 2000 || s.PerSec <= 0 {
			t.Errorf("%s: %+v", s.Name, s)
		}
	}
	if r.Ratio <= 0 || r.Latency.Samples < 10 || r.Latency.P50 <= 0 || r.Latency.P99 < r.Latency.P50 {
		t.Errorf("result: %+v", r)
	}
	// A change waits for the job's idle pause (1 s) and a few durable
	// hops. The last change of a burst waiting the node's whole 5 s long
	// poll means the poll slept through the news of its delivery.
	if r.Latency.Max > 4500*time.Millisecond {
		t.Errorf("a change took %s to arrive (p50 %s, p99 %s)", r.Latency.Max, r.Latency.P50, r.Latency.P99)
	}
	if len(r.Nodes) != 2 || r.Nodes[0].Peak == 0 || r.Nodes[1].Peak == 0 {
		t.Errorf("node memory: %+v", r.Nodes)
	}
	if !strings.Contains(progress.String(), "the consumer's table matches the source") {
		t.Errorf("progress:\n%s", progress.String())
	}
}
