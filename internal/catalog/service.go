package catalog

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"govshare/internal/apperr"
	"govshare/internal/audit"
	"govshare/internal/calendar"
	"govshare/internal/policy"
	"govshare/internal/search"
	"govshare/internal/store"
)

// State is where an entry stands in the review workflow.
type State string

// Entry states. A published entry that is being changed goes back to
// draft with its published version still live (PublishedVersion > 0).
const (
	Draft     State = "draft"
	Submitted State = "submitted"
	Returned  State = "returned"
	Approved  State = "approved"
	Published State = "published"
	Retired   State = "retired"
)

// Reason is why a reviewer returned an entry, optionally per field.
type Reason struct {
	Field string `json:"field,omitempty" doc:"字段 / field"`
	Text  string `json:"text" doc:"原因 / reason"`
}

// Entry is a catalog entry (目录条目): its working copy and where it stands.
type Entry struct {
	ID               int64     `json:"id"`
	DeptID           int64     `json:"dept_id" doc:"提供方部门ID / provider department"`
	Code             string    `json:"code,omitempty" doc:"信息资源代码(首次发布时生成) / resource code, issued at first publication"`
	State            State     `json:"state" doc:"状态 / state"`
	PublishedVersion int       `json:"published_version" doc:"已发布版本号，0为未发布 / latest published version, 0 if none"`
	Draft            Content   `json:"draft" doc:"工作稿 / working copy"`
	ChangeReason     string    `json:"change_reason,omitempty" doc:"变更原因 law/functions/other"`
	ChangeDeadline   time.Time `json:"change_deadline,omitzero" doc:"变更期限 / change deadline"`
	Overdue          bool      `json:"overdue" doc:"变更已逾期 / change overdue"`
	ReturnReasons    []Reason  `json:"return_reasons,omitempty" doc:"退回原因 / reasons it was returned"`
	CreatedAt        time.Time `json:"created_at"`
	UpdatedAt        time.Time `json:"updated_at"`
	FirstPublishedAt time.Time `json:"first_published_at,omitzero" doc:"发布日期 / publish date"`
	RetiredAt        time.Time `json:"retired_at,omitzero"`
}

// Version is one published version of an entry.
type Version struct {
	EntryID     int64     `json:"entry_id"`
	Version     int       `json:"version"`
	Content     Content   `json:"content"`
	PublishedAt time.Time `json:"published_at"`
	PublishedBy int64     `json:"published_by"`
}

// CodeRule says how resource codes are formed: Prefix + classification code
// + Separator + sequence padded to Width digits.
type CodeRule struct {
	Prefix    string
	Separator string
	Width     int
}

// Config holds the catalog rules a deployment sets.
type Config struct {
	Code CodeRule
	// External is true on an external-network (互联网) deployment, where
	// classified entries may not be registered.
	External bool
	// ChangeDeadlineDays is the working-day deadline for a change caused by
	// a change of law or of the department's functions.
	ChangeDeadlineDays int
}

// DefaultConfig follows the 2017 guide: classification + "/" + 6 digits.
func DefaultConfig() Config {
	return Config{Code: CodeRule{Separator: "/", Width: 6}, ChangeDeadlineDays: 15}
}

// Auditor is the part of the audit log the catalog needs.
type Auditor interface {
	Append(ctx context.Context, e audit.Event) error
}

// Service runs the catalog.
type Service struct {
	db    *store.DB
	audit Auditor
	cal   calendar.WorkingDays
	cfg   Config
	now   func() time.Time
	// onChange, when set, is told about every entry whose published
	// content changed (for the search index).
	onChange []func(ctx context.Context, entryID int64)
	index    search.Index
	indexErr func(id int64, err error)
}

// NewService builds the catalog service.
func NewService(db *store.DB, a Auditor, cal calendar.WorkingDays, cfg Config) *Service {
	if cfg.Code.Width <= 0 {
		cfg.Code.Width = 6
	}
	if cfg.ChangeDeadlineDays <= 0 {
		cfg.ChangeDeadlineDays = 15
	}
	return &Service{db: db, audit: a, cal: cal, cfg: cfg, now: store.Now}
}

// SetClock replaces the clock for tests.
func (s *Service) SetClock(now func() time.Time) { s.now = now }

// OnChange registers a function called after an entry is published,
// changed or retired.
func (s *Service) OnChange(fn func(ctx context.Context, entryID int64)) {
	s.onChange = append(s.onChange, fn)
}

func (s *Service) changed(ctx context.Context, id int64) {
	for _, fn := range s.onChange {
		fn(ctx, id)
	}
}

