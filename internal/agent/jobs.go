package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/time/rate"

	"govshare/internal/agent/source"
	"govshare/internal/cron"
	"govshare/internal/exchange/wire"
)

// checkpoint is where a job stands; the last batch the job put into the
// store carries it (header Govshare-Checkpoint).
type checkpoint struct {
	Run     int64          `json:"run"`
	Seq     int64          `json:"seq"`
	Kind    string         `json:"kind"`
	Pos     string         `json:"pos,omitempty"`  // mode key: the high-water mark; mode time: the window's start
	Next    string         `json:"next,omitempty"` // after the run: where the next run starts
	Last    bool           `json:"last,omitempty"` // the run ended
	Total   wire.RunCounts `json:"total"`
	Started time.Time      `json:"started"`
}

const headerCheckpoint = "Govshare-Checkpoint"

func subjectOf(jobID int64) string { return "out." + strconv.FormatInt(jobID, 10) }

// lastCheckpoint reads the job's checkpoint from the store.
func (a *Agent) lastCheckpoint(ctx context.Context, jobID int64) (checkpoint, error) {
	var cp checkpoint
	m, err := a.outbox.GetLastMsgForSubject(ctx, subjectOf(jobID))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		e, kerr := a.state.Get(ctx, "cp."+strconv.FormatInt(jobID, 10))
		if errors.Is(kerr, jetstream.ErrKeyNotFound) {
			return cp, nil
		} else if kerr != nil {
			return cp, kerr
		}
		return cp, json.Unmarshal(e.Value(), &cp)
	} else if err != nil {
		return cp, err
	}
	return cp, json.Unmarshal([]byte(m.Header.Get(headerCheckpoint)), &cp)
}

// jobRunner runs one job on its schedule.
type jobRunner struct {
	a *Agent
	runner[wire.JobSpec]

	// guarded by mu
	lastRun  time.Time
	rps      float64
	progress int64
	cp       checkpoint
	keyCheck time.Time
}

func (a *Agent) startJob(ctx context.Context, spec wire.JobSpec) *jobRunner {
	r := &jobRunner{a: a}
	r.init(spec, "idle")
	r.start(ctx, r.loop)
	return r
}

func (r *jobRunner) report() wire.JobStatus {
	r.mu.Lock()
	defer r.mu.Unlock()
	st := wire.JobStatus{JobID: r.spec.ID, Version: r.spec.Version, State: r.state, Error: r.err, Run: r.cp.Run, LastRunAt: r.lastRun,
		RowsPerSec: r.rps, RunProgress: r.progress}
	cp, _ := json.Marshal(r.cp)
	st.Checkpoint = string(cp)
	if info, err := r.a.outboxPending(r.spec.ID); err == nil {
		st.Queued = info
	}
	if !r.lastRun.IsZero() {
		st.LagSeconds = math.Round(time.Since(r.lastRun).Seconds()*10) / 10
	}
	return st
}

// loop waits for the job's next run and runs it.
func (r *jobRunner) loop(ctx context.Context) {
	spec := r.spec
	seenRunNow := r.a.seenRunNow(ctx, spec.ID)
	cp, err := r.a.lastCheckpoint(ctx, spec.ID)
	if err != nil {
		r.set("failed", err.Error())
	}
	r.mu.Lock()
	r.cp = cp
	r.mu.Unlock()
	// A run the node was killed in resumes at once.
	resume := cp.Run > 0 && !cp.Last
	for ctx.Err() == nil {
		var wait <-chan time.Time
		due := resume || spec.RunNow > seenRunNow
		if !due && spec.Running {
			next := r.next(spec)
			if !next.After(time.Now()) {
				due = true
			} else {
				t := time.NewTimer(time.Until(next))
				wait = t.C
				defer t.Stop()
			}
		}
		if !due {
			r.set(map[bool]string{true: "waiting", false: "stopped"}[spec.Running], r.err)
			select {
			case spec = <-r.specCh:
				r.mu.Lock()
				r.spec = spec
				r.mu.Unlock()
				continue
			case <-wait:
			case <-ctx.Done():
				return
			}
		}
		if spec.RunNow > seenRunNow {
			seenRunNow = spec.RunNow
			r.a.setSeenRunNow(ctx, spec.ID, seenRunNow)
		}
		resume = false
		rows, err := r.runOnce(ctx, spec)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			r.a.log.Error("exchange job failed", "job", spec.ID, "name", spec.Name, "err", err)
			r.set("failed", err.Error())
			// A failed run is tried again on schedule, or after a pause.
			sleep(ctx, 5*time.Second)
			resume = true
		} else {
			r.set("idle", "")
		}
		if spec.Schedule == wire.ScheduleCont && rows == 0 {
			pause := time.Duration(max(spec.IntervalSeconds, 1)) * time.Second
			select {
			case spec = <-r.specCh:
				r.mu.Lock()
				r.spec = spec
				r.mu.Unlock()
			case <-time.After(pause):
			case <-ctx.Done():
			}
		}
		select {
		case spec = <-r.specCh:
			r.mu.Lock()
			r.spec = spec
			r.mu.Unlock()
		default:
		}
	}
}

