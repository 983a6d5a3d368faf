package resource_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"govshare/internal/catalog"
	"govshare/internal/resource"
	"govshare/internal/store"
	"govshare/internal/storetest"
)

// TestChangesReadInChunksAsCanonicalText: what the exchange reads of a
// batch's changes — live records as canonical text, date-times in UTC
// with their fraction only when it is not zero, NULL as nil, deleted
// records as their keys — is the same on both backends, across chunks.
func TestChangesReadInChunksAsCanonicalText(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		f := setup(t, db)
		ctx := context.Background()
		svc, _ := f.watched(db)
		c := people()
		c.Name = "出入境记录"
		c.Items = []catalog.DataItem{
			{Name: "编号", MachineName: "no", DataType: "C", Length: 10, Key: true},
			{Name: "时间", MachineName: "at", DataType: "T", Length: 14},
			{Name: "人数", MachineName: "n", DataType: "I", Length: 10},
			{Name: "备注", MachineName: "note", DataType: "C", Length: 20},
		}
		r, err := svc.Mount(ctx, f.gaj, f.publish(t, c).ID)
		if err != nil {
			t.Fatal(err)
		}
		first, err := svc.Submit(ctx, f.gaj, r.Code, resource.SubmitOptions{}, csvRows(t, "no,at,n,note\n"+
			"a,2026-03-01T00:30:00Z,1,一\nb,2026-03-01T00:30:00.250Z,2,\nc,1999-12-31T23:59:59.999999Z,,三\nd,,4,四\ne,1970-01-01T00:00:00Z,5,五\n"))
		if err != nil || first.Inserted != 5 {
			t.Fatalf("first batch: %+v %v", first, err)
		}
		*f.clock = f.clock.Add(time.Hour)
		second, err := svc.Submit(ctx, f.gaj, r.Code, resource.SubmitOptions{}, csvRows(t, "no,at,n,note,_op\n"+
			"b,2026-03-01 08:30:00.000010,20,二,upsert\nc,,,,delete\nf,2026-03-01T10:30:00+10:00,6,六,upsert\n"))
		if err != nil || second.Updated != 1 || second.Deleted != 1 || second.Inserted != 1 {
			t.Fatalf("second batch: %+v %v", second, err)
		}
		r, _ = svc.ByCode(ctx, r.Code)
		read := func(batch int64) (rows, deleted [][]string) {
			t.Helper()
			err := svc.Changes(ctx, r, r.Visible(), batch, 2, func(up [][]*string, del [][]string) error {
				for _, row := range up {
					vals := make([]string, len(row))
					for i, v := range row {
						vals[i] = "NULL"
						if v != nil {
							vals[i] = *v
						}
					}
					rows = append(rows, vals)
				}
				deleted = append(deleted, del...)
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			// PostgreSQL reads them in no particular order.
			slices.SortFunc(rows, slices.Compare)
			slices.SortFunc(deleted, slices.Compare)
			return rows, deleted
		}
		rows, deleted := read(first.ID)
		want := [][]string{{"a", "2026-03-01T00:30:00Z", "1", "一"}, {"d", "NULL", "4", "四"}, {"e", "1970-01-01T00:00:00Z", "5", "五"}}
		if !slices.EqualFunc(rows, want, slices.Equal) || len(deleted) != 0 {
			t.Errorf("first batch's changes: %q, deleted %q; want %q", rows, deleted, want)
		}
		// fn's error ends the reading, after the page it refused.
		stop := errors.New("stop")
		calls := 0
		err = svc.Changes(ctx, r, r.Visible(), first.ID, 1, func([][]*string, [][]string) error { calls++; return stop })
		if !errors.Is(err, stop) || calls != 1 {
			t.Errorf("a refused page: %v after %d pages, want the refusal after 1", err, calls)
		}
		rows, deleted = read(second.ID)
		want = [][]string{{"b", "2026-03-01T00:30:00.00001Z", "20", "二"}, {"f", "2026-03-01T00:30:00Z", "6", "六"}}
		if !slices.EqualFunc(rows, want, slices.Equal) || !slices.EqualFunc(deleted, [][]string{{"c"}}, slices.Equal) {
			t.Errorf("second batch's changes: %q, deleted %q; want %q and c deleted", rows, deleted, want)
		}
	})
}
