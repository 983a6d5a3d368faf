package resource_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"govshare/internal/apperr"
	"govshare/internal/audit"
	"govshare/internal/calendar"
	"govshare/internal/catalog"
	"govshare/internal/checkdigit"
	"govshare/internal/mask"
	"govshare/internal/policy"
	"govshare/internal/quality"
	"govshare/internal/resource"
	"govshare/internal/store"
	"govshare/internal/storetest"
	"govshare/internal/testfix"
)

// refs is a small fixture of reference data: a few region codes (440524
// is retired) and the GB/T 2261.1 sex codes.
type refs struct{}

func (refs) RegionKnown(code string) bool {
	switch code {
	case "110105", "350102", "350103", "440524":
		return true
	}
	return false
}
func (refs) CodeKnown(table, code string) bool {
	return table == "GB/T 2261.1" && strings.Contains(" 0 1 2 9 ", " "+code+" ")
}
func (refs) HasTable(table string) bool { return table == "GB/T 2261.1" }

type fx struct {
	svc                   *resource.Service
	cat                   *catalog.Service
	log                   *audit.Log
	admin, gaj, mzj, user policy.Actor
	entry                 catalog.Entry
	clock                 *time.Time
}

func people() catalog.Content {
	return catalog.Content{
		Name: "户籍登记信息", ClassCode: "101", Abstract: "本市户籍人口的户籍登记信息。", FormatClass: "database", FormatType: "postgresql",
		Items: []catalog.DataItem{
			{Name: "公民身份号码", MachineName: "citizen_id", DataType: "C", Length: 18, Key: true, MaskRule: "keep(6,4)", QualityRule: "required;citizen_id"},
			{Name: "姓名", MachineName: "name", DataType: "C", Length: 20, MaskRule: "surname", QualityRule: "required"},
			{Name: "性别", MachineName: "sex", DataType: "C", Length: 1, QualityRule: "code:GB/T 2261.1"},
			{Name: "出生日期", MachineName: "birth_date", DataType: "D", Length: 8, QualityRule: "id_birth:citizen_id"},
			{Name: "行政区划", MachineName: "region_code", DataType: "C", Length: 6, QualityRule: "region"},
			{Name: "电话", MachineName: "phone", DataType: "C", Length: 20, QualityRule: "unique"},
		},
		ShareType: catalog.ShareConditional, ShareCondition: "用于身份核验", ShareMethods: []catalog.ShareMethod{catalog.MethodAPI},
		OpenType: catalog.OpenClosed, UpdateCycle: "daily",
	}
}

func setup(t testing.TB, db *store.DB) *fx {
	t.Helper()
	ctx := context.Background()
	tc := testfix.New(t, db)
	log := tc.Audit
	dept, user := tc.Dept, tc.User
	city, gaj, mzj := dept("市政务信息办", 1), dept("市公安局", 2), dept("市民政局", 3)
	now := time.Date(2026, 11, 20, 2, 0, 0, 0, time.UTC)
	f := &fx{log: log, clock: &now, admin: user("admin", city, policy.PlatformAdmin), gaj: user("gaj.admin", gaj, policy.DeptAdmin),
		mzj: user("mzj.admin", mzj, policy.DeptAdmin), user: user("mzj.user", mzj, policy.Consumer)}
	f.cat = catalog.NewService(db, log, calendar.Weekdays{}, catalog.DefaultConfig())
	if err := f.cat.EnsureDefaultTree(ctx); err != nil {
		t.Fatal(err)
	}
	f.entry = f.publish(t, people())
	f.svc = resource.New(db, log, f.cat, func(context.Context) (quality.Reference, error) { return refs{}, nil }, nil)
	f.svc.SetClock(func() time.Time { return *f.clock })
	return f
}