// next is when the job runs next by its schedule.
func (r *jobRunner) next(spec wire.JobSpec) time.Time {
	r.mu.Lock()
	last := r.lastRun
	r.mu.Unlock()
	switch spec.Schedule {
	case wire.ScheduleInt:
		if last.IsZero() {
			return time.Now()
		}
		return last.Add(time.Duration(spec.IntervalSeconds) * time.Second)
	case wire.ScheduleCont:
		return time.Now()
	case wire.ScheduleCron:
		s, err := cron.Parse(spec.Cron)
		if err != nil {
			return time.Now().Add(time.Hour)
		}
		from := last
		if from.IsZero() {
			from = time.Now()
		}
		return s.Next(from.In(shanghai))
	}
	return time.Now().Add(100 * 365 * 24 * time.Hour)
}

var shanghai = func() *time.Location {
	if l, err := time.LoadLocation("Asia/Shanghai"); err == nil {
		return l
	}
	return time.FixedZone("CST", 8*3600)
}()

func (a *Agent) seenRunNow(ctx context.Context, jobID int64) int64 {
	e, err := a.state.Get(ctx, "runnow."+strconv.FormatInt(jobID, 10))
	if err != nil {
		return -1
	}
	n, _ := strconv.ParseInt(string(e.Value()), 10, 64)
	return n
}

func (a *Agent) setSeenRunNow(ctx context.Context, jobID, n int64) {
	_, _ = a.state.Put(ctx, "runnow."+strconv.FormatInt(jobID, 10), []byte(strconv.FormatInt(n, 10)))
}

// runOnce runs the job once (resuming an interrupted run), then a key
// comparison when one is due. It returns the rows extracted.
func (r *jobRunner) runOnce(ctx context.Context, spec wire.JobSpec) (int64, error) {
	r.set("running", "")
	started := time.Now()
	cp, err := r.a.lastCheckpoint(ctx, spec.ID)
	if err != nil {
		return 0, err
	}
	kind := wire.KindRows
	if !cp.Last && cp.Run > 0 {
		kind = cp.Kind // resume what was interrupted
	} else {
		cp = checkpoint{Run: cp.Run + 1, Kind: wire.KindRows, Pos: cp.Next, Started: time.Now().UTC()}
		if cp.Pos == "" && cp.Run > 1 {
			// a run after a key check starts where the last rows run ended
			if prev, err := r.a.lastRowsNext(ctx, spec.ID); err == nil {
				cp.Pos = prev
			}
		}
	}
	n, err := r.extract(ctx, spec, cp, kind)
	if err != nil {
		return n, err
	}
	r.mu.Lock()
	r.lastRun = started
	if d := time.Since(started).Seconds(); d > 0 {
		r.rps = math.Round(float64(n) / d)
	}
	dueKeys := kind == wire.KindRows && spec.Mode != wire.ModeFull && spec.KeyCheckSeconds > 0 &&
		time.Since(r.keyCheck) >= time.Duration(spec.KeyCheckSeconds)*time.Second
	r.mu.Unlock()
	if dueKeys {
		last, err := r.a.lastCheckpoint(ctx, spec.ID)
		if err != nil {
			return n, err
		}
		kc := checkpoint{Run: last.Run + 1, Kind: wire.KindKeys, Started: time.Now().UTC(), Next: last.Next}
		if _, err := r.extract(ctx, spec, kc, wire.KindKeys); err != nil {
			return n, err
		}
		r.mu.Lock()
		r.keyCheck = time.Now()
		r.mu.Unlock()
	}
	return n, nil
}

