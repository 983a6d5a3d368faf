package exchange

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"govshare/internal/exchange/wire"
	"govshare/internal/policy"
	"govshare/internal/resource"
)

// Start creates the streams and runs the intake and the fan-out until ctx
// ends. It returns once the streams exist; the workers go on in the
// background and stop with ctx (wait for done).
func (s *Service) Start(ctx context.Context) (done <-chan struct{}, err error) {
	if err := s.ensureStreams(ctx); err != nil {
		return nil, err
	}
	// One batch is out at a time, whichever server takes it, so batches
	// are taken strictly in order and one that fails is taken again before
	// any after it. A batch whose server died is given out again after
	// intakeAckWait.
	cons, err := s.Bus.JetStream().CreateOrUpdateConsumer(ctx, streamIn, jetstream.ConsumerConfig{
		Durable: "intake", AckPolicy: jetstream.AckExplicitPolicy, AckWait: intakeAckWait, MaxAckPending: 1,
		Description: "govshare: batches into the resource pipeline",
	})
	if err != nil {
		return nil, fmt.Errorf("exchange intake consumer: %w", err)
	}
	ch := make(chan struct{})
	go func() {
		defer close(ch)
		fanDone := make(chan struct{})
		go func() { defer close(fanDone); s.fanOutLoop(ctx) }()
		s.intakeLoop(ctx, cons)
		<-fanDone
	}()
	return ch, nil
}

// intakeAckWait is how long the bus waits for word from the server
// taking a batch before it gives the batch out again; a take in progress
// says it is alive three times as often.
const intakeAckWait = 30 * time.Second

// intakeLoop takes batches off the bus one at a time, in order.
func (s *Service) intakeLoop(ctx context.Context, cons jetstream.Consumer) {
	for ctx.Err() == nil {
		msgs, err := cons.Fetch(1, jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			if ctx.Err() == nil {
				s.Log.Warn("exchange intake: fetch", "err", err)
				sleep(ctx, time.Second)
			}
			continue
		}
		for m := range msgs.Messages() {
			alive := keepTaking(ctx, m)
			err := s.take(ctx, m)
			alive()
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				s.Log.Error("exchange intake: batch not taken, will retry", "subject", m.Subject(), "err", err)
				_ = m.NakWithDelay(5 * time.Second)
				continue
			}
			_ = m.DoubleAck(ctx)
		}
	}
}

