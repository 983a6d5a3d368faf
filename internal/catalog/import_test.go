package catalog_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/xuri/excelize/v2"

	"govshare/internal/apperr"
	"govshare/internal/audit"
	"govshare/internal/catalog"
	"govshare/internal/policy"
	"govshare/internal/store"
	"govshare/internal/storetest"
)

// importFx is a small platform for the import tests: a city office, the
// police as provider, its consumer user.
type importFx struct {
	svc                   *catalog.Service
	log                   *audit.Log
	admin, police, viewer policy.Actor
}

func importSetup(tb testing.TB, db *store.DB) *importFx {
	tb.Helper()
	f := setup(tb, db, catalog.DefaultConfig())
	return &importFx{svc: f.svc, log: f.log, admin: f.admin, police: f.police, viewer: f.viewer}
}

// sample is the i-th of a varied set of valid contents, already in the
// normalized form Validate leaves.
func sample(i, items int) catalog.Content {
	c := catalog.Content{
		Name: fmt.Sprintf("户籍登记信息%d", i), ClassCode: []string{"101", "201", "3"}[i%3],
		Abstract:    fmt.Sprintf("第%d类户籍登记信息，含 <特殊> & \"引号\" 字符。", i),
		FormatClass: "database", FormatType: "postgresql", Keywords: []string{"户籍", fmt.Sprintf("人口%d", i)},
		OpenType: catalog.OpenClosed, UpdateCycle: []string{"daily", "realtime", "half_yearly", "other"}[i%4],
	}
	switch i % 3 {
	case 0:
		c.ShareType, c.ShareCondition = catalog.ShareConditional, "用于政务服务身份核验"
		c.ShareMethods = []catalog.ShareMethod{catalog.MethodAPI, catalog.MethodVerify}
	case 1:
		c.ShareType, c.ShareMethods = catalog.ShareUnconditional, []catalog.ShareMethod{catalog.MethodExchange, catalog.MethodFile}
		c.OpenType, c.OpenCondition = catalog.OpenOnRequest, "实名申请"
		c.FormatClass, c.FormatType, c.Keywords = "spreadsheet", "xlsx", nil
	case 2:
		c.ShareType, c.ShareBasis, c.Classified = catalog.ShareNone, "《中华人民共和国居民身份证法》第十九条", true
		c.RelatedCodes = []string{"101/000001", "201/000002"}
	}
	for j := range items {
		it := catalog.DataItem{Name: fmt.Sprintf("字段%d", j), MachineName: fmt.Sprintf("f%d", j), DataType: string(catalog.DataTypes[j%len(catalog.DataTypes)]), Length: 10 + j}
		switch {
		case j == 0:
			it.Name, it.MachineName, it.Key, it.Sensitivity, it.MaskRule, it.QualityRule = "公民身份号码", "citizen_id", true, "sensitive", "keep(6,4)", "required;citizen_id"
		case j%4 == 1:
			it.Description, it.Sensitivity, it.MaskRule = " 多行说明\n第二行 ", "public", "replace(*)"
		case j%4 == 2:
			it.Sensitivity, it.Key = "secret", true
		}
		c.Items = append(c.Items, it)
	}
	return c
}

func samples(n, items int) []catalog.Content {
	out := make([]catalog.Content, n)
	for i := range out {
		out[i] = sample(i, items)
	}
	return out
}

