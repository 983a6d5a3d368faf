package share

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"govshare/internal/apperr"
	"govshare/internal/audit"
	"govshare/internal/catalog"
	"govshare/internal/notify"
	"govshare/internal/policy"
	"govshare/internal/store"
)

// Grant is what an approval allows (授权): a consumer department (and
// optionally only some of its apps) may use these items of this resource
// by these methods, within these rows, in this period, at these rates.
type Grant struct {
	ID             int64                 `json:"id"`
	ApplicationID  int64                 `json:"application_id"`
	EntryID        int64                 `json:"entry_id"`
	EntryCode      string                `json:"entry_code" doc:"信息资源代码 / resource code"`
	EntryName      string                `json:"entry_name"`
	ProviderDeptID int64                 `json:"provider_dept_id"`
	ProviderDept   string                `json:"provider_dept"`
	ConsumerDeptID int64                 `json:"consumer_dept_id"`
	ConsumerDept   string                `json:"consumer_dept"`
	AppIDs         []int64               `json:"app_ids,omitempty" doc:"限定的接入应用，空为部门全部应用 / apps; empty: all of the department's apps"`
	Items          []string              `json:"items"`
	Methods        []catalog.ShareMethod `json:"methods"`
	RowScope       *RowScope             `json:"row_scope,omitempty"`
	Purpose        string                `json:"purpose"`
	ValidFrom      time.Time             `json:"valid_from"`
	ValidUntil     time.Time             `json:"valid_until,omitzero" doc:"到期时间，空为长期 / expiry; empty: no end"`
	RateLimit      int                   `json:"rate_limit,omitempty"`
	DailyQuota     int                   `json:"daily_quota,omitempty"`
	VerifyQuota    int                   `json:"verify_quota,omitempty"`
	State          string                `json:"state" doc:"active / revoked / expired"`
	RevokedAt      time.Time             `json:"revoked_at,omitzero"`
	RevokeReason   string                `json:"revoke_reason,omitempty"`
	CreatedAt      time.Time             `json:"created_at"`
	AppNames       map[int64]string      `json:"-"` // for pages
}

func sha256Hex(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

func joinIDs(ids []int64) string {
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = strconv.FormatInt(id, 10)
	}
	return strings.Join(s, ",")
}

func splitIDs(s string) []int64 {
	var out []int64
	for _, f := range strings.Split(s, ",") {
		if id, err := strconv.ParseInt(f, 10, 64); err == nil {
			out = append(out, id)
		}
	}
	return out
}

func (s *Service) insertGrant(ctx context.Context, tx *store.Tx, appID int64, e catalog.Entry, consumer int64, t Terms, now time.Time) (int64, error) {
	items, _ := json.Marshal(t.Items)
	methods := make([]string, len(t.Methods))
	for i, m := range t.Methods {
		methods[i] = string(m)
	}
	scope := ""
	if t.RowScope != nil {
		b, _ := json.Marshal(t.RowScope)
		scope = string(b)
	}
	var id int64
	err := tx.QueryRow(ctx, `INSERT INTO share_grants (application_id, entry_id, entry_code, provider_dept_id, consumer_dept_id, app_ids, items, methods,
		row_scope, purpose, valid_from, valid_until, rate_limit, daily_quota, verify_quota, state, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'active', ?) RETURNING id`,
		appID, e.ID, e.Code, e.DeptID, consumer, joinIDs(t.AppIDs), string(items), strings.Join(methods, ","), scope, t.Purpose,
		t.ValidFrom, nullTime(t.ValidUntil), t.RateLimit, t.DailyQuota, t.VerifyQuota, now).Scan(&id)
	if err != nil {
		return 0, fmt.Errorf("insert grant: %w", err)
	}
	return id, nil
}

const grantCols = `g.id, g.application_id, g.entry_id, g.entry_code, e.name, g.provider_dept_id, pd.name, g.consumer_dept_id, cd.name,
	g.app_ids, g.items, g.methods, g.row_scope, g.purpose, g.valid_from, g.valid_until, g.rate_limit, g.daily_quota, g.verify_quota, g.state,
	g.revoked_at, g.revoke_reason, g.created_at`

const grantFrom = ` FROM share_grants g JOIN entries e ON e.id = g.entry_id
	JOIN departments pd ON pd.id = g.provider_dept_id JOIN departments cd ON cd.id = g.consumer_dept_id`

