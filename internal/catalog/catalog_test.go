package catalog_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"govshare/internal/apperr"
	"govshare/internal/audit"
	"govshare/internal/calendar"
	"govshare/internal/catalog"
	"govshare/internal/identity"
	"govshare/internal/policy"
	"govshare/internal/secret"
	"govshare/internal/store"
	"govshare/internal/storetest"
)

type fx struct {
	svc                          *catalog.Service
	log                          *audit.Log
	admin, police, civil, viewer policy.Actor // platform admin, police data admin, civil affairs data admin, police consumer
	reviewer                     policy.Actor
}

func setup(t testing.TB, db *store.DB, cfg catalog.Config) *fx {
	t.Helper()
	ctx := context.Background()
	keys, _ := secret.New(make([]byte, 32))
	log, err := audit.Open(db, audit.Options{Key: keys.Derive("audit")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { log.Close() })
	ids := identity.NewService(db, log, keys, identity.DefaultConfig())
	city, _ := ids.SeedDepartment(ctx, identity.DepartmentInput{Name: "市政务信息办", CreditCode: identity.SyntheticCreditCode("350100", 1), RegionCode: "350100"})
	police, _ := ids.SeedDepartment(ctx, identity.DepartmentInput{Name: "市公安局", CreditCode: identity.SyntheticCreditCode("350100", 2), RegionCode: "350100"})
	civil, _ := ids.SeedDepartment(ctx, identity.DepartmentInput{Name: "市民政局", CreditCode: identity.SyntheticCreditCode("350100", 3), RegionCode: "350100"})
	user := func(login string, dept int64, r policy.Role) policy.Actor {
		u, err := ids.SeedUser(ctx, identity.UserInput{Login: login, Name: "测试", DeptID: dept, Roles: []policy.Role{r}, Password: "Test@Pass2026"}, false, "")
		if err != nil {
			t.Fatal(err)
		}
		return u.Actor()
	}
	f := &fx{log: log,
		admin:    user("admin", city.ID, policy.PlatformAdmin),
		police:   user("gaj.admin", police.ID, policy.DeptAdmin),
		civil:    user("mzj.admin", civil.ID, policy.DeptAdmin),
		viewer:   user("gaj.user", police.ID, policy.Consumer),
		reviewer: user("gaj.reviewer", police.ID, policy.DeptReviewer),
	}
	f.svc = catalog.NewService(db, log, calendar.Weekdays{}, cfg)
	if err := f.svc.EnsureDefaultTree(ctx); err != nil {
		t.Fatal(err)
	}
	return f
}

func household() catalog.Content {
	return catalog.Content{
		Name: "户籍登记信息", ClassCode: "101", Abstract: "本市户籍人口的户籍登记信息。", FormatClass: "database", FormatType: "postgresql",
		Keywords: []string{"户籍", "人口"},
		Items: []catalog.DataItem{
			{Name: "公民身份号码", MachineName: "citizen_id", DataType: "C", Length: 18, Key: true, Sensitivity: "sensitive", MaskRule: "keep(6,4)", QualityRule: "required;citizen_id"},
			{Name: "姓名", MachineName: "name", DataType: "C", Length: 50, Sensitivity: "sensitive", MaskRule: "surname"},
			{Name: "户籍地址", MachineName: "address", DataType: "C", Length: 200, MaskRule: "district"},
		},
		ShareType: catalog.ShareConditional, ShareCondition: "用于政务服务身份核验", ShareMethods: []catalog.ShareMethod{catalog.MethodAPI, catalog.MethodVerify},
		OpenType: catalog.OpenClosed, UpdateCycle: "daily",
	}
}

func code(t *testing.T, err error, want string) {
	t.Helper()
	ae, ok := apperr.As(err)
	if !ok || ae.Code != want {
		t.Fatalf("want %s, got %v", want, err)
	}
}

func publish(t *testing.T, f *fx, c catalog.Content) catalog.Entry {
	t.Helper()
	ctx := context.Background()
	e, err := f.svc.CreateEntry(ctx, f.police, c)
	if err != nil {
		t.Fatal(err)
	}
	if e, err = f.svc.Submit(ctx, f.police, e.ID); err != nil {
		t.Fatal(err)
	}
	if e, err = f.svc.Approve(ctx, f.admin, e.ID); err != nil {
		t.Fatal(err)
	}
	if e, err = f.svc.Publish(ctx, f.admin, e.ID); err != nil {
		t.Fatal(err)
	}
	return e
}

func TestContentValidationNamesTheField(t *testing.T) {
	cases := []struct {
		field string
		edit  func(c *catalog.Content)
	}{
		{"name", func(c *catalog.Content) { c.Name = "" }},
		{"format_type", func(c *catalog.Content) { c.FormatType = "xlsx" }},
		{"items", func(c *catalog.Content) { c.Items = nil }},
		{"items[1].machine_name", func(c *catalog.Content) { c.Items[1].MachineName = "Name" }},
		{"items[2].machine_name", func(c *catalog.Content) { c.Items[2].MachineName = "citizen_id" }},
		{"items[0].data_type", func(c *catalog.Content) { c.Items[0].DataType = "X" }},
		{"items[0].length", func(c *catalog.Content) { c.Items[0].Length = 0 }},
		{"items[0].mask_rule", func(c *catalog.Content) { c.Items[0].MaskRule = "keep(first)" }},
		{"share_condition", func(c *catalog.Content) { c.ShareCondition = "" }},
		{"share_basis", func(c *catalog.Content) { c.ShareType = catalog.ShareNone }},
		{"share_methods", func(c *catalog.Content) { c.ShareMethods = nil }},
		{"open_condition", func(c *catalog.Content) { c.OpenType = catalog.OpenOnRequest }},
		{"update_cycle", func(c *catalog.Content) { c.UpdateCycle = "hourly" }},
		{"open_type", func(c *catalog.Content) { c.Classified = true; c.OpenType = catalog.OpenUnconditional }},
	}
	for _, tc := range cases {
		c := household()
		tc.edit(&c)
		err := c.Validate(false)
		ae, ok := apperr.As(err)
		if !ok || ae.Field != tc.field || ae.ZH == "" {
			t.Errorf("%s: got %v", tc.field, err)
		}
	}
	c := household()
	if err := c.Validate(false); err != nil {
		t.Fatal(err)
	}
}

func TestNetworkZoneRule(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		cfg := catalog.DefaultConfig()
		cfg.External = true
		f := setup(t, db, cfg)
		c := household()
		c.Classified = true
		_, err := f.svc.CreateEntry(context.Background(), f.police, c)
		code(t, err, "catalog.classified_on_external")
		// Not shared but not classified is still catalogued on the external network.
		c = household()
		c.ShareType, c.ShareBasis = catalog.ShareNone, "《中华人民共和国居民身份证法》第十九条"
		if _, err := f.svc.CreateEntry(context.Background(), f.police, c); err != nil {
			t.Fatal(err)
		}
		// The internal network takes classified entries.
		f2 := setup(t, storetest.OpenSQLite(t), catalog.DefaultConfig())
		c.Classified = true
		if _, err := f2.svc.CreateEntry(context.Background(), f2.police, c); err != nil {
			t.Fatalf("internal network: %v", err)
		}
	})
}

