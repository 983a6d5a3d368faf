// Package share is sharing (共享): the apps departments register to call
// the platform, how their signed requests are checked, and (in later
// steps) applications and grants.
package share

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"database/sql"
	"encoding/base32"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	"govshare/client"
	"govshare/internal/apperr"
	"govshare/internal/audit"
	"govshare/internal/policy"
	"govshare/internal/secret"
	"govshare/internal/store"
	"govshare/internal/ttlcache"
)

// App is a department's machine client (接入应用).
type App struct {
	ID           int64     `json:"id"`
	DeptID       int64     `json:"dept_id"`
	Name         string    `json:"name" doc:"应用名称 / name"`
	Purpose      string    `json:"purpose" doc:"用途 / what the app is for"`
	Contact      string    `json:"contact" doc:"联系人 / contact"`
	AllowedAddrs []string  `json:"allowed_addrs,omitempty" doc:"允许的来源地址(IP或CIDR)，空为不限 / allowed source addresses (IP or CIDR); empty allows any"`
	Key          string    `json:"app_key" doc:"应用标识 / app key"`
	Limits       AppLimits `json:"limits"`
	Status       string    `json:"status" doc:"active / revoked"`
	CreatedAt    time.Time `json:"created_at"`
	RotatedAt    time.Time `json:"rotated_at"`
	RevokedAt    time.Time `json:"revoked_at,omitzero"`
}

// AppInput is what a data administrator registers.
type AppInput struct {
	Name         string    `json:"name"`
	Purpose      string    `json:"purpose"`
	Contact      string    `json:"contact"`
	AllowedAddrs []string  `json:"allowed_addrs,omitempty"`
	Limits       AppLimits `json:"limits,omitzero"`
}

// AppLimits bound what an app may take over all its grants together
// (0: no limit); each grant has its own limits besides.
type AppLimits struct {
	RateLimit    int `json:"rate_limit,omitempty" doc:"每秒请求上限 / requests per second"`
	DailyRecords int `json:"daily_records,omitempty" doc:"每日记录数上限(查询与下载) / records per day (queries and downloads)"`
	DailyVerify  int `json:"daily_verify,omitempty" doc:"每日比对记录数上限 / records compared per day"`
}

// Window is how far a request's timestamp may be from the server's clock.
const Window = 5 * time.Minute

// Errors of apps and signatures. Signature failures share one code per
// cause so a caller can fix the client without the server saying more
// than it must.
var (
	ErrAppName     = apperr.Invalid("share.app_name_invalid", "name", "应用名称不能为空，且不超过64个字符", "the app name is required, at most 64 characters")
	ErrAppPurpose  = apperr.Invalid("share.app_purpose_required", "purpose", "请说明应用用途", "state what the app is for")
	ErrAppContact  = apperr.Invalid("share.app_contact_required", "contact", "请填写联系人", "give a contact")
	ErrAppAddr     = apperr.Invalid("share.app_addr_invalid", "allowed_addrs", "来源地址应为IP或CIDR，如 10.1.2.3 或 10.1.0.0/16", "source addresses are IPs or CIDRs, e.g. 10.1.2.3 or 10.1.0.0/16")
	ErrAppLimits   = apperr.Invalid("share.app_limits_invalid", "limits", "调用上限不能为负数", "limits cannot be negative")
	ErrSignMissing = apperr.New(http.StatusUnauthorized, "share.signature_missing", "缺少签名头：X-App-Key、X-Timestamp、X-Nonce、X-Signature", "missing signature headers: X-App-Key, X-Timestamp, X-Nonce, X-Signature")
	ErrSignApp     = apperr.New(http.StatusUnauthorized, "share.app_unknown", "应用不存在或已吊销", "unknown or revoked app")
	ErrSignTime    = apperr.New(http.StatusUnauthorized, "share.timestamp_skew", "时间戳与服务器时间相差超过5分钟，请校准时钟", "the timestamp is more than 5 minutes from the server's clock; synchronise the clock")
	ErrSignNonce   = apperr.New(http.StatusUnauthorized, "share.nonce_reused", "随机数已使用过(疑似重放)", "the nonce was already used (replay)")
	ErrSignBad     = apperr.New(http.StatusUnauthorized, "share.signature_invalid", "签名不正确：请按API文档的规范串和密钥计算", "the signature does not match; compute it over the canonical string with the app secret as the API reference shows")
	ErrSignAddr    = apperr.New(http.StatusForbidden, "share.address_refused", "请求来源地址不在应用允许的范围内", "the request's source address is not allowed for this app")
	ErrSignPurpose = apperr.New(http.StatusBadRequest, "share.purpose_required", "每个请求都须以 X-Purpose 说明用途", "every request must state its purpose in X-Purpose").OnField("X-Purpose")
	ErrSignMethod  = apperr.New(http.StatusBadRequest, "share.sign_method_invalid", "签名算法应为 HMAC-SHA256 或 HMAC-SM3", "the signature method is HMAC-SHA256 or HMAC-SM3").OnField("X-Sign-Method")
)