// Errors of the workflow.
var (
	ErrState         = apperr.New(409, "catalog.state_conflict", "当前状态下不能执行此操作", "this cannot be done in the entry's current state")
	ErrReasonMissing = apperr.Invalid("catalog.return_reason_required", "reasons", "退回须说明原因", "returning an entry needs a reason")
	ErrChangeReason  = apperr.Invalid("catalog.change_reason_invalid", "reason", "变更原因应为 law(法律法规变化)、functions(职能调整) 或 other", "the change reason is law, functions or other")
)

func (s *Service) record(ctx context.Context, actor policy.Actor, action, objType, objID string, details map[string]any) error {
	return s.audit.Append(ctx, audit.By(actor, action, objType, objID, audit.ResultOK, details))
}

func (s *Service) authorize(ctx context.Context, actor policy.Actor, act policy.Action, dept int64, objType, objID string) error {
	if err := policy.Check(actor, act, policy.Target{DeptID: dept}); err != nil {
		_ = s.audit.Append(ctx, audit.By(actor, string(act), objType, objID, audit.ResultDenied, nil))
		return err
	}
	return nil
}

const entryCols = `id, dept_id, COALESCE(code, ''), state, draft, published_version, change_reason, change_deadline, return_reasons,
	created_at, updated_at, first_published_at, retired_at`

func (s *Service) scanEntry(row interface{ Scan(...any) error }) (Entry, error) {
	var e Entry
	var draft, reasons string
	var deadline, first, retired sql.NullTime
	if err := row.Scan(&e.ID, &e.DeptID, &e.Code, &e.State, &draft, &e.PublishedVersion, &e.ChangeReason, &deadline, &reasons,
		&e.CreatedAt, &e.UpdatedAt, &first, &retired); err != nil {
		return e, err
	}
	if err := json.Unmarshal([]byte(draft), &e.Draft); err != nil {
		return e, fmt.Errorf("entry %d: damaged draft: %w", e.ID, err)
	}
	if reasons != "" {
		_ = json.Unmarshal([]byte(reasons), &e.ReturnReasons)
	}
	e.ChangeDeadline, e.FirstPublishedAt, e.RetiredAt = deadline.Time, first.Time, retired.Time
	e.Overdue = !e.ChangeDeadline.IsZero() && e.State != Published && e.State != Retired && s.now().After(e.ChangeDeadline)
	return e, nil
}

// entry loads an entry inside a transaction (for update on PostgreSQL).
func (s *Service) entryTx(ctx context.Context, tx *store.Tx, id int64) (Entry, error) {
	lock := ""
	if tx.Dialect() == store.Postgres {
		lock = " FOR UPDATE"
	}
	e, err := s.scanEntry(tx.QueryRow(ctx, "SELECT "+entryCols+" FROM entries WHERE id = ?"+lock, id))
	if errors.Is(err, sql.ErrNoRows) {
		return e, apperr.ErrNotFound
	}
	return e, err
}

// Entry returns an entry the actor may see: published and retired entries
// are visible to every user; drafts only to the provider and reviewers.
func (s *Service) Entry(ctx context.Context, actor policy.Actor, id int64) (Entry, error) {
	e, err := s.scanEntry(s.db.QueryRow(ctx, "SELECT "+entryCols+" FROM entries WHERE id = ?", id))
	if errors.Is(err, sql.ErrNoRows) {
		return e, apperr.ErrNotFound
	} else if err != nil {
		return e, err
	}
	if e.PublishedVersion == 0 {
		if err := s.authorize(ctx, actor, policy.CatalogViewDraft, e.DeptID, "catalog_entry", itoa(id)); err != nil {
			return Entry{}, err
		}
	}
	return e, nil
}

func itoa(i int64) string { return strconv.FormatInt(i, 10) }

// CreateEntry registers a new entry as a draft of the actor's department.
func (s *Service) CreateEntry(ctx context.Context, actor policy.Actor, c Content) (Entry, error) {
	if err := s.authorize(ctx, actor, policy.CatalogEdit, actor.DeptID, "catalog_entry", ""); err != nil {
		return Entry{}, err
	}
	if err := s.validate(ctx, &c); err != nil {
		return Entry{}, err
	}
	draft, _ := json.Marshal(c)
	now := s.now()
	var id int64
	if err := s.db.QueryRow(ctx, `INSERT INTO entries (dept_id, state, name, class_code, draft, created_by, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`, actor.DeptID, Draft, c.Name, c.ClassCode, string(draft), actor.UserID, now, now).Scan(&id); err != nil {
		return Entry{}, fmt.Errorf("create entry: %w", err)
	}
	if err := s.event(ctx, id, "create", actor, ""); err != nil {
		return Entry{}, err
	}
	if err := s.record(ctx, actor, "catalog.entry.create", "catalog_entry", itoa(id), map[string]any{"name": c.Name}); err != nil {
		return Entry{}, err
	}
	return s.Entry(ctx, actor, id)
}

