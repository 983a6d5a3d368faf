package resource_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"govshare/internal/catalog"
	"govshare/internal/resource"
	"govshare/internal/store"
	"govshare/internal/storetest"
)

// ruleCounts sums a batch's report by item/rule.
func ruleCounts(b resource.Batch) map[string]int64 {
	out := map[string]int64{}
	for _, rc := range b.Report.Rules {
		out[rc.Item+"/"+rc.Rule] += rc.Count
	}
	return out
}

func TestReloadTellsInsertsUpdatesUnchangedAndComebacks(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		f := setup(t, db)
		ctx := context.Background()
		r, err := f.svc.Mount(ctx, f.gaj, f.entry.ID)
		if err != nil {
			t.Fatal(err)
		}
		a, b, c := id("350102", 1980, 1, 2, 11), id("350102", 1990, 5, 6, 22), id("350103", 2001, 12, 31, 31)
		head := "citizen_id,name,sex,birth_date,region_code,phone,_op\n"
		if _, err := f.svc.Submit(ctx, f.gaj, r.Code, resource.SubmitOptions{}, csvRows(t, head+
			a+",张三,1,1980-01-02,350102,13800000001,\n"+
			b+",李四,2,1990-05-06,350102,13800000002,\n"+
			c+",王五,1,2001-12-31,350103,13800000003,\n")); err != nil {
			t.Fatal(err)
		}
		if _, err := f.svc.Submit(ctx, f.gaj, r.Code, resource.SubmitOptions{}, csvRows(t, head+c+",,,,,,delete\n")); err != nil {
			t.Fatal(err)
		}
		// Again, in another order: a unchanged (written differently), b
		// changed, c back after its delete, and a delete of a record
		// never seen.
		got, err := f.svc.Submit(ctx, f.gaj, r.Code, resource.SubmitOptions{}, csvRows(t, head+
			c+",王五,1,2001-12-31,350103,13800000003,\n"+
			b+",李四,2,1990-05-06,350103,13800000002,update\n"+
			" "+a+" ,张三,1,19800102,350102,13800000001,\n"+
			id("110105", 1970, 7, 7, 77)+",,,,,,delete\n"))
		if err != nil {
			t.Fatal(err)
		}
		if got.Inserted != 1 || got.Updated != 1 || got.Unchanged != 1 || got.Deleted != 0 || got.Quarantined != 0 {
			t.Fatalf("reload: %+v", got)
		}
		r, _ = f.svc.ByCode(ctx, r.Code)
		if r.RecordCount != 3 {
			t.Fatalf("records: %d", r.RecordCount)
		}
		vs, _, err := f.svc.History(ctx, f.gaj, r.Code, []string{c}, time.Time{})
		if err != nil || len(vs) != 3 || vs[0].Op != "insert" || vs[1].Op != "delete" || vs[2].Op != "insert" || vs[2].Batch != got.ID {
			t.Fatalf("history of the record back after a delete: %+v %v", vs, err)
		}
		vs, _, _ = f.svc.History(ctx, f.gaj, r.Code, []string{a}, time.Time{})
		if len(vs) != 1 {
			t.Fatalf("an unchanged record got history: %+v", vs)
		}
		var live int64
		if err := db.QueryRow(ctx, `SELECT COUNT(*) FROM `+r.Table+` WHERE "_deleted_at" IS NULL`).Scan(&live); err != nil || live != 3 {
			t.Fatalf("live records %d %v", live, err)
		}
	})
}

