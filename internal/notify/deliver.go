package notify

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// Payload is the JSON body a webhook receives.
type Payload struct {
	// ID names the notice: the same for every webhook it went to and for
	// every attempt and redelivery, so a receiver can drop repeats.
	ID         string         `json:"id"`
	Kind       string         `json:"kind"`
	TitleZH    string         `json:"title_zh"`
	TitleEN    string         `json:"title_en"`
	Href       string         `json:"href"` // a path on the platform, e.g. /applications/12
	ObjectType string         `json:"object_type"`
	ObjectID   string         `json:"object_id"`
	Data       map[string]any `json:"data"`
	CreatedAt  time.Time      `json:"created_at"`
}

// Headers of a webhook request.
const (
	HeaderEvent     = "X-Govshare-Event"
	HeaderDelivery  = "X-Govshare-Delivery"
	HeaderSignature = "X-Govshare-Signature"
)

// Delivery rules.
const (
	// MaxAttempts is how often a delivery is tried before it fails.
	MaxAttempts = 8
	// DeliveryTimeout bounds one attempt.
	DeliveryTimeout = 10 * time.Second
	// lease is how long a claimed delivery is a server's alone: longer
	// than an attempt can take.
	lease = DeliveryTimeout + 50*time.Second
	// batch is how many due deliveries one pass claims at most.
	batch = 50
	// parallel is how many attempts one server makes at once.
	parallel = 8
)

// Backoff is the wait after the n-th failed attempt: 30 s doubling each
// time, at most an hour, varied by ±10 % so receivers that come back are
// not hit by every sender at once.
func Backoff(n int) time.Duration {
	d := time.Hour
	if n < 1 {
		n = 1
	}
	if n <= 8 {
		d = min(30*time.Second<<(n-1), time.Hour)
	}
	jitter := time.Duration((rand.Float64()*0.2 - 0.1) * float64(d))
	return min(d+jitter, time.Hour).Truncate(time.Millisecond)
}

// Sign returns the X-Govshare-Signature value for body sent at t:
// "t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>".
func Sign(secret string, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	return "t=" + ts + ",v1=" + mac(secret, ts, body)
}

func mac(secret, ts string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(ts))
	m.Write([]byte{'.'})
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

// Errors of VerifySignature.
var (
	ErrSignatureMissing = errors.New("webhook signature header missing or malformed")
	ErrSignatureOld     = errors.New("webhook signature timestamp outside the tolerance")
	ErrSignatureBad     = errors.New("webhook signature does not match")
)

// VerifySignature checks an X-Govshare-Signature header against the raw
// body, as a receiver should: the timestamp within tolerance of now (which
// stops replays) and one of the v1 signatures matching. Several v1 values
// are accepted so a scheme can grow without breaking receivers.
func VerifySignature(secret string, header string, body []byte, now time.Time, tolerance time.Duration) error {
	var ts string
	var sigs []string
	for _, part := range strings.Split(header, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			continue
		}
		switch k {
		case "t":
			ts = v
		case "v1":
			sigs = append(sigs, v)
		}
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || len(sigs) == 0 {
		return ErrSignatureMissing
	}
	if now.Sub(time.Unix(sec, 0)).Abs() > tolerance {
		return ErrSignatureOld
	}
	want := []byte(mac(secret, ts, body))
	for _, sig := range sigs {
		if hmac.Equal([]byte(sig), want) {
			return nil
		}
	}
	return ErrSignatureBad
}

// poke wakes this server's delivery worker, if it sleeps.
func (s *Service) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Run delivers webhooks until ctx ends: at once when this server queued
// something, and every PollEvery for retries and other servers' notices.
// Several servers may run it on one database; the lease on each delivery
// keeps them from sending the same attempt twice.
func (s *Service) Run(ctx context.Context) {
	every := s.PollEvery
	if every <= 0 {
		every = 5 * time.Second
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		n, err := s.DeliverDue(ctx)
		if err != nil && ctx.Err() == nil {
			s.log.Error("webhook delivery", "err", err)
		}
		if n >= batch && err == nil {
			continue // more may be due
		}
		select {
		case <-ctx.Done():
			return
		case <-s.wake:
		case <-t.C:
		}
	}
}

type dueDelivery struct {
	id       int64
	attempts int
}

// DeliverDue makes one pass: it claims the deliveries that are due and
// not leased by another server, posts each once and records the outcome.
// It returns how many attempts it made.
func (s *Service) DeliverDue(ctx context.Context) (int, error) {
	now := s.clock()
	rows, err := s.db.Query(ctx, `SELECT id, attempts FROM webhook_deliveries
		WHERE status = ? AND next_attempt_at <= ? AND (locked_until IS NULL OR locked_until <= ?)
		ORDER BY next_attempt_at, id LIMIT ?`, Pending, now, now, batch)
	if err != nil {
		return 0, fmt.Errorf("due deliveries: %w", err)
	}
	var list []dueDelivery
	for rows.Next() {
		var d dueDelivery
		if err := rows.Scan(&d.id, &d.attempts); err != nil {
			rows.Close()
			return 0, err
		}
		list = append(list, d)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, err
	}
	// A few attempts run at once, so one slow receiver does not hold up
	// every other department's; each is claimed just before it is sent,
	// so its lease covers that attempt alone.
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		n     int
		first error
		slots = make(chan struct{}, parallel)
	)
	fail := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		if first == nil {
			first = err
		}
	}
	for _, d := range list {
		if ctx.Err() != nil {
			break
		}
		slots <- struct{}{}
		ok, err := s.claim(ctx, d)
		if err != nil || !ok { // !ok: another server has it
			<-slots
			if err != nil {
				fail(err)
				break
			}
			continue
		}
		wg.Go(func() {
			defer func() { <-slots }()
			if err := s.attempt(ctx, d); err != nil {
				fail(err)
				return
			}
			mu.Lock()
			n++
			mu.Unlock()
		})
	}
	wg.Wait()
	if first == nil {
		first = ctx.Err()
	}
	return n, first
}

