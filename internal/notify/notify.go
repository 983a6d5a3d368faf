package notify

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"govshare/internal/apperr"
	"govshare/internal/audit"
	"govshare/internal/policy"
	"govshare/internal/secret"
	"govshare/internal/store"
)

// Notification is one notice as its recipient sees it in the app.
type Notification struct {
	ID         int64     `json:"id"`
	Kind       string    `json:"kind" doc:"类型 / kind, e.g. reminder.application.answer"`
	TitleZH    string    `json:"title_zh" doc:"标题(中文) / title in Chinese"`
	TitleEN    string    `json:"title_en" doc:"标题(英文) / title in English"`
	Href       string    `json:"href" doc:"办理页面 / page to act on it"`
	ObjectType string    `json:"object_type"`
	ObjectID   string    `json:"object_id"`
	CreatedAt  time.Time `json:"created_at"`
	ReadAt     time.Time `json:"read_at,omitzero" doc:"已读时间，未读时缺省 / when read; absent while unread"`
}

// Unread reports whether the recipient has not read it yet.
func (n Notification) Unread() bool { return n.ReadAt.IsZero() }

// Title is the title in lang ("en" or Chinese otherwise).
func (n Notification) Title(lang string) string {
	if lang == "en" {
		return n.TitleEN
	}
	return n.TitleZH
}

// Auditor is the part of the audit log notify needs.
type Auditor interface {
	Append(ctx context.Context, e audit.Event) error
}

// Service sends notices, keeps each user's notifications, manages the
// departments' webhooks and delivers to them, and reminds of deadlines.
type Service struct {
	db    *store.DB
	audit Auditor
	seal  *secret.Sealer
	log   *slog.Logger
	now   func() time.Time
	http  *http.Client
	// wake tells the delivery worker of this server that new deliveries
	// wait, so they go out at once rather than at the next poll.
	wake chan struct{}

	// RemindBefore is how long before a deadline its reminder goes out.
	RemindBefore time.Duration
	// PollEvery is how often the delivery worker looks for due deliveries
	// that no server has announced (retries, other servers' notices).
	PollEvery time.Duration
}

// DefaultRemindBefore is RemindBefore unless configured.
const DefaultRemindBefore = 24 * time.Hour

// New builds the service; webhook secrets are sealed with keys.
func New(db *store.DB, a Auditor, keys *secret.Keys, log *slog.Logger) *Service {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Service{db: db, audit: a, seal: keys.Sealer("webhook"), log: log, now: store.Now,
		http: defaultClient(), wake: make(chan struct{}, 1), RemindBefore: DefaultRemindBefore, PollEvery: 5 * time.Second}
}

