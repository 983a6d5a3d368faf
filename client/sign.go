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
	"strings"
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
	return strings.Join(parts, "&")
}

// Canonical is the string a request's signature covers.
func Canonical(method, path string, query url.Values, timestamp, nonce string, body []byte) string {
	sum := sha256.Sum256(body)
	return strings.Join([]string{strings.ToUpper(method), path, CanonicalQuery(query), timestamp, nonce, hex.EncodeToString(sum[:])}, "\n")
}

// Sign returns the base64 signature of canonical under secret.
func Sign(signMethod, secret, canonical string) (string, error) {
	var h func() hash.Hash
	switch signMethod {
	case HMACSHA256, "":
		h = sha256.New
	case HMACSM3:
		h = sm3.New
	default:
		return "", fmt.Errorf("unknown signature method %q (use %s or %s)", signMethod, HMACSHA256, HMACSM3)
	}
	m := hmac.New(h, []byte(secret))
	m.Write([]byte(canonical))
	return base64.StdEncoding.EncodeToString(m.Sum(nil)), nil
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
	sig, err := Sign(method, a.Secret, Canonical(req.Method, req.URL.EscapedPath(), req.URL.Query(), ts, nonce, body))
	if err != nil {
		return err
	}
	req.Header.Set(HeaderAppKey, a.Key)
	req.Header.Set(HeaderTimestamp, ts)
	req.Header.Set(HeaderNonce, nonce)
	req.Header.Set(HeaderMethod, method)
	req.Header.Set(HeaderSignature, sig)
	req.Header.Set(HeaderPurpose, purpose)
	return nil
}
