// Package client signs requests to the govshare API as a department's app
// (接入应用), so a department's developer needs no guesswork: the same code
// builds the canonical string here and checks it on the server.
//
// The canonical string is five lines and the body's hash:
//
//	METHOD
//	/path
//	sorted&query=string
//	unix-seconds
//	nonce
//	hex(SHA-256(body))
//
// signed with HMAC-SHA256 or HMAC-SM3 under the app secret, base64-encoded,
// and sent with the headers below.
package client

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"time"

	"github.com/emmansun/gmsm/sm3"
)

// Header names of a signed request.
const (
	HeaderAppKey    = "X-App-Key"
	HeaderTimestamp = "X-Timestamp"
	HeaderNonce     = "X-Nonce"
	HeaderSignature = "X-Signature"
	HeaderMethod    = "X-Sign-Method"
	HeaderPurpose   = "X-Purpose"
)

// Signature methods.
const (
	HMACSHA256 = "HMAC-SHA256"
	HMACSM3    = "HMAC-SM3"
)

// CanonicalQuery sorts query parameters by name, then value, and encodes
// them the way url.Values does.
func CanonicalQuery(q url.Values) string {
	return string(appendCanonicalQuery(nil, q))
}

func appendCanonicalQuery(b []byte, q url.Values) []byte {
	if len(q) == 1 { // the usual case: no sorting, no copies
		for k, vs := range q {
			if len(vs) == 1 {
				return appendQueryParam(b, k, vs[0])
			}
		}
	}
	keys := make([]string, 0, len(q))
	for k := range q {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	first := true
	for _, k := range keys {
		vs := q[k]
		if len(vs) > 1 {
			vs = append([]string(nil), vs...)
			sort.Strings(vs)
		}
		for _, v := range vs {
			if !first {
				b = append(b, '&')
			}
			first = false
			b = appendQueryParam(b, k, v)
		}
	}
	return b
}

func appendQueryParam(b []byte, k, v string) []byte {
	b = appendQueryEscape(b, k)
	b = append(b, '=')
	return appendQueryEscape(b, v)
}

// appendQueryEscape appends url.QueryEscape(s), without its allocation
// when s has nothing to escape.
func appendQueryEscape(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.' || c == '~') {
			return append(b, url.QueryEscape(s)...)
		}
	}
	return append(b, s...)
}

// emptyBodyHash is hex(SHA-256("")), the last line of a request without
// a body.
const emptyBodyHash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

// Canonical is the string a request's signature covers.
func Canonical(method, path string, query url.Values, timestamp, nonce string, body []byte) string {
	return string(AppendCanonical(nil, method, path, query, timestamp, nonce, body))
}

// AppendCanonical appends the canonical string of a request to b.
func AppendCanonical(b []byte, method, path string, query url.Values, timestamp, nonce string, body []byte) []byte {
	for i := 0; i < len(method); i++ {
		c := method[i]
		if 'a' <= c && c <= 'z' {
			c -= 'a' - 'A'
		}
		b = append(b, c)
	}
	b = append(b, '\n')
	b = append(b, path...)
	b = append(b, '\n')
	b = appendCanonicalQuery(b, query)
	b = append(b, '\n')
	b = append(b, timestamp...)
	b = append(b, '\n')
	b = append(b, nonce...)
	b = append(b, '\n')
	if len(body) == 0 {
		return append(b, emptyBodyHash...)
	}
	sum := sha256.Sum256(body)
	return hex.AppendEncode(b, sum[:])
}

// Sign returns the base64 signature of canonical under secret.
func Sign(signMethod, secret, canonical string) (string, error) {
	sig, err := AppendSignature(nil, signMethod, []byte(secret), []byte(canonical))
	return string(sig), err
}

// AppendSignature appends the base64 signature of canonical under secret
// to b.
func AppendSignature(b []byte, signMethod string, secret, canonical []byte) ([]byte, error) {
	var h func() hash.Hash
	switch signMethod {
	case HMACSHA256, "":
		h = sha256.New
	case HMACSM3:
		h = sm3.New
	default:
		return b, fmt.Errorf("unknown signature method %q (use %s or %s)", signMethod, HMACSHA256, HMACSM3)
	}
	m := hmac.New(h, secret)
	m.Write(canonical)
	var sum [sha256.Size]byte // SM3's size too
	return base64.StdEncoding.AppendEncode(b, m.Sum(sum[:0])), nil
}

// App is a department's app credentials.
type App struct {
	Key, Secret string
	Method      string // HMACSHA256 (default) or HMACSM3
}

// SignRequest adds the signature headers and the purpose to req, reading
// and restoring its body.
func (a App) SignRequest(req *http.Request, purpose string) error {
	var body []byte
	if req.Body != nil {
		var err error
		if body, err = io.ReadAll(req.Body); err != nil {
			return err
		}
		req.Body.Close()
		req.Body = io.NopCloser(bytes.NewReader(body))
	}
	var n [12]byte
	if _, err := rand.Read(n[:]); err != nil {
		return err
	}
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	nonce := hex.EncodeToString(n[:])
	method := a.Method
	if method == "" {
		method = HMACSHA256
	}
	var buf [512]byte
	c := AppendCanonical(buf[:0], req.Method, req.URL.EscapedPath(), req.URL.Query(), ts, nonce, body)
	sig, err := AppendSignature(nil, method, []byte(a.Secret), c)
	if err != nil {
		return err
	}
	req.Header.Set(HeaderAppKey, a.Key)
	req.Header.Set(HeaderTimestamp, ts)
	req.Header.Set(HeaderNonce, nonce)
	req.Header.Set(HeaderMethod, method)
	req.Header.Set(HeaderSignature, string(sig))
	req.Header.Set(HeaderPurpose, purpose)
	return nil
}