// Auditor is the part of the audit log apps need.
type Auditor interface {
	Append(ctx context.Context, e audit.Event) error
}

// Apps manages apps and checks their requests.
type Apps struct {
	db     *store.DB
	audit  Auditor
	seal   *secret.Sealer
	now    func() time.Time
	cache  *ttlcache.Cache[string, cachedApp]
	nonces *nonceLedger
}

// NewApps builds the service; secrets are sealed with keys. When the
// auditor writes claims (an audit.Log), it is told to write the nonces of
// requests verified with VerifyLater in their audit events' transaction.
func NewApps(db *store.DB, a Auditor, keys *secret.Keys) *Apps {
	s := &Apps{db: db, audit: a, seal: keys.Sealer("app"), now: store.Now,
		cache: ttlcache.New[string, cachedApp](time.Second, 10000), nonces: &nonceLedger{db: db}}
	if l, ok := a.(interface{ SetClaimer(audit.Claimer) }); ok {
		l.SetClaimer(s)
	}
	return s
}

// SetClock replaces the clock for tests.
func (s *Apps) SetClock(now func() time.Time) { s.now = now }

var b32 = base32.StdEncoding.WithPadding(base32.NoPadding)

func random(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return strings.ToLower(b32.EncodeToString(b))
}

func (in *AppInput) validate() error {
	in.Name, in.Purpose, in.Contact = strings.TrimSpace(in.Name), strings.TrimSpace(in.Purpose), strings.TrimSpace(in.Contact)
	switch {
	case in.Name == "" || utf8.RuneCountInString(in.Name) > 64:
		return ErrAppName
	case in.Purpose == "":
		return ErrAppPurpose
	case in.Contact == "":
		return ErrAppContact
	}
	var addrs []string
	for _, a := range in.AllowedAddrs {
		if a = strings.TrimSpace(a); a == "" {
			continue
		}
		if _, _, err := net.ParseCIDR(a); err != nil && net.ParseIP(a) == nil {
			return ErrAppAddr
		}
		addrs = append(addrs, a)
	}
	in.AllowedAddrs = addrs
	if l := in.Limits; l.RateLimit < 0 || l.DailyRecords < 0 || l.DailyVerify < 0 {
		return ErrAppLimits
	}
	return nil
}

func (s *Apps) authorize(ctx context.Context, actor policy.Actor, dept int64, obj string) error {
	if err := policy.Check(actor, policy.AppManage, policy.Target{DeptID: dept}); err != nil {
		_ = s.audit.Append(ctx, audit.By(actor, string(policy.AppManage), "app", obj, audit.ResultDenied, nil))
		return err
	}
	return nil
}

func (s *Apps) record(ctx context.Context, actor policy.Actor, action string, app App, details map[string]any) error {
	return s.audit.Append(ctx, audit.By(actor, action, "app", app.Key, audit.ResultOK, details))
}

// Register creates an app for the actor's department and returns it with
// its secret, which is shown this once and stored only sealed.
func (s *Apps) Register(ctx context.Context, actor policy.Actor, in AppInput) (App, string, error) {
	if err := s.authorize(ctx, actor, actor.DeptID, ""); err != nil {
		return App{}, "", err
	}
	if err := in.validate(); err != nil {
		return App{}, "", err
	}
	key, sec := "app_"+random(10), random(30)
	now := s.now()
	var id int64
	if err := s.db.QueryRow(ctx, `INSERT INTO apps (dept_id, name, purpose, contact, allowed_addrs, app_key, secret, created_by, created_at, rotated_at,
		rate_limit, daily_records, daily_verify)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`, actor.DeptID, in.Name, in.Purpose, in.Contact, strings.Join(in.AllowedAddrs, ","),
		key, s.seal.Seal([]byte(sec)), actor.UserID, now, now, in.Limits.RateLimit, in.Limits.DailyRecords, in.Limits.DailyVerify).Scan(&id); err != nil {
		return App{}, "", fmt.Errorf("register app: %w", err)
	}
	app, err := s.app(ctx, "id = ?", id)
	if err != nil {
		return App{}, "", err
	}
	return app, sec, s.record(ctx, actor, "app.register", app, map[string]any{"name": app.Name, "purpose": app.Purpose, "allowed_addrs": app.AllowedAddrs})
}

