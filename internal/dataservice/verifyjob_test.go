package dataservice_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"govshare/internal/apperr"
	"govshare/internal/audit"
	"govshare/internal/calendar"
	"govshare/internal/catalog"
	"govshare/internal/checkdigit"
	"govshare/internal/dataservice"
	"govshare/internal/identity"
	"govshare/internal/mask"
	"govshare/internal/policy"
	"govshare/internal/quality"
	"govshare/internal/resource"
	"govshare/internal/secret"
	"govshare/internal/share"
	"govshare/internal/store"
	"govshare/internal/storetest"
)

// verifyTerms: 市民政局 may compare name and birth date by ID number,
// for the people of district 350102 only.
var verifyTerms = share.Terms{Items: []string{"id_number", "name", "birth_date", "region_code"}, Methods: []catalog.ShareMethod{catalog.MethodVerify},
	RowScope: &share.RowScope{Item: "region_code", Op: "prefix", Values: []string{"350102"}}}

// startJobs runs the comparison worker for the rest of the test.
func startJobs(t *testing.T, s *dataservice.Service) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := s.StartVerifyJobs(ctx)
	t.Cleanup(func() { cancel(); <-done })
}

// waitJob waits until the job has finished.
func waitJob(t *testing.T, f *fixture, c dataservice.Caller, id int64, within time.Duration) dataservice.VerifyJob {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		j, err := f.data.VerifyJob(context.Background(), c, id)
		if err != nil {
			t.Fatal(err)
		}
		if j.State == dataservice.JobDone || j.State == dataservice.JobFailed {
			return j
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %d still %s after %v: %+v", id, j.State, within, j)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// mixedRecords are n records to compare, each as a map (for Verify) and
// as a CSV row: people in and outside the row scope, with a wrong name,
// a wrong or unreadable birth date, a lower-case check character, and
// people who do not exist. The CSV has a column of the consumer's own
// that the comparison ignores.
func mixedRecords(f *fixture, n int) ([]map[string]string, []byte) {
	var b bytes.Buffer
	w := csv.NewWriter(&b)
	_ = w.Write([]string{"id_number", "name", "own_ref", "birth_date"})
	recs := make([]map[string]string, n)
	for i := range n {
		p := f.people[(i*7)%len(f.people)]
		r := map[string]string{"id_number": p.id, "name": p.name, "birth_date": p.birth}
		switch i % 9 {
		case 1:
			r["name"] = "假名字"
		case 2:
			r["birth_date"] = "1901-01-01"
		case 3:
			r["birth_date"] = "not a date"
		case 4:
			r["id_number"] = strings.ToLower(p.id)
		case 5:
			r["id_number"] = fmt.Sprintf("3501021990%08d", i) // nobody
		case 6:
			r["name"], r["birth_date"] = "", ""
		case 7:
			r["id_number"] = "12345" // cannot be an ID: not found
		}
		recs[i] = r
		_ = w.Write([]string{r["id_number"], r["name"], "REF" + strconv.Itoa(i), r["birth_date"]})
	}
	w.Flush()
	return recs, b.Bytes()
}

func TestVerifyJobAnswersAsTheSynchronousComparison(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		f := newFixture(t, db)
		f.grant(t, verifyTerms)
		ctx := context.Background()
		c := f.caller()
		const n = 12_345 // three chunks, the last one short
		recs, body := mixedRecords(f, n)
		startJobs(t, f.data)

		j, err := f.data.CreateVerifyJob(ctx, c, f.entry.Code, []string{"name", "birth_date"}, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if j.Total != n || j.State != dataservice.JobQueued && j.State != dataservice.JobRunning || !slices.Equal(j.Items, []string{"name", "birth_date"}) ||
			j.ConsumerDeptID != f.mzj.DeptID {
			t.Fatalf("created %+v", j)
		}
		j = waitJob(t, f, c, j.ID, time.Minute)
		if j.State != dataservice.JobDone || j.Done != n || j.FinishedAt.IsZero() || j.ResultUntil.Before(time.Now().Add(6*24*time.Hour)) {
			t.Fatalf("finished %+v", j)
		}

		// The synchronous comparison of the same records, a thousand at a time.
		var want []dataservice.VerifyAnswer
		var matched, mismatched, notFound int64
		for lo := 0; lo < n; lo += dataservice.MaxVerify {
			res, err := f.data.Verify(ctx, c, f.entry.Code, dataservice.VerifyRequest{Items: []string{"name", "birth_date"}, Records: recs[lo:min(lo+dataservice.MaxVerify, n)]})
			if err != nil {
				t.Fatal(err)
			}
			want = append(want, res.Records...)
			matched, mismatched, notFound = matched+res.Matched, mismatched+res.Mismatched, notFound+res.NotFound
		}
		if j.Matched != matched || j.Mismatched != mismatched || j.NotFound != notFound || matched == 0 || mismatched == 0 || notFound < n/3 {
			t.Fatalf("job counts %d/%d/%d, synchronous %d/%d/%d", j.Matched, j.Mismatched, j.NotFound, matched, mismatched, notFound)
		}

		var out bytes.Buffer
		written, err := f.data.WriteVerifyJobResult(ctx, c, j.ID, &out)
		if err != nil || written != n {
			t.Fatalf("result: %d records, %v", written, err)
		}
		for _, p := range f.people {
			for _, v := range []string{p.id, p.id[:14], p.name, p.birth, p.phone} {
				if bytes.Contains(out.Bytes(), []byte(v)) {
					t.Fatalf("the result holds a stored value %q", v)
				}
			}
		}
		rows, err := csv.NewReader(&out).ReadAll()
		if err != nil || len(rows) != n+1 {
			t.Fatalf("result CSV: %d rows, %v", len(rows), err)
		}
		if !slices.Equal(rows[0], []string{"index", "result", "name", "birth_date"}) {
			t.Fatalf("header %v", rows[0])
		}
		for i, r := range rows[1:] {
			w := want[i]
			if r[0] != strconv.Itoa(i) || r[1] != w.Result || r[2] != w.Items["name"] || r[3] != w.Items["birth_date"] {
				t.Fatalf("record %d: job %v, synchronous %+v", i, r, w)
			}
		}

		// Audited: the job with its records, its end with the counts, the
		// result's download; the purpose each time.
		for action, detail := range map[string]string{
			"data.verify_job":      fmt.Sprintf(`"records":%d`, n),
			"data.verify_job_done": fmt.Sprintf(`"matched":%d`, matched),
			"data.verify_result":   fmt.Sprintf(`"records":%d`, n),
		} {
			evs, err := f.log.List(ctx, audit.Filter{Action: action, Result: audit.ResultOK, Limit: 5})
			evs = slices.DeleteFunc(evs, func(e audit.Event) bool { return e.Action != action }) // the filter takes a prefix
			if err != nil || len(evs) != 1 || !strings.Contains(evs[0].Details, detail) || evs[0].Purpose != c.Purpose || evs[0].ActorName != f.mzj.Login {
				t.Fatalf("audit %s: %+v %v", action, evs, err)
			}
		}
		// The records compared count against today's comparisons once.
		if err := f.data.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		rowsUsed, err := f.data.Usage(ctx, f.admin, dataservice.UsageFilter{Resource: f.entry.Code})
		if err != nil {
			t.Fatal(err)
		}
		var compared int64
		for _, r := range rowsUsed {
			if r.Method == "verify" {
				compared += r.Records
			}
		}
		if compared != 2*n {
			t.Fatalf("%d records counted, want %d (the job and the synchronous calls)", compared, 2*n)
		}
	})
}

// count is the rows of a table.
func count(t *testing.T, db *store.DB, table string) int {
	t.Helper()
	var n int
	if err := db.QueryRow(context.Background(), "SELECT COUNT(*) FROM "+table).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestVerifyJobRefusesBadRowsAndStoresNothing(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		f := newFixture(t, db)
		f.grant(t, verifyTerms)
		ctx := context.Background()
		c := f.caller()
		p := f.people[0]
		good := p.id + "," + p.name + "\n"
		// A record without its key after the first chunk was stored.
		late := "id_number,name\n" + strings.Repeat(good, 7000) + "," + p.name + "\n" + good
		for _, tc := range []struct {
			name, body   string
			items        []string
			code, field  string
			row          int
			withoutValue bool
		}{
			{"empty key", "id_number,name\n" + good + good + "  ," + p.name + "\n", nil, "data.verify_key_missing", "id_number", 4, true},
			{"empty key after a chunk", late, nil, "data.verify_key_missing", "id_number", 7002, true},
			{"no key column", "name\n" + p.name + "\n", []string{"name"}, "data.verify_key_missing", "id_number", 1, false},
			{"no item column", "id_number,phone\n" + p.id + ",1\n", []string{"name"}, "data.verify_items", "name", 1, false},
			{"only the key", "id_number\n" + p.id + "\n", nil, "data.verify_items", "items", 0, false},
			{"item not granted", "id_number,phone\n" + p.id + "," + p.phone + "\n", []string{"phone"}, "data.item_not_granted", "items", 0, false},
			{"unbalanced quote", "id_number,name\n" + good + p.id + ",\"王\n", nil, "data.verify_csv_invalid", "body", 3, false},
			{"short row", "id_number,name\n" + good + p.id + "\n", nil, "data.verify_csv_invalid", "body", 3, false},
			{"twice the same column", "id_number,name,name\n", nil, "data.verify_csv_invalid", "name", 1, false},
			{"no records", "id_number,name\n", nil, "data.verify_job_records", "body", 0, false},
			{"nothing", "", nil, "data.verify_job_records", "body", 0, false},
		} {
			_, err := f.data.CreateVerifyJob(ctx, c, f.entry.Code, tc.items, strings.NewReader(tc.body))
			ae, ok := apperr.As(err)
			if !ok || ae.Code != tc.code || ae.Field != tc.field || ae.Row != tc.row {
				t.Fatalf("%s: %+v", tc.name, err)
			}
			if tc.row > 1 && !strings.Contains(ae.ZH, fmt.Sprintf("第%d行", tc.row)) && !strings.Contains(ae.EN, fmt.Sprintf("row %d", tc.row)) {
				t.Fatalf("%s: the message does not name the row: %s / %s", tc.name, ae.ZH, ae.EN)
			}
			if strings.Contains(ae.ZH+ae.EN, p.name) || strings.Contains(ae.ZH+ae.EN, p.id) {
				t.Fatalf("%s: the error echoes a value: %s", tc.name, ae.EN)
			}
			if n, m := count(t, db, "verify_jobs"), count(t, db, "verify_job_chunks"); n != 0 || m != 0 {
				t.Fatalf("%s: %d jobs and %d chunks stored", tc.name, n, m)
			}
		}
		if n := f.events(t, "data.verify_job", audit.ResultDenied); n != 11 {
			t.Fatalf("%d refusals audited, want 11", n)
		}
		// A row that never ends: refused before it fills the memory.
		_, err := f.data.CreateVerifyJob(ctx, c, f.entry.Code, nil, io.MultiReader(strings.NewReader("id_number,name\n"+good+p.id+","), endless{}))
		if ae, _ := apperr.As(err); ae == nil || ae.Code != "data.verify_csv_invalid" || ae.Row != 3 {
			t.Fatalf("an endless row: %v", err)
		}
		if n := count(t, db, "verify_jobs"); n != 0 {
			t.Fatalf("%d jobs stored", n)
		}
	})
}