// keepTaking tells the bus, until stopped, that the batch m is still
// being taken, so that a long take is not given to another server.
func keepTaking(ctx context.Context, m jetstream.Msg) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(intakeAckWait / 3)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				_ = m.InProgress()
			case <-done:
				return
			case <-ctx.Done():
				return
			}
		}
	})
	return func() { close(done); wg.Wait() }
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// take runs one batch through the pipeline and counts it. Taking the same
// batch twice has the effect of once: the pipeline knows the batch id and
// the run counts each batch once.
func (s *Service) take(ctx context.Context, m jetstream.Msg) error {
	var b wire.Batch
	if err := wire.Decode(m.Data(), &b); err != nil {
		s.Log.Error("exchange intake: undecodable batch dropped", "subject", m.Subject(), "err", err)
		return nil
	}
	var nodeID, deptID, resID int64
	var nodeName, maxErrors string
	var spec string
	if err := s.DB.QueryRow(ctx, `SELECT j.node_id, n.dept_id, n.name, j.resource_id, j.spec FROM exchange_jobs j JOIN nodes n ON n.id = j.node_id WHERE j.id = ?`,
		b.JobID).Scan(&nodeID, &deptID, &nodeName, &resID, &spec); err != nil {
		return err
	}
	_ = maxErrors
	var js wire.JobSpec
	_ = json.Unmarshal([]byte(spec), &js)
	r, err := s.Resources.ByCode(ctx, js.Resource)
	if err != nil {
		return err
	}
	runID, err := s.openRun(ctx, "in", b.JobID, 0, 0, b.Run, b.Mode, r.RecordCount)
	if err != nil {
		return err
	}
	actor := policy.Actor{DeptID: deptID, Login: nodeName, Roles: []policy.Role{policy.NodeClient}, App: "node:" + itoa(nodeID)}
	recv := wire.RunCounts{}
	switch b.Kind {
	case wire.KindKeys:
		if err := s.seeKeys(ctx, runID, b.Keys); err != nil {
			return err
		}
		recv.Rows, recv.Unchanged = int64(len(b.Keys)), int64(len(b.Keys))
	default:
		if len(b.Rows)+len(b.Deletes) > 0 {
			opt := resource.SubmitOptions{Source: resource.SourceNode, Detail: fmt.Sprintf("%s / job %d / run %d", nodeName, b.JobID, b.Run),
				ClientBatchID: b.ID, MaxErrors: js.MaxErrors}
			res, err := s.Resources.Submit(ctx, actor, r.Code, opt, newBatchRows(r, b))
			if err != nil && res.ID == 0 {
				return err
			}
			recv = wire.RunCounts{Rows: res.RowsTotal, Inserted: res.Inserted, Updated: res.Updated, Unchanged: res.Unchanged, Deleted: res.Deleted,
				Rejected: res.Quarantined}
			if res.State == "failed" {
				recv.Rejected = res.RowsTotal
				recv.Inserted, recv.Updated, recv.Unchanged, recv.Deleted = 0, 0, 0, 0
			}
			if miss := recv.Rows - (recv.Inserted + recv.Updated + recv.Unchanged + recv.Deleted + recv.Rejected); miss > 0 {
				recv.Missing = miss
			}
			s.kick()
		}
		if b.Mode == wire.ModeFull && s.runLiveBefore(ctx, runID) > 0 {
			keys := make([][]string, 0, len(b.Rows))
			for _, row := range b.Rows {
				keys = append(keys, keyOfRow(r, b.Columns, row))
			}
			if err := s.seeKeys(ctx, runID, keys); err != nil {
				return err
			}
		}
	}
	if _, err := s.countBatch(ctx, runID, b.Seq, 0, int64(len(b.Rows)+len(b.Deletes)+len(b.Keys)), int64(len(b.Deletes)), recv); err != nil {
		return err
	}
	if b.Last {
		total := wire.RunCounts{}
		if b.Total != nil {
			total = *b.Total
		}
		if err := s.closeRun(ctx, runID, b.Batches, total); err != nil {
			return err
		}
		if (b.Kind == wire.KindKeys || b.Mode == wire.ModeFull) && (b.Kind == wire.KindKeys || s.runLiveBefore(ctx, runID) > 0) {
			if err := s.deleteUnseen(ctx, actor, r, runID, b); err != nil {
				return err
			}
		}
	}
	return s.reconcile(ctx, runID)
}

func (s *Service) runLiveBefore(ctx context.Context, runID int64) int64 {
	var n int64
	_ = s.DB.QueryRow(ctx, "SELECT live_before FROM exchange_runs WHERE id = ?", runID).Scan(&n)
	return n
}

// keyOfRow picks a row's key values in the resource's key order.
func keyOfRow(r resource.Resource, cols []string, row []*string) []string {
	keys := r.Keys()
	out := make([]string, len(keys))
	for i, k := range keys {
		for j, c := range cols {
			if c == k.MachineName && row[j] != nil {
				out[i] = *row[j]
			}
		}
	}
	return out
}

func keyText(k []string) string {
	b, _ := json.Marshal(k)
	return string(b)
}

// seeKeys remembers keys seen at the source during a run.
func (s *Service) seeKeys(ctx context.Context, runID int64, keys [][]string) error {
	if len(keys) == 0 {
		return nil
	}
	const per = 200
	for i := 0; i < len(keys); i += per {
		part := keys[i:min(i+per, len(keys))]
		q := "INSERT INTO exchange_seen_keys (run_id, k) VALUES "
		args := make([]any, 0, 2*len(part))
		for j, k := range part {
			if j > 0 {
				q += ", "
			}
			q += "(?, ?)"
			args = append(args, runID, keyText(k))
		}
		if _, err := s.DB.Exec(ctx, q+" ON CONFLICT DO NOTHING", args...); err != nil {
			return err
		}
	}
	return nil
}