// TestRepeatsAreFoundAcrossTheWholeBatch sends a batch larger than the
// chunks it travels in, with keys and unique values repeated far apart:
// the first occurrence wins, every later one is quarantined, examples are
// the first rows.
func TestRepeatsAreFoundAcrossTheWholeBatch(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		f := setup(t, db)
		ctx := context.Background()
		r, err := f.svc.Mount(ctx, f.gaj, f.entry.ID)
		if err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		b.WriteString("citizen_id,name,phone,_op\n")
		const n = 2600
		key := func(i int) string { return id("350102", 1950+i/1000, 1+i/28%12, 1+i%28, i%1000) }
		for i := range n {
			k, phone, op := key(i), fmt.Sprintf("139%08d", i), ""
			switch i {
			case 1500, 2500: // the key of row 3 (line 4), twice
				k = key(2)
			case 2001: // the key of row 1001, as a delete
				k, op = key(1000), "delete"
			case 1200, 2550: // the phone of row 11 (line 12)
				phone = fmt.Sprintf("139%08d", 10)
			}
			fmt.Fprintf(&b, "%s,某人,%s,%s\n", k, phone, op)
		}
		got, err := f.svc.Submit(ctx, f.gaj, r.Code, resource.SubmitOptions{MaxErrors: -1}, csvRows(t, b.String()))
		if err != nil {
			t.Fatal(err)
		}
		rules := ruleCounts(got)
		if got.Inserted != n-5 || got.Quarantined != 5 || rules["citizen_id/duplicate_key"] != 3 || rules["phone/unique"] != 2 {
			t.Fatalf("batch %+v, rules %v", got, rules)
		}
		for _, rc := range got.Report.Rules {
			want := map[string][]int64{"duplicate_key": {1501, 2002, 2501}, "unique": {1201, 2551}}[rc.Rule]
			if !slices.Equal(rc.Rows, want) {
				t.Errorf("%s examples %v, want %v", rc.Rule, rc.Rows, want)
			}
		}
		q, err := f.svc.Quarantine(ctx, f.gaj, r.Code, "", 0)
		if err != nil || len(q) != 5 {
			t.Fatalf("quarantine %d %v", len(q), err)
		}
		for _, x := range q {
			if x.Row == 2002 && (x.Op != "delete" || x.Values[0] != key(1000)) || len(x.Values) != len(r.Visible()) {
				t.Errorf("quarantined %+v", x)
			}
		}
		// A unique value held by a live record with another key is a
		// clash; the same record sending its own value again is not.
		got, err = f.svc.Submit(ctx, f.gaj, r.Code, resource.SubmitOptions{}, csvRows(t, "citizen_id,name,phone\n"+
			key(10)+",某人,13900000010\n"+id("350103", 1999, 9, 9, 99)+",新人,13900000010\n"))
		if err != nil || got.Quarantined != 1 || got.Unchanged != 1 || ruleCounts(got)["phone/unique"] != 1 {
			t.Fatalf("against live records: %+v %v", got, err)
		}
	})
}

// TestRepeatsCompareValuesAsTheDatabaseDoes: a numeric key written two
// ways is one key; a date-time key too.
func TestRepeatsCompareValuesAsTheDatabaseDoes(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		f := setup(t, db)
		ctx := context.Background()
		c := people()
		c.Name = "测量记录"
		c.Items = []catalog.DataItem{
			{Name: "编号", MachineName: "no", DataType: "N", Length: 20, Key: true},
			{Name: "时间", MachineName: "at", DataType: "T", Length: 20, Key: true},
			{Name: "序号", MachineName: "seq", DataType: "I", Length: 10, QualityRule: "unique"},
			{Name: "读数", MachineName: "reading", DataType: "F", Length: 20},
		}
		e := f.publish(t, c)
		r, err := f.svc.Mount(ctx, f.gaj, e.ID)
		if err != nil {
			t.Fatal(err)
		}
		got, err := f.svc.Submit(ctx, f.gaj, r.Code, resource.SubmitOptions{}, csvRows(t, "no,at,seq,reading\n"+
			"1.50,2026-03-01 08:00:00,7,1\n"+
			"1.5,2026-03-01T00:00:00Z,8,2\n"+ // the same instant
			"2,2026-03-01 08:00:00,007,3\n"+ // 7 again
			"+1.500,2026-03-01 08:00:01,9,4\n"))
		if err != nil {
			t.Fatal(err)
		}
		if rules := ruleCounts(got); got.Inserted != 2 || rules["no/duplicate_key"] != 1 || rules["seq/unique"] != 1 {
			t.Fatalf("batch %+v, rules %v", got, rules)
		}
	})
}