// claim leases one attempt of a delivery. The UPDATE repeats every
// condition, so of several servers racing for it exactly one wins.
func (s *Service) claim(ctx context.Context, d dueDelivery) (bool, error) {
	now := s.clock()
	res, err := s.db.Exec(ctx, `UPDATE webhook_deliveries SET locked_until = ?
		WHERE id = ? AND attempts = ? AND status = ? AND next_attempt_at <= ? AND (locked_until IS NULL OR locked_until <= ?)`,
		now.Add(lease), d.id, d.attempts, Pending, now, now)
	if err != nil {
		return false, fmt.Errorf("claim delivery %d: %w", d.id, err)
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// attempt posts a claimed delivery and records how it went.
func (s *Service) attempt(ctx context.Context, d dueDelivery) error {
	var (
		target, sealed, status, kind, payload string
	)
	err := s.db.QueryRow(ctx, `SELECT w.url, w.secret, w.status, d.kind, d.payload FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id
		WHERE d.id = ?`, d.id).Scan(&target, &sealed, &status, &kind, &payload)
	if err != nil {
		return fmt.Errorf("load delivery %d: %w", d.id, err)
	}
	if status != "active" {
		return s.finish(ctx, d, Failed, 0, "webhook disabled")
	}
	sec, err := s.seal.Open(sealed)
	if err != nil {
		return s.finish(ctx, d, Failed, 0, "webhook secret: "+err.Error())
	}
	code, perr := s.post(ctx, target, string(sec), kind, d.id, []byte(payload))
	switch {
	case perr == nil && code >= 200 && code < 300:
		return s.finish(ctx, d, Delivered, code, "")
	case ctx.Err() != nil:
		// Shutting down: give the attempt back rather than count it.
		_, err := s.db.Exec(context.WithoutCancel(ctx), "UPDATE webhook_deliveries SET locked_until = NULL WHERE id = ? AND attempts = ?", d.id, d.attempts)
		return err
	}
	msg := ""
	if perr != nil {
		msg = perr.Error()
	} else {
		msg = "HTTP " + strconv.Itoa(code)
	}
	s.log.Warn("webhook delivery failed", "delivery", d.id, "attempt", d.attempts+1, "status", code, "err", msg)
	if d.attempts+1 >= MaxAttempts {
		return s.finish(ctx, d, Failed, code, msg)
	}
	return s.finish(ctx, d, Pending, code, msg)
}

// post sends one attempt and returns the receiver's status code.
func (s *Service) post(ctx context.Context, target, secret, kind string, id int64, body []byte) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, DeliveryTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "govshare-webhook/1")
	req.Header.Set(HeaderEvent, kind)
	req.Header.Set(HeaderDelivery, strconv.FormatInt(id, 10))
	req.Header.Set(HeaderSignature, Sign(secret, s.clock(), body))
	resp, err := s.http.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	return resp.StatusCode, nil
}

// finish records an attempt: delivered, failed for good, or pending
// again after the backoff.
func (s *Service) finish(ctx context.Context, d dueDelivery, status string, code int, msg string) error {
	now := s.clock()
	ctx = context.WithoutCancel(ctx) // the attempt happened; record it even while stopping
	msg = truncate(msg, 500)
	var err error
	switch status {
	case Delivered:
		_, err = s.db.Exec(ctx, `UPDATE webhook_deliveries SET status = ?, attempts = attempts + 1, locked_until = NULL,
			last_status_code = ?, last_error = '', delivered_at = ? WHERE id = ? AND attempts = ?`, Delivered, code, now, d.id, d.attempts)
	case Failed:
		_, err = s.db.Exec(ctx, `UPDATE webhook_deliveries SET status = ?, attempts = attempts + 1, locked_until = NULL,
			last_status_code = ?, last_error = ? WHERE id = ? AND attempts = ?`, Failed, code, msg, d.id, d.attempts)
	default:
		_, err = s.db.Exec(ctx, `UPDATE webhook_deliveries SET attempts = attempts + 1, locked_until = NULL, next_attempt_at = ?,
			last_status_code = ?, last_error = ? WHERE id = ? AND attempts = ?`, now.Add(Backoff(d.attempts+1)), code, msg, d.id, d.attempts)
	}
	if err != nil {
		return fmt.Errorf("record delivery %d: %w", d.id, err)
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[:n]
	for !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s + "…"
}
