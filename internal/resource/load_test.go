package resource_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"govshare/internal/catalog"
	"govshare/internal/quality"
	"govshare/internal/resource"
	"govshare/internal/store"
	"govshare/internal/storetest"
)

// loads remembers, batch by batch, whether the service loaded the batch
// into an empty table or staged it, from the service's log.
type loads struct {
	mu     sync.Mutex
	loaded map[int64]bool
}

func (l *loads) Enabled(context.Context, slog.Level) bool { return true }
func (l *loads) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *loads) WithGroup(string) slog.Handler            { return l }
func (l *loads) Handle(_ context.Context, r slog.Record) error {
	var batch int64
	var loaded, seen bool
	r.Attrs(func(a slog.Attr) bool {
		switch a.Key {
		case "batch":
			batch = a.Value.Int64()
		case "loaded":
			loaded, seen = a.Value.Bool(), true
		}
		return true
	})
	if seen {
		l.mu.Lock()
		defer l.mu.Unlock()
		if l.loaded == nil {
			l.loaded = map[int64]bool{}
		}
		l.loaded[batch] = loaded
	}
	return nil
}

func (l *loads) of(id int64) (loaded, known bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	loaded, known = l.loaded[id]
	return loaded, known
}

// watched is the fixture's service again, with its log watched.
func (f *fx) watched(db *store.DB) (*resource.Service, *loads) {
	l := &loads{}
	svc := resource.New(db, f.log, f.cat, func(context.Context) (quality.Reference, error) { return refs{}, nil }, slog.New(l))
	svc.SetClock(func() time.Time { return *f.clock })
	return svc, l
}

// tricky is a batch of 2,600 rows, more than one chunk, with every case
// the repeat filter must get right: bad rows; a key repeated far apart,
// by a delete, and after a delete; a phone repeated, repeated by a row
// whose key is repeated, and taken again after the row holding it was put
// aside; empty phones; a delete of a key never seen.
func tricky() string {
	key := func(i int) string { return id("350102", 1950+i/1000, 1+i/28%12, 1+i%28, i%1000) }
	var b strings.Builder
	b.WriteString("citizen_id,name,sex,phone,_op\n")
	for i := range 2600 {
		k, name, sex, phone, op := key(i), "某人", "1", fmt.Sprintf("139%08d", i), ""
		switch {
		case i%97 == 5:
			k = k[:17] + string("0123456789X"[(strings.IndexByte("0123456789X", k[17])+1)%11]) // check character
		case i%89 == 7:
			name = "" // required
		case i%83 == 11:
			sex = "5" // not a code
		case i%7 == 0:
			phone = ""
		}
		switch i {
		case 1500, 2500: // the key of row 3, twice
			k = key(3)
		case 2001: // a delete of the key of row 1001
			k, op = key(1001), "delete"
		case 40: // a delete of a key first seen here, then upserted
			k, op = key(5000), "delete"
		case 60:
			k = key(5000)
		case 1200, 2550: // the phone of row 10
			phone = fmt.Sprintf("139%08d", 10)
		case 700: // the key of row 4, with a phone nobody holds yet
			k, phone = key(4), "13700000700"
		case 800: // that phone again: its first holder was put aside
			phone = "13700000700"
		case 900: // key and phone of row 12
			k, phone = key(12), fmt.Sprintf("139%08d", 12)
		case 2599: // a delete of a key never seen
			k, op = key(7000), "delete"
		}
		fmt.Fprintf(&b, "%s,%s,%s,%s,%s\n", k, name, sex, phone, op)
	}
	return b.String()
}

