package identity

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"govshare/internal/apperr"
	"govshare/internal/audit"
)

// Session is a browser session. The browser holds only an opaque token;
// the database holds its hash.
type Session struct {
	TokenHash    string
	UserID       int64
	CreatedAt    time.Time
	LastSeenAt   time.Time
	ExpiresAt    time.Time
	TOTPVerified bool
}

// Stage is how far a session has come through login.
type Stage int

// Login stages, in order.
const (
	StageTOTP     Stage = iota // password ok, one-time code pending
	StageEnrol                 // administrator without two-factor: must enrol
	StagePassword              // must change the password
	StageReady                 // fully logged in
)

// Stage tells what the user must still do before using the platform.
func (s Session) Stage(u User) Stage {
	switch {
	case u.TOTPEnabled && !s.TOTPVerified:
		return StageTOTP
	case u.HasAdminRole() && !u.TOTPEnabled:
		return StageEnrol
	case u.MustChangePassword:
		return StagePassword
	}
	return StageReady
}

// Client describes where a login comes from.
type Client struct {
	Addr      string
	UserAgent string
}

func newToken(prefix string) (token, hash string) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	token = prefix + base64.RawURLEncoding.EncodeToString(b)
	return token, hashToken(token)
}

func hashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// Login checks a password and opens a session. Five failures in a row lock
// the account for 15 minutes; every attempt is audited.
func (s *Service) Login(ctx context.Context, login, password string, c Client) (string, Session, User, error) {
	now := s.now()
	u, err := s.UserByLogin(ctx, login)
	if err != nil {
		CheckPassword(dummyHash, password)
		_ = s.loginEvent(ctx, User{Login: login}, "login.failed", audit.ResultDenied, map[string]any{"reason": "unknown login"})
		return "", Session{}, User{}, ErrBadCredentials
	}
	if u.Status != StatusActive {
		_ = s.loginEvent(ctx, u, "login.failed", audit.ResultDenied, map[string]any{"reason": "disabled"})
		return "", Session{}, User{}, ErrDisabled
	}
	if u.Locked(now) {
		_ = s.loginEvent(ctx, u, "login.failed", audit.ResultDenied, map[string]any{"reason": "locked", "locked_until": u.LockedUntil})
		return "", Session{}, User{}, ErrLocked
	}
	if !CheckPassword(u.passwordHash, password) {
		locked, err := s.countFailure(ctx, u.ID, now)
		if err != nil {
			return "", Session{}, User{}, err
		}
		details := map[string]any{"reason": "wrong password"}
		if locked {
			details["locked"] = true
			_ = s.loginEvent(ctx, u, "login.locked", audit.ResultDenied, map[string]any{"minutes": int(s.cfg.LockDuration.Minutes())})
		}
		if err := s.loginEvent(ctx, u, "login.failed", audit.ResultDenied, details); err != nil {
			return "", Session{}, User{}, err
		}
		if locked {
			return "", Session{}, User{}, ErrLocked
		}
		return "", Session{}, User{}, ErrBadCredentials
	}
	token, hash := newToken("")
	sess := Session{TokenHash: hash, UserID: u.ID, CreatedAt: now, LastSeenAt: now, ExpiresAt: now.Add(s.cfg.SessionAbsolute)}
	if _, err := s.db.Exec(ctx, "UPDATE users SET failed_logins = 0, locked_until = NULL WHERE id = ?", u.ID); err != nil {
		return "", Session{}, User{}, err
	}
	if _, err := s.db.Exec(ctx, `INSERT INTO sessions (token_hash, user_id, created_at, last_seen_at, expires_at, totp_verified, client_addr, user_agent)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, hash, u.ID, now, now, sess.ExpiresAt, false, c.Addr, truncate(c.UserAgent, 200)); err != nil {
		return "", Session{}, User{}, fmt.Errorf("open session: %w", err)
	}
	action := "login"
	if u.TOTPEnabled {
		action = "login.password_ok" // the login completes with the one-time code
	}
	if err := s.loginEvent(ctx, u, action, audit.ResultOK, nil); err != nil {
		return "", Session{}, User{}, err
	}
	return token, sess, u, nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// countFailure adds a failed attempt and locks the account at the threshold.
func (s *Service) countFailure(ctx context.Context, id int64, now time.Time) (locked bool, err error) {
	var n int
	if err := s.db.QueryRow(ctx, "UPDATE users SET failed_logins = failed_logins + 1 WHERE id = ? RETURNING failed_logins", id).Scan(&n); err != nil {
		return false, err
	}
	if n >= s.cfg.LockThreshold {
		if _, err := s.db.Exec(ctx, "UPDATE users SET failed_logins = 0, locked_until = ? WHERE id = ?", now.Add(s.cfg.LockDuration), id); err != nil {
			return false, err
		}
		return true, nil
	}
	return false, nil
}

func (s *Service) loginEvent(ctx context.Context, u User, action, result string, details map[string]any) error {
	return s.audit.Append(ctx, audit.Event{ActorType: audit.ActorUser, ActorID: idString(u.ID), ActorName: u.Login, DeptID: u.DeptID,
		Action: action, ObjectType: "user", ObjectID: idString(u.ID), Result: result, Details: audit.Details(details)})
}

// VerifyLoginTOTP completes a login with the one-time code. Wrong codes
// count towards the lockout like wrong passwords.
func (s *Service) VerifyLoginTOTP(ctx context.Context, token, code string) (User, error) {
	sess, u, err := s.Authenticate(ctx, token)
	if err != nil {
		return User{}, err
	}
	now := s.now()
	if u.Locked(now) {
		return User{}, ErrLocked
	}
	step, err := s.checkTOTP(ctx, u, code, now)
	if err != nil {
		return User{}, err
	}
	if step == 0 {
		locked, err := s.countFailure(ctx, u.ID, now)
		if err != nil {
			return User{}, err
		}
		_ = s.loginEvent(ctx, u, "login.totp_failed", audit.ResultDenied, nil)
		if locked {
			_, _ = s.db.Exec(ctx, "UPDATE sessions SET revoked_at = ? WHERE token_hash = ?", now, sess.TokenHash)
			return User{}, ErrLocked
		}
		return User{}, ErrBadTOTP
	}
	if _, err := s.db.Exec(ctx, "UPDATE sessions SET totp_verified = ? WHERE token_hash = ?", true, sess.TokenHash); err != nil {
		return User{}, err
	}
	if _, err := s.db.Exec(ctx, "UPDATE users SET failed_logins = 0 WHERE id = ?", u.ID); err != nil {
		return User{}, err
	}
	return u, s.loginEvent(ctx, u, "login", audit.ResultOK, map[string]any{"second_factor": "totp"})
}

// checkTOTP returns the matched step (0: no match) and records it so the
// same code cannot be used twice.
func (s *Service) checkTOTP(ctx context.Context, u User, code string, now time.Time) (int64, error) {
	if u.totpSecret == "" {
		return 0, ErrTOTPNotStarted
	}
	secret, err := s.seal.Open(u.totpSecret)
	if err != nil {
		return 0, fmt.Errorf("two-factor secret of %s: %w", u.Login, err)
	}
	step := matchTOTP(string(secret), code, now, u.totpLastStep)
	if step == 0 {
		return 0, nil
	}
	// The conditional update makes replay impossible even for two requests
	// racing with the same code.
	res, err := s.db.Exec(ctx, "UPDATE users SET totp_last_step = ? WHERE id = ? AND totp_last_step < ?", step, u.ID, step)
	if err != nil {
		return 0, err
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return 0, nil
	}
	return step, nil
}

// Authenticate resolves a session token, enforcing the idle and absolute
// timeouts. It refreshes the idle clock at most once a minute.
func (s *Service) Authenticate(ctx context.Context, token string) (Session, User, error) {
	if token == "" {
		return Session{}, User{}, ErrSessionEnded
	}
	var sess Session
	var revoked sql.NullTime
	err := s.db.QueryRow(ctx, `SELECT token_hash, user_id, created_at, last_seen_at, expires_at, totp_verified, revoked_at
		FROM sessions WHERE token_hash = ?`, hashToken(token)).Scan(&sess.TokenHash, &sess.UserID, &sess.CreatedAt, &sess.LastSeenAt,
		&sess.ExpiresAt, &sess.TOTPVerified, &revoked)
	if errors.Is(err, sql.ErrNoRows) {
		return Session{}, User{}, ErrSessionEnded
	} else if err != nil {
		return Session{}, User{}, err
	}
	now := s.now()
	if revoked.Valid || now.After(sess.ExpiresAt) || now.Sub(sess.LastSeenAt) > s.cfg.SessionIdle {
		return Session{}, User{}, ErrSessionEnded
	}
	u, err := s.User(ctx, sess.UserID)
	if err != nil {
		return Session{}, User{}, err
	}
	if u.Status != StatusActive {
		return Session{}, User{}, ErrSessionEnded
	}
	if now.Sub(sess.LastSeenAt) > time.Minute {
		if _, err := s.db.Exec(ctx, "UPDATE sessions SET last_seen_at = ? WHERE token_hash = ?", now, sess.TokenHash); err != nil {
			return Session{}, User{}, err
		}
		sess.LastSeenAt = now
	}
	return sess, u, nil
}

// Logout ends a session.
func (s *Service) Logout(ctx context.Context, token string) error {
	sess, u, err := s.Authenticate(ctx, token)
	if err != nil {
		return nil // already over
	}
	if _, err := s.db.Exec(ctx, "UPDATE sessions SET revoked_at = ? WHERE token_hash = ?", s.now(), sess.TokenHash); err != nil {
		return err
	}
	return s.loginEvent(ctx, u, "logout", audit.ResultOK, nil)
}

// ChangePassword lets a user set a new password, which the policy checks.
// Other sessions of the user end.
func (s *Service) ChangePassword(ctx context.Context, userID int64, keepSession, oldPW, newPW string) error {
	u, err := s.User(ctx, userID)
	if err != nil {
		return err
	}
	if !CheckPassword(u.passwordHash, oldPW) {
		_ = s.loginEvent(ctx, u, "password.change", audit.ResultDenied, map[string]any{"reason": "wrong current password"})
		return ErrOldPassword
	}
	if err := CheckPasswordPolicy(newPW, u.Login); err != nil {
		if ae, ok := apperr.As(err); ok {
			return ae.OnField("new_password")
		}
		return err
	}
	if oldPW == newPW {
		return ErrPasswordReused
	}
	now := s.now()
	if _, err := s.db.Exec(ctx, "UPDATE users SET password_hash = ?, must_change_password = ?, updated_at = ? WHERE id = ?",
		HashPassword(newPW), false, now, userID); err != nil {
		return err
	}
	if _, err := s.db.Exec(ctx, "UPDATE sessions SET revoked_at = ? WHERE user_id = ? AND revoked_at IS NULL AND token_hash <> ?",
		now, userID, hashToken(keepSession)); err != nil {
		return err
	}
	return s.loginEvent(ctx, u, "password.change", audit.ResultOK, nil)
}

// BeginTOTP returns the user's two-factor secret with its otpauth URI for
// the authenticator app, creating one (not yet active) if the user has
// none. A pending secret is kept until confirmed, so reloading the page
// does not invalidate what the user already scanned.
func (s *Service) BeginTOTP(ctx context.Context, userID int64) (secret, uri string, err error) {
	u, err := s.User(ctx, userID)
	if err != nil {
		return "", "", err
	}
	if u.totpSecret != "" {
		sec, err := s.seal.Open(u.totpSecret)
		if err != nil {
			return "", "", err
		}
		return string(sec), TOTPURI(s.cfg.Issuer, u.Login, string(sec)), nil
	}
	secret = NewTOTPSecret()
	res, err := s.db.Exec(ctx, "UPDATE users SET totp_secret = ? WHERE id = ? AND totp_secret = ''", s.seal.Seal([]byte(secret)), userID)
	if err != nil {
		return "", "", err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return s.BeginTOTP(ctx, userID) // another request created it first
	}
	return secret, TOTPURI(s.cfg.Issuer, u.Login, secret), nil
}

// ConfirmTOTP switches two-factor login on once the user proves the app
// works, and marks the current session as verified.
func (s *Service) ConfirmTOTP(ctx context.Context, userID int64, sessionToken, code string) error {
	u, err := s.User(ctx, userID)
	if err != nil {
		return err
	}
	step, err := s.checkTOTP(ctx, u, code, s.now())
	if err != nil {
		return err
	}
	if step == 0 {
		return ErrBadTOTP
	}
	if _, err := s.db.Exec(ctx, "UPDATE users SET totp_enabled = ? WHERE id = ?", true, userID); err != nil {
		return err
	}
	if _, err := s.db.Exec(ctx, "UPDATE sessions SET totp_verified = ? WHERE token_hash = ?", true, hashToken(sessionToken)); err != nil {
		return err
	}
	return s.loginEvent(ctx, u, "totp.enrol", audit.ResultOK, nil)
}

// DisableTOTP turns two-factor login off for a user who may do without it.
func (s *Service) DisableTOTP(ctx context.Context, userID int64, code string) error {
	u, err := s.User(ctx, userID)
	if err != nil {
		return err
	}
	if u.HasAdminRole() {
		return ErrTOTPMandatory
	}
	step, err := s.checkTOTP(ctx, u, code, s.now())
	if err != nil {
		return err
	}
	if step == 0 {
		return ErrBadTOTP
	}
	if _, err := s.db.Exec(ctx, "UPDATE users SET totp_enabled = ?, totp_secret = '' WHERE id = ?", false, userID); err != nil {
		return err
	}
	return s.loginEvent(ctx, u, "totp.disable", audit.ResultOK, nil)
}
