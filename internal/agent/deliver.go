package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"time"

	"govshare/internal/agent/source"
	"govshare/internal/agent/target"
	"govshare/internal/exchange/wire"
)

// subRunner applies one subscription's deliveries to its target table, in
// order and each once (交换桥接).
type subRunner struct {
	a *Agent
	runner[wire.SubscriptionSpec]

	// guarded by mu
	applied uint64
	lastAt  time.Time
}

func (a *Agent) startSub(ctx context.Context, spec wire.SubscriptionSpec) *subRunner {
	r := &subRunner{a: a}
	r.init(spec, "starting")
	r.start(ctx, r.loop)
	return r
}

func (r *subRunner) report() wire.SubStatus {
	r.mu.Lock()
	defer r.mu.Unlock()
	return wire.SubStatus{Subscription: r.spec.ID, State: r.state, Applied: r.applied, LastAt: r.lastAt, Error: r.err}
}

func streamName(spec wire.SubscriptionSpec) string {
	return "sub-" + strconv.FormatInt(spec.ID, 10) + "-e" + strconv.FormatInt(spec.Epoch, 10)
}

func targetColumns(spec wire.SubscriptionSpec) []target.Column {
	out := make([]target.Column, len(spec.Columns))
	for i, c := range spec.Columns {
		out[i] = target.Column{Name: c.Name, DataType: c.DataType, Length: c.Length, Key: c.Key}
	}
	return out
}

// loop fetches and applies deliveries while the subscription is active.
func (r *subRunner) loop(ctx context.Context) {
	var tgt *target.Target
	defer func() {
		if tgt != nil {
			tgt.Close()
		}
	}()
	var prepared string // stream the target is prepared for
	spec := r.spec
	// ahead is the poll after the deliveries being applied, asked for
	// while they are: a full poll says more are waiting, and the center
	// serving them and the node decoding them go on beside the target's
	// work. It is used by the next round, or dropped.
	var ahead chan polled
	drop := func() {
		if ahead != nil {
			<-ahead
			ahead = nil
		}
	}
	defer drop()
	var acks acker
	defer acks.wait()
	for ctx.Err() == nil {
		select {
		case spec = <-r.specCh:
			drop()
			acks.wait()
			r.mu.Lock()
			r.spec = spec
			r.mu.Unlock()
		default:
		}
		if !spec.Active {
			drop()
			r.set("stopped", "")
			select {
			case spec = <-r.specCh:
				r.mu.Lock()
				r.spec = spec
				r.mu.Unlock()
			case <-ctx.Done():
			}
			continue
		}
		if tgt == nil {
			d, ok := r.a.cfg.target(spec.Target)
			if !ok {
				r.set("failed", fmt.Sprintf("the node's configuration has no target named %q", spec.Target))
				sleep(ctx, 10*time.Second)
				continue
			}
			t, err := target.Open(d.Kind, d.DSN)
			if err != nil {
				r.set("failed", err.Error())
				sleep(ctx, 5*time.Second)
				continue
			}
			tgt = t
		}
		stream := streamName(spec)
		cols := targetColumns(spec)
		if prepared != stream {
			acks.wait()
			acks.last = nil
			if err := r.prepare(ctx, tgt, spec, cols); err != nil {
				r.set("failed", err.Error())
				sleep(ctx, 5*time.Second)
				continue
			}
			if err := r.acknowledgeKept(ctx, tgt, spec); err != nil {
				r.set("failed", err.Error())
				sleep(ctx, 5*time.Second)
				continue
			}
			prepared = stream
		}
		applied, err := tgt.Applied(ctx, stream)
		if err != nil {
			r.set("failed", err.Error())
			sleep(ctx, 5*time.Second)
			continue
		}
		r.mu.Lock()
		r.applied = applied
		r.mu.Unlock()
		wait := "20"
		if !spec.Realtime {
			wait = "0"
		}
		var got wire.Deliveries
		var prep *target.Prepared
		if ahead != nil {
			p := <-ahead
			ahead = nil
			got, err = p.got, p.err
			if p.stream == stream && slices.Equal(p.cols, cols) {
				prep = p.prep // prepared for the subscription as it still is
			}
		} else {
			got, err = r.poll(ctx, spec, applied, wait)
		}
		if err != nil {
			if ctx.Err() == nil {
				r.set("waiting", err.Error())
				sleep(ctx, 2*time.Second)
			}
			continue
		}
		if !got.Active {
			r.set("stopped", "")
			spec.Active = false
			continue
		}
		r.set("applying", "")
		if n := len(got.Items); n == deliveriesPerPoll {
			// The next deliveries are checked and converted for the
			// target as they come, while these are written.
			ahead = make(chan polled, 1)
			go func(after uint64, spec wire.SubscriptionSpec, cols []target.Column) {
				d, err := r.poll(ctx, spec, after, "0")
				p := polled{got: d, err: err, stream: streamName(spec), cols: cols}
				if items := ofEpoch(d.Items, spec.Epoch); err == nil && d.Active && len(items) > 0 {
					p.prep, _ = target.Prepare(spec.Table, cols, streamName(spec), toBatches(items)) // refused: applied one at a time below
				}
				ahead <- p
			}(got.Items[n-1].Seq, spec, cols)
		}
		items := ofEpoch(got.Items, spec.Epoch)
		// The deliveries of a poll are applied in one transaction of the
		// target and acknowledged together once it is committed, while
		// the next are applied: their acknowledgements are the target's
		// note from the commit on, and stay in the next transaction's note
		// too (acks.last), so a node killed at any point before the center
		// heard them sends them all when it starts again
		// (acknowledgeKept). When the transaction fails they are applied
		// one at a time, so that the one at fault is the one acknowledged
		// with its error, after those before it.
		single := false
		for len(items) > 0 {
			n := len(items)
			if single {
				n = 1
			}
			var ready *target.Prepared
			if n == len(items) && !single {
				ready = prep // prepared for exactly these deliveries
			}
			done, err := applyDeliveries(ctx, tgt, spec, cols, items[:n], ready, acks.last)
			if err != nil && n > 1 {
				single = true
				continue
			}
			if err != nil {
				acks.wait()
				r.acknowledge(ctx, spec.ID, done)
				r.set("failed", err.Error())
				break
			}
			for _, d := range items[:n] {
				r.a.metrics.applied(spec.ID, len(d.Rows)+len(d.Deletes), d.Changed)
			}
			r.sendAcks(ctx, &acks, spec.ID, done)
			r.mu.Lock()
			r.applied, r.lastAt = items[n-1].Seq, time.Now().UTC()
			r.mu.Unlock()
			items = items[n:]
		}
		if r.state == "failed" {
			drop()
			sleep(ctx, 5*time.Second)
		} else if !spec.Realtime && len(got.Items) == 0 {
			sleep(ctx, time.Duration(max(spec.IntervalSeconds, 1))*time.Second)
		}
	}
}

