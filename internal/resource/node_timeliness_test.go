package resource_test

import (
	"context"
	"testing"
	"time"

	"govshare/internal/resource"
	"govshare/internal/store"
	"govshare/internal/storetest"
)

// A real-time resource is timely while its node reports delivering, and
// becomes due like a daily one once the node falls silent.
func TestRealtimeResourceIsTimelyWhileItsNodeDelivers(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		f := setup(t, db)
		ctx := context.Background()
		r, err := f.svc.Mount(ctx, f.gaj, f.entry.ID) // mounted Friday 2026-11-20 10:00 CST
		if err != nil {
			t.Fatal(err)
		}
		r.UpdateCycle = "realtime"
		*f.clock = f.clock.Add(72 * time.Hour) // no data for three days
		if tl := r.Timeliness(*f.clock); tl.State != "overdue" {
			t.Fatalf("a silent real-time resource: %+v", tl)
		}
		if err := f.svc.NodeDelivering(ctx, r.ID); err != nil {
			t.Fatal(err)
		}
		if r, err = f.svc.ByCode(ctx, r.Code); err != nil {
			t.Fatal(err)
		}
		r.UpdateCycle = "realtime"
		if !r.NodeSeenAt.Equal(*f.clock) {
			t.Fatalf("node seen at %v, want %v", r.NodeSeenAt, *f.clock)
		}
		if tl := r.Timeliness(f.clock.Add(time.Minute)); tl.State != "timely" || !tl.Last.Equal(*f.clock) {
			t.Fatalf("while the node delivers: %+v", tl)
		}
		if tl := r.Timeliness(f.clock.Add(resource.NodeGrace + time.Second)); tl.State != "overdue" {
			t.Fatalf("after the node fell silent: %+v", tl)
		}
		// A daily resource is not kept timely by a node's reports.
		r.UpdateCycle = "daily"
		if tl := r.Timeliness(f.clock.Add(time.Minute)); tl.State != "overdue" {
			t.Fatalf("a daily resource with a node report: %+v", tl)
		}

		// Deliveries out count beside records in.
		if err := f.svc.AddDelivered(ctx, r.ID, 120); err != nil {
			t.Fatal(err)
		}
		if err := f.svc.AddDelivered(ctx, r.ID, 30); err != nil {
			t.Fatal(err)
		}
		vol, err := f.svc.Volume(ctx, r.Code, 1)
		if err != nil || len(vol) != 1 || vol[0].RecordsOut != 150 || vol[0].RecordsIn != 0 {
			t.Fatalf("volume today: %+v %v", vol, err)
		}
	})
}
