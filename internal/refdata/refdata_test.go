package refdata_test

import (
	"context"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"govshare/internal/apperr"
	"govshare/internal/audit"
	"govshare/internal/checkdigit"
	"govshare/internal/policy"
	"govshare/internal/quality"
	"govshare/internal/refdata"
	"govshare/internal/store"
	"govshare/internal/storetest"
)

var (
	admin     = policy.Actor{UserID: 1, Login: "admin", Roles: []policy.Role{policy.PlatformAdmin}}
	deptAdmin = policy.Actor{UserID: 2, Login: "gaj.admin", DeptID: 7, Roles: []policy.Role{policy.DeptAdmin}}
)

func service(t *testing.T, db *store.DB) (*refdata.Service, *audit.Log) {
	t.Helper()
	log, err := audit.Open(db, audit.Options{Key: make([]byte, 32)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { log.Close() })
	return refdata.New(db, log), log
}

func fixture(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("testdata/regions.csv")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestRegionImportIsAllOrNothing(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		s, _ := service(t, db)
		ctx := context.Background()
		res, err := s.ImportRegions(ctx, admin, strings.NewReader(fixture(t)), "testdata/regions.csv")
		if err != nil {
			t.Fatal(err)
		}
		if res != (refdata.RegionImport{Rows: 14, Current: 12, Retired: 2}) {
			t.Fatalf("import %+v", res)
		}
		const header = "code,name,status,valid_from,valid_to\n"
		cases := []struct {
			name, file string
			code       string
			row        int
			field      string
		}{
			{"malformed code", header + "350102,鼓楼区,current,,\n35010,台江区,current,,\n", "refdata.region_code_invalid", 3, "code"},
			{"code starting with 9", header + "950102,某区,current,,\n", "refdata.region_code_invalid", 2, "code"},
			{"no name", header + "350102,鼓楼区,,,\n350103, ,current,,\n", "refdata.region_name_invalid", 3, "name"},
			{"unknown status", header + "350102,鼓楼区,abolished,,\n", "refdata.region_status_invalid", 2, "status"},
			{"impossible date", header + "350102,鼓楼区,current,2017-02-30,\n", "refdata.region_date_invalid", 2, "valid_from"},
			{"end before start", header + "350182,长乐市,retired,2017-06-30,1994-02-18\n", "refdata.region_dates_invalid", 2, "valid_to"},
			{"code twice", header + "350102,鼓楼区,,,\n350103,台江区,,,\n350102,鼓楼区,,,\n", "refdata.region_twice", 4, "code"},
			{"no header", "350102,鼓楼区,current,,\n", "refdata.header_invalid", 1, "file"},
			{"header only", header, "refdata.file_empty", 0, "file"},
			{"bad quoting", header + "350102,\"鼓楼区,current,,\n", "refdata.csv_invalid", 2, "file"},
		}
		for _, c := range cases {
			_, err := s.ImportRegions(ctx, admin, strings.NewReader(c.file), "test")
			ae, ok := apperr.As(err)
			if !ok || ae.Code != c.code || ae.Row != c.row || ae.Field != c.field || ae.ZH == "" {
				t.Errorf("%s: %v (%+v), want %s at row %d, column %s", c.name, err, ae, c.code, c.row, c.field)
			}
		}
		// Nothing of the refused files was loaded.
		if _, n, err := s.Regions(ctx, "", 0); err != nil || n != 14 {
			t.Fatalf("after refused imports: %d regions, %v", n, err)
		}
		// A byte order mark and the Chinese headings are fine, and the file
		// replaces the table.
		_, err = s.ImportRegions(ctx, admin, strings.NewReader("\xef\xbb\xbf代码,名称,状态\n350102,鼓楼区,现行\n350182,长乐市,撤销\n"), "excel.csv")
		if err != nil {
			t.Fatal(err)
		}
		list, n, err := s.Regions(ctx, "", 0)
		if err != nil || n != 2 || list[1] != (refdata.Region{Code: "350182", Name: "长乐市", Status: refdata.StatusRetired}) {
			t.Fatalf("replaced table: %d %+v %v", n, list, err)
		}
		info, err := s.RegionTable(ctx)
		if err != nil || !info.Loaded || info.Source != "excel.csv" || info.LoadedBy != "admin" || info.Current != 1 || info.Retired != 1 {
			t.Fatalf("table info %+v %v", info, err)
		}
	})
}