func TestLifecyclePermissions(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		f := setup(t, db, catalog.DefaultConfig())
		ctx := context.Background()
		// Only data administrators register, for their own department.
		for _, a := range []policy.Actor{f.admin, f.viewer, f.reviewer} {
			_, err := f.svc.CreateEntry(ctx, a, household())
			code(t, err, "auth.denied")
		}
		e, err := f.svc.CreateEntry(ctx, f.police, household())
		if err != nil || e.State != catalog.Draft || e.Code != "" {
			t.Fatalf("create: %+v %v", e, err)
		}
		// A draft is visible to its department and reviewers only.
		if _, err := f.svc.Entry(ctx, f.civil, e.ID); !errors.Is(err, apperr.ErrDenied) {
			t.Fatalf("other department sees the draft: %v", err)
		}
		if _, err := f.svc.Entry(ctx, f.reviewer, e.ID); err != nil {
			t.Fatalf("own reviewer: %v", err)
		}
		// Another department's administrator cannot edit or submit it.
		_, err = f.svc.UpdateDraft(ctx, f.civil, e.ID, household())
		code(t, err, "auth.denied")
		_, err = f.svc.Submit(ctx, f.civil, e.ID)
		code(t, err, "auth.denied")
		// Reviewing a draft is out of order; providers cannot review.
		_, err = f.svc.Approve(ctx, f.admin, e.ID)
		code(t, err, "catalog.state_conflict")
		if e, err = f.svc.Submit(ctx, f.police, e.ID); err != nil || e.State != catalog.Submitted {
			t.Fatalf("submit: %v", err)
		}
		_, err = f.svc.Approve(ctx, f.police, e.ID)
		code(t, err, "auth.denied")
		// Submitted entries are not editable.
		_, err = f.svc.UpdateDraft(ctx, f.police, e.ID, household())
		code(t, err, "catalog.state_conflict")
		// Returning needs a reason, and keeps it per field.
		_, err = f.svc.Return(ctx, f.admin, e.ID, []catalog.Reason{{Text: " "}})
		code(t, err, "catalog.return_reason_required")
		e, err = f.svc.Return(ctx, f.admin, e.ID, []catalog.Reason{{Field: "abstract", Text: "摘要应说明数据范围"}})
		if err != nil || e.State != catalog.Returned || e.ReturnReasons[0].Field != "abstract" {
			t.Fatalf("return: %+v %v", e, err)
		}
		c := household()
		c.Abstract = "本市户籍人口的户籍登记信息，覆盖全市各区县。"
		if _, err = f.svc.UpdateDraft(ctx, f.police, e.ID, c); err != nil {
			t.Fatal(err)
		}
		f.svc.Submit(ctx, f.police, e.ID)
		_, err = f.svc.Publish(ctx, f.admin, e.ID)
		code(t, err, "catalog.state_conflict") // must be approved first
		f.svc.Approve(ctx, f.admin, e.ID)
		e, err = f.svc.Publish(ctx, f.admin, e.ID)
		if err != nil || e.State != catalog.Published || e.Code != "101/000001" || e.PublishedVersion != 1 {
			t.Fatalf("publish: %+v %v", e, err)
		}
		// Published entries are visible to every department.
		if _, err := f.svc.Entry(ctx, f.civil, e.ID); err != nil {
			t.Fatal(err)
		}
		// Every step is audited.
		for _, act := range []string{"create", "submit", "return", "update", "approve", "publish"} {
			evs, _ := f.log.List(ctx, audit.Filter{Action: "catalog.entry." + act})
			if len(evs) == 0 {
				t.Errorf("%s not audited", act)
			}
		}
	})
}

