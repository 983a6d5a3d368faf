package exchange

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
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
	// A server holds up to intakeMaxPending batches at a time, strictly
	// in the stream's order (intake.go: a server takes a batch only when
	// no earlier one is left on the bus); a batch whose server died is
	// given out again after intakeAckWait.
	cons, err := s.Bus.JetStream().CreateOrUpdateConsumer(ctx, streamIn, jetstream.ConsumerConfig{
		Durable: "intake", AckPolicy: jetstream.AckExplicitPolicy, AckWait: intakeAckWait, MaxAckPending: intakeMaxPending,
		Description: "govshare: batches into the resource pipeline",
	})
	if err != nil {
		return nil, fmt.Errorf("exchange intake consumer: %w", err)
	}
	st, err := s.Bus.JetStream().Stream(ctx, streamIn)
	if err != nil {
		return nil, fmt.Errorf("exchange intake stream: %w", err)
	}
	ch := make(chan struct{})
	go func() {
		defer close(ch)
		fanDone := make(chan struct{})
		go func() { defer close(fanDone); s.fanOutLoop(ctx) }()
		in := &intake{s: s, cons: cons, stream: st}
		in.loop(ctx)
		<-fanDone
	}()
	return ch, nil
}

// intakeAckWait is how long the bus waits for word from the server
// taking a batch before it gives the batch out again; a server holding
// batches says so three times as often.
const intakeAckWait = 30 * time.Second

// The intake coalesces: the batches of one run that wait on the bus one
// after the other are taken as ONE batch of the resource pipeline, read
// from the bus while the pipeline reads their rows. A run into an empty
// resource is then loaded (resource/load.go) rather than staged 5,000
// rows at a time, and a batch's fixed costs (its transaction, the run's
// bookkeeping, the fan-out's pass) are paid once for many.
//
// Exactly once: every bus batch is counted by its run's row (run, seq) in
// exchange_run_batches, and a coalesced group's rows are written in the
// same transaction as the pipeline batch that applies them
// (resource.SubmitOptions.Applying), which rolls back if any of them is
// there already. A batch given out again — alone, or in a group cut
// differently, after a server died between its commit and the bus's ack
// — is found counted and only acknowledged; one whose apply never
// committed was never counted and is taken again.
//
// Same outcome as one by one: a group is applied only if the pipeline put
// no record of it aside. Within one bus batch a repeated key is a
// problem record, but across batches it is an update; a unique value
// freed by an earlier batch of the group is still held in the table; and
// the error limit is per bus batch. So a group with any record put aside
// is rolled back and its batches are taken one at a time, as before —
// which also keeps the quarantine's row numbers those of the bus batch.
// When the group puts nothing aside, every record's outcome is the one
// the batches would have had one after the other.
const (
	// intakeMaxPending is how many batches a server may hold unacknowledged:
	// a group, and the batch after it.
	intakeMaxPending = 256
	// groupMaxBatches and groupMaxRows bound a group.
	groupMaxBatches = intakeMaxPending - 16
	groupMaxRows    = 1_000_000
	// groupGap is how long a group waits for the next batch of its run
	// before it is applied without it: a node sends a run's batches one
	// after the other, so a longer pause means the run is being read
	// slowly, or is done.
	groupGap = 250 * time.Millisecond
	// seenGroupMaxRows bounds a group of a full run that needs its keys
	// remembered (they are kept until the group's commit).
	seenGroupMaxRows = 200_000
)

// intake takes batches off the bus in order, in groups.
type intake struct {
	s      *Service
	cons   jetstream.Consumer
	stream jetstream.Stream
	mu     sync.Mutex
	held   []*heldBatch // taken off the bus, not yet acknowledged, in stream order
	// next is the stream sequence after the last batch acknowledged in
	// order; the batch there may be taken without asking the stream.
	next uint64
}

