package bus

import (
	"bytes"
	"context"
	"crypto/rand"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelInfo}))
}

func openBus(t *testing.T, cfg Config) *Bus {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	b, err := Open(ctx, cfg, testLogger(t))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return b
}

func TestEmbeddedBusKeepsMessagesAcrossRestartAndDropsDuplicates(t *testing.T) {
	ctx := t.Context()
	cfg := Config{StoreDir: filepath.Join(t.TempDir(), "nats"), Name: "govshare-test"}

	b := openBus(t, cfg)
	if !b.Embedded() {
		t.Error("Embedded() = false for an empty URL")
	}
	if got := b.ClientURL(); got != "" {
		t.Errorf("ClientURL() = %q for an in-process server, want empty", got)
	}
	if err := b.Check(ctx); err != nil {
		t.Fatalf("Check on a fresh bus: %v", err)
	}
	js := b.JetStream()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{
		Name:       "RECEIPTS",
		Subjects:   []string{"receipt.>"},
		Storage:    jetstream.FileStorage,
		Duplicates: time.Minute,
	}); err != nil {
		t.Fatalf("create stream: %v", err)
	}
	for i, wantDup := range []bool{false, true} {
		ack, err := js.Publish(ctx, "receipt.1", []byte("delivered"), jetstream.WithMsgID("exchange-1"))
		if err != nil {
			t.Fatalf("publish %d: %v", i+1, err)
		}
		if ack.Duplicate != wantDup {
			t.Errorf("publish %d: Duplicate = %v, want %v", i+1, ack.Duplicate, wantDup)
		}
	}
	if err := b.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}

	b = openBus(t, cfg)
	defer b.Close()
	stream, err := b.JetStream().Stream(ctx, "RECEIPTS")
	if err != nil {
		t.Fatalf("stream after restart: %v", err)
	}
	info, err := stream.Info(ctx)
	if err != nil {
		t.Fatalf("stream info: %v", err)
	}
	if info.State.Msgs != 1 {
		t.Errorf("messages after restart = %d, want 1 (the duplicate must be dropped)", info.State.Msgs)
	}
	msg, err := stream.GetMsg(ctx, 1)
	if err != nil {
		t.Fatalf("get message 1: %v", err)
	}
	if string(msg.Data) != "delivered" || msg.Header.Get(jetstream.MsgIDHeader) != "exchange-1" {
		t.Errorf("message 1 = %q with id %q, want %q with id %q",
			msg.Data, msg.Header.Get(jetstream.MsgIDHeader), "delivered", "exchange-1")
	}
}

// TestEmbeddedStoreSyncsEveryWrite: a message the embedded bus
// acknowledged is on disk. Both the center's bus and every node's own
// store (the agent opens its store with Open) run with sync_always, which
// each single-replica file stream inherits: its write is fsynced before
// the publish is acknowledged. nats-server's default is to sync every two
// minutes, so a power cut could lose what was acknowledged.
func TestEmbeddedStoreSyncsEveryWrite(t *testing.T) {
	b := openBus(t, Config{StoreDir: filepath.Join(t.TempDir(), "nats")})
	defer b.Close()
	if cfg := b.srv.JetStreamConfig(); cfg == nil || !cfg.SyncAlways {
		t.Fatalf("embedded JetStream config %+v: want SyncAlways", cfg)
	}
}

func TestCheckFailsAfterClose(t *testing.T) {
	b := openBus(t, Config{StoreDir: t.TempDir()})
	if err := b.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	if err := b.Check(ctx); err == nil {
		t.Fatal("Check after Close = nil, want an error")
	}
}

func TestEmbeddedBusListensForClientsWhenAsked(t *testing.T) {
	b := openBus(t, Config{StoreDir: t.TempDir(), Listen: "127.0.0.1:0"})
	defer b.Close()
	url := b.ClientURL()
	if !strings.HasPrefix(url, "nats://127.0.0.1:") || strings.HasSuffix(url, ":0") {
		t.Fatalf("ClientURL() = %q, want nats://127.0.0.1:<port>", url)
	}
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatalf("connect a TCP client to %s: %v", url, err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.AccountInfo(t.Context()); err != nil {
		t.Fatalf("JetStream over TCP: %v", err)
	}
}

func TestEmbeddedBusWithUnusableStoreFailsFast(t *testing.T) {
	file := filepath.Join(t.TempDir(), "not-a-folder")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err := Open(t.Context(), Config{StoreDir: filepath.Join(file, "nats")}, testLogger(t))
	if err == nil {
		t.Fatal("Open with a file as store parent = nil error")
	}
	if elapsed := time.Since(start); elapsed > 5*time.Second {
		t.Errorf("Open took %s to fail, want a quick error", elapsed)
	}
	t.Logf("error: %v", err)
	if !strings.Contains(err.Error(), "store folder is writable") {
		t.Errorf("error %q does not say what to check", err)
	}
}

func TestUnreachableExternalBusFailsFastWithAdviceAndNoSecrets(t *testing.T) {
	var logs syncBuffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	start := time.Now()
	_, err := Open(t.Context(), Config{URL: "nats://alice:s3cret@127.0.0.1:1"}, log)
	if err == nil {
		t.Fatal("Open of nats://127.0.0.1:1 = nil error")
	}
	if elapsed := time.Since(start); elapsed > 5*time.Second {
		t.Errorf("Open took %s to fail, want a quick error", elapsed)
	}
	msg := err.Error()
	t.Logf("error: %v", err)
	for _, want := range []string{"nats://alice:xxxxx@127.0.0.1:1", "is the server running", "-js"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not contain %q", msg, want)
		}
	}
	if strings.Contains(msg, "s3cret") || strings.Contains(logs.String(), "s3cret") {
		t.Errorf("password leaked: error %q, logs %q", msg, logs.String())
	}
}

