// Package identity is who is who on the platform (身份认证与访问控制):
// departments as a tree, users and their roles, passwords, two-factor
// login, browser sessions and API tokens. Every change is authorized by the
// policy package and written to the audit log.
package identity

import (
	"context"
	"net/http"
	"time"

	"govshare/internal/apperr"
	"govshare/internal/audit"
	"govshare/internal/policy"
	"govshare/internal/secret"
	"govshare/internal/store"
)

// Department is a government unit (政务部门).
type Department struct {
	ID         int64     `json:"id"`
	ParentID   int64     `json:"parent_id,omitempty"` // 0: top level
	Name       string    `json:"name"`
	CreditCode string    `json:"credit_code"`
	RegionCode string    `json:"region_code"`
	Status     string    `json:"status"` // active | disabled
	CreatedAt  time.Time `json:"created_at"`
	UpdatedAt  time.Time `json:"updated_at"`
	// Depth is the level in the tree (0 for top level), filled by lists.
	Depth int `json:"depth"`
}

// User is a person with an account.
type User struct {
	ID                 int64         `json:"id"`
	Login              string        `json:"login"`
	Name               string        `json:"name"`
	Mobile             string        `json:"mobile,omitempty"`
	DeptID             int64         `json:"dept_id"`
	Roles              []policy.Role `json:"roles"`
	Status             string        `json:"status"` // active | disabled
	MustChangePassword bool          `json:"must_change_password"`
	TOTPEnabled        bool          `json:"totp_enabled"`
	LockedUntil        time.Time     `json:"locked_until,omitzero"`
	CreatedAt          time.Time     `json:"created_at"`
	UpdatedAt          time.Time     `json:"updated_at"`

	passwordHash string
	failedLogins int
	totpSecret   string // sealed
	totpLastStep int64
}

// Actor is the user as the policy sees them.
func (u User) Actor() policy.Actor {
	return policy.Actor{UserID: u.ID, Login: u.Login, DeptID: u.DeptID, Roles: u.Roles}
}

// HasAdminRole reports whether the user holds one of the three
// administrator roles, which require two-factor login.
func (u User) HasAdminRole() bool {
	for _, r := range u.Roles {
		if r.Admin() {
			return true
		}
	}
	return false
}

// Locked reports whether the account is locked at t.
func (u User) Locked(t time.Time) bool { return !u.LockedUntil.IsZero() && t.Before(u.LockedUntil) }

// MaskedMobile shows a mobile number as 138****1234.
func (u User) MaskedMobile() string { return MaskMobile(u.Mobile) }

// MaskMobile keeps the first 3 and last 4 digits.
func MaskMobile(m string) string {
	if len(m) != 11 {
		if m == "" {
			return ""
		}
		return "****"
	}
	return m[:3] + "****" + m[7:]
}

// Statuses.
const (
	StatusActive   = "active"
	StatusDisabled = "disabled"
)

// Config holds the identity rules that deployments may tune.
type Config struct {
	LockThreshold   int           // failed logins before lockout (5)
	LockDuration    time.Duration // lockout length (15 min)
	SessionIdle     time.Duration // idle timeout (30 min)
	SessionAbsolute time.Duration // absolute lifetime (12 h)
	Issuer          string        // shown in authenticator apps
}

// DefaultConfig is the rule of the issue and of 等保三级 practice.
func DefaultConfig() Config {
	return Config{LockThreshold: 5, LockDuration: 15 * time.Minute, SessionIdle: 30 * time.Minute,
		SessionAbsolute: 12 * time.Hour, Issuer: "govshare"}
}

// Auditor is the part of the audit log identity needs.
type Auditor interface {
	Append(ctx context.Context, e audit.Event) error
}

// Service runs identity on a database.
type Service struct {
	db    *store.DB
	audit Auditor
	seal  *secret.Sealer
	cfg   Config
	now   func() time.Time
}

// NewService builds the service. keys seal TOTP secrets at rest.
func NewService(db *store.DB, a Auditor, keys *secret.Keys, cfg Config) *Service {
	return &Service{db: db, audit: a, seal: keys.Sealer("totp"), cfg: cfg, now: store.Now}
}

// SetClock replaces the clock, for tests of lockout and session expiry.
func (s *Service) SetClock(now func() time.Time) { s.now = now }

