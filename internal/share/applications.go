package share

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"govshare/internal/apperr"
	"govshare/internal/audit"
	"govshare/internal/calendar"
	"govshare/internal/catalog"
	"govshare/internal/notify"
	"govshare/internal/policy"
	"govshare/internal/store"
	"govshare/internal/ttlcache"
)

// Kind is what sort of request an application is; it follows from the
// resource's share type.
type Kind string

// Kinds.
const (
	KindSubscription Kind = "subscription" // 无条件共享：直接订阅
	KindApplication  Kind = "application"  // 有条件共享：申请
	KindNegotiation  Kind = "negotiation"  // 不予共享：协商
)

// State is where an application stands.
type State string

// Application states:
//
//	submitted → accepted → approved | rejected
//	rejected, or submitted/accepted past the deadline → escalated
//	escalated → ruled_share (provider must provide) → approved | upheld
//	submitted/accepted/escalated → withdrawn
//	negotiation: submitted → answered
const (
	Submitted  State = "submitted"
	Accepted   State = "accepted"
	Approved   State = "approved"
	Rejected   State = "rejected"
	Withdrawn  State = "withdrawn"
	Escalated  State = "escalated"
	RuledShare State = "ruled_share"
	Upheld     State = "upheld"
	Answered   State = "answered"
)

// TimelineEvent is one step on an application's timeline.
type TimelineEvent struct {
	Action     string         `json:"action" doc:"submit/accept/approve/reject/withdraw/escalate/rule/provide/answer/attach/revoke"`
	ActorLogin string         `json:"actor" doc:"操作人 / who"`
	ActorDept  string         `json:"actor_dept,omitempty" doc:"操作人部门 / their department"`
	Note       string         `json:"note,omitempty" doc:"说明 / note"`
	Details    map[string]any `json:"details,omitempty"`
	At         time.Time      `json:"at"`
}

// Attachment is a file an applicant attached, e.g. a signed security
// agreement.
type Attachment struct {
	ID          int64     `json:"id"`
	Name        string    `json:"name"`
	ContentType string    `json:"content_type"`
	Size        int64     `json:"size"`
	SHA256      string    `json:"sha256"`
	UploadedAt  time.Time `json:"uploaded_at"`
}

// Application is a consumer department's request for a resource (共享申请).
type Application struct {
	ID              int64             `json:"id"`
	Kind            Kind              `json:"kind" doc:"subscription/application/negotiation"`
	State           State             `json:"state"`
	EntryID         int64             `json:"entry_id"`
	EntryVersion    int               `json:"entry_version" doc:"申请时的目录版本 / catalog version applied for"`
	EntryCode       string            `json:"entry_code"`
	EntryName       string            `json:"entry_name"`
	ShareBasis      string            `json:"share_basis,omitempty" doc:"不予共享的依据 / why the resource is not shared"`
	ProviderDeptID  int64             `json:"provider_dept_id"`
	ProviderDept    string            `json:"provider_dept"`
	ConsumerDeptID  int64             `json:"consumer_dept_id"`
	ConsumerDept    string            `json:"consumer_dept"`
	ApplicantID     int64             `json:"applicant_id"`
	ApplicantApp    string            `json:"applicant_app,omitempty"`
	Requested       Terms             `json:"requested" doc:"申请内容 / what was asked"`
	Decided         *Terms            `json:"decided,omitempty" doc:"批准或裁定的内容 / what was approved or ruled"`
	Changes         []TermChange      `json:"changes,omitempty" doc:"批准内容与申请的差异 / how the approval differs from the request"`
	AnswerDeadline  time.Time         `json:"answer_deadline,omitzero" doc:"提供方答复期限 / provider's deadline to answer"`
	ProvideDeadline time.Time         `json:"provide_deadline,omitzero" doc:"按裁定提供的期限 / deadline to provide after a ruling"`
	Overdue         bool              `json:"overdue" doc:"已逾期 / past its deadline"`
	Reason          string            `json:"reason,omitempty" doc:"不予同意的理由 / reason for refusal"`
	Escalation      string            `json:"escalation,omitempty" doc:"提请协调的理由 / why it was escalated"`
	Outcome         string            `json:"outcome,omitempty" doc:"协调结果或答复 / coordination outcome or answer"`
	GrantID         int64             `json:"grant_id,omitempty"`
	CreatedAt       time.Time         `json:"created_at"`
	UpdatedAt       time.Time         `json:"updated_at"`
	Events          []TimelineEvent   `json:"events,omitempty" doc:"全过程 / timeline"`
	Attachments     []Attachment      `json:"attachments,omitempty"`
	Actions         map[string]bool   `json:"-"`
	Items           map[string]string `json:"-"` // machine name → item name, for pages
	AppNames        map[int64]string  `json:"-"` // app id → name, for pages
}

// Open reports whether the application still waits on someone.
func (a Application) Open() bool {
	switch a.State {
	case Submitted, Accepted, Escalated, RuledShare:
		return true
	}
	return false
}

// Config holds the sharing deadlines a deployment sets.
type Config struct {
	// AnswerDays is the provider's deadline to answer, in working days.
	AnswerDays int
	// ProvideDays is the provider's deadline to provide after a ruling.
	ProvideDays int
	Log         *slog.Logger
}

// Notifier tells people about sharing events.
type Notifier interface {
	Send(ctx context.Context, n notify.Notice) error
}

