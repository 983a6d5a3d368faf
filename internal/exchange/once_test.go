package exchange_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"govshare/internal/agent"
	"govshare/internal/exchange/wire"
	"govshare/internal/store"
	"govshare/internal/storetest"
)

// A manual job run once from the node's command line extracts, forwards
// and returns once the center has counted the run, with progress on the way.
func TestRunOnceFromTheNode(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		c := newCenter(t, db)
		srcPath := filepath.Join(t.TempDir(), "gaj.db")
		src := openLite(t, srcPath)
		exec(t, src, `CREATE TABLE people (id INTEGER PRIMARY KEY, xm TEXT NOT NULL, gxsj DATETIME NOT NULL)`)
		const n = 2500
		tx, _ := src.Begin()
		for i := 1; i <= n; i++ {
			if _, err := tx.Exec("INSERT INTO people VALUES (?, ?, ?)", i, personName(i), time.Now().In(cst).Format("2006-01-02 15:04:05")); err != nil {
				t.Fatal(err)
			}
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
		nodeID, a := c.enrolNode(t, c.gaj, c.gajDept, "gaj-once", agent.Config{Sources: []agent.Database{{Name: "hjk", Kind: "sqlite", DSN: srcPath}}})
		defer a.Close()
		job, err := c.ex.CreateJob(ctx, c.gaj, nodeID, wire.JobSpec{Name: "手工同步", Resource: c.resource.Code, Source: "hjk", Table: "people",
			Mapping: []wire.ColumnMapping{{Column: "id", Item: "person_id"}, {Column: "xm", Item: "name"}, {Column: "gxsj", Item: "updated_at"}},
			Mode:    wire.ModeFull, Schedule: wire.ScheduleOnce, BatchRows: 500})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := a.RunOnce(ctx, "no such job", func(agent.OnceProgress) {}); err == nil {
			t.Fatal("ran a job the center does not give the node")
		}
		var phases []string
		var most int64
		runs, err := a.RunOnce(ctx, fmt.Sprint(job.ID), func(p agent.OnceProgress) {
			if len(phases) == 0 || phases[len(phases)-1] != p.Phase {
				phases = append(phases, p.Phase)
			}
			most = max(most, p.Extracted)
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(runs) != 1 || runs[0].State != "complete" || runs[0].Received.Inserted != n {
			t.Fatalf("runs %+v", runs)
		}
		if most == 0 || phases[len(phases)-1] != "reconciling" {
			t.Fatalf("progress: phases %v, most rows %d", phases, most)
		}
		var held int
		if err := db.QueryRow(ctx, `SELECT COUNT(*) FROM "`+c.resource.Table+`"`).Scan(&held); err != nil || held != n {
			t.Fatalf("the center holds %d rows, %v", held, err)
		}
		// Run again by name: nothing changed, so all rows come back unchanged.
		runs, err = a.RunOnce(ctx, "手工同步", func(agent.OnceProgress) {})
		if err != nil || len(runs) != 1 || runs[0].Received.Unchanged != n || runs[0].Run != 2 {
			t.Fatalf("second run: %+v %v", runs, err)
		}
	})
}