// endless is a name that never ends.
type endless struct{}

func (endless) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = 'x'
	}
	return len(p), nil
}

func TestVerifyJobCountsAgainstTheDailyQuota(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		f := newFixture(t, db)
		terms := verifyTerms
		terms.VerifyQuota = 100
		f.grant(t, terms)
		ctx := context.Background()
		c := f.caller()
		_, body := mixedRecords(f, 150)
		_, err := f.data.CreateVerifyJob(ctx, c, f.entry.Code, nil, bytes.NewReader(body))
		if ae, _ := apperr.As(err); ae == nil || ae.Code != "data.verify_quota_exhausted" || ae.Status != 429 || ae.RetryAfter <= 0 {
			t.Fatalf("over the quota: %v", err)
		}
		if n := count(t, db, "verify_jobs"); n != 0 {
			t.Fatalf("a refused job was stored")
		}
		_, body = mixedRecords(f, 80)
		if _, err := f.data.CreateVerifyJob(ctx, c, f.entry.Code, nil, bytes.NewReader(body)); err != nil {
			t.Fatal(err)
		}
		_, body = mixedRecords(f, 30)
		if _, err := f.data.CreateVerifyJob(ctx, c, f.entry.Code, nil, bytes.NewReader(body)); code(err) != "data.verify_quota_exhausted" {
			t.Fatalf("80 + 30 over a quota of 100: %v", err)
		}
		// Another server sees the 80 through the database.
		if err := f.data.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		keys, _ := secret.New(make([]byte, 32))
		other := dataservice.New(dataservice.Deps{DB: db, Resources: f.res, Grants: f.share, Audit: f.log, Masker: mask.New(keys.Derive("mask/hash")), Keys: keys})
		defer other.Close()
		if _, err := other.CreateVerifyJob(ctx, c, f.entry.Code, nil, bytes.NewReader(body)); code(err) != "data.verify_quota_exhausted" {
			t.Fatalf("on another server: %v", err)
		}
	})
}

