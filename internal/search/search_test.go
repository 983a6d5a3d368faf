package search

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

func day(s string) time.Time {
	t, err := time.Parse("2006-01-02", s)
	if err != nil {
		panic(err)
	}
	return t
}

// catalog is a small catalog whose texts overlap on purpose: 户 appears in
// 户籍 and 户外, 登记 in 户籍登记 and 婚姻登记, 户籍 in a name and in an
// abstract.
var catalog = []Document{
	{ID: 1, Code: "101001000001", Name: "户籍登记信息", Abstract: "常住人口的户籍登记事项",
		Keywords: []string{"户籍", "人口"}, ItemNames: []string{"姓名", "公民身份号码", "户籍地址"},
		DeptID: 10, DeptName: "市公安局", ClassCode: "101001", ShareType: "unconditional",
		ShareMethods: []string{"file", "api"}, OpenType: "closed", UpdateCycle: "daily", FormatClass: "database",
		PublishedAt: day("2024-01-10"), Popularity: 50},
	{ID: 2, Code: "301001000001", Name: "户外广告设置许可信息", Abstract: "户外广告设施设置的行政许可",
		Keywords: []string{"户外广告", "许可"}, ItemNames: []string{"许可证号", "设置地点"},
		DeptID: 20, DeptName: "市城市管理局", ClassCode: "301001", ShareType: "conditional",
		ShareMethods: []string{"api"}, OpenType: "open", UpdateCycle: "monthly", FormatClass: "spreadsheet",
		PublishedAt: day("2024-03-01"), Popularity: 10},
	{ID: 3, Code: "101002000001", Name: "户籍迁移证明", Abstract: "办理迁入迁出的证明材料",
		Keywords: []string{"户籍"}, ItemNames: []string{"迁出地", "迁入地"},
		DeptID: 10, DeptName: "市公安局", ClassCode: "101002", ShareType: "unconditional",
		ShareMethods: []string{"file"}, OpenType: "closed", UpdateCycle: "daily", FormatClass: "database",
		PublishedAt: day("2023-06-01"), Popularity: 30},
	{ID: 4, Code: "101003000001", Name: "婚姻登记信息", Abstract: "结婚登记和离婚登记记录",
		Keywords: []string{"婚姻", "人口"}, ItemNames: []string{"登记日期", "登记机关"},
		DeptID: 30, DeptName: "市民政局", ClassCode: "101003", ShareType: "conditional",
		ShareMethods: []string{"api", "verify"}, OpenType: "on_request", UpdateCycle: "daily", FormatClass: "database",
		PublishedAt: day("2024-05-01"), Popularity: 80},
	{ID: 5, Code: "102001000001", Name: "企业纳税信用等级", Abstract: "企业纳税信用评价结果",
		Keywords: []string{"纳税", "信用"}, ItemNames: []string{"统一社会信用代码", "信用等级"},
		DeptID: 40, DeptName: "市税务局", ClassCode: "102001", ShareType: "unconditional",
		ShareMethods: []string{"api"}, OpenType: "open", UpdateCycle: "yearly", FormatClass: "api",
		PublishedAt: day("2022-01-01"), Popularity: 5},
	{ID: 6, Code: "202001000001", Name: "残疾人基本信息", Abstract: "持证残疾人的类别、等级和户籍所在地",
		Keywords: []string{"残疾人"}, ItemNames: []string{"残疾类别", "残疾等级"},
		DeptID: 50, DeptName: "市残疾人联合会", ClassCode: "202001", ShareType: "conditional",
		ShareMethods: []string{"exchange"}, OpenType: "closed", UpdateCycle: "quarterly", FormatClass: "database",
		PublishedAt: day("2024-02-01"), Popularity: 20},
	{ID: 7, Code: "302001000001", Name: "地区生产总值GDP统计", Abstract: "Gross Domestic Product by quarter",
		Keywords: []string{"GDP", "统计"}, ItemNames: []string{"季度", "生产总值"},
		DeptID: 60, DeptName: "市统计局", ClassCode: "302001", ShareType: "unconditional",
		ShareMethods: []string{"file"}, OpenType: "open", UpdateCycle: "quarterly", FormatClass: "spreadsheet",
		PublishedAt: day("2021-04-01"), Popularity: 0},
}