func (s *Service) validate(ctx context.Context, c *Content) error {
	if err := c.Validate(s.cfg.External); err != nil {
		return err
	}
	return s.classExists(ctx, c.ClassCode)
}

func (s *Service) event(ctx context.Context, id int64, action string, actor policy.Actor, note string) error {
	_, err := s.db.Exec(ctx, "INSERT INTO entry_events (entry_id, action, actor_id, note, at) VALUES (?, ?, ?, ?, ?)", id, action, actor.UserID, note, s.now())
	return err
}

// transition runs one workflow step in a transaction: load and lock the
// entry, check who may act and that the state allows it, apply, record.
func (s *Service) transition(ctx context.Context, actor policy.Actor, id int64, act policy.Action, from []State, action string,
	apply func(tx *store.Tx, e *Entry) (note string, details map[string]any, err error)) (Entry, error) {
	var note string
	var details map[string]any
	// Authorize before the transaction: a refusal is audited, and the audit
	// writer must not wait on a transaction that waits on it. The owning
	// department of an entry never changes, so the check stays valid.
	var dept int64
	if err := s.db.QueryRow(ctx, "SELECT dept_id FROM entries WHERE id = ?", id).Scan(&dept); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return Entry{}, apperr.ErrNotFound
		}
		return Entry{}, err
	}
	if err := s.authorize(ctx, actor, act, dept, "catalog_entry", itoa(id)); err != nil {
		return Entry{}, err
	}
	err := s.db.InTx(ctx, func(tx *store.Tx) error {
		e, err := s.entryTx(ctx, tx, id)
		if err != nil {
			return err
		}
		ok := false
		for _, st := range from {
			ok = ok || e.State == st
		}
		if !ok {
			return ErrState
		}
		if note, details, err = apply(tx, &e); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, "INSERT INTO entry_events (entry_id, action, actor_id, note, at) VALUES (?, ?, ?, ?, ?)", id, action, actor.UserID, note, s.now())
		return err
	})
	if err != nil {
		return Entry{}, err
	}
	if details == nil {
		details = map[string]any{}
	}
	if note != "" {
		details["note"] = note
	}
	if err := s.record(ctx, actor, "catalog.entry."+action, "catalog_entry", itoa(id), details); err != nil {
		return Entry{}, err
	}
	return s.Entry(ctx, actor, id)
}

// UpdateDraft replaces the working copy of a draft or returned entry.
func (s *Service) UpdateDraft(ctx context.Context, actor policy.Actor, id int64, c Content) (Entry, error) {
	if err := s.validate(ctx, &c); err != nil {
		return Entry{}, err
	}
	return s.transition(ctx, actor, id, policy.CatalogEdit, []State{Draft, Returned}, "update", func(tx *store.Tx, e *Entry) (string, map[string]any, error) {
		if e.PublishedVersion > 0 && c.ClassCode != e.Draft.ClassCode {
			// The code is derived from the classification and never changes.
			return "", nil, apperr.Invalid("catalog.class_fixed", "class_code", "已发布信息资源的分类不能变更(资源代码不变)", "a published resource keeps its classification (its code never changes)")
		}
		draft, _ := json.Marshal(c)
		_, err := tx.Exec(ctx, "UPDATE entries SET draft = ?, name = ?, class_code = ?, updated_at = ? WHERE id = ?", string(draft), c.Name, c.ClassCode, s.now(), id)
		return "", map[string]any{"changes": DiffFields(e.Draft, c)}, err
	})
}

// Submit sends a draft for review.
func (s *Service) Submit(ctx context.Context, actor policy.Actor, id int64) (Entry, error) {
	return s.transition(ctx, actor, id, policy.CatalogEdit, []State{Draft, Returned}, "submit", func(tx *store.Tx, e *Entry) (string, map[string]any, error) {
		if err := s.validate(ctx, &e.Draft); err != nil {
			return "", nil, err
		}
		_, err := tx.Exec(ctx, "UPDATE entries SET state = ?, return_reasons = '', updated_at = ? WHERE id = ?", Submitted, s.now(), id)
		return "", nil, err
	})
}

