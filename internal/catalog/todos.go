package catalog

import (
	"context"
	"fmt"
	"time"

	"govshare/internal/notify"
	"govshare/internal/policy"
	"govshare/internal/store"
	"govshare/internal/todo"
)

var _ todo.Source = (*Service)(nil)

// Todos lists the catalog work waiting on actor: reviews and publications
// for platform administrators; returned entries, pending changes and
// routed demands for a department's data administrators; open demands to
// route.
func (s *Service) Todos(ctx context.Context, actor policy.Actor) ([]todo.Item, error) {
	var out []todo.Item
	add := func(f Filter, kind, title string) error {
		es, err := s.Entries(ctx, actor, f)
		if err != nil {
			return err
		}
		for _, e := range es {
			out = append(out, todo.Item{Kind: kind, Title: title, Object: e.Draft.Name, Href: fmt.Sprintf("/catalog/%d", e.ID),
				Since: e.UpdatedAt, Deadline: e.ChangeDeadline})
		}
		return nil
	}
	if policy.Allowed(actor, policy.CatalogReview, policy.Target{}) {
		if err := add(Filter{State: Submitted, Limit: 500}, "catalog.review", "审核目录条目 / review an entry"); err != nil {
			return nil, err
		}
		if err := add(Filter{State: Approved, Limit: 500}, "catalog.publish", "发布目录条目 / publish an entry"); err != nil {
			return nil, err
		}
		ds, err := s.Demands(ctx, DemandFilter{State: "open"})
		if err != nil {
			return nil, err
		}
		for _, d := range ds {
			out = append(out, todo.Item{Kind: "demand.route", Title: "分派数据需求 / route a demand", Object: d.Title, Href: "/demands?state=open", Since: d.CreatedAt})
		}
	}
	if policy.Allowed(actor, policy.CatalogEdit, policy.Target{DeptID: actor.DeptID}) {
		if err := add(Filter{DeptID: actor.DeptID, State: Returned, Limit: 500}, "catalog.fix", "修改被退回的目录条目 / fix a returned entry"); err != nil {
			return nil, err
		}
		es, err := s.Entries(ctx, actor, Filter{DeptID: actor.DeptID, State: Draft, Limit: 500})
		if err != nil {
			return nil, err
		}
		for _, e := range es {
			if e.PublishedVersion > 0 { // an open change request
				out = append(out, todo.Item{Kind: "catalog.change", Title: "完成目录变更 / complete a catalog change", Object: e.Draft.Name,
					Href: fmt.Sprintf("/catalog/%d", e.ID), Since: e.UpdatedAt, Deadline: e.ChangeDeadline})
			}
		}
		ds, err := s.Demands(ctx, DemandFilter{State: "routed", DeptID: actor.DeptID})
		if err != nil {
			return nil, err
		}
		for _, d := range ds {
			out = append(out, todo.Item{Kind: "demand.answer", Title: "答复数据需求 / answer a demand", Object: d.Title, Href: "/demands?state=routed", Since: d.UpdatedAt})
		}
	}
	return out, nil
}

var _ notify.DeadlineSource = (*Service)(nil)

// Deadlines lists the open catalog changes with a legal deadline, for
// reminders to the department's data administrators.
func (s *Service) Deadlines(ctx context.Context) ([]notify.Deadline, error) {
	return store.All(ctx, s.db, func(r store.Row) (notify.Deadline, error) {
		var id, dept int64
		var name string
		var due time.Time
		err := r.Scan(&id, &dept, &name, &due)
		return notify.Deadline{Kind: "catalog.change", ObjectType: "catalog_entry", ObjectID: itoa(id), DeptID: dept, Roles: []policy.Role{policy.DeptAdmin},
			TitleZH: "完成目录变更：" + name, TitleEN: "Complete the catalog change: " + name, Href: fmt.Sprintf("/catalog/%d", id), Due: due.UTC()}, err
	}, `SELECT id, dept_id, name, change_deadline FROM entries
		WHERE change_deadline IS NOT NULL AND published_version > 0 AND state IN ('draft', 'returned', 'submitted', 'approved')`)
}