func TestChangeRequestMakesVersionTwoWithDiffAndDeadline(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		f := setup(t, db, catalog.DefaultConfig())
		ctx := context.Background()
		friday := time.Date(2026, 11, 20, 10, 0, 0, 0, calendar.CST)
		clock := friday
		f.svc.SetClock(func() time.Time { return clock.UTC() })
		e := publish(t, f, household())
		_, err := f.svc.OpenChange(ctx, f.police, e.ID, "mood", "")
		code(t, err, "catalog.change_reason_invalid")
		e, err = f.svc.OpenChange(ctx, f.police, e.ID, "law", "《户口登记条例》修订")
		if err != nil || e.State != catalog.Draft || e.PublishedVersion != 1 {
			t.Fatalf("open change: %+v %v", e, err)
		}
		if got := e.ChangeDeadline.In(calendar.CST).Format("2006-01-02"); got != "2026-12-11" {
			t.Fatalf("deadline %s, want 15 working days later 2026-12-11", got)
		}
		// The deadline is reminded of: the department's data administrators.
		ds, err := f.svc.Deadlines(ctx)
		if err != nil || len(ds) != 1 || ds[0].DeptID != e.DeptID || !ds[0].Due.Equal(e.ChangeDeadline) || ds[0].Kind != "catalog.change" {
			t.Fatalf("deadlines: %+v %v", ds, err)
		}
		// The published version stays visible to others while it changes.
		if _, err := f.svc.Entry(ctx, f.civil, e.ID); err != nil {
			t.Fatal(err)
		}
		c := household()
		c.Items = append(c.Items[:2], catalog.DataItem{Name: "民族", MachineName: "ethnicity", DataType: "C", Length: 2})
		c.UpdateCycle = "realtime"
		if _, err := f.svc.UpdateDraft(ctx, f.police, e.ID, c); err != nil {
			t.Fatal(err)
		}
		c.ClassCode = "102"
		_, err = f.svc.UpdateDraft(ctx, f.police, e.ID, c)
		code(t, err, "catalog.class_fixed")
		clock = clock.AddDate(0, 0, 30)
		e, _ = f.svc.Entry(ctx, f.admin, e.ID)
		if !e.Overdue {
			t.Fatal("change past its deadline not flagged")
		}
		for _, a := range []policy.Actor{f.admin, f.police} {
			if es, _ := f.svc.Entries(ctx, a, catalog.Filter{Overdue: true}); len(es) != 1 || es[0].ID != e.ID {
				t.Fatalf("overdue list for %s: %v", a.Login, es)
			}
		}
		if es, _ := f.svc.Entries(ctx, f.civil, catalog.Filter{Overdue: true, DeptID: f.civil.DeptID}); len(es) != 0 {
			t.Fatal("another department sees the overdue change")
		}
		f.svc.Submit(ctx, f.police, e.ID)
		f.svc.Approve(ctx, f.admin, e.ID)
		e, err = f.svc.Publish(ctx, f.admin, e.ID)
		if err != nil || e.PublishedVersion != 2 || e.Code != "101/000001" || e.Overdue {
			t.Fatalf("republish: %+v %v", e, err)
		}
		vs, err := f.svc.Versions(ctx, f.viewer, e.ID)
		if err != nil || len(vs) != 2 || vs[0].Version != 2 {
			t.Fatalf("versions: %v %v", vs, err)
		}
		d := catalog.DiffFields(vs[1].Content, vs[0].Content)
		got := map[string]catalog.Change{}
		for _, ch := range d {
			got[ch.Field] = ch
		}
		if got["update_cycle"].Old != "daily" || got["update_cycle"].New != "realtime" || got["items.ethnicity"].New == "" || got["items.address"].Old == "" || len(d) != 3 {
			t.Fatalf("diff: %+v", d)
		}
	})
}

