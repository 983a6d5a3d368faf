package quality_test

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"govshare/internal/checkdigit"
	"govshare/internal/quality"
)

// fixture is a small reference: a few current and retired region codes
// and the sex code table. The region table itself (import, snapshot) is
// tested in package refdata, against the database.
type fixture struct {
	regions map[string]bool
	tables  map[string][]string
}

func (f fixture) RegionKnown(code string) bool { return f.regions[code] }
func (f fixture) CodeKnown(table, code string) bool {
	return slices.Contains(f.tables[table], code)
}
func (f fixture) HasTable(table string) bool { _, ok := f.tables[table]; return ok }

var ref = fixture{
	regions: map[string]bool{"350102": true, "350103": true, "440524": true, "110105": true,
		"350104": true}, // 350104 stands for a retired code: the table knows it
	tables: map[string][]string{"GB/T 2261.1": {"0", "1", "2", "9"}},
}

// person is a generated citizen ID: region 350102, born 1990-07-15, a man.
var person = checkdigit.SyntheticCitizenID("350102", time.Date(1990, 7, 15, 0, 0, 0, 0, time.UTC), 11)

func withCheck(first17 string) string {
	return first17 + string(checkdigit.CitizenIDCheckChar(first17))
}

func TestParseAcceptsTheGrammar(t *testing.T) {
	for _, r := range []string{
		"", "required", "required;citizen_id", " required ; citizen_id ;", "code:GB/T 2261.1", "region", "credit_code",
		"length:18", "regex:[0-9]{6}", `regex:a\;b`, "range:0..150", "range:..100", "range:-1.5..", "date_range:1900-01-01..today",
		"date_range:..2030-12-31", "unique", "id_birth:citizen_id", "id_sex:身份证号", "phone", "REQUIRED;Citizen_ID",
	} {
		if err := quality.Parse(r); err != nil {
			t.Errorf("%q: %v", r, err)
		}
	}
}

func TestParseNamesTheOffendingPart(t *testing.T) {
	cases := map[string]string{
		"required;mandatory":                "mandatory",
		"required;required":                 "required",
		"length:abc":                        "length:abc",
		"length:0":                          "length:0",
		"length":                            "length",
		"regex:[0-9":                        "regex:[0-9",
		"code:":                             "code:",
		"citizen_id:strict":                 "citizen_id:strict",
		"range:5..1":                        "range:5..1",
		"range:5":                           "range:5",
		"range:..":                          "range:..",
		"range:a..b":                        "range:a..b",
		"date_range:2020-02-30..":           "date_range:2020-02-30..",
		"date_range:2021-01-01..2020-01-01": "date_range:2021-01-01..2020-01-01",
		"id_birth":                          "id_birth",
	}
	for rule, part := range cases {
		err := quality.Parse(rule)
		var re *quality.RuleError
		if !errors.As(err, &re) || re.Part != part || re.ZH == "" || re.EN == "" {
			t.Errorf("%q: %v (%+v), want the part %q named", rule, err, re, part)
		}
	}
}

func TestCompileNeedsKnownCodeTablesAndItems(t *testing.T) {
	_, err := quality.Compile([]quality.Item{{Name: "民族", MachineName: "ethnicity", DataType: "C", Length: 2, Rule: "code:GB/T 3304"}}, ref)
	var re *quality.RuleError
	if !errors.As(err, &re) || re.Item != "ethnicity" || !strings.Contains(re.EN, "GB/T 3304") {
		t.Fatalf("unknown code table: %v", err)
	}
	if _, err := quality.Compile([]quality.Item{{Name: "性别", MachineName: "sex", DataType: "C", Length: 1, Rule: "code:GB/T 2261.1"}}, nil); err == nil {
		t.Fatal("a code table without reference data compiled")
	}
	_, err = quality.Compile([]quality.Item{{Name: "出生日期", MachineName: "birth", DataType: "D", Rule: "id_birth:id_no"}}, ref)
	if !errors.As(err, &re) || re.Part != "id_birth:id_no" {
		t.Fatalf("unknown citizen ID item: %v", err)
	}
	if _, err := quality.Compile([]quality.Item{{Name: "x", MachineName: "x", DataType: "Q"}}, ref); err == nil {
		t.Fatal("unknown data type compiled")
	}
}

