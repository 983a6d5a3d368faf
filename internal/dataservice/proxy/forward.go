package proxy

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"io"
	"net/http"
	"net/textproto"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"govshare/client"
	"govshare/internal/apperr"
	"govshare/internal/audit"
	"govshare/internal/catalog"
	"govshare/internal/policy"
	"govshare/internal/share"
)

// Headers the platform adds to every forwarded call, so the provider
// knows who is asking and why.
const (
	HeaderConsumerDept = "X-Govshare-Consumer-Dept" // the consumer department's unified social credit code
	HeaderApp          = "X-Govshare-App"           // the consumer's app key
	HeaderPurpose      = "X-Govshare-Purpose"       // the purpose the consumer stated (X-Purpose)
	HeaderRequestID    = "X-Request-Id"             // the platform's request id, also in the call log and the audit log
)

// Call results in the call log.
const (
	ResultOK     = "ok"     // forwarded and answered below 500
	ResultDenied = "denied" // refused by the platform: no grant, unknown operation …
	ResultError  = "error"  // failed: provider down, timeout, too large, provider 5xx, circuit open
)

// Call is one call of a consumer through the platform to a service, as
// the call log keeps it.
type Call struct {
	ID             int64     `json:"id"`
	ServiceID      int64     `json:"service_id"`
	Code           string    `json:"code" doc:"信息资源代码 / resource code"`
	At             time.Time `json:"at" doc:"调用时间 / when"`
	ProviderDeptID int64     `json:"provider_dept_id"`
	ConsumerDeptID int64     `json:"consumer_dept_id"`
	AppID          int64     `json:"app_id"`
	AppKey         string    `json:"app_key"`
	GrantID        int64     `json:"grant_id,omitempty"`
	RequestID      string    `json:"request_id"`
	Method         string    `json:"method"`
	Operation      string    `json:"operation,omitempty" doc:"匹配的操作，如 GET /persons/{id} / the operation matched"`
	Path           string    `json:"path" doc:"请求的路径(服务内) / the path asked for, below the service"`
	RequestBytes   int64     `json:"request_bytes"`
	ResponseBytes  int64     `json:"response_bytes"`
	Status         int       `json:"status" doc:"返回调用方的HTTP状态 / HTTP status the consumer got"`
	DurationMS     int64     `json:"duration_ms"`
	Result         string    `json:"result" doc:"ok / denied / error"`
	ErrorCode      string    `json:"error_code,omitempty" doc:"拒绝或失败的错误码 / code of the refusal or failure"`

	actor    policy.Actor
	permit   share.Permit
	target   *target
	path     string // escaped, whole
	purpose  string
	start    time.Time
	answered bool
}

// Permit is the grant that allows the call (zero until Open found one).
func (c *Call) Permit() share.Permit { return c.permit }

// Answered reports whether the consumer has been sent the answer's
// status line: after that an error can only cut the answer short.
func (c *Call) Answered() bool { return c.answered }

// Request is a consumer's call as the web layer hands it over, its
// signature checked.
type Request struct {
	App     share.App
	Actor   policy.Actor // the app acting for its department
	Code    string       // the resource code
	Method  string
	Path    string // below the service, as sent (escaped), starting with "/"
	Purpose string
	Bytes   int64 // the request body's size
}

// Open begins a call: the service the code names, the consumer
// department's grant to use it by interface, and the operation asked
// for. Whatever it answers, the call it returns is for Record.
func (p *Proxy) Open(ctx context.Context, r Request) (*Call, error) {
	path := r.Path
	if len(path) > 500 {
		path = path[:500]
	}
	c := &Call{At: p.now(), start: time.Now(), Code: r.Code, ConsumerDeptID: r.App.DeptID, AppID: r.App.ID, AppKey: r.App.Key,
		RequestID: audit.RequestFrom(ctx).RequestID, Method: r.Method, Path: path, RequestBytes: r.Bytes,
		actor: r.Actor, path: r.Path, purpose: r.Purpose}
	t, err := p.byCode(ctx, r.Code)
	if err != nil {
		return c, err
	}
	c.target, c.ServiceID, c.ProviderDeptID = t, t.svc.ID, t.svc.DeptID
	if t.svc.State != Active {
		return c, ErrDisabled
	}
	if err := policy.Check(r.Actor, policy.DataUse, policy.Target{DeptID: r.App.DeptID}); err != nil {
		return c, err
	}
	permit, err := p.grants.Permit(ctx, share.Use{DeptID: r.App.DeptID, AppID: r.App.ID, Resource: r.Code, Method: catalog.MethodAPI})
	if err != nil {
		return c, err
	}
	c.GrantID, c.permit = permit.GrantID, permit
	op, ok := match(t.routes, r.Method, r.Path)
	if !ok {
		return c, ErrOperationUnknown
	}
	c.Operation = op.String()
	return c, nil
}

// peekSize is how much of an answer is read before the consumer gets
// anything: an answer that ends within it is sent whole, with its
// length, or refused whole when it is over the service's limit.
const peekSize = 256 << 10