// TestLoadingAnEmptyResourceDecidesAsStagingDoes: the same batch into an
// empty resource, loaded straight into its table, and into one that holds
// a record (staged), comes out the same: counts, report, quarantine,
// records; then the loaded resource takes batches as any other.
func TestLoadingAnEmptyResourceDecidesAsStagingDoes(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		f := setup(t, db)
		ctx := context.Background()
		svc, paths := f.watched(db)
		c := people()
		c.Name = "户籍登记信息(副本)"
		other := f.publish(t, c)
		empty, err := svc.Mount(ctx, f.gaj, f.entry.ID)
		if err != nil {
			t.Fatal(err)
		}
		filled, err := svc.Mount(ctx, f.gaj, other.ID)
		if err != nil {
			t.Fatal(err)
		}
		seed := id("110105", 1945, 5, 5, 555)
		if _, err := svc.Submit(ctx, f.gaj, filled.Code, resource.SubmitOptions{}, csvRows(t, "citizen_id,name,phone\n"+seed+",先来,13600000000\n")); err != nil {
			t.Fatal(err)
		}
		var got [2]resource.Batch
		for i, r := range []resource.Resource{empty, filled} {
			if got[i], err = svc.Submit(ctx, f.gaj, r.Code, resource.SubmitOptions{MaxErrors: -1}, csvRows(t, tricky())); err != nil {
				t.Fatal(err)
			}
		}
		if loaded, _ := paths.of(got[0].ID); !loaded {
			t.Fatal("the batch into the empty resource was not loaded")
		}
		if loaded, known := paths.of(got[1].ID); loaded || !known {
			t.Fatal("the batch into the filled resource was not staged")
		}
		a, b := got[0], got[1]
		if a.RowsTotal != 2600 || a.Inserted != b.Inserted || a.Updated != 0 || b.Updated != 0 || a.Unchanged != b.Unchanged ||
			a.Deleted != 0 || b.Deleted != 0 || a.Quarantined != b.Quarantined {
			t.Fatalf("loaded %+v\nstaged %+v", a, b)
		}
		rules := ruleCounts(a)
		for rule, n := range map[string]int64{"citizen_id/duplicate_key": 6, "phone/unique": 2} {
			if rules[rule] != n {
				t.Errorf("%s: %d, want %d (%v)", rule, rules[rule], n, rules)
			}
		}
		if fmt.Sprint(a.Report) != fmt.Sprint(b.Report) {
			t.Errorf("reports differ:\nloaded %v\nstaged %v", a.Report, b.Report)
		}
		var quarantined [2][]string
		for i, r := range []resource.Resource{empty, filled} {
			q, err := svc.Quarantine(ctx, f.gaj, r.Code, "", 1000)
			if err != nil {
				t.Fatal(err)
			}
			for _, x := range q {
				quarantined[i] = append(quarantined[i], fmt.Sprint(x.Row, x.Op, x.Values, x.Violations))
			}
		}
		if int64(len(quarantined[0])) != a.Quarantined || !slices.Equal(quarantined[0], quarantined[1]) {
			t.Errorf("quarantines differ: %d and %d entries", len(quarantined[0]), len(quarantined[1]))
		}
		records := func(r resource.Resource) []string {
			rows, err := db.Query(ctx, fmt.Sprintf(`SELECT "citizen_id", "name", COALESCE("sex", ''), COALESCE("phone", ''), "_source",
				CASE WHEN "_batch_created" = "_batch_updated" AND "_deleted_at" IS NULL THEN 'first' ELSE 'changed' END
				FROM %s WHERE "citizen_id" <> ? ORDER BY "citizen_id"`, r.Table), seed)
			if err != nil {
				t.Fatal(err)
			}
			defer rows.Close()
			var out []string
			for rows.Next() {
				var v [6]string
				if err := rows.Scan(&v[0], &v[1], &v[2], &v[3], &v[4], &v[5]); err != nil {
					t.Fatal(err)
				}
				out = append(out, strings.Join(v[:], "|"))
			}
			return out
		}
		if ra, rb := records(empty), records(filled); int64(len(ra)) != a.Inserted || !slices.Equal(ra, rb) {
			t.Errorf("records differ: %d loaded, %d staged", len(ra), len(rb))
		}
		for _, r := range []resource.Resource{empty, filled} {
			var hist int64
			if err := db.QueryRow(ctx, `SELECT COUNT(*) FROM `+r.Table+`_hist`).Scan(&hist); err != nil || hist != 0 {
				t.Errorf("%s: %d history rows after first states only (%v)", r.Table, hist, err)
			}
			r, _ = svc.ByCode(ctx, r.Code)
			if want := a.Inserted + int64(map[bool]int{true: 1}[r.ID == filled.ID]); r.RecordCount != want {
				t.Errorf("%s: record count %d, want %d", r.Table, r.RecordCount, want)
			}
		}

		// The indexes dropped for the load are back: a clash with a
		// loaded phone is found, a loaded key is updated.
		first := strings.Split(strings.Split(tricky(), "\n")[2], ",")
		next, err := svc.Submit(ctx, f.gaj, empty.Code, resource.SubmitOptions{}, csvRows(t, "citizen_id,name,phone\n"+
			first[0]+",改名,"+first[3]+"\n"+id("350103", 2001, 1, 1, 1)+",新人,"+first[3]+"\n"))
		if err != nil || next.Updated != 1 || next.Quarantined != 1 || ruleCounts(next)["phone/unique"] != 1 {
			t.Fatalf("after the load: %+v %v", next, err)
		}
		if loaded, _ := paths.of(next.ID); loaded {
			t.Error("a batch into a filled resource was loaded")
		}
		q := "SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND name IN (?, ?)"
		if db.Dialect() == store.Postgres {
			q = "SELECT COUNT(*) FROM pg_indexes WHERE schemaname = current_schema() AND indexname IN (?, ?)"
		}
		keyIndex := empty.Table + "_key"
		if db.Dialect() == store.Postgres {
			keyIndex = empty.Table + "_pkey"
		}
		var n int
		if err := db.QueryRow(ctx, q, keyIndex, empty.Table+"_u_phone").Scan(&n); err != nil || n != 2 {
			t.Fatalf("indexes after the load: %d %v", n, err)
		}

		// Every loaded record names the load's batch and one time in its
		// lineage, as the staged upserts of the batch do.
		var batches, times, sources int
		if err := db.QueryRow(ctx, `SELECT COUNT(DISTINCT "_batch_created"), COUNT(DISTINCT "_created_at"), COUNT(DISTINCT "_source") FROM `+
			empty.Table+` WHERE "_batch_created" = ? AND "_batch_updated" = ? AND "_created_at" = "_updated_at" AND "_source" = 'api'`,
			a.ID, a.ID).Scan(&batches, &times, &sources); err != nil || batches != 1 || times != 1 || sources != 1 {
			t.Fatalf("lineage of the loaded records: %d batches, %d times, %d sources (%v)", batches, times, sources, err)
		}
		var ofLoad int64
		if err := db.QueryRow(ctx, `SELECT COUNT(*) FROM `+empty.Table+` WHERE "_batch_created" = ?`, a.ID).Scan(&ofLoad); err != nil || ofLoad != a.Inserted {
			t.Fatalf("%d records of the load's batch, want %d (%v)", ofLoad, a.Inserted, err)
		}
		if db.Dialect() == store.Postgres {
			// The lineage defaults the load set are gone.
			var defaults int
			if err := db.QueryRow(ctx, `SELECT COUNT(*) FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = ?
				AND column_default IS NOT NULL`, empty.Table).Scan(&defaults); err != nil || defaults != 0 {
				t.Fatalf("%d columns keep a default after the load (%v)", defaults, err)
			}
		}
	})
}