func TestVerifyJobFailsWhenItsGrantIsRevoked(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		f := newFixture(t, db)
		g := f.grant(t, verifyTerms)
		ctx := context.Background()
		c := f.caller()
		_, body := mixedRecords(f, 200)
		j, err := f.data.CreateVerifyJob(ctx, c, f.entry.Code, nil, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.share.RevokeGrant(ctx, f.gaj, g.ID, "核对工作结束"); err != nil {
			t.Fatal(err)
		}
		startJobs(t, f.data)
		j = waitJob(t, f, c, j.ID, 30*time.Second)
		if j.State != dataservice.JobFailed || j.ErrorCode != "data.not_granted" || !strings.Contains(j.Error, "授权") || !strings.Contains(j.Error, "grant") || j.Done != 0 {
			t.Fatalf("after the revocation: %+v", j)
		}
		if _, err := f.data.WriteVerifyJobResult(ctx, c, j.ID, io.Discard); code(err) != "data.verify_job_failed" {
			t.Fatalf("result of a failed job: %v", err)
		}
		if n := count(t, db, "verify_job_chunks"); n != 0 {
			t.Fatalf("%d chunks of a failed job kept", n)
		}
		evs, _ := f.log.List(ctx, audit.Filter{Action: "data.verify_job_done", Limit: 5})
		if len(evs) != 1 || evs[0].Result != audit.ResultDenied || !strings.Contains(evs[0].Details, "data.not_granted") {
			t.Fatalf("audit: %+v", evs)
		}
	})
}