// TestALargeBatchIntoAFilledTableKeepsItsIndexes: a batch bigger than
// the table rebuilds the unique items' indexes; they are there after it
// and still find clashes.
func TestALargeBatchIntoAFilledTableKeepsItsIndexes(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		f := setup(t, db)
		ctx := context.Background()
		r, err := f.svc.Mount(ctx, f.gaj, f.entry.ID)
		if err != nil {
			t.Fatal(err)
		}
		batch := func(from, to int) string {
			var b strings.Builder
			b.WriteString("citizen_id,name,phone\n")
			for i := from; i < to; i++ {
				fmt.Fprintf(&b, "%s,某人,137%08d\n", id("350102", 1960+i/300, 1+i/28%12, 1+i%28, i%1000), i)
			}
			return b.String()
		}
		for _, span := range [][2]int{{0, 10}, {10, 50}, {50, 60}} {
			got, err := f.svc.Submit(ctx, f.gaj, r.Code, resource.SubmitOptions{}, csvRows(t, batch(span[0], span[1])))
			if err != nil || got.Inserted != int64(span[1]-span[0]) {
				t.Fatalf("batch %v: %+v %v", span, got, err)
			}
		}
		q := "SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND name = ?"
		if db.Dialect() == store.Postgres {
			q = "SELECT COUNT(*) FROM pg_indexes WHERE schemaname = current_schema() AND indexname = ?"
		}
		var n int
		if err := db.QueryRow(ctx, q, r.Table+"_u_phone").Scan(&n); err != nil || n != 1 {
			t.Fatalf("unique item's index: %d %v", n, err)
		}
		got, err := f.svc.Submit(ctx, f.gaj, r.Code, resource.SubmitOptions{}, csvRows(t, "citizen_id,name,phone\n"+id("350103", 2000, 1, 1, 1)+",某人,13700000042\n"))
		if err != nil || got.Quarantined != 1 {
			t.Fatalf("clash after the rebuild: %+v %v", got, err)
		}
		r, _ = f.svc.ByCode(ctx, r.Code)
		if r.RecordCount != 60 {
			t.Fatalf("records %d", r.RecordCount)
		}
	})
}

// TestABrokenFileChangesNothing: a file that cannot be read half way
// through fails its batch, applies nothing, and the same id can be sent
// again; the connection it used serves the next batch.
func TestABrokenFileChangesNothing(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		f := setup(t, db)
		ctx := context.Background()
		r, err := f.svc.Mount(ctx, f.gaj, f.entry.ID)
		if err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		b.WriteString("citizen_id,name\n")
		for i := range 2500 {
			fmt.Fprintf(&b, "%s,某人\n", id("350102", 1970+i/300, 1+i/28%12, 1+i%28, i%1000))
		}
		good := b.String()
		_, err = f.svc.Submit(ctx, f.gaj, r.Code, resource.SubmitOptions{ClientBatchID: "x"}, csvRows(t, good+"\"unterminated,某人\n"))
		wantCode(t, err, "resource.format_invalid")
		r, _ = f.svc.ByCode(ctx, r.Code)
		if r.RecordCount != 0 {
			t.Fatalf("a broken file stored %d records", r.RecordCount)
		}
		for range 10 { // more batches than the pool has connections
			if _, err := f.svc.Submit(ctx, f.gaj, r.Code, resource.SubmitOptions{}, csvRows(t, "citizen_id,name\n"+id("350103", 1999, 1, 1, 1)+",某人\n")); err != nil {
				t.Fatal(err)
			}
		}
		got, err := f.svc.Submit(ctx, f.gaj, r.Code, resource.SubmitOptions{ClientBatchID: "x"}, csvRows(t, good))
		if err != nil || got.Inserted != 2500 {
			t.Fatalf("the same id again: %+v %v", got, err)
		}
	})
}