const appCols = "id, dept_id, name, purpose, contact, allowed_addrs, app_key, status, created_at, rotated_at, revoked_at, rate_limit, daily_records, daily_verify"

func scanApp(row store.Row) (App, error) { return scanAppWith(row) }

// scanAppWith reads appCols and then extra columns into extra.
func scanAppWith(row store.Row, extra ...any) (App, error) {
	var a App
	var addrs string
	var revoked sql.NullTime
	err := row.Scan(append([]any{&a.ID, &a.DeptID, &a.Name, &a.Purpose, &a.Contact, &addrs, &a.Key, &a.Status, &a.CreatedAt, &a.RotatedAt, &revoked,
		&a.Limits.RateLimit, &a.Limits.DailyRecords, &a.Limits.DailyVerify}, extra...)...)
	if addrs != "" {
		a.AllowedAddrs = strings.Split(addrs, ",")
	}
	a.RevokedAt = revoked.Time
	return a, err
}

func (s *Apps) app(ctx context.Context, where string, arg any) (App, error) {
	a, err := scanApp(s.db.QueryRow(ctx, "SELECT "+appCols+" FROM apps WHERE "+where, arg))
	if errors.Is(err, sql.ErrNoRows) {
		return a, apperr.ErrNotFound
	}
	return a, err
}

// List returns a department's apps.
func (s *Apps) List(ctx context.Context, actor policy.Actor, deptID int64) ([]App, error) {
	if err := s.authorize(ctx, actor, deptID, ""); err != nil {
		return nil, err
	}
	return store.All(ctx, s.db, scanApp, "SELECT "+appCols+" FROM apps WHERE dept_id = ? ORDER BY id DESC", deptID)
}

// Rotate gives an app a new secret (shown once); the old one stops working.
func (s *Apps) Rotate(ctx context.Context, actor policy.Actor, id int64) (App, string, error) {
	a, err := s.app(ctx, "id = ?", id)
	if err != nil {
		return App{}, "", err
	}
	if err := s.authorize(ctx, actor, a.DeptID, a.Key); err != nil {
		return App{}, "", err
	}
	if a.Status != "active" {
		return App{}, "", ErrSignApp
	}
	sec := random(30)
	if _, err := s.db.Exec(ctx, "UPDATE apps SET secret = ?, rotated_at = ? WHERE id = ?", s.seal.Seal([]byte(sec)), s.now(), id); err != nil {
		return App{}, "", err
	}
	if a, err = s.app(ctx, "id = ?", id); err != nil {
		return App{}, "", err
	}
	s.cache.Drop()
	return a, sec, s.record(ctx, actor, "app.rotate", a, nil)
}

// Revoke ends an app's access for good.
func (s *Apps) Revoke(ctx context.Context, actor policy.Actor, id int64) error {
	a, err := s.app(ctx, "id = ?", id)
	if err != nil {
		return err
	}
	if err := s.authorize(ctx, actor, a.DeptID, a.Key); err != nil {
		return err
	}
	if _, err := s.db.Exec(ctx, "UPDATE apps SET status = 'revoked', revoked_at = ? WHERE id = ?", s.now(), id); err != nil {
		return err
	}
	s.cache.Drop()
	return s.record(ctx, actor, "app.revoke", a, nil)
}

// Signed is what a request tells about its signature.
type Signed struct {
	Method, Path string
	Query        url.Values
	Body         []byte
	ClientAddr   string
	AppKey       string
	Timestamp    string
	Nonce        string
	Signature    string
	SignMethod   string
	Purpose      string
}