// check compiles one item and checks one value, returning the canonical
// value and the violated rules' codes.
func check(t *testing.T, it quality.Item, value string) (string, []string) {
	t.Helper()
	c, err := quality.Compile([]quality.Item{it}, ref)
	if err != nil {
		t.Fatalf("compile %+v: %v", it, err)
	}
	canon, vs := c.Check([]string{value})
	var codes []string
	for _, v := range vs {
		codes = append(codes, v.Rule)
		if v.Item != it.MachineName || v.ZH == "" || v.EN == "" {
			t.Errorf("violation %+v lacks its item or a message", v)
		}
	}
	return canon[0], codes
}

func TestEachRuleAcceptsAndRejects(t *testing.T) {
	id := quality.Item{Name: "公民身份号码", MachineName: "id_no", DataType: "C", Length: 18, Rule: "citizen_id"}
	retired := withCheck("35010419800101001") // region 350104: retired, still valid for old records
	cases := []struct {
		name  string
		item  quality.Item
		value string
		want  string // violated rule, "" for none
	}{
		{"required given", quality.Item{Name: "姓名", MachineName: "name", DataType: "C", Length: 50, Rule: "required"}, "张三", ""},
		{"required missing", quality.Item{Name: "姓名", MachineName: "name", DataType: "C", Length: 50, Rule: "required"}, "  ", "required"},
		{"key is required", quality.Item{Name: "编号", MachineName: "no", DataType: "C", Length: 10, Key: true}, "", "required"},
		{"optional empty", quality.Item{Name: "备注", MachineName: "note", DataType: "C", Length: 10, Rule: "citizen_id"}, "", ""},
		{"item length", quality.Item{Name: "姓名", MachineName: "name", DataType: "C", Length: 4}, "欧阳娜娜", ""},
		{"item length exceeded", quality.Item{Name: "姓名", MachineName: "name", DataType: "C", Length: 4}, "欧阳娜娜娜", "length"},
		{"length rule tighter", quality.Item{Name: "码", MachineName: "c", DataType: "C", Length: 10, Rule: "length:3"}, "abcd", "length"},
		{"regex", quality.Item{Name: "邮编", MachineName: "zip", DataType: "C", Length: 6, Rule: "regex:[0-9]{6}"}, "350001", ""},
		{"regex is anchored", quality.Item{Name: "邮编", MachineName: "zip", DataType: "C", Length: 10, Rule: "regex:[0-9]{6}"}, "3500012", "regex"},
		{"code", quality.Item{Name: "性别", MachineName: "sex", DataType: "C", Length: 1, Rule: "code:GB/T 2261.1"}, "2", ""},
		{"code unknown", quality.Item{Name: "性别", MachineName: "sex", DataType: "C", Length: 1, Rule: "code:GB/T 2261.1"}, "3", "code"},
		{"citizen ID", id, person, ""},
		{"citizen ID spec example", id, "11010519491231002X", ""},
		{"citizen ID lower-case x", id, "11010519491231002x", ""},
		{"citizen ID of a retired region", id, retired, ""},
		{"citizen ID wrong check character", id, person[:17] + string("0123456789X"[(strings.IndexByte("0123456789X", person[17])+1)%11]), "citizen_id"},
		{"citizen ID impossible date", id, withCheck("35010219900230001"), "citizen_id"},
		{"citizen ID unknown region", id, withCheck("35019919900101001"), "citizen_id"},
		{"citizen ID short", id, "35010219900101", "citizen_id"},
		{"credit code", quality.Item{Name: "统一社会信用代码", MachineName: "uscc", DataType: "C", Length: 18, Rule: "credit_code"}, "91350100M000100Y43", ""},
		{"credit code lower case", quality.Item{Name: "统一社会信用代码", MachineName: "uscc", DataType: "C", Length: 18, Rule: "credit_code"}, "91350100m000100y43", ""},
		{"credit code wrong check", quality.Item{Name: "统一社会信用代码", MachineName: "uscc", DataType: "C", Length: 18, Rule: "credit_code"}, "91350100M000100Y44", "credit_code"},
		{"credit code forbidden letter", quality.Item{Name: "统一社会信用代码", MachineName: "uscc", DataType: "C", Length: 18, Rule: "credit_code"}, "91350100O000100Y43", "credit_code"},
		{"region current", quality.Item{Name: "区划", MachineName: "region", DataType: "C", Length: 6, Rule: "region"}, "350102", ""},
		{"region retired", quality.Item{Name: "区划", MachineName: "region", DataType: "C", Length: 6, Rule: "region"}, "350104", ""},
		{"region unknown", quality.Item{Name: "区划", MachineName: "region", DataType: "C", Length: 6, Rule: "region"}, "350199", "region"},
		{"region malformed", quality.Item{Name: "区划", MachineName: "region", DataType: "C", Length: 6, Rule: "region"}, "35A102", "region"},
		{"range", quality.Item{Name: "年龄", MachineName: "age", DataType: "I", Length: 3, Rule: "range:0..150"}, "150", ""},
		{"range above", quality.Item{Name: "年龄", MachineName: "age", DataType: "I", Length: 3, Rule: "range:0..150"}, "151", "range"},
		{"range below", quality.Item{Name: "面积", MachineName: "area", DataType: "N", Length: 12, Rule: "range:0.01.."}, "0", "range"},
		{"range on text", quality.Item{Name: "年龄", MachineName: "age", DataType: "C", Length: 3, Rule: "range:0..150"}, "abc", "range"},
		{"date range", quality.Item{Name: "出生日期", MachineName: "birth", DataType: "D", Rule: "date_range:1900-01-01..today"}, "19900715", ""},
		{"date range before", quality.Item{Name: "出生日期", MachineName: "birth", DataType: "D", Rule: "date_range:1900-01-01..today"}, "1899-12-31", "date_range"},
		{"date range future", quality.Item{Name: "出生日期", MachineName: "birth", DataType: "D", Rule: "date_range:1900-01-01..today"}, time.Now().AddDate(0, 0, 2).Format("20060102"), "date_range"},
		{"phone mobile", quality.Item{Name: "电话", MachineName: "tel", DataType: "C", Length: 20, Rule: "phone"}, "13800138000", ""},
		{"phone landline", quality.Item{Name: "电话", MachineName: "tel", DataType: "C", Length: 20, Rule: "phone"}, "0591-87654321", ""},
		{"phone wrong", quality.Item{Name: "电话", MachineName: "tel", DataType: "C", Length: 20, Rule: "phone"}, "12345", "phone"},
		{"unique is across records", quality.Item{Name: "编号", MachineName: "no", DataType: "C", Length: 10, Rule: "unique"}, "A1", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, got := check(t, c.item, c.value)
			want := []string(nil)
			if c.want != "" {
				want = []string{c.want}
			}
			if !slices.Equal(got, want) {
				t.Fatalf("%q: violations %v, want %v", c.value, got, want)
			}
		})
	}
}

