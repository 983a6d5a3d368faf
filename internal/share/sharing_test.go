package share_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"govshare/internal/apperr"
	"govshare/internal/audit"
	"govshare/internal/calendar"
	"govshare/internal/catalog"
	"govshare/internal/notify"
	"govshare/internal/policy"
	"govshare/internal/share"
	"govshare/internal/store"
	"govshare/internal/storetest"
	"govshare/internal/testfix"
	"govshare/internal/todo"
)

// notices records what the service asked to tell.
type notices struct {
	mu   sync.Mutex
	sent []notify.Notice
}

func (n *notices) Send(_ context.Context, x notify.Notice) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.sent = append(n.sent, x)
	return nil
}

func (n *notices) kinds() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []string
	for _, x := range n.sent {
		out = append(out, x.Kind)
	}
	return out
}

type sharing struct {
	svc      *share.Service
	apps     *share.Apps
	cat      *catalog.Service
	log      *audit.Log
	sent     *notices
	clock    *time.Time
	admin    policy.Actor // platform administrator
	police   policy.Actor // provider's data administrator
	reviewer policy.Actor // provider's reviewer
	civil    policy.Actor // consumer department's data administrator
	clerk    policy.Actor // consumer department's user
	other    policy.Actor // a third department's data administrator
	entries  map[catalog.ShareType]catalog.Entry
}

func content(name string, st catalog.ShareType) catalog.Content {
	c := catalog.Content{
		Name: name, ClassCode: "101", Abstract: "本市户籍人口的户籍登记信息。", FormatClass: "database", FormatType: "postgresql",
		Items: []catalog.DataItem{
			{Name: "公民身份号码", MachineName: "citizen_id", DataType: "C", Length: 18, Key: true, Sensitivity: "sensitive", MaskRule: "keep(6,4)"},
			{Name: "姓名", MachineName: "name", DataType: "C", Length: 50, Sensitivity: "sensitive", MaskRule: "surname"},
			{Name: "户籍地址", MachineName: "address", DataType: "C", Length: 200, MaskRule: "district"},
			{Name: "行政区划代码", MachineName: "region_code", DataType: "C", Length: 6},
		},
		ShareType: st, ShareMethods: []catalog.ShareMethod{catalog.MethodAPI, catalog.MethodVerify},
		OpenType: catalog.OpenClosed, UpdateCycle: "daily",
	}
	switch st {
	case catalog.ShareConditional:
		c.ShareCondition = "用于政务服务身份核验"
	case catalog.ShareNone:
		c.ShareBasis = "《中华人民共和国居民身份证法》第十九条"
	}
	return c
}

func newSharing(t testing.TB, db *store.DB, cal calendar.WorkingDays) *sharing {
	t.Helper()
	ctx := context.Background()
	tc := testfix.New(t, db)
	keys, log := tc.Keys, tc.Audit
	dept, user := tc.Dept, tc.User
	city, police, civil, health := dept("市政务信息办", 1), dept("市公安局", 2), dept("市民政局", 3), dept("市卫健委", 4)
	now := time.Date(2026, 11, 20, 2, 0, 0, 0, time.UTC) // Friday 10:00 in Beijing
	s := &sharing{log: log, sent: &notices{}, clock: &now,
		admin: user("admin", city, policy.PlatformAdmin), police: user("gaj.admin", police, policy.DeptAdmin),
		reviewer: user("gaj.reviewer", police, policy.DeptReviewer), civil: user("mzj.admin", civil, policy.DeptAdmin),
		clerk: user("mzj.user", civil, policy.Consumer), other: user("wjw.admin", health, policy.DeptAdmin),
		entries: map[catalog.ShareType]catalog.Entry{}}
	s.cat = catalog.NewService(db, log, cal, catalog.DefaultConfig())
	if err := s.cat.EnsureDefaultTree(ctx); err != nil {
		t.Fatal(err)
	}
	for _, st := range []catalog.ShareType{catalog.ShareUnconditional, catalog.ShareConditional, catalog.ShareNone} {
		e, err := s.cat.CreateEntry(ctx, s.police, content("户籍信息 "+string(st), st))
		if err == nil {
			_, err = s.cat.Submit(ctx, s.police, e.ID)
		}
		if err == nil {
			_, err = s.cat.Approve(ctx, s.admin, e.ID)
		}
		if err == nil {
			e, err = s.cat.Publish(ctx, s.admin, e.ID)
		}
		if err != nil {
			t.Fatal(err)
		}
		s.entries[st] = e
	}
	s.apps = share.NewApps(db, log, keys)
	s.svc = share.NewService(db, log, s.cat, cal, s.sent, share.Config{})
	s.svc.SetClock(func() time.Time { return *s.clock })
	return s
}

