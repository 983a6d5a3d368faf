package dataservice_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"govshare/internal/apperr"
	"govshare/internal/audit"
	"govshare/internal/calendar"
	"govshare/internal/catalog"
	"govshare/internal/checkdigit"
	"govshare/internal/dataservice"
	"govshare/internal/mask"
	"govshare/internal/notify"
	"govshare/internal/policy"
	"govshare/internal/quality"
	"govshare/internal/resource"
	"govshare/internal/share"
	"govshare/internal/store"
	"govshare/internal/storetest"
	"govshare/internal/testfix"
)

type allRefs struct{}

func (allRefs) RegionKnown(string) bool       { return true }
func (allRefs) CodeKnown(string, string) bool { return true }
func (allRefs) HasTable(string) bool          { return true }

type noNotices struct{}

func (noNotices) Send(context.Context, notify.Notice) error { return nil }

// fixture: 市公安局 holds a population resource of 60 synthetic people in
// two districts; 市民政局 holds a grant for some of its items.
type fixture struct {
	db       *store.DB
	log      *audit.Log
	cat      *catalog.Service
	res      *resource.Service
	share    *share.Service
	data     *dataservice.Service
	admin    policy.Actor
	gaj, mzj policy.Actor
	entry    catalog.Entry
	people   []person
}

type person struct {
	id, name, birth, region, phone, household string
}

var surnames = []string{"王", "李", "张", "刘", "陈", "杨", "黄", "赵", "吴", "周"}

func newFixture(t *testing.T, db *store.DB) *fixture {
	t.Helper()
	ctx := context.Background()
	tc := testfix.New(t, db)
	keys, log := tc.Keys, tc.Audit
	dept, user := tc.Dept, tc.User
	city, gaj, mzj := dept("市政务信息办", 1), dept("市公安局", 2), dept("市民政局", 3)
	f := &fixture{db: db, log: log}
	f.admin, f.gaj, f.mzj = user("admin", city, policy.PlatformAdmin), user("gaj.admin", gaj, policy.DeptAdmin), user("mzj.admin", mzj, policy.DeptAdmin)
	f.cat = catalog.NewService(db, log, calendar.Weekdays{}, catalog.DefaultConfig())
	if err := f.cat.EnsureDefaultTree(ctx); err != nil {
		t.Fatal(err)
	}
	f.res = resource.New(db, log, f.cat, func(context.Context) (quality.Reference, error) { return allRefs{}, nil }, nil)
	f.share = share.NewService(db, log, f.cat, calendar.Weekdays{}, noNotices{}, share.Config{AnswerDays: 10, ProvideDays: 5})
	f.data = dataservice.New(dataservice.Deps{DB: db, Resources: f.res, Grants: f.share, Audit: log, Masker: mask.New(keys.Derive("mask/hash")), Keys: keys})
	t.Cleanup(f.data.Close)

	content := catalog.Content{
		Name: "人口基本信息", ClassCode: "101", Abstract: "人口基本信息，供数据服务测试使用。", FormatClass: "database", FormatType: "postgresql",
		Items: []catalog.DataItem{
			{Name: "公民身份号码", MachineName: "id_number", DataType: "C", Length: 18, Key: true, MaskRule: "keep(6,4)"},
			{Name: "姓名", MachineName: "name", DataType: "C", Length: 20, MaskRule: "surname"},
			{Name: "出生日期", MachineName: "birth_date", DataType: "D", Length: 8},
			{Name: "行政区划", MachineName: "region_code", DataType: "C", Length: 6},
			{Name: "户号", MachineName: "household_no", DataType: "C", Length: 12, QualityRule: "unique"},
			{Name: "联系电话", MachineName: "phone", DataType: "C", Length: 20},
		},
		ShareType: catalog.ShareUnconditional, ShareMethods: []catalog.ShareMethod{catalog.MethodAPI, catalog.MethodVerify, catalog.MethodFile},
		OpenType: catalog.OpenClosed, UpdateCycle: "daily",
	}
	e, err := f.cat.CreateEntry(ctx, f.gaj, content)
	if err == nil {
		_, err = f.cat.Submit(ctx, f.gaj, e.ID)
	}
	if err == nil {
		_, err = f.cat.Approve(ctx, f.admin, e.ID)
	}
	if err == nil {
		e, err = f.cat.Publish(ctx, f.admin, e.ID)
	}
	var r resource.Resource
	if err == nil {
		r, err = f.res.Mount(ctx, f.gaj, e.ID)
	}
	if err != nil {
		t.Fatal(err)
	}
	f.entry = e
	var b strings.Builder
	b.WriteString("id_number,name,birth_date,region_code,household_no,phone\n")
	for i := range 60 {
		region := []string{"350102", "350103"}[i%2]
		birth := time.Date(1960+i%40, time.Month(1+i%12), 1+i%28, 0, 0, 0, 0, time.UTC)
		p := person{id: checkdigit.SyntheticCitizenID(region, birth, i+1), name: surnames[i%10] + "测" + fmt.Sprint(i), birth: birth.Format("2006-01-02"),
			region: region, phone: fmt.Sprintf("1380000%04d", i), household: fmt.Sprintf("H%06d", i)}
		f.people = append(f.people, p)
		fmt.Fprintf(&b, "%s,%s,%s,%s,%s,%s\n", p.id, p.name, p.birth, p.region, p.household, p.phone)
	}
	rows, _ := resource.CSVRows(strings.NewReader(b.String()))
	batch, err := f.res.Submit(ctx, f.gaj, r.Code, resource.SubmitOptions{Source: resource.SourceUpload, Detail: "people.csv"}, rows)
	if err != nil || batch.Inserted != 60 {
		t.Fatalf("load: %+v %v", batch, err)
	}
	return f
}