func (s *Service) scanGrant(row store.Row) (Grant, error) {
	var g Grant
	var apps, items, methods, scope string
	var until, revoked sql.NullTime
	err := row.Scan(&g.ID, &g.ApplicationID, &g.EntryID, &g.EntryCode, &g.EntryName, &g.ProviderDeptID, &g.ProviderDept, &g.ConsumerDeptID, &g.ConsumerDept,
		&apps, &items, &methods, &scope, &g.Purpose, &g.ValidFrom, &until, &g.RateLimit, &g.DailyQuota, &g.VerifyQuota, &g.State, &revoked, &g.RevokeReason, &g.CreatedAt)
	if err != nil {
		return g, err
	}
	g.ValidFrom = g.ValidFrom.UTC()
	g.AppIDs = splitIDs(apps)
	if err := json.Unmarshal([]byte(items), &g.Items); err != nil {
		return g, err
	}
	for _, m := range strings.Split(methods, ",") {
		if m != "" {
			g.Methods = append(g.Methods, catalog.ShareMethod(m))
		}
	}
	if scope != "" {
		g.RowScope = new(RowScope)
		if err := json.Unmarshal([]byte(scope), g.RowScope); err != nil {
			return g, err
		}
	}
	g.ValidUntil, g.RevokedAt = until.Time.UTC(), revoked.Time.UTC()
	if g.State == "active" && !g.ValidUntil.IsZero() && s.now().After(g.ValidUntil) {
		g.State = "expired" // grants expire by themselves
	}
	return g, nil
}

// GrantFilter narrows a list of grants. Side is "mine" (granted to my
// department), "given" (by my department) or "all".
type GrantFilter struct {
	Side    string
	EntryID int64
	State   string
	Limit   int
	Offset  int
}

// Grants lists grants on one side.
func (s *Service) Grants(ctx context.Context, actor policy.Actor, f GrantFilter) ([]Grant, error) {
	where, args, err := s.sideWhere(ctx, actor, f.Side, "g", "share_grant")
	if err != nil {
		return nil, err
	}
	if f.EntryID != 0 {
		where += " AND g.entry_id = ?"
		args = append(args, f.EntryID)
	}
	now := s.now()
	switch f.State {
	case "":
	case "active":
		where += " AND g.state = 'active' AND (g.valid_until IS NULL OR g.valid_until >= ?)"
		args = append(args, now)
	case "expired":
		where += " AND g.state = 'active' AND g.valid_until < ?"
		args = append(args, now)
	case "revoked":
		where += " AND g.state = 'revoked'"
	default:
		return nil, apperr.Invalid("share.grant_state_invalid", "state", "状态应为 active、expired 或 revoked", "state is active, expired or revoked")
	}
	if f.Limit <= 0 || f.Limit > 500 {
		f.Limit = 100
	}
	return store.All(ctx, s.db, s.scanGrant, "SELECT "+grantCols+grantFrom+" WHERE "+where+" ORDER BY g.id DESC LIMIT ? OFFSET ?", append(args, f.Limit, f.Offset)...)
}

// Grant returns one grant to its consumer, its provider or a platform
// administrator.
func (s *Service) Grant(ctx context.Context, actor policy.Actor, id int64) (Grant, error) {
	g, err := s.scanGrant(s.db.QueryRow(ctx, "SELECT "+grantCols+grantFrom+" WHERE g.id = ?", id))
	if errors.Is(err, sql.ErrNoRows) {
		return g, apperr.ErrNotFound
	} else if err != nil {
		return g, err
	}
	if !policy.Allowed(actor, policy.ShareView, policy.Target{DeptID: g.ConsumerDeptID}) &&
		!policy.Allowed(actor, policy.ShareView, policy.Target{DeptID: g.ProviderDeptID}) &&
		!policy.Allowed(actor, policy.ShareCoordinate, policy.Target{}) {
		_ = s.audit.Append(ctx, audit.By(actor, string(policy.ShareView), "share_grant", itoa(id), audit.ResultDenied, nil))
		return Grant{}, apperr.ErrDenied
	}
	g.AppNames = s.appNames(ctx, g.AppIDs)
	return g, nil
}