func (f *fx) publish(t testing.TB, c catalog.Content) catalog.Entry {
	t.Helper()
	ctx := context.Background()
	e, err := f.cat.CreateEntry(ctx, f.gaj, c)
	if err == nil {
		_, err = f.cat.Submit(ctx, f.gaj, e.ID)
	}
	if err == nil {
		_, err = f.cat.Approve(ctx, f.admin, e.ID)
	}
	if err == nil {
		e, err = f.cat.Publish(ctx, f.admin, e.ID)
	}
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func id(region string, y, m, d, seq int) string {
	return checkdigit.SyntheticCitizenID(region, time.Date(y, time.Month(m), d, 0, 0, 0, 0, time.UTC), seq)
}

func csvRows(t *testing.T, s string) resource.Rows {
	t.Helper()
	r, err := resource.CSVRows(strings.NewReader(s))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	if ae, ok := apperr.As(err); !ok || ae.Code != code {
		t.Fatalf("want %s, got %v", code, err)
	}
}

func TestUploadQualityQuarantineAndHistory(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		f := setup(t, db)
		ctx := context.Background()
		if _, err := f.svc.Mount(ctx, f.mzj, f.entry.ID); !errors.Is(err, apperr.ErrDenied) {
			t.Fatalf("another department mounted: %v", err)
		}
		r, err := f.svc.Mount(ctx, f.gaj, f.entry.ID)
		if err != nil {
			t.Fatal(err)
		}
		code := r.Code
		a, b, c, old := id("110105", 1980, 1, 2, 11), id("350102", 1990, 5, 6, 22), id("350103", 2001, 12, 31, 31), id("440524", 1960, 3, 4, 41)
		bad := a[:17] + string("0123456789X"[(strings.IndexByte("0123456789X", a[17])+1)%11])
		file := "公民身份号码(citizen_id),姓名(name),性别(sex),出生日期(birth_date),行政区划(region_code),电话(phone)\n" +
			a + ",张三,1,1980-01-02,350102,13800000001\n" + // good
			b + ",李四,2,19900506,350103,13800000002\n" + // good, compact date
			old + ",王五,1,1960-03-04,440524,13800000003\n" + // good: a retired region code
			bad + ",赵六,1,1980-01-02,350102,13800000004\n" + // wrong check character
			c + ",,1,2001-12-31,350102,13800000005\n" + // name missing
			c + ",孙七,3,2001-12-31,350102,13800000006\n" + // sex code unknown
			c + ",孙七,1,2001-12-30,350102,13800000007\n" + // birth date disagrees with the ID
			c + ",孙七,1,2001-12-31,999999,13800000008\n" + // region unknown
			c + ",孙七,1,2001-13-31,350102,13800000009\n" + // impossible date
			a + ",张三,1,1980-01-02,350102,13800000010\n" + // key repeated in the file
			id("350103", 2002, 1, 1, 51) + ",周八,2,2002-01-01,350103,13800000001\n" // phone repeats row 1 (unique)
		batch, err := f.svc.Submit(ctx, f.gaj, code, resource.SubmitOptions{Source: resource.SourceUpload, Detail: "people.csv", ClientBatchID: "b-1"}, csvRows(t, file))
		if err != nil {
			t.Fatal(err)
		}
		if batch.State != "applied" || batch.RowsTotal != 11 || batch.Inserted != 3 || batch.Quarantined != 8 {
			t.Fatalf("batch: %+v", batch)
		}
		rules := map[string]int64{}
		var sum int64
		for _, rc := range batch.Report.Rules {
			rules[rc.Item+"/"+rc.Rule] += rc.Count
			sum += rc.Count
		}
		for _, want := range []string{"citizen_id/citizen_id", "name/required", "sex/code", "birth_date/id_birth", "region_code/region", "birth_date/type", "citizen_id/duplicate_key", "phone/unique"} {
			if rules[want] != 1 {
				t.Errorf("report %s = %d (%v)", want, rules[want], rules)
			}
		}
		if sum != batch.Quarantined {
			t.Errorf("report counts %d, quarantined %d", sum, batch.Quarantined)
		}
		q, err := f.svc.Quarantine(ctx, f.gaj, code, "", 0)
		if err != nil || len(q) != 8 {
			t.Fatalf("quarantine: %d %v", len(q), err)
		}
		// The same batch id again is applied once.
		again, err := f.svc.Submit(ctx, f.gaj, code, resource.SubmitOptions{ClientBatchID: "b-1"}, csvRows(t, file))
		if err != nil || !again.Replayed || again.ID != batch.ID {
			t.Fatalf("replay: %+v %v", again, err)
		}
		r, _ = f.svc.ByCode(ctx, code)
		if r.RecordCount != 3 || r.ReceivedCount != 11 || r.PassedCount != 3 {
			t.Fatalf("resource: %+v", r)
		}

		// An update and a delete by key, through the API's JSON lines.
		*f.clock = f.clock.Add(24 * time.Hour)
		jl := fmt.Sprintf(`{"citizen_id":"%s","name":"张三丰","sex":"1","birth_date":"1980-01-02","region_code":"350102","phone":"13800000001"}
{"citizen_id":"%s","_op":"delete"}
{"citizen_id":"%s","name":"李四","sex":"2","birth_date":"1990-05-06","region_code":"350103","phone":"13800000002"}
`, a, old, b)
		upd, err := f.svc.Submit(ctx, f.gaj, code, resource.SubmitOptions{Source: resource.SourceAPI, ClientBatchID: "b-2"}, resource.JSONRows(strings.NewReader(jl), r.Visible()))
		if err != nil || upd.Updated != 1 || upd.Deleted != 1 || upd.Unchanged != 1 || upd.Inserted != 0 {
			t.Fatalf("update batch: %+v %v", upd, err)
		}
		vs, _, err := f.svc.History(ctx, f.gaj, code, []string{a}, time.Time{})
		if err != nil || len(vs) != 2 || vs[0].Op != "insert" || vs[1].Op != "update" || vs[1].Values[1] != "张三丰" || vs[1].Batch != upd.ID {
			t.Fatalf("history: %+v %v", vs, err)
		}
		// What did the record say the day before?
		vs, _, _ = f.svc.History(ctx, f.gaj, code, []string{a}, f.clock.Add(-time.Hour))
		if len(vs) != 1 || vs[0].Values[1] != "张三" {
			t.Fatalf("as of yesterday: %+v", vs)
		}
		vs, _, _ = f.svc.History(ctx, f.gaj, code, []string{old}, time.Time{})
		if len(vs) != 2 || vs[1].Op != "delete" || vs[1].Values[1] != "王五" {
			t.Fatalf("the delete is recorded: %+v", vs)
		}
		if _, _, err := f.svc.History(ctx, f.mzj, code, []string{a}, time.Time{}); !errors.Is(err, apperr.ErrDenied) {
			t.Fatalf("another department read the history: %v", err)
		}
		r, _ = f.svc.ByCode(ctx, code)
		if r.RecordCount != 2 {
			t.Fatalf("records after delete: %d", r.RecordCount)
		}

		// The quarantine: fix one record and resubmit it, discard another.
		var nameMissing, sexBad resource.Quarantined
		for _, x := range q {
			switch x.Violations[0].Item + "/" + x.Violations[0].Rule {
			case "name/required":
				nameMissing = x
			case "sex/code":
				sexBad = x
			}
		}
		fixed := append([]string(nil), nameMissing.Values...)
		if _, viol, err := f.svc.Resubmit(ctx, f.gaj, code, nameMissing.ID, fixed); err == nil || len(viol) == 0 {
			t.Fatalf("an unfixed record was accepted: %v", err)
		}
		fixed[1] = "孙七"
		if _, _, err := f.svc.Resubmit(ctx, f.mzj, code, nameMissing.ID, fixed); !errors.Is(err, apperr.ErrDenied) {
			t.Fatalf("another department resubmitted: %v", err)
		}
		rb, _, err := f.svc.Resubmit(ctx, f.gaj, code, nameMissing.ID, fixed)
		if err != nil || rb.Inserted != 1 || rb.Source != resource.SourceQuarantine {
			t.Fatalf("resubmit: %+v %v", rb, err)
		}
		wantCode(t, f.svc.Discard(ctx, f.gaj, code, sexBad.ID, " "), "resource.discard_reason_required")
		if err := f.svc.Discard(ctx, f.gaj, code, sexBad.ID, "性别代码录入错误，已在原系统更正"); err != nil {
			t.Fatal(err)
		}
		wantCode(t, f.svc.Discard(ctx, f.gaj, code, sexBad.ID, "again"), "resource.quarantine_state")
		if open, _ := f.svc.Quarantine(ctx, f.gaj, code, "", 0); len(open) != 6 {
			t.Fatalf("open quarantine after fix and discard: %d", len(open))
		}

		// The preview is masked and audited; apps may not preview.
		p, err := f.svc.Preview(ctx, f.user, code, 10, mask.New([]byte("k")))
		if err != nil || len(p.Records) != 3 {
			t.Fatalf("preview: %+v %v", p, err)
		}
		for _, rec := range p.Records {
			if strings.Contains(strings.Join(rec.Values, ","), a) || !strings.Contains(rec.Values[0], "****") || len([]rune(rec.Values[1])) < 2 || !strings.HasSuffix(rec.Values[1], "*") {
				t.Fatalf("preview not masked: %v", rec.Values)
			}
		}
		app := f.user
		app.App = "app_x"
		if _, err := f.svc.Preview(ctx, app, code, 10, mask.New(nil)); !errors.Is(err, apperr.ErrDenied) {
			t.Fatalf("an app previewed: %v", err)
		}
	})
}