// Return sends a submitted entry back to its provider with reasons.
func (s *Service) Return(ctx context.Context, actor policy.Actor, id int64, reasons []Reason) (Entry, error) {
	var clean []Reason
	for _, r := range reasons {
		if r.Text = strings.TrimSpace(r.Text); r.Text != "" {
			clean = append(clean, r)
		}
	}
	if len(clean) == 0 {
		return Entry{}, ErrReasonMissing
	}
	return s.transition(ctx, actor, id, policy.CatalogReview, []State{Submitted}, "return", func(tx *store.Tx, e *Entry) (string, map[string]any, error) {
		b, _ := json.Marshal(clean)
		_, err := tx.Exec(ctx, "UPDATE entries SET state = ?, return_reasons = ?, updated_at = ? WHERE id = ?", Returned, string(b), s.now(), id)
		return "", map[string]any{"reasons": clean}, err
	})
}

// Approve accepts a submitted entry for publication.
func (s *Service) Approve(ctx context.Context, actor policy.Actor, id int64) (Entry, error) {
	return s.transition(ctx, actor, id, policy.CatalogReview, []State{Submitted}, "approve", func(tx *store.Tx, e *Entry) (string, map[string]any, error) {
		_, err := tx.Exec(ctx, "UPDATE entries SET state = ?, updated_at = ? WHERE id = ?", Approved, s.now(), id)
		return "", nil, err
	})
}

// Publish makes an approved entry's working copy its next published
// version, issuing the resource code at first publication.
func (s *Service) Publish(ctx context.Context, actor policy.Actor, id int64) (Entry, error) {
	e, err := s.transition(ctx, actor, id, policy.CatalogReview, []State{Approved}, "publish", func(tx *store.Tx, e *Entry) (string, map[string]any, error) {
		now := s.now()
		code := e.Code
		if code == "" {
			var err error
			if code, err = s.nextCode(ctx, tx, e.Draft.ClassCode); err != nil {
				return "", nil, err
			}
		}
		version := e.PublishedVersion + 1
		content, _ := json.Marshal(e.Draft)
		if _, err := tx.Exec(ctx, "INSERT INTO entry_versions (entry_id, version, content, published_at, published_by) VALUES (?, ?, ?, ?, ?)",
			id, version, string(content), now, actor.UserID); err != nil {
			return "", nil, err
		}
		_, err := tx.Exec(ctx, `UPDATE entries SET state = ?, code = ?, published_version = ?, change_reason = '', change_deadline = NULL,
			first_published_at = COALESCE(first_published_at, ?), updated_at = ? WHERE id = ?`, Published, code, version, now, now, id)
		return "", map[string]any{"code": code, "version": version}, err
	})
	if err == nil {
		s.changed(ctx, id)
	}
	return e, err
}

// nextCode issues the next resource code of a classification. The
// sequence only grows, so a code is never issued twice, even after its
// entry is retired.
func (s *Service) nextCode(ctx context.Context, tx *store.Tx, class string) (string, error) {
	if _, err := tx.Exec(ctx, "INSERT INTO code_sequences (class_code, last) VALUES (?, 0) ON CONFLICT (class_code) DO NOTHING", class); err != nil {
		return "", err
	}
	var n int64
	if err := tx.QueryRow(ctx, "UPDATE code_sequences SET last = last + 1 WHERE class_code = ? RETURNING last", class).Scan(&n); err != nil {
		return "", fmt.Errorf("issue resource code: %w", err)
	}
	r := s.cfg.Code
	return fmt.Sprintf("%s%s%s%0*d", r.Prefix, class, r.Separator, r.Width, n), nil
}

// OpenChange starts a change request on a published entry: its working
// copy becomes editable again while the published version stays live. A
// change caused by law or by the department's functions has a deadline.
func (s *Service) OpenChange(ctx context.Context, actor policy.Actor, id int64, reason, note string) (Entry, error) {
	if reason != "law" && reason != "functions" && reason != "other" {
		return Entry{}, ErrChangeReason
	}
	return s.transition(ctx, actor, id, policy.CatalogEdit, []State{Published}, "change", func(tx *store.Tx, e *Entry) (string, map[string]any, error) {
		var deadline any
		details := map[string]any{"reason": reason}
		if reason != "other" {
			d, err := s.cal.AddWorkingDays(s.now(), s.cfg.ChangeDeadlineDays)
			if err != nil {
				return "", nil, err
			}
			deadline = d
			details["deadline"] = d
		}
		_, err := tx.Exec(ctx, "UPDATE entries SET state = ?, change_reason = ?, change_deadline = ?, updated_at = ? WHERE id = ?", Draft, reason, deadline, s.now(), id)
		return strings.TrimSpace(note), details, err
	})
}