// TestALoadOverTheErrorLimitLeavesTheTableAsItWas: nothing is loaded,
// the indexes are there, and the same batch with a higher limit loads.
func TestALoadOverTheErrorLimitLeavesTheTableAsItWas(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		f := setup(t, db)
		ctx := context.Background()
		svc, paths := f.watched(db)
		r, err := svc.Mount(ctx, f.gaj, f.entry.ID)
		if err != nil {
			t.Fatal(err)
		}
		_, err = svc.Submit(ctx, f.gaj, r.Code, resource.SubmitOptions{ClientBatchID: "big", MaxErrors: 10}, csvRows(t, tricky()))
		wantCode(t, err, "resource.too_many_errors")
		var rows int64
		if err := db.QueryRow(ctx, `SELECT COUNT(*) FROM `+r.Table).Scan(&rows); err != nil || rows != 0 {
			t.Fatalf("a refused load left %d rows (%v)", rows, err)
		}
		got, err := svc.Submit(ctx, f.gaj, r.Code, resource.SubmitOptions{ClientBatchID: "big", MaxErrors: -1}, csvRows(t, tricky()))
		if loaded, _ := paths.of(got.ID); err != nil || !loaded || got.Inserted == 0 {
			t.Fatalf("loaded again: %+v %v (loaded %v)", got, err, loaded)
		}
		// A key of the load sent again by another batch is a repeat of
		// nothing: an update.
		k := strings.Split(strings.Split(tricky(), "\n")[1], ",")[0]
		again, err := svc.Submit(ctx, f.gaj, r.Code, resource.SubmitOptions{}, csvRows(t, "citizen_id,name\n"+k+",别名\n"))
		if err != nil || again.Updated != 1 {
			t.Fatalf("update after the load: %+v %v", again, err)
		}
	})
}