func TestRegionSearch(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		s, _ := service(t, db)
		ctx := context.Background()
		if info, err := s.RegionTable(ctx); err != nil || info.Loaded {
			t.Fatalf("empty table: %+v %v", info, err)
		}
		if _, err := s.ImportRegions(ctx, admin, strings.NewReader(fixture(t)), "test"); err != nil {
			t.Fatal(err)
		}
		for q, want := range map[string][]string{
			"3501":   {"350100", "350102", "350103", "350104", "350105", "350111", "350112", "350121", "350182"},
			"长乐":     {"350112", "350182"},
			"阳":      {"110105", "440524"},
			"50_":    nil, // LIKE wildcards match literally
			"440524": {"440524"},
		} {
			list, n, err := s.Regions(ctx, q, 0)
			var got []string
			for _, g := range list {
				got = append(got, g.Code)
			}
			if err != nil || n != len(want) || !slices.Equal(got, want) {
				t.Errorf("%q: %v (%d) %v, want %v", q, got, n, err, want)
			}
		}
		if list, n, _ := s.Regions(ctx, "", 3); len(list) != 3 || n != 14 {
			t.Fatalf("limit: %d of %d", len(list), n)
		}
	})
}

// TestOnlyThePlatformAdministratorLoadsReferenceData: others are refused,
// the refusal is audited, and so is every load.
func TestOnlyThePlatformAdministratorLoadsReferenceData(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		s, log := service(t, db)
		ctx := context.Background()
		if _, err := s.ImportRegions(ctx, deptAdmin, strings.NewReader(fixture(t)), "test"); !errors.Is(err, apperr.ErrDenied) {
			t.Fatalf("dept admin imports regions: %v", err)
		}
		if _, err := s.ReplaceCodeTable(ctx, deptAdmin, "自定义", "", []refdata.Code{{Code: "1", Label: "是"}}, "test"); !errors.Is(err, apperr.ErrDenied) {
			t.Fatalf("dept admin replaces a code table: %v", err)
		}
		if _, n, _ := s.Regions(ctx, "", 0); n != 0 {
			t.Fatal("a refused import loaded regions")
		}
		denied, err := log.List(ctx, audit.Filter{Actor: "gaj.admin", Result: audit.ResultDenied, Limit: 10})
		if err != nil || len(denied) != 2 || denied[0].Action != string(policy.RefDataManage) {
			t.Fatalf("denials audited: %+v %v", denied, err)
		}
		if _, err := s.ImportRegions(ctx, admin, strings.NewReader(fixture(t)), "regions-2026.csv"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.ReplaceCodeTable(ctx, admin, "婚姻状况", "GB/T 2261.2", []refdata.Code{{Code: "10", Label: "未婚"}, {Code: "20", Label: "已婚"}}, "api"); err != nil {
			t.Fatal(err)
		}
		evs, err := log.List(ctx, audit.Filter{Action: "refdata.", Result: audit.ResultOK, Limit: 10})
		if err != nil || len(evs) != 2 {
			t.Fatalf("loads audited: %+v %v", evs, err)
		}
		if !strings.Contains(evs[1].Details, `"rows":14`) || !strings.Contains(evs[1].Details, "regions-2026.csv") || evs[0].ObjectID != "婚姻状况" {
			t.Fatalf("audit details: %+v", evs)
		}
	})
}

