package notify

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"govshare/internal/apperr"
	"govshare/internal/audit"
	"govshare/internal/policy"
	"govshare/internal/store"
)

// Webhook is a department's outbound callback: every notice to the
// department whose kind the filter takes is posted to URL, signed with
// the webhook's secret.
type Webhook struct {
	ID         int64     `json:"id"`
	DeptID     int64     `json:"dept_id"`
	URL        string    `json:"url" doc:"回调地址 / where notices are posted"`
	Events     []string  `json:"events" doc:"事件类型过滤，空为全部；application.* 匹配前缀 / kinds to send, empty for all; application.* matches a prefix"`
	Status     string    `json:"status" doc:"active / disabled"`
	CreatedBy  int64     `json:"created_by"`
	CreatedAt  time.Time `json:"created_at"`
	RotatedAt  time.Time `json:"rotated_at"`
	DisabledAt time.Time `json:"disabled_at,omitzero"`
}

// WebhookInput is what a department's administrator registers. DeptID 0
// means the administrator's own department.
type WebhookInput struct {
	DeptID int64    `json:"dept_id,omitempty" doc:"部门ID，缺省为本部门 / department id, default your own"`
	URL    string   `json:"url" doc:"回调地址(http或https) / absolute http(s) URL"`
	Events []string `json:"events,omitempty" doc:"事件类型过滤，空为全部 / kinds to send, empty for all"`
}

// Takes reports whether the webhook's filter lets a notice of kind through.
func (w Webhook) Takes(kind string) bool {
	if len(w.Events) == 0 {
		return true
	}
	for _, e := range w.Events {
		if e == "*" || e == kind {
			return true
		}
		if prefix, ok := strings.CutSuffix(e, "*"); ok && strings.HasPrefix(kind, prefix) {
			return true
		}
	}
	return false
}

// Delivery is one notice on its way to one webhook: the delivery log.
type Delivery struct {
	ID             int64           `json:"id"`
	WebhookID      int64           `json:"webhook_id"`
	Kind           string          `json:"kind"`
	Payload        json.RawMessage `json:"payload" doc:"发送的JSON / the JSON body posted"`
	Status         string          `json:"status" doc:"pending / delivered / failed"`
	Attempts       int             `json:"attempts"`
	NextAttemptAt  time.Time       `json:"next_attempt_at"`
	LastStatusCode int             `json:"last_status_code,omitempty" doc:"最近一次HTTP状态码 / HTTP status of the last attempt"`
	LastError      string          `json:"last_error,omitempty"`
	CreatedAt      time.Time       `json:"created_at"`
	DeliveredAt    time.Time       `json:"delivered_at,omitzero"`
}

// Delivery states.
const (
	Pending   = "pending"
	Delivered = "delivered"
	Failed    = "failed"
)

// Errors of webhooks.
var (
	ErrWebhookURL      = apperr.Invalid("notify.webhook_url_invalid", "url", "回调地址须为完整的 http 或 https 地址(不含用户名密码)，如 https://oa.example.gov.cn/hooks/govshare", "the URL must be an absolute http or https URL without credentials, e.g. https://oa.example.gov.cn/hooks/govshare")
	ErrWebhookEvents   = apperr.Invalid("notify.webhook_events_invalid", "events", "事件类型由小写字母、数字、下划线和点组成，可以 * 结尾表示前缀，最多20个", "event kinds are lower-case letters, digits, '_' and '.', optionally ending in * for a prefix; at most 20")
	ErrWebhookDept     = apperr.Invalid("notify.webhook_dept_invalid", "dept_id", "部门不存在", "no such department")
	ErrWebhookDisabled = apperr.New(http.StatusConflict, "notify.webhook_disabled", "该Webhook已停用", "the webhook is disabled")
	ErrDeliveryBusy    = apperr.New(http.StatusConflict, "notify.delivery_in_progress", "该投递正在发送中，请稍后再试", "the delivery is being sent right now; try again shortly")
)

var eventRE = regexp.MustCompile(`^(\*|[a-z0-9_]+(\.[a-z0-9_]+)*(\.\*)?)$`)

