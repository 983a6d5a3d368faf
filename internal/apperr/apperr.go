// Package apperr is the shape of every error a user can see: a stable code,
// a message in Chinese and in English, and where it applies (field, row).
// Domain packages return these as values; the web layer turns them into
// RFC 9457 problem documents and form messages without knowing the domain.
package apperr

import (
	"errors"
	"fmt"
	"net/http"
	"time"
)

// Error is a user-facing error.
type Error struct {
	Status int    // HTTP status the web layer answers with
	Code   string // stable, e.g. "identity.credit_code_invalid"
	ZH, EN string // messages
	Field  string // offending field's machine name, if any
	Row    int    // offending row of an import, if any (1-based)
	Value  string // offending value, when safe to echo
	// RetryAfter is when a refused request may be tried again (429, 503).
	RetryAfter time.Duration
}

func (e *Error) Error() string {
	s := e.Code + ": " + e.EN
	if e.Field != "" {
		s += " (field " + e.Field + ")"
	}
	if e.Row > 0 {
		s += fmt.Sprintf(" (row %d)", e.Row)
	}
	return s
}

// Is matches errors by code, so a copy with a field still matches its base.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code
}

// New makes an error value.
func New(status int, code, zh, en string) *Error {
	return &Error{Status: status, Code: code, ZH: zh, EN: en}
}

// Invalid is a 422 validation error on one field.
func Invalid(code, field, zh, en string) *Error {
	return &Error{Status: http.StatusUnprocessableEntity, Code: code, ZH: zh, EN: en, Field: field}
}

// OnField returns a copy that names field.
func (e *Error) OnField(field string) *Error {
	c := *e
	c.Field = field
	return &c
}

// OnRow returns a copy that names an import row.
func (e *Error) OnRow(row int) *Error {
	c := *e
	c.Row = row
	return &c
}

// After returns a copy that may be retried after d.
func (e *Error) After(d time.Duration) *Error {
	c := *e
	c.RetryAfter = d
	return &c
}

// With returns a copy with more specific messages.
func (e *Error) With(zh, en string) *Error {
	c := *e
	c.ZH, c.EN = zh, en
	return &c
}

// Message returns the message in lang ("en" or Chinese otherwise).
func (e *Error) Message(lang string) string {
	if lang == "en" {
		return e.EN
	}
	return e.ZH
}

// As finds an *Error in err's chain.
func As(err error) (*Error, bool) {
	var e *Error
	ok := errors.As(err, &e)
	return e, ok
}

// Common errors shared by every domain.
var (
	ErrUnauthenticated = New(http.StatusUnauthorized, "auth.unauthenticated", "请先登录", "authentication required")
	ErrDenied          = New(http.StatusForbidden, "auth.denied", "无权执行此操作", "you are not allowed to do this")
	ErrNotFound        = New(http.StatusNotFound, "not_found", "对象不存在", "not found")
	ErrCSRF            = New(http.StatusForbidden, "auth.csrf", "表单已失效，请刷新页面后重试", "the form expired or was not sent by this site; reload the page and try again")
)
