package client

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"math/rand/v2"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"testing"

	"github.com/emmansun/gmsm/sm3"
)

// referenceCanonical is the canonical string as the package comment
// defines it, written plainly: the fast code must build the same bytes.
func referenceCanonical(method, path string, q url.Values, ts, nonce string, body []byte) string {
	keys := make([]string, 0, len(q))
	for k := range q {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		vs := append([]string(nil), q[k]...)
		sort.Strings(vs)
		for _, v := range vs {
			parts = append(parts, url.QueryEscape(k)+"="+url.QueryEscape(v))
		}
	}
	sum := sha256.Sum256(body)
	return strings.Join([]string{strings.ToUpper(method), path, strings.Join(parts, "&"), ts, nonce, hex.EncodeToString(sum[:])}, "\n")
}

func TestCanonicalIsAsDefined(t *testing.T) {
	alphabet := []string{"a", "Z", "9", "-", "_", ".", "~", " ", "&", "=", "+", "%", "/", ":", ",", "身", "份", "证", "\x00", "\xff"}
	word := func(r *rand.Rand) string {
		var b strings.Builder
		for range r.IntN(6) {
			b.WriteString(alphabet[r.IntN(len(alphabet))])
		}
		return b.String()
	}
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 5000 {
		q := url.Values{}
		for range r.IntN(4) {
			k := word(r)
			for range 1 + r.IntN(3) {
				q.Add(k, word(r))
			}
		}
		var body []byte
		if r.IntN(2) == 0 {
			body = []byte(word(r))
		}
		method := []string{"get", "GET", "Post", "DELETE"}[r.IntN(4)]
		path := "/api/v1/data/" + url.PathEscape(word(r))
		want := referenceCanonical(method, path, q, "1763700000", "abc", body)
		if got := Canonical(method, path, q, "1763700000", "abc", body); got != want {
			t.Fatalf("case %d: canonical\n%q\nwant\n%q", i, got, want)
		}
	}
}

func TestSignaturesAreHMACs(t *testing.T) {
	for _, m := range []struct {
		name string
		want func(secret, msg string) string
	}{
		{HMACSHA256, func(secret, msg string) string {
			h := hmac.New(sha256.New, []byte(secret))
			h.Write([]byte(msg))
			return base64.StdEncoding.EncodeToString(h.Sum(nil))
		}},
		{HMACSM3, func(secret, msg string) string {
			h := hmac.New(sm3.New, []byte(secret))
			h.Write([]byte(msg))
			return base64.StdEncoding.EncodeToString(h.Sum(nil))
		}},
	} {
		got, err := Sign(m.name, "s3cret", "GET\n/x\n\n1\nn\n"+emptyBodyHash)
		if err != nil || got != m.want("s3cret", "GET\n/x\n\n1\nn\n"+emptyBodyHash) {
			t.Fatalf("%s: %q %v", m.name, got, err)
		}
	}
	if _, err := Sign("HMAC-MD5", "s", "c"); err == nil {
		t.Fatal("an unknown method signed")
	}
}

func TestSignRequestSignsTheCanonicalString(t *testing.T) {
	req, _ := http.NewRequest(http.MethodGet, "http://127.0.0.1/api/v1/data/101%2F000001?filter=id_number:eq:1&fields=name,sex", nil)
	a := App{Key: "k", Secret: "s3cret", Method: HMACSM3}
	if err := a.SignRequest(req, "核验"); err != nil {
		t.Fatal(err)
	}
	h := req.Header
	c := referenceCanonical("GET", "/api/v1/data/101%2F000001", req.URL.Query(), h.Get(HeaderTimestamp), h.Get(HeaderNonce), nil)
	want, _ := Sign(HMACSM3, "s3cret", c)
	if h.Get(HeaderSignature) != want || h.Get(HeaderMethod) != HMACSM3 || h.Get(HeaderPurpose) != "核验" || h.Get(HeaderAppKey) != "k" {
		t.Fatalf("headers %v, want signature %s", h, want)
	}
}