// heldBatch is a batch taken off the bus. Its rows are decoded when
// needed; once the pipeline has read them, they and the message are
// dropped — a group holds a whole run's batches, and only their
// acknowledgement is needed then — and read again from the stream if
// the batch must be taken again.
type heldBatch struct {
	stream  jetstream.Stream
	subject string
	reply   string // where the bus hears of the batch: acknowledgements
	seq     uint64 // in the stream
	data    []byte // nil: dropped
	decoded bool
	b       wire.Batch
	// rows and deletes are b's, kept when its rows are dropped.
	rows, deletes int
	bad           error // undecodable: dropped
	unread        error // could not be read again from the stream: not decoded
}

// batch is the batch, decoded if need be.
func (h *heldBatch) batch() wire.Batch {
	if !h.decoded {
		h.b, h.bad, h.unread = wire.Batch{}, nil, nil
		if h.data == nil {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			m, err := h.stream.GetMsg(ctx, h.seq)
			cancel()
			if err != nil {
				// Not decoded: asked again, it is read again.
				h.unread = fmt.Errorf("read batch %d again from the bus: %w", h.seq, err)
				return wire.Batch{}
			}
			h.data = m.Data
		}
		h.bad = wire.Decode(h.data, &h.b)
		h.rows, h.deletes, h.decoded = len(h.b.Rows), len(h.b.Deletes), true
	}
	return h.b
}

// size is the number of records the batch carries.
func (h *heldBatch) size() int {
	h.batch()
	return h.rows + h.deletes
}

// dropRows forgets the decoded records and the message, keeping the
// rest of the batch.
func (h *heldBatch) dropRows() { h.b.Rows, h.b.Deletes, h.data = nil, nil, nil }

// release forgets everything decoded.
func (h *heldBatch) release() { h.decoded, h.b = false, wire.Batch{} }

func (in *intake) loop(ctx context.Context) {
	stop := in.keepAlive(ctx)
	defer stop()
	for ctx.Err() == nil {
		if len(in.held) == 0 {
			if err := in.fetch(ctx, 1, 2*time.Second); err != nil {
				if ctx.Err() != nil {
					return
				}
				in.s.Log.Warn("exchange intake: fetch", "err", err)
				sleep(ctx, time.Second)
				continue
			}
		}
		if len(in.held) == 0 {
			continue
		}
		first := in.held[0]
		if first.seq != in.next {
			ok, err := in.firstOnBus(ctx, first.seq)
			if err != nil || !ok {
				// An earlier batch is still out, at another server or
				// one that died: it comes back after intakeAckWait.
				if err != nil {
					in.s.Log.Warn("exchange intake: stream state", "err", err)
				}
				sleep(ctx, 200*time.Millisecond)
				_ = in.fetch(ctx, intakeMaxPending, 0)
				continue
			}
		}
		n, err := in.take(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			in.s.Log.Error("exchange intake: batch not taken, will retry", "subject", first.subject, "err", err)
			// The batches stay held, in order, and are taken again.
			for _, h := range in.held {
				h.release()
			}
			in.next = 0
			sleep(ctx, 5*time.Second)
			continue
		}
		in.ack(ctx, n)
	}
}

// firstOnBus says whether the batch at stream sequence seq is the first
// one left on the bus (acknowledged batches leave the stream).
func (in *intake) firstOnBus(ctx context.Context, seq uint64) (bool, error) {
	info, err := in.stream.Info(ctx)
	if err != nil {
		return false, err
	}
	return info.State.FirstSeq == seq, nil
}