func TestPhoneNumbers(t *testing.T) {
	it := quality.Item{Name: "电话", MachineName: "tel", DataType: "C", Length: 30, Rule: "phone"}
	for _, ok := range []string{"13800138000", "+8613800138000", "+86 13800138000", "8613800138000", "0591-87654321", "059187654321",
		"010-12345678", "(0591)87654321", "0591-87654321-123", "0898-6543210"} {
		if _, vs := check(t, it, ok); vs != nil {
			t.Errorf("%s: %v", ok, vs)
		}
	}
	for _, bad := range []string{"12800138000", "1380013800", "138001380001", "87654321", "0591-07654321", "0591-87654321-", "(591)87654321", "0591-8765432a"} {
		if _, vs := check(t, it, bad); !slices.Equal(vs, []string{"phone"}) {
			t.Errorf("%s: %v", bad, vs)
		}
	}
}

func TestTypesAreCheckedAndValuesMadeCanonical(t *testing.T) {
	cases := []struct {
		typ, value, canonical string
		ok                    bool
	}{
		{"C", "  张三 ", "张三", true},
		{"N", "1,234,567.50", "1234567.50", true},
		{"N", "+12", "12", true},
		{"N", "-0.5", "-0.5", true},
		{"N", "12,34", "", false},
		{"N", "1.2.3", "", false},
		{"N", "1e5", "", false},
		{"Y", "1,000", "1000", true},
		{"I", "42", "42", true},
		{"I", "4.2", "", false},
		{"I", "99999999999999999999", "", false},
		{"B", "6.02e23", "6.02e23", true},
		{"F", "abc", "", false},
		{"D", "20260301", "2026-03-01", true},
		{"D", "2026-03-01", "2026-03-01", true},
		{"D", "2026/3/1", "2026-03-01", true},
		{"D", "2026-03-01 00:00:00", "2026-03-01", true},
		{"D", "2026-02-29", "", false},
		{"D", "2024-02-29", "2024-02-29", true},
		{"D", "20261301", "", false},
		{"D", "2026-03-01 08:00:00", "", false},
		{"T", "2026-03-01 08:30:00", "2026-03-01T00:30:00Z", true},
		{"T", "20260301083000", "2026-03-01T00:30:00Z", true},
		{"T", "2026-03-01T08:30:00+08:00", "2026-03-01T00:30:00Z", true},
		{"T", "2026-03-01T00:30:00Z", "2026-03-01T00:30:00Z", true},
		{"T", "2026-03-01T00:30:00.250Z", "2026-03-01T00:30:00.25Z", true},
		{"T", "2026-03-01 08:30", "2026-03-01T00:30:00Z", true},
		{"T", "2026-03-01T10:30:00+10:00", "2026-03-01T00:30:00Z", true},
		{"T", "2026-03-01", "2026-02-28T16:00:00Z", true},
		{"T", "2026-03-01 25:00:00", "", false},
		{"T", "next monday", "", false},
		{"L", "1", "true", true},
		{"L", "否", "false", true},
		{"L", "TRUE", "true", true},
		{"L", "yes", "", false},
		{"G", "aGVsbG8=", "aGVsbG8=", true},
		{"G", "aGVsbG8", "", false},
		{"G", "aGV=bG8=", "", false},
		{"M", "长文本", "长文本", true},
	}
	for _, c := range cases {
		canon, vs := check(t, quality.Item{Name: "值", MachineName: "v", DataType: c.typ, Length: 100}, c.value)
		switch {
		case c.ok && (vs != nil || canon != c.canonical):
			t.Errorf("%s %q: canonical %q, violations %v; want %q", c.typ, c.value, canon, vs, c.canonical)
		case !c.ok && !slices.Equal(vs, []string{"type"}):
			t.Errorf("%s %q: violations %v, want a type violation", c.typ, c.value, vs)
		}
	}
}