func TestCodesAreUniqueUnderConcurrencyAndNeverReused(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		f := setup(t, db, catalog.DefaultConfig())
		ctx := context.Background()
		const n = 12
		ids := make([]int64, n)
		for i := range ids {
			c := household()
			c.Name = fmt.Sprintf("户籍登记信息%d", i)
			e, err := f.svc.CreateEntry(ctx, f.police, c)
			if err != nil {
				t.Fatal(err)
			}
			f.svc.Submit(ctx, f.police, e.ID)
			f.svc.Approve(ctx, f.admin, e.ID)
			ids[i] = e.ID
		}
		var wg sync.WaitGroup
		codes := make([]string, n)
		for i := range ids {
			wg.Add(1)
			go func() {
				defer wg.Done()
				e, err := f.svc.Publish(ctx, f.admin, ids[i])
				if err != nil {
					t.Error(err)
					return
				}
				codes[i] = e.Code
			}()
		}
		wg.Wait()
		seen := map[string]bool{}
		for _, c := range codes {
			if seen[c] || !strings.HasPrefix(c, "101/") {
				t.Fatalf("codes %v", codes)
			}
			seen[c] = true
		}
		// Retire the newest; the next publication gets a fresh number.
		var newest int64
		for i, c := range codes {
			if c == fmt.Sprintf("101/%06d", n) {
				newest = ids[i]
			}
		}
		if _, err := f.svc.Retire(ctx, f.police, newest, ""); !errors.Is(err, apperr.ErrDenied) {
			t.Fatalf("provider retired: %v", err)
		}
		if _, err := f.svc.Retire(ctx, f.admin, newest, "职能划转"); err != nil {
			t.Fatal(err)
		}
		e := publish(t, f, household())
		if e.Code != fmt.Sprintf("101/%06d", n+1) {
			t.Fatalf("code after retirement: %s", e.Code)
		}
	})
}