// fetch takes up to n more batches off the bus, waiting up to wait for
// the first (none: only those there now), and keeps them in order.
func (in *intake) fetch(ctx context.Context, n int, wait time.Duration) error {
	n = min(n, intakeMaxPending-len(in.held))
	if n <= 0 {
		n = 1 // a batch given out again comes whatever is held
	}
	var batch jetstream.MessageBatch
	var err error
	if wait > 0 {
		batch, err = in.cons.Fetch(n, jetstream.FetchMaxWait(wait))
	} else {
		batch, err = in.cons.FetchNoWait(n)
	}
	if err != nil {
		return err
	}
	var got []*heldBatch
	for m := range batch.Messages() {
		md, err := m.Metadata()
		if err != nil {
			continue
		}
		got = append(got, &heldBatch{stream: in.stream, subject: m.Subject(), reply: m.Reply(), seq: md.Sequence.Stream, data: m.Data()})
	}
	if len(got) > 0 {
		in.mu.Lock()
		for _, g := range got {
			i, found := slices.BinarySearchFunc(in.held, g.seq, func(h *heldBatch, seq uint64) int { return cmp.Compare(h.seq, seq) })
			if found {
				in.held[i].reply = g.reply // given out again: answer the latest delivery
			} else {
				in.held = slices.Insert(in.held, i, g)
			}
		}
		in.mu.Unlock()
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return nil
}

// keepAlive tells the bus, until stopped, that the held batches are
// being taken, so that they are not given to another server.
func (in *intake) keepAlive(ctx context.Context) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(intakeAckWait / 3)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				in.mu.Lock()
				replies := make([]string, len(in.held))
				for i, h := range in.held {
					replies[i] = h.reply
				}
				in.mu.Unlock()
				for _, r := range replies {
					_ = in.s.Bus.Conn().Publish(r, ackProgress)
				}
			case <-done:
				return
			case <-ctx.Done():
				return
			}
		}
	})
	return func() { close(done); wg.Wait() }
}

// ack acknowledges the first n held batches, in order, now that their
// effect is durable.
func (in *intake) ack(ctx context.Context, n int) {
	ok := true
	for _, h := range in.held[:n] {
		actx, cancel := context.WithTimeout(ctx, 10*time.Second)
		if _, err := in.s.Bus.Conn().RequestWithContext(actx, h.reply, ackDone); err != nil {
			// Given out again later, it is found counted.
			ok = false
		}
		cancel()
	}
	last := in.held[n-1].seq
	in.mu.Lock()
	in.held = slices.Delete(in.held, 0, n)
	in.mu.Unlock()
	in.next = 0
	if ok {
		in.next = last + 1
	}
}

// JetStream's acknowledgements, sent to a message's reply subject: the
// batch is done (asked as a request, the bus answers once it has it), or
// still being worked on.
var (
	ackDone     = []byte("+ACK")
	ackProgress = []byte("+WPI")
)

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// jobOf is what the intake needs of a batch's job.
type jobOf struct {
	nodeID, deptID int64
	nodeName       string
	spec           wire.JobSpec
	r              resource.Resource
	actor          policy.Actor
}

func (s *Service) jobOf(ctx context.Context, jobID int64) (jobOf, error) {
	var j jobOf
	var spec string
	var resID int64
	if err := s.DB.QueryRow(ctx, `SELECT j.node_id, n.dept_id, n.name, j.resource_id, j.spec FROM exchange_jobs j JOIN nodes n ON n.id = j.node_id WHERE j.id = ?`,
		jobID).Scan(&j.nodeID, &j.deptID, &j.nodeName, &resID, &spec); err != nil {
		return j, err
	}
	_ = json.Unmarshal([]byte(spec), &j.spec)
	r, err := s.Resources.ByCode(ctx, j.spec.Resource)
	if err != nil {
		return j, err
	}
	j.r = r
	j.actor = policy.Actor{DeptID: j.deptID, Login: j.nodeName, Roles: []policy.Role{policy.NodeClient}, App: "node:" + itoa(j.nodeID)}
	return j, nil
}