var peekBuffers = sync.Pool{New: func() any { b := make([]byte, peekSize+1); return &b }}

// Forward sends an opened call to the provider and relays the answer to
// w. It returns an error for the consumer when nothing was sent yet; once
// the call is Answered, a failure (the provider breaks off, the answer
// grows past the limit) drops the consumer's connection, so that a cut
// answer is never taken for a whole one, and is returned for the log.
func (p *Proxy) Forward(ctx context.Context, c *Call, w http.ResponseWriter, r *http.Request, body []byte) error {
	t := c.target
	b := p.breaker(t.svc.ID)
	if ok, wait := b.allow(time.Now()); !ok {
		return ErrUnavailable.After(wait)
	}
	result := neutral
	defer func() {
		if b.done(result, time.Now()) {
			p.log.Warn("service circuit opened: forwarding paused", "service", t.svc.Code, "for", p.cfg.OpenFor.String(), "request_id", c.RequestID)
		}
	}()

	tctx, cancel := context.WithTimeout(ctx, time.Duration(t.svc.TimeoutSeconds)*time.Second)
	defer cancel()
	req, err := p.outgoing(tctx, c, r, body)
	if err != nil {
		return err
	}
	resp, err := p.client.Do(req)
	if err != nil {
		e, o := failure(ctx, tctx)
		result = o
		return e
	}
	defer resp.Body.Close()
	// The provider answered: it is up, unless it says it is not.
	result = healthy
	if resp.StatusCode >= 500 {
		result = broken
	}
	limit := t.svc.MaxResponseBytes
	if resp.ContentLength > limit {
		return ErrTooLarge
	}
	buf := peekBuffers.Get().(*[]byte)
	defer peekBuffers.Put(buf)
	head := (*buf)[:min(limit, peekSize)+1]
	n, err := readUpTo(resp.Body, head)
	whole := errors.Is(err, io.EOF)
	if err != nil && !whole {
		e, o := failure(ctx, tctx)
		result = o
		return e
	}
	if !whole && int64(n) > limit {
		return ErrTooLarge
	}

	h := w.Header()
	for k, vs := range resp.Header {
		if isHopByHop(k) || h.Get(k) != "" || connectionListed(resp.Header, k) {
			continue // the platform's own headers win
		}
		h[k] = vs
	}
	if whole && c.Method != http.MethodHead && resp.StatusCode != http.StatusNoContent && resp.StatusCode != http.StatusNotModified {
		h.Set("Content-Length", strconv.Itoa(n))
	} else if resp.ContentLength < 0 {
		h.Del("Content-Length")
	}
	w.WriteHeader(resp.StatusCode)
	c.Status, c.answered = resp.StatusCode, true
	if err := c.write(w, head[:n]); err != nil || whole {
		return err
	}
	// A long answer streams through, cut at the limit.
	chunk := head[:min(len(head), 32<<10)]
	for {
		nr, rerr := resp.Body.Read(chunk)
		if c.ResponseBytes+int64(nr) > limit {
			drop(w)
			return ErrTooLarge
		}
		if err := c.write(w, chunk[:nr]); err != nil {
			return err
		}
		if errors.Is(rerr, io.EOF) {
			return nil
		}
		if rerr != nil {
			e, o := failure(ctx, tctx)
			result = o
			drop(w)
			return e
		}
	}
}

// write relays part of the answer, counting it.
func (c *Call) write(w http.ResponseWriter, b []byte) error {
	if len(b) == 0 {
		return nil
	}
	n, err := w.Write(b)
	c.ResponseBytes += int64(n)
	if err != nil {
		return ErrClientGone
	}
	return nil
}