func (in *WebhookInput) validate() error {
	in.URL = strings.TrimSpace(in.URL)
	u, err := url.Parse(in.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || len(in.URL) > 2000 {
		return ErrWebhookURL
	}
	var events []string
	for _, e := range in.Events {
		for _, part := range strings.Split(e, ",") {
			if part = strings.TrimSpace(part); part == "" {
				continue
			}
			if !eventRE.MatchString(part) {
				return ErrWebhookEvents
			}
			if !contains(events, part) {
				events = append(events, part)
			}
		}
	}
	if len(events) > 20 {
		return ErrWebhookEvents
	}
	in.Events = events
	return nil
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

func idString(id int64) string {
	if id == 0 {
		return ""
	}
	return strconv.FormatInt(id, 10)
}

// authorize checks WebhookManage on a department's webhooks and audits a
// refusal. It runs before any transaction opens.
func (s *Service) authorize(ctx context.Context, actor policy.Actor, dept, hook int64) error {
	if err := policy.Check(actor, policy.WebhookManage, policy.Target{DeptID: dept}); err != nil {
		_ = s.audit.Append(ctx, audit.By(actor, string(policy.WebhookManage), "webhook", idString(hook), audit.ResultDenied,
			map[string]any{"dept_id": dept}))
		return err
	}
	return nil
}

func (s *Service) record(ctx context.Context, actor policy.Actor, action string, w Webhook, details map[string]any) error {
	if details == nil {
		details = map[string]any{}
	}
	details["dept_id"] = w.DeptID
	return s.audit.Append(ctx, audit.By(actor, action, "webhook", idString(w.ID), audit.ResultOK, details))
}

// RegisterWebhook creates a webhook and returns it with its signing
// secret, which is shown this once and stored only sealed.
func (s *Service) RegisterWebhook(ctx context.Context, actor policy.Actor, in WebhookInput) (Webhook, string, error) {
	if in.DeptID == 0 {
		in.DeptID = actor.DeptID
	}
	if err := s.authorize(ctx, actor, in.DeptID, 0); err != nil {
		return Webhook{}, "", err
	}
	if err := in.validate(); err != nil {
		return Webhook{}, "", err
	}
	var one int
	if err := s.db.QueryRow(ctx, "SELECT 1 FROM departments WHERE id = ?", in.DeptID).Scan(&one); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return Webhook{}, "", ErrWebhookDept
		}
		return Webhook{}, "", err
	}
	sec := "whsec_" + randomID("")
	now := s.clock()
	var id int64
	if err := s.db.QueryRow(ctx, `INSERT INTO webhooks (dept_id, url, events, secret, created_by, created_at, rotated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id`, in.DeptID, in.URL, strings.Join(in.Events, ","), s.seal.Seal([]byte(sec)),
		actor.UserID, now, now).Scan(&id); err != nil {
		return Webhook{}, "", fmt.Errorf("register webhook: %w", err)
	}
	w, err := s.webhook(ctx, id)
	if err != nil {
		return Webhook{}, "", err
	}
	return w, sec, s.record(ctx, actor, "webhook.register", w, map[string]any{"url": w.URL, "events": w.Events})
}

const webhookCols = "id, dept_id, url, events, status, created_by, created_at, rotated_at, disabled_at"

func scanWebhook(row interface{ Scan(...any) error }) (Webhook, error) {
	var w Webhook
	var events string
	var disabled sql.NullTime
	err := row.Scan(&w.ID, &w.DeptID, &w.URL, &events, &w.Status, &w.CreatedBy, &w.CreatedAt, &w.RotatedAt, &disabled)
	w.Events = []string{}
	if events != "" {
		w.Events = strings.Split(events, ",")
	}
	w.DisabledAt = disabled.Time
	return w, err
}

func (s *Service) webhook(ctx context.Context, id int64) (Webhook, error) {
	w, err := scanWebhook(s.db.QueryRow(ctx, "SELECT "+webhookCols+" FROM webhooks WHERE id = ?", id))
	if errors.Is(err, sql.ErrNoRows) {
		return w, apperr.ErrNotFound
	}
	return w, err
}

// querier is what both the pool and a transaction answer.
type querier interface {
	Query(ctx context.Context, q string, args ...any) (*sql.Rows, error)
}

func listWebhooks(ctx context.Context, db querier, where string, args ...any) ([]Webhook, error) {
	rows, err := db.Query(ctx, "SELECT "+webhookCols+" FROM webhooks WHERE "+where+" ORDER BY id DESC", args...)
	if err != nil {
		return nil, fmt.Errorf("list webhooks: %w", err)
	}
	defer rows.Close()
	var out []Webhook
	for rows.Next() {
		w, err := scanWebhook(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, w)
	}
	return out, rows.Err()
}

func activeWebhooks(ctx context.Context, tx *store.Tx, dept int64) ([]Webhook, error) {
	return listWebhooks(ctx, tx, "dept_id = ? AND status = 'active'", dept)
}

// Webhooks returns a department's webhooks, newest first.
func (s *Service) Webhooks(ctx context.Context, actor policy.Actor, deptID int64) ([]Webhook, error) {
	if err := s.authorize(ctx, actor, deptID, 0); err != nil {
		return nil, err
	}
	return listWebhooks(ctx, s.db, "dept_id = ?", deptID)
}

// Webhook returns one webhook the actor may manage.
func (s *Service) Webhook(ctx context.Context, actor policy.Actor, id int64) (Webhook, error) {
	w, err := s.webhook(ctx, id)
	if err != nil {
		return w, err
	}
	return w, s.authorize(ctx, actor, w.DeptID, w.ID)
}