func TestBatchOverTheErrorLimitChangesNothing(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		f := setup(t, db)
		ctx := context.Background()
		r, err := f.svc.Mount(ctx, f.gaj, f.entry.ID)
		if err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		b.WriteString("citizen_id,name,sex\n")
		for i := range 30 {
			name := "某人"
			if i%3 == 0 {
				name = "" // 10 bad rows
			}
			fmt.Fprintf(&b, "%s,%s,1\n", id("350102", 1970, 1, 1+i%28, i), name)
		}
		_, err = f.svc.Submit(ctx, f.gaj, r.Code, resource.SubmitOptions{ClientBatchID: "x", MaxErrors: 5}, csvRows(t, b.String()))
		wantCode(t, err, "resource.too_many_errors")
		r, _ = f.svc.ByCode(ctx, r.Code)
		if r.RecordCount != 0 {
			t.Fatalf("a refused batch stored %d records", r.RecordCount)
		}
		if q, _ := f.svc.Quarantine(ctx, f.gaj, r.Code, "", 0); len(q) != 0 {
			t.Fatalf("a refused batch left %d quarantined records", len(q))
		}
		bs, _ := f.svc.Batches(ctx, f.gaj, r.Code, 10)
		if len(bs) != 1 || bs[0].State != "failed" || bs[0].Quarantined != 10 || len(bs[0].Report.Rules) != 1 {
			t.Fatalf("failed batch: %+v", bs)
		}
		// The same id with a higher limit runs again and is applied.
		got, err := f.svc.Submit(ctx, f.gaj, r.Code, resource.SubmitOptions{ClientBatchID: "x", MaxErrors: 20}, csvRows(t, b.String()))
		if err != nil || got.State != "applied" || got.Inserted != 20 || got.ID != bs[0].ID {
			t.Fatalf("retry: %+v %v", got, err)
		}
		// Headers are checked before anything is read.
		_, err = f.svc.Submit(ctx, f.gaj, r.Code, resource.SubmitOptions{}, csvRows(t, "name,salary\n张三,1\n"))
		wantCode(t, err, "resource.header_invalid")
	})
}