// TestBatchesOfOneResourceAtOnce: two large batches with keys in common,
// sent together, are applied one after the other; the counts add up.
func TestBatchesOfOneResourceAtOnce(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		f := setup(t, db)
		ctx := context.Background()
		r, err := f.svc.Mount(ctx, f.gaj, f.entry.ID)
		if err != nil {
			t.Fatal(err)
		}
		batch := func(from, to int, name string) string {
			var b strings.Builder
			b.WriteString("citizen_id,name,phone\n")
			for i := from; i < to; i++ {
				fmt.Fprintf(&b, "%s,%s,135%08d\n", id("350102", 1940+i/1000, 1+i/28%12, 1+i%28, i%1000), name, i)
			}
			return b.String()
		}
		files := []string{batch(0, 12000, "甲"), batch(6000, 18000, "乙")}
		got := make([]resource.Batch, 2)
		errs := make([]error, 2)
		var wg sync.WaitGroup
		for i := range files {
			wg.Go(func() {
				rows, err := resource.CSVRows(strings.NewReader(files[i]))
				if err == nil {
					got[i], err = f.svc.Submit(ctx, f.gaj, r.Code, resource.SubmitOptions{}, rows)
				}
				errs[i] = err
			})
		}
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		if ins, upd := got[0].Inserted+got[1].Inserted, got[0].Updated+got[1].Updated; ins != 18000 || upd != 6000 || got[0].Quarantined+got[1].Quarantined != 0 {
			t.Fatalf("batches %+v\n%+v", got[0], got[1])
		}
		r, _ = f.svc.ByCode(ctx, r.Code)
		var live, hist int64
		if err := db.QueryRow(ctx, `SELECT COUNT(*) FROM `+r.Table+` WHERE "_deleted_at" IS NULL`).Scan(&live); err != nil {
			t.Fatal(err)
		}
		if err := db.QueryRow(ctx, `SELECT COUNT(*) FROM `+r.Table+`_hist`).Scan(&hist); err != nil {
			t.Fatal(err)
		}
		// The 6,000 records the second batch changed left their first
		// state in the history.
		if r.RecordCount != 18000 || live != 18000 || hist != 6000 {
			t.Fatalf("record count %d, live %d, history %d", r.RecordCount, live, hist)
		}
	})
}