// lastRowsNext remembers where the last rows run ended, across key checks.
func (a *Agent) lastRowsNext(ctx context.Context, jobID int64) (string, error) {
	e, err := a.state.Get(ctx, "next."+strconv.FormatInt(jobID, 10))
	if err != nil {
		return "", err
	}
	return string(e.Value()), nil
}

// extract reads the source for one run and puts its batches into the
// store, each with the checkpoint after it; the run ends with a marker
// batch holding the run's totals.
func (r *jobRunner) extract(ctx context.Context, spec wire.JobSpec, cp checkpoint, kind string) (int64, error) {
	src, err := r.a.source(spec.Source)
	if err != nil {
		return 0, err
	}
	q := source.Query{SQL: spec.SQL, Key: spec.Key}
	if spec.Table != "" {
		q.Table = source.ParseTable(spec.Table)
	}
	for _, m := range spec.Mapping {
		q.Columns = append(q.Columns, m.Column)
	}
	chunk := spec.BatchRows
	if chunk <= 0 {
		chunk = 5000
	}
	var limiter *rate.Limiter
	if spec.RateLimit > 0 {
		limiter = rate.NewLimiter(rate.Limit(spec.RateLimit), max(spec.RateLimit, chunk))
	}
	var extracted int64
	r.mu.Lock()
	r.progress = 0
	r.mu.Unlock()
	// send stores a batch, in halves (and their halves) when it is too
	// large for one message. Each is encoded once, as it is stored.
	var send func(b wire.Batch, pos string) error
	send = func(b wire.Batch, pos string) error {
		seq := cp.Seq + 1
		b.JobID, b.Version, b.Run, b.Seq, b.Mode, b.Kind = spec.ID, spec.Version, cp.Run, seq, spec.Mode, kind
		b.ID = batchID(r.a.nodeID.Load(), spec.ID, cp.Run, seq)
		b.Checkpoint = pos
		b.ExtractedAt = time.Now().UTC()
		body, err := wire.Encode(b)
		if err != nil {
			return err
		}
		if len(body) > wire.MaxMessage-8*1024 && len(b.Rows) > 1 {
			h := len(b.Rows) / 2
			first, second := b, b
			first.Rows, second.Rows = b.Rows[:h], b.Rows[h:]
			if err := send(first, pos); err != nil {
				return err
			}
			return send(second, pos)
		}
		cp.Seq = seq
		cp.Pos = pos
		cp.Total.Rows += int64(len(b.Rows) + len(b.Deletes) + len(b.Keys))
		cp.Total.Upserts += int64(len(b.Rows))
		cp.Total.Deletes += int64(len(b.Deletes))
		if err := r.a.store(ctx, b.JobID, b.ID, body, cp); err != nil {
			return err
		}
		r.mu.Lock()
		r.cp = cp
		r.progress += int64(len(b.Rows) + len(b.Keys))
		r.mu.Unlock()
		r.a.metrics.extracted(spec.ID, len(b.Rows)+len(b.Keys))
		return nil
	}
	if kind == wire.KindKeys {
		cols, err := src.Describe(ctx, q)
		if err != nil {
			return 0, err
		}
		order, err := keyOrder(cols, spec)
		if err != nil {
			return 0, err
		}
		err = src.Keys(ctx, q, chunk, func(keys []source.Key) error {
			b := wire.Batch{Keys: make([][]string, len(keys))}
			for i, k := range keys {
				mk := make([]string, len(order))
				for j, p := range order {
					mk[j] = k[p]
				}
				b.Keys[i] = mk
			}
			extracted += int64(len(keys))
			return send(b, cp.Pos)
		})
		if err != nil {
			return extracted, err
		}
	} else {
		mapped := func(c source.Chunk) (wire.Batch, error) {
			b := wire.Batch{}
			idx := make([]int, len(spec.Mapping))
			for i, m := range spec.Mapping {
				idx[i] = slices.Index(c.Columns, m.Column)
				if idx[i] < 0 {
					return b, fmt.Errorf("the source returned no column %s", m.Column)
				}
				b.Columns = append(b.Columns, m.Item)
			}
			b.Rows = make([][]*string, len(c.Rows))
			for i, row := range c.Rows {
				out := make([]*string, len(idx))
				for j, p := range idx {
					if !row[p].Null {
						v := row[p].Text
						out[j] = &v
					}
				}
				b.Rows[i] = out
			}
			return b, nil
		}
		each := func(posOf func(source.Chunk) string) source.ChunkFunc {
			return func(c source.Chunk) error {
				if limiter != nil {
					if err := limiter.WaitN(ctx, min(len(c.Rows), limiter.Burst())); err != nil {
						return err
					}
				}
				b, err := mapped(c)
				if err != nil {
					return err
				}
				extracted += int64(len(c.Rows))
				return send(b, posOf(c))
			}
		}
		switch spec.Mode {
		case wire.ModeFull:
			err = src.Full(ctx, q, chunk, each(func(source.Chunk) string { return "" }))
		case wire.ModeKey:
			var next string
			next, err = src.SinceKey(ctx, q, spec.IncColumn, cp.Pos, chunk, each(func(c source.Chunk) string {
				i := slices.Index(c.Columns, spec.IncColumn)
				if i < 0 || len(c.Rows) == 0 {
					return cp.Pos
				}
				return c.Rows[len(c.Rows)-1][i].Text
			}))
			cp.Next = next
		case wire.ModeTime:
			var from time.Time
			if cp.Pos != "" {
				from, _ = time.Parse(time.RFC3339Nano, cp.Pos)
			}
			var upper time.Time
			upper, err = src.SinceTime(ctx, q, spec.IncColumn, from, time.Duration(spec.LagSeconds)*time.Second, chunk,
				each(func(source.Chunk) string { return cp.Pos }))
			if !upper.IsZero() {
				cp.Next = upper.UTC().Format(time.RFC3339Nano)
			}
		}
		if err != nil {
			return extracted, err
		}
		if spec.Mode == wire.ModeFull {
			cp.Next = ""
		}
	}
	// An incremental run of a continuous job that found nothing sends
	// nothing: the center would otherwise count an empty run after every
	// idle pause, all day long. The checkpoint stays where the last run
	// left it, and the next run takes this one's number.
	if kind == wire.KindRows && spec.Mode != wire.ModeFull && spec.Schedule == wire.ScheduleCont && cp.Seq == 0 {
		return extracted, nil
	}
	// The marker ends the run.
	cp.Last = true
	marker := wire.Batch{Last: true, Batches: cp.Seq + 1}
	total := cp.Total
	marker.Total = &total
	if err := send(marker, cp.Pos); err != nil {
		return extracted, err
	}
	if kind == wire.KindRows {
		_, _ = r.a.state.Put(ctx, "next."+strconv.FormatInt(spec.ID, 10), []byte(cp.Next))
	}
	return extracted, nil
}

