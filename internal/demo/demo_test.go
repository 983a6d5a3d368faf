package demo_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"

	"govshare/internal/audit"
	"govshare/internal/calendar"
	"govshare/internal/catalog"
	"govshare/internal/config"
	"govshare/internal/demo"
	"govshare/internal/identity"
	"govshare/internal/policy"
	"govshare/internal/quality"
	"govshare/internal/refdata"
	"govshare/internal/resource"
	"govshare/internal/secret"
	"govshare/internal/server"
	"govshare/internal/share"
	"govshare/internal/store"
	"govshare/internal/storetest"
)

func TestDemoCityHasEveryRoleAndValidCodes(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		keys, _ := secret.New(make([]byte, 32))
		log, _ := audit.Open(db, audit.Options{Key: keys.Derive("audit")})
		defer log.Close()
		cfg := config.Defaults()
		cfg.Data = t.TempDir()
		var out bytes.Buffer
		cal := calendar.New(db, log)
		cat := catalog.NewService(db, log, cal, catalog.DefaultConfig())
		if err := cat.EnsureDefaultTree(ctx); err != nil {
			t.Fatal(err)
		}
		p := &server.Platform{Config: &cfg, DB: db, Keys: keys, Audit: log, Identity: identity.NewService(db, log, keys, identity.DefaultConfig()), Catalog: cat, Calendar: cal,
			Apps: share.NewApps(db, log, keys), Share: share.NewService(db, log, cat, cal, nil, share.Config{}),
			Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Out: &out}
		p.RefData = refdata.New(db, log)
		if err := p.RefData.EnsureDefaults(ctx); err != nil {
			t.Fatal(err)
		}
		p.Resources = resource.New(db, log, cat, func(ctx context.Context) (quality.Reference, error) { return p.RefData.Reference(ctx) }, nil)
		if err := demo.Seed(ctx, p); err != nil {
			t.Fatal(err)
		}
		ds, _ := p.Identity.Departments(ctx)
		if len(ds) != 11 {
			t.Fatalf("%d departments", len(ds))
		}
		for _, d := range ds {
			if !identity.ValidCreditCode(d.CreditCode) {
				t.Errorf("%s has an invalid code %s", d.Name, d.CreditCode)
			}
		}
		admin := policy.Actor{UserID: -1, Roles: []policy.Role{policy.PlatformAdmin}}
		users, _ := p.Identity.Users(ctx, admin, identity.UserFilter{})
		held := map[policy.Role]int{}
		for _, u := range users {
			if err := identity.ValidateRoles(u.Roles); err != nil {
				t.Errorf("%s: %v", u.Login, err)
			}
			for _, r := range u.Roles {
				held[r]++
			}
			if u.HasAdminRole() != u.TOTPEnabled {
				t.Errorf("%s: admin=%v totp=%v", u.Login, u.HasAdminRole(), u.TOTPEnabled)
			}
		}
		for _, r := range policy.AllRoles {
			if held[r] == 0 {
				t.Errorf("nobody holds %s", r)
			}
		}
		if held[policy.DeptAdmin] != 10 || held[policy.Consumer] != 10 {
			t.Errorf("department roles: %v", held)
		}
		es, err := cat.Entries(ctx, admin, catalog.Filter{State: catalog.Published})
		if err != nil || len(es) < 12 {
			t.Fatalf("demo catalog: %d published entries, %v", len(es), err)
		}
		// Sharing to look at: a subscription with its grant, and an
		// application waiting on the provider.
		grants, err := p.Share.Grants(ctx, admin, share.GrantFilter{Side: "all"})
		if err != nil || len(grants) != 1 {
			t.Fatalf("demo grants: %d %v", len(grants), err)
		}
		apps, err := p.Share.Applications(ctx, admin, share.ListFilter{Side: "all", State: share.Submitted})
		if err != nil || len(apps) != 1 {
			t.Fatalf("demo applications: %d %v", len(apps), err)
		}
		if !strings.Contains(out.String(), "GOVSHARE_APP_SECRET=") {
			t.Fatalf("the demo app's credentials are not listed")
		}
		// Data behind two entries, with three records in the quarantine.
		rs, err := p.Resources.List(ctx, 0)
		if err != nil || len(rs) != 2 {
			t.Fatalf("demo resources: %d %v", len(rs), err)
		}
		counts := map[string]int64{}
		for _, r := range rs {
			counts[r.Name] = r.RecordCount
			q, _ := p.Resources.Quarantine(ctx, admin, r.Code, "", 0)
			counts[r.Name+"/quarantine"] = int64(len(q))
		}
		if counts["户籍登记信息"] != 60 || counts["户籍登记信息/quarantine"] != 3 || counts["企业法人登记信息"] != 30 || counts["企业法人登记信息/quarantine"] != 0 {
			t.Fatalf("demo data: %v", counts)
		}
		// A second start loads nothing new and prints the accounts again.
		out.Reset()
		if err := demo.Seed(ctx, p); err != nil {
			t.Fatal(err)
		}
		if n, _ := p.Identity.DepartmentCount(ctx); n != 11 || !strings.Contains(out.String(), "auditor") {
			t.Fatalf("restart: %d departments", n)
		}
	})
}