func TestCodeTables(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		s, _ := service(t, db)
		ctx := context.Background()
		if err := s.EnsureDefaults(ctx); err != nil {
			t.Fatal(err)
		}
		sex, err := s.CodeTable(ctx, refdata.Sex)
		if err != nil || sex.Codes != 4 || !slices.Equal(sex.Entries, []refdata.Code{{Code: "0", Label: "未知的性别"}, {Code: "1", Label: "男性"}, {Code: "2", Label: "女性"}, {Code: "9", Label: "未说明的性别"}}) {
			t.Fatalf("GB/T 2261.1: %+v %v", sex, err)
		}
		eth, err := s.CodeTable(ctx, refdata.Ethnicity)
		if err != nil || eth.Codes != 58 || eth.Entries[0] != (refdata.Code{Code: "01", Label: "汉族"}) || eth.Entries[55] != (refdata.Code{Code: "56", Label: "基诺族"}) {
			t.Fatalf("GB/T 3304: %d codes %v", eth.Codes, err)
		}
		// The administrator's version replaces the shipped one, and a
		// restart does not put the shipped one back.
		codes, err := refdata.ParseCodesCSV(strings.NewReader("code,label\n1,男\n2,女\n"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.ReplaceCodeTable(ctx, admin, refdata.Sex, "性别(简)", codes, "upload"); err != nil {
			t.Fatal(err)
		}
		if err := s.EnsureDefaults(ctx); err != nil {
			t.Fatal(err)
		}
		if sex, _ = s.CodeTable(ctx, refdata.Sex); sex.Codes != 2 || sex.Title != "性别(简)" || sex.Source != "upload" {
			t.Fatalf("replaced table %+v", sex)
		}
		// JSON works too.
		codes, err = refdata.ParseCodesJSON(strings.NewReader(`[{"code":"10","label":"未婚"},{"code":"20","label":"已婚"},{"code":"30","label":"丧偶"}]`))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.ReplaceCodeTable(ctx, admin, "GB/T 2261.2", "婚姻状况", codes, "api"); err != nil {
			t.Fatal(err)
		}
		tables, err := s.CodeTables(ctx)
		var names []string
		for _, tb := range tables {
			names = append(names, tb.Name)
		}
		if err != nil || !slices.Equal(names, []string{"GB/T 2261.1", "GB/T 2261.2", "GB/T 3304"}) {
			t.Fatalf("tables %v %v", names, err)
		}
		if _, err := s.CodeTable(ctx, "GB/T 9999"); !errors.Is(err, refdata.ErrTableMissing) {
			t.Fatalf("missing table: %v", err)
		}
		bad := []struct {
			name  string
			parse func() ([]refdata.Code, error)
			code  string
			row   int
		}{
			{"duplicate code", func() ([]refdata.Code, error) {
				return refdata.ParseCodesCSV(strings.NewReader("code,label\n1,男\n2,女\n1,男性\n"))
			}, "refdata.code_twice", 4},
			{"empty label", func() ([]refdata.Code, error) { return refdata.ParseCodesCSV(strings.NewReader("code,label\n1,\n")) }, "refdata.label_invalid", 2},
			{"wrong header", func() ([]refdata.Code, error) { return refdata.ParseCodesCSV(strings.NewReader("value,text\n1,男\n")) }, "refdata.header_invalid", 1},
			{"not JSON", func() ([]refdata.Code, error) { return refdata.ParseCodesJSON(strings.NewReader(`{"1":"男"}`)) }, "refdata.json_invalid", 0},
			{"empty JSON code", func() ([]refdata.Code, error) {
				return refdata.ParseCodesJSON(strings.NewReader(`[{"code":"1","label":"男"},{"code":" ","label":"女"}]`))
			}, "refdata.code_invalid", 2},
		}
		for _, b := range bad {
			_, err := b.parse()
			if ae, ok := apperr.As(err); !ok || ae.Code != b.code || ae.Row != b.row {
				t.Errorf("%s: %v, want %s at row %d", b.name, err, b.code, b.row)
			}
		}
		for _, name := range []string{"", "a;b", `a\b`, strings.Repeat("表", 65)} {
			if _, err := s.ReplaceCodeTable(ctx, admin, name, "", codes, "api"); !errors.Is(err, refdata.ErrTableName) {
				t.Errorf("name %q: %v", name, err)
			}
		}
	})
}