func TestNewVersionEvolvesTheTable(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		f := setup(t, db)
		ctx := context.Background()
		r, err := f.svc.Mount(ctx, f.gaj, f.entry.ID)
		if err != nil {
			t.Fatal(err)
		}
		a := id("110105", 1980, 1, 2, 11)
		if _, err := f.svc.Submit(ctx, f.gaj, r.Code, resource.SubmitOptions{}, csvRows(t, "citizen_id,name,phone\n"+a+",张三,13800000001\n")); err != nil {
			t.Fatal(err)
		}
		// RecordVersion 2 drops the phone and adds an address.
		if _, err := f.cat.OpenChange(ctx, f.gaj, f.entry.ID, "functions", "职能调整"); err != nil {
			t.Fatal(err)
		}
		c := people()
		c.Items = append(c.Items[:5], catalog.DataItem{Name: "户籍地址", MachineName: "address", DataType: "C", Length: 200, MaskRule: "district"})
		if _, err := f.cat.UpdateDraft(ctx, f.gaj, f.entry.ID, c); err != nil {
			t.Fatal(err)
		}
		for _, step := range []func(context.Context, policy.Actor, int64) (catalog.Entry, error){f.cat.Submit} {
			if _, err := step(ctx, f.gaj, f.entry.ID); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := f.cat.Approve(ctx, f.admin, f.entry.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := f.cat.Publish(ctx, f.admin, f.entry.ID); err != nil {
			t.Fatal(err)
		}
		if err := f.svc.Follow(ctx, f.entry.ID); err != nil {
			t.Fatal(err)
		}
		r, _ = f.svc.ByCode(ctx, r.Code)
		var names []string
		for _, c := range r.Visible() {
			names = append(names, c.MachineName)
		}
		if r.EntryVersion != 2 || strings.Join(names, ",") != "citizen_id,name,sex,birth_date,region_code,address" || len(r.Columns) != 7 {
			t.Fatalf("evolved: v%d %v (%d columns)", r.EntryVersion, names, len(r.Columns))
		}
		got, err := f.svc.Submit(ctx, f.gaj, r.Code, resource.SubmitOptions{}, csvRows(t, "citizen_id,name,address\n"+a+",张三,福建省福州市鼓楼区五四路1号\n"))
		if err != nil || got.Updated != 1 {
			t.Fatalf("after evolving: %+v %v", got, err)
		}
		// The hidden phone kept its value.
		var phone string
		if err := db.QueryRow(ctx, `SELECT "phone" FROM `+r.Table+` WHERE "citizen_id" = ?`, a).Scan(&phone); err != nil || phone != "13800000001" {
			t.Fatalf("hidden column: %q %v", phone, err)
		}
	})
}

