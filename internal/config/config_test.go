package config

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestPrecedenceDefaultsFileEnvFlags(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "govshare.toml")
	os.WriteFile(file, []byte("addr = \"0.0.0.0:7000\"\ndata = \"/srv/govshare\"\naudit_hash = \"sha256\"\n"), 0o600)
	env := map[string]string{"GOVSHARE_CONFIG": file, "GOVSHARE_DATA": "/env/data"}
	l, _, err := Load("serve", []string{"--addr", "127.0.0.1:1"}, func(k string) string { return env[k] }, io.Discard, nil)
	if err != nil {
		t.Fatal(err)
	}
	if l.Addr != "127.0.0.1:1" || l.Sources["addr"] != "flag" {
		t.Errorf("flag should win: %s (%s)", l.Addr, l.Sources["addr"])
	}
	if l.Data != "/env/data" || l.Sources["data"] != "env" {
		t.Errorf("env should beat file: %s", l.Data)
	}
	if l.AuditHash != "sha256" || l.Sources["audit_hash"] != "file" {
		t.Errorf("file should beat default: %s", l.AuditHash)
	}
	if l.DatabaseDSN() != "/env/data/govshare.db" {
		t.Errorf("default database: %s", l.DatabaseDSN())
	}
}

func TestBadConfigIsRefusedWithTheKey(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "bad.toml")
	os.WriteFile(file, []byte("adress = \"x\"\n"), 0o600)
	_, _, err := Load("serve", []string{"--config", file}, func(string) string { return "" }, io.Discard, nil)
	if err == nil || !strings.Contains(err.Error(), "adress") {
		t.Fatalf("unknown key: %v", err)
	}
	for _, args := range [][]string{{"--audit-hash", "md5"}, {"--audit-retention", "30d"}, {"--nats", "http://x"}, {"--tls-cert", "a.pem"}, {"--network-zone", "dmz"}, {"--catalog-code-width", "x"}, {"--change-deadline-days", "0"}} {
		if _, _, err := Load("serve", args, func(string) string { return "" }, io.Discard, nil); err == nil {
			t.Errorf("%v accepted", args)
		}
	}
}

func TestRetention(t *testing.T) {
	for in, want := range map[string]time.Duration{"5y": 5 * 365 * 24 * time.Hour, "6m": 180 * 24 * time.Hour, "400d": 400 * 24 * time.Hour, "9000h": 9000 * time.Hour} {
		got, err := ParseRetention(in)
		if err != nil || got != want {
			t.Errorf("%s: %v %v", in, got, err)
		}
	}
}

func TestPrintHidesPasswords(t *testing.T) {
	l, _, err := Load("serve", []string{"--db", "postgres://gov:s3cret@db:5432/gov"}, func(string) string { return "" }, io.Discard, nil)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	l.Print(&b)
	if strings.Contains(b.String(), "s3cret") {
		t.Fatal("password printed")
	}
}