// RevokeGrant ends a grant before its time; the provider's data
// administrator or a platform administrator does it, with a reason.
func (s *Service) RevokeGrant(ctx context.Context, actor policy.Actor, id int64, reason string) (Grant, error) {
	reason = strings.TrimSpace(reason)
	var provider int64
	if err := s.db.QueryRow(ctx, "SELECT provider_dept_id FROM share_grants WHERE id = ?", id).Scan(&provider); errors.Is(err, sql.ErrNoRows) {
		return Grant{}, apperr.ErrNotFound
	} else if err != nil {
		return Grant{}, err
	}
	if err := s.authorize(ctx, actor, policy.GrantRevoke, provider, "share_grant", itoa(id)); err != nil {
		return Grant{}, err
	}
	if reason == "" {
		return Grant{}, ErrReason
	}
	var appID int64
	err := s.db.InTx(ctx, func(tx *store.Tx) error {
		if err := tx.QueryRow(ctx, "SELECT application_id FROM share_grants WHERE id = ?", id).Scan(&appID); err != nil {
			return err
		}
		res, err := tx.Exec(ctx, "UPDATE share_grants SET state = 'revoked', revoked_at = ?, revoked_by = ?, revoke_reason = ? WHERE id = ? AND state = 'active'",
			s.now(), actor.UserID, reason, id)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return ErrGrantState
		}
		return s.event(ctx, tx, appID, actor, "revoke", reason, map[string]any{"grant_id": id})
	})
	if err != nil {
		return Grant{}, err
	}
	s.grants.Drop()
	if err := s.audit.Append(ctx, audit.By(actor, "share.grant.revoke", "share_grant", itoa(id), audit.ResultOK, map[string]any{"reason": reason})); err != nil {
		return Grant{}, err
	}
	g, err := s.Grant(ctx, actor, id)
	if err != nil {
		return g, err
	}
	s.send(ctx, notify.Notice{Kind: "grant.revoked", DeptID: g.ConsumerDeptID, Roles: []policy.Role{policy.DeptAdmin, policy.Consumer},
		Href: fmt.Sprintf("/grants/%d", id), ObjectType: "share_grant", ObjectID: itoa(id),
		TitleZH: "授权已撤销：" + g.EntryName, TitleEN: "Grant revoked: " + g.EntryName, Data: map[string]any{"reason": reason}})
	return g, nil
}

// ErrGrantState is returned for a step the grant's state does not allow.
var ErrGrantState = apperr.New(http.StatusConflict, "share.grant_state_conflict", "授权已撤销或已到期", "the grant is already revoked or expired")

// ErrNoGrant refuses a use no grant covers.
var ErrNoGrant = apperr.New(http.StatusForbidden, "share.no_grant", "没有覆盖此次使用的有效授权(资源、信息项、方式、应用或期限不符)，请先申请",
	"no valid grant covers this use (resource, items, method, app or period); apply first")

// Use is one intended use of shared data.
type Use struct {
	DeptID   int64               // the consumer department
	AppID    int64               // the app acting; 0 when a user of the department acts through the pages
	Resource string              // the resource code
	Items    []string            // the items wanted; empty means every granted item
	Method   catalog.ShareMethod // how
}

// PermitItem is a granted item with the masking its consumer must get.
type PermitItem struct {
	MachineName string `json:"machine_name"`
	Name        string `json:"name"`
	MaskRule    string `json:"mask_rule,omitempty" doc:"脱敏规则 / masking rule applied"`
}

// Permit is the answer to "may this department's app use these items of
// this resource by this method now": which grant allows it, the items
// with their masking, the row scope and the limits.
type Permit struct {
	GrantID    int64        `json:"grant_id"`
	EntryID    int64        `json:"entry_id"`
	Resource   string       `json:"resource"`
	Items      []PermitItem `json:"items"`
	RowScope   *RowScope    `json:"row_scope,omitempty"`
	RateLimit  int          `json:"rate_limit,omitempty" doc:"每秒请求上限 / requests per second"`
	DailyQuota int          `json:"daily_quota,omitempty" doc:"每日记录数上限(查询与下载) / records per day (queries and downloads)"`
	// VerifyQuota is the records the grant may compare per day.
	VerifyQuota int       `json:"verify_quota,omitempty" doc:"每日比对记录数上限 / records compared per day"`
	ProviderID  int64     `json:"provider_dept_id"`
	ValidUntil  time.Time `json:"valid_until,omitzero"`
	Purpose     string    `json:"purpose" doc:"授权的用途 / the purpose granted"`
}