// deleteUnseen deletes the live records whose keys the source no longer
// has, through the pipeline (so the deletes are in the history), and
// counts them as the run's key comparison (seq 0).
func (s *Service) deleteUnseen(ctx context.Context, actor policy.Actor, r resource.Resource, runID int64, b wire.Batch) error {
	var gone [][]string
	err := s.Resources.LiveKeys(ctx, r, 1000, func(keys [][]string) error {
		texts := make([]any, 0, len(keys)+1)
		texts = append(texts, runID)
		q := "SELECT k FROM exchange_seen_keys WHERE run_id = ? AND k IN ("
		for i, k := range keys {
			if i > 0 {
				q += ", "
			}
			q += "?"
			texts = append(texts, keyText(k))
		}
		rows, err := s.DB.Query(ctx, q+")", texts...)
		if err != nil {
			return err
		}
		seen := map[string]bool{}
		for rows.Next() {
			var k string
			if err := rows.Scan(&k); err != nil {
				rows.Close()
				return err
			}
			seen[k] = true
		}
		rows.Close()
		for _, k := range keys {
			if !seen[keyText(k)] {
				gone = append(gone, k)
			}
		}
		return rows.Err()
	})
	if err != nil {
		return err
	}
	recv := wire.RunCounts{}
	if len(gone) > 0 {
		cols := make([]string, 0)
		for _, k := range r.Keys() {
			cols = append(cols, k.MachineName)
		}
		del := wire.Batch{Columns: cols, Deletes: gone}
		res, err := s.Resources.Submit(ctx, actor, r.Code, resource.SubmitOptions{Source: resource.SourceNode, ClientBatchID: b.ID + "-deletes",
			Detail: fmt.Sprintf("job %d / run %d: keys no longer at the source", b.JobID, b.Run), MaxErrors: -1}, newBatchRows(r, del))
		if err != nil && res.ID == 0 {
			return err
		}
		recv = wire.RunCounts{Rows: res.RowsTotal, Deleted: res.Deleted}
		s.kick()
	}
	if _, err := s.countBatch(ctx, runID, 0, 0, 0, 0, recv); err != nil {
		return err
	}
	_, err = s.DB.Exec(ctx, "DELETE FROM exchange_seen_keys WHERE run_id = ?", runID)
	return err
}

// batchRows feeds a batch to the pipeline: rows as upserts, then deletes
// by key.
type batchRows struct {
	header  []string
	keyPos  []int
	b       wire.Batch
	i, j    int
	scratch []string
}

func newBatchRows(r resource.Resource, b wire.Batch) *batchRows {
	br := &batchRows{b: b, header: append(append([]string(nil), b.Columns...), "_op")}
	for _, k := range r.Keys() {
		for i, c := range b.Columns {
			if c == k.MachineName {
				br.keyPos = append(br.keyPos, i)
			}
		}
	}
	br.scratch = make([]string, len(br.header))
	return br
}

func (br *batchRows) Header() []string { return br.header }

func (br *batchRows) Next() ([]string, error) {
	out := make([]string, len(br.header))
	switch {
	case br.i < len(br.b.Rows):
		for k, v := range br.b.Rows[br.i] {
			if v != nil {
				out[k] = *v
			}
		}
		out[len(out)-1] = "upsert"
		br.i++
	case br.j < len(br.b.Deletes):
		key := br.b.Deletes[br.j]
		if len(key) != len(br.keyPos) {
			return nil, errors.New("a delete's key has the wrong number of values")
		}
		for k, p := range br.keyPos {
			out[p] = key[k]
		}
		out[len(out)-1] = "delete"
		br.j++
	default:
		return nil, io.EOF
	}
	return out, nil
}