// grant gives 市民政局 a grant on the given terms.
func (f *fixture) grant(t *testing.T, terms share.Terms) share.Grant {
	t.Helper()
	ctx := context.Background()
	if terms.Purpose == "" {
		terms.Purpose = "社会救助对象核对"
	}
	a, err := f.share.Apply(ctx, f.mzj, f.entry.ID, terms)
	if err != nil {
		t.Fatal(err)
	}
	g, err := f.share.Grant(ctx, f.mzj, a.GrantID)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func (f *fixture) caller() dataservice.Caller {
	return dataservice.Caller{Actor: f.mzj, Purpose: "社会救助对象核对"}
}

func query(t *testing.T, f *fixture, c dataservice.Caller, qs string) (dataservice.Result, error) {
	t.Helper()
	v, err := url.ParseQuery(qs)
	if err != nil {
		t.Fatal(err)
	}
	req, err := dataservice.ParseRequest(v)
	if err != nil {
		return dataservice.Result{}, err
	}
	return f.data.Query(context.Background(), c, f.entry.Code, req)
}

func code(err error) string {
	if ae, ok := apperr.As(err); ok {
		return ae.Code
	}
	if err == nil {
		return ""
	}
	return err.Error()
}

func (f *fixture) events(t *testing.T, action, result string) int {
	t.Helper()
	n := 0
	err := f.log.Each(context.Background(), audit.Filter{Action: action, Result: result}, func(audit.Event) error { n++; return nil })
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestQueryReturnsOnlyGrantedItemsMaskedWithinTheRowScope(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		f := newFixture(t, db)
		f.grant(t, share.Terms{Items: []string{"id_number", "name", "birth_date", "region_code", "household_no"},
			Methods:  []catalog.ShareMethod{catalog.MethodAPI, catalog.MethodFile, catalog.MethodVerify},
			RowScope: &share.RowScope{Item: "region_code", Op: "eq", Values: []string{"350102"}}})
		c := f.caller()

		// Every page together: the 30 people of 350102, once each, masked.
		seen := map[string]bool{}
		cursor := ""
		for pages := 0; ; pages++ {
			qs := "limit=7"
			if cursor != "" {
				qs += "&cursor=" + url.QueryEscape(cursor)
			}
			res, err := query(t, f, c, qs)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(res.Items, []string{"id_number", "name", "birth_date", "region_code", "household_no"}) {
				t.Fatalf("items %v: phone is not granted", res.Items)
			}
			for _, r := range res.Records {
				if *r[3] != "350102" {
					t.Fatalf("a record outside the row scope: %v", *r[3])
				}
				if strings.Count(*r[0], "*") != 8 || strings.Count(*r[1], "*") == 0 {
					t.Fatalf("not masked: %s %s", *r[0], *r[1])
				}
				if seen[*r[4]] {
					t.Fatalf("record %s twice", *r[4])
				}
				seen[*r[4]] = true
			}
			if res.Next == "" {
				break
			}
			if strings.Contains(res.Next, f.people[0].id[:6]) {
				t.Fatal("the cursor shows the key")
			}
			cursor = res.Next
			if pages > 10 {
				t.Fatal("paging does not end")
			}
		}
		if len(seen) != 30 {
			t.Fatalf("%d records in scope, want 30", len(seen))
		}

		// A key lookup finds a person in scope and nobody outside it.
		in, out := f.people[0], f.people[1]
		res, err := query(t, f, c, "filter=id_number:eq:"+in.id)
		if err != nil || len(res.Records) != 1 || *res.Records[0][2] != in.birth {
			t.Fatalf("lookup in scope: %+v %v", res, err)
		}
		if res, err = query(t, f, c, "filter=id_number:eq:"+out.id); err != nil || len(res.Records) != 0 {
			t.Fatalf("lookup outside the scope answered %+v %v", res, err)
		}
		// in, range, prefix and sort on the unique item.
		res, err = query(t, f, c, "filter=household_no:in:H000000,H000002,H000001&sort=-household_no")
		if err != nil || len(res.Records) != 2 || *res.Records[0][4] != "H000002" || *res.Records[1][4] != "H000000" {
			t.Fatalf("in + sort: %+v %v", res, err)
		}
		res, err = query(t, f, c, "filter=household_no:ge:H000050&filter=household_no:prefix:H00005&fields=household_no")
		if err != nil || len(res.Records) != 5 || len(res.Items) != 1 {
			t.Fatalf("range + prefix: %+v %v", res, err)
		}
		// Sorted pages by a non-key item, descending, cover the scope too.
		seen = map[string]bool{}
		cursor = ""
		last := "~"
		for {
			qs := "limit=4&sort=-household_no&fields=household_no"
			if cursor != "" {
				qs += "&cursor=" + url.QueryEscape(cursor)
			}
			res, err := query(t, f, c, qs)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range res.Records {
				if *r[0] >= last {
					t.Fatalf("out of order: %s after %s", *r[0], last)
				}
				last = *r[0]
				seen[*r[0]] = true
			}
			if cursor = res.Next; cursor == "" {
				break
			}
		}
		if len(seen) != 30 {
			t.Fatalf("sorted pages held %d records, want 30", len(seen))
		}

		// Outside the grant: refused with the item and the method, before
		// the store is read; the error holds no value.
		for qs, want := range map[string]string{
			"fields=phone":                        "data.item_not_granted",
			"filter=phone:eq:13800000001":         "data.item_not_granted",
			"sort=phone":                          "data.item_not_granted",
			"filter=birth_date:ge:1990-01-01":     "data.item_not_indexed",
			"filter=id_number:prefix:350102":      "data.item_masked",
			"filter=id_number:ge:350102":          "data.item_masked",
			"sort=id_number":                      "data.item_masked",
			"filter=household_no:gt:x:y":          "",
			"filter=household_no:between:1":       "data.filter_invalid",
			"filter=household_no:eq:" + long(300): "data.filter_invalid",
			"limit=5000":                          "data.limit_invalid",
			"cursor=abc":                          "data.cursor_invalid",
			"fields=Name%3BDROP":                  "data.item_unknown",
		} {
			_, err := query(t, f, c, qs)
			if want == "" {
				if err != nil {
					t.Fatalf("%s: %v", qs, err)
				}
				continue
			}
			if code(err) != want {
				t.Fatalf("%s: got %v, want %s", qs, err, want)
			}
			if strings.Contains(err.Error(), "13800000001") {
				t.Fatalf("%s: the error echoes a value", qs)
			}
		}
		// name is granted but neither key nor unique: refused as such.
		if _, err := query(t, f, c, "filter=name:eq:x"); code(err) != "data.item_not_indexed" {
			t.Fatalf("filter on a granted non-indexed item: %v", err)
		}
		// A cursor of one query does not serve another.
		res, _ = query(t, f, c, "limit=2")
		if _, err := query(t, f, c, "limit=2&fields=name&cursor="+url.QueryEscape(res.Next)); code(err) != "data.cursor_invalid" {
			t.Fatalf("a foreign cursor: %v", err)
		}
		// Verify and download are other methods: this grant has them; a
		// stranger department has none.
		stranger := dataservice.Caller{Actor: f.gaj, Purpose: "x"}
		if _, err := query(t, f, stranger, ""); code(err) != "data.not_granted" {
			t.Fatalf("the provider without a grant: %v", err)
		}
		if _, err := query(t, f, dataservice.Caller{Actor: f.mzj}, ""); code(err) != "data.purpose_required" {
			t.Fatalf("no purpose: %v", err)
		}
		if n := f.events(t, "data.query", audit.ResultOK); n < 10 {
			t.Fatalf("%d audited queries", n)
		}
		if n := f.events(t, "data.api", audit.ResultDenied); n < 12 {
			t.Fatalf("%d audited refusals", n)
		}
	})
}