// take takes the first held batch and those of its run that follow it
// on the bus, and says how many it took.
func (in *intake) take(ctx context.Context) (int, error) {
	s := in.s
	first := in.held[0]
	b := first.batch()
	if first.unread != nil {
		return 0, first.unread
	}
	if first.bad != nil {
		s.Log.Error("exchange intake: undecodable batch dropped", "subject", first.subject, "err", first.bad)
		return 1, nil
	}
	j, err := s.jobOf(ctx, b.JobID)
	if err != nil {
		return 0, fmt.Errorf("job %d: %w", b.JobID, err)
	}
	runID, err := s.openRun(ctx, "in", b.JobID, 0, 0, b.Run, b.Mode, j.r.RecordCount)
	if err != nil {
		return 0, fmt.Errorf("open run: %w", err)
	}
	counted, err := s.countedFrom(ctx, runID, b.Seq)
	if err != nil {
		return 0, fmt.Errorf("counted batches: %w", err)
	}
	g := &group{in: in, j: j, runID: runID, counted: counted, first: first}
	switch {
	case counted[b.Seq]:
		// Taken before, by a group whose commit was not acknowledged:
		// the batches of it that are held are only acknowledged.
		g.parts = []*heldBatch{first}
		for _, h := range in.held[1:] {
			if hb := h.batch(); h.seq != g.parts[len(g.parts)-1].seq+1 || h.unread != nil || h.bad != nil || !g.follows(hb) || !counted[hb.Seq] {
				break
			}
			g.parts = append(g.parts, h)
		}
	case b.Kind == wire.KindKeys:
		if err := s.seeKeys(ctx, s.DB, runID, b.Keys); err != nil {
			return 0, err
		}
		recv := wire.RunCounts{Rows: int64(len(b.Keys)), Unchanged: int64(len(b.Keys))}
		if _, err := s.countBatch(ctx, s.DB, runID, b.Seq, 0, int64(len(b.Keys)), 0, recv); err != nil {
			return 0, err
		}
		g.parts = []*heldBatch{first}
	case first.size() == 0:
		if _, err := s.countBatch(ctx, s.DB, runID, b.Seq, 0, 0, 0, wire.RunCounts{}); err != nil {
			return 0, err
		}
		g.parts = []*heldBatch{first}
	default:
		g.see = b.Mode == wire.ModeFull && s.runLiveBefore(ctx, runID) > 0
		if err := g.submit(ctx); err != nil {
			return 0, fmt.Errorf("submit: %w", err)
		}
	}
	last := g.parts[len(g.parts)-1].batch()
	if last.Last {
		total := wire.RunCounts{}
		if last.Total != nil {
			total = *last.Total
		}
		if err := s.closeRun(ctx, runID, last.Batches, total); err != nil {
			return 0, fmt.Errorf("close run: %w", err)
		}
		if (last.Kind == wire.KindKeys || last.Mode == wire.ModeFull) && (last.Kind == wire.KindKeys || s.runLiveBefore(ctx, runID) > 0) {
			if err := s.deleteUnseen(ctx, j.actor, j.r, runID, last); err != nil {
				return 0, fmt.Errorf("keys no longer at the source: %w", err)
			}
		}
	}
	for _, p := range g.parts {
		p.release()
	}
	return len(g.parts), s.reconcile(ctx, runID)
}

// countedFrom lists the batches of a run from seq on that are counted.
func (s *Service) countedFrom(ctx context.Context, runID, seq int64) (map[int64]bool, error) {
	rows, err := s.DB.Query(ctx, "SELECT seq FROM exchange_run_batches WHERE run_id = ? AND seq >= ?", runID, seq)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[int64]bool{}
	for rows.Next() {
		var n int64
		if err := rows.Scan(&n); err != nil {
			return nil, err
		}
		out[n] = true
	}
	return out, rows.Err()
}

// group is bus batches of one run on their way into one pipeline batch.
type group struct {
	in      *intake
	j       jobOf
	runID   int64
	counted map[int64]bool
	// see: the run is full and the resource held records before it, so
	// the keys of its rows are remembered for the end of the run
	// (deleteUnseen); they are written with the group's commit.
	see  bool
	keys [][]string
	// first is the group's first batch; alone: the group is that batch
	// only. Otherwise it is the first held, and the group the held ones
	// after it.
	first *heldBatch
	alone bool
	parts []*heldBatch
	rows  int
	// cur reads the rows of the last part.
	cur *batchRows
}