func workbook(t testing.TB, contents []catalog.Content) []byte {
	t.Helper()
	var b bytes.Buffer
	all := func(yield func(catalog.Content, error) bool) {
		for _, c := range contents {
			if !yield(c, nil) {
				return
			}
		}
	}
	if err := catalog.WriteXLSX(&b, all); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// edit opens a workbook, sets cells ("sheet!A1" → value) and saves it.
func edit(t *testing.T, file []byte, cells map[string]any) []byte {
	t.Helper()
	f, err := excelize.OpenReader(bytes.NewReader(file))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for at, v := range cells {
		sheet, ref, _ := strings.Cut(at, "!")
		if row, ok := v.([]any); ok {
			err = f.SetSheetRow(sheet, ref, &row)
		} else {
			err = f.SetCellValue(sheet, ref, v)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	var b bytes.Buffer
	if err := f.Write(&b); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func countEntries(t *testing.T, f *importFx) int {
	t.Helper()
	es, err := f.svc.Entries(context.Background(), f.admin, catalog.Filter{Limit: 500})
	if err != nil {
		t.Fatal(err)
	}
	return len(es)
}

type wantErr struct{ sheet, cell, code string }

// TestImportRefusesTheWholeFileAndNamesEveryCell plants twenty problems of
// different kinds across both sheets and expects exactly those twenty,
// each at its cell, and nothing written.
func TestImportRefusesTheWholeFileAndNamesEveryCell(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		f := importSetup(t, db)
		ctx := context.Background()
		// Five resources of three items: resource k has items on rows 3k-1 … 3k+1.
		contents := samples(5, 3)
		for i := range contents {
			contents[i].ShareType, contents[i].ShareCondition, contents[i].ShareBasis, contents[i].Classified = catalog.ShareConditional, "用于核验", "", false
			contents[i].ShareMethods = []catalog.ShareMethod{catalog.MethodAPI}
			contents[i].OpenType, contents[i].OpenCondition, contents[i].RelatedCodes = catalog.OpenClosed, "", nil
		}
		good := workbook(t, contents)
		if res, err := f.svc.ImportXLSX(ctx, f.police, bytes.NewReader(good), nil); err != nil || res.Entries != 5 {
			t.Fatalf("the file before editing must be good: %v %+v", err, res.Errors)
		}
		for _, q := range []string{"DELETE FROM entry_events", "DELETE FROM entries"} {
			if _, err := db.Exec(ctx, q); err != nil {
				t.Fatal(err)
			}
		}
		E, I := catalog.SheetEntries+"!", catalog.SheetItems+"!"
		bad := edit(t, good, map[string]any{
			E + "B2": "", E + "C2": "999", E + "E2": "纸质", // three in one row
			E + "F3": "oracle", E + "H3": "部分共享", // resource 2 is a spreadsheet
			E + "I4": "", E + "K4": "接口；传真", E + "L4": "依申请开放",
			E + "N5": "每小时", E + "O5": "101-000001", E + "P5": "可能",
			E + "A7": []any{2, "重复序号的资源", "101", "摘要", "数据库", "oracle", "", "无条件共享", "", "", "接口", "不予开放", "", "每日"},
			E + "A8": []any{9, "没有信息项的资源", "101", "摘要", "数据库", "oracle", "", "无条件共享", "", "", "接口", "不予开放", "", "每日"},
			I + "C2": "CitizenID", I + "D3": "X", I + "E4": "长", I + "H6": "绝密", I + "I7": "keep(first)",
			I + "C10": "f0", // resource 3's first item is citizen_id; f0 again below
			I + "C8":  "f0",
			I + "A17": []any{42, "孤儿信息项", "orphan", "C", 10},
		})
		res, err := f.svc.ImportXLSX(ctx, f.police, bytes.NewReader(bad), nil)
		if !errors.Is(err, catalog.ErrImportRejected) {
			t.Fatalf("want rejection, got %v", err)
		}
		if ae, _ := apperr.As(err); ae.Status != 422 || ae.Code != "catalog.import_rejected" {
			t.Fatalf("rejection: %+v", ae)
		}
		want := []wantErr{
			{catalog.SheetEntries, "B2", "catalog.name_invalid"},
			{catalog.SheetEntries, "C2", "catalog.class_unknown"},
			{catalog.SheetEntries, "E2", "catalog.format_class_invalid"},
			{catalog.SheetEntries, "F3", "catalog.format_type_invalid"},
			{catalog.SheetEntries, "H3", "catalog.share_type_invalid"},
			{catalog.SheetEntries, "I4", "catalog.share_condition_required"},
			{catalog.SheetEntries, "K4", "catalog.share_method_invalid"},
			{catalog.SheetEntries, "M4", "catalog.open_condition_required"},
			{catalog.SheetEntries, "N5", "catalog.update_cycle_invalid"},
			{catalog.SheetEntries, "O5", "catalog.related_code_invalid"},
			{catalog.SheetEntries, "P5", "catalog.import_yes_no_invalid"},
			{catalog.SheetEntries, "A7", "catalog.import_ref_duplicate"},
			{catalog.SheetEntries, "A8", "catalog.import_items_missing"},
			{catalog.SheetItems, "C2", "catalog.item_machine_name_invalid"},
			{catalog.SheetItems, "D3", "catalog.item_type_invalid"},
			{catalog.SheetItems, "E4", "catalog.item_length_invalid"},
			{catalog.SheetItems, "H6", "catalog.item_sensitivity_invalid"},
			{catalog.SheetItems, "I7", "catalog.item_mask_rule_invalid"},
			{catalog.SheetItems, "C10", "catalog.item_duplicate"},
			{catalog.SheetItems, "A17", "catalog.import_ref_unknown"},
		}
		var got []wantErr
		for _, e := range res.Errors {
			got = append(got, wantErr{e.Sheet, fmt.Sprintf("%s%d", e.Column, e.Row), e.Code})
			if e.MessageZH == "" || e.MessageEN == "" || e.Header == "" {
				t.Errorf("incomplete error: %+v", e)
			}
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("errors:\n got %v\nwant %v", got, want)
		}
		byCell := map[string]catalog.ImportError{}
		for _, e := range res.Errors {
			byCell[e.Sheet+"!"+e.Column+fmt.Sprint(e.Row)] = e
		}
		if e := byCell[E+"C2"]; e.Value != "999" || e.Header != "信息资源分类代码(class_code)" {
			t.Errorf("value and header: %+v", e)
		}
		if e := byCell[E+"A7"]; !strings.Contains(e.MessageZH, "第3行") {
			t.Errorf("a duplicate names the first row: %+v", e)
		}
		if e := byCell[I+"E4"]; e.Value != "长" {
			t.Errorf("item value: %+v", e)
		}
		if n := countEntries(t, f); n != 0 {
			t.Fatalf("a refused file wrote %d entries", n)
		}

		// The error report marks those cells and lists the problems.
		var report bytes.Buffer
		if err := catalog.WriteErrorReport(&report, bytes.NewReader(bad), res.Errors); err != nil {
			t.Fatal(err)
		}
		checkErrorReport(t, report.Bytes(), res.Errors)
	})
}

func checkErrorReport(t *testing.T, file []byte, errs []catalog.ImportError) {
	t.Helper()
	x, err := excelize.OpenReader(bytes.NewReader(file))
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	fill := func(sheet, ref string) string {
		id, err := x.GetCellStyle(sheet, ref)
		if err != nil {
			t.Fatal(err)
		}
		st, err := x.GetStyle(id)
		if err != nil || st == nil || len(st.Fill.Color) == 0 {
			return ""
		}
		return st.Fill.Color[0]
	}
	comments := map[string]string{}
	for _, sheet := range []string{catalog.SheetEntries, catalog.SheetItems} {
		cs, err := x.GetComments(sheet)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range cs {
			text := c.Text
			for _, p := range c.Paragraph {
				text += p.Text
			}
			comments[sheet+"!"+c.Cell] = text
		}
	}
	for _, e := range errs {
		ref := fmt.Sprintf("%s%d", e.Column, e.Row)
		if got := fill(e.Sheet, ref); !strings.EqualFold(got, "FFC7CE") {
			t.Errorf("%s!%s not filled red: %q", e.Sheet, ref, got)
		}
		if !strings.Contains(comments[e.Sheet+"!"+ref], e.MessageZH) {
			t.Errorf("%s!%s comment %q lacks %q", e.Sheet, ref, comments[e.Sheet+"!"+ref], e.MessageZH)
		}
	}
	if got := fill(catalog.SheetEntries, "D2"); got != "" {
		t.Errorf("a good cell is marked: %q", got)
	}
	rows, err := x.GetRows(catalog.SheetErrors)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != len(errs)+1 || rows[1][0] != errs[0].Sheet || rows[1][2] != errs[0].Column || rows[1][5] != errs[0].MessageZH {
		t.Errorf("error sheet: %d rows, first %v", len(rows), rows[1])
	}
	// The original data is still there to be fixed.
	if v, _ := x.GetCellValue(catalog.SheetEntries, "C2"); v != "999" {
		t.Errorf("report changed a value: %q", v)
	}
}

func TestImportValidFileImportsEveryEntry(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		f := importSetup(t, db)
		ctx := context.Background()
		contents := samples(250, 4)
		var calls []int
		res, err := f.svc.ImportXLSX(ctx, f.police, bytes.NewReader(workbook(t, contents)), func(done int) { calls = append(calls, done) })
		if err != nil {
			t.Fatalf("%v %+v", err, res.Errors)
		}
		if res.Entries != 250 || res.Items != 1000 || len(res.IDs) != 250 || len(res.Errors) != 0 {
			t.Fatalf("result: %d entries %d items %d ids", res.Entries, res.Items, len(res.IDs))
		}
		if !reflect.DeepEqual(calls, []int{100, 200, 250}) {
			t.Errorf("progress: %v", calls)
		}
		for i, id := range []int64{res.IDs[0], res.IDs[249]} {
			e, err := f.svc.Entry(ctx, f.police, id)
			if err != nil {
				t.Fatal(err)
			}
			if e.State != catalog.Draft || e.DeptID != f.police.DeptID || !reflect.DeepEqual(e.Draft, contents[i*249]) {
				t.Errorf("entry %d: %+v", id, e)
			}
		}
		events, err := f.log.List(ctx, audit.Filter{Action: "catalog.entry.import"})
		if err != nil || len(events) != 1 || !strings.Contains(events[0].Details, `"entries":250`) {
			t.Fatalf("audit: %+v %v", events, err)
		}
		var n int
		db.QueryRow(ctx, "SELECT COUNT(*) FROM entry_events WHERE action = 'import'").Scan(&n)
		if n != 250 {
			t.Errorf("%d import events", n)
		}
	})
}