func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	if ae, ok := apperr.As(err); !ok || ae.Code != code {
		t.Fatalf("want %s, got %v", code, err)
	}
}

func until(days int, from time.Time) time.Time { return from.AddDate(0, 0, days) }

func TestConditionalApplicationApprovedWithChanges(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		s := newSharing(t, db, calendar.Weekdays{})
		ctx := context.Background()
		e := s.entries[catalog.ShareConditional]
		req := share.Terms{Items: []string{"name", "citizen_id"}, Methods: []catalog.ShareMethod{catalog.MethodAPI}, Purpose: "低保资格核验",
			Basis: "《社会救助暂行办法》第十一条", ValidUntil: until(365, *s.clock), RowScope: &share.RowScope{Item: "region_code", Op: "prefix", Values: []string{"3501"}}}

		// Bad input names its field and creates nothing.
		bad := req
		bad.Items = []string{"name", "salary"}
		_, err := s.svc.Apply(ctx, s.clerk, e.ID, bad)
		wantCode(t, err, "share.items_invalid")
		bad = req
		bad.Basis = ""
		_, err = s.svc.Apply(ctx, s.clerk, e.ID, bad)
		wantCode(t, err, "share.basis_required")
		bad = req
		bad.Methods = []catalog.ShareMethod{catalog.MethodFile}
		_, err = s.svc.Apply(ctx, s.clerk, e.ID, bad)
		wantCode(t, err, "share.methods_invalid")
		_, err = s.svc.Apply(ctx, s.police, e.ID, req)
		wantCode(t, err, "share.own_resource")
		if _, err := s.svc.Apply(ctx, s.reviewer, e.ID, req); !errors.Is(err, apperr.ErrDenied) {
			t.Fatalf("a reviewer does not apply: %v", err)
		}
		if got, _ := s.svc.Applications(ctx, s.civil, share.ListFilter{}); len(got) != 0 {
			t.Fatalf("refused applications were stored: %d", len(got))
		}

		a, err := s.svc.Apply(ctx, s.clerk, e.ID, req)
		if err != nil {
			t.Fatal(err)
		}
		// Ten working days from Friday 2026-11-20 end on Friday 12-04.
		if a.State != share.Submitted || a.Kind != share.KindApplication || a.AnswerDeadline.In(calendar.CST).Format("2006-01-02") != "2026-12-04" {
			t.Fatalf("submitted: %+v", a)
		}
		// The provider's reviewers and administrators have it to do.
		inbox := todo.New(s.svc)
		for _, who := range []policy.Actor{s.police, s.reviewer} {
			items, _ := inbox.List(ctx, who)
			if len(items) != 1 || items[0].Kind != "application.accept" || !items[0].Deadline.Equal(a.AnswerDeadline) {
				t.Fatalf("provider to-do: %+v", items)
			}
		}
		if items, _ := inbox.List(ctx, s.other); len(items) != 0 {
			t.Fatalf("another department sees the task: %+v", items)
		}
		if !slices.Contains(s.sent.kinds(), "application.submitted") {
			t.Fatalf("no notice: %v", s.sent.kinds())
		}
		// Only the provider decides; a third department cannot even look.
		if _, err := s.svc.Approve(ctx, s.civil, a.ID, nil, ""); !errors.Is(err, apperr.ErrDenied) {
			t.Fatalf("the applicant approved: %v", err)
		}
		if _, err := s.svc.Application(ctx, s.other, a.ID); !errors.Is(err, apperr.ErrDenied) {
			t.Fatalf("a third department read it: %v", err)
		}
		if a, err = s.svc.Accept(ctx, s.reviewer, a.ID); err != nil || a.State != share.Accepted {
			t.Fatalf("accept: %v %v", a.State, err)
		}
		// An approval may narrow, never widen.
		wider := share.Terms{Items: []string{"name", "citizen_id", "address"}}
		_, err = s.svc.Approve(ctx, s.reviewer, a.ID, &wider, "")
		wantCode(t, err, "share.decision_wider")
		longer := share.Terms{ValidUntil: until(400, *s.clock)}
		_, err = s.svc.Approve(ctx, s.reviewer, a.ID, &longer, "")
		wantCode(t, err, "share.decision_wider")
		dec := share.Terms{Items: []string{"name"}, ValidUntil: until(180, *s.clock), RateLimit: 60,
			RowScope: &share.RowScope{Item: "region_code", Op: "prefix", Values: []string{"350102"}}}
		a, err = s.svc.Approve(ctx, s.reviewer, a.ID, &dec, "先开放姓名")
		if err != nil {
			t.Fatal(err)
		}
		if a.State != share.Approved || a.GrantID == 0 || len(a.Changes) != 4 {
			t.Fatalf("approved: %s grant %d changes %+v", a.State, a.GrantID, a.Changes)
		}
		if a.Changes[0].Field != "items" || a.Changes[0].From != "citizen_id,name" || a.Changes[0].To != "name" {
			t.Fatalf("changes: %+v", a.Changes)
		}
		// The applicant sees the grant with one item.
		gs, err := s.svc.Grants(ctx, s.clerk, share.GrantFilter{Side: "mine"})
		if err != nil || len(gs) != 1 || !slices.Equal(gs[0].Items, []string{"name"}) || gs[0].State != "active" {
			t.Fatalf("my grants: %+v %v", gs, err)
		}
		if given, _ := s.svc.Grants(ctx, s.police, share.GrantFilter{Side: "given"}); len(given) != 1 {
			t.Fatalf("grants given: %d", len(given))
		}
		if _, err := s.svc.Grants(ctx, s.police, share.GrantFilter{Side: "all"}); !errors.Is(err, apperr.ErrDenied) {
			t.Fatalf("a department administrator listed all grants: %v", err)
		}

		// The one check data services call.
		use := share.Use{DeptID: a.ConsumerDeptID, Resource: e.Code, Items: []string{"name"}, Method: catalog.MethodAPI}
		p, err := s.svc.Permit(ctx, use)
		if err != nil || p.GrantID != a.GrantID || p.Items[0].MaskRule != "surname" || p.RowScope.String() != "region_code prefix 350102" || p.RateLimit != 60 {
			t.Fatalf("permit: %+v %v", p, err)
		}
		for _, u := range []share.Use{
			{DeptID: a.ConsumerDeptID, Resource: e.Code, Items: []string{"citizen_id"}, Method: catalog.MethodAPI}, // item not granted
			{DeptID: a.ConsumerDeptID, Resource: e.Code, Items: []string{"name"}, Method: catalog.MethodVerify},    // method not granted
			{DeptID: s.other.DeptID, Resource: e.Code, Items: []string{"name"}, Method: catalog.MethodAPI},         // another department
		} {
			if _, err := s.svc.Permit(ctx, u); !errors.Is(err, share.ErrNoGrant) {
				t.Fatalf("%+v permitted: %v", u, err)
			}
		}
		// Grants expire by themselves.
		*s.clock = until(181, *s.clock)
		if _, err := s.svc.Permit(ctx, use); !errors.Is(err, share.ErrNoGrant) {
			t.Fatalf("expired grant permitted: %v", err)
		}
		if gs, _ := s.svc.Grants(ctx, s.clerk, share.GrantFilter{Side: "mine", State: "expired"}); len(gs) != 1 {
			t.Fatalf("expired grants: %d", len(gs))
		}
		// The timeline shows every step.
		a, _ = s.svc.Application(ctx, s.clerk, a.ID)
		var steps []string
		for _, ev := range a.Events {
			steps = append(steps, ev.Action)
		}
		if !slices.Equal(steps, []string{"submit", "accept", "approve"}) || a.Events[2].Note != "先开放姓名" {
			t.Fatalf("timeline: %v", steps)
		}
	})
}