// acker sends the acknowledgements of a transaction while the next is
// applied: one request in flight at a time, in order.
type acker struct {
	done chan struct{} // closed once the acknowledgements in flight are sent
	last []wire.Ack    // the last transaction's: the next one's note keeps them
}

// wait returns once the acknowledgements in flight are sent (or the
// runner stops).
func (k *acker) wait() {
	if k.done != nil {
		<-k.done
		k.done = nil
	}
}

// sendAcks sends acks once those in flight are sent, and returns at once.
// The transaction after the next can replace the note that keeps acks:
// by then they are sent, since the next transaction's are sent after
// them.
func (r *subRunner) sendAcks(ctx context.Context, k *acker, subID int64, acks []wire.Ack) {
	k.wait()
	done := make(chan struct{})
	k.done, k.last = done, acks
	go func() {
		defer close(done)
		r.acknowledge(ctx, subID, acks)
	}()
}

// polled is what a poll for deliveries brought, and its deliveries of
// the subscription's epoch prepared for the target (nil: not prepared).
type polled struct {
	got  wire.Deliveries
	err  error
	prep *target.Prepared
	// stream and cols are the subscription's when the deliveries were
	// prepared: the prepared form is used only while they are the same.
	stream string
	cols   []target.Column
}

// ofEpoch keeps the deliveries of epoch.
func ofEpoch(ds []wire.Delivery, epoch int64) []wire.Delivery {
	out := ds[:0:0]
	for _, d := range ds {
		if d.Epoch == epoch {
			out = append(out, d)
		}
	}
	return out
}

