package web

import (
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/danielgtaylor/huma/v2"

	"govshare/internal/apperr"
	"govshare/internal/jsontext"
)

// Problem is an RFC 9457 problem document with govshare's stable code, a
// message in Chinese and in English, and the offending field or row.
type Problem struct {
	Type      string          `json:"type" doc:"问题类型URI / problem type URI"`
	Title     string          `json:"title" doc:"HTTP状态说明 / HTTP status text"`
	Status    int             `json:"status" doc:"HTTP状态码 / HTTP status"`
	Detail    string          `json:"detail,omitempty" doc:"英文说明 / explanation in English"`
	Instance  string          `json:"instance,omitempty" doc:"请求ID / request id"`
	Code      string          `json:"code" doc:"稳定错误码 / stable error code" example:"identity.credit_code_invalid"`
	MessageZH string          `json:"message_zh" doc:"中文说明 / message in Chinese"`
	MessageEN string          `json:"message_en" doc:"英文说明 / message in English"`
	Field     string          `json:"field,omitempty" doc:"出错字段 / offending field"`
	Row       int             `json:"row,omitempty" doc:"出错行(导入) / offending row of an import"`
	Errors    []ProblemDetail `json:"errors,omitempty" doc:"逐项错误 / individual errors"`
}

// ProblemDetail is one of several validation errors.
type ProblemDetail struct {
	Field   string `json:"field,omitempty"`
	Message string `json:"message"`
	Value   any    `json:"value,omitempty"`
}

func (p *Problem) Error() string  { return p.Code + ": " + p.MessageEN }
func (p *Problem) GetStatus() int { return p.Status }

// ContentType makes huma answer with application/problem+json.
func (p *Problem) ContentType(ct string) string {
	if ct == "application/json" {
		return "application/problem+json"
	}
	return ct
}

func problemType(code string) string { return "/api/docs#error-" + code }

// newProblem replaces huma's error model, so the framework's own errors
// (validation, unknown route parameters, bad JSON) carry codes too.
func newProblem(status int, msg string, errs ...error) huma.StatusError {
	p := &Problem{Status: status, Title: http.StatusText(status), Detail: msg}
	for _, e := range errs {
		if e == nil {
			continue
		}
		var ed *huma.ErrorDetail
		if errors.As(e, &ed) {
			p.Errors = append(p.Errors, ProblemDetail{Field: fieldOf(ed.Location), Message: ed.Message, Value: ed.Value})
		} else {
			p.Errors = append(p.Errors, ProblemDetail{Message: e.Error()})
		}
	}
	switch {
	case status == http.StatusUnprocessableEntity || status == http.StatusBadRequest:
		p.Code = "request.invalid"
		p.MessageZH = "请求内容无效"
		p.MessageEN = "the request is not valid"
		if len(p.Errors) > 0 {
			p.Field = p.Errors[0].Field
			p.MessageZH += "：" + p.Errors[0].Field + " " + p.Errors[0].Message
			p.MessageEN += ": " + p.Errors[0].Field + " " + p.Errors[0].Message
		}
	case status == http.StatusNotFound:
		p.Code, p.MessageZH, p.MessageEN = apperr.ErrNotFound.Code, apperr.ErrNotFound.ZH, apperr.ErrNotFound.EN
	case status == http.StatusUnauthorized:
		p.Code, p.MessageZH, p.MessageEN = apperr.ErrUnauthenticated.Code, apperr.ErrUnauthenticated.ZH, apperr.ErrUnauthenticated.EN
	case status >= 500:
		p.Code, p.MessageZH, p.MessageEN = "internal", "服务器内部错误，请稍后重试或联系管理员", "internal error; try again later or contact the administrator"
	default:
		p.Code = "http." + strconv.Itoa(status)
		p.MessageZH, p.MessageEN = msg, msg
	}
	p.Type = problemType(p.Code)
	return p
}

// fieldOf turns huma's "body.credit_code" into "credit_code".
func fieldOf(loc string) string {
	for _, pre := range []string{"body.", "query.", "path.", "header."} {
		if rest, ok := strings.CutPrefix(loc, pre); ok {
			return rest
		}
	}
	if loc == "body" {
		return ""
	}
	return loc
}

// problemFrom maps any error from a service to a problem document.
func problemFrom(err error, reqID string) *Problem {
	if ae, ok := apperr.As(err); ok {
		p := &Problem{Type: problemType(ae.Code), Title: http.StatusText(ae.Status), Status: ae.Status, Detail: ae.EN, Instance: reqID,
			Code: ae.Code, MessageZH: ae.ZH, MessageEN: ae.EN, Field: ae.Field, Row: ae.Row}
		return p
	}
	p := newProblem(http.StatusInternalServerError, "internal error").(*Problem)
	p.Instance = reqID
	return p
}

func jsonString(s string) string { return string(jsontext.AppendString(nil, s)) }

func itoa(i int64) string { return strconv.FormatInt(i, 10) }