// TestHistoryHoldsTheStatesARecordLeft: a record's first state is the
// record itself; each change, delete or return puts the state it ends in
// the history; History gives every state with how it came about, and
// what the record said at any time.
func TestHistoryHoldsTheStatesARecordLeft(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		f := setup(t, db)
		ctx := context.Background()
		r, err := f.svc.Mount(ctx, f.gaj, f.entry.ID)
		if err != nil {
			t.Fatal(err)
		}
		a := id("350102", 1980, 1, 2, 11)
		send := func(line string) resource.Batch {
			t.Helper()
			*f.clock = f.clock.Add(time.Hour)
			b, err := f.svc.Submit(ctx, f.gaj, r.Code, resource.SubmitOptions{}, csvRows(t, "citizen_id,name,phone,_op\n"+line+"\n"))
			if err != nil {
				t.Fatal(err)
			}
			return b
		}
		history := func(at time.Time) string {
			t.Helper()
			vs, _, err := f.svc.History(ctx, f.gaj, r.Code, []string{a}, at)
			if err != nil {
				t.Fatal(err)
			}
			var out []string
			for _, v := range vs {
				out = append(out, fmt.Sprintf("%s %s #%d", v.Op, v.Values[1], v.Batch))
			}
			return strings.Join(out, ", ")
		}
		stored := func() (n int64) {
			t.Helper()
			if err := db.QueryRow(ctx, `SELECT COUNT(*) FROM `+r.Table+`_hist`).Scan(&n); err != nil {
				t.Fatal(err)
			}
			return n
		}
		b1 := send(a + ",张三,13800000001,")
		t1 := *f.clock
		if h := history(time.Time{}); h != fmt.Sprintf("insert 张三 #%d", b1.ID) || stored() != 0 {
			t.Fatalf("after the first insert: %s, %d stored", h, stored())
		}
		b2 := send(a + ",张三丰,13800000001,")
		b3 := send(a + ",,,delete")
		t3 := *f.clock
		b4 := send(a + ",张三,13800000009,")
		b5 := send(a + ",张老三,13800000009,")
		send(a + ",张老三,13800000009,") // unchanged: no state left behind
		want := fmt.Sprintf("insert 张三 #%d, update 张三丰 #%d, delete 张三丰 #%d, insert 张三 #%d, update 张老三 #%d", b1.ID, b2.ID, b3.ID, b4.ID, b5.ID)
		if h := history(time.Time{}); h != want || stored() != 4 {
			t.Fatalf("history\n%s, %d stored\nwant\n%s, 4 stored", h, stored(), want)
		}
		if h := history(t1.Add(30 * time.Minute)); h != fmt.Sprintf("insert 张三 #%d", b1.ID) {
			t.Errorf("as of the first hour: %s", h)
		}
		if h := history(t3.Add(30 * time.Minute)); !strings.HasSuffix(h, fmt.Sprintf("delete 张三丰 #%d", b3.ID)) {
			t.Errorf("while deleted: %s", h)
		}
		if h := history(t1.Add(-time.Hour)); h != "" {
			t.Errorf("before the record: %s", h)
		}
	})
}