func TestVerifyJobOfADeadServerIsTakenOverAfterItsLease(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		f := newFixture(t, db)
		f.grant(t, verifyTerms)
		ctx := context.Background()
		c := f.caller()
		recs, body := mixedRecords(f, 7000)
		j, err := f.data.CreateVerifyJob(ctx, c, f.entry.Code, nil, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		// Another server claimed the job and died: its lease runs 3 s more.
		if _, err := db.Exec(ctx, "UPDATE verify_jobs SET state = 'running', worker = 'dead-server', lease_until = ? WHERE id = ?", store.Now().Add(3*time.Second), j.ID); err != nil {
			t.Fatal(err)
		}
		startJobs(t, f.data)
		time.Sleep(1500 * time.Millisecond)
		if j, _ = f.data.VerifyJob(ctx, c, j.ID); j.State != dataservice.JobRunning || j.Done != 0 {
			t.Fatalf("taken while the lease held: %+v", j)
		}
		j = waitJob(t, f, c, j.ID, 30*time.Second)
		var matched, notFound int64
		for lo := 0; lo < len(recs); lo += dataservice.MaxVerify {
			res, err := f.data.Verify(ctx, c, f.entry.Code, dataservice.VerifyRequest{Items: []string{"name", "birth_date"}, Records: recs[lo : lo+dataservice.MaxVerify]})
			if err != nil {
				t.Fatal(err)
			}
			matched, notFound = matched+res.Matched, notFound+res.NotFound
		}
		if j.State != dataservice.JobDone || j.Done != 7000 || j.Matched != matched || j.NotFound != notFound {
			t.Fatalf("after the takeover: %+v (synchronous: %d matched, %d not found)", j, matched, notFound)
		}
	})
}