// Verify checks a signed request: a known active app, an allowed source
// address, a timestamp within ±5 minutes, a nonce not seen before, the
// signature, and a stated purpose. Every refusal is audited.
func (s *Apps) Verify(ctx context.Context, r Signed) (App, error) {
	a, c, err := s.check(ctx, r)
	if err == nil {
		c.Take()
		err = s.Claim(ctx, c)
	}
	if err != nil {
		s.refused(ctx, r.AppKey, r.Path, r.Purpose, a.DeptID, err)
	}
	return a, err
}

// VerifyLater checks a signed request as Verify does but leaves its nonce
// unused: the caller attaches the claim to the request's context
// (audit.WithClaim), so the request's audit event writes it in its own
// transaction, and calls Settle before answering. Refusals are audited.
func (s *Apps) VerifyLater(ctx context.Context, r Signed) (App, *audit.Claim, error) {
	a, c, err := s.check(ctx, r)
	if err != nil {
		s.refused(ctx, r.AppKey, r.Path, r.Purpose, a.DeptID, err)
	}
	return a, c, err
}

// Settle makes sure a request's claim is used up before the request is
// answered: written by its audit event, or else now by the ledger. It
// answers ErrSignNonce (audited) when the nonce was used before.
func (s *Apps) Settle(ctx context.Context, c *audit.Claim, r Signed, deptID int64) error {
	var err error
	if c.Take() {
		err = s.Claim(ctx, c)
	} else {
		settled, fresh, cerr := c.Settled()
		switch {
		case !settled: // taken by an event still being written: cannot happen once its Append returned
			err = errors.New("the request's nonce is still being written")
		case cerr != nil:
			err = cerr
		case !fresh:
			err = ErrSignNonce
		}
	}
	if err != nil {
		s.refused(ctx, r.AppKey, r.Path, r.Purpose, deptID, err)
	}
	return err
}

// Claim uses up a taken claim through the nonce ledger (group commit),
// settling it.
func (s *Apps) Claim(ctx context.Context, c *audit.Claim) error {
	fresh, err := s.nonces.claim(ctx, c.At, c.Scope, c.Token, s.now())
	c.Settle(fresh, err)
	if err != nil {
		return err
	}
	if !fresh {
		return ErrSignNonce
	}
	return nil
}

// ClaimIn writes claims in the audit log's transaction (audit.Claimer):
// the nonces of requests whose audit events are in the batch.
func (s *Apps) ClaimIn(ctx context.Context, tx *store.Tx, claims []*audit.Claim) ([]bool, error) {
	return recordNonces(ctx, tx, tx.Dialect(), s.claimKeys(claims))
}

// ClaimStatement is ClaimIn as SQL, for the audit log to send with the
// other statements of its transaction (audit.StatementClaimer).
func (s *Apps) ClaimStatement(claims []*audit.Claim) audit.ClaimSQL {
	b := newNonceBatch(s.claimKeys(claims))
	rows, args := nonceRowsPg(b.uniq)
	return audit.ClaimSQL{Insert: nonceInsert, Rows: rows, Args: args, OnConflict: nonceConflict,
		Distinct: len(b.uniq) == len(b.keys),
		Fresh: func(rows pgx.Rows) ([]bool, error) {
			defer rows.Close()
			for rows.Next() {
				var k nonceKey
				if err := rows.Scan(&k.at, &k.app, &k.nonce); err != nil {
					return nil, err
				}
				b.inserted[k] = true
			}
			if err := rows.Err(); err != nil {
				return nil, err
			}
			return b.fresh(), nil
		}}
}

// claimKeys are the nonces of claims; it starts the purge of old ones
// when it is due.
func (s *Apps) claimKeys(claims []*audit.Claim) []nonceKey {
	if before := s.nonces.purgeDue(s.now()); before != 0 {
		s.nonces.purge(before)
	}
	keys := make([]nonceKey, len(claims))
	for i, c := range claims {
		keys[i] = nonceKey{c.At, c.Scope, c.Token}
	}
	return keys
}

// refused audits a refused signed request.
func (s *Apps) refused(ctx context.Context, appKey, path, purpose string, deptID int64, err error) {
	ae, _ := apperr.As(err)
	code := "error"
	if ae != nil {
		code = ae.Code
	}
	// The refusal's event must not take the request's claim.
	ctx = audit.WithClaim(ctx, nil)
	_ = s.audit.Append(ctx, audit.Event{ActorType: audit.ActorApp, ActorID: appKey, ActorName: appKey, DeptID: deptID,
		Action: "app.auth_failed", ObjectType: "api", ObjectID: path, Result: audit.ResultDenied, Purpose: purpose,
		Details: audit.Details(map[string]any{"reason": code})})
}

