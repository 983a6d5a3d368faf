// Package audit is the platform's tamper-evident audit log (审计日志).
//
// Every login, administrative change and access to shared data becomes an
// Event. Events form a hash chain: each stores the previous event's hash and
// the hash of its own canonical content (SM3 by default, SHA-256 selectable).
// The newest seq and hash are sealed with a key only the server holds, so
// rewriting the tail is caught too. No code path updates or deletes an event;
// retention removes only whole expired prefixes and leaves a sealed
// checkpoint the rest of the chain verifies from.
//
// Appends are batched: concurrent callers share one transaction and one
// durable commit, and each caller returns only once its event is on disk.
package audit

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash"
	"strconv"
	"strings"
	"time"

	"github.com/emmansun/gmsm/sm3"

	"govshare/internal/jsontext"
	"govshare/internal/policy"
)

// Results of an audited action.
const (
	ResultOK     = "ok"
	ResultDenied = "denied"
	ResultError  = "error"
)

// Actor kinds.
const (
	ActorUser   = "user"
	ActorApp    = "app"
	ActorNode   = "node"
	ActorSystem = "system"
	ActorAnon   = "anonymous"
)

// Hash algorithms for the chain.
const (
	SM3    = "sm3"
	SHA256 = "sha256"
)

// Event is one audit record.
type Event struct {
	Seq        int64     `json:"seq"`
	Time       time.Time `json:"time"`
	ActorType  string    `json:"actor_type"`
	ActorID    string    `json:"actor_id"`
	ActorName  string    `json:"actor_name"`
	DeptID     int64     `json:"dept_id,omitempty"` // 0: none
	Action     string    `json:"action"`
	ObjectType string    `json:"object_type"`
	ObjectID   string    `json:"object_id"`
	Result     string    `json:"result"`
	ClientAddr string    `json:"client_addr"`
	RequestID  string    `json:"request_id"`
	Purpose    string    `json:"purpose"`
	Details    string    `json:"details"` // canonical JSON object, or ""
	PrevHash   string    `json:"prev_hash"`
	Hash       string    `json:"hash"`
}

// Details turns a map into the canonical JSON an Event stores (keys sorted).
func Details(m map[string]any) string {
	if len(m) == 0 {
		return ""
	}
	if b, ok := jsontext.AppendObject(make([]byte, 0, 128), m); ok {
		return string(b)
	}
	b, err := json.Marshal(m)
	if err != nil {
		return fmt.Sprintf(`{"error":%q}`, err.Error())
	}
	return string(b)
}

// canonical is the byte string an event's hash covers: every field but the
// hashes themselves, in a fixed order, as a JSON array.
func canonical(e *Event) []byte {
	b := make([]byte, 0, 256+len(e.Details)+len(e.Purpose))
	b = append(b, '[')
	b = strconv.AppendInt(b, e.Seq, 10)
	return appendCanonicalTail(b, e)
}

// appendCanonicalTail appends what follows the seq in e's canonical form:
// all of it but the seq is known before the event is chained, so Append
// writes it in the caller's goroutine and the log's writer only hashes.
func appendCanonicalTail(b []byte, e *Event) []byte {
	b = append(b, ',')
	b = append(e.Time.UTC().AppendFormat(append(b, '"'), timeLayout), '"') // digits and -:.TZ: nothing to escape
	for _, s := range [...]string{e.ActorType, e.ActorID, e.ActorName} {
		b = append(b, ',')
		b = jsontext.AppendString(b, s)
	}
	b = append(b, ',')
	b = strconv.AppendInt(b, e.DeptID, 10)
	for _, s := range [...]string{e.Action, e.ObjectType, e.ObjectID, e.Result, e.ClientAddr, e.RequestID, e.Purpose, e.Details} {
		b = append(b, ',')
		b = jsontext.AppendString(b, s)
	}
	return append(b, ']')
}

const timeLayout = "2006-01-02T15:04:05.000000Z"