// Service runs applications and grants.
type Service struct {
	db     *store.DB
	audit  Auditor
	cat    *catalog.Service
	cal    calendar.WorkingDays
	notify Notifier
	cfg    Config
	now    func() time.Time
	grants *ttlcache.Cache[grantKey, *grantSet]
}

// NewService builds the sharing service. n may be nil.
func NewService(db *store.DB, a Auditor, cat *catalog.Service, cal calendar.WorkingDays, n Notifier, cfg Config) *Service {
	if cfg.AnswerDays <= 0 {
		cfg.AnswerDays = 10
	}
	if cfg.ProvideDays <= 0 {
		cfg.ProvideDays = 5
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	return &Service{db: db, audit: a, cat: cat, cal: cal, notify: n, cfg: cfg, now: store.Now, grants: ttlcache.New[grantKey, *grantSet](time.Second, 10000)}
}

// SetClock replaces the clock for tests.
func (s *Service) SetClock(now func() time.Time) { s.now = now }

// Errors of the workflow.
var (
	ErrState       = apperr.New(http.StatusConflict, "share.state_conflict", "申请当前状态下不能执行此操作", "this cannot be done in the application's current state")
	ErrOwnResource = apperr.Invalid("share.own_resource", "entry_id", "本部门的资源无需申请", "your department's own resources need no application")
	ErrReason      = apperr.Invalid("share.reason_required", "reason", "请说明理由", "give a reason")
	ErrNote        = apperr.Invalid("share.note_required", "note", "请填写说明", "write a note")
	ErrOutcome     = apperr.Invalid("share.outcome_invalid", "outcome", "协调结果应为 share(裁定共享) 或 refuse(维持不予共享)", "the outcome is share (ruled to share) or refuse (refusal upheld)")
	ErrNotDue      = apperr.New(http.StatusConflict, "share.not_escalable", "只有被拒绝或已逾期未答复的申请可以提请协调", "only a refused application, or one past its deadline unanswered, can be escalated")
	ErrAttachment  = apperr.Invalid("share.attachment_invalid", "file", "附件应为 pdf、ofd、jpg、png、doc、docx 或 zip，且不超过10MB", "attachments are pdf, ofd, jpg, png, doc, docx or zip files of at most 10 MB")
)

// MaxAttachment is the largest attachment accepted.
const MaxAttachment = 10 << 20

func itoa(i int64) string { return strconv.FormatInt(i, 10) }

func (s *Service) authorize(ctx context.Context, actor policy.Actor, act policy.Action, dept int64, objType, objID string) error {
	if err := policy.Check(actor, act, policy.Target{DeptID: dept}); err != nil {
		_ = s.audit.Append(ctx, audit.By(actor, string(act), objType, objID, audit.ResultDenied, nil))
		return err
	}
	return nil
}

func (s *Service) send(ctx context.Context, n notify.Notice) {
	if s.notify == nil {
		return
	}
	if err := s.notify.Send(ctx, n); err != nil {
		// The task stays in the to-do inbox, which is derived from state.
		s.cfg.Log.Warn("notification not sent", "kind", n.Kind, "object", n.ObjectID, "err", err)
	}
}

var providerRoles = []policy.Role{policy.DeptAdmin, policy.DeptReviewer}

// Apply files a request for a published resource: a subscription that is
// granted at once for an unconditional resource, an application that
// waits on the provider for a conditional one, and a negotiation request
// for a resource that is not shared.
func (s *Service) Apply(ctx context.Context, actor policy.Actor, entryID int64, t Terms) (Application, error) {
	if err := s.authorize(ctx, actor, policy.ShareApply, actor.DeptID, "share_application", ""); err != nil {
		return Application{}, err
	}
	e, c, err := s.cat.Published(ctx, entryID)
	if err != nil {
		return Application{}, err
	}
	if e.DeptID == actor.DeptID {
		return Application{}, ErrOwnResource
	}
	now := s.now()
	kind := KindApplication
	switch c.ShareType {
	case catalog.ShareUnconditional:
		kind = KindSubscription
		if len(t.Items) == 0 {
			for _, it := range c.Items {
				t.Items = append(t.Items, it.MachineName)
			}
		}
		if len(t.Methods) == 0 {
			t.Methods = c.ShareMethods
		}
		err = t.validate(c, now, false, false)
	case catalog.ShareConditional:
		err = t.validate(c, now, true, true)
	default:
		kind = KindNegotiation
		// Nothing can be granted; the request states what is needed and why.
		t.Methods = nil
		t.Purpose, t.Basis = strings.TrimSpace(t.Purpose), strings.TrimSpace(t.Basis)
		switch {
		case t.Purpose == "" || utf8.RuneCountInString(t.Purpose) > 500:
			err = ErrPurpose
		case t.Basis == "" || utf8.RuneCountInString(t.Basis) > 500:
			err = ErrBasis
		}
		t.Items, t.RowScope, t.AppIDs = compact(t.Items), nil, nil
	}
	if err != nil {
		return Application{}, err
	}
	if actor.App != "" && len(t.AppIDs) == 0 {
		// An app applying for itself asks for itself.
		var id int64
		if err := s.db.QueryRow(ctx, "SELECT id FROM apps WHERE app_key = ?", actor.App).Scan(&id); err == nil {
			t.AppIDs = []int64{id}
		}
	}
	if err := s.checkApps(ctx, actor.DeptID, t.AppIDs); err != nil {
		return Application{}, err
	}
	var deadline time.Time
	if kind != KindSubscription {
		if deadline, err = s.cal.AddWorkingDays(now, s.cfg.AnswerDays); err != nil {
			s.calendarMissing(ctx, err)
			return Application{}, err
		}
	}
	req, _ := json.Marshal(t)
	state := Submitted
	if kind == KindSubscription {
		state = Approved
	}
	var id, grantID int64
	err = s.db.InTx(ctx, func(tx *store.Tx) error {
		if err := tx.QueryRow(ctx, `INSERT INTO share_applications (kind, state, entry_id, entry_version, provider_dept_id, consumer_dept_id,
			applicant_id, applicant_app, requested, answer_deadline, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
			kind, state, e.ID, e.PublishedVersion, e.DeptID, actor.DeptID, actor.UserID, actor.App, string(req), nullTime(deadline), now, now).Scan(&id); err != nil {
			return fmt.Errorf("insert application: %w", err)
		}
		if err := s.event(ctx, tx, id, actor, "submit", "", nil); err != nil {
			return err
		}
		if kind == KindSubscription {
			g, err := s.insertGrant(ctx, tx, id, e, actor.DeptID, t, now)
			if err != nil {
				return err
			}
			grantID = g
			if _, err := tx.Exec(ctx, "UPDATE share_applications SET grant_id = ?, decided = ? WHERE id = ?", g, string(req), id); err != nil {
				return err
			}
			return s.event(ctx, tx, id, actor, "grant", "", map[string]any{"grant_id": g})
		}
		return nil
	})
	if err != nil {
		return Application{}, err
	}
	details := map[string]any{"entry_id": e.ID, "entry_code": e.Code, "kind": kind, "items": t.Items, "methods": t.Methods, "purpose": t.Purpose}
	if err := s.audit.Append(ctx, audit.By(actor, "share."+string(kind)+".submit", "share_application", itoa(id), audit.ResultOK, details)); err != nil {
		return Application{}, err
	}
	href := fmt.Sprintf("/applications/%d", id)
	switch kind {
	case KindSubscription:
		s.grants.Drop()
		if err := s.audit.Append(ctx, audit.By(actor, "share.grant.create", "share_grant", itoa(grantID), audit.ResultOK,
			map[string]any{"application_id": id, "entry_code": e.Code, "items": t.Items})); err != nil {
			return Application{}, err
		}
		s.send(ctx, notify.Notice{Kind: "subscription.created", DeptID: e.DeptID, Roles: providerRoles, Href: href, ObjectType: "share_application", ObjectID: itoa(id),
			TitleZH: "新的订阅：" + c.Name, TitleEN: "New subscription: " + c.Name})
	case KindApplication:
		s.send(ctx, notify.Notice{Kind: "application.submitted", DeptID: e.DeptID, Roles: providerRoles, Href: href, ObjectType: "share_application", ObjectID: itoa(id),
			TitleZH: "待审批的共享申请：" + c.Name, TitleEN: "Application to decide: " + c.Name, Data: map[string]any{"deadline": deadline}})
	case KindNegotiation:
		n := notify.Notice{Kind: "negotiation.submitted", DeptID: e.DeptID, Roles: providerRoles, Href: href, ObjectType: "share_application", ObjectID: itoa(id),
			TitleZH: "协商请求：" + c.Name, TitleEN: "Negotiation request: " + c.Name}
		s.send(ctx, n)
		n.DeptID, n.Roles = 0, []policy.Role{policy.PlatformAdmin}
		s.send(ctx, n)
	}
	return s.Application(ctx, actor, id)
}

// calendarMissing tells the platform administrators that a deadline could
// not be computed, so they load the year.
func (s *Service) calendarMissing(ctx context.Context, err error) {
	if ae, ok := apperr.As(err); ok && ae.Code == calendar.ErrYearMissing.Code {
		s.send(ctx, notify.Notice{Kind: "calendar.year_missing", Roles: []policy.Role{policy.PlatformAdmin}, Href: "/calendar",
			TitleZH: ae.ZH, TitleEN: ae.EN, ObjectType: "calendar"})
	}
}

func nullTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t
}

// checkApps refuses apps that are not the department's active apps.
func (s *Service) checkApps(ctx context.Context, dept int64, ids []int64) error {
	for _, id := range ids {
		var d int64
		var status string
		err := s.db.QueryRow(ctx, "SELECT dept_id, status FROM apps WHERE id = ?", id).Scan(&d, &status)
		if errors.Is(err, sql.ErrNoRows) || (err == nil && (d != dept || status != "active")) {
			return ErrAppIDs
		} else if err != nil {
			return err
		}
	}
	return nil
}

func (s *Service) event(ctx context.Context, tx *store.Tx, id int64, actor policy.Actor, action, note string, details map[string]any) error {
	var raw string
	if len(details) > 0 {
		b, _ := json.Marshal(details)
		raw = string(b)
	}
	login := actor.Login
	if actor.App != "" {
		login = "app:" + actor.App
	}
	_, err := tx.Exec(ctx, `INSERT INTO share_application_events (application_id, action, actor_id, actor_login, actor_dept_id, note, details, at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, id, action, actor.UserID, login, actor.DeptID, note, raw, s.now())
	return err
}

const applicationCols = `a.id, a.kind, a.state, a.entry_id, a.entry_version, COALESCE(e.code, ''), e.name, a.provider_dept_id, pd.name,
	a.consumer_dept_id, cd.name, a.applicant_id, a.applicant_app, a.requested, a.decided, a.answer_deadline, a.provide_deadline,
	a.reason, a.escalation, a.outcome, COALESCE(a.grant_id, 0), a.created_at, a.updated_at`

const applicationFrom = ` FROM share_applications a JOIN entries e ON e.id = a.entry_id
	JOIN departments pd ON pd.id = a.provider_dept_id JOIN departments cd ON cd.id = a.consumer_dept_id`

func (s *Service) scanApp(row store.Row) (Application, error) {
	var a Application
	var req, dec string
	var answer, provide sql.NullTime
	err := row.Scan(&a.ID, &a.Kind, &a.State, &a.EntryID, &a.EntryVersion, &a.EntryCode, &a.EntryName, &a.ProviderDeptID, &a.ProviderDept,
		&a.ConsumerDeptID, &a.ConsumerDept, &a.ApplicantID, &a.ApplicantApp, &req, &dec, &answer, &provide,
		&a.Reason, &a.Escalation, &a.Outcome, &a.GrantID, &a.CreatedAt, &a.UpdatedAt)
	if err != nil {
		return a, err
	}
	if err := json.Unmarshal([]byte(req), &a.Requested); err != nil {
		return a, err
	}
	if dec != "" {
		a.Decided = new(Terms)
		if err := json.Unmarshal([]byte(dec), a.Decided); err != nil {
			return a, err
		}
		a.Changes = Changes(a.Requested, *a.Decided)
	}
	a.AnswerDeadline, a.ProvideDeadline = answer.Time.UTC(), provide.Time.UTC()
	now := s.now()
	switch a.State {
	case Submitted, Accepted:
		a.Overdue = !a.AnswerDeadline.IsZero() && now.After(a.AnswerDeadline)
	case RuledShare:
		a.Overdue = now.After(a.ProvideDeadline)
	}
	return a, nil
}

// canView reports whether the actor may see an application: its
// consumer department, the provider's reviewers and the platform
// administrators.
func canView(actor policy.Actor, a Application) bool {
	return policy.Allowed(actor, policy.ShareView, policy.Target{DeptID: a.ConsumerDeptID}) ||
		policy.Allowed(actor, policy.ShareDecide, policy.Target{DeptID: a.ProviderDeptID}) ||
		policy.Allowed(actor, policy.ShareCoordinate, policy.Target{})
}

// Application returns one application with its timeline and attachments.
func (s *Service) Application(ctx context.Context, actor policy.Actor, id int64) (Application, error) {
	a, err := s.scanApp(s.db.QueryRow(ctx, "SELECT "+applicationCols+applicationFrom+" WHERE a.id = ?", id))
	if errors.Is(err, sql.ErrNoRows) {
		return a, apperr.ErrNotFound
	} else if err != nil {
		return a, err
	}
	if !canView(actor, a) {
		_ = s.audit.Append(ctx, audit.By(actor, string(policy.ShareView), "share_application", itoa(id), audit.ResultDenied, nil))
		return Application{}, apperr.ErrDenied
	}
	if err := s.details(ctx, &a); err != nil {
		return a, err
	}
	a.Actions = s.actions(actor, a)
	return a, nil
}

func (s *Service) details(ctx context.Context, a *Application) error {
	rows, err := s.db.Query(ctx, `SELECT ev.action, ev.actor_login, COALESCE(d.name, ''), ev.note, ev.details, ev.at
		FROM share_application_events ev LEFT JOIN departments d ON d.id = ev.actor_dept_id WHERE ev.application_id = ? ORDER BY ev.id`, a.ID)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var ev TimelineEvent
		var raw string
		if err := rows.Scan(&ev.Action, &ev.ActorLogin, &ev.ActorDept, &ev.Note, &raw, &ev.At); err != nil {
			return err
		}
		if raw != "" {
			_ = json.Unmarshal([]byte(raw), &ev.Details)
		}
		a.Events = append(a.Events, ev)
	}
	if err := rows.Err(); err != nil {
		return err
	}
	rows2, err := s.db.Query(ctx, "SELECT id, name, content_type, size, sha256, uploaded_at FROM share_attachments WHERE application_id = ? ORDER BY id", a.ID)
	if err != nil {
		return err
	}
	defer rows2.Close()
	for rows2.Next() {
		var at Attachment
		if err := rows2.Scan(&at.ID, &at.Name, &at.ContentType, &at.Size, &at.SHA256, &at.UploadedAt); err != nil {
			return err
		}
		a.Attachments = append(a.Attachments, at)
	}
	if err := rows2.Err(); err != nil {
		return err
	}
	a.AppNames = s.appNames(ctx, a.Requested.AppIDs)
	// Item names from the version applied for, for pages.
	a.Items = map[string]string{}
	if _, c, err := s.cat.Published(ctx, a.EntryID); err == nil {
		for _, it := range c.Items {
			a.Items[it.MachineName] = it.Name
		}
		a.ShareBasis = c.ShareBasis
	}
	return nil
}

// actions says which steps the actor may take now, for pages.
func (s *Service) actions(actor policy.Actor, a Application) map[string]bool {
	provider := policy.Allowed(actor, policy.ShareDecide, policy.Target{DeptID: a.ProviderDeptID})
	consumer := policy.Allowed(actor, policy.ShareApply, policy.Target{DeptID: a.ConsumerDeptID})
	admin := policy.Allowed(actor, policy.ShareCoordinate, policy.Target{})
	pending := a.State == Submitted || a.State == Accepted
	return map[string]bool{
		"accept":   provider && a.Kind == KindApplication && a.State == Submitted,
		"approve":  provider && a.Kind == KindApplication && pending,
		"reject":   provider && a.Kind == KindApplication && pending,
		"withdraw": consumer && a.Kind != KindSubscription && (pending || a.State == Escalated),
		"escalate": consumer && a.Kind == KindApplication && (a.State == Rejected || (pending && a.Overdue)),
		"rule":     admin && a.State == Escalated,
		"provide":  provider && a.State == RuledShare,
		"answer":   (provider || admin) && a.Kind == KindNegotiation && a.State == Submitted,
		"attach":   consumer && a.Kind != KindSubscription && (pending || a.State == Escalated),
	}
}

// ListFilter narrows a list of applications. Side is "consumer" (my
// department's applications), "provider" (applications to my department)
// or "all" (platform administrators).
type ListFilter struct {
	Side    string
	State   State
	Kind    Kind
	EntryID int64
	Limit   int
	Offset  int
}

// Applications lists applications on one side.
func (s *Service) Applications(ctx context.Context, actor policy.Actor, f ListFilter) ([]Application, error) {
	where, args, err := s.sideWhere(ctx, actor, f.Side, "a", "share_application")
	if err != nil {
		return nil, err
	}
	if f.State != "" {
		where += " AND a.state = ?"
		args = append(args, f.State)
	}
	if f.Kind != "" {
		where += " AND a.kind = ?"
		args = append(args, f.Kind)
	}
	if f.EntryID != 0 {
		where += " AND a.entry_id = ?"
		args = append(args, f.EntryID)
	}
	if f.Limit <= 0 || f.Limit > 500 {
		f.Limit = 100
	}
	return store.All(ctx, s.db, s.scanApp, "SELECT "+applicationCols+applicationFrom+" WHERE "+where+" ORDER BY a.updated_at DESC, a.id DESC LIMIT ? OFFSET ?",
		append(args, f.Limit, f.Offset)...)
}

// sideWhere turns a side into a condition the actor is allowed.
func (s *Service) sideWhere(ctx context.Context, actor policy.Actor, side, alias, objType string) (string, []any, error) {
	switch side {
	case "all":
		if err := s.authorize(ctx, actor, policy.ShareCoordinate, 0, objType, ""); err != nil {
			return "", nil, err
		}
		return "1 = 1", nil, nil
	case "provider", "given":
		if err := s.authorize(ctx, actor, policy.ShareView, actor.DeptID, objType, ""); err != nil {
			return "", nil, err
		}
		return alias + ".provider_dept_id = ?", []any{actor.DeptID}, nil
	case "", "consumer", "mine":
		if err := s.authorize(ctx, actor, policy.ShareView, actor.DeptID, objType, ""); err != nil {
			return "", nil, err
		}
		return alias + ".consumer_dept_id = ?", []any{actor.DeptID}, nil
	}
	return "", nil, apperr.Invalid("share.side_invalid", "side", "side 应为 consumer、provider 或 all", "side is consumer, provider or all")
}

// step runs one workflow step in a transaction: check who may act (before
// the transaction, so a refusal is audited), then lock the application,
// check its state, apply, record on the timeline, audit and notify.
func (s *Service) step(ctx context.Context, actor policy.Actor, id int64, act policy.Action, side string, action string, from []State,
	apply func(tx *store.Tx, a *Application) (note string, details map[string]any, err error), pre ...func() error) (Application, error) {
	a, err := s.scanApp(s.db.QueryRow(ctx, "SELECT "+applicationCols+applicationFrom+" WHERE a.id = ?", id))
	if errors.Is(err, sql.ErrNoRows) {
		return Application{}, apperr.ErrNotFound
	} else if err != nil {
		return Application{}, err
	}
	dept := a.ProviderDeptID
	switch side {
	case "consumer":
		dept = a.ConsumerDeptID
	case "admin":
		dept = 0
	}
	if err := s.authorize(ctx, actor, act, dept, "share_application", itoa(id)); err != nil {
		return Application{}, err
	}
	// Input is checked only for those allowed to act: a refusal says no
	// more than that.
	for _, check := range pre {
		if err := check(); err != nil {
			return Application{}, err
		}
	}
	var note string
	var details map[string]any
	err = s.db.InTx(ctx, func(tx *store.Tx) error {
		// Re-read inside the transaction: the state decides.
		cur, err := s.scanApp(tx.QueryRow(ctx, "SELECT "+applicationCols+applicationFrom+" WHERE a.id = ?", id))
		if err != nil {
			return err
		}
		ok := false
		for _, st := range from {
			ok = ok || cur.State == st
		}
		if !ok {
			return ErrState
		}
		if note, details, err = apply(tx, &cur); err != nil {
			return err
		}
		dec := ""
		if cur.Decided != nil {
			b, _ := json.Marshal(cur.Decided)
			dec = string(b)
		}
		res, err := tx.Exec(ctx, `UPDATE share_applications SET state = ?, decided = ?, provide_deadline = ?, reason = ?, escalation = ?,
			outcome = ?, grant_id = ?, updated_at = ? WHERE id = ? AND state = ?`, cur.State, dec, nullTime(cur.ProvideDeadline), cur.Reason,
			cur.Escalation, cur.Outcome, nullInt(cur.GrantID), s.now(), id, a.State)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return ErrState
		}
		a = cur
		return s.event(ctx, tx, id, actor, action, note, details)
	})
	if err != nil {
		return Application{}, err
	}
	if details == nil {
		details = map[string]any{}
	}
	if note != "" {
		details["note"] = note
	}
	details["state"] = a.State
	if err := s.audit.Append(ctx, audit.By(actor, "share.application."+action, "share_application", itoa(id), audit.ResultOK, details)); err != nil {
		return Application{}, err
	}
	return s.Application(ctx, actor, id)
}

// appNames names apps for pages; unknown ids are left out.
func (s *Service) appNames(ctx context.Context, ids []int64) map[int64]string {
	out := map[int64]string{}
	for _, id := range ids {
		var name string
		if err := s.db.QueryRow(ctx, "SELECT name FROM apps WHERE id = ?", id).Scan(&name); err == nil {
			out[id] = name
		}
	}
	return out
}

// required is a check that a trimmed text is not empty.
func required(v string, err error) func() error {
	return func() error {
		if v == "" {
			return err
		}
		return nil
	}
}

func nullInt(v int64) any {
	if v == 0 {
		return nil
	}
	return v
}

func (s *Service) tellConsumer(ctx context.Context, a Application, kind, zh, en string) {
	n := notify.Notice{Kind: kind, DeptID: a.ConsumerDeptID, Roles: []policy.Role{policy.DeptAdmin}, Href: fmt.Sprintf("/applications/%d", a.ID),
		ObjectType: "share_application", ObjectID: itoa(a.ID), TitleZH: zh + "：" + a.EntryName, TitleEN: en + ": " + a.EntryName}
	if a.ApplicantID != 0 {
		n.UserIDs = []int64{a.ApplicantID}
	}
	s.send(ctx, n)
}

func (s *Service) tellProvider(ctx context.Context, a Application, kind, zh, en string) {
	s.send(ctx, notify.Notice{Kind: kind, DeptID: a.ProviderDeptID, Roles: providerRoles, Href: fmt.Sprintf("/applications/%d", a.ID),
		ObjectType: "share_application", ObjectID: itoa(a.ID), TitleZH: zh + "：" + a.EntryName, TitleEN: en + ": " + a.EntryName})
}

// Accept records that the provider has taken the application up (受理).
func (s *Service) Accept(ctx context.Context, actor policy.Actor, id int64) (Application, error) {
	a, err := s.step(ctx, actor, id, policy.ShareDecide, "provider", "accept", []State{Submitted}, func(tx *store.Tx, a *Application) (string, map[string]any, error) {
		if a.Kind != KindApplication {
			return "", nil, ErrState
		}
		a.State = Accepted
		return "", nil, nil
	})
	if err == nil {
		s.tellConsumer(ctx, a, "application.accepted", "申请已受理", "Application accepted")
	}
	return a, err
}

// Approve grants the application, as asked or narrowed: the decision may
// drop items and methods, shorten the period, tighten the row scope and
// set limits. A nil decision grants what was asked.
func (s *Service) Approve(ctx context.Context, actor policy.Actor, id int64, decision *Terms, note string) (Application, error) {
	var grantID int64
	a, err := s.step(ctx, actor, id, policy.ShareDecide, "provider", "approve", []State{Submitted, Accepted}, func(tx *store.Tx, a *Application) (string, map[string]any, error) {
		if a.Kind != KindApplication {
			return "", nil, ErrState
		}
		d, err := s.decide(ctx, a, decision)
		if err != nil {
			return "", nil, err
		}
		if grantID, err = s.grantFor(ctx, tx, a, d); err != nil {
			return "", nil, err
		}
		a.State, a.Decided, a.GrantID = Approved, &d, grantID
		return strings.TrimSpace(note), map[string]any{"grant_id": grantID, "changes": Changes(a.Requested, d)}, nil
	})
	if err != nil {
		return a, err
	}
	if err := s.grantCreated(ctx, actor, a); err != nil {
		return a, err
	}
	zh, en := "申请已同意", "Application approved"
	if len(a.Changes) > 0 {
		zh, en = "申请已部分同意(有调整)", "Application approved with changes"
	}
	s.tellConsumer(ctx, a, "application.approved", zh, en)
	return a, nil
}

// decide validates a decision against the request and the resource.
func (s *Service) decide(ctx context.Context, a *Application, decision *Terms) (Terms, error) {
	d := a.Requested
	if decision != nil {
		d = *decision
		d.Purpose, d.Basis = a.Requested.Purpose, a.Requested.Basis
		if len(d.Items) == 0 {
			d.Items = a.Requested.Items
		}
		if len(d.Methods) == 0 {
			d.Methods = a.Requested.Methods
		}
		if d.ValidFrom.IsZero() {
			d.ValidFrom = a.Requested.ValidFrom
		}
		if d.ValidUntil.IsZero() {
			d.ValidUntil = a.Requested.ValidUntil
		}
		if d.RowScope == nil {
			d.RowScope = a.Requested.RowScope
		}
		if len(d.AppIDs) == 0 {
			d.AppIDs = a.Requested.AppIDs
		}
	}
	_, c, err := s.cat.Published(ctx, a.EntryID)
	if err != nil {
		return d, err
	}
	if err := d.validate(c, s.now(), true, true); err != nil {
		return d, err
	}
	if !narrows(a.Requested, d) {
		return d, ErrNotNarrower
	}
	return d, nil
}

func (s *Service) grantFor(ctx context.Context, tx *store.Tx, a *Application, d Terms) (int64, error) {
	var e catalog.Entry
	if err := tx.QueryRow(ctx, "SELECT id, dept_id, COALESCE(code, '') FROM entries WHERE id = ?", a.EntryID).Scan(&e.ID, &e.DeptID, &e.Code); err != nil {
		return 0, err
	}
	return s.insertGrant(ctx, tx, a.ID, e, a.ConsumerDeptID, d, s.now())
}

func (s *Service) grantCreated(ctx context.Context, actor policy.Actor, a Application) error {
	s.grants.Drop()
	return s.audit.Append(ctx, audit.By(actor, "share.grant.create", "share_grant", itoa(a.GrantID), audit.ResultOK,
		map[string]any{"application_id": a.ID, "entry_code": a.EntryCode, "items": a.Decided.Items, "consumer_dept_id": a.ConsumerDeptID}))
}

// Reject refuses the application; a reason is required.
func (s *Service) Reject(ctx context.Context, actor policy.Actor, id int64, reason string) (Application, error) {
	reason = strings.TrimSpace(reason)
	a, err := s.step(ctx, actor, id, policy.ShareDecide, "provider", "reject", []State{Submitted, Accepted}, func(tx *store.Tx, a *Application) (string, map[string]any, error) {
		if a.Kind != KindApplication {
			return "", nil, ErrState
		}
		a.State, a.Reason = Rejected, reason
		return reason, nil, nil
	}, required(reason, ErrReason))
	if err == nil {
		s.tellConsumer(ctx, a, "application.rejected", "申请未同意", "Application refused")
	}
	return a, err
}

// Withdraw lets the applicant take an open application back.
func (s *Service) Withdraw(ctx context.Context, actor policy.Actor, id int64) (Application, error) {
	a, err := s.step(ctx, actor, id, policy.ShareApply, "consumer", "withdraw", []State{Submitted, Accepted, Escalated}, func(tx *store.Tx, a *Application) (string, map[string]any, error) {
		a.State = Withdrawn
		return "", nil, nil
	})
	if err == nil {
		s.tellProvider(ctx, a, "application.withdrawn", "申请已撤回", "Application withdrawn")
	}
	return a, err
}

// Escalate asks the platform administrators to coordinate (协调) a refused
// application, or one the provider left unanswered past its deadline.
func (s *Service) Escalate(ctx context.Context, actor policy.Actor, id int64, reason string) (Application, error) {
	reason = strings.TrimSpace(reason)
	a, err := s.step(ctx, actor, id, policy.ShareApply, "consumer", "escalate", []State{Rejected, Submitted, Accepted}, func(tx *store.Tx, a *Application) (string, map[string]any, error) {
		if a.Kind != KindApplication || (a.State != Rejected && !a.Overdue) {
			return "", nil, ErrNotDue
		}
		a.State, a.Escalation = Escalated, reason
		return reason, nil, nil
	}, required(reason, ErrReason))
	if err == nil {
		s.send(ctx, notify.Notice{Kind: "application.escalated", Roles: []policy.Role{policy.PlatformAdmin}, Href: fmt.Sprintf("/applications/%d", a.ID),
			ObjectType: "share_application", ObjectID: itoa(a.ID), TitleZH: "待协调的共享申请：" + a.EntryName, TitleEN: "Application to coordinate: " + a.EntryName})
		s.tellProvider(ctx, a, "application.escalated", "申请已提请协调", "Application escalated for coordination")
	}
	return a, err
}

// Rule records the platform administrator's coordination outcome: "share"
// obliges the provider to provide (the requested terms, or narrower ones)
// within ProvideDays working days; "refuse" upholds the refusal.
func (s *Service) Rule(ctx context.Context, actor policy.Actor, id int64, outcome, note string, decision *Terms) (Application, error) {
	note = strings.TrimSpace(note)
	var deadline time.Time
	check := func() error {
		if note == "" {
			return ErrNote
		}
		if outcome != "share" && outcome != "refuse" {
			return ErrOutcome
		}
		if outcome == "share" {
			var err error
			if deadline, err = s.cal.AddWorkingDays(s.now(), s.cfg.ProvideDays); err != nil {
				s.calendarMissing(ctx, err)
				return err
			}
		}
		return nil
	}
	a, err := s.step(ctx, actor, id, policy.ShareCoordinate, "admin", "rule", []State{Escalated}, func(tx *store.Tx, a *Application) (string, map[string]any, error) {
		a.Outcome = note
		if outcome == "refuse" {
			a.State = Upheld
			return note, map[string]any{"outcome": outcome}, nil
		}
		d, err := s.decide(ctx, a, decision)
		if err != nil {
			return "", nil, err
		}
		a.State, a.Decided, a.ProvideDeadline = RuledShare, &d, deadline
		return note, map[string]any{"outcome": outcome, "provide_deadline": deadline}, nil
	}, check)
	if err != nil {
		return a, err
	}
	if outcome == "share" {
		s.tellProvider(ctx, a, "application.ruled_share", "协调裁定共享，请按期提供", "Ruled to share: provide by the deadline")
		s.tellConsumer(ctx, a, "application.ruled_share", "协调裁定共享", "Ruled to share")
	} else {
		s.tellConsumer(ctx, a, "application.upheld", "协调维持不予共享", "Refusal upheld")
	}
	return a, nil
}

// Provide fulfils a ruling to share: the provider grants what was ruled.
func (s *Service) Provide(ctx context.Context, actor policy.Actor, id int64, note string) (Application, error) {
	a, err := s.step(ctx, actor, id, policy.ShareDecide, "provider", "provide", []State{RuledShare}, func(tx *store.Tx, a *Application) (string, map[string]any, error) {
		if a.Decided == nil {
			return "", nil, ErrState
		}
		g, err := s.grantFor(ctx, tx, a, *a.Decided)
		if err != nil {
			return "", nil, err
		}
		a.State, a.GrantID = Approved, g
		return strings.TrimSpace(note), map[string]any{"grant_id": g}, nil
	})
	if err != nil {
		return a, err
	}
	if err := s.grantCreated(ctx, actor, a); err != nil {
		return a, err
	}
	s.tellConsumer(ctx, a, "application.provided", "已按协调结果提供", "Provided as ruled")
	return a, nil
}

// Answer closes a negotiation request with the provider's or the
// administrator's answer.
func (s *Service) Answer(ctx context.Context, actor policy.Actor, id int64, note string) (Application, error) {
	note = strings.TrimSpace(note)
	act, side := policy.ShareDecide, "provider"
	if policy.Allowed(actor, policy.ShareCoordinate, policy.Target{}) {
		act, side = policy.ShareCoordinate, "admin"
	}
	a, err := s.step(ctx, actor, id, act, side, "answer", []State{Submitted}, func(tx *store.Tx, a *Application) (string, map[string]any, error) {
		if a.Kind != KindNegotiation {
			return "", nil, ErrState
		}
		a.State, a.Outcome = Answered, note
		return note, nil, nil
	}, required(note, ErrNote))
	if err == nil {
		s.tellConsumer(ctx, a, "negotiation.answered", "协商请求已答复", "Negotiation answered")
	}
	return a, err
}

// Attach stores a file with an open application (e.g. a signed security
// agreement, 安全保密协议).
func (s *Service) Attach(ctx context.Context, actor policy.Actor, id int64, name, contentType string, data []byte) (Attachment, error) {
	name = strings.TrimSpace(name)
	check := func() error {
		switch strings.ToLower(name[strings.LastIndexByte(name, '.')+1:]) {
		case "pdf", "ofd", "jpg", "jpeg", "png", "doc", "docx", "zip":
		default:
			return ErrAttachment
		}
		if len(data) == 0 || len(data) > MaxAttachment || utf8.RuneCountInString(name) > 200 {
			return ErrAttachment
		}
		return nil
	}
	if contentType == "" {
		contentType = http.DetectContentType(data)
	}
	sum := sha256Hex(data)
	var at Attachment
	_, err := s.step(ctx, actor, id, policy.ShareApply, "consumer", "attach", []State{Submitted, Accepted, Escalated}, func(tx *store.Tx, a *Application) (string, map[string]any, error) {
		now := s.now()
		if err := tx.QueryRow(ctx, `INSERT INTO share_attachments (application_id, name, content_type, size, sha256, data, uploaded_by, uploaded_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`, id, name, contentType, len(data), sum, data, actor.UserID, now).Scan(&at.ID); err != nil {
			return "", nil, err
		}
		at = Attachment{ID: at.ID, Name: name, ContentType: contentType, Size: int64(len(data)), SHA256: sum, UploadedAt: now}
		return name, map[string]any{"attachment_id": at.ID, "sha256": sum, "size": len(data)}, nil
	}, check)
	return at, err
}

// AttachmentData returns an attachment's content to someone who may see
// the application; every read is audited.
func (s *Service) AttachmentData(ctx context.Context, actor policy.Actor, id, attID int64) (Attachment, []byte, error) {
	if _, err := s.Application(ctx, actor, id); err != nil {
		return Attachment{}, nil, err
	}
	var at Attachment
	var data []byte
	err := s.db.QueryRow(ctx, "SELECT id, name, content_type, size, sha256, uploaded_at, data FROM share_attachments WHERE id = ? AND application_id = ?", attID, id).
		Scan(&at.ID, &at.Name, &at.ContentType, &at.Size, &at.SHA256, &at.UploadedAt, &data)
	if errors.Is(err, sql.ErrNoRows) {
		return at, nil, apperr.ErrNotFound
	} else if err != nil {
		return at, nil, err
	}
	if err := s.audit.Append(ctx, audit.By(actor, "share.attachment.read", "share_attachment", itoa(attID), audit.ResultOK, map[string]any{"application_id": id})); err != nil {
		return at, nil, err
	}
	return at, data, nil
}

// ApplicantApps lists the active apps of the actor's department, for
// choosing which apps an application covers.
func (s *Service) ApplicantApps(ctx context.Context, actor policy.Actor) ([]App, error) {
	if err := s.authorize(ctx, actor, policy.ShareApply, actor.DeptID, "app", ""); err != nil {
		return nil, err
	}
	return store.All(ctx, s.db, scanApp, "SELECT "+appCols+" FROM apps WHERE dept_id = ? AND status = 'active' ORDER BY id", actor.DeptID)
}