// check verifies everything but the nonce, which it returns as a claim
// to use up.
func (s *Apps) check(ctx context.Context, r Signed) (App, *audit.Claim, error) {
	if r.AppKey == "" || r.Timestamp == "" || r.Nonce == "" || r.Signature == "" {
		return App{}, nil, ErrSignMissing
	}
	if r.SignMethod == "" {
		r.SignMethod = client.HMACSHA256
	}
	if r.SignMethod != client.HMACSHA256 && r.SignMethod != client.HMACSM3 {
		return App{}, nil, ErrSignMethod
	}
	e, err := s.activeApp(ctx, r.AppKey)
	if err != nil {
		return App{}, nil, err
	}
	a := e.app
	if !e.addrs.allows(r.ClientAddr) {
		return a, nil, ErrSignAddr
	}
	ts, err := strconv.ParseInt(r.Timestamp, 10, 64)
	now := s.now()
	if err != nil || now.Sub(time.Unix(ts, 0)).Abs() > Window {
		return a, nil, ErrSignTime
	}
	var cbuf [512]byte
	var sbuf [64]byte
	want, err := client.AppendSignature(sbuf[:0], r.SignMethod, e.secret, client.AppendCanonical(cbuf[:0], r.Method, r.Path, r.Query, r.Timestamp, r.Nonce, r.Body))
	if err != nil {
		return a, nil, ErrSignMethod
	}
	if !hmac.Equal(want, []byte(r.Signature)) {
		return a, nil, ErrSignBad
	}
	if strings.TrimSpace(r.Purpose) == "" {
		return a, nil, ErrSignPurpose
	}
	// The nonce is used up only for a valid signature, so nobody can burn
	// another app's nonces; the unique key makes a replay fail even when
	// two copies arrive at once, here or at another server.
	return a, audit.NewClaim(a.ID, ts, r.Nonce), nil
}

// activeApp returns an active app with its opened secret, from the cache
// when it was read within the last second.
func (s *Apps) activeApp(ctx context.Context, key string) (cachedApp, error) {
	return s.cache.Get(ctx, key, func(ctx context.Context) (cachedApp, error) {
		var sealed string
		a, err := scanAppWith(s.db.QueryRow(ctx, "SELECT "+appCols+", secret FROM apps WHERE app_key = ?", key), &sealed)
		if errors.Is(err, sql.ErrNoRows) || (err == nil && a.Status != "active") {
			return cachedApp{}, ErrSignApp
		} else if err != nil {
			return cachedApp{}, err
		}
		sec, err := s.seal.Open(sealed)
		if err != nil {
			return cachedApp{}, err
		}
		return cachedApp{app: a, secret: sec, addrs: parseAllowed(a.AllowedAddrs)}, nil
	})
}

// allowedAddrs are an app's allowed source addresses, parsed once: single
// addresses and CIDR networks. An entry that is neither is compared as
// text, as it was entered.
type allowedAddrs struct {
	any      bool // no restriction
	prefixes []netip.Prefix
	others   []string
}

func parseAllowed(allowed []string) allowedAddrs {
	if len(allowed) == 0 {
		return allowedAddrs{any: true}
	}
	var a allowedAddrs
	for _, s := range allowed {
		if p, err := netip.ParsePrefix(s); err == nil {
			a.prefixes = append(a.prefixes, p.Masked())
		} else if ip, err := netip.ParseAddr(s); err == nil {
			a.prefixes = append(a.prefixes, netip.PrefixFrom(ip.Unmap(), ip.Unmap().BitLen()))
		} else {
			a.others = append(a.others, s)
		}
	}
	return a
}

// allows says whether a request from addr may use the app.
func (a allowedAddrs) allows(addr string) bool {
	if a.any {
		return true
	}
	if ip, err := netip.ParseAddr(addr); err == nil {
		ip = ip.Unmap()
		for _, p := range a.prefixes {
			if p.Contains(ip) {
				return true
			}
		}
	}
	return slices.Contains(a.others, addr)
}
