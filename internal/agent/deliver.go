package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
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
	for ctx.Err() == nil {
		select {
		case spec = <-r.specCh:
			drop()
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
		if ahead != nil {
			p := <-ahead
			ahead = nil
			got, err = p.got, p.err
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
			ahead = make(chan polled, 1)
			go func(after uint64) {
				d, err := r.poll(ctx, spec, after, "0")
				ahead <- polled{d, err}
			}(got.Items[n-1].Seq)
		}
		for _, d := range got.Items {
			if d.Epoch != spec.Epoch {
				continue
			}
			ack, err := applyDelivery(ctx, tgt, spec, cols, d)
			if err != nil {
				r.acknowledge(ctx, spec.ID, []wire.Ack{ack})
				r.set("failed", err.Error())
				break
			}
			r.a.metrics.applied(spec.ID, len(d.Rows)+len(d.Deletes), d.Changed)
			// Each delivery is acknowledged before the next is applied, and
			// its acknowledgement is in the target's bookkeeping from the
			// commit on: a node killed at any point before the center heard
			// sends it when it starts again (acknowledgeKept).
			r.acknowledge(ctx, spec.ID, []wire.Ack{ack})
			r.mu.Lock()
			r.applied, r.lastAt = d.Seq, time.Now().UTC()
			r.mu.Unlock()
		}
		if r.state == "failed" {
			drop()
			sleep(ctx, 5*time.Second)
		} else if !spec.Realtime && len(got.Items) == 0 {
			sleep(ctx, time.Duration(max(spec.IntervalSeconds, 1))*time.Second)
		}
	}
}

// polled is what a poll for deliveries brought.
type polled struct {
	got wire.Deliveries
	err error
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

// applyDelivery applies d to the target and returns its acknowledgement,
// which Apply records as the stream's note in the same transaction: what
// the center must hear of a delivery is kept exactly when the delivery is.
// A delivery applied before is skipped and acknowledged with no counts (the
// center has them, or acknowledgeKept sends them); a failed one is
// acknowledged with its error.
func applyDelivery(ctx context.Context, tgt *target.Target, spec wire.SubscriptionSpec, cols []target.Column, d wire.Delivery) (wire.Ack, error) {
	ack := wire.Ack{Subscription: spec.ID, Epoch: d.Epoch, Seq: d.Seq, Run: d.Run, Part: d.Part, Attempt: d.Attempt}
	note := func(c target.Counts) []byte {
		ack.Counts = wire.RunCounts{Rows: int64(len(d.Rows) + len(d.Deletes)), Inserted: c.Inserted, Updated: c.Updated, Unchanged: c.Unchanged,
			Deleted: c.Deleted, Missing: c.Missing}
		ack.AppliedAt = time.Now().UTC()
		b, _ := json.Marshal(ack)
		return b
	}
	_, skipped, err := tgt.Apply(ctx, spec.Table, cols, streamName(spec), d.Seq, toRows(d.Rows), toKeys(d.Deletes), note)
	switch {
	case err != nil:
		ack.Counts, ack.AppliedAt, ack.Error = wire.RunCounts{}, time.Time{}, err.Error()
		return ack, err
	case skipped:
		ack.Counts, ack.AppliedAt = wire.RunCounts{}, time.Now().UTC()
	}
	return ack, nil
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

// acknowledgeKept sends the acknowledgement of the delivery last applied
// again, in case the node stopped before the center heard it: the one in
// the target's note or, when the target has none (the stream's deliveries
// were applied by a node of an earlier version), the copy such a node kept
// in its store. The store's copy is dropped once it is sent or superseded.
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
	var ack wire.Ack
	if kept != nil && json.Unmarshal(kept, &ack) == nil && ack.Subscription == spec.ID && ack.Epoch == spec.Epoch {
		r.acknowledge(ctx, spec.ID, []wire.Ack{ack})
	}
	if storedErr == nil && ctx.Err() == nil {
		if err := r.a.state.Delete(ctx, storedAckKey(spec.ID)); err != nil {
			r.a.log.Warn("dropping the acknowledgement kept in the node's store", "subscription", spec.ID, "err", err)
		}
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

func toRows(rows [][]*string) []source.Row {
	out := make([]source.Row, len(rows))
	for i, row := range rows {
		r := make(source.Row, len(row))
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