// TestResourcesMountedBeforeKeepWorking: a table made by the code before
// (its key the primary key, every state in the history, the current one
// too) takes batches, staged when it cannot be loaded, and History shows
// each state once.
func TestResourcesMountedBeforeKeepWorking(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		f := setup(t, db)
		ctx := context.Background()
		svc, paths := f.watched(db)
		r, err := svc.Mount(ctx, f.gaj, f.entry.ID)
		if err != nil {
			t.Fatal(err)
		}
		text, date, ts, hid := "TEXT", "TEXT", "TIMESTAMP", `"_hid" INTEGER PRIMARY KEY`
		if db.Dialect() == store.Postgres {
			text, date, ts, hid = "VARCHAR(20)", "DATE", "TIMESTAMPTZ", `"_hid" BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY`
		}
		cols := fmt.Sprintf(`"citizen_id" %[1]s NOT NULL, "name" %[1]s, "sex" %[1]s, "birth_date" %[2]s, "region_code" %[1]s, "phone" %[1]s`, text, date)
		// Their key and unique items were not bytewise.
		old := slices.Clone(r.Columns)
		for i := range old {
			old[i].Bytewise = false
		}
		raw, _ := json.Marshal(old)
		if _, err := db.Exec(ctx, `UPDATE resources SET columns = ? WHERE id = ?`, string(raw), r.ID); err != nil {
			t.Fatal(err)
		}
		for _, q := range []string{
			`DROP TABLE ` + r.Table, `DROP TABLE ` + r.Table + `_hist`,
			fmt.Sprintf(`CREATE TABLE %s (%s, "_batch_created" BIGINT NOT NULL, "_batch_updated" BIGINT NOT NULL, "_source" TEXT NOT NULL,
				"_created_at" %[3]s NOT NULL, "_updated_at" %[3]s NOT NULL, "_deleted_at" %[3]s, PRIMARY KEY ("citizen_id"))`, r.Table, cols, ts),
			fmt.Sprintf(`CREATE TABLE %s_hist (%s, %s, "_op" TEXT NOT NULL, "_batch" BIGINT NOT NULL, "_source" TEXT NOT NULL, "_at" %s NOT NULL)`, r.Table, hid, cols, ts),
			fmt.Sprintf(`CREATE INDEX %[1]s_hist_key ON %[1]s_hist ("citizen_id", "_at")`, r.Table),
			fmt.Sprintf(`CREATE INDEX %[1]s_u_phone ON %[1]s ("phone")`, r.Table),
		} {
			if _, err := db.Exec(ctx, q); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
		// Into the empty table: PostgreSQL loads (its key was always the
		// primary key), SQLite cannot drop its primary key and stages.
		n := id("350103", 1999, 9, 9, 99)
		first, err := svc.Submit(ctx, f.gaj, r.Code, resource.SubmitOptions{}, csvRows(t, "citizen_id,name,phone\n"+n+",新人,13900000001\n"))
		if err != nil || first.Inserted != 1 {
			t.Fatalf("into the empty table: %+v %v", first, err)
		}
		if loaded, _ := paths.of(first.ID); loaded != (db.Dialect() == store.Postgres) {
			t.Errorf("loaded: %v", loaded)
		}
		// A record written before: its current state in the table and in
		// the history.
		a := id("350102", 1980, 1, 2, 11)
		then := f.clock.Add(-24 * time.Hour)
		if _, err := db.Exec(ctx, `INSERT INTO `+r.Table+` ("citizen_id", "name", "phone", "_batch_created", "_batch_updated", "_source", "_created_at", "_updated_at")
			VALUES (?, '张三', '13800000001', 7, 7, 'upload', ?, ?)`, a, then, then); err != nil {
			t.Fatal(err)
		}
		if _, err := db.Exec(ctx, `INSERT INTO `+r.Table+`_hist ("citizen_id", "name", "phone", "_op", "_batch", "_source", "_at")
			VALUES (?, '张三', '13800000001', 'insert', 7, 'upload', ?)`, a, then); err != nil {
			t.Fatal(err)
		}
		vs, _, err := svc.History(ctx, f.gaj, r.Code, []string{a}, time.Time{})
		if err != nil || len(vs) != 1 || vs[0].Op != "insert" || vs[0].Batch != 7 {
			t.Fatalf("a record written before: %+v %v", vs, err)
		}
		upd, err := svc.Submit(ctx, f.gaj, r.Code, resource.SubmitOptions{}, csvRows(t, "citizen_id,name,phone\n"+a+",张三丰,13800000001\n"))
		if err != nil || upd.Updated != 1 {
			t.Fatalf("update: %+v %v", upd, err)
		}
		vs, _, _ = svc.History(ctx, f.gaj, r.Code, []string{a}, time.Time{})
		if len(vs) != 2 || vs[0].Batch != 7 || vs[0].Values[1] != "张三" || vs[1].Op != "update" || vs[1].Batch != upd.ID {
			t.Fatalf("history across the change: %+v", vs)
		}
		vs, _, _ = svc.History(ctx, f.gaj, r.Code, []string{n}, time.Time{})
		if len(vs) != 1 || vs[0].Op != "insert" || vs[0].Batch != first.ID {
			t.Fatalf("a record written after: %+v", vs)
		}
	})
}