// Permit decides a use. It is the one function data services and the
// exchange call before they hand out data; it is cheap enough to call on
// every request (grants are cached and the cache is dropped whenever a
// grant is created or revoked on this server, and at most a second later
// elsewhere).
func (s *Service) Permit(ctx context.Context, u Use) (Permit, error) {
	set, err := s.grants.Get(ctx, grantKey{u.DeptID, u.Resource}, func(ctx context.Context) (*grantSet, error) {
		return s.loadGrants(ctx, u.DeptID, u.Resource)
	})
	if err != nil {
		return Permit{}, err
	}
	now := s.now()
	for i := range set.grants {
		g := &set.grants[i]
		if g.state != "active" || now.Before(g.validFrom) || (!g.validUntil.IsZero() && now.After(g.validUntil)) {
			continue
		}
		if !slices.Contains(g.methods, u.Method) {
			continue
		}
		if len(g.appIDs) > 0 && !slices.Contains(g.appIDs, u.AppID) {
			continue
		}
		want := u.Items
		if len(want) == 0 {
			want = g.items
		}
		covered := true
		for _, it := range want {
			if _, published := set.items[it]; !published || !slices.Contains(g.items, it) {
				covered = false
				break
			}
		}
		if !covered {
			continue
		}
		p := Permit{GrantID: g.id, EntryID: set.entryID, Resource: u.Resource, RowScope: g.rowScope, RateLimit: g.rateLimit,
			DailyQuota: g.dailyQuota, VerifyQuota: g.verifyQuota, ProviderID: set.providerID, ValidUntil: g.validUntil, Purpose: g.purpose, Items: make([]PermitItem, 0, len(want))}
		for _, it := range want {
			p.Items = append(p.Items, set.items[it])
		}
		return p, nil
	}
	return Permit{}, ErrNoGrant
}

// PermitFor answers the grant check for the acting user or app's own
// department, for the API: those who may see their department's grants
// may ask.
func (s *Service) PermitFor(ctx context.Context, actor policy.Actor, u Use) (Permit, error) {
	if err := s.authorize(ctx, actor, policy.ShareView, actor.DeptID, "share_grant", u.Resource); err != nil {
		return Permit{}, err
	}
	u.DeptID = actor.DeptID
	return s.Permit(ctx, u)
}

// The grants of (consumer department, resource) pairs are kept for a
// second (Service.grants). Creating or revoking a grant on this server
// drops them at once; servers sharing the database see changes within
// the second.
type grantKey struct {
	dept     int64
	resource string
}

type grantSet struct {
	entryID    int64
	providerID int64
	items      map[string]PermitItem // the published items with their masking
	grants     []cachedGrant
}

type cachedGrant struct {
	id                    int64
	appIDs                []int64
	items                 []string
	methods               []catalog.ShareMethod
	rowScope              *RowScope
	purpose               string
	validFrom, validUntil time.Time
	rateLimit, dailyQuota int
	verifyQuota           int
	state                 string
}

func (s *Service) loadGrants(ctx context.Context, dept int64, resource string) (*grantSet, error) {
	set := &grantSet{items: map[string]PermitItem{}}
	rows, err := s.db.Query(ctx, "SELECT "+grantCols+grantFrom+" WHERE g.consumer_dept_id = ? AND g.entry_code = ? AND g.state = 'active' ORDER BY g.id",
		dept, resource)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		g, err := s.scanGrant(rows)
		if err != nil {
			return nil, err
		}
		set.entryID, set.providerID = g.EntryID, g.ProviderDeptID
		set.grants = append(set.grants, cachedGrant{id: g.ID, appIDs: g.AppIDs, items: g.Items, methods: g.Methods, rowScope: g.RowScope,
			purpose: g.Purpose, validFrom: g.ValidFrom, validUntil: g.ValidUntil, rateLimit: g.RateLimit, dailyQuota: g.DailyQuota, verifyQuota: g.VerifyQuota, state: "active"})
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if set.entryID != 0 {
		_, c, err := s.cat.Published(ctx, set.entryID)
		if errors.Is(err, apperr.ErrNotFound) {
			set.grants = nil // a retired resource is shared no more
		} else if err != nil {
			return nil, err
		}
		for _, it := range c.Items {
			set.items[it.MachineName] = PermitItem{MachineName: it.MachineName, Name: it.Name, MaskRule: it.MaskRule}
		}
	}
	return set, nil
}
