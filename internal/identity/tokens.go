package identity

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"govshare/internal/apperr"
	"govshare/internal/audit"
	"govshare/internal/policy"
)

// Token is an API token for a machine client acting as its user. Only its
// hash is stored; the token itself is shown once, at creation.
type Token struct {
	ID         int64     `json:"id"`
	UserID     int64     `json:"user_id"`
	Name       string    `json:"name"`
	Prefix     string    `json:"prefix" doc:"令牌开头，用于辨认 / first characters, to recognise the token"`
	CreatedAt  time.Time `json:"created_at"`
	ExpiresAt  time.Time `json:"expires_at,omitzero"`
	LastUsedAt time.Time `json:"last_used_at,omitzero"`
	RevokedAt  time.Time `json:"revoked_at,omitzero"`
}

// Active reports whether the token can be used at t.
func (t Token) Active(now time.Time) bool {
	return t.RevokedAt.IsZero() && (t.ExpiresAt.IsZero() || now.Before(t.ExpiresAt))
}

// TokenPrefix starts every API token, so leaked tokens are easy to find.
const TokenPrefix = "gst_"

// CreateToken issues a token to the actor. expiresInDays 0 means 90 days.
func (s *Service) CreateToken(ctx context.Context, actor policy.Actor, name string, expiresInDays int) (string, Token, error) {
	if err := s.authorize(ctx, actor, policy.TokenManageOwn, policy.Target{DeptID: actor.DeptID}, "api_token", ""); err != nil {
		return "", Token{}, err
	}
	name = strings.TrimSpace(name)
	if name == "" || utf8.RuneCountInString(name) > 64 {
		return "", Token{}, ErrTokenName
	}
	if expiresInDays == 0 {
		expiresInDays = 90
	}
	if expiresInDays < 1 || expiresInDays > 365 {
		return "", Token{}, ErrTokenExpiry
	}
	plain, hash := newToken(TokenPrefix)
	now := s.now()
	t := Token{UserID: actor.UserID, Name: name, Prefix: plain[:len(TokenPrefix)+6], CreatedAt: now, ExpiresAt: now.AddDate(0, 0, expiresInDays)}
	if err := s.db.QueryRow(ctx, `INSERT INTO api_tokens (user_id, name, prefix, token_hash, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?) RETURNING id`,
		t.UserID, t.Name, t.Prefix, hash, t.CreatedAt, t.ExpiresAt).Scan(&t.ID); err != nil {
		return "", Token{}, fmt.Errorf("create token: %w", err)
	}
	return plain, t, s.record(ctx, actor, "token.create", "api_token", itoa(t.ID), audit.ResultOK, map[string]any{"name": name, "prefix": t.Prefix, "expires_at": t.ExpiresAt})
}

const tokenCols = "id, user_id, name, prefix, created_at, expires_at, last_used_at, revoked_at"

func scanToken(row interface{ Scan(...any) error }) (Token, error) {
	var t Token
	var exp, used, rev sql.NullTime
	err := row.Scan(&t.ID, &t.UserID, &t.Name, &t.Prefix, &t.CreatedAt, &exp, &used, &rev)
	t.ExpiresAt, t.LastUsedAt, t.RevokedAt = exp.Time, used.Time, rev.Time
	return t, err
}

// Tokens lists a user's tokens. Users see their own; security
// administrators see anyone's.
func (s *Service) Tokens(ctx context.Context, actor policy.Actor, userID int64) ([]Token, error) {
	if userID != actor.UserID {
		if err := s.authorize(ctx, actor, policy.TokenRevokeAny, policy.Target{}, "api_token", ""); err != nil {
			return nil, err
		}
	}
	rows, err := s.db.Query(ctx, "SELECT "+tokenCols+" FROM api_tokens WHERE user_id = ? ORDER BY id DESC", userID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Token
	for rows.Next() {
		t, err := scanToken(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

// RevokeToken ends a token. Owners revoke their own; security
// administrators revoke any.
func (s *Service) RevokeToken(ctx context.Context, actor policy.Actor, id int64) error {
	t, err := scanToken(s.db.QueryRow(ctx, "SELECT "+tokenCols+" FROM api_tokens WHERE id = ?", id))
	if errors.Is(err, sql.ErrNoRows) {
		return apperr.ErrNotFound
	} else if err != nil {
		return err
	}
	if t.UserID != actor.UserID {
		if err := s.authorize(ctx, actor, policy.TokenRevokeAny, policy.Target{}, "api_token", itoa(id)); err != nil {
			return err
		}
	}
	if _, err := s.db.Exec(ctx, "UPDATE api_tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL", s.now(), id); err != nil {
		return err
	}
	return s.record(ctx, actor, "token.revoke", "api_token", itoa(id), audit.ResultOK, map[string]any{"name": t.Name, "prefix": t.Prefix})
}

// ErrBadToken is the answer to an unknown, expired or revoked token.
var ErrBadToken = apperr.New(401, "identity.token_invalid", "API令牌无效、已过期或已吊销", "the API token is invalid, expired or revoked")

// AuthenticateToken resolves a bearer token to its user.
func (s *Service) AuthenticateToken(ctx context.Context, plain string) (User, Token, error) {
	if !strings.HasPrefix(plain, TokenPrefix) {
		return User{}, Token{}, ErrBadToken
	}
	t, err := scanToken(s.db.QueryRow(ctx, "SELECT "+tokenCols+" FROM api_tokens WHERE token_hash = ?", hashToken(plain)))
	if errors.Is(err, sql.ErrNoRows) {
		return User{}, Token{}, ErrBadToken
	} else if err != nil {
		return User{}, Token{}, err
	}
	now := s.now()
	if !t.Active(now) {
		return User{}, Token{}, ErrBadToken
	}
	u, err := s.User(ctx, t.UserID)
	if err != nil {
		return User{}, Token{}, err
	}
	if u.Status != StatusActive || u.Locked(now) {
		return User{}, Token{}, ErrBadToken
	}
	if now.Sub(t.LastUsedAt) > time.Minute {
		if _, err := s.db.Exec(ctx, "UPDATE api_tokens SET last_used_at = ? WHERE id = ?", now, t.ID); err != nil {
			return User{}, Token{}, err
		}
	}
	return u, t, nil
}
