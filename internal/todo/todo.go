// Package todo is the to-do inbox (待办): every task that waits on a person
// or a role, gathered from the domains that own the tasks. A task is
// derived from the state of its object (an entry awaiting review, a demand
// awaiting an answer), so the inbox can never disagree with the work.
package todo

import (
	"context"
	"sort"
	"time"

	"govshare/internal/policy"
)

// Item is one task.
type Item struct {
	Kind     string    `json:"kind" doc:"任务类型 / kind, e.g. catalog.review"`
	Title    string    `json:"title" doc:"任务 / task"`
	Object   string    `json:"object" doc:"对象名称 / what it is about"`
	Href     string    `json:"href" doc:"办理页面 / page to act on it"`
	Since    time.Time `json:"since" doc:"发起时间 / waiting since"`
	Deadline time.Time `json:"deadline,omitzero" doc:"期限 / deadline"`
	DaysLeft int       `json:"days_left,omitempty" doc:"剩余天数 / days left"`
	Overdue  bool      `json:"overdue" doc:"已逾期 / overdue"`
}

// Source contributes the tasks one domain holds for an actor.
type Source interface {
	Todos(ctx context.Context, actor policy.Actor) ([]Item, error)
}

// Inbox merges the sources.
type Inbox struct {
	sources []Source
	now     func() time.Time
}

// New builds an inbox over sources.
func New(sources ...Source) *Inbox { return &Inbox{sources: sources, now: time.Now} }

// List returns the actor's tasks: overdue first, then by deadline, then
// oldest first.
func (in *Inbox) List(ctx context.Context, actor policy.Actor) ([]Item, error) {
	var out []Item
	now := in.now()
	for _, s := range in.sources {
		items, err := s.Todos(ctx, actor)
		if err != nil {
			return nil, err
		}
		for _, it := range items {
			if !it.Deadline.IsZero() {
				it.Overdue = now.After(it.Deadline)
				it.DaysLeft = int(it.Deadline.Sub(now).Hours() / 24)
			}
			out = append(out, it)
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Overdue != b.Overdue {
			return a.Overdue
		}
		if a.Deadline.IsZero() != b.Deadline.IsZero() {
			return !a.Deadline.IsZero()
		}
		if !a.Deadline.Equal(b.Deadline) {
			return a.Deadline.Before(b.Deadline)
		}
		return a.Since.Before(b.Since)
	})
	return out, nil
}