func TestRejectEscalateRuleProvide(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		s := newSharing(t, db, calendar.Weekdays{})
		ctx := context.Background()
		e := s.entries[catalog.ShareConditional]
		req := share.Terms{Items: []string{"name", "address"}, Methods: []catalog.ShareMethod{catalog.MethodAPI}, Purpose: "救助对象核查",
			Basis: "《社会救助暂行办法》", ValidUntil: until(90, *s.clock)}
		a, err := s.svc.Apply(ctx, s.civil, e.ID, req)
		if err != nil {
			t.Fatal(err)
		}
		// Escalation is for refused or overdue applications.
		_, err = s.svc.Escalate(ctx, s.civil, a.ID, "久未答复")
		wantCode(t, err, "share.not_escalable")
		_, err = s.svc.Reject(ctx, s.police, a.ID, " ")
		wantCode(t, err, "share.reason_required")
		if a, err = s.svc.Reject(ctx, s.police, a.ID, "涉及个人隐私，需另签保密协议"); err != nil || a.Reason == "" {
			t.Fatalf("reject: %v", err)
		}
		if _, err := s.svc.Escalate(ctx, s.other, a.ID, "x"); !errors.Is(err, apperr.ErrDenied) {
			t.Fatalf("a third department escalated: %v", err)
		}
		if a, err = s.svc.Escalate(ctx, s.civil, a.ID, "已签保密协议，请协调"); err != nil || a.State != share.Escalated {
			t.Fatalf("escalate: %v", err)
		}
		items, _ := todo.New(s.svc).List(ctx, s.admin)
		if len(items) != 1 || items[0].Kind != "application.coordinate" {
			t.Fatalf("administrator's to-do: %+v", items)
		}
		if _, err := s.svc.Rule(ctx, s.police, a.ID, "share", "x", nil); !errors.Is(err, apperr.ErrDenied) {
			t.Fatalf("the provider ruled: %v", err)
		}
		_, err = s.svc.Rule(ctx, s.admin, a.ID, "maybe", "x", nil)
		wantCode(t, err, "share.outcome_invalid")
		if a, err = s.svc.Rule(ctx, s.admin, a.ID, "share", "依据《政务信息资源共享管理暂行办法》裁定共享", nil); err != nil {
			t.Fatal(err)
		}
		// Five working days from Friday 2026-11-20: Friday 11-27.
		if a.State != share.RuledShare || a.ProvideDeadline.In(calendar.CST).Format("2006-01-02") != "2026-11-27" {
			t.Fatalf("ruled: %s %v", a.State, a.ProvideDeadline)
		}
		items, _ = todo.New(s.svc).List(ctx, s.police)
		if len(items) != 1 || items[0].Kind != "application.provide" || !items[0].Deadline.Equal(a.ProvideDeadline) {
			t.Fatalf("provider's to-do after the ruling: %+v", items)
		}
		ds, _ := s.svc.Deadlines(ctx)
		if len(ds) != 1 || ds[0].Kind != "application.provide" || ds[0].DeptID != a.ProviderDeptID {
			t.Fatalf("deadlines: %+v", ds)
		}
		if a, err = s.svc.Provide(ctx, s.police, a.ID, "已开通"); err != nil || a.State != share.Approved || a.GrantID == 0 {
			t.Fatalf("provide: %+v %v", a, err)
		}
		// Revocation: by the provider, with a reason, effective at once.
		use := share.Use{DeptID: a.ConsumerDeptID, Resource: e.Code, Method: catalog.MethodAPI}
		if p, err := s.svc.Permit(ctx, use); err != nil || len(p.Items) != 2 {
			t.Fatalf("permit: %+v %v", p, err)
		}
		if _, err := s.svc.RevokeGrant(ctx, s.civil, a.GrantID, "x"); !errors.Is(err, apperr.ErrDenied) {
			t.Fatalf("the consumer revoked: %v", err)
		}
		_, err = s.svc.RevokeGrant(ctx, s.police, a.GrantID, "")
		wantCode(t, err, "share.reason_required")
		g, err := s.svc.RevokeGrant(ctx, s.police, a.GrantID, "协议到期")
		if err != nil || g.State != "revoked" || g.RevokeReason != "协议到期" {
			t.Fatalf("revoke: %+v %v", g, err)
		}
		if _, err := s.svc.Permit(ctx, use); !errors.Is(err, share.ErrNoGrant) {
			t.Fatalf("revoked grant permitted: %v", err)
		}
		a, _ = s.svc.Application(ctx, s.civil, a.ID)
		var steps []string
		for _, ev := range a.Events {
			steps = append(steps, ev.Action)
		}
		if !slices.Equal(steps, []string{"submit", "reject", "escalate", "rule", "provide", "revoke"}) {
			t.Fatalf("timeline: %v", steps)
		}
		// Every step is in the audit log.
		evs, err := s.log.List(ctx, audit.Filter{ObjectType: "share_application", Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		var actions []string
		for _, ev := range evs {
			if ev.Result == audit.ResultOK {
				actions = append(actions, ev.Action)
			}
		}
		for _, want := range []string{"share.application.submit", "share.application.reject", "share.application.escalate", "share.application.rule", "share.application.provide"} {
			if !slices.Contains(actions, want) {
				t.Errorf("audit log lacks %s: %v", want, actions)
			}
		}
	})
}