// TestLoadedValuesReadBackAsStagedOnes: every data type, written in its
// awkward forms, reads back the same whether the record was loaded into
// an empty table or staged.
func TestLoadedValuesReadBackAsStagedOnes(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		f := setup(t, db)
		ctx := context.Background()
		svc, paths := f.watched(db)
		c := people()
		c.Items = []catalog.DataItem{
			{Name: "编号", MachineName: "no", DataType: "C", Length: 10, Key: true},
			{Name: "金额", MachineName: "amount", DataType: "N", Length: 30},
			{Name: "日期", MachineName: "day", DataType: "D", Length: 8},
			{Name: "时间", MachineName: "at", DataType: "T", Length: 30},
			{Name: "有效", MachineName: "ok", DataType: "L", Length: 1},
			{Name: "读数", MachineName: "reading", DataType: "F", Length: 30},
			{Name: "次数", MachineName: "times", DataType: "I", Length: 20},
			{Name: "备注", MachineName: "note", DataType: "C", Length: 50},
			{Name: "附件", MachineName: "blob", DataType: "G", Length: 100},
		}
		file := "no,amount,day,at,ok,reading,times,note,blob\n" +
			"a,1.50,2026-03-01,2026-03-01 08:00:00,是,1e-300,007,\"tab\tand \\\\ back\",aGVsbG8=\n" +
			"b,-0.00,20260301,2026-03-01T00:00:00.0000015Z,false,-2.5,-9223372036854775808,新,\n" +
			"c,\"12,345,678,901,234,567,890.123\",1930-1-1,2026-03-01T08:00:00.9999996+08:00,1,1234567.125,0,,AA==\n" +
			"d,0.0001,,,,,,,\n" +
			"e,-100000000.00001,1900-01-01,1970-01-01T00:00:00Z,0,3,9223372036854775807,\" padded \",/w==\n"
		var rs []resource.Resource
		for _, name := range []string{"类型样例", "类型样例(副本)"} {
			c.Name = name
			r, err := svc.Mount(ctx, f.gaj, f.publish(t, c).ID)
			if err != nil {
				t.Fatal(err)
			}
			rs = append(rs, r)
		}
		if _, err := svc.Submit(ctx, f.gaj, rs[1].Code, resource.SubmitOptions{}, csvRows(t, "no\nseed\n")); err != nil {
			t.Fatal(err)
		}
		var got [2]resource.Batch
		for i, r := range rs {
			b, err := svc.Submit(ctx, f.gaj, r.Code, resource.SubmitOptions{}, csvRows(t, file))
			if err != nil || b.Inserted != 5 {
				t.Fatalf("%s: %+v %v", r.Table, b, err)
			}
			got[i] = b
		}
		if loaded, _ := paths.of(got[0].ID); !loaded {
			t.Fatal("not loaded")
		}
		for _, k := range []string{"a", "b", "c", "d", "e"} {
			var vals [2][]string
			for i, r := range rs {
				vs, _, err := svc.History(ctx, f.gaj, r.Code, []string{k}, time.Time{})
				if err != nil || len(vs) != 1 {
					t.Fatalf("%s %s: %+v %v", r.Table, k, vs, err)
				}
				vals[i] = vs[0].Values
			}
			if !slices.Equal(vals[0], vals[1]) {
				t.Errorf("%s: loaded %q, staged %q", k, vals[0], vals[1])
			}
		}
		// Date-times to the microsecond, which History does not show.
		micro := `CAST("at" AS TEXT)`
		if db.Dialect() == store.Postgres {
			micro = `to_char("at" AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US')`
		}
		var times [2]string
		for i, r := range rs {
			if err := db.QueryRow(ctx, `SELECT `+micro+` FROM `+r.Table+` WHERE "no" = 'b'`).Scan(&times[i]); err != nil {
				t.Fatal(err)
			}
		}
		if times[0] != times[1] {
			t.Errorf("date-times: loaded %s, staged %s", times[0], times[1])
		}
	})
}