// openers runs each test on the in-memory index and on one in a folder.
var openers = []struct {
	name string
	open func(t *testing.T) *Bleve
}{
	{"memory", func(t *testing.T) *Bleve { return mustOpen(t, "") }},
	{"disk", func(t *testing.T) *Bleve { return mustOpen(t, filepath.Join(t.TempDir(), "search")) }},
}

func mustOpen(t *testing.T, dir string) *Bleve {
	t.Helper()
	b, err := OpenBleve(dir)
	if err != nil {
		t.Fatalf("OpenBleve(%q): %v", dir, err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func loaded(t *testing.T, open func(t *testing.T) *Bleve) *Bleve {
	t.Helper()
	b := open(t)
	if err := b.Put(context.Background(), catalog...); err != nil {
		t.Fatal(err)
	}
	return b
}

func search(t *testing.T, idx Index, q Query) Result {
	t.Helper()
	r, err := idx.Search(context.Background(), q)
	if err != nil {
		t.Fatalf("Search(%+v): %v", q, err)
	}
	if r.Total < len(r.Hits) {
		t.Fatalf("Search(%+v): total %d < %d hits", q, r.Total, len(r.Hits))
	}
	return r
}

func ids(r Result) []int64 {
	out := make([]int64, len(r.Hits))
	for i, h := range r.Hits {
		out[i] = h.ID
	}
	return out
}

func sortedIDs(r Result) []int64 { return slices.Sorted(slices.Values(ids(r))) }

// TestChineseQueriesMatchSubstrings documents what a query finds. A Chinese
// query matches where the same characters appear adjacent in one field (or
// one keyword, one item name): the result LIKE '%q%' would give, per field.
// One character finds every entry containing it; two or more must appear
// together, so 户籍 does not find 户外广告 and 户籍登记 does not find an
// entry that has 户籍 and 登记 apart. Space-separated words must all match.
func TestChineseQueriesMatchSubstrings(t *testing.T) {
	cases := []struct {
		text string
		want []int64
	}{
		{"户", []int64{1, 2, 3, 6}},  // 户籍, 户外, and 户籍 in an abstract
		{"户籍", []int64{1, 3, 6}},    // not 户外广告
		{"户外", []int64{2}},          // not 户籍
		{"户籍登记", []int64{1}},        // not 户籍迁移, not 婚姻登记
		{"户籍登记信息", []int64{1}},      // the whole name
		{"登记", []int64{1, 4}},       // in names and in item names
		{"婚姻 登记", []int64{4}},       // every word must match
		{"户籍 婚姻", nil},              // no entry has both
		{"籍户", nil},                 // order matters
		{"公安", []int64{1, 3}},       // provider department name
		{"身份号码", []int64{1}},        // data item name
		{"残疾人", []int64{6}},         // three characters
		{"信用等级", []int64{5}},        // name and item name of one entry
		{"gdp", []int64{7}},         // Latin, any case
		{"ＧＤＰ", []int64{7}},         // full-width folded
		{"domestic", []int64{7}},    // Latin word in an abstract
		{"prod", []int64{7}},        // Latin prefix
		{"生产总值GDP", []int64{7}},     // mixed run
		{"101001", []int64{1}},      // resource code prefix
		{"“户籍”，", []int64{1, 3, 6}}, // punctuation ignored
		{"不存在", nil},
	}
	for _, o := range openers {
		t.Run(o.name, func(t *testing.T) {
			b := loaded(t, o.open)
			for _, c := range cases {
				r := search(t, b, Query{Text: c.text})
				if got := sortedIDs(r); !slices.Equal(got, c.want) && (len(got) > 0 || len(c.want) > 0) {
					t.Errorf("%q found %v, want %v", c.text, got, c.want)
				}
				if r.Total != len(c.want) {
					t.Errorf("%q total %d, want %d", c.text, r.Total, len(c.want))
				}
			}
		})
	}
}

func TestNameMatchesRankFirst(t *testing.T) {
	b := loaded(t, openers[0].open)
	got := ids(search(t, b, Query{Text: "户籍"}))
	if len(got) != 3 || got[2] != 6 {
		t.Fatalf("户籍 ranked %v: the entry with 户籍 only in its abstract (6) must come last", got)
	}
	got = ids(search(t, b, Query{Text: "残疾"}))
	if len(got) != 1 || got[0] != 6 {
		t.Fatalf("残疾 found %v", got)
	}
}

func facet(r Result, name string) map[string]int {
	m := map[string]int{}
	for _, v := range r.Facets[name] {
		m[v.Value] = v.Count
	}
	return m
}

func TestFacetsCountAllMatches(t *testing.T) {
	for _, o := range openers {
		t.Run(o.name, func(t *testing.T) {
			b := loaded(t, o.open)
			// Counts cover every match, not just the page.
			r := search(t, b, Query{Size: 1})
			want := map[string]map[string]int{
				FacetShareType:   {"unconditional": 4, "conditional": 3},
				FacetShareMethod: {"api": 4, "file": 3, "verify": 1, "exchange": 1},
				FacetKind:        {"base": 4, "theme": 1, "dept": 2},
				FacetClass:       {"101": 3, "102": 1, "202": 1, "301": 1, "302": 1},
				FacetDept:        {"10": 2, "20": 1, "30": 1, "40": 1, "50": 1, "60": 1},
				FacetOpenType:    {"closed": 3, "open": 3, "on_request": 1},
				FacetUpdateCycle: {"daily": 3, "monthly": 1, "quarterly": 2, "yearly": 1},
				FacetFormatClass: {"database": 4, "spreadsheet": 2, "api": 1},
			}
			for name, w := range want {
				if got := facet(r, name); !mapsEqual(got, w) {
					t.Errorf("facet %s = %v, want %v", name, got, w)
				}
			}
			if got := facet(r, FacetTag); got["户籍"] != 2 || got["人口"] != 2 || got["GDP"] != 1 {
				t.Errorf("facet tag = %v", got)
			}
			if r.Total != 7 || len(r.Hits) != 1 {
				t.Errorf("total %d with %d hits, want 7 with 1", r.Total, len(r.Hits))
			}
			// With text, counts follow the matches; every facet is present.
			r = search(t, b, Query{Text: "户籍"})
			if got := facet(r, FacetShareType); !mapsEqual(got, map[string]int{"unconditional": 2, "conditional": 1}) {
				t.Errorf("户籍 share_type facet = %v", got)
			}
			for _, f := range facets {
				if _, ok := r.Facets[f.name]; !ok {
					t.Errorf("facet %s missing", f.name)
				}
			}
			if r := search(t, b, Query{Text: "不存在"}); r.Facets[FacetShareType] == nil {
				t.Errorf("no matches must still give an empty facet, not nil")
			}
		})
	}
}

func mapsEqual(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func TestFiltersCombineWithText(t *testing.T) {
	b := loaded(t, openers[0].open)
	cases := []struct {
		q    Query
		want []int64
	}{
		{Query{Text: "户籍", ShareType: "unconditional"}, []int64{1, 3}},
		{Query{Text: "户籍", ShareType: "unconditional", ClassPrefix: "101"}, []int64{1, 3}},
		{Query{Text: "户籍", ShareType: "unconditional", ClassPrefix: "101001"}, []int64{1}},
		{Query{Text: "户籍", ClassPrefix: "2"}, []int64{6}},
		{Query{Text: "户", ShareMethod: "file"}, []int64{1, 3}},
		{Query{ShareMethod: "api", OpenType: "open"}, []int64{2, 5}},
		{Query{DeptID: 10}, []int64{1, 3}},
		{Query{Kind: "base", UpdateCycle: "daily"}, []int64{1, 3, 4}},
		{Query{Kind: "dept"}, []int64{2, 7}},
		{Query{Tag: "人口"}, []int64{1, 4}},
		{Query{Tag: "人"}, nil}, // tags match whole
		{Query{FormatClass: "spreadsheet", Text: "统计"}, []int64{7}},
		{Query{Text: "登记", ShareType: "none"}, nil},
	}
	for _, c := range cases {
		if got := sortedIDs(search(t, b, c.q)); !slices.Equal(got, c.want) && (len(got) > 0 || len(c.want) > 0) {
			t.Errorf("%+v found %v, want %v", c.q, got, c.want)
		}
	}
	// A filter does not reorder the matches.
	plain := ids(search(t, b, Query{Text: "户籍"}))
	filtered := ids(search(t, b, Query{Text: "户籍", ClassPrefix: "1"}))
	if !slices.Equal(plain[:2], filtered) {
		t.Errorf("filter changed the order: %v then %v", plain, filtered)
	}
}

func TestSortAndPaging(t *testing.T) {
	b := loaded(t, openers[1].open)
	if got := ids(search(t, b, Query{Sort: SortDate})); !slices.Equal(got, []int64{4, 2, 6, 1, 3, 5, 7}) {
		t.Errorf("by date %v", got)
	}
	if got := ids(search(t, b, Query{Sort: SortPopularity})); !slices.Equal(got, []int64{4, 1, 3, 6, 2, 5, 7}) {
		t.Errorf("by popularity %v", got)
	}
	if got := ids(search(t, b, Query{Text: "户籍", Sort: SortDate})); !slices.Equal(got, []int64{6, 1, 3}) {
		t.Errorf("户籍 by date %v", got)
	}
	// Without text every entry scores alike: newest first.
	if got := ids(search(t, b, Query{})); !slices.Equal(got, []int64{4, 2, 6, 1, 3, 5, 7}) {
		t.Errorf("browse %v", got)
	}
	r := search(t, b, Query{Sort: SortDate, From: 2, Size: 2})
	if got := ids(r); !slices.Equal(got, []int64{6, 1}) || r.Total != 7 {
		t.Errorf("page 2 %v of %d", got, r.Total)
	}
	if _, err := b.Search(context.Background(), Query{From: MaxWindow - 10, Size: 20}); !errors.Is(err, ErrPageTooDeep) {
		t.Errorf("deep page: %v", err)
	}
	if _, err := b.Search(context.Background(), Query{Sort: "name"}); !errors.Is(err, ErrUnknownSort) {
		t.Errorf("unknown sort: %v", err)
	}
	if r := search(t, b, Query{Size: 1000}); len(r.Hits) != 7 {
		t.Errorf("size capped wrongly: %d", len(r.Hits))
	}
}

func TestPutReplacesAndDeleteRemoves(t *testing.T) {
	for _, o := range openers {
		t.Run(o.name, func(t *testing.T) {
			b := loaded(t, o.open)
			ctx := context.Background()
			if err := b.Delete(ctx, 1, 999); err != nil {
				t.Fatal(err)
			}
			if got := sortedIDs(search(t, b, Query{Text: "户籍"})); !slices.Equal(got, []int64{3, 6}) {
				t.Errorf("after delete 户籍 found %v", got)
			}
			if n, _ := b.Count(); n != 6 {
				t.Errorf("count %d after delete", n)
			}
			d := catalog[1]
			d.Name, d.ShareType = "户籍登记补充信息", "unconditional"
			if err := b.Put(ctx, d); err != nil {
				t.Fatal(err)
			}
			if got := ids(search(t, b, Query{Text: "户籍登记"})); !slices.Equal(got, []int64{2}) {
				t.Errorf("replaced entry: 户籍登记 found %v", got)
			}
			if got := ids(search(t, b, Query{Text: "广告设置许可信息"})); len(got) != 0 {
				t.Errorf("the old name still matches: %v", got)
			}
			if got := facet(search(t, b, Query{}), FacetShareType); got["unconditional"] != 4 || got["conditional"] != 2 {
				t.Errorf("facets after replace %v", got)
			}
			if n, _ := b.Count(); n != 6 {
				t.Errorf("count %d after replace", n)
			}
		})
	}
}

func each(docs []Document) func(yield func(Document) error) error {
	return func(yield func(Document) error) error {
		for _, d := range docs {
			if err := yield(d); err != nil {
				return err
			}
		}
		return nil
	}
}

func TestReopenKeepsARebuiltIndex(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "search")
	b, err := OpenBleve(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !b.Fresh() {
		t.Fatal("a new index must be Fresh")
	}
	n, err := Rebuild(context.Background(), b, each(catalog), nil)
	if err != nil || n != len(catalog) {
		t.Fatalf("rebuild: %d, %v", n, err)
	}
	if b.Fresh() {
		t.Error("still Fresh after Rebuild")
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	b = mustOpen(t, dir)
	if b.Fresh() {
		t.Error("a rebuilt index must not be Fresh on reopen")
	}
	if n, _ := b.Count(); n != uint64(len(catalog)) {
		t.Errorf("reopened with %d documents", n)
	}
	if got := ids(search(t, b, Query{Text: "户籍登记"})); !slices.Equal(got, []int64{1}) {
		t.Errorf("reopened: 户籍登记 found %v", got)
	}
	// Changes after the rebuild survive too.
	if err := b.Delete(context.Background(), 7); err != nil {
		t.Fatal(err)
	}
	b.Close()
	b = mustOpen(t, dir)
	if n, _ := b.Count(); n != uint64(len(catalog)-1) || b.Fresh() {
		t.Errorf("reopened with %d documents, fresh %v", n, b.Fresh())
	}
}

func TestUnfinishedOrOldIndexIsRecreatedFresh(t *testing.T) {
	ctx := context.Background()
	t.Run("rebuild never completed", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "search")
		b := mustOpen(t, dir)
		if err := b.Put(ctx, catalog...); err != nil {
			t.Fatal(err)
		}
		b.Close()
		b = mustOpen(t, dir)
		if n, _ := b.Count(); !b.Fresh() || n != 0 {
			t.Errorf("fresh %v with %d documents, want fresh and empty", b.Fresh(), n)
		}
	})
	t.Run("older mapping version", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "search")
		b := mustOpen(t, dir)
		if _, err := Rebuild(ctx, b, each(catalog), nil); err != nil {
			t.Fatal(err)
		}
		if err := b.idx.SetInternal(versionKey, []byte("govshare-search-0")); err != nil {
			t.Fatal(err)
		}
		b.Close()
		b = mustOpen(t, dir)
		if n, _ := b.Count(); !b.Fresh() || n != 0 {
			t.Errorf("fresh %v with %d documents, want fresh and empty", b.Fresh(), n)
		}
		if r := search(t, b, Query{Text: "户籍"}); r.Total != 0 {
			t.Errorf("recreated index still finds %v", ids(r))
		}
	})
	t.Run("folder with other files is refused", func(t *testing.T) {
		dir := t.TempDir()
		keep := filepath.Join(dir, "govshare.db")
		if err := os.WriteFile(keep, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
		if b, err := OpenBleve(dir); err == nil {
			b.Close()
			t.Fatal("opened a folder holding other files as an index")
		}
		if _, err := os.Stat(keep); err != nil {
			t.Fatalf("the folder's files were touched: %v", err)
		}
	})
	t.Run("an empty catalog is a complete index", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "search")
		b := mustOpen(t, dir)
		if _, err := Rebuild(ctx, b, each(nil), nil); err != nil {
			t.Fatal(err)
		}
		b.Close()
		if b := mustOpen(t, dir); b.Fresh() {
			t.Error("a rebuild of nothing must still count as done")
		}
	})
	t.Run("memory is always fresh", func(t *testing.T) {
		if b := mustOpen(t, ""); !b.Fresh() {
			t.Error("in-memory index not Fresh")
		}
	})
}

