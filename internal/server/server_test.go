package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"govshare/internal/config"
	"govshare/internal/demo"
	"govshare/internal/server"
	"govshare/internal/storetest"
)

// start runs the platform and returns its base URL; the platform stops
// when the test ends, and the test fails if it does not stop cleanly.
func start(t *testing.T, cfg config.Config, seed bool) (string, *bytes.Buffer) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	out := &bytes.Buffer{}
	opt := server.Options{Version: "test", Out: out, Logs: io.Discard, Ready: func(a string) { ready <- a }}
	if seed {
		opt.Seed = demo.Seed
	}
	done := make(chan error, 1)
	go func() { done <- server.Run(ctx, &cfg, opt) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("run: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("platform did not stop within 30 s")
		}
	})
	select {
	case a := <-ready:
		return "http://" + a, out
	case err := <-done:
		t.Fatalf("platform did not start: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("platform did not start within 60 s")
	}
	return "", nil
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func checkServing(t *testing.T, base string) {
	t.Helper()
	if status, body := get(t, base+"/readyz"); status != 200 || !strings.Contains(body, `"bus":"ok"`) || !strings.Contains(body, `"database":"ok"`) {
		t.Fatalf("readyz %d %s", status, body)
	}
	status, body := get(t, base+"/api/v1/openapi.json")
	var doc struct{ OpenAPI string }
	json.Unmarshal([]byte(body), &doc)
	if status != 200 || doc.OpenAPI != "3.1.0" {
		t.Fatalf("openapi %d %q", status, doc.OpenAPI)
	}
	if status, body := get(t, base+"/metrics"); status != 200 || !strings.Contains(body, "govshare_http_requests_total") {
		t.Fatalf("metrics %d", status)
	}
}

func TestDemoStartsWithEmbeddedDefaults(t *testing.T) {
	cfg := config.Defaults()
	cfg.Addr = "127.0.0.1:0"
	cfg.Data = t.TempDir()
	base, out := start(t, cfg, true)
	checkServing(t, base)
	if !strings.Contains(out.String(), "gaj.user") || !strings.Contains(out.String(), "Demo@2026") {
		t.Fatalf("demo accounts not printed:\n%s", out)
	}
	if status, _ := get(t, base+"/login"); status != 200 {
		t.Fatalf("login page %d", status)
	}
}

func TestRestartKeepsDemoAndKey(t *testing.T) {
	cfg := config.Defaults()
	cfg.Addr = "127.0.0.1:0"
	cfg.Data = t.TempDir()
	t.Run("first", func(t *testing.T) { start(t, cfg, true) })
	key1, _ := os.ReadFile(cfg.Data + "/secret.key")
	t.Run("second", func(t *testing.T) {
		base, out := start(t, cfg, true)
		checkServing(t, base)
		if strings.Count(out.String(), "gaj.user") != 1 {
			t.Fatal("accounts not printed once on restart")
		}
	})
	key2, _ := os.ReadFile(cfg.Data + "/secret.key")
	if len(key1) == 0 || string(key1) != string(key2) {
		t.Fatal("master key changed across restarts")
	}
}

func TestServeOnPostgresAndExternalNATS(t *testing.T) {
	nurl := os.Getenv("GOVSHARE_TEST_NATS")
	if nurl == "" {
		t.Skip("set GOVSHARE_TEST_NATS=nats://… to run against an external NATS")
	}
	cfg := config.Defaults()
	cfg.Addr = "127.0.0.1:0"
	cfg.Data = t.TempDir()
	cfg.NATS = nurl
	if os.Getenv(storetest.EnvPostgres) != "" {
		dsn, err := storetest.PostgresDSN(t)
		if err != nil {
			t.Fatal(err)
		}
		cfg.DB = dsn
	}
	base, out := start(t, cfg, true)
	checkServing(t, base)
	if !strings.Contains(out.String(), "external NATS") {
		t.Fatalf("not on the external bus:\n%s", out)
	}
}

func TestUnreachableBusFailsStartWithAdvice(t *testing.T) {
	cfg := config.Defaults()
	cfg.Addr = "127.0.0.1:0"
	cfg.Data = t.TempDir()
	cfg.NATS = "nats://127.0.0.1:1"
	err := server.Run(context.Background(), &cfg, server.Options{Out: io.Discard, Logs: io.Discard})
	if err == nil || !strings.Contains(err.Error(), "JetStream") {
		t.Fatalf("want advice about the bus, got %v", err)
	}
}

func TestCatalogRulesComeFromConfiguration(t *testing.T) {
	cfg := config.Defaults()
	cfg.NetworkZone, cfg.CodePrefix, cfg.CodeSeparator, cfg.CodeWidth, cfg.ChangeDays = "external", "SC", "-", "4", "10"
	c := server.CatalogConfig(&cfg)
	if !c.External || c.Code.Prefix != "SC" || c.Code.Separator != "-" || c.Code.Width != 4 || c.ChangeDeadlineDays != 10 {
		t.Fatalf("catalog config: %+v", c)
	}
}