func TestTemplates(t *testing.T) {
	f := setup(t, storetest.OpenSQLite(t))
	ctx := context.Background()
	r, err := f.svc.Mount(ctx, f.gaj, f.entry.ID)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := f.svc.WriteTemplateXLSX(ctx, r.Code, &buf); err != nil {
		t.Fatal(err)
	}
	rows, done, err := resource.XLSXRows(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	defer done()
	if h := rows.Header(); len(h) != 6 || h[0] != "公民身份号码(citizen_id)" {
		t.Fatalf("xlsx header %v", h)
	}
	buf.Reset()
	if err := f.svc.WriteTemplateCSV(ctx, r.Code, &buf); err != nil {
		t.Fatal(err)
	}
	// The template, filled, loads.
	a := id("110105", 1980, 1, 2, 11)
	got, err := f.svc.Submit(ctx, f.gaj, r.Code, resource.SubmitOptions{}, csvRows(t, buf.String()+a+",张三,1,1980-01-02,110105,\n"))
	if err != nil || got.Inserted != 1 {
		t.Fatalf("filled template: %+v %v", got, err)
	}
}

func TestTimelinessAndZeroReports(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		f := setup(t, db)
		ctx := context.Background()
		r, err := f.svc.Mount(ctx, f.gaj, f.entry.ID) // daily, mounted Friday 2026-11-20 10:00 CST
		if err != nil {
			t.Fatal(err)
		}
		if tl := r.Timeliness(*f.clock); tl.State != "timely" || tl.Due.In(calendar.CST).Format("2006-01-02") != "2026-11-22" {
			t.Fatalf("after mounting: %+v", tl)
		}
		if tl := r.Timeliness(f.clock.Add(26 * time.Hour)); tl.State != "due" {
			t.Fatalf("next day: %+v", tl)
		}
		*f.clock = f.clock.Add(50 * time.Hour) // Sunday noon: a day with no data and no zero report
		if tl := r.Timeliness(*f.clock); tl.State != "overdue" {
			t.Fatalf("two days later: %+v", tl)
		}
		items, _ := f.svc.Todos(ctx, f.gaj)
		if len(items) != 1 || items[0].Kind != "resource.update" {
			t.Fatalf("data administrator's to-do: %+v", items)
		}
		if items, _ := f.svc.Todos(ctx, f.admin); len(items) != 1 {
			t.Fatalf("platform administrator's to-do: %+v", items)
		}
		if _, err := f.svc.ZeroReport(ctx, f.mzj, r.Code, ""); !errors.Is(err, apperr.ErrDenied) {
			t.Fatalf("another department zero-reported: %v", err)
		}
		r, err = f.svc.ZeroReport(ctx, f.gaj, r.Code, "本日无变化")
		if err != nil || r.Timeliness(*f.clock).State != "timely" {
			t.Fatalf("after a zero report: %+v %v", r.Timeliness(*f.clock), err)
		}
		if items, _ := f.svc.Todos(ctx, f.gaj); len(items) != 0 {
			t.Fatalf("to-do after the zero report: %+v", items)
		}
		ds, _ := f.svc.Deadlines(ctx)
		if len(ds) != 1 || ds[0].ObjectID != r.Code {
			t.Fatalf("deadlines: %+v", ds)
		}
		vol, err := f.svc.Volume(ctx, r.Code, 7)
		if err != nil || len(vol) != 7 {
			t.Fatalf("volume: %+v %v", vol, err)
		}
	})
}