// poll asks the center for the deliveries after seq after, waiting up to
// wait seconds for the first.
// The deliveries come as the center stores them, when it can send them
// so (wire.ContentTypeDeliveries), else as JSON.
func (r *subRunner) poll(ctx context.Context, spec wire.SubscriptionSpec, after uint64, wait string) (wire.Deliveries, error) {
	var got wire.Deliveries
	q := url.Values{"subscription": {strconv.FormatInt(spec.ID, 10)}, "after": {strconv.FormatUint(after, 10)}, "max": {strconv.Itoa(deliveriesPerPoll)},
		"wait": {wait}}
	h, raw, err := r.a.request(ctx, http.MethodGet, wire.PathDeliveries, q, nil, "", wire.ContentTypeDeliveries)
	if err != nil {
		return got, err
	}
	if h.Get("Content-Type") != wire.ContentTypeDeliveries {
		err = json.Unmarshal(raw, &got)
		return got, err
	}
	got.Active = h.Get(wire.HeaderActive) == "true"
	got.Items, err = wire.DecodeDeliveries(raw)
	return got, err
}

// deliveriesPerPoll is how many deliveries a node asks for at once. They
// are held decoded until applied (up to 5,000 rows each): when the center
// delivers a large batch faster than the target takes it, twenty took a
// node past 150 MB; the poll's round trip is small beside applying five.
const deliveriesPerPoll = 5

// applyDeliveries applies ds (seqs ascending) to the target in one
// transaction and returns their acknowledgements, which ApplyBatches
// records as the stream's note in the same transaction (a JSON array),
// after carry, those of the transaction before, which the center may not
// have heard yet: what the center must hear of the deliveries is kept
// exactly when they are. Deliveries applied before are skipped and acknowledged with no
// counts (the center has them, or acknowledgeKept sends them); when the
// transaction fails every delivery is acknowledged with its error.
func applyDeliveries(ctx context.Context, tgt *target.Target, spec wire.SubscriptionSpec, cols []target.Column, ds []wire.Delivery,
	prep *target.Prepared, carry []wire.Ack) ([]wire.Ack, error) {
	acks := make([]wire.Ack, len(ds))
	for i, d := range ds {
		acks[i] = wire.Ack{Subscription: spec.ID, Epoch: d.Epoch, Seq: d.Seq, Run: d.Run, Part: d.Part, Attempt: d.Attempt}
	}
	note := func(cs []target.Counts) []byte {
		// The deliveries applied before are the first ones: cs counts
		// the others.
		skipped, at := len(ds)-len(cs), time.Now().UTC()
		for i, c := range cs {
			d, ack := ds[skipped+i], &acks[skipped+i]
			ack.Counts = wire.RunCounts{Rows: int64(len(d.Rows) + len(d.Deletes)), Inserted: c.Inserted, Updated: c.Updated, Unchanged: c.Unchanged,
				Deleted: c.Deleted, Missing: c.Missing}
			ack.AppliedAt = at
		}
		b, _ := json.Marshal(append(slices.Clone(carry), acks[skipped:]...))
		return b
	}
	var skipped int
	var err error
	if prep != nil {
		_, skipped, err = tgt.ApplyPrepared(ctx, prep, note)
	} else {
		_, skipped, err = tgt.ApplyBatches(ctx, spec.Table, cols, streamName(spec), toBatches(ds), note)
	}
	if err != nil {
		for i := range acks {
			acks[i].Counts, acks[i].AppliedAt, acks[i].Error = wire.RunCounts{}, time.Time{}, err.Error()
		}
		return acks, err
	}
	for i := range acks[:skipped] {
		acks[i].Counts, acks[i].AppliedAt = wire.RunCounts{}, time.Now().UTC()
	}
	return acks, nil
}

// acknowledge tells the center what was applied, again and again while
// the center cannot be reached: a delivery applied but never acknowledged
// leaves its run unreconciled for good. The center takes an
// acknowledgement it already has as nothing new (it counts each part of a
// run once, and a subscription's applied seq only grows), so sending one
// again is always safe.
func (r *subRunner) acknowledge(ctx context.Context, subID int64, acks []wire.Ack) {
	body, _ := json.Marshal(acks)
	backoff := 200 * time.Millisecond
	for ctx.Err() == nil {
		err := r.a.call(ctx, http.MethodPost, wire.PathAcks, nil, body, "application/json", nil)
		var link *linkError
		if err == nil || !errors.As(err, &link) {
			if err != nil {
				r.a.log.Warn("the center refused the acknowledgement of deliveries", "subscription", subID, "err", err)
			}
			return
		}
		sleep(ctx, backoff)
		backoff = min(backoff*2, 10*time.Second)
	}
}