// follows says whether b may join the group after its last part.
func (g *group) follows(b wire.Batch) bool {
	p := g.parts[len(g.parts)-1].batch()
	return b.JobID == p.JobID && b.Version == p.Version && b.Run == p.Run && b.Seq == p.Seq+1 && b.Mode == p.Mode &&
		b.Kind == wire.KindRows && p.Kind == wire.KindRows && !p.Last && slices.Equal(b.Columns, p.Columns)
}

// submit runs the group through the pipeline, or, when the pipeline puts
// any of its records aside, each of its batches on its own.
func (g *group) submit(ctx context.Context) error {
	s, first := g.in.s, g.first
	b := first.batch()
	opt := resource.SubmitOptions{Source: resource.SourceNode, Detail: fmt.Sprintf("%s / job %d / run %d / batch %d", g.j.nodeName, b.JobID, b.Run, b.Seq),
		ClientBatchID: b.ID, MaxErrors: g.j.spec.MaxErrors}
	if !g.alone {
		// A group is refused as soon as two records fail, and rolled back
		// when one does (Applying).
		opt.MaxErrors = 1
	}
	opt.Applying = func(ctx context.Context, tx resource.Execer, res resource.Batch) error {
		if res.Quarantined > 0 && !g.alone && slices.ContainsFunc(g.parts[1:], func(p *heldBatch) bool { return p.size() > 0 }) {
			return errSplit
		}
		if g.see {
			if err := s.seeKeys(ctx, tx, g.runID, g.keys); err != nil {
				return err
			}
		}
		for i, c := range splitCounts(g.parts, res) {
			p := g.parts[i]
			fresh, err := s.countBatch(ctx, tx, g.runID, p.b.Seq, res.ID, int64(p.rows+p.deletes), int64(p.deletes), c)
			if err != nil {
				return err
			}
			if !fresh {
				return fmt.Errorf("run %d batch %d: %w", g.runID, p.b.Seq, errTakenElsewhere)
			}
		}
		return nil
	}
	g.parts, g.keys, g.rows = nil, nil, 0
	res, err := s.Resources.Submit(ctx, g.j.actor, g.j.r.Code, opt, g)
	switch {
	case err == nil && res.Replayed:
		// Applied before batches were counted in the apply's transaction
		// (an older server), and not counted: it is the first batch alone.
		g.parts = []*heldBatch{first}
		first.release()
		if first.batch(); first.unread != nil {
			return first.unread
		}
		if g.see {
			if err := s.seeKeys(ctx, s.DB, g.runID, keysOf(g.j.r, first.batch())); err != nil {
				return err
			}
		}
		_, err := s.countBatch(ctx, s.DB, g.runID, b.Seq, res.ID, int64(first.size()), int64(first.deletes), outcome(res))
		return err
	case err == nil:
		s.kick()
		return nil
	case !g.alone && len(g.parts) > 0 && (errors.Is(err, errSplit) || res.State == "failed"):
		s.Log.Info("exchange intake: group taken one batch at a time", "job", b.JobID, "run", b.Run, "from", b.Seq, "batches", len(g.parts), "why", err)
		parts := g.parts
		for _, p := range parts {
			p.release()
			if p.batch(); p.unread != nil {
				return p.unread
			}
			if p.size() == 0 {
				if _, err := s.countBatch(ctx, s.DB, g.runID, p.b.Seq, 0, 0, 0, wire.RunCounts{}); err != nil {
					return err
				}
				continue
			}
			one := &group{in: g.in, j: g.j, runID: g.runID, see: g.see, first: p, alone: true}
			if err := one.submit(ctx); err != nil {
				return err
			}
		}
		g.parts = parts
		return nil
	case g.alone && res.ID != 0 && res.State == "failed":
		// Refused whole for too many errors: nothing applied, every
		// record counted rejected. Its keys are still at the source: the
		// end of a full run must not delete their records. (Seen before
		// counted: a batch counted is seen.)
		if g.see {
			first.release()
			if first.batch(); first.unread != nil {
				return first.unread
			}
			if err := s.seeKeys(ctx, s.DB, g.runID, keysOf(g.j.r, first.batch())); err != nil {
				return err
			}
		}
		_, err := s.countBatch(ctx, s.DB, g.runID, b.Seq, res.ID, int64(first.size()), int64(first.deletes),
			wire.RunCounts{Rows: res.RowsTotal, Rejected: res.RowsTotal})
		return err
	default:
		return err
	}
}