func TestOverdueApplicationCanBeEscalatedAndRefusalUpheld(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		s := newSharing(t, db, calendar.Weekdays{})
		ctx := context.Background()
		a, err := s.svc.Apply(ctx, s.civil, s.entries[catalog.ShareConditional].ID, share.Terms{Items: []string{"name"}, Methods: []catalog.ShareMethod{catalog.MethodVerify},
			Purpose: "核验", Basis: "职能", ValidUntil: until(30, *s.clock)})
		if err != nil {
			t.Fatal(err)
		}
		*s.clock = a.AnswerDeadline.Add(time.Minute)
		items, _ := todo.New(s.svc).List(ctx, s.police)
		if len(items) != 1 {
			t.Fatalf("to-do: %+v", items)
		}
		if a, _ = s.svc.Application(ctx, s.civil, a.ID); !a.Overdue || !a.Actions["escalate"] {
			t.Fatalf("overdue: %v actions %v", a.Overdue, a.Actions)
		}
		if a, err = s.svc.Escalate(ctx, s.civil, a.ID, "逾期未答复"); err != nil {
			t.Fatal(err)
		}
		if a, err = s.svc.Rule(ctx, s.admin, a.ID, "refuse", "涉及国家秘密，维持不予共享", nil); err != nil || a.State != share.Upheld || a.Open() {
			t.Fatalf("upheld: %v %v", a.State, err)
		}
	})
}