func long(n int) string { return strings.Repeat("x", n) }

func TestVerifyAnswersMatchNeverTheData(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		f := newFixture(t, db)
		f.grant(t, share.Terms{Items: []string{"id_number", "name", "birth_date", "region_code"}, Methods: []catalog.ShareMethod{catalog.MethodVerify},
			RowScope: &share.RowScope{Item: "region_code", Op: "prefix", Values: []string{"350102"}}})
		ctx := context.Background()
		c := f.caller()
		p0, p1, p2 := f.people[0], f.people[2], f.people[1] // p2 lies outside the scope
		res, err := f.data.Verify(ctx, c, f.entry.Code, dataservice.VerifyRequest{Items: []string{"name", "birth_date"}, Records: []map[string]string{
			{"id_number": p0.id, "name": p0.name, "birth_date": p0.birth},
			{"id_number": strings.ToLower(p1.id), "name": "假名字", "birth_date": p1.birth},
			{"id_number": p2.id, "name": p2.name, "birth_date": p2.birth},
			{"id_number": "350102199001010000", "name": "无此人", "birth_date": "1990-01-01"},
			{"id_number": p0.id, "name": p0.name, "birth_date": "not a date"},
		}})
		if err != nil {
			t.Fatal(err)
		}
		want := []string{"match", "mismatch", "not_found", "not_found", "mismatch"}
		for i, a := range res.Records {
			if a.Result != want[i] {
				t.Fatalf("record %d: %s, want %s (%+v)", i, a.Result, want[i], a)
			}
		}
		if res.Records[1].Items["name"] != "mismatch" || res.Records[1].Items["birth_date"] != "match" {
			t.Fatalf("per item: %+v", res.Records[1])
		}
		if res.Matched != 1 || res.Mismatched != 2 || res.NotFound != 2 {
			t.Fatalf("counts %+v", res)
		}
		b, _ := json.Marshal(res)
		for _, p := range f.people {
			if bytes.Contains(b, []byte(p.name)) || bytes.Contains(b, []byte(p.id)) || bytes.Contains(b, []byte(p.birth)) {
				t.Fatalf("the answer holds stored data: %s", b)
			}
		}
		// phone is not granted for verify; a record without its key is bad
		// input, named by row and field.
		if _, err := f.data.Verify(ctx, c, f.entry.Code, dataservice.VerifyRequest{Items: []string{"phone"},
			Records: []map[string]string{{"id_number": p0.id, "phone": p0.phone}}}); code(err) != "data.item_not_granted" {
			t.Fatalf("verify an item outside the grant: %v", err)
		}
		_, err = f.data.Verify(ctx, c, f.entry.Code, dataservice.VerifyRequest{Items: []string{"name"},
			Records: []map[string]string{{"id_number": p0.id, "name": "x"}, {"name": "x"}}})
		if ae, _ := apperr.As(err); ae == nil || ae.Code != "data.verify_key_missing" || ae.Row != 2 || ae.Field != "records[1].id_number" {
			t.Fatalf("missing key: %+v", err)
		}
		// The query method is not granted.
		if _, err := query(t, f, c, ""); code(err) != "data.not_granted" {
			t.Fatalf("query without an api grant: %v", err)
		}
		evs, _ := f.log.List(ctx, audit.Filter{Action: "data.verify", Result: audit.ResultOK, Limit: 10})
		if len(evs) == 0 || !strings.Contains(evs[0].Details, `"matched":1`) || evs[0].Purpose != "社会救助对象核对" {
			t.Fatalf("audit: %+v", evs)
		}
	})
}