// TestExportImportRoundTrip exports drafts and published entries (as their
// published version, not a pending change) and imports them back equal.
func TestExportImportRoundTrip(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		f := importSetup(t, db)
		ctx := context.Background()
		contents := samples(12, 9)
		res, err := f.svc.ImportJSON(ctx, f.police, contents)
		if err != nil {
			t.Fatalf("%v %+v", err, res.Errors)
		}
		// Publish the first three, then open a change of the first that is
		// not published: the export carries the published version.
		for _, id := range res.IDs[:3] {
			if _, err := f.svc.Submit(ctx, f.police, id); err != nil {
				t.Fatal(err)
			}
			if _, err := f.svc.Approve(ctx, f.admin, id); err != nil {
				t.Fatal(err)
			}
			if _, err := f.svc.Publish(ctx, f.admin, id); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := f.svc.OpenChange(ctx, f.police, res.IDs[0], "other", ""); err != nil {
			t.Fatal(err)
		}
		changed := sample(0, 9)
		changed.Abstract = "变更中、尚未发布的摘要"
		if _, err := f.svc.UpdateDraft(ctx, f.police, res.IDs[0], changed); err != nil {
			t.Fatal(err)
		}
		exported, err := f.svc.ExportJSON(ctx, f.police, catalog.ExportFilter{DeptID: f.police.DeptID})
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(exported, contents) {
			t.Fatalf("export is not what was registered (published version first):\n%+v\n%+v", exported[0], contents[0])
		}
		var file bytes.Buffer
		if err := f.svc.ExportXLSX(ctx, f.police, catalog.ExportFilter{DeptID: f.police.DeptID}, &file); err != nil {
			t.Fatal(err)
		}
		back, err := f.svc.ImportXLSX(ctx, f.police, &file, nil)
		if err != nil {
			t.Fatalf("%v %+v", err, back.Errors)
		}
		if len(back.IDs) != len(contents) {
			t.Fatalf("%d entries back", len(back.IDs))
		}
		for i, id := range back.IDs {
			e, err := f.svc.Entry(ctx, f.police, id)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(e.Draft, contents[i]) {
				t.Errorf("entry %d changed on the way:\n got %+v\nwant %+v", i, e.Draft, contents[i])
			}
		}
		// A consumer exports only what is published; chosen IDs keep their order.
		seen, err := f.svc.ExportJSON(ctx, f.viewer, catalog.ExportFilter{})
		if err != nil || len(seen) != 3 {
			t.Fatalf("consumer export: %d %v", len(seen), err)
		}
		picked, err := f.svc.ExportJSON(ctx, f.police, catalog.ExportFilter{IDs: []int64{res.IDs[5], res.IDs[1]}})
		if err != nil || len(picked) != 2 || picked[0].Name != contents[5].Name || picked[1].Name != contents[1].Name {
			t.Fatalf("export by IDs: %v %v", picked, err)
		}
		if _, err := f.svc.ExportJSON(ctx, f.viewer, catalog.ExportFilter{IDs: []int64{res.IDs[5]}}); !errors.Is(err, apperr.ErrDenied) {
			t.Fatalf("a consumer exported a draft: %v", err)
		}
	})
}

