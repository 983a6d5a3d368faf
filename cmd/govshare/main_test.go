package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"govshare/client"
	"govshare/internal/catalog"
	"govshare/internal/identity"
	"govshare/internal/store"
	"govshare/internal/storetest"
)

// backendArgs gives the flags that select each test database.
func backendArgs(t *testing.T) map[string][]string {
	out := map[string][]string{"sqlite": {"--data", t.TempDir()}}
	if dsn, err := storetestDSN(t); dsn != "" {
		if err != nil {
			t.Fatal(err)
		}
		out["postgres"] = []string{"--data", t.TempDir(), "--db", dsn}
	}
	return out
}

func storetestDSN(t *testing.T) (string, error) {
	for _, b := range storetest.Backends() {
		if b.Name == "postgres" {
			return storetest.PostgresDSN(t)
		}
	}
	return "", nil
}

func cli(t *testing.T, stdin string, args ...string) (string, string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	err := run(context.Background(), args, strings.NewReader(stdin), &out, &errb)
	return out.String(), errb.String(), err
}

func TestAdminCreateAndAuditVerifyCatchTampering(t *testing.T) {
	for name, flags := range backendArgs(t) {
		t.Run(name, func(t *testing.T) {
			if _, _, err := cli(t, "", append([]string{"migrate"}, flags...)...); err != nil {
				t.Fatal(err)
			}
			code := identity.SyntheticCreditCode("350100", 1)
			args := append([]string{"admin", "create", "--login", "root", "--role", "platform_admin", "--dept-code", code,
				"--dept-name", "市政务信息办", "--region", "350100"}, flags...)
			if _, _, err := cli(t, "weak\n", args...); err == nil || !strings.Contains(err.Error(), "密码") {
				t.Fatalf("weak password accepted: %v", err)
			}
			out, _, err := cli(t, "Strong#Pass1\n", args...)
			if err != nil || !strings.Contains(out, "created root") {
				t.Fatalf("admin create: %v %s", err, out)
			}
			if _, _, err := cli(t, "Strong#Pass1\n", append([]string{"admin", "create", "--login", "root2", "--role", "consumer", "--dept-code", code}, flags...)...); err == nil {
				t.Fatal("admin create made a non-administrator")
			}
			out, _, err = cli(t, "", append([]string{"audit", "verify"}, flags...)...)
			if err != nil || !strings.Contains(out, "audit chain OK: 2 events") {
				t.Fatalf("verify clean log: %v %q", err, out)
			}
			// Tamper with the database directly.
			dsn := flagValue(flags, "--db")
			if dsn == "" {
				dsn = flagValue(flags, "--data") + "/govshare.db"
			}
			db, err := store.Open(context.Background(), dsn)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			if _, err := db.Exec(context.Background(), "UPDATE audit_events SET actor_name = 'intruder' WHERE seq = 2"); err != nil {
				t.Fatal(err)
			}
			out, _, err = cli(t, "", append([]string{"audit", "verify"}, flags...)...)
			var ex exitError
			if !errors.As(err, &ex) || ex != 1 || !strings.Contains(out, "event 2") {
				t.Fatalf("tampered log: err %v out %q", err, out)
			}
		})
	}
}

func flagValue(flags []string, name string) string {
	for i := 0; i+1 < len(flags); i++ {
		if flags[i] == name {
			return flags[i+1]
		}
	}
	return ""
}

func TestPrintConfigShowsSources(t *testing.T) {
	t.Setenv("GOVSHARE_ADDR", "127.0.0.1:9999")
	out, _, err := cli(t, "", "serve", "--print-config", "--audit-hash", "sha256")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`addr = "127.0.0.1:9999"`, "# env, GOVSHARE_ADDR", `audit_hash = "sha256"`, "# flag, GOVSHARE_AUDIT_HASH", `data = "./data"`, "# default"} {
		if !strings.Contains(out, want) {
			t.Errorf("print-config lacks %q:\n%s", want, out)
		}
	}
	if _, _, err := cli(t, "", "serve", "--print-config", "--audit-retention", "3m"); err == nil || !strings.Contains(err.Error(), "6 months") {
		t.Fatalf("short retention accepted: %v", err)
	}
}

func TestUnknownCommandSaysWhatToDo(t *testing.T) {
	_, errOut, err := cli(t, "", "frobnicate")
	if err == nil || !strings.Contains(errOut, "govshare serve") {
		t.Fatalf("unknown command: %v %q", err, errOut)
	}
}

func TestAuditVerifyNeedsTheDeploymentKey(t *testing.T) {
	dir := t.TempDir()
	if _, _, err := cli(t, "", "migrate", "--data", dir); err != nil {
		t.Fatal(err)
	}
	_, _, err := cli(t, "", "audit", "verify", "--data", dir)
	if err == nil || !strings.Contains(err.Error(), "secret-key-file") {
		t.Fatalf("verify without a key: %v", err)
	}
}