func TestDownloadStreamsGrantedItemsWithAWatermark(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		f := newFixture(t, db)
		g := f.grant(t, share.Terms{Items: []string{"id_number", "name", "region_code"}, Methods: []catalog.ShareMethod{catalog.MethodFile}})
		ctx := context.Background()
		req, _ := dataservice.ParseRequest(url.Values{"filter": {"region_code:eq:350103"}})
		if _, err := f.data.PrepareDownload(ctx, f.caller(), f.entry.Code, req, "pdf"); code(err) != "data.format_invalid" {
			t.Fatalf("format: %v", err)
		}
		if _, err := f.data.PrepareDownload(ctx, f.caller(), f.entry.Code, dataservice.Request{Fields: []string{"phone"}}, "csv"); code(err) != "data.item_not_granted" {
			t.Fatalf("download an item outside the grant: %v", err)
		}
		// region_code is granted but not indexed: a download filters on
		// indexed items too.
		if _, err := f.data.PrepareDownload(ctx, f.caller(), f.entry.Code, req, "csv"); code(err) != "data.item_not_indexed" {
			t.Fatalf("filter on a non-indexed item: %v", err)
		}
		d, err := f.data.PrepareDownload(ctx, f.caller(), f.entry.Code, dataservice.Request{}, "csv")
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		n, err := d.Write(ctx, &buf)
		if err != nil || n != 60 {
			t.Fatalf("wrote %d: %v", n, err)
		}
		recs, err := csv.NewReader(&buf).ReadAll()
		if err != nil || len(recs) != 61 {
			t.Fatalf("csv: %d %v", len(recs), err)
		}
		if !slices.Equal(recs[0], []string{"id_number", "name", "region_code", "_watermark"}) {
			t.Fatalf("header %v", recs[0])
		}
		for _, r := range recs[1:] {
			if !strings.Contains(r[0], "********") || !strings.Contains(r[3], fmt.Sprintf("grant:%d", g.ID)) || !strings.Contains(r[3], d.ID) {
				t.Fatalf("row %v", r)
			}
		}
		evs, _ := f.log.List(ctx, audit.Filter{Action: "data.download_done", Limit: 10})
		if len(evs) != 1 || !strings.Contains(evs[0].Details, `"records":60`) {
			t.Fatalf("audit: %+v", evs)
		}
		x, err := f.data.PrepareDownload(ctx, f.caller(), f.entry.Code, dataservice.Request{}, "xlsx")
		if err != nil {
			t.Fatal(err)
		}
		buf.Reset()
		if n, err := x.Write(ctx, &buf); err != nil || n != 60 || !bytes.HasPrefix(buf.Bytes(), []byte("PK")) {
			t.Fatalf("xlsx: %d %v", n, err)
		}
	})
}