// TestKeysAndUniqueItemsAreBytewise: text keys and unique items compare
// and sort by their bytes on both backends, whatever PostgreSQL's
// collation, so the exchange pages through keys in one order everywhere.
func TestKeysAndUniqueItemsAreBytewise(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		f := setup(t, db)
		ctx := context.Background()
		c := people()
		c.Name = "编码样例"
		c.Items = []catalog.DataItem{
			{Name: "编码", MachineName: "code", DataType: "C", Length: 10, Key: true},
			{Name: "名称", MachineName: "label", DataType: "C", Length: 20, QualityRule: "unique"},
			{Name: "说明", MachineName: "note", DataType: "C", Length: 20},
		}
		r, err := f.svc.Mount(ctx, f.gaj, f.publish(t, c).ID)
		if err != nil {
			t.Fatal(err)
		}
		var bytewise []string
		for _, col := range r.Columns {
			if col.Bytewise {
				bytewise = append(bytewise, col.MachineName)
			}
		}
		if !slices.Equal(bytewise, []string{"code", "label"}) {
			t.Fatalf("bytewise columns: %v", bytewise)
		}
		if db.Dialect() == store.Postgres {
			var n int
			if err := db.QueryRow(ctx, `SELECT COUNT(*) FROM information_schema.columns WHERE table_schema = current_schema() AND table_name IN (?, ?)
				AND column_name IN ('code', 'label') AND collation_name = 'C'`, r.Table, r.Table+"_hist").Scan(&n); err != nil || n != 4 {
				t.Fatalf("columns collated \"C\": %d %v", n, err)
			}
		}
		keys := []string{"b", "B", "a", "Z", "é", "_", "ab", "A"}
		var file strings.Builder
		file.WriteString("code,label\n")
		for i, k := range keys {
			fmt.Fprintf(&file, "%s,l%d\n", k, i)
		}
		if b, err := f.svc.Submit(ctx, f.gaj, r.Code, resource.SubmitOptions{}, csvRows(t, file.String())); err != nil || b.Inserted != int64(len(keys)) {
			t.Fatalf("load: %+v %v", b, err)
		}
		var got []string
		if err := f.svc.LiveKeys(ctx, r, 3, func(k [][]string) error {
			for _, x := range k {
				got = append(got, x[0])
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		want := slices.Clone(keys)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("keys in order %q, want %q", got, want)
		}
	})
}