func TestVerifyJobIsSeenByItsDepartmentOnly(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		f := newFixture(t, db)
		f.grant(t, verifyTerms)
		ctx := context.Background()
		c := f.caller()
		_, body := mixedRecords(f, 20)
		j, err := f.data.CreateVerifyJob(ctx, c, f.entry.Code, nil, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		startJobs(t, f.data)
		waitJob(t, f, c, j.ID, 30*time.Second)
		// The provider's data administrator: another department.
		other := dataservice.Caller{Actor: f.gaj, Purpose: "x"}
		if _, err := f.data.VerifyJob(ctx, other, j.ID); !errors.Is(err, apperr.ErrNotFound) {
			t.Fatalf("another department sees the job: %v", err)
		}
		if _, err := f.data.WriteVerifyJobResult(ctx, other, j.ID, io.Discard); !errors.Is(err, apperr.ErrNotFound) {
			t.Fatalf("another department reads the result: %v", err)
		}
		if list, err := f.data.VerifyJobs(ctx, other, 0); err != nil || len(list) != 0 {
			t.Fatalf("another department's list: %v %v", list, err)
		}
		// Their own list; a platform administrator sees the job, not its result.
		if list, err := f.data.VerifyJobs(ctx, c, 0); err != nil || len(list) != 1 || list[0].ID != j.ID {
			t.Fatalf("own list: %v %v", list, err)
		}
		admin := dataservice.Caller{Actor: f.admin}
		if _, err := f.data.VerifyJob(ctx, admin, j.ID); err != nil {
			t.Fatalf("platform administrator: %v", err)
		}
		if _, err := f.data.WriteVerifyJobResult(ctx, admin, j.ID, io.Discard); !errors.Is(err, apperr.ErrDenied) {
			t.Fatalf("platform administrator reads the result: %v", err)
		}
		if n := f.events(t, "data.verify_result", audit.ResultDenied); n != 2 {
			t.Fatalf("%d refused reads audited", n)
		}
		if _, err := f.data.VerifyJob(ctx, c, j.ID+1000); !errors.Is(err, apperr.ErrNotFound) {
			t.Fatalf("no such job: %v", err)
		}
	})
}

// mountEntry publishes, mounts and loads an entry of 市公安局 whose data
// rows are given as CSV, and grants its comparison to 市民政局.
func (f *fixture) mountEntry(t *testing.T, name string, items []catalog.DataItem, data string) string {
	t.Helper()
	ctx := context.Background()
	e, err := f.cat.CreateEntry(ctx, f.gaj, catalog.Content{Name: name, ClassCode: "101", Abstract: name + "，供比对测试使用。", FormatClass: "database",
		FormatType: "postgresql", Items: items, ShareType: catalog.ShareUnconditional, ShareMethods: []catalog.ShareMethod{catalog.MethodVerify},
		OpenType: catalog.OpenClosed, UpdateCycle: "daily"})
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
	rows, _ := resource.CSVRows(strings.NewReader(data))
	if _, err := f.res.Submit(ctx, f.gaj, r.Code, resource.SubmitOptions{Source: resource.SourceUpload, Detail: "data.csv"}, rows); err != nil {
		t.Fatal(err)
	}
	if _, err := f.share.Apply(ctx, f.mzj, e.ID, share.Terms{Purpose: "社会救助对象核对"}); err != nil {
		t.Fatal(err)
	}
	return r.Code
}