func TestRevokedAndExpiredGrantsAreRefusedAtOnce(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		f := newFixture(t, db)
		g := f.grant(t, share.Terms{Items: []string{"id_number", "name"}, Methods: []catalog.ShareMethod{catalog.MethodAPI}})
		c := f.caller()
		if _, err := query(t, f, c, "limit=1"); err != nil {
			t.Fatal(err)
		}
		if _, err := f.share.RevokeGrant(context.Background(), f.gaj, g.ID, "核对工作结束"); err != nil {
			t.Fatal(err)
		}
		if _, err := query(t, f, c, "limit=1"); code(err) != "data.not_granted" {
			t.Fatalf("after revocation: %v", err)
		}
		g2 := f.grant(t, share.Terms{Items: []string{"id_number"}, Methods: []catalog.ShareMethod{catalog.MethodAPI},
			ValidUntil: time.Now().AddDate(0, 0, 3)})
		if _, err := query(t, f, c, "limit=1"); err != nil {
			t.Fatal(err)
		}
		f.share.SetClock(func() time.Time { return g2.ValidUntil.Add(time.Second) })
		time.Sleep(1100 * time.Millisecond) // the grant cache's life
		if _, err := query(t, f, c, "limit=1"); code(err) != "data.not_granted" {
			t.Fatalf("after expiry: %v", err)
		}
	})
}