// demoItems are the items of a household register with cross-item rules.
var demoItems = []quality.Item{
	{Name: "公民身份号码", MachineName: "citizen_id", DataType: "C", Length: 18, Key: true, Rule: "required;citizen_id"},
	{Name: "姓名", MachineName: "name", DataType: "C", Length: 50, Rule: "required"},
	{Name: "性别", MachineName: "sex", DataType: "C", Length: 1, Rule: "code:GB/T 2261.1;id_sex:citizen_id"},
	{Name: "出生日期", MachineName: "birth_date", DataType: "D", Length: 8, Rule: "id_birth:citizen_id;date_range:1900-01-01..today"},
	{Name: "户籍地行政区划", MachineName: "region", DataType: "C", Length: 6, Rule: "region"},
	{Name: "手机号码", MachineName: "mobile", DataType: "C", Length: 20, Rule: "phone"},
	{Name: "家庭人口", MachineName: "family_size", DataType: "I", Length: 2, Rule: "range:1..20"},
	{Name: "月收入", MachineName: "income", DataType: "Y", Length: 12, Rule: "range:0.."},
	{Name: "登记时间", MachineName: "registered_at", DataType: "T", Length: 14},
	{Name: "是否在册", MachineName: "active", DataType: "L", Length: 1},
}

