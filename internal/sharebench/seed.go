package sharebench

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"net/http"

	"govshare/client"
	"govshare/internal/audit"
	"govshare/internal/calendar"
	"govshare/internal/catalog"
	"govshare/internal/identity"
	"govshare/internal/notify"
	"govshare/internal/policy"
	"govshare/internal/search"
	"govshare/internal/secret"
	"govshare/internal/share"
	"govshare/internal/store"
	"govshare/internal/todo"
	"govshare/internal/web"
)

// platform is the seeded handler and what an app needs to call it.
type platform struct {
	handler  http.Handler
	app      client.App
	resource string   // the granted resource's code
	items    []string // the items asked for in the grant check
	close    func()
}

// seed assembles the services and the web handler the way the server does
// (without the bus, which no request here touches) and creates what a
// signed request needs: a provider department publishing a resource, a
// consumer department with an app, and the app's grant to the resource.
func seed(ctx context.Context, db *store.DB) (*platform, error) {
	master := make([]byte, 32)
	_, _ = rand.Read(master)
	keys, err := secret.New(master)
	if err != nil {
		return nil, err
	}
	// Requests are logged at info as in production, into nothing: the
	// formatting is measured, the terminal is not.
	log := slog.New(slog.NewJSONHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelInfo}))
	alog, err := audit.Open(db, audit.Options{Key: keys.Derive("audit")})
	if err != nil {
		return nil, err
	}
	idx, err := search.OpenBleve("")
	if err != nil {
		alog.Close()
		return nil, err
	}
	p := &platform{close: func() { idx.Close(); alog.Close() }}
	fail := func(step string, err error) (*platform, error) {
		p.close()
		return nil, fmt.Errorf("%s: %w", step, err)
	}

	ids := identity.NewService(db, alog, keys, identity.DefaultConfig())
	cal := calendar.New(db, alog)
	cat := catalog.NewService(db, alog, cal, catalog.DefaultConfig())
	if err := cat.EnsureDefaultTree(ctx); err != nil {
		return fail("classification tree", err)
	}
	cat.UseIndex(idx)
	notes := notify.New(db, alog, keys, log)
	apps := share.NewApps(db, alog, keys)
	shr := share.NewService(db, alog, cat, cal, notes, share.Config{Log: log})

	var actors [3]policy.Actor
	for i, d := range []struct {
		dept, login string
		role        policy.Role
	}{
		{"示范市政务信息办", "bench.admin", policy.PlatformAdmin},
		{"示范市公安局", "bench.provider", policy.DeptAdmin},
		{"示范市民政局", "bench.consumer", policy.DeptAdmin},
	} {
		dept, err := ids.SeedDepartment(ctx, identity.DepartmentInput{Name: d.dept,
			CreditCode: identity.SyntheticCreditCode("350100", i+1), RegionCode: "350100"})
		if err != nil {
			return fail("department", err)
		}
		u, err := ids.SeedUser(ctx, identity.UserInput{Login: d.login, Name: "基准测试", DeptID: dept.ID,
			Roles: []policy.Role{d.role}, Password: "Bench@Pass2026"}, false, "")
		if err != nil {
			return fail("user", err)
		}
		actors[i] = u.Actor()
	}
	admin, provider, consumer := actors[0], actors[1], actors[2]

	e, err := cat.CreateEntry(ctx, provider, catalog.Content{
		Name: "户籍人口基本信息", ClassCode: "101", Abstract: "本市户籍人口的户籍登记信息。", FormatClass: "database", FormatType: "postgresql",
		Items: []catalog.DataItem{
			{Name: "公民身份号码", MachineName: "citizen_id", DataType: "C", Length: 18, Key: true, Sensitivity: "sensitive", MaskRule: "keep(6,4)"},
			{Name: "姓名", MachineName: "name", DataType: "C", Length: 50, Sensitivity: "sensitive", MaskRule: "surname"},
			{Name: "户籍地址", MachineName: "address", DataType: "C", Length: 200, MaskRule: "district"},
			{Name: "行政区划代码", MachineName: "region_code", DataType: "C", Length: 6},
		},
		ShareType: catalog.ShareUnconditional, ShareMethods: []catalog.ShareMethod{catalog.MethodAPI, catalog.MethodVerify},
		OpenType: catalog.OpenClosed, UpdateCycle: "daily",
	})
	if err == nil {
		_, err = cat.Submit(ctx, provider, e.ID)
	}
	if err == nil {
		_, err = cat.Approve(ctx, admin, e.ID)
	}
	if err == nil {
		e, err = cat.Publish(ctx, admin, e.ID)
	}
	if err != nil {
		return fail("catalog entry", err)
	}

	// The app may call only from loopback, so the source address check
	// does its work on every request.
	app, sec, err := apps.Register(ctx, consumer, share.AppInput{Name: "社会救助核验系统", Purpose: purpose, Contact: "基准测试",
		AllowedAddrs: []string{"127.0.0.0/8"}})
	if err != nil {
		return fail("app", err)
	}
	// An unconditional resource is granted at once (a subscription).
	a, err := shr.Apply(ctx, consumer, e.ID, share.Terms{Purpose: purpose, AppIDs: []int64{app.ID}})
	if err != nil {
		return fail("grant", err)
	}
	if a.GrantID == 0 {
		return fail("grant", fmt.Errorf("the subscription to %s was not granted at once (state %s)", e.Code, a.State))
	}

	h, err := web.New(web.Deps{Identity: ids, Catalog: cat, Calendar: cal, Apps: apps, Share: shr, Notify: notes,
		Todos: todo.New(cat, shr), Audit: alog, Keys: keys, Log: log, Version: "bench",
		Ready: map[string]web.Checker{"database": web.CheckFunc(db.Ping)}})
	if err != nil {
		return fail("web handler", err)
	}
	p.handler = h
	p.app = client.App{Key: app.Key, Secret: sec}
	p.resource = e.Code
	p.items = []string{"citizen_id", "name"}
	return p, nil
}