// Retire withdraws a published entry. Its code stays issued and its
// versions stay readable.
func (s *Service) Retire(ctx context.Context, actor policy.Actor, id int64, note string) (Entry, error) {
	e, err := s.transition(ctx, actor, id, policy.CatalogReview, []State{Published}, "retire", func(tx *store.Tx, e *Entry) (string, map[string]any, error) {
		_, err := tx.Exec(ctx, "UPDATE entries SET state = ?, retired_at = ?, updated_at = ? WHERE id = ?", Retired, s.now(), s.now(), id)
		return strings.TrimSpace(note), nil, err
	})
	if err == nil {
		s.changed(ctx, id)
	}
	return e, err
}

// Versions lists an entry's published versions, newest first.
func (s *Service) Versions(ctx context.Context, actor policy.Actor, id int64) ([]Version, error) {
	if _, err := s.Entry(ctx, actor, id); err != nil {
		return nil, err
	}
	rows, err := s.db.Query(ctx, "SELECT entry_id, version, content, published_at, published_by FROM entry_versions WHERE entry_id = ? ORDER BY version DESC", id)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Version
	for rows.Next() {
		var v Version
		var content string
		if err := rows.Scan(&v.EntryID, &v.Version, &content, &v.PublishedAt, &v.PublishedBy); err != nil {
			return nil, err
		}
		if err := json.Unmarshal([]byte(content), &v.Content); err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// Filter narrows an entry list.
type Filter struct {
	DeptID int64
	State  State
	Limit  int
	After  int64 // keyset paging: entries with id > After
	// Overdue selects changes past their working-day deadline.
	Overdue bool
}

// Entries lists entries: published ones for everyone, drafts of the
// departments the actor may see drafts of.
func (s *Service) Entries(ctx context.Context, actor policy.Actor, f Filter) ([]Entry, error) {
	var conds []string
	var args []any
	if f.DeptID != 0 {
		conds = append(conds, "dept_id = ?")
		args = append(args, f.DeptID)
	}
	if f.State != "" {
		conds = append(conds, "state = ?")
		args = append(args, f.State)
	}
	if !policy.Allowed(actor, policy.CatalogViewDraft, policy.Target{DeptID: -1}) {
		// Not a platform-wide reviewer: drafts of the own department only.
		if policy.Allowed(actor, policy.CatalogViewDraft, policy.Target{DeptID: actor.DeptID}) {
			conds = append(conds, "(published_version > 0 OR dept_id = ?)")
			args = append(args, actor.DeptID)
		} else {
			conds = append(conds, "published_version > 0")
		}
	}
	if f.Overdue {
		conds = append(conds, "change_deadline IS NOT NULL AND change_deadline < ? AND state NOT IN ('published', 'retired')")
		args = append(args, s.now())
	}
	if f.After > 0 {
		conds = append(conds, "id > ?")
		args = append(args, f.After)
	}
	q := "SELECT " + entryCols + " FROM entries"
	if len(conds) > 0 {
		q += " WHERE " + strings.Join(conds, " AND ")
	}
	if f.Limit <= 0 || f.Limit > 500 {
		f.Limit = 100
	}
	q += fmt.Sprintf(" ORDER BY id LIMIT %d", f.Limit)
	rows, err := s.db.Query(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Entry
	for rows.Next() {
		e, err := s.scanEntry(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// Published returns a published entry with the content of its latest
// published version, for sharing: what a consumer may apply for is what
// was published, not the working copy. Retired and never-published
// entries are not found.
func (s *Service) Published(ctx context.Context, id int64) (Entry, Content, error) {
	e, err := s.scanEntry(s.db.QueryRow(ctx, "SELECT "+entryCols+" FROM entries WHERE id = ?", id))
	if errors.Is(err, sql.ErrNoRows) || (err == nil && (e.PublishedVersion == 0 || e.State == Retired)) {
		return Entry{}, Content{}, apperr.ErrNotFound
	} else if err != nil {
		return Entry{}, Content{}, err
	}
	var raw string
	if err := s.db.QueryRow(ctx, "SELECT content FROM entry_versions WHERE entry_id = ? AND version = ?", id, e.PublishedVersion).Scan(&raw); err != nil {
		return Entry{}, Content{}, err
	}
	var c Content
	if err := json.Unmarshal([]byte(raw), &c); err != nil {
		return Entry{}, Content{}, err
	}
	return e, c, nil
}