func TestRebuildStreamsInBatches(t *testing.T) {
	b := mustOpen(t, "")
	const total = 2*RebuildBatch + 500
	var calls []int
	next := func(yield func(Document) error) error {
		for i := 1; i <= total; i++ {
			d := catalog[i%len(catalog)]
			d.ID = int64(i)
			if err := yield(d); err != nil {
				return err
			}
		}
		return nil
	}
	n, err := Rebuild(context.Background(), b, next, func(n int) { calls = append(calls, n) })
	if err != nil || n != total {
		t.Fatalf("rebuild %d, %v", n, err)
	}
	if want := []int{RebuildBatch, 2 * RebuildBatch, total}; !slices.Equal(calls, want) {
		t.Errorf("progress %v, want %v", calls, want)
	}
	if c, _ := b.Count(); c != total {
		t.Errorf("count %d", c)
	}

	// A failing source stops the rebuild and leaves the index Fresh.
	b2 := mustOpen(t, "")
	boom := errors.New("database gone")
	_, err = Rebuild(context.Background(), b2, func(yield func(Document) error) error {
		if err := yield(catalog[0]); err != nil {
			return err
		}
		return boom
	}, nil)
	if !errors.Is(err, boom) || !b2.Fresh() {
		t.Errorf("failed rebuild: %v, fresh %v", err, b2.Fresh())
	}

	// A cancelled context stops the source at its next document.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Rebuild(ctx, mustOpen(t, ""), each(catalog), nil); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled rebuild: %v", err)
	}
}