func TestCrossItemRulesFollowTheCitizenID(t *testing.T) {
	c, err := quality.Compile(demoItems, ref)
	if err != nil {
		t.Fatal(err)
	}
	good := []string{person, "张三", "1", "19900715", "350102", "13800138000", "3", "5,000.00", "2026-01-05 09:00:00", "是"}
	canon, vs := c.Check(good)
	if vs != nil {
		t.Fatalf("good record: %+v", vs)
	}
	want := []string{person, "张三", "1", "1990-07-15", "350102", "13800138000", "3", "5000.00", "2026-01-05T01:00:00Z", "true"}
	if !slices.Equal(canon, want) {
		t.Fatalf("canonical %q, want %q", canon, want)
	}
	bad := slices.Clone(good)
	bad[2], bad[3] = "2", "1990-07-16"
	_, vs = c.Check(bad)
	if got := rules(vs); !slices.Equal(got, []string{"sex:id_sex", "birth_date:id_birth"}) {
		t.Fatalf("cross-item violations %v", got)
	}
	// "Not stated" agrees with anyone.
	bad[2], bad[3] = "9", "19900715"
	if _, vs = c.Check(bad); vs != nil {
		t.Fatalf("sex 9: %+v", vs)
	}
}

func rules(vs []quality.Violation) []string {
	var out []string
	for _, v := range vs {
		out = append(out, v.Item+":"+v.Rule)
	}
	return out
}

func TestCheckReportsEveryViolationInItemOrder(t *testing.T) {
	c, err := quality.Compile(demoItems, ref)
	if err != nil {
		t.Fatal(err)
	}
	badID := person[:16] + "0" + person[17:] // sequence changed: the check character no longer fits
	canon, vs := c.Check([]string{badID, "", "3", "19900230", "999999", "123", "0", "-1", "yesterday", "maybe"})
	want := []string{"citizen_id:citizen_id", "name:required", "sex:code", "birth_date:type", "region:region", "mobile:phone",
		"family_size:range", "income:range", "registered_at:type", "active:type"}
	if got := rules(vs); !slices.Equal(got, want) {
		t.Fatalf("violations\n%v\nwant\n%v", got, want)
	}
	if len(canon) != len(demoItems) || canon[8] != "yesterday" {
		t.Fatalf("canonical of a bad record: %q", canon)
	}
	// Personal data stays out of the messages.
	for _, v := range vs {
		if strings.Contains(v.ZH, badID) || strings.Contains(v.EN, badID) || strings.Contains(v.ZH, badID[6:14]) {
			t.Errorf("violation echoes the citizen ID: %+v", v)
		}
	}
	// Short records are padded with nulls.
	if _, vs := c.Check([]string{person}); !slices.Equal(rules(vs), []string{"name:required"}) {
		t.Fatalf("short record: %v", rules(vs))
	}
}