// TestALoadComparesValuesAsTheDatabaseDoes: into an empty resource, a
// numeric key written two ways is one key, and a unique number too.
func TestALoadComparesValuesAsTheDatabaseDoes(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		f := setup(t, db)
		ctx := context.Background()
		svc, paths := f.watched(db)
		c := people()
		c.Name = "测量记录"
		c.Items = []catalog.DataItem{
			{Name: "编号", MachineName: "no", DataType: "N", Length: 20, Key: true},
			{Name: "序号", MachineName: "seq", DataType: "I", Length: 10, QualityRule: "unique"},
			{Name: "读数", MachineName: "reading", DataType: "F", Length: 20},
		}
		r, err := svc.Mount(ctx, f.gaj, f.publish(t, c).ID)
		if err != nil {
			t.Fatal(err)
		}
		got, err := svc.Submit(ctx, f.gaj, r.Code, resource.SubmitOptions{}, csvRows(t, "no,seq,reading\n"+
			"1.50,7,1\n"+
			"1.5,8,2\n"+ // the key again
			"2,007,3\n"+ // 7 again
			"+1.500,9,4\n"+ // the key again
			"3,10,5\n"))
		if err != nil {
			t.Fatal(err)
		}
		if loaded, _ := paths.of(got.ID); !loaded {
			t.Fatal("not loaded")
		}
		if rules := ruleCounts(got); got.Inserted != 2 || rules["no/duplicate_key"] != 2 || rules["seq/unique"] != 1 {
			t.Fatalf("batch %+v, rules %v", got, rules)
		}
	})
}

// TestALoadBuildsTheChangeIndexAfterIt: a resource with subscribers has
// its change index; a load drops it with the key's and builds it after
// its rows (or, refused, leaves it as it was), and the load's changes
// read back through it.
func TestALoadBuildsTheChangeIndexAfterIt(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		f := setup(t, db)
		ctx := context.Background()
		svc, paths := f.watched(db)
		r, err := svc.Mount(ctx, f.gaj, f.entry.ID)
		if err != nil {
			t.Fatal(err)
		}
		if err := svc.EnsureChangeIndex(ctx, r); err != nil {
			t.Fatal(err)
		}
		indexed := func() bool {
			t.Helper()
			q := "SELECT to_regclass($1) IS NOT NULL"
			name := `"` + r.Table + `_changed"`
			if db.Dialect() == store.SQLite {
				q, name = "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = ?)", r.Table+"_changed"
			}
			var ok bool
			if err := db.QueryRow(ctx, q, name).Scan(&ok); err != nil {
				t.Fatal(err)
			}
			return ok
		}
		_, err = svc.Submit(ctx, f.gaj, r.Code, resource.SubmitOptions{MaxErrors: 10}, csvRows(t, tricky()))
		wantCode(t, err, "resource.too_many_errors")
		if !indexed() {
			t.Fatal("a refused load left the resource without its change index")
		}
		got, err := svc.Submit(ctx, f.gaj, r.Code, resource.SubmitOptions{MaxErrors: -1}, csvRows(t, tricky()))
		if loaded, _ := paths.of(got.ID); err != nil || !loaded || got.Inserted == 0 {
			t.Fatalf("load: %+v %v (loaded %v)", got, err, loaded)
		}
		if !indexed() {
			t.Fatal("the load left the resource without its change index")
		}
		r, _ = svc.ByCode(ctx, r.Code)
		var n int64
		err = svc.Changes(ctx, r, r.Visible(), got.ID, 100, func(rows [][]*string, _ [][]string) error { n += int64(len(rows)); return nil })
		if err != nil || n != got.Inserted {
			t.Fatalf("the load's changes: %d rows (%v), want %d", n, err, got.Inserted)
		}
	})
}