func TestSubscriptionAndNegotiation(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		s := newSharing(t, db, calendar.Weekdays{})
		ctx := context.Background()
		app, _, err := s.apps.Register(ctx, s.civil, share.AppInput{Name: "救助系统", Purpose: "救助审核", Contact: "李四"})
		if err != nil {
			t.Fatal(err)
		}
		theirs, _, err := s.apps.Register(ctx, s.other, share.AppInput{Name: "卫健系统", Purpose: "x", Contact: "王五"})
		if err != nil {
			t.Fatal(err)
		}
		e := s.entries[catalog.ShareUnconditional]
		_, err = s.svc.Apply(ctx, s.civil, e.ID, share.Terms{Purpose: "救助审核", AppIDs: []int64{theirs.ID}})
		wantCode(t, err, "share.apps_invalid")
		a, err := s.svc.Apply(ctx, s.civil, e.ID, share.Terms{Purpose: "救助审核", AppIDs: []int64{app.ID}})
		if err != nil {
			t.Fatal(err)
		}
		if a.Kind != share.KindSubscription || a.State != share.Approved || a.GrantID == 0 || len(a.Decided.Items) != 4 {
			t.Fatalf("subscription: %+v", a)
		}
		// The grant names the app: another app of the department is not covered.
		use := share.Use{DeptID: s.civil.DeptID, AppID: app.ID, Resource: e.Code, Items: []string{"citizen_id"}, Method: catalog.MethodVerify}
		if p, err := s.svc.Permit(ctx, use); err != nil || p.Items[0].MaskRule != "keep(6,4)" {
			t.Fatalf("permit: %+v %v", p, err)
		}
		use.AppID = app.ID + 1000
		if _, err := s.svc.Permit(ctx, use); !errors.Is(err, share.ErrNoGrant) {
			t.Fatalf("another app permitted: %v", err)
		}

		n := s.entries[catalog.ShareNone]
		_, err = s.svc.Apply(ctx, s.civil, n.ID, share.Terms{Purpose: "救助审核"})
		wantCode(t, err, "share.basis_required")
		a, err = s.svc.Apply(ctx, s.civil, n.ID, share.Terms{Purpose: "救助审核", Basis: "国务院令第649号"})
		if err != nil || a.Kind != share.KindNegotiation || a.State != share.Submitted {
			t.Fatalf("negotiation: %+v %v", a, err)
		}
		if a.ShareBasis == "" {
			t.Fatalf("the legal basis for not sharing is not shown")
		}
		for _, who := range []policy.Actor{s.police, s.admin} {
			items, _ := todo.New(s.svc).List(ctx, who)
			if len(items) != 1 || items[0].Kind != "negotiation.answer" {
				t.Fatalf("%s to-do: %+v", who.Login, items)
			}
		}
		if _, err := s.svc.Approve(ctx, s.police, a.ID, nil, ""); !errors.Is(err, share.ErrState) {
			t.Fatalf("a negotiation was approved: %v", err)
		}
		if a, err = s.svc.Answer(ctx, s.admin, a.ID, "建议通过比对核验方式满足需求"); err != nil || a.State != share.Answered {
			t.Fatalf("answer: %v %v", a.State, err)
		}
	})
}

