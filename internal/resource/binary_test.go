package resource_test

import (
	"context"
	"encoding/base64"
	"slices"
	"testing"
	"time"

	"govshare/internal/catalog"
	"govshare/internal/resource"
	"govshare/internal/store"
	"govshare/internal/storetest"
)

// TestBinaryItemsReadBackAsBase64: a binary (G) item's values come back
// as the canonical base64 they went in as — in a record's history, in the
// quarantine, and in what the exchange reads — whether the record was
// loaded into the empty table or staged, on both backends. Long values
// are one line (PostgreSQL's encode() breaks base64 every 76 characters).
func TestBinaryItemsReadBackAsBase64(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		f := setup(t, db)
		ctx := context.Background()
		svc, paths := f.watched(db)
		c := people()
		c.Name = "证照影像"
		c.Items = []catalog.DataItem{
			{Name: "编号", MachineName: "no", DataType: "C", Length: 10, Key: true},
			{Name: "影像", MachineName: "scan", DataType: "G", Length: 1000},
			{Name: "备注", MachineName: "note", DataType: "C", Length: 20},
		}
		r, err := svc.Mount(ctx, f.gaj, f.publish(t, c).ID)
		if err != nil {
			t.Fatal(err)
		}
		long := make([]byte, 300)
		for i := range long {
			long[i] = byte(i * 7)
		}
		b64 := base64.StdEncoding.EncodeToString
		first, second, short := b64(long), b64(append([]byte{0, 0xff}, long[:100]...)), b64([]byte{0})
		file := "no,scan,note\n" +
			"a," + first + ",一\n" +
			"b," + short + ",二\n" +
			"c,,三\n" +
			"a," + second + ",repeats a\n" + // the key again: quarantined from its typed values
			"d,not base64!,bad\n" // quarantined as received
		loaded, err := svc.Submit(ctx, f.gaj, r.Code, resource.SubmitOptions{}, csvRows(t, file))
		if err != nil || loaded.Inserted != 3 || loaded.Quarantined != 2 {
			t.Fatalf("load: %+v %v", loaded, err)
		}
		if l, _ := paths.of(loaded.ID); !l {
			t.Fatal("not loaded")
		}

		*f.clock = f.clock.Add(time.Hour)
		staged, err := svc.Submit(ctx, f.gaj, r.Code, resource.SubmitOptions{}, csvRows(t, "no,scan,note\na,"+second+",一\nb,,二\nb,"+short+",repeats b\n"))
		if err != nil || staged.Updated != 2 || staged.Quarantined != 1 {
			t.Fatalf("update: %+v %v", staged, err)
		}
		if l, _ := paths.of(staged.ID); l {
			t.Fatal("the update was loaded, not staged")
		}

		for _, tc := range []struct {
			key  string
			want []string
		}{
			{"a", []string{first, second}},
			{"b", []string{short, ""}},
			{"c", []string{""}},
		} {
			vs, _, err := svc.History(ctx, f.gaj, r.Code, []string{tc.key}, time.Time{})
			if err != nil || len(vs) != len(tc.want) {
				t.Fatalf("history of %s: %+v %v", tc.key, vs, err)
			}
			for i, v := range vs {
				if v.Values[1] != tc.want[i] {
					t.Errorf("history of %s, version %d: %q, want %q", tc.key, i+1, v.Values[1], tc.want[i])
				}
			}
		}

		q, err := svc.Quarantine(ctx, f.gaj, r.Code, "", 0)
		if err != nil || len(q) != 3 {
			t.Fatalf("quarantine: %+v %v", q, err)
		}
		if want := []string{"b", short, "repeats b"}; !slices.Equal(q[2].Values, want) || q[2].Violations[0].Rule != "duplicate_key" {
			t.Errorf("repeated key of the staged batch quarantined as %q %+v, want %q", q[2].Values, q[2].Violations, want)
		}
		if want := []string{"a", second, "repeats a"}; !slices.Equal(q[0].Values, want) || q[0].Violations[0].Rule != "duplicate_key" {
			t.Errorf("repeated key quarantined as %q %+v, want %q", q[0].Values, q[0].Violations, want)
		}
		if want := []string{"d", "not base64!", "bad"}; !slices.Equal(q[1].Values, want) || q[1].Violations[0].Rule != "type" {
			t.Errorf("bad value quarantined as %q %+v, want %q", q[1].Values, q[1].Violations, want)
		}
		// The corrected record goes in through the quarantine.
		if _, _, err := svc.Resubmit(ctx, f.gaj, r.Code, q[1].ID, []string{"d", short, "fixed"}); err != nil {
			t.Fatal(err)
		}

		// What the exchange delivers: a snapshot, a batch's changes, the
		// live keys.
		r, _ = svc.ByCode(ctx, r.Code)
		cols := r.Visible()
		var snap [][]string
		err = svc.Snapshot(ctx, r, cols, 2, func(rows [][]*string) error {
			for _, row := range rows {
				snap = append(snap, values(row))
			}
			return nil
		})
		if want := [][]string{{"a", second, "一"}, {"b", "", "二"}, {"c", "", "三"}, {"d", short, "fixed"}}; err != nil || !slices.EqualFunc(snap, want, slices.Equal) {
			t.Fatalf("snapshot: %q %v, want %q", snap, err, want)
		}
		var changed [][]string
		err = svc.Changes(ctx, r, cols, staged.ID, 10, func(rows [][]*string, _ [][]string) error {
			for _, row := range rows {
				changed = append(changed, values(row))
			}
			return nil
		})
		if want := [][]string{{"a", second, "一"}, {"b", "", "二"}}; err != nil || !slices.EqualFunc(changed, want, slices.Equal) {
			t.Fatalf("changes: %q %v, want %q", changed, err, want)
		}
		var keys [][]string
		if err := svc.LiveKeys(ctx, r, 3, func(k [][]string) error { keys = append(keys, k...); return nil }); err != nil || len(keys) != 4 {
			t.Fatalf("live keys: %q %v", keys, err)
		}
	})
}

func values(row []*string) []string {
	out := make([]string, len(row))
	for i, v := range row {
		if v != nil {
			out[i] = *v
		}
	}
	return out
}