// defaultClient posts with a timeout and never follows redirects: a
// receiver that moved must be registered anew, and a redirected POST
// would arrive as a GET without its body.
func defaultClient() *http.Client {
	return &http.Client{Timeout: DeliveryTimeout, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// SetClock replaces the clock for tests.
func (s *Service) SetClock(now func() time.Time) { s.now = now }

// SetHTTPClient replaces the client webhooks are posted with.
func (s *Service) SetHTTPClient(c *http.Client) { s.http = c }

// clock is now as the store keeps it: UTC, in microseconds, so a value
// written and read back compares equal on both engines.
func (s *Service) clock() time.Time { return s.now().UTC().Truncate(time.Microsecond) }

func randomID(prefix string) string {
	b := make([]byte, 10)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return prefix + hex.EncodeToString(b)
}

// Send delivers a notice: one notification for every recipient (the
// active users of DeptID holding one of Roles, DeptID 0 meaning any
// department, plus UserIDs, each once) and one pending delivery for every
// active webhook of DeptID whose filter takes Kind, all in one
// transaction. It opens its own transaction, so call it outside any.
func (s *Service) Send(ctx context.Context, n Notice) error {
	if err := n.check(); err != nil {
		return err
	}
	queued := 0
	err := s.db.InTx(ctx, func(tx *store.Tx) error {
		var err error
		queued, err = s.send(ctx, tx, s.clock(), n)
		return err
	})
	if err != nil {
		return fmt.Errorf("send %s notice: %w", n.Kind, err)
	}
	if queued > 0 {
		s.poke()
	}
	return nil
}

func (n *Notice) check() error {
	n.Kind = strings.TrimSpace(n.Kind)
	if n.Kind == "" {
		return errors.New("notice without a kind")
	}
	if n.TitleZH == "" && n.TitleEN == "" {
		return fmt.Errorf("notice %s without a title", n.Kind)
	}
	if n.TitleEN == "" {
		n.TitleEN = n.TitleZH
	}
	if n.TitleZH == "" {
		n.TitleZH = n.TitleEN
	}
	return nil
}

// send writes the notice in tx, to the recipients of n and of also (whose
// titles and kind are n's), and returns how many deliveries it queued.
func (s *Service) send(ctx context.Context, tx *store.Tx, now time.Time, n Notice, also ...Notice) (int, error) {
	users := map[int64]bool{}
	var order []int64
	depts := map[int64]bool{}
	for _, a := range append([]Notice{n}, also...) {
		ids, err := recipients(ctx, tx, a)
		if err != nil {
			return 0, err
		}
		for _, id := range ids {
			if !users[id] {
				users[id] = true
				order = append(order, id)
			}
		}
		if a.DeptID != 0 {
			depts[a.DeptID] = true
		}
	}
	for _, uid := range order {
		if _, err := tx.Exec(ctx, `INSERT INTO notifications (user_id, kind, title_zh, title_en, href, object_type, object_id, created_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, uid, n.Kind, n.TitleZH, n.TitleEN, n.Href, n.ObjectType, n.ObjectID, now); err != nil {
			return 0, fmt.Errorf("insert notification: %w", err)
		}
	}
	if len(depts) == 0 {
		return 0, nil
	}
	data := n.Data
	if data == nil {
		data = map[string]any{}
	}
	payload, err := json.Marshal(Payload{ID: randomID("evt_"), Kind: n.Kind, TitleZH: n.TitleZH, TitleEN: n.TitleEN, Href: n.Href,
		ObjectType: n.ObjectType, ObjectID: n.ObjectID, Data: data, CreatedAt: now})
	if err != nil {
		return 0, fmt.Errorf("webhook payload: %w", err)
	}
	queued := 0
	for dept := range depts {
		hooks, err := activeWebhooks(ctx, tx, dept)
		if err != nil {
			return 0, err
		}
		for _, h := range hooks {
			if !h.Takes(n.Kind) {
				continue
			}
			if _, err := tx.Exec(ctx, `INSERT INTO webhook_deliveries (webhook_id, kind, payload, next_attempt_at, created_at)
				VALUES (?, ?, ?, ?, ?)`, h.ID, n.Kind, string(payload), now, now); err != nil {
				return 0, fmt.Errorf("queue delivery: %w", err)
			}
			queued++
		}
	}
	return queued, nil
}

// recipients are the active users a notice reaches.
func recipients(ctx context.Context, tx *store.Tx, n Notice) ([]int64, error) {
	var out []int64
	collect := func(q string, args ...any) error {
		rows, err := tx.Query(ctx, q, args...)
		if err != nil {
			return fmt.Errorf("notice recipients: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var id int64
			if err := rows.Scan(&id); err != nil {
				return err
			}
			out = append(out, id)
		}
		return rows.Err()
	}
	if len(n.Roles) > 0 {
		q := `SELECT DISTINCT u.id FROM users u JOIN user_roles r ON r.user_id = u.id
			WHERE u.status = 'active' AND r.role IN (` + store.Placeholders(len(n.Roles)) + `)`
		args := make([]any, 0, len(n.Roles)+1)
		for _, r := range n.Roles {
			args = append(args, string(r))
		}
		if n.DeptID != 0 {
			q += " AND u.dept_id = ?"
			args = append(args, n.DeptID)
		}
		if err := collect(q+" ORDER BY u.id", args...); err != nil {
			return nil, err
		}
	}
	if len(n.UserIDs) > 0 {
		ids := slices.Clone(n.UserIDs)
		slices.Sort(ids)
		ids = slices.Compact(ids)
		args := make([]any, len(ids))
		for i, id := range ids {
			args[i] = id
		}
		if err := collect("SELECT id FROM users WHERE status = 'active' AND id IN ("+store.Placeholders(len(ids))+") ORDER BY id", args...); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// ----- the recipient's side -----

const notificationCols = "id, kind, title_zh, title_en, href, object_type, object_id, created_at, read_at"

func scanNotification(row interface{ Scan(...any) error }) (Notification, error) {
	var n Notification
	var read sql.NullTime
	err := row.Scan(&n.ID, &n.Kind, &n.TitleZH, &n.TitleEN, &n.Href, &n.ObjectType, &n.ObjectID, &n.CreatedAt, &read)
	n.ReadAt = read.Time
	return n, err
}

// MaxList is the most notifications List returns at once.
const MaxList = 200

// List returns the actor's own notifications, unread first, newest first
// within each; limit 0 means 50. Apps have no notifications.
func (s *Service) List(ctx context.Context, actor policy.Actor, unreadOnly bool, limit int) ([]Notification, error) {
	if limit <= 0 {
		limit = 50
	}
	limit = min(limit, MaxList)
	if actor.UserID == 0 {
		return nil, nil
	}
	q := "SELECT " + notificationCols + " FROM notifications WHERE user_id = ?"
	if unreadOnly {
		q += " AND read_at IS NULL"
	}
	q += " ORDER BY CASE WHEN read_at IS NULL THEN 0 ELSE 1 END, id DESC LIMIT ?"
	rows, err := s.db.Query(ctx, q, actor.UserID, limit)
	if err != nil {
		return nil, fmt.Errorf("list notifications: %w", err)
	}
	defer rows.Close()
	var out []Notification
	for rows.Next() {
		n, err := scanNotification(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, n)
	}
	return out, rows.Err()
}

// UnreadCount is how many of the actor's notifications are unread.
func (s *Service) UnreadCount(ctx context.Context, actor policy.Actor) (int, error) {
	if actor.UserID == 0 {
		return 0, nil
	}
	var n int
	err := s.db.QueryRow(ctx, "SELECT COUNT(*) FROM notifications WHERE user_id = ? AND read_at IS NULL", actor.UserID).Scan(&n)
	return n, err
}

// MarkRead marks one of the actor's own notifications read. Anybody
// else's is not found, so its existence is not revealed.
func (s *Service) MarkRead(ctx context.Context, actor policy.Actor, id int64) error {
	if actor.UserID == 0 {
		return apperr.ErrNotFound
	}
	res, err := s.db.Exec(ctx, "UPDATE notifications SET read_at = ? WHERE id = ? AND user_id = ? AND read_at IS NULL", s.clock(), id, actor.UserID)
	if err != nil {
		return fmt.Errorf("mark notification %d read: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n == 1 {
		return nil
	}
	var one int
	err = s.db.QueryRow(ctx, "SELECT 1 FROM notifications WHERE id = ? AND user_id = ?", id, actor.UserID).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return apperr.ErrNotFound
	}
	return err // already read: nothing to do
}

// MarkAllRead marks every notification of the actor read.
func (s *Service) MarkAllRead(ctx context.Context, actor policy.Actor) error {
	if actor.UserID == 0 {
		return nil
	}
	if _, err := s.db.Exec(ctx, "UPDATE notifications SET read_at = ? WHERE user_id = ? AND read_at IS NULL", s.clock(), actor.UserID); err != nil {
		return fmt.Errorf("mark all notifications read: %w", err)
	}
	return nil
}