// Errors of this package. Each is a value the web layer maps to its code.
var (
	ErrBadCredentials = apperr.New(http.StatusUnauthorized, "identity.bad_credentials", "登录名或密码错误", "wrong login or password")
	ErrLocked         = apperr.New(http.StatusLocked, "identity.locked", "连续登录失败次数过多，账号已锁定15分钟", "too many failed logins: the account is locked for 15 minutes")
	ErrDisabled       = apperr.New(http.StatusForbidden, "identity.disabled", "账号已停用，请联系管理员", "the account is disabled; contact an administrator")
	ErrBadTOTP        = apperr.New(http.StatusUnauthorized, "identity.totp_invalid", "动态验证码错误或已使用", "the one-time code is wrong or was already used")
	ErrTOTPRequired   = apperr.New(http.StatusForbidden, "identity.totp_required", "管理员账号必须启用双因素认证", "administrator accounts must use two-factor login")
	ErrSessionEnded   = apperr.New(http.StatusUnauthorized, "identity.session_ended", "会话已过期，请重新登录", "the session has ended; log in again")

	ErrPasswordWeak     = apperr.Invalid("identity.password_weak", "password", "密码至少8位，且包含大写字母、小写字母、数字、符号中的至少三类", "the password needs at least 8 characters from at least 3 of: upper case, lower case, digits, symbols")
	ErrPasswordLong     = apperr.Invalid("identity.password_long", "password", "密码不能超过128个字符", "the password may have at most 128 characters")
	ErrPasswordHasLogin = apperr.Invalid("identity.password_has_login", "password", "密码不能包含登录名", "the password must not contain the login")
	ErrPasswordReused   = apperr.Invalid("identity.password_reused", "new_password", "新密码不能与旧密码相同", "the new password must differ from the old one")
	ErrOldPassword      = apperr.Invalid("identity.old_password_wrong", "old_password", "原密码错误", "the current password is wrong")

	ErrCreditCode     = apperr.Invalid("identity.credit_code_invalid", "credit_code", "统一社会信用代码无效：应为18位且校验位正确(GB 32100)", "invalid unified social credit code: 18 characters with a correct check character (GB 32100)")
	ErrCreditCodeUsed = apperr.New(http.StatusConflict, "identity.credit_code_taken", "该统一社会信用代码已被其他部门使用", "another department already has this credit code").OnField("credit_code")
	ErrRegionCode     = apperr.Invalid("identity.region_code_invalid", "region_code", "行政区划代码应为6位数字(GB/T 2260)", "the region code must be 6 digits (GB/T 2260)")
	ErrDeptName       = apperr.Invalid("identity.dept_name_invalid", "name", "部门名称不能为空，且不超过100个字符", "the department name is required, at most 100 characters")
	ErrDeptParent     = apperr.Invalid("identity.dept_parent_invalid", "parent_id", "上级部门不存在，或会形成循环", "the parent department does not exist or would form a cycle")
	ErrDeptStatus     = apperr.Invalid("identity.dept_status_invalid", "status", "状态只能是 active 或 disabled", "status must be active or disabled")

	ErrLogin          = apperr.Invalid("identity.login_invalid", "login", "登录名为3-32位小写字母、数字或 . _ -", "the login is 3–32 lower-case letters, digits or . _ -")
	ErrLoginTaken     = apperr.New(http.StatusConflict, "identity.login_taken", "该登录名已被使用", "this login is already taken").OnField("login")
	ErrUserName       = apperr.Invalid("identity.user_name_invalid", "name", "姓名不能为空，且不超过50个字符", "the name is required, at most 50 characters")
	ErrMobile         = apperr.Invalid("identity.mobile_invalid", "mobile", "手机号码应为11位，以1开头", "the mobile number must be 11 digits starting with 1")
	ErrUserDept       = apperr.Invalid("identity.user_dept_invalid", "dept_id", "所属部门不存在或已停用", "the department does not exist or is disabled")
	ErrRole           = apperr.Invalid("identity.role_invalid", "roles", "未知的角色", "unknown role")
	ErrRolesSeparated = apperr.Invalid("identity.admin_roles_separated", "roles", "三员分立：系统管理员、安全管理员、安全审计员不能由同一人兼任", "separation of duties: platform administrator, security administrator and auditor must be different people")
	ErrNoRole         = apperr.Invalid("identity.role_required", "roles", "至少分配一个角色", "assign at least one role")
	ErrUserStatus     = apperr.Invalid("identity.user_status_invalid", "status", "状态只能是 active 或 disabled", "status must be active or disabled")
	ErrTokenName      = apperr.Invalid("identity.token_name_invalid", "name", "令牌名称不能为空，且不超过64个字符", "the token name is required, at most 64 characters")
	ErrTokenExpiry    = apperr.Invalid("identity.token_expiry_invalid", "expires_in_days", "有效期为1到365天", "the lifetime is 1 to 365 days")
	ErrTOTPNotStarted = apperr.New(http.StatusConflict, "identity.totp_not_started", "请先生成双因素密钥", "start two-factor enrolment first")
	ErrTOTPMandatory  = apperr.New(http.StatusConflict, "identity.totp_mandatory", "管理员账号不能关闭双因素认证", "administrators cannot turn two-factor login off")
)

// record writes an audit event for an action by actor.
func (s *Service) record(ctx context.Context, actor policy.Actor, action, objType, objID, result string, details map[string]any) error {
	return s.audit.Append(ctx, audit.By(actor, action, objType, objID, result, details))
}

// authorize checks the policy and records a denial.
func (s *Service) authorize(ctx context.Context, actor policy.Actor, act policy.Action, t policy.Target, objType, objID string) error {
	if err := policy.Check(actor, act, t); err != nil {
		if aerr := s.record(ctx, actor, string(act), objType, objID, audit.ResultDenied, nil); aerr != nil {
			return aerr
		}
		return err
	}
	return nil
}

func idString(id int64) string {
	if id == 0 {
		return ""
	}
	return itoa(id)
}