// keyOrder gives, for each of the resource's key items in order, the
// position of its column in the source's keys.
func keyOrder(cols []source.Column, spec wire.JobSpec) ([]int, error) {
	var keyCols []source.Column
	for _, c := range cols {
		if c.Key > 0 {
			keyCols = append(keyCols, c)
		}
	}
	slices.SortFunc(keyCols, func(a, b source.Column) int { return a.Key - b.Key })
	out := make([]int, len(spec.KeyItems))
	for i, item := range spec.KeyItems {
		out[i] = -1
		for _, m := range spec.Mapping {
			if m.Item != item {
				continue
			}
			for p, c := range keyCols {
				if c.Name == m.Column {
					out[i] = p
				}
			}
		}
		if out[i] < 0 {
			return nil, fmt.Errorf("the key item %s is not mapped to a key column of the source", item)
		}
	}
	return out, nil
}

func batchID(nodeID, jobID, run, seq int64) string {
	return "n" + strconv.FormatInt(nodeID, 10) + "-j" + strconv.FormatInt(jobID, 10) + "-r" + strconv.FormatInt(run, 10) + "-" + strconv.FormatInt(seq, 10)
}

// store puts a batch into the node's store; it returns once the store has
// it on disk.
func (a *Agent) store(ctx context.Context, jobID int64, id string, body []byte, cp checkpoint) error {
	cpJSON, _ := json.Marshal(cp)
	m := &nats.Msg{Subject: subjectOf(jobID), Data: body, Header: nats.Header{}}
	m.Header.Set(jetstream.MsgIDHeader, id)
	m.Header.Set(headerCheckpoint, string(cpJSON))
	if _, err := a.bus.JetStream().PublishMsg(ctx, m); err != nil {
		return fmt.Errorf("node store: %w", err)
	}
	_, _ = a.state.Put(ctx, "cp."+strconv.FormatInt(jobID, 10), cpJSON)
	return nil
}