func TestComparisonByTwoKeyItems(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		f := newFixture(t, db)
		ctx := context.Background()
		c := f.caller()
		startJobs(t, f.data)
		cert := func(first string) []catalog.DataItem {
			items := []catalog.DataItem{
				{Name: "证件号码", MachineName: "cert_no", DataType: "C", Length: 20, Key: true},
				{Name: "证件类型", MachineName: "cert_type", DataType: "C", Length: 2, Key: true},
				{Name: "持证人", MachineName: "holder", DataType: "C", Length: 20},
			}
			if first == "cert_type" {
				items[0], items[1] = items[1], items[0]
			}
			return items
		}
		// Each number is held under two types, by different people.
		var data, upload strings.Builder
		data.WriteString("cert_no,cert_type,holder\n")
		upload.WriteString("cert_type,cert_no,holder\n")
		var recs []map[string]string
		for i := range 300 {
			fmt.Fprintf(&data, "N%05d,01,甲%d\nN%05d,02,乙%d\n", i, i, i, i)
			typ, holder := []string{"01", "02", "03"}[i%3], []string{"甲", "乙", "甲"}[i%3]+strconv.Itoa(i)
			if i%7 == 0 {
				holder = "丙"
			}
			fmt.Fprintf(&upload, "%s,N%05d,%s\n", typ, i, holder)
			recs = append(recs, map[string]string{"cert_type": typ, "cert_no": fmt.Sprintf("N%05d", i), "holder": holder})
		}
		// Led by the number (nearly telling records apart), then by the type
		// (two values: looked up record by record).
		for _, first := range []string{"cert_no", "cert_type"} {
			code := f.mountEntry(t, "证照信息"+first, cert(first), data.String())
			want, err := f.data.Verify(ctx, c, code, dataservice.VerifyRequest{Items: []string{"holder"}, Records: recs})
			if err != nil {
				t.Fatal(err)
			}
			if want.Matched != 171 || want.Mismatched != 29 || want.NotFound != 100 {
				t.Fatalf("%s first: synchronous %d/%d/%d", first, want.Matched, want.Mismatched, want.NotFound)
			}
			j, err := f.data.CreateVerifyJob(ctx, c, code, nil, strings.NewReader(upload.String()))
			if err != nil {
				t.Fatal(err)
			}
			j = waitJob(t, f, c, j.ID, 30*time.Second)
			var out bytes.Buffer
			if _, err := f.data.WriteVerifyJobResult(ctx, c, j.ID, &out); err != nil {
				t.Fatal(err)
			}
			rows, _ := csv.NewReader(&out).ReadAll()
			for i, a := range want.Records {
				if rows[i+1][1] != a.Result || rows[i+1][2] != a.Items["holder"] {
					t.Fatalf("%s first, record %d: job %v, synchronous %+v", first, i, rows[i+1], a)
				}
			}
		}
	})
}

// ----- throughput -----

// BenchmarkVerifyJob compares GOVSHARE_BENCH_VERIFY_RECORDS records
// (default 1,000,000) with a population resource of
// GOVSHARE_BENCH_VERIFY_ROWS people (default 1,000,000) as a comparison
// job, and on PostgreSQL also as a plain SQL join of the same records in
// the same database. It reports records/s of the upload, of the run, and
// of the join:
//
//	GOVSHARE_TEST_POSTGRES=postgres://… go test ./internal/dataservice -run '^$' -bench VerifyJob -benchtime 1x
func BenchmarkVerifyJob(b *testing.B) {
	rows, records := envInt("GOVSHARE_BENCH_VERIFY_ROWS", 1_000_000), envInt("GOVSHARE_BENCH_VERIFY_RECORDS", 1_000_000)
	for _, be := range storetest.Backends() {
		b.Run(be.Name, func(b *testing.B) {
			db := be.Open(b)
			ctx := context.Background()
			start := time.Now()
			data, c, r := populationFixture(b, db, rows)
			b.Logf("%s: %d people loaded in %v", be.Name, rows, time.Since(start).Round(time.Millisecond))
			body, probes := probeFile(rows, records)
			var upload, run, join time.Duration
			for b.Loop() {
				t0 := time.Now()
				j, err := data.CreateVerifyJob(ctx, c, r.Code, []string{"name", "birth_date"}, bytes.NewReader(body))
				if err != nil {
					b.Fatal(err)
				}
				t1 := time.Now()
				upload += t1.Sub(t0)
				jctx, cancel := context.WithCancel(ctx)
				done := data.StartVerifyJobs(jctx)
				for j.State != dataservice.JobDone {
					time.Sleep(20 * time.Millisecond)
					if j, err = data.VerifyJob(ctx, c, j.ID); err != nil || j.State == dataservice.JobFailed {
						b.Fatal(j, err)
					}
				}
				run += time.Since(t1)
				cancel()
				<-done
				b.Logf("job: %d matched, %d mismatched, %d not found; uploaded in %v, compared in %v", j.Matched, j.Mismatched, j.NotFound,
					t1.Sub(t0).Round(time.Millisecond), time.Since(t1).Round(time.Millisecond))
				if db.Dialect() == store.Postgres {
					join += plainJoin(b, db, r, probes)
				}
			}
			n := float64(b.N * records)
			b.ReportMetric(n/upload.Seconds(), "upload-records/s")
			b.ReportMetric(n/run.Seconds(), "run-records/s")
			if join > 0 {
				b.ReportMetric(n/join.Seconds(), "join-records/s")
				b.ReportMetric(join.Seconds()/run.Seconds(), "speed-vs-join")
			}
		})
	}
}