func TestLimitsAnswerTooManyRequests(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		f := newFixture(t, db)
		f.grant(t, share.Terms{Items: []string{"id_number", "name", "birth_date"}, Methods: []catalog.ShareMethod{catalog.MethodAPI, catalog.MethodVerify},
			RateLimit: 3, DailyQuota: 25, VerifyQuota: 4})
		c := f.caller()
		refused, got := 0, 0
		var retry time.Duration
		for range 6 {
			res, err := query(t, f, c, "limit=1")
			got += len(res.Records)
			if ae, ok := apperr.As(err); ok && ae.Status == 429 {
				refused++
				retry = ae.RetryAfter
			} else if err != nil {
				t.Fatal(err)
			}
		}
		if refused < 2 || retry <= 0 || retry > time.Second {
			t.Fatalf("rate limit: %d refused, retry %v", refused, retry)
		}
		time.Sleep(1100 * time.Millisecond)
		// Records per day: 25 in all, whatever the page size asks.
		for got < 100 {
			time.Sleep(350 * time.Millisecond)
			res, err := query(t, f, c, "limit=10")
			if err != nil {
				if code(err) != "data.quota_exhausted" {
					t.Fatal(err)
				}
				if ae, _ := apperr.As(err); ae.RetryAfter <= 0 || ae.RetryAfter > 24*time.Hour {
					t.Fatalf("retry after %v", ae.RetryAfter)
				}
				break
			}
			got += len(res.Records)
		}
		if got < 25 || got > 27 {
			t.Fatalf("%d records returned under a quota of 25", got)
		}
		// The counts survive in the database: a new service instance (another
		// server) sees today's records used up.
		if err := f.data.Flush(context.Background()); err != nil {
			t.Fatal(err)
		}
		p := f.people[0]
		recs := []map[string]string{{"id_number": p.id, "name": p.name}, {"id_number": p.id, "name": p.name}, {"id_number": p.id, "name": p.name}}
		if _, err := f.data.Verify(context.Background(), c, f.entry.Code, dataservice.VerifyRequest{Items: []string{"name"}, Records: recs}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(400 * time.Millisecond)
		_, err := f.data.Verify(context.Background(), c, f.entry.Code, dataservice.VerifyRequest{Items: []string{"name"}, Records: recs})
		if code(err) != "data.verify_quota_exhausted" {
			t.Fatalf("verify quota: %v", err)
		}
		if err := f.data.Flush(context.Background()); err != nil {
			t.Fatal(err)
		}
		rows, err := f.data.Usage(context.Background(), f.admin, dataservice.UsageFilter{Resource: f.entry.Code})
		if err != nil {
			t.Fatal(err)
		}
		var calls, records, refusedRows int64
		for _, r := range rows {
			calls += r.Calls
			records += r.Records
			refusedRows += r.Refused
		}
		if records != int64(got)+3 || refusedRows < int64(refused)+2 || calls < 10 {
			t.Fatalf("usage %+v", rows)
		}
		// Usage is for the departments concerned.
		if _, err := f.data.Usage(context.Background(), f.mzj, dataservice.UsageFilter{Side: "consumer"}); err != nil {
			t.Fatal(err)
		}
		if _, err := f.data.Usage(context.Background(), f.mzj, dataservice.UsageFilter{DeptID: f.gaj.DeptID}); !errors.Is(err, apperr.ErrDenied) {
			t.Fatalf("another department's usage: %v", err)
		}
	})
}

