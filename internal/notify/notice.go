// Package notify tells people what waits on them: notifications in the
// app, outbound webhooks per department (HMAC-signed, retried with
// backoff, with a delivery log) so an OA system can pick them up, and
// reminders before deadlines with an overdue notice to the platform
// administrators.
package notify

import (
	"context"
	"time"

	"govshare/internal/policy"
)

// Notice is one thing to tell: the users of a department holding one of
// the roles (DeptID 0 means users of any department holding them, e.g.
// the platform administrators), and/or named users. Webhooks of DeptID
// receive it too.
type Notice struct {
	Kind       string // e.g. "application.submitted"
	DeptID     int64
	Roles      []policy.Role
	UserIDs    []int64
	TitleZH    string
	TitleEN    string
	Href       string // page to act on it, e.g. /applications/12
	ObjectType string
	ObjectID   string
	Data       map[string]any // extra fields for the webhook payload
}

// Deadline is an open task with a due time, for reminders: before it is
// due its department's role holders are reminded; once it is overdue the
// platform administrators are told.
type Deadline struct {
	Kind       string // e.g. "application.answer"
	ObjectType string
	ObjectID   string
	DeptID     int64
	Roles      []policy.Role
	TitleZH    string
	TitleEN    string
	Href       string
	Due        time.Time
}

// DeadlineSource lists the open deadlines a domain holds.
type DeadlineSource interface {
	Deadlines(ctx context.Context) ([]Deadline, error)
}