func envInt(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n > 0 {
		return n
	}
	return def
}

// person i of the population: an ID number (two districts, a thousand
// people born each day from 1950 on), a name and a birth date.
func personOf(i int) (id, name, birth string) {
	region := []string{"350102", "350103"}[i%2]
	day := time.Date(1950, 1, 1, 0, 0, 0, 0, time.UTC).AddDate(0, 0, i/1000)
	return checkdigit.SyntheticCitizenID(region, day, i%1000), surnames[i%10] + "测" + strconv.Itoa(i), day.Format("2006-01-02")
}

// populationFixture mounts a population resource of n people, loaded
// once, and grants its comparison to a consumer department.
func populationFixture(tb testing.TB, db *store.DB, n int) (*dataservice.Service, dataservice.Caller, resource.Resource) {
	tb.Helper()
	ctx := context.Background()
	keys, _ := secret.New(make([]byte, 32))
	log, err := audit.Open(db, audit.Options{Key: keys.Derive("audit")})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { log.Close() })
	ids := identity.NewService(db, log, keys, identity.DefaultConfig())
	actor := func(name string, n int, r policy.Role) policy.Actor {
		d, err := ids.SeedDepartment(ctx, identity.DepartmentInput{Name: name, CreditCode: identity.SyntheticCreditCode("350100", n), RegionCode: "350100"})
		if err != nil {
			tb.Fatal(err)
		}
		u, err := ids.SeedUser(ctx, identity.UserInput{Login: fmt.Sprintf("user%d", n), Name: "测试", DeptID: d.ID, Roles: []policy.Role{r}, Password: "Test@Pass2026"}, false, "")
		if err != nil {
			tb.Fatal(err)
		}
		return u.Actor()
	}
	admin, gaj, mzj := actor("市政务信息办", 1, policy.PlatformAdmin), actor("市公安局", 2, policy.DeptAdmin), actor("市民政局", 3, policy.DeptAdmin)
	cat := catalog.NewService(db, log, calendar.Weekdays{}, catalog.DefaultConfig())
	if err := cat.EnsureDefaultTree(ctx); err != nil {
		tb.Fatal(err)
	}
	res := resource.New(db, log, cat, func(context.Context) (quality.Reference, error) { return allRefs{}, nil }, nil)
	shr := share.NewService(db, log, cat, calendar.Weekdays{}, noNotices{}, share.Config{AnswerDays: 10, ProvideDays: 5})
	e, err := cat.CreateEntry(ctx, gaj, catalog.Content{
		Name: "人口基本信息", ClassCode: "101", Abstract: "人口基本信息，供比对任务压测使用。", FormatClass: "database", FormatType: "postgresql",
		Items: []catalog.DataItem{
			{Name: "公民身份号码", MachineName: "id_number", DataType: "C", Length: 18, Key: true},
			{Name: "姓名", MachineName: "name", DataType: "C", Length: 20},
			{Name: "出生日期", MachineName: "birth_date", DataType: "D", Length: 8},
		},
		ShareType: catalog.ShareUnconditional, ShareMethods: []catalog.ShareMethod{catalog.MethodVerify}, OpenType: catalog.OpenClosed, UpdateCycle: "daily",
	})
	for _, step := range []func(context.Context, policy.Actor, int64) (catalog.Entry, error){cat.Submit, cat.Approve, cat.Publish} {
		if err != nil {
			break
		}
		by := admin
		if e.State == catalog.Draft {
			by = gaj
		}
		e, err = step(ctx, by, e.ID)
	}
	var r resource.Resource
	if err == nil {
		r, err = res.Mount(ctx, gaj, e.ID)
	}
	if err != nil {
		tb.Fatal(err)
	}
	pr, pw := io.Pipe()
	go func() {
		w := csv.NewWriter(pw)
		_ = w.Write([]string{"id_number", "name", "birth_date"})
		for i := range n {
			id, name, birth := personOf(i)
			_ = w.Write([]string{id, name, birth})
		}
		w.Flush()
		pw.CloseWithError(w.Error())
	}()
	rows, err := resource.CSVRows(pr)
	if err != nil {
		tb.Fatal(err)
	}
	if b, err := res.Submit(ctx, gaj, r.Code, resource.SubmitOptions{Source: resource.SourceUpload, Detail: "people.csv"}, rows); err != nil || b.Inserted != int64(n) {
		tb.Fatalf("load: %+v %v", b, err)
	}
	if db.Dialect() == store.Postgres {
		if _, err := db.Exec(ctx, "ANALYZE "+strconv.Quote(r.Table)); err != nil {
			tb.Fatal(err)
		}
	}
	if _, err := shr.Apply(ctx, mzj, e.ID, share.Terms{Purpose: "低保对象核对"}); err != nil {
		tb.Fatal(err)
	}
	data := dataservice.New(dataservice.Deps{DB: db, Resources: res, Grants: shr, Audit: log, Masker: mask.New(keys.Derive("mask/hash")), Keys: keys})
	tb.Cleanup(data.Close)
	return data, dataservice.Caller{Actor: mzj, Purpose: "低保对象核对"}, r
}