var (
	// errSplit rolls back a group the pipeline put records of aside.
	errSplit = errors.New("records put aside: the group is taken one batch at a time")
	// errTakenElsewhere rolls back a group with a batch already counted.
	errTakenElsewhere = errors.New("already taken")
)

// outcome is a pipeline batch's counts as a run counts them.
func outcome(res resource.Batch) wire.RunCounts {
	c := wire.RunCounts{Rows: res.RowsTotal, Inserted: res.Inserted, Updated: res.Updated, Unchanged: res.Unchanged, Deleted: res.Deleted,
		Rejected: res.Quarantined}
	if miss := c.Rows - (c.Inserted + c.Updated + c.Unchanged + c.Deleted + c.Rejected); miss > 0 {
		c.Missing = miss
	}
	return c
}

// splitCounts shares a group's outcome among its bus batches: each gets
// its own rows, and of the outcome, in order, as many as it has rows
// (its deletes first from the deleted). A group puts nothing aside
// (else it is taken batch by batch), and no record is in two of its
// batches, but the pipeline counts the group as a whole: a batch's
// inserts and updates are its share of the group's, exact per run.
func splitCounts(parts []*heldBatch, res resource.Batch) []wire.RunCounts {
	pool := outcome(res)
	out := make([]wire.RunCounts, len(parts))
	take := func(from *int64, want int64) int64 {
		n := min(*from, want)
		*from -= n
		return n
	}
	for i, h := range parts {
		c := &out[i]
		if i == len(parts)-1 {
			// The last takes what is left, so the sums are the group's.
			*c = pool
			break
		}
		c.Rows = int64(h.rows + h.deletes)
		left := c.Rows
		c.Deleted = take(&pool.Deleted, min(left, int64(h.deletes)))
		left -= c.Deleted
		for _, f := range []struct{ from, to *int64 }{{&pool.Inserted, &c.Inserted}, {&pool.Updated, &c.Updated}, {&pool.Unchanged, &c.Unchanged},
			{&pool.Rejected, &c.Rejected}, {&pool.Missing, &c.Missing}, {&pool.Deleted, &c.Deleted}} {
			n := take(f.from, left)
			*f.to += n
			left -= n
		}
		pool.Rows -= c.Rows
	}
	return out
}

// Header and Next feed the group to the pipeline: its first batch's
// rows, then each next batch of the run as it comes off the bus, until
// the run ends, the bus pauses, another batch comes between or the group
// is full.
func (g *group) Header() []string {
	return append(append([]string(nil), g.first.batch().Columns...), "_op")
}

func (g *group) Next() ([]string, error) {
	for {
		if g.cur != nil {
			row, err := g.cur.Next()
			if err != io.EOF {
				return row, err
			}
			g.cur = nil
		}
		h := g.nextPart()
		if h == nil {
			return nil, io.EOF
		}
		b := h.batch()
		if g.see {
			g.keys = append(g.keys, keysOf(g.j.r, b)...)
		}
		g.parts = append(g.parts, h)
		g.rows += h.size()
		g.cur = newBatchRows(g.j.r, b)
		// The rows are the reader's now: once read they need not stay in
		// memory.
		h.dropRows()
	}
}