func TestUniqueListsKeysAndUniqueItems(t *testing.T) {
	c, err := quality.Compile([]quality.Item{
		{Name: "编号", MachineName: "no", DataType: "C", Length: 10, Key: true},
		{Name: "名称", MachineName: "name", DataType: "C", Length: 10},
		{Name: "统一社会信用代码", MachineName: "uscc", DataType: "C", Length: 18, Rule: "credit_code;unique"},
	}, ref)
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Unique(); !slices.Equal(got, []int{0, 2}) {
		t.Fatalf("unique %v", got)
	}
	if v := c.UniqueViolation(2); v.Item != "uscc" || v.Rule != "unique" || v.ZH == "" {
		t.Fatalf("unique violation %+v", v)
	}
}

func TestDescribeSaysEachItemsRules(t *testing.T) {
	c, err := quality.Compile(demoItems, ref)
	if err != nil {
		t.Fatal(err)
	}
	d := c.Describe()
	if len(d) != len(demoItems) {
		t.Fatalf("%d descriptions", len(d))
	}
	for i, want := range []string{"公民身份号码", "必填", "GB/T 2261.1", "出生日期一致", "行政区划代码", "手机号码", "1至20", "不小于0", "日期时间", "逻辑值"} {
		if !strings.Contains(d[i][0], want) || d[i][1] == "" {
			t.Errorf("item %d: %q lacks %q", i, d[i], want)
		}
	}
}

func TestCheckIsSafeForConcurrentUse(t *testing.T) {
	c, err := quality.Compile(demoItems, ref)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Go(func() {
			for i := 0; i < 500; i++ {
				id := checkdigit.SyntheticCitizenID("350103", time.Date(1950, 1, 1, 0, 0, 0, 0, time.UTC).AddDate(0, 0, i*13+g), i)
				birth, _ := checkdigit.CitizenIDBirth(id)
				male, _ := checkdigit.CitizenIDMale(id)
				sex := map[bool]string{true: "1", false: "2"}[male]
				_, vs := c.Check([]string{id, fmt.Sprintf("居民%d", i), sex, birth.Format("20060102"), "350103", "", "2", "100", "", "0"})
				if vs != nil {
					t.Errorf("%+v", vs)
					return
				}
			}
		})
	}
	wg.Wait()
}

func TestCanonicalRecordsAllocateOnlyTheResult(t *testing.T) {
	c, err := quality.Compile(demoItems, ref)
	if err != nil {
		t.Fatal(err)
	}
	canonical := []string{person, "张三", "1", "1990-07-15", "350102", "13800138000", "3", "5000.00", "2026-01-05T01:00:00Z", "true"}
	if n := testing.AllocsPerRun(100, func() { c.Check(canonical) }); n > 1 {
		t.Errorf("canonical record: %v allocations, want 1 (the result)", n)
	}
	raw := []string{person, "张三", "1", "19900715", "350102", "13800138000", "3", "5,000.00", "2026-01-05 09:00:00", "是"}
	if n := testing.AllocsPerRun(100, func() { c.Check(raw) }); n > 2 {
		t.Errorf("record to rewrite: %v allocations, want 2 (the result and its rewritten values)", n)
	}
}

// BenchmarkCheck checks a valid 10-column record with several rules each:
// the cost per record of a million-row upload.
func BenchmarkCheck(b *testing.B) {
	c, err := quality.Compile(demoItems, ref)
	if err != nil {
		b.Fatal(err)
	}
	row := []string{person, "张三", "1", "19900715", "350102", "13800138000", "3", "5,000.00", "2026-01-05 09:00:00", "是"}
	b.ReportAllocs()
	for b.Loop() {
		if _, vs := c.Check(row); vs != nil {
			b.Fatal(vs)
		}
	}
}