// probe is one record to compare, for the plain join.
type probe struct{ id, name, birth string }

// probeFile is records people to compare, in random order: most of the
// population, a tenth with a wrong name, a tenth nobody.
func probeFile(population, records int) ([]byte, []probe) {
	rng := rand.New(rand.NewPCG(1, 2))
	var b bytes.Buffer
	b.WriteString("id_number,name,birth_date\n")
	out := make([]probe, records)
	for i := range records {
		id, name, birth := personOf(rng.IntN(population))
		switch i % 10 {
		case 3:
			name = "假名字"
		case 7:
			id = fmt.Sprintf("3501%014d", i) // nobody
		}
		out[i] = probe{id, name, birth}
		fmt.Fprintf(&b, "%s,%s,%s\n", id, name, birth)
	}
	return b.Bytes(), out
}

// plainJoin puts the records in a table of the same database and times
// the SQL join that answers the same question: found, and the items the
// same.
func plainJoin(tb testing.TB, db *store.DB, r resource.Resource, probes []probe) time.Duration {
	tb.Helper()
	ctx := context.Background()
	for _, q := range []string{"DROP TABLE IF EXISTS bench_probes", "CREATE TABLE bench_probes (i BIGINT, id_number TEXT, name TEXT, birth_date TEXT)"} {
		if _, err := db.Exec(ctx, q); err != nil {
			tb.Fatal(err)
		}
	}
	const per = 1000
	for lo := 0; lo < len(probes); lo += per {
		hi := min(lo+per, len(probes))
		args := make([]any, 0, 4*(hi-lo))
		for i, p := range probes[lo:hi] {
			args = append(args, lo+i, p.id, p.name, p.birth)
		}
		q := "INSERT INTO bench_probes VALUES " + strings.TrimSuffix(strings.Repeat("(?, ?, ?, ?), ", hi-lo), ", ")
		if _, err := db.Exec(ctx, q, args...); err != nil {
			tb.Fatal(err)
		}
	}
	if _, err := db.Exec(ctx, "ANALYZE bench_probes"); err != nil {
		tb.Fatal(err)
	}
	start := time.Now()
	var found, same int64
	err := db.QueryRow(ctx, `SELECT COUNT(t.id_number), COUNT(*) FILTER (WHERE t.name::text = p.name AND t.birth_date::text = p.birth_date)
		FROM bench_probes p LEFT JOIN `+strconv.Quote(r.Table)+` t ON t.id_number = p.id_number AND t._deleted_at IS NULL`).Scan(&found, &same)
	if err != nil {
		tb.Fatal(err)
	}
	d := time.Since(start)
	tb.Logf("plain join: %d found, %d matched, in %v", found, same, d.Round(time.Millisecond))
	return d
}
