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
	for ctx.Err() == nil {
		select {
		case spec = <-r.specCh:
			r.mu.Lock()
			r.spec = spec
			r.mu.Unlock()
		default:
		}
		if !spec.Active {
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
			prepared = stream
			r.acknowledgeKept(ctx, spec)
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
		q := url.Values{"subscription": {strconv.FormatInt(spec.ID, 10)}, "after": {strconv.FormatUint(applied, 10)}, "max": {"20"}, "wait": {wait}}
		if err := r.a.call(ctx, http.MethodGet, wire.PathDeliveries, q, nil, "", &got); err != nil {
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
		for _, d := range got.Items {
			if d.Epoch != spec.Epoch {
				continue
			}
			c, skipped, err := tgt.Apply(ctx, spec.Table, cols, stream, d.Seq, toRows(d.Rows), toKeys(d.Deletes))
			if err != nil {
				r.acknowledge(ctx, spec.ID, []wire.Ack{{Subscription: spec.ID, Epoch: d.Epoch, Seq: d.Seq, Run: d.Run, Part: d.Part, Attempt: d.Attempt,
					Error: err.Error()}})
				r.set("failed", err.Error())
				break
			}
			counts := wire.RunCounts{Rows: int64(len(d.Rows) + len(d.Deletes)), Inserted: c.Inserted, Updated: c.Updated, Unchanged: c.Unchanged,
				Deleted: c.Deleted, Missing: c.Missing}
			if skipped {
				counts = wire.RunCounts{}
			}
			r.a.metrics.applied(spec.ID, len(d.Rows)+len(d.Deletes), d.Changed)
			// Each delivery is acknowledged before the next is applied, its
			// acknowledgement kept in the node's store first: a node killed
			// before the center heard sends it when it starts again. Between
			// the target's commit and the store's write a kill still loses
			// it; only the target's own bookkeeping, in the same
			// transaction, could close that gap.
			ack := wire.Ack{Subscription: spec.ID, Epoch: d.Epoch, Seq: d.Seq, Run: d.Run, Part: d.Part, Attempt: d.Attempt,
				Counts: counts, AppliedAt: time.Now().UTC()}
			if !skipped {
				r.keepAck(ctx, ack)
			}
			r.acknowledge(ctx, spec.ID, []wire.Ack{ack})
			r.mu.Lock()
			r.applied, r.lastAt = d.Seq, time.Now().UTC()
			r.mu.Unlock()
		}
		if r.state == "failed" {
			sleep(ctx, 5*time.Second)
		} else if !spec.Realtime && len(got.Items) == 0 {
			sleep(ctx, time.Duration(max(spec.IntervalSeconds, 1))*time.Second)
		}
	}
}

// acknowledge tells the center what was applied, again and again while
// the center cannot be reached: a delivery applied but never acknowledged
// leaves its run unreconciled for good. The center takes an
// acknowledgement it already has as nothing new.
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

func ackKey(subID int64) string { return "ack." + strconv.FormatInt(subID, 10) }

// keepAck keeps the acknowledgement of the delivery last applied.
func (r *subRunner) keepAck(ctx context.Context, ack wire.Ack) {
	b, _ := json.Marshal(ack)
	if _, err := r.a.state.Put(ctx, ackKey(ack.Subscription), b); err != nil {
		r.a.log.Warn("keeping the acknowledgement of a delivery", "subscription", ack.Subscription, "err", err)
	}
}

// acknowledgeKept sends the acknowledgement of the delivery last applied
// again, in case the node stopped before the center heard it.
func (r *subRunner) acknowledgeKept(ctx context.Context, spec wire.SubscriptionSpec) {
	e, err := r.a.state.Get(ctx, ackKey(spec.ID))
	if err != nil {
		return
	}
	var ack wire.Ack
	if json.Unmarshal(e.Value(), &ack) == nil && ack.Epoch == spec.Epoch {
		r.acknowledge(ctx, spec.ID, []wire.Ack{ack})
	}
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
