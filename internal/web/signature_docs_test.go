package web_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"html"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emmansun/gmsm/sm3"

	"govshare/internal/apperr"
	"govshare/internal/policy"
	"govshare/internal/share"
	"govshare/internal/storetest"
)

// TestDocsSignatureExampleVerifies reads the worked example off the API
// reference page, recomputes it with nothing but the standard library and
// SM3, and has the server accept it; a changed byte in the body, the path
// or the query is refused.
func TestDocsSignatureExampleVerifies(t *testing.T) {
	e := newEnv(t, storetest.OpenSQLite(t), nil)
	resp, err := http.Get(e.srv.URL + "/api/docs")
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := regexp.MustCompile(`(?s)<pre class="code">(secret.*?)</pre>`).FindStringSubmatch(string(raw))
	if m == nil {
		t.Fatal("no worked example on /api/docs")
	}
	doc := html.UnescapeString(m[1])
	field := func(re string) string {
		t.Helper()
		m := regexp.MustCompile(re).FindStringSubmatch(doc)
		if m == nil {
			t.Fatalf("the example lacks %s:\n%s", re, doc)
		}
		return strings.TrimSpace(m[1])
	}
	secret := field(`secret\s*=\s*(\S+)`)
	reqLine := field(`\n(POST \S+)\n`)
	ts, nonce := field(`X-Timestamp:\s*(\S+)`), field(`X-Nonce:\s*(\S+)`)
	body := field(`body\s*=\s*(.+)\n`)
	canonical := field(`(?s)hex SHA-256 of the body\):\n(.+?)\n\n`)
	sigSHA, sigSM3 := field(`HMAC-SHA256\s+X-Signature:\s*(\S+)`), field(`HMAC-SM3\s+X-Signature:\s*(\S+)`)
	u, err := url.Parse(strings.TrimPrefix(reqLine, "POST "))
	if err != nil {
		t.Fatal(err)
	}

	// The canonical string, rebuilt by hand: METHOD, path, query sorted by
	// key, timestamp, nonce, hex SHA-256 of the body.
	sum := sha256.Sum256([]byte(body))
	keys := strings.Split(u.RawQuery, "&")
	for i := range keys {
		for j := i + 1; j < len(keys); j++ {
			if keys[j] < keys[i] {
				keys[i], keys[j] = keys[j], keys[i]
			}
		}
	}
	want := strings.Join([]string{"POST", u.Path, strings.Join(keys, "&"), ts, nonce, hex.EncodeToString(sum[:])}, "\n")
	if canonical != want {
		t.Fatalf("canonical string on the page:\n%s\nrebuilt:\n%s", canonical, want)
	}
	for name, h := range map[string]func() []byte{
		sigSHA: func() []byte { m := hmac.New(sha256.New, []byte(secret)); m.Write([]byte(want)); return m.Sum(nil) },
		sigSM3: func() []byte { m := hmac.New(sm3.New, []byte(secret)); m.Write([]byte(want)); return m.Sum(nil) },
	} {
		if got := base64.StdEncoding.EncodeToString(h()); got != name {
			t.Fatalf("signature on the page %s, recomputed %s", name, got)
		}
	}

	// The server accepts the example for an app holding that secret, at
	// the example's time.
	ctx := context.Background()
	apps := share.NewApps(e.db, e.log, e.keys)
	sec, _ := strconv.ParseInt(ts, 10, 64)
	apps.SetClock(func() time.Time { return time.Unix(sec, 0) })
	admin := e.users[policy.DeptAdmin].Actor()
	signed := func(method, sig string) share.Signed {
		return share.Signed{Method: "POST", Path: u.Path, Query: u.Query(), Body: []byte(body), ClientAddr: "10.0.0.1", Timestamp: ts,
			Nonce: nonce, Signature: sig, SignMethod: method, Purpose: "身份核验"}
	}
	for method, sig := range map[string]string{"HMAC-SHA256": sigSHA, "HMAC-SM3": sigSM3} {
		app, _, err := apps.Register(ctx, admin, share.AppInput{Name: "示例" + method, Purpose: "示例", Contact: "张三"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.db.Exec(ctx, "UPDATE apps SET secret = ? WHERE id = ?", e.keys.Sealer("app").Seal([]byte(secret)), app.ID); err != nil {
			t.Fatal(err)
		}
		bad := []func(*share.Signed){
			func(r *share.Signed) { r.Body = append([]byte(nil), r.Body...); r.Body[len(r.Body)-2] ^= 1 },
			func(r *share.Signed) { r.Path = strings.Replace(r.Path, "000001", "000002", 1) },
			func(r *share.Signed) { r.Query = url.Values{"a": {"1"}, "b": {"3"}, "dry_run": {"1"}} },
		}
		for i, change := range bad {
			r := signed(method, sig)
			r.AppKey = app.Key
			change(&r)
			if _, err := apps.Verify(ctx, r); !isCode(err, "share.signature_invalid") {
				t.Fatalf("%s change %d accepted: %v", method, i, err)
			}
		}
		r := signed(method, sig)
		r.AppKey = app.Key
		if _, err := apps.Verify(ctx, r); err != nil {
			t.Fatalf("%s: the documented example is refused: %v", method, err)
		}
		if _, err := apps.Verify(ctx, r); !isCode(err, "share.nonce_reused") {
			t.Fatalf("%s: replay accepted: %v", method, err)
		}
		apps.SetClock(func() time.Time { return time.Unix(sec, 0).Add(6 * time.Minute) })
		r.Nonce = "another-nonce"
		if _, err := apps.Verify(ctx, r); !isCode(err, "share.timestamp_skew") {
			t.Fatalf("%s: old timestamp accepted: %v", method, err)
		}
		apps.SetClock(func() time.Time { return time.Unix(sec, 0) })
	}
}

func isCode(err error, code string) bool {
	ae, ok := apperr.As(err)
	return ok && ae.Code == code
}
