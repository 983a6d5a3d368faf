package ingestbench

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"strings"

	"govshare/internal/audit"
	"govshare/internal/calendar"
	"govshare/internal/catalog"
	"govshare/internal/checkdigit"
	"govshare/internal/identity"
	"govshare/internal/policy"
	"govshare/internal/quality"
	"govshare/internal/refdata"
	"govshare/internal/resource"
	"govshare/internal/secret"
	"govshare/internal/store"
)

// platform is what the run needs: the resource store with its mounted
// resource, and who loads it.
type platform struct {
	svc      *resource.Service
	audit    *audit.Log
	provider policy.Actor
	res      resource.Resource
	close    func()
}

// items are the catalog entry's data items: ten columns with every kind
// of quality rule that applies to people, and a unique non-key column.
func items() []catalog.DataItem {
	return []catalog.DataItem{
		{Name: "公民身份号码", MachineName: "citizen_id", DataType: "C", Length: 18, Key: true, Sensitivity: "sensitive", MaskRule: "keep(6,4)", QualityRule: "required;citizen_id"},
		{Name: "姓名", MachineName: "name", DataType: "C", Length: 20, Sensitivity: "sensitive", MaskRule: "surname", QualityRule: "required;length:10"},
		{Name: "性别", MachineName: "sex", DataType: "C", Length: 1, QualityRule: "required;code:" + refdata.Sex + ";id_sex:citizen_id"},
		{Name: "出生日期", MachineName: "birth_date", DataType: "D", Length: 8, QualityRule: "required;id_birth:citizen_id;date_range:1900-01-01..today"},
		{Name: "户籍行政区划", MachineName: "region_code", DataType: "C", Length: 6, QualityRule: "required;region"},
		{Name: "工作单位统一社会信用代码", MachineName: "employer_code", DataType: "C", Length: 18, QualityRule: "credit_code"},
		{Name: "手机号码", MachineName: "phone", DataType: "C", Length: 20, Sensitivity: "sensitive", MaskRule: "keep(3,4)", QualityRule: "phone;unique"},
		{Name: "月收入(元)", MachineName: "monthly_income", DataType: "N", Length: 12, QualityRule: "range:0..1000000"},
		{Name: "登记日期", MachineName: "registered_on", DataType: "D", Length: 8, QualityRule: "date_range:1949-10-01..today"},
		{Name: "邮政编码", MachineName: "postcode", DataType: "C", Length: 6, QualityRule: `regex:[1-9][0-9]{5}`},
	}
}

// seed assembles the services the way the server does and creates a
// platform administrator, a provider department with its data
// administrator, the region table and code tables the rules need, and
// the published, mounted resource.
func seed(ctx context.Context, db *store.DB, log *slog.Logger) (*platform, error) {
	master := make([]byte, 32)
	_, _ = rand.Read(master)
	keys, err := secret.New(master)
	if err != nil {
		return nil, err
	}
	alog, err := audit.Open(db, audit.Options{Key: keys.Derive("audit")})
	if err != nil {
		return nil, err
	}
	p := &platform{audit: alog, close: func() { alog.Close() }}
	fail := func(step string, err error) (*platform, error) {
		p.close()
		return nil, fmt.Errorf("%s: %w", step, err)
	}
	ids := identity.NewService(db, alog, keys, identity.DefaultConfig())
	var actors [2]policy.Actor
	for i, d := range []struct {
		dept, login string
		role        policy.Role
	}{
		{"示范市政务信息办", "bench.admin", policy.PlatformAdmin},
		{"示范市公安局", "bench.provider", policy.DeptAdmin},
	} {
		dept, err := ids.SeedDepartment(ctx, identity.DepartmentInput{Name: d.dept,
			CreditCode: checkdigit.SyntheticCreditCode("350100", 900000+i), RegionCode: "350100"})
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
	admin, provider := actors[0], actors[1]
	p.provider = provider

	refs := refdata.New(db, alog)
	if err := refs.EnsureDefaults(ctx); err != nil {
		return fail("code tables", err)
	}
	var csv strings.Builder
	csv.WriteString("code,name,status,valid_from,valid_to\n")
	for _, r := range regions {
		fmt.Fprintf(&csv, "%s,%s,%s,,\n", r.code, r.name, r.status)
	}
	if _, err := refs.ImportRegions(ctx, admin, strings.NewReader(csv.String()), "ingest bench fixture"); err != nil {
		return fail("region table", err)
	}

	cat := catalog.NewService(db, alog, calendar.New(db, alog), catalog.DefaultConfig())
	if err := cat.EnsureDefaultTree(ctx); err != nil {
		return fail("classification tree", err)
	}
	e, err := cat.CreateEntry(ctx, provider, catalog.Content{
		Name: "户籍人口就业登记信息", ClassCode: "101", Abstract: "本市户籍人口的身份、户籍、就业与收入登记信息(基准测试用合成数据)。",
		FormatClass: "database", FormatType: "postgresql", Items: items(),
		ShareType: catalog.ShareConditional, ShareCondition: "用于就业和社会救助核验", ShareMethods: []catalog.ShareMethod{catalog.MethodAPI},
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
	p.svc = resource.New(db, alog, cat, func(ctx context.Context) (quality.Reference, error) { return refs.Reference(ctx) }, log)
	if p.res, err = p.svc.Mount(ctx, provider, e.ID); err != nil {
		return fail("mount", err)
	}
	return p, nil
}