// nextPart is the held batch that continues the group, fetched from the
// bus if need be, or nil when the group ends.
func (g *group) nextPart() *heldBatch {
	in := g.in
	k := len(g.parts)
	if k == 0 {
		return g.first
	}
	limit := groupMaxRows
	if g.see {
		limit = seenGroupMaxRows
	}
	if g.alone || k >= groupMaxBatches || g.rows >= limit || g.parts[k-1].b.Last {
		return nil
	}
	// A fetch that fails ends the group; the loop finds the bus again.
	if len(in.held) <= k && in.fetch(context.Background(), intakeMaxPending, 0) != nil {
		return nil
	}
	// A fetch of n waits for n, or the end of its wait: this one waits for
	// the one batch the group needs next.
	if len(in.held) <= k && in.fetch(context.Background(), 1, groupGap) != nil {
		return nil
	}
	if len(in.held) <= k {
		return nil
	}
	h := in.held[k]
	b := h.batch()
	if h.seq != g.parts[k-1].seq+1 || h.unread != nil || h.bad != nil || !g.follows(b) || g.counted[b.Seq] || g.rows+h.size() > limit {
		return nil
	}
	return h
}

// keysOf are the keys of a batch's rows.
func keysOf(r resource.Resource, b wire.Batch) [][]string {
	keys := make([][]string, 0, len(b.Rows))
	for _, row := range b.Rows {
		keys = append(keys, keyOfRow(r, b.Columns, row))
	}
	return keys
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
func (s *Service) seeKeys(ctx context.Context, db resource.Execer, runID int64, keys [][]string) error {
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
		if _, err := db.Exec(ctx, q+" ON CONFLICT DO NOTHING", args...); err != nil {
			return err
		}
	}
	return nil
}

// deleteUnseen deletes the live records whose keys the source no longer
// has, through the pipeline (so the deletes are in the history), and
// counts them as the run's key comparison (seq 0), in the deletes'
// transaction: once counted, it is done.
func (s *Service) deleteUnseen(ctx context.Context, actor policy.Actor, r resource.Resource, runID int64, b wire.Batch) error {
	if done, err := s.countedFrom(ctx, runID, 0); err != nil || done[0] {
		return err
	}
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
	if len(gone) == 0 {
		if _, err := s.countBatch(ctx, s.DB, runID, 0, 0, 0, 0, wire.RunCounts{}); err != nil {
			return err
		}
	} else {
		cols := make([]string, 0)
		for _, k := range r.Keys() {
			cols = append(cols, k.MachineName)
		}
		del := wire.Batch{Columns: cols, Deletes: gone}
		counted := func(ctx context.Context, tx resource.Execer, res resource.Batch) error {
			fresh, err := s.countBatch(ctx, tx, runID, 0, res.ID, 0, 0, wire.RunCounts{Rows: res.RowsTotal, Deleted: res.Deleted})
			if err == nil && !fresh {
				err = fmt.Errorf("run %d key comparison: %w", runID, errTakenElsewhere)
			}
			return err
		}
		res, err := s.Resources.Submit(ctx, actor, r.Code, resource.SubmitOptions{Source: resource.SourceNode, ClientBatchID: b.ID + "-deletes",
			Detail: fmt.Sprintf("job %d / run %d: keys no longer at the source", b.JobID, b.Run), MaxErrors: -1, Applying: counted}, newBatchRows(r, del))
		if err != nil {
			return err
		}
		if res.Replayed {
			// Applied by an older server, which counted afterwards.
			if _, err := s.countBatch(ctx, s.DB, runID, 0, res.ID, 0, 0, wire.RunCounts{Rows: res.RowsTotal, Deleted: res.Deleted}); err != nil {
				return err
			}
		}
		s.kick()
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
	// Rows.Next may reuse its slice: the pipeline copies the values.
	out := br.scratch
	clear(out)
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