// BenchmarkSubmitTenRecords is the push API's usual batch: ten records,
// one of them new each time.
func BenchmarkSubmitTenRecords(b *testing.B) {
	for _, be := range storetest.Backends() {
		b.Run(be.Name, func(b *testing.B) {
			f := setup(b, be.Open(b))
			ctx := context.Background()
			r, err := f.svc.Mount(ctx, f.gaj, f.entry.ID)
			if err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for i := range b.N {
				var s strings.Builder
				s.WriteString("citizen_id,name,phone\n")
				for j := range 10 {
					k := i + j
					fmt.Fprintf(&s, "%s,某人,136%08d\n", id("350102", 1930+k/10000, 1+k/28%12, 1+k%28, k%1000), k)
				}
				rows, _ := resource.CSVRows(strings.NewReader(s.String()))
				if _, err := f.svc.Submit(ctx, f.gaj, r.Code, resource.SubmitOptions{}, rows); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestABatchOfAStoppedServerIsTakenOver: a batch left running by a
// server that died mid-run is refused while its lease holds and run again
// under the same id once it lapsed.
func TestABatchOfAStoppedServerIsTakenOver(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		f := setup(t, db)
		ctx := context.Background()
		r, err := f.svc.Mount(ctx, f.gaj, f.entry.ID)
		if err != nil {
			t.Fatal(err)
		}
		// What a server that died mid-run leaves: the batch marked running.
		if _, err := db.Exec(ctx, `INSERT INTO resource_batches (resource_id, client_batch_id, source, source_detail, state, submitted_by, submitted_app, started_at)
			VALUES (?, 'n1-j1-r1-1', 'node', '', 'running', 0, '', ?)`, r.ID, *f.clock); err != nil {
			t.Fatal(err)
		}
		file := "citizen_id,name\n" + id("350102", 1980, 5, 6, 7) + ",某人\n"
		_, err = f.svc.Submit(ctx, f.gaj, r.Code, resource.SubmitOptions{ClientBatchID: "n1-j1-r1-1"}, csvRows(t, file))
		wantCode(t, err, "resource.batch_running")
		*f.clock = f.clock.Add(time.Minute) // nobody renewed it
		got, err := f.svc.Submit(ctx, f.gaj, r.Code, resource.SubmitOptions{ClientBatchID: "n1-j1-r1-1"}, csvRows(t, file))
		if err != nil || got.Inserted != 1 || got.State != "applied" {
			t.Fatalf("taken over: %+v %v", got, err)
		}
	})
}

// What a caller writes in a batch's transaction (SubmitOptions.Applying)
// commits with the batch, loaded or applied, or not at all: its error
// rolls the batch back, and a replay does not call it again.
func TestTheCallersRecordCommitsWithTheBatch(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		f := setup(t, db)
		ctx := context.Background()
		r, err := f.svc.Mount(ctx, f.gaj, f.entry.ID)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.Exec(ctx, "CREATE TABLE applying_probe (batch_id BIGINT NOT NULL, inserted BIGINT NOT NULL)"); err != nil {
			t.Fatal(err)
		}
		probe := func(fail error) func(context.Context, resource.Execer, resource.Batch) error {
			return func(ctx context.Context, tx resource.Execer, b resource.Batch) error {
				if _, err := tx.Exec(ctx, "INSERT INTO applying_probe (batch_id, inserted) VALUES (?, ?)", b.ID, b.Inserted); err != nil {
					return err
				}
				return fail
			}
		}
		count := func(q string) int64 {
			var n int64
			if err := db.QueryRow(ctx, q).Scan(&n); err != nil {
				t.Fatal(err)
			}
			return n
		}
		head := "citizen_id,name,sex,birth_date,region_code,phone,_op\n"
		a, b, c := id("350102", 1980, 1, 2, 11), id("350102", 1990, 5, 6, 22), id("350103", 2001, 12, 31, 31)
		first := head + a + ",张三,1,1980-01-02,350102,13800000001,\n" + b + ",李四,2,1990-05-06,350102,13800000002,\n"
		// Into the empty resource: loaded.
		got, err := f.svc.Submit(ctx, f.gaj, r.Code, resource.SubmitOptions{ClientBatchID: "one", Applying: probe(nil)}, csvRows(t, first))
		if err != nil {
			t.Fatal(err)
		}
		if n := count("SELECT COUNT(*) FROM applying_probe WHERE inserted = 2 AND batch_id = " + fmt.Sprint(got.ID)); n != 1 {
			t.Fatalf("the caller's record of the load: %d rows", n)
		}
		second := head + c + ",王五,1,2001-12-31,350103,13800000003,\n" + b + ",李四,2,1990-05-06,350103,13800000002,\n"
		refused := fmt.Errorf("the caller says no")
		if _, err := f.svc.Submit(ctx, f.gaj, r.Code, resource.SubmitOptions{ClientBatchID: "two", Applying: probe(refused)}, csvRows(t, second)); !errors.Is(err, refused) {
			t.Fatalf("Submit returned %v, want the caller's error", err)
		}
		if n, live := count("SELECT COUNT(*) FROM applying_probe"), count(`SELECT COUNT(*) FROM `+r.Table+` WHERE "_deleted_at" IS NULL`); n != 1 || live != 2 {
			t.Fatalf("after a refused apply: %d records of the caller, %d live records; want 1 and 2", n, live)
		}
		got, err = f.svc.Submit(ctx, f.gaj, r.Code, resource.SubmitOptions{ClientBatchID: "two", Applying: probe(nil)}, csvRows(t, second))
		if err != nil || got.Inserted != 1 || got.Updated != 1 {
			t.Fatalf("the batch sent again: %+v %v", got, err)
		}
		again, err := f.svc.Submit(ctx, f.gaj, r.Code, resource.SubmitOptions{ClientBatchID: "two", Applying: probe(refused)}, csvRows(t, second))
		if err != nil || !again.Replayed {
			t.Fatalf("a replay: %+v %v", again, err)
		}
		if n := count("SELECT COUNT(*) FROM applying_probe"); n != 2 {
			t.Fatalf("%d records of the caller, want 2", n)
		}
	})
}