func newHash(alg string) (hash.Hash, error) {
	switch alg {
	case SM3:
		return sm3.New(), nil
	case SHA256:
		return sha256.New(), nil
	}
	return nil, fmt.Errorf("unknown audit hash algorithm %q (use sm3 or sha256)", alg)
}

// chainHash computes "alg:hex" over the previous hash and the event.
func chainHash(alg string, prev string, e *Event) (string, error) {
	h, err := newHash(alg)
	if err != nil {
		return "", err
	}
	return chainHashTail(h, alg, prev, e.Seq, appendCanonicalTail(nil, e)), nil
}

// chainHashTail is chainHash of the event numbered seq whose canonical
// form after the seq is tail, computed with h (a hash of alg, reset here).
func chainHashTail(h hash.Hash, alg, prev string, seq int64, tail []byte) string {
	h.Reset()
	var buf [128]byte
	b := append(buf[:0], prev...)
	b = append(b, '\n', '[')
	h.Write(strconv.AppendInt(b, seq, 10))
	h.Write(tail)
	b = append(append(buf[:0], alg...), ':')
	var sum [32]byte // SM3's and SHA-256's size
	return string(hex.AppendEncode(b, h.Sum(sum[:0])))
}

// hashAlgorithm reads the algorithm prefix of a stored hash.
func hashAlgorithm(stored string) string {
	alg, _, _ := strings.Cut(stored, ":")
	return alg
}

// sealer MACs chain heads and checkpoints with the server's audit key.
type sealer struct {
	alg string
	key []byte
}

func (s sealer) mac(parts ...string) string {
	var m hash.Hash
	if s.alg == SHA256 {
		m = hmac.New(sha256.New, s.key)
	} else {
		m = hmac.New(sm3.New, s.key)
	}
	for _, p := range parts {
		m.Write([]byte(p))
		m.Write([]byte{0})
	}
	return s.alg + ":" + hex.EncodeToString(m.Sum(nil))
}

func (s sealer) check(stored string, parts ...string) bool {
	alg := hashAlgorithm(stored)
	if alg != SM3 && alg != SHA256 {
		return false
	}
	return hmac.Equal([]byte(sealer{alg: alg, key: s.key}.mac(parts...)), []byte(stored))
}

func headParts(seq int64, hash string) []string {
	return []string{"head", strconv.FormatInt(seq, 10), hash}
}

func checkpointParts(seq int64, hash string, cutoff time.Time, removed int64) []string {
	return []string{"checkpoint", strconv.FormatInt(seq, 10), hash, cutoff.UTC().Format(timeLayout), strconv.FormatInt(removed, 10)}
}

// Request carries what the HTTP layer knows about the caller, so events
// written deep in a service still name the client address and request id.
type Request struct {
	ClientAddr string
	RequestID  string
	Purpose    string
}

type requestKey struct{}

// WithRequest attaches request metadata to ctx.
func WithRequest(ctx context.Context, r Request) context.Context {
	return context.WithValue(ctx, requestKey{}, r)
}

// RequestFrom returns the request metadata in ctx, if any.
func RequestFrom(ctx context.Context) Request {
	r, _ := ctx.Value(requestKey{}).(Request)
	return r
}

// By builds an event for an action by actor: a user, a department's app,
// or the system (command line, demo) when there is no user.
func By(actor policy.Actor, action, objType, objID, result string, details map[string]any) Event {
	e := Event{ActorType: ActorUser, ActorID: strconv.FormatInt(actor.UserID, 10), ActorName: actor.Login, DeptID: actor.DeptID,
		Action: action, ObjectType: objType, ObjectID: objID, Result: result, Details: Details(details)}
	switch {
	case strings.HasPrefix(actor.App, "node:"):
		// An exchange node acting for its department (policy.NodeClient).
		e.ActorType, e.ActorID = ActorNode, strings.TrimPrefix(actor.App, "node:")
	case actor.App != "":
		e.ActorType, e.ActorID = ActorApp, actor.App
	case actor.UserID == 0:
		e.ActorType, e.ActorID = ActorSystem, ""
		if e.ActorName == "" {
			e.ActorName = "system"
		}
	}
	return e
}