func TestCatalogImportCommandIsAllOrNothing(t *testing.T) {
	dir := t.TempDir()
	code := identity.SyntheticCreditCode("350100", 5)
	if _, _, err := cli(t, "Strong#Pass1\n", "admin", "create", "--data", dir, "--login", "root", "--role", "platform_admin",
		"--dept-code", code, "--dept-name", "市公安局", "--region", "350100"); err != nil {
		t.Fatal(err)
	}
	tpl := dir + "/t.xlsx"
	if _, _, err := cli(t, "", "catalog", "template", tpl); err != nil {
		t.Fatal(err)
	}
	// An empty template imports nothing but is not an error of the file.
	if _, _, err := cli(t, "", "catalog", "import", tpl, "--data", dir); err == nil || !strings.Contains(err.Error(), "--dept") {
		t.Fatalf("import without --dept: %v", err)
	}
	if _, _, err := cli(t, "", "catalog", "import", dir+"/missing.xlsx", "--data", dir, "--dept", code); err == nil {
		t.Fatal("missing file imported")
	}
	entry := func(name, cycle string) catalog.Content {
		return catalog.Content{Name: name, ClassCode: "101", Abstract: "测试用信息资源。", FormatClass: "database", FormatType: "mysql",
			Items:     []catalog.DataItem{{Name: "证件号码", MachineName: "id_no", DataType: "C", Length: 18, Key: true}},
			ShareType: catalog.ShareUnconditional, ShareMethods: []catalog.ShareMethod{catalog.MethodAPI}, OpenType: catalog.OpenClosed, UpdateCycle: cycle}
	}
	write := func(name string, cs ...catalog.Content) string {
		var buf bytes.Buffer
		err := catalog.WriteXLSX(&buf, func(yield func(catalog.Content, error) bool) {
			for _, c := range cs {
				if !yield(c, nil) {
					return
				}
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		p := dir + "/" + name
		os.WriteFile(p, buf.Bytes(), 0o644)
		return p
	}
	bad := write("bad.xlsx", entry("甲", "daily"), entry("乙", "hourly"))
	out, _, err := cli(t, "", "catalog", "import", bad, "--data", dir, "--dept", code)
	if err == nil || !strings.Contains(out, "信息资源!") {
		t.Fatalf("bad file: %v %s", err, out)
	}
	if _, err := os.Stat(dir + "/bad.errors.xlsx"); err != nil {
		t.Fatal("no error report written")
	}
	good := write("good.xlsx", entry("甲", "daily"), entry("乙", "weekly"))
	out, _, err = cli(t, "", "catalog", "import", good, "--data", dir, "--dept", code)
	if err != nil || !strings.Contains(out, "imported 2 entries") {
		t.Fatalf("good file: %v %s", err, out)
	}
	out, _, err = cli(t, "", "catalog", "export", dir+"/out.xlsx", "--data", dir, "--dept", code)
	if err != nil || !strings.Contains(out, "exported") {
		t.Fatalf("export: %v %s", err, out)
	}
}

func TestCallSignsAsTheApp(t *testing.T) {
	var got http.Header
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.Header.Clone()
		body, _ := io.ReadAll(r.Body)
		want, _ := client.Sign(client.HMACSM3, "s3cret", client.Canonical(r.Method, r.URL.EscapedPath(), r.URL.Query(),
			r.Header.Get(client.HeaderTimestamp), r.Header.Get(client.HeaderNonce), body))
		if r.Header.Get(client.HeaderSignature) != want {
			w.WriteHeader(401)
			return
		}
		w.Write([]byte(`{"ok":true}`))
	}))
	defer srv.Close()
	t.Setenv("GOVSHARE_APP_SECRET", "s3cret")
	out, _, err := cli(t, "", "call", "--url", srv.URL, "--app-key", "app_x", "--sign-method", "HMAC-SM3", "--purpose", "核验", "--data", `{"a":1}`, "POST", "/api/v1/x?b=2&a=1")
	if err != nil || !strings.Contains(out, `"ok":true`) || got.Get(client.HeaderPurpose) != "核验" {
		t.Fatalf("call: %v %q %v", err, out, got)
	}
	t.Setenv("GOVSHARE_APP_SECRET", "")
	if _, _, err := cli(t, "", "call", "--url", srv.URL, "--app-key", "app_x", "GET", "/x"); err == nil || !strings.Contains(err.Error(), "GOVSHARE_APP_SECRET") {
		t.Fatalf("no secret: %v", err)
	}
}