// storedAckKey is where a node of an earlier version, before the target's
// bookkeeping kept acknowledgements, kept the one of a subscription's last
// delivery: in the node's own store.
func storedAckKey(subID int64) string { return "ack." + strconv.FormatInt(subID, 10) }

// acknowledgeKept sends the acknowledgements of the deliveries last
// applied (the last transaction's) again, in case the node stopped before
// the center heard them: those in the target's note or, when the target
// has none (the stream's deliveries were applied by a node of an earlier
// version), the copy such a node kept in its store. The store's copy is dropped once it is sent or superseded.
// It fails only when the target cannot be read: the next delivery must not
// be applied, replacing the note, before the note was sent.
func (r *subRunner) acknowledgeKept(ctx context.Context, tgt *target.Target, spec wire.SubscriptionSpec) error {
	_, kept, err := tgt.LastNote(ctx, streamName(spec))
	if err != nil {
		return err
	}
	stored, storedErr := r.a.state.Get(ctx, storedAckKey(spec.ID))
	if kept == nil && storedErr == nil {
		kept = stored.Value()
	}
	var acks []wire.Ack
	for _, ack := range keptAcks(kept) {
		if ack.Subscription == spec.ID && ack.Epoch == spec.Epoch {
			acks = append(acks, ack)
		}
	}
	if len(acks) > 0 {
		r.acknowledge(ctx, spec.ID, acks)
	}
	if storedErr == nil && ctx.Err() == nil {
		if err := r.a.state.Delete(ctx, storedAckKey(spec.ID)); err != nil {
			r.a.log.Warn("dropping the acknowledgement kept in the node's store", "subscription", spec.ID, "err", err)
		}
	}
	return nil
}

// keptAcks reads the acknowledgements kept in a note: those of the
// deliveries of the note's transaction (a JSON array), or the one a node
// of an earlier version kept (an object); none when the note is not
// JSON.
func keptAcks(kept []byte) []wire.Ack {
	var acks []wire.Ack
	if json.Unmarshal(kept, &acks) == nil {
		return acks
	}
	var ack wire.Ack
	if json.Unmarshal(kept, &ack) == nil {
		return []wire.Ack{ack}
	}
	return nil
}

// prepare makes the target ready for a (new) epoch: the table exists, and
// a re-sync starts from an empty table.
func (r *subRunner) prepare(ctx context.Context, tgt *target.Target, spec wire.SubscriptionSpec, cols []target.Column) error {
	if err := tgt.Ensure(ctx, spec.Table, cols, spec.Create); err != nil {
		return err
	}
	stream := streamName(spec)
	applied, err := tgt.Applied(ctx, stream)
	if err != nil {
		return err
	}
	if applied == 0 && spec.Epoch > 1 {
		return tgt.Reset(ctx, stream, spec.Table, true)
	}
	return nil
}

// toBatches makes deliveries the target's.
func toBatches(ds []wire.Delivery) []target.Batch {
	out := make([]target.Batch, len(ds))
	for i, d := range ds {
		out[i] = target.Batch{Seq: d.Seq, Upserts: toRows(d.Rows), Deletes: toKeys(d.Deletes)}
	}
	return out
}

// toRows makes a delivery's rows the target's: one slab of values for
// all of them, not an allocation a row.
func toRows(rows [][]*string) []source.Row {
	out := make([]source.Row, len(rows))
	n := 0
	for _, row := range rows {
		n += len(row)
	}
	slab := make([]source.Value, n)
	for i, row := range rows {
		r := slab[:len(row):len(row)]
		slab = slab[len(row):]
		for j, v := range row {
			if v == nil {
				r[j] = source.Value{Null: true}
			} else {
				r[j] = source.Value{Text: *v}
			}
		}
		out[i] = r
	}
	return out
}

func toKeys(keys [][]string) []source.Key {
	out := make([]source.Key, len(keys))
	for i, k := range keys {
		out[i] = source.Key(k)
	}
	return out
}
