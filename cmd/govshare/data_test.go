package main

import (
	"context"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"govshare/internal/catalog"
	"govshare/internal/checkdigit"
	"govshare/internal/config"
	"govshare/internal/identity"
	"govshare/internal/policy"
)

func TestDataTemplateAndUploadCommands(t *testing.T) {
	dir := t.TempDir()
	code := identity.SyntheticCreditCode("350100", 5)
	if _, _, err := cli(t, "Strong#Pass1\n", "admin", "create", "--data", dir, "--login", "root", "--role", "platform_admin",
		"--dept-code", code, "--dept-name", "市公安局", "--region", "350100"); err != nil {
		t.Fatal(err)
	}
	// Publish and mount an entry of the department.
	ctx := context.Background()
	cfg := config.Defaults()
	cfg.Data = dir
	svc, done, err := openResources(ctx, &cfg, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	p, err := openCLI(ctx, &cfg, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	d, err := p.ids.DepartmentByCode(ctx, code)
	if err != nil {
		t.Fatal(err)
	}
	admin := policy.Actor{Login: "cli", DeptID: d.ID, Roles: []policy.Role{policy.DeptAdmin}}
	root := policy.Actor{Login: "cli", Roles: []policy.Role{policy.PlatformAdmin}}
	e, err := p.cat.CreateEntry(ctx, admin, catalog.Content{Name: "居住证登记信息", ClassCode: "101", Abstract: "测试用信息资源。", FormatClass: "database", FormatType: "mysql",
		Items: []catalog.DataItem{{Name: "证件号码", MachineName: "id_no", DataType: "C", Length: 18, Key: true, QualityRule: "citizen_id"},
			{Name: "姓名", MachineName: "name", DataType: "C", Length: 20, QualityRule: "required"}},
		ShareType: catalog.ShareUnconditional, ShareMethods: []catalog.ShareMethod{catalog.MethodAPI}, OpenType: catalog.OpenClosed, UpdateCycle: "daily"})
	if err == nil {
		_, err = p.cat.Submit(ctx, admin, e.ID)
	}
	if err == nil {
		_, err = p.cat.Approve(ctx, root, e.ID)
	}
	if err == nil {
		e, err = p.cat.Publish(ctx, root, e.ID)
	}
	if err == nil {
		_, err = svc.Mount(ctx, admin, e.ID)
	}
	p.Close()
	done()
	if err != nil {
		t.Fatal(err)
	}

	tpl := dir + "/t.csv"
	if out, _, err := cli(t, "", "data", "template", e.Code, tpl, "--data", dir); err != nil || !strings.Contains(out, tpl) {
		t.Fatalf("template: %s %v", out, err)
	}
	head, _ := os.ReadFile(tpl)
	id := checkdigit.SyntheticCitizenID("350102", time.Date(1980, 1, 2, 0, 0, 0, 0, time.UTC), 1)
	data := string(head) + id + ",张三\n" + id[:17] + "0,李四\n" + checkdigit.SyntheticCitizenID("350102", time.Date(1981, 1, 2, 0, 0, 0, 0, time.UTC), 2) + ",\n"
	if data == string(head) || !strings.Contains(string(head), "id_no") {
		t.Fatalf("template header %q", head)
	}
	file := dir + "/filled.csv"
	os.WriteFile(file, []byte(data), 0o644)
	if _, _, err := cli(t, "", "data", "upload", file, "--data", dir); err == nil || !strings.Contains(err.Error(), "--resource") {
		t.Fatalf("upload without --resource: %v", err)
	}
	out, errOut, err := cli(t, "", "data", "upload", file, "--data", dir, "--resource", e.Code, "--batch-id", "cli-1")
	if err != nil || !strings.Contains(out, "1 inserted") || !strings.Contains(out, "2 quarantined") || !strings.Contains(errOut, "rows read") {
		t.Fatalf("upload: %s %s %v", out, errOut, err)
	}
	if !strings.Contains(out, "name") || !strings.Contains(out, "required") {
		t.Fatalf("the report is not printed: %s", out)
	}
	out, _, err = cli(t, "", "data", "upload", file, "--data", dir, "--resource", e.Code, "--batch-id", "cli-1")
	if err != nil || !strings.Contains(out, "applied before") {
		t.Fatalf("the same batch id again: %s %v", out, err)
	}
}