// outboxPending counts a job's batches not yet at the center.
func (a *Agent) outboxPending(jobID int64) (int64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	info, err := a.outbox.Info(ctx, jetstream.WithSubjectFilter(subjectOf(jobID)))
	if err != nil {
		return 0, err
	}
	n := int64(info.State.Subjects[subjectOf(jobID)])
	if n > 0 {
		n-- // the last forwarded batch stays as the checkpoint
	}
	return n, nil
}

// forwardLoop sends the store's batches to the center in order, each
// until the center has stored it; what was sent is removed, except each
// job's last batch (its checkpoint).
func (a *Agent) forwardLoop(ctx context.Context) {
	cons, err := a.forwarder(ctx)
	if err != nil {
		a.log.Error("node store consumer", "err", err)
		return
	}
	for ctx.Err() == nil {
		if a.Paused() {
			sleep(ctx, 200*time.Millisecond)
			continue
		}
		msgs, err := cons.Fetch(1, jetstream.FetchMaxWait(time.Second))
		if err != nil {
			sleep(ctx, time.Second)
			continue
		}
		for m := range msgs.Messages() {
			backoff := 200 * time.Millisecond
			for ctx.Err() == nil {
				for a.Paused() && ctx.Err() == nil {
					sleep(ctx, 200*time.Millisecond)
				}
				err := a.call(ctx, http.MethodPost, wire.PathBatches, nil, m.Data(), wire.ContentType, nil)
				var refused *refusedError
				if err == nil || errors.As(err, &refused) {
					if err != nil {
						a.log.Error("the center refused a batch; it is dropped from the node's store", "subject", m.Subject(), "err", err)
					}
					meta, _ := m.Metadata()
					_ = m.DoubleAck(ctx)
					if meta != nil {
						// Everything of the job before this batch is at the
						// center: keep this one only, as the checkpoint.
						_ = a.outbox.Purge(ctx, jetstream.WithPurgeSubject(m.Subject()), jetstream.WithPurgeSequence(meta.Sequence.Stream))
					}
					break
				}
				sleep(ctx, backoff)
				backoff = min(backoff*2, 10*time.Second)
			}
		}
	}
}

// forwarder is the store's consumer that forwards batches in order. The
// node is its store's only reader: a batch still out when the node starts
// was out to a forwarder that died with the node (kill -9), and the store
// would not give it out again before AckWait, nor any batch after it. So
// the consumer starts again at the first batch not acknowledged.
func (a *Agent) forwarder(ctx context.Context) (jetstream.Consumer, error) {
	cfg := jetstream.ConsumerConfig{Durable: "forward", AckPolicy: jetstream.AckExplicitPolicy, AckWait: 5 * time.Minute, MaxAckPending: 1}
	if c, err := a.outbox.Consumer(ctx, cfg.Durable); err == nil {
		info, err := c.Info(ctx)
		if err != nil {
			return nil, err
		}
		if info.NumAckPending == 0 && info.NumRedelivered == 0 {
			return c, nil
		}
		if err := a.outbox.DeleteConsumer(ctx, cfg.Durable); err != nil {
			return nil, err
		}
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, info.AckFloor.Stream+1
		a.log.Info("forwarding starts again at the first batch the center has not confirmed", "store_seq", cfg.OptStartSeq)
	} else if !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return nil, err
	}
	return a.outbox.CreateConsumer(ctx, cfg)
}

// Pause stops or resumes forwarding to the center; extraction goes on
// into the node's store (tests cut the link this way).
func (a *Agent) Pause(p bool) { a.paused.Store(p) }

// Paused says whether forwarding is paused.
func (a *Agent) Paused() bool { return a.paused.Load() }