func TestDeadlineNeedsTheCalendarYear(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		c := calendar.New(db, nil)
		s := newSharing(t, db, calendar.Weekdays{})
		s.svc = share.NewService(db, s.log, s.cat, c, s.sent, share.Config{})
		_, err := s.svc.Apply(context.Background(), s.civil, s.entries[catalog.ShareConditional].ID, share.Terms{Items: []string{"name"},
			Methods: []catalog.ShareMethod{catalog.MethodAPI}, Purpose: "核验", Basis: "职能", ValidUntil: time.Now().AddDate(0, 1, 0)})
		wantCode(t, err, "calendar.year_missing")
		if !slices.Contains(s.sent.kinds(), "calendar.year_missing") {
			t.Fatalf("administrators not told: %v", s.sent.kinds())
		}
	})
}

func TestAttachments(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		s := newSharing(t, db, calendar.Weekdays{})
		ctx := context.Background()
		a, err := s.svc.Apply(ctx, s.civil, s.entries[catalog.ShareConditional].ID, share.Terms{Items: []string{"name"},
			Methods: []catalog.ShareMethod{catalog.MethodAPI}, Purpose: "核验", Basis: "职能", ValidUntil: until(30, *s.clock)})
		if err != nil {
			t.Fatal(err)
		}
		pdf := []byte("%PDF-1.4 安全保密协议")
		_, err = s.svc.Attach(ctx, s.civil, a.ID, "协议.exe", "", pdf)
		wantCode(t, err, "share.attachment_invalid")
		if _, err := s.svc.Attach(ctx, s.police, a.ID, "协议.pdf", "", pdf); !errors.Is(err, apperr.ErrDenied) {
			t.Fatalf("the provider attached: %v", err)
		}
		at, err := s.svc.Attach(ctx, s.civil, a.ID, "安全保密协议.pdf", "", pdf)
		if err != nil {
			t.Fatal(err)
		}
		got, data, err := s.svc.AttachmentData(ctx, s.reviewer, a.ID, at.ID)
		if err != nil || string(data) != string(pdf) || got.Name != "安全保密协议.pdf" || got.ContentType != "application/pdf" {
			t.Fatalf("read: %+v %v", got, err)
		}
		if _, _, err := s.svc.AttachmentData(ctx, s.other, a.ID, at.ID); !errors.Is(err, apperr.ErrDenied) {
			t.Fatalf("a third department read the attachment: %v", err)
		}
	})
}