// DisableWebhook stops a webhook for good; its pending deliveries fail.
func (s *Service) DisableWebhook(ctx context.Context, actor policy.Actor, id int64) error {
	w, err := s.Webhook(ctx, actor, id)
	if err != nil {
		return err
	}
	if w.Status != "active" {
		return nil
	}
	now := s.clock()
	err = s.db.InTx(ctx, func(tx *store.Tx) error {
		if _, err := tx.Exec(ctx, "UPDATE webhooks SET status = 'disabled', disabled_at = ? WHERE id = ?", now, id); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `UPDATE webhook_deliveries SET status = ?, last_error = ?, locked_until = NULL
			WHERE webhook_id = ? AND status = ?`, Failed, "webhook disabled", id, Pending)
		return err
	})
	if err != nil {
		return fmt.Errorf("disable webhook %d: %w", id, err)
	}
	return s.record(ctx, actor, "webhook.disable", w, map[string]any{"url": w.URL})
}

// RotateWebhookSecret gives a webhook a new secret (shown once); the old
// one stops signing at once.
func (s *Service) RotateWebhookSecret(ctx context.Context, actor policy.Actor, id int64) (Webhook, string, error) {
	w, err := s.Webhook(ctx, actor, id)
	if err != nil {
		return Webhook{}, "", err
	}
	if w.Status != "active" {
		return Webhook{}, "", ErrWebhookDisabled
	}
	sec := "whsec_" + randomID("")
	if _, err := s.db.Exec(ctx, "UPDATE webhooks SET secret = ?, rotated_at = ? WHERE id = ?", s.seal.Seal([]byte(sec)), s.clock(), id); err != nil {
		return Webhook{}, "", fmt.Errorf("rotate webhook %d: %w", id, err)
	}
	if w, err = s.webhook(ctx, id); err != nil {
		return Webhook{}, "", err
	}
	return w, sec, s.record(ctx, actor, "webhook.rotate", w, nil)
}

const deliveryCols = "id, webhook_id, kind, payload, status, attempts, next_attempt_at, last_status_code, last_error, created_at, delivered_at"

func scanDelivery(row interface{ Scan(...any) error }) (Delivery, error) {
	var d Delivery
	var payload string
	var delivered sql.NullTime
	err := row.Scan(&d.ID, &d.WebhookID, &d.Kind, &payload, &d.Status, &d.Attempts, &d.NextAttemptAt, &d.LastStatusCode, &d.LastError,
		&d.CreatedAt, &delivered)
	d.Payload = json.RawMessage(payload)
	d.DeliveredAt = delivered.Time
	return d, err
}

func (s *Service) delivery(ctx context.Context, id int64) (Delivery, error) {
	d, err := scanDelivery(s.db.QueryRow(ctx, "SELECT "+deliveryCols+" FROM webhook_deliveries WHERE id = ?", id))
	if errors.Is(err, sql.ErrNoRows) {
		return d, apperr.ErrNotFound
	}
	return d, err
}

// Deliveries is a webhook's delivery log, newest first; limit 0 means 50.
func (s *Service) Deliveries(ctx context.Context, actor policy.Actor, webhookID int64, limit int) ([]Delivery, error) {
	if _, err := s.Webhook(ctx, actor, webhookID); err != nil {
		return nil, err
	}
	if limit <= 0 {
		limit = 50
	}
	rows, err := s.db.Query(ctx, "SELECT "+deliveryCols+" FROM webhook_deliveries WHERE webhook_id = ? ORDER BY id DESC LIMIT ?", webhookID, min(limit, MaxList))
	if err != nil {
		return nil, fmt.Errorf("list deliveries: %w", err)
	}
	defer rows.Close()
	var out []Delivery
	for rows.Next() {
		d, err := scanDelivery(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

// Redeliver sends a delivery again, now, with a fresh allowance of
// attempts. It keeps its id and payload, so a receiver that saw it
// before can tell.
func (s *Service) Redeliver(ctx context.Context, actor policy.Actor, deliveryID int64) (Delivery, error) {
	d, err := s.delivery(ctx, deliveryID)
	if err != nil {
		return Delivery{}, err
	}
	w, err := s.Webhook(ctx, actor, d.WebhookID)
	if err != nil {
		return Delivery{}, err
	}
	if w.Status != "active" {
		return Delivery{}, ErrWebhookDisabled
	}
	now := s.clock()
	res, err := s.db.Exec(ctx, `UPDATE webhook_deliveries SET status = ?, attempts = 0, next_attempt_at = ?, locked_until = NULL, delivered_at = NULL
		WHERE id = ? AND (locked_until IS NULL OR locked_until <= ?)`, Pending, now, deliveryID, now)
	if err != nil {
		return Delivery{}, fmt.Errorf("redeliver %d: %w", deliveryID, err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return Delivery{}, ErrDeliveryBusy
	}
	s.poke()
	if d, err = s.delivery(ctx, deliveryID); err != nil {
		return Delivery{}, err
	}
	return d, s.record(ctx, actor, "webhook.redeliver", w, map[string]any{"delivery_id": d.ID, "kind": d.Kind})
}