// readUpTo fills buf from r; it returns io.EOF only when r ended cleanly
// before buf was full.
func readUpTo(r io.Reader, buf []byte) (int, error) {
	n := 0
	for n < len(buf) {
		m, err := r.Read(buf[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// drop ends the consumer's connection without ending the answer, so the
// consumer sees an error instead of a short body that looks complete.
func drop(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err == nil {
		conn.Close()
	}
}

// failure names why a call to the provider failed: the consumer went
// away, the service's timeout passed, or the provider could not be
// reached or broke off.
func failure(consumer, call context.Context) (*apperr.Error, outcome) {
	switch {
	case consumer.Err() != nil:
		return ErrClientGone, neutral
	case errors.Is(call.Err(), context.DeadlineExceeded):
		return ErrProviderTimeout, broken
	}
	return ErrProviderDown, broken
}

// outgoing is the request to the provider: the consumer's method, path
// below the base URL, query and body, with the consumer's headers except
// the hop-by-hop ones and the consumer's credentials, plus who is asking
// and the provider's credential.
func (p *Proxy) outgoing(ctx context.Context, c *Call, r *http.Request, body []byte) (*http.Request, error) {
	t := c.target
	u, err := url.Parse(t.svc.BaseURL + c.path)
	if err != nil {
		return nil, ErrOperationUnknown
	}
	u.RawQuery = r.URL.RawQuery
	var rd io.Reader = http.NoBody
	if len(body) > 0 {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, c.Method, u.String(), rd)
	if err != nil {
		return nil, ErrOperationUnknown
	}
	for k, vs := range r.Header {
		if forwardHeader(r.Header, k, t.svc.CredentialHeader) {
			req.Header[k] = vs
		}
	}
	dept, err := p.creditCode(ctx, c.ConsumerDeptID)
	if err != nil {
		return nil, err
	}
	req.Header.Set(HeaderConsumerDept, dept)
	req.Header.Set(HeaderApp, c.AppKey)
	req.Header.Set(HeaderPurpose, c.purpose)
	req.Header.Set(HeaderRequestID, c.RequestID)
	if t.sealed != "" {
		cred, err := p.seal.Open(t.sealed)
		if err != nil {
			return nil, err
		}
		req.Header.Set(t.svc.CredentialHeader, string(cred))
	}
	return req, nil
}

// hopByHop are the headers of one connection (RFC 9110 §7.6.1).
var hopByHop = []string{"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization", "Te", "Trailer",
	"Transfer-Encoding", "Upgrade"}

func isHopByHop(k string) bool {
	k = textproto.CanonicalMIMEHeaderKey(k)
	for _, h := range hopByHop {
		if h == k {
			return true
		}
	}
	return false
}

// connectionListed reports whether the Connection header names k as a
// header of this connection only.
func connectionListed(h http.Header, k string) bool {
	for _, v := range h.Values("Connection") {
		for _, f := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(f), k) {
				return true
			}
		}
	}
	return false
}

// notForwarded are the consumer's headers that stay at the platform:
// its credentials for the platform and what the platform sets itself.
var notForwarded = []string{"Host", "Content-Length", "Authorization", "Cookie", "Forwarded", HeaderRequestID,
	client.HeaderAppKey, client.HeaderTimestamp, client.HeaderNonce, client.HeaderSignature, client.HeaderMethod, client.HeaderPurpose}

func forwardHeader(h http.Header, k, credential string) bool {
	k = textproto.CanonicalMIMEHeaderKey(k)
	if isHopByHop(k) || connectionListed(h, k) || strings.HasPrefix(k, "X-Govshare-") || strings.HasPrefix(k, "X-Forwarded-") ||
		(credential != "" && k == credential) {
		return false
	}
	for _, n := range notForwarded {
		if textproto.CanonicalMIMEHeaderKey(n) == k {
			return false
		}
	}
	return true
}

// creditCode is a department's unified social credit code, which the
// provider knows it by.
func (p *Proxy) creditCode(ctx context.Context, dept int64) (string, error) {
	if code, ok := p.depts.get(dept); ok {
		return code, nil
	}
	var code string
	err := p.db.QueryRow(ctx, "SELECT credit_code FROM departments WHERE id = ?", dept).Scan(&code)
	if errors.Is(err, sql.ErrNoRows) {
		return "", apperr.ErrNotFound
	} else if err != nil {
		return "", err
	}
	p.depts.put(dept, code)
	return code, nil
}

// Record writes a finished call, refused or not, into the call log and
// the audit log (action service.call, actor the app, object the
// service's code). err is what Open or Forward answered.
func (p *Proxy) Record(ctx context.Context, c *Call, err error) error {
	c.DurationMS = time.Since(c.start).Milliseconds()
	c.Result = ResultOK
	if err != nil {
		ae, ok := apperr.As(err)
		if !ok {
			ae = apperr.New(http.StatusInternalServerError, "internal", "", "")
		}
		c.Status, c.ErrorCode, c.Result = ae.Status, ae.Code, ResultError
		if !c.answered && ae.Status < 500 && ae.Status != ErrClientGone.Status {
			c.Result = ResultDenied
		}
	} else if c.Status >= 500 {
		c.Result = ResultError
	}
	// The record outlives the consumer's request.
	ctx = context.WithoutCancel(ctx)
	// The call log and the audit log are written side by side.
	logged := make(chan error, 1)
	if c.target != nil {
		go func() { logged <- p.calls.write(ctx, c) }()
	} else {
		logged <- nil
	}
	result := map[string]string{ResultOK: audit.ResultOK, ResultDenied: audit.ResultDenied, ResultError: audit.ResultError}[c.Result]
	details := map[string]any{"operation": c.Operation, "method": c.Method, "status": c.Status, "request_bytes": c.RequestBytes,
		"response_bytes": c.ResponseBytes, "duration_ms": c.DurationMS}
	if c.Operation == "" {
		details["path"] = c.Path
	}
	if c.ErrorCode != "" {
		details["error"] = c.ErrorCode
	}
	err = p.audit.Append(ctx, audit.By(c.actor, "service.call", "service", c.Code, result, details))
	return errors.Join(<-logged, err)
}

// cst is China Standard Time, the day of the daily statistics.
var cst = time.FixedZone("CST", 8*3600)

func day(t time.Time) string { return t.In(cst).Format(time.DateOnly) }