func TestAuditChainHoldsAfterALoadOfCalls(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		f := newFixture(t, db)
		f.grant(t, share.Terms{Items: []string{"id_number", "name"}, Methods: []catalog.ShareMethod{catalog.MethodAPI}})
		c := f.caller()
		errs := make(chan error, 200)
		for i := range 200 {
			go func() {
				_, err := query(t, f, c, "filter=id_number:eq:"+f.people[i%60].id)
				errs <- err
			}()
		}
		for range 200 {
			if err := <-errs; err != nil {
				t.Fatal(err)
			}
		}
		if n := f.events(t, "data.query", audit.ResultOK); n != 200 {
			t.Fatalf("%d audit events for 200 queries", n)
		}
		rep, err := f.log.Verify(context.Background(), nil)
		if err != nil || !rep.OK() {
			t.Fatalf("audit verify: %+v %v", rep, err)
		}
	})
}

// Keyed lookups arriving together are read together (on PostgreSQL one
// statement for many); each still gets exactly the answer it gets alone:
// its record masked for its items, nothing for a key outside the row
// scope or unknown, whatever else was in its batch.
func TestKeyedLookupsReadTogetherAnswerAsAlone(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		f := newFixture(t, db)
		f.grant(t, share.Terms{Items: []string{"id_number", "name", "birth_date", "phone"}, Methods: []catalog.ShareMethod{catalog.MethodAPI},
			RowScope: &share.RowScope{Item: "region_code", Op: "eq", Values: []string{"350102"}}})
		c := f.caller()
		var asks []string
		for i, p := range f.people {
			asks = append(asks, "filter=id_number:eq:"+p.id, "fields=birth_date,phone&filter=id_number:eq:"+p.id)
			if i < 10 {
				made := checkdigit.SyntheticCitizenID("350102", time.Date(2001, 2, 3, 0, 0, 0, 0, time.UTC), 900+i)
				asks = append(asks, "filter=id_number:eq:"+made)
			}
		}
		answer := func(qs string) string {
			res, err := query(t, f, c, qs)
			if err != nil {
				return "error " + code(err)
			}
			b, _ := json.Marshal(res)
			return string(b)
		}
		alone := make(map[string]string, len(asks))
		found := 0
		for _, qs := range asks {
			alone[qs] = answer(qs)
			if strings.Contains(alone[qs], `"records":[[`) {
				found++
			}
		}
		if found != 60 { // 30 people in scope, two ways each
			t.Fatalf("%d lookups found a record alone, want 60", found)
		}
		type got struct{ qs, answer string }
		out := make(chan got, 4*len(asks))
		for i := range 4 * len(asks) {
			qs := asks[(i*7)%len(asks)]
			go func() { out <- got{qs, answer(qs)} }()
		}
		for range 4 * len(asks) {
			g := <-out
			if g.answer != alone[g.qs] {
				t.Fatalf("%s together:\n%s\nalone:\n%s", g.qs, g.answer, alone[g.qs])
			}
		}
	})
}