func TestImportDeniedToConsumers(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		f := importSetup(t, db)
		ctx := context.Background()
		_, err := f.svc.ImportXLSX(ctx, f.viewer, bytes.NewReader(workbook(t, samples(2, 2))), nil)
		if !errors.Is(err, apperr.ErrDenied) {
			t.Fatalf("consumer imported: %v", err)
		}
		_, err = f.svc.ImportJSON(ctx, f.viewer, samples(2, 2))
		if !errors.Is(err, apperr.ErrDenied) {
			t.Fatalf("consumer imported JSON: %v", err)
		}
		if n := countEntries(t, f); n != 0 {
			t.Fatalf("%d entries", n)
		}
		events, _ := f.log.List(ctx, audit.Filter{Result: audit.ResultDenied, Action: "catalog.edit"})
		if len(events) != 2 {
			t.Errorf("refusals audited: %d", len(events))
		}
	})
}

func TestImportJSONNamesIndexAndField(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		f := importSetup(t, db)
		ctx := context.Background()
		contents := samples(3, 3)
		contents[1].Items[2].Length = 0
		contents[1].ShareType, contents[1].ShareCondition = catalog.ShareConditional, ""
		contents[2].ClassCode = "777"
		before := contents[1].Items[2]
		res, err := f.svc.ImportJSON(ctx, f.police, contents)
		if !errors.Is(err, catalog.ErrImportRejected) {
			t.Fatalf("want rejection: %v", err)
		}
		var got []string
		for _, e := range res.Errors {
			got = append(got, fmt.Sprintf("%s %d %s %s", e.Sheet, e.Row, e.Column, e.Code))
		}
		want := []string{
			"json 2 items[2].length catalog.item_length_invalid",
			"json 2 share_condition catalog.share_condition_required",
			"json 3 class_code catalog.class_unknown",
		}
		slices.Sort(got)
		if !reflect.DeepEqual(got, want) {
			t.Errorf("errors:\n got %v\nwant %v", got, want)
		}
		if contents[1].Items[2] != before {
			t.Error("ImportJSON changed the caller's contents")
		}
		if n := countEntries(t, f); n != 0 {
			t.Fatalf("%d entries", n)
		}
	})
}