// TestReferenceSnapshot: checks read a snapshot that follows imports.
func TestReferenceSnapshot(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		s, _ := service(t, db)
		ctx := context.Background()
		if err := s.EnsureDefaults(ctx); err != nil {
			t.Fatal(err)
		}
		ref, err := s.Reference(ctx)
		if err != nil {
			t.Fatal(err)
		}
		// No region table yet: any well-formed code is accepted.
		if ref.RegionsLoaded() || !ref.RegionKnown("350199") || ref.RegionKnown("3501") {
			t.Fatal("shape check before the region table is loaded")
		}
		if !ref.HasTable(refdata.Sex) || !ref.CodeKnown(refdata.Sex, "9") || ref.CodeKnown(refdata.Sex, "3") || ref.HasTable("GB/T 2261.2") {
			t.Fatal("code tables in the snapshot")
		}
		if again, _ := s.Reference(ctx); again != ref {
			t.Fatal("snapshot reloaded without an import")
		}
		if _, err := s.ImportRegions(ctx, admin, strings.NewReader(fixture(t)), "test"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.ReplaceCodeTable(ctx, admin, "GB/T 2261.2", "", []refdata.Code{{Code: "10", Label: "未婚"}}, "test"); err != nil {
			t.Fatal(err)
		}
		ref, err = s.Reference(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !ref.RegionsLoaded() || !ref.RegionKnown("350102") || !ref.RegionKnown("350182") || !ref.RegionRetired("350182") || ref.RegionKnown("350199") {
			t.Fatal("regions after the import")
		}
		if l, ok := ref.Label("GB/T 2261.2", "10"); !ok || l != "未婚" {
			t.Fatal("new code table missing from the snapshot")
		}
		// Another server's import is seen once the snapshot is MaxAge old.
		other := refdata.New(db, nil)
		other.MaxAge = time.Nanosecond
		if _, err := s.ReplaceCodeTable(ctx, admin, "GB/T 2261.2", "", []refdata.Code{{Code: "20", Label: "已婚"}}, "test"); err != nil {
			t.Fatal(err)
		}
		if ref, _ := other.Reference(ctx); !ref.CodeKnown("GB/T 2261.2", "20") || ref.CodeKnown("GB/T 2261.2", "10") {
			t.Fatal("stale snapshot")
		}
	})
}

// TestQualityRulesCheckTheRegionTable: the quality rules run on the real
// snapshot. A citizen ID keeps the region code it was issued under, so a
// retired code is accepted; a code never in the table is not.
func TestQualityRulesCheckTheRegionTable(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		s, _ := service(t, db)
		ctx := context.Background()
		if err := s.EnsureDefaults(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := s.ImportRegions(ctx, admin, strings.NewReader(fixture(t)), "test"); err != nil {
			t.Fatal(err)
		}
		ref, err := s.Reference(ctx)
		if err != nil {
			t.Fatal(err)
		}
		c, err := quality.Compile([]quality.Item{
			{Name: "公民身份号码", MachineName: "citizen_id", DataType: "C", Length: 18, Key: true, Rule: "required;citizen_id"},
			{Name: "性别", MachineName: "sex", DataType: "C", Length: 1, Rule: "code:GB/T 2261.1;id_sex:citizen_id"},
			{Name: "户籍地", MachineName: "region", DataType: "C", Length: 6, Rule: "region"},
		}, ref)
		if err != nil {
			t.Fatal(err)
		}
		born := time.Date(1985, 3, 9, 0, 0, 0, 0, time.UTC)
		cases := []struct {
			record []string
			want   []string
		}{
			{[]string{checkdigit.SyntheticCitizenID("350102", born, 21), "1", "350102"}, nil},
			{[]string{checkdigit.SyntheticCitizenID("350182", born, 22), "2", "350182"}, nil}, // retired 长乐市
			{[]string{"440524188001010014", "1", "440524"}, nil},                              // SPEC example, retired region
			{[]string{checkdigit.SyntheticCitizenID("350199", born, 23), "1", "350199"}, []string{"citizen_id", "region"}},
			{[]string{checkdigit.SyntheticCitizenID("350102", born, 24), "3", "3501"}, []string{"code", "region"}},
		}
		for _, tc := range cases {
			_, vs := c.Check(tc.record)
			var got []string
			for _, v := range vs {
				got = append(got, v.Rule)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("%v: %v, want %v", tc.record[1:], vs, tc.want)
			}
		}
		if _, err := quality.Compile([]quality.Item{{Name: "民族", MachineName: "ethnicity", DataType: "C", Length: 2, Rule: "code:GB/T 3304"}}, ref); err != nil {
			t.Fatalf("shipped ethnicity table: %v", err)
		}
	})
}