func TestCodeRuleIsConfiguration(t *testing.T) {
	cfg := catalog.DefaultConfig()
	cfg.Code = catalog.CodeRule{Prefix: "FZ-", Separator: "-", Width: 4}
	f := setup(t, storetest.OpenSQLite(t), cfg)
	if e := publish(t, f, household()); e.Code != "FZ-101-0001" {
		t.Fatalf("code %s", e.Code)
	}
}

func TestClassificationImportIsAllOrNothing(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		f := setup(t, db, catalog.DefaultConfig())
		ctx := context.Background()
		rows := []catalog.Classification{
			{Code: "301001", Name: "治安管理", ParentCode: "301"},
			{Code: "301", Name: "公安"},
			{Code: "30100101", Name: "流动人口", ParentCode: "301001"},
			{Code: "3019", Name: "坏代码"},
		}
		_, err := f.svc.ImportClassifications(ctx, f.admin, rows)
		ae, ok := apperr.As(err)
		if !ok || ae.Row != 4 || ae.Code != "catalog.class_code_invalid" {
			t.Fatalf("bad row: %v", err)
		}
		tree, _ := f.svc.Classifications(ctx)
		for _, c := range tree {
			if strings.HasPrefix(c.Code, "301") {
				t.Fatal("failed import left rows behind")
			}
		}
		if n, err := f.svc.ImportClassifications(ctx, f.admin, rows[:3]); err != nil || n != 3 {
			t.Fatalf("import: %d %v", n, err)
		}
		if _, err := f.svc.ImportClassifications(ctx, f.police, rows[:1]); !errors.Is(err, apperr.ErrDenied) {
			t.Fatalf("dept admin edits the tree: %v", err)
		}
	})
}

func TestClassificationCSV(t *testing.T) {
	rows, err := catalog.ParseClassificationCSV(strings.NewReader("\ufeff分类代码,分类名称,上级分类代码\n301,公安,\n301001,治安管理,301\n"))
	if err != nil || len(rows) != 2 || rows[1].ParentCode != "301" {
		t.Fatalf("parse: %+v %v", rows, err)
	}
	_, err = catalog.ParseClassificationCSV(strings.NewReader("301,公安\n301001\n"))
	if ae, ok := apperr.As(err); !ok || ae.Row != 2 {
		t.Fatalf("short row: %v", err)
	}
}

func TestChangeDeadlineNeedsTheYearsCalendar(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		f := setup(t, db, catalog.DefaultConfig())
		ctx := context.Background()
		e := publish(t, f, household())
		strict := catalog.NewService(db, f.log, calendar.New(db, f.log), catalog.DefaultConfig())
		_, err := strict.OpenChange(ctx, f.police, e.ID, "law", "")
		code(t, err, "calendar.year_missing")
		if got, _ := strict.Entry(ctx, f.police, e.ID); got.State != catalog.Published {
			t.Fatalf("failed change left state %s", got.State)
		}
		// A change without a legal deadline does not need the calendar.
		if _, err := strict.OpenChange(ctx, f.police, e.ID, "other", ""); err != nil {
			t.Fatal(err)
		}
	})
}