func TestExternalBusWithoutJetStreamIsRefusedWithAdvice(t *testing.T) {
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, NoSigs: true, NoLog: true})
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	defer func() { srv.Shutdown(); srv.WaitForShutdown() }()
	if !srv.ReadyForConnections(5 * time.Second) {
		t.Fatal("plain NATS server not ready")
	}
	_, err = Open(t.Context(), Config{URL: srv.ClientURL()}, testLogger(t))
	if err == nil {
		t.Fatal("Open of a server without JetStream = nil error")
	}
	t.Logf("error: %v", err)
	if !strings.Contains(err.Error(), "nats-server -js") {
		t.Errorf("error %q does not say to enable JetStream", err)
	}
}

func TestRedactURLsHidesCredentials(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{"nats://127.0.0.1:4222", "nats://127.0.0.1:4222"},
		{"127.0.0.1:4222", "nats://127.0.0.1:4222"},
		{"nats://alice:s3cret@a:4222", "nats://alice:xxxxx@a:4222"},
		{"nats://t0ken@a:4222", "nats://xxxxx@a:4222"},
		{"nats://a:4222, tls://bob:pw@b:4222", "nats://a:4222,tls://bob:xxxxx@b:4222"},
	}
	for _, tt := range tests {
		got, err := redactURLs(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("redactURLs(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
	if _, err := redactURLs("nats://bob:%zz@host:4222"); err == nil || strings.Contains(err.Error(), "%zz") {
		t.Errorf("redactURLs of a bad URL: err = %v, want an error without the URL", err)
	}
}

// TestExternalBus runs against a real NATS server with JetStream, named by
// GOVSHARE_TEST_NATS. Once named, the server must be there: a silent skip
// would hide a broken test setup.
func TestExternalBus(t *testing.T) {
	url := os.Getenv("GOVSHARE_TEST_NATS")
	if url == "" {
		t.Skip("set GOVSHARE_TEST_NATS=nats://… to run against an external NATS server with JetStream")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	b, err := Open(ctx, Config{URL: url, Name: "govshare-test"}, testLogger(t))
	if err != nil {
		t.Fatalf("Open external bus: %v", err)
	}
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	if b.Embedded() {
		t.Error("Embedded() = true for an external URL")
	}
	if b.ClientURL() == "" {
		t.Error("ClientURL() is empty for an external bus")
	}
	if err := b.Check(ctx); err != nil {
		t.Fatalf("Check: %v", err)
	}

	name := "GOVSHARE_TEST_" + rand.Text()
	subject := "govshare.test." + strings.ToLower(name)
	js := b.JetStream()
	stream, err := js.CreateStream(ctx, jetstream.StreamConfig{
		Name:     name,
		Subjects: []string{subject},
		Storage:  jetstream.MemoryStorage,
	})
	if err != nil {
		t.Fatalf("create stream %s: %v", name, err)
	}
	t.Cleanup(func() { // runs before Close
		if err := js.DeleteStream(context.Background(), name); err != nil {
			t.Errorf("delete stream %s: %v", name, err)
		}
	})

	if _, err := js.Publish(ctx, subject, []byte("hello")); err != nil {
		t.Fatalf("publish: %v", err)
	}
	cons, err := stream.CreateConsumer(ctx, jetstream.ConsumerConfig{AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		t.Fatalf("create consumer: %v", err)
	}
	msg, err := cons.Next(jetstream.FetchMaxWait(5 * time.Second))
	if err != nil {
		t.Fatalf("consume: %v", err)
	}
	if string(msg.Data()) != "hello" {
		t.Errorf("consumed %q, want %q", msg.Data(), "hello")
	}
	if err := msg.DoubleAck(ctx); err != nil {
		t.Errorf("ack: %v", err)
	}
}

// syncBuffer collects log output written from the nats goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