// BenchmarkCheckPeople checks a valid record of the ingest bench's
// resource (govshare bench ingest), every kind of rule on: what a million
// rows cost beside the database.
func BenchmarkCheckPeople(b *testing.B) {
	c, err := quality.Compile([]quality.Item{
		{Name: "公民身份号码", MachineName: "citizen_id", DataType: "C", Length: 18, Key: true, Rule: "required;citizen_id"},
		{Name: "姓名", MachineName: "name", DataType: "C", Length: 20, Rule: "required;length:10"},
		{Name: "性别", MachineName: "sex", DataType: "C", Length: 1, Rule: "required;code:GB/T 2261.1;id_sex:citizen_id"},
		{Name: "出生日期", MachineName: "birth_date", DataType: "D", Length: 8, Rule: "required;id_birth:citizen_id;date_range:1900-01-01..today"},
		{Name: "户籍行政区划", MachineName: "region_code", DataType: "C", Length: 6, Rule: "required;region"},
		{Name: "工作单位统一社会信用代码", MachineName: "employer_code", DataType: "C", Length: 18, Rule: "credit_code"},
		{Name: "手机号码", MachineName: "phone", DataType: "C", Length: 20, Rule: "phone;unique"},
		{Name: "月收入(元)", MachineName: "monthly_income", DataType: "N", Length: 12, Rule: "range:0..1000000"},
		{Name: "登记日期", MachineName: "registered_on", DataType: "D", Length: 8, Rule: "date_range:1949-10-01..today"},
		{Name: "邮政编码", MachineName: "postcode", DataType: "C", Length: 6, Rule: `regex:[1-9][0-9]{5}`},
	}, ref)
	if err != nil {
		b.Fatal(err)
	}
	row := []string{person, "冯静欣", "1", "1990-07-15", "350102", "113501000000012098", "13000012345", "21301.50", "1989-06-01", "356206"}
	b.ReportAllocs()
	b.Run("Check", func(b *testing.B) {
		for b.Loop() {
			if _, vs := c.Check(row); vs != nil {
				b.Fatal(vs)
			}
		}
	})
	// As the pipeline checks: the time read once for a lot of rows, the
	// values into the lot's slice.
	b.Run("CheckInto", func(b *testing.B) {
		canonical := make([]string, len(row))
		at := quality.At(time.Now())
		for b.Loop() {
			if vs := c.CheckInto(canonical, row, at); vs != nil {
				b.Fatal(vs)
			}
		}
	})
}

// TestCheckIntoJudgesAsOfItsMoment: "today" and a citizen ID's birth date
// are judged as of the moment given, and the canonical values of an
// earlier record left in the slice are overwritten, empty ones too.
func TestCheckIntoJudgesAsOfItsMoment(t *testing.T) {
	c, err := quality.Compile([]quality.Item{
		{Name: "公民身份号码", MachineName: "citizen_id", DataType: "C", Key: true, Rule: "citizen_id"},
		{Name: "登记日期", MachineName: "registered_on", DataType: "D", Rule: "date_range:..today"},
		{Name: "备注", MachineName: "note", DataType: "C"},
	}, ref)
	if err != nil {
		t.Fatal(err)
	}
	baby := checkdigit.SyntheticCitizenID("350102", time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC), 7)
	row := []string{baby, "20260301", ""}
	canonical := []string{"left", "from", "before"}
	// 2026-03-01 00:30 in China is still 2026-02-28 in UTC.
	at := quality.At(time.Date(2026, 2, 28, 16, 30, 0, 0, time.UTC))
	if vs := c.CheckInto(canonical, row, at); len(vs) != 0 || !slices.Equal(canonical, []string{baby, "2026-03-01", ""}) {
		t.Errorf("as of the day: %v %q", vs, canonical)
	}
	var rules []string
	for _, v := range c.CheckInto(canonical, row, quality.At(time.Date(2026, 2, 28, 12, 0, 0, 0, time.UTC))) {
		rules = append(rules, v.Item+"/"+v.Rule)
	}
	if !slices.Equal(rules, []string{"citizen_id/citizen_id", "registered_on/date_range"}) {
		t.Errorf("as of the day before: %v", rules)
	}
}