func TestImportFindsColumnsByHeader(t *testing.T) {
	f := importSetup(t, storetest.OpenSQLite(t))
	ctx := context.Background()
	// A sheet without the required 摘要 column is refused at its header.
	file := edit(t, workbook(t, samples(1, 1)), map[string]any{catalog.SheetEntries + "!D1": "备注"})
	res, err := f.svc.ImportXLSX(ctx, f.police, bytes.NewReader(file), nil)
	if !errors.Is(err, catalog.ErrImportRejected) || len(res.Errors) != 1 || res.Errors[0].Code != "catalog.import_column_missing" || res.Errors[0].Row != 1 {
		t.Fatalf("%v %+v", err, res.Errors)
	}
	// Not a workbook at all.
	if _, err := f.svc.ImportXLSX(ctx, f.police, strings.NewReader("name,abstract\n"), nil); !errors.Is(err, catalog.ErrImportFile) {
		t.Fatalf("csv: %v", err)
	}
	// The blank template is refused as empty, not as broken.
	var tpl bytes.Buffer
	if err := catalog.WriteTemplate(&tpl); err != nil {
		t.Fatal(err)
	}
	res, err = f.svc.ImportXLSX(ctx, f.police, &tpl, nil)
	if !errors.Is(err, catalog.ErrImportRejected) || len(res.Errors) != 1 || res.Errors[0].Code != "catalog.import_empty" {
		t.Fatalf("empty template: %v %+v", err, res.Errors)
	}
}

