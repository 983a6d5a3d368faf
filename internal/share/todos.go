package share

import (
	"context"
	"fmt"

	"govshare/internal/notify"
	"govshare/internal/policy"
	"govshare/internal/store"
	"govshare/internal/todo"
)

var (
	_ todo.Source           = (*Service)(nil)
	_ notify.DeadlineSource = (*Service)(nil)
)

// Todos lists the sharing work waiting on actor: applications to accept
// and decide, rulings to carry out and negotiations to answer for a
// provider's reviewers and data administrators; escalations to coordinate
// and negotiations for platform administrators.
func (s *Service) Todos(ctx context.Context, actor policy.Actor) ([]todo.Item, error) {
	var out []todo.Item
	add := func(apps []Application) {
		for _, a := range apps {
			it := todo.Item{Object: a.EntryName + " — " + a.ConsumerDept, Href: fmt.Sprintf("/applications/%d", a.ID), Since: a.UpdatedAt}
			switch {
			case a.State == Escalated:
				it.Kind, it.Title = "application.coordinate", "协调共享申请 / coordinate an application"
			case a.State == RuledShare:
				it.Kind, it.Title, it.Deadline = "application.provide", "按协调结果提供数据 / provide as ruled", a.ProvideDeadline
			case a.Kind == KindNegotiation:
				it.Kind, it.Title, it.Deadline = "negotiation.answer", "答复协商请求 / answer a negotiation request", a.AnswerDeadline
			case a.State == Submitted:
				it.Kind, it.Title, it.Deadline = "application.accept", "受理共享申请 / accept an application", a.AnswerDeadline
			default:
				it.Kind, it.Title, it.Deadline = "application.decide", "审批共享申请 / decide an application", a.AnswerDeadline
			}
			out = append(out, it)
		}
	}
	if actor.DeptID != 0 && policy.Allowed(actor, policy.ShareDecide, policy.Target{DeptID: actor.DeptID}) {
		apps, err := s.openApplications(ctx, "a.provider_dept_id = ? AND a.state IN ('submitted', 'accepted', 'ruled_share')", actor.DeptID)
		if err != nil {
			return nil, err
		}
		add(apps)
	}
	if policy.Allowed(actor, policy.ShareCoordinate, policy.Target{}) {
		apps, err := s.openApplications(ctx, "(a.state = 'escalated' OR (a.kind = 'negotiation' AND a.state = 'submitted'))")
		if err != nil {
			return nil, err
		}
		add(apps)
	}
	return out, nil
}

func (s *Service) openApplications(ctx context.Context, where string, args ...any) ([]Application, error) {
	return store.All(ctx, s.db, s.scanApp, "SELECT "+applicationCols+applicationFrom+" WHERE "+where+" ORDER BY a.id LIMIT 1000", args...)
}

// Deadlines lists the providers' open deadlines for reminders: answers
// due on applications and negotiations, provisions due after rulings.
func (s *Service) Deadlines(ctx context.Context) ([]notify.Deadline, error) {
	apps, err := s.openApplications(ctx, "a.state IN ('submitted', 'accepted', 'ruled_share')")
	if err != nil {
		return nil, err
	}
	var out []notify.Deadline
	for _, a := range apps {
		d := notify.Deadline{Kind: "application.answer", ObjectType: "share_application", ObjectID: itoa(a.ID), DeptID: a.ProviderDeptID, Roles: providerRoles,
			Href: fmt.Sprintf("/applications/%d", a.ID), Due: a.AnswerDeadline,
			TitleZH: "答复共享申请：" + a.EntryName + "(" + a.ConsumerDept + ")", TitleEN: "Answer the application: " + a.EntryName + " (" + a.ConsumerDept + ")"}
		if a.State == RuledShare {
			d.Kind, d.Due = "application.provide", a.ProvideDeadline
			d.TitleZH, d.TitleEN = "按协调结果提供："+a.EntryName+"("+a.ConsumerDept+")", "Provide as ruled: "+a.EntryName+" ("+a.ConsumerDept+")"
		}
		if !d.Due.IsZero() {
			out = append(out, d)
		}
	}
	return out, nil
}