func TestTemplateLayout(t *testing.T) {
	var b bytes.Buffer
	if err := catalog.WriteTemplate(&b); err != nil {
		t.Fatal(err)
	}
	x, err := excelize.OpenReader(&b)
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	if got := x.GetSheetList(); !reflect.DeepEqual(got, []string{catalog.SheetEntries, catalog.SheetItems, catalog.SheetHelp}) {
		t.Fatalf("sheets: %v", got)
	}
	head, _ := x.GetRows(catalog.SheetEntries)
	if len(head) != 1 || head[0][0] != "序号(ref)" || head[0][1] != "信息资源名称(name)" || head[0][15] != "是否涉密(classified)" {
		t.Fatalf("entries header: %v", head)
	}
	items, _ := x.GetRows(catalog.SheetItems)
	if items[0][0] != "所属序号(ref)" || items[0][2] != "字段名(machine_name)" || len(items[0]) != 10 {
		t.Fatalf("items header: %v", items)
	}
	id, _ := x.GetCellStyle(catalog.SheetEntries, "B1")
	st, _ := x.GetStyle(id)
	if st == nil || st.Font == nil || !st.Font.Bold || len(st.Fill.Color) == 0 {
		t.Errorf("header style: %+v", st)
	}
	dvs, _ := x.GetDataValidations(catalog.SheetEntries)
	lists := map[string]string{}
	for _, dv := range dvs {
		lists[dv.Sqref[:1]] = dv.Formula1
	}
	if !strings.Contains(lists["H"], "有条件共享") || !strings.Contains(lists["N"], "每半年") || !strings.Contains(lists["P"], "是") {
		t.Errorf("drop-downs: %v", lists)
	}
	help, _ := x.GetRows(catalog.SheetHelp)
	text := fmt.Sprint(help)
	for _, s := range []string{"共享方式(share_methods)", "比对核验", "脱敏规则(mask_rule)", "依申请开放"} {
		if !strings.Contains(text, s) {
			t.Errorf("instructions lack %q", s)
		}
	}
}

// BenchmarkImportXLSX10k imports 10,000 resources of 10 data items each
// into SQLite, reporting the rate and the peak heap in use above the
// heap before the import (the file itself is counted before).
//
//	go test -run '^$' -bench ImportXLSX10k -benchtime 1x ./internal/catalog
func BenchmarkImportXLSX10k(b *testing.B) {
	const n, items = 10000, 10
	file := workbook(b, samples(n, items))
	for b.Loop() {
		b.StopTimer()
		f := importSetup(b, storetest.OpenSQLite(b))
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		base := ms.HeapInuse
		var peak atomic.Uint64
		stop := make(chan struct{})
		done := make(chan struct{})
		go func() {
			defer close(done)
			var m runtime.MemStats
			tick := time.NewTicker(5 * time.Millisecond)
			defer tick.Stop()
			for {
				runtime.ReadMemStats(&m)
				if m.HeapInuse > peak.Load() {
					peak.Store(m.HeapInuse)
				}
				select {
				case <-stop:
					return
				case <-tick.C:
				}
			}
		}()
		b.StartTimer()
		start := time.Now()
		res, err := f.svc.ImportXLSX(context.Background(), f.police, bytes.NewReader(file), nil)
		elapsed := time.Since(start)
		b.StopTimer()
		close(stop)
		<-done
		if err != nil || res.Entries != n {
			b.Fatalf("%v %d %+v", err, res.Entries, res.Errors[:min(len(res.Errors), 3)])
		}
		b.ReportMetric(float64(n)/elapsed.Seconds(), "entries/s")
		b.ReportMetric(float64(peak.Load()-base)/(1<<20), "peak-heap-MB")
		b.ReportMetric(float64(len(file))/(1<<20), "file-MB")
		b.StartTimer()
	}
}
