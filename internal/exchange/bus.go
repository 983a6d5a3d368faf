package exchange

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// The exchange's streams on the bus.
const (
	streamIn  = "GOVSHARE_EXCHANGE_IN"
	streamOut = "GOVSHARE_EXCHANGE_OUT"
	// dupWindow is how long a stream remembers message ids: a node
	// resending a batch within it is answered "duplicate" and the batch is
	// stored once; the pipeline's batch id catches later repeats.
	dupWindow = time.Hour
)

func subjectIn(nodeID, jobID int64) string {
	return "gs.in." + strconv.FormatInt(nodeID, 10) + "." + strconv.FormatInt(jobID, 10)
}

func subjectOut(subID int64) string { return "gs.out." + strconv.FormatInt(subID, 10) }

// subjectWake is where the center tells its own servers that a node's
// commands changed, so long-polling nodes hear at once.
func subjectWake(nodeID int64) string { return "gs.wake." + strconv.FormatInt(nodeID, 10) }

// ensureStreams creates or updates the streams. Both keep messages on
// disk; with Replicas 3 on a cluster a message is stored on a majority of
// servers before the publisher's ack.
func (s *Service) ensureStreams(ctx context.Context) error {
	js := s.Bus.JetStream()
	for _, cfg := range []jetstream.StreamConfig{
		{Name: streamIn, Subjects: []string{"gs.in.>"}, Storage: jetstream.FileStorage, Retention: jetstream.WorkQueuePolicy,
			Replicas: s.Replicas, Duplicates: dupWindow, Description: "govshare: batches from exchange nodes, until the pipeline has them"},
		// Deliveries are read by direct gets: the message as stored, not
		// a JSON answer with the message in base64 (which cost the center
		// a sixteenth of its CPU in a bulk exchange). A direct get may be
		// answered by any replica; one behind the leader only has fewer
		// deliveries yet, never other ones.
		{Name: streamOut, Subjects: []string{"gs.out.>"}, Storage: jetstream.FileStorage, Retention: jetstream.LimitsPolicy,
			Replicas: s.Replicas, Duplicates: dupWindow, AllowDirect: true,
			Description: "govshare: deliveries to subscriptions, until the consumer's node applied them"},
	} {
		if _, err := js.CreateOrUpdateStream(ctx, cfg); err != nil {
			return fmt.Errorf("exchange stream %s: %w", cfg.Name, err)
		}
	}
	return nil
}

// publish stores a message and returns once the stream has it (on disk,
// or on a majority of a cluster). headers are pairs of names and values.
func (s *Service) publish(ctx context.Context, subject, msgID string, body []byte, headers ...string) (*jetstream.PubAck, error) {
	return s.publishMsg(ctx, message(subject, msgID, body, headers...))
}

func (s *Service) publishMsg(ctx context.Context, m *nats.Msg) (*jetstream.PubAck, error) {
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		ack, err := s.Bus.JetStream().PublishMsg(ctx, m)
		if err == nil {
			return ack, nil
		}
		lastErr = err
		if ctx.Err() != nil || !errors.Is(err, nats.ErrNoResponders) && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, nats.ErrTimeout) {
			break
		}
		time.Sleep(time.Duration(attempt+1) * 200 * time.Millisecond)
	}
	return nil, fmt.Errorf("store on the bus: %w", lastErr)
}

// message is a message to store, with its id and headers (pairs of names
// and values).
func message(subject, msgID string, body []byte, headers ...string) *nats.Msg {
	m := &nats.Msg{Subject: subject, Data: body, Header: nats.Header{}}
	m.Header.Set(jetstream.MsgIDHeader, msgID)
	for i := 0; i+1 < len(headers); i += 2 {
		m.Header.Set(headers[i], headers[i+1])
	}
	return m
}

// pubWindow stores a run's messages without waiting for each to be stored
// before the next is read and encoded: up to pubWindowSize are on their
// way at once, in order on one connection. stored is called for each
// once the stream has it; flush returns when all have been.
type pubWindow struct {
	s       *Service
	stored  func()
	pending []jetstream.PubAckFuture
}

// pubWindowSize is how many messages a window has on their way. A
// stream that stores every message on disk before its ack takes a sync of
// the disk each: the center reads and encodes the next ones meanwhile.
const pubWindowSize = 4

// pubAckWait is how long a window waits for a message's ack before it
// stores the message again the waiting way (its id makes it once).
const pubAckWait = 10 * time.Second

func (w *pubWindow) add(ctx context.Context, m *nats.Msg) error {
	if len(w.pending) >= pubWindowSize {
		if err := w.wait(ctx, w.pending[0]); err != nil {
			return err
		}
		w.pending = w.pending[1:]
	}
	f, err := w.s.Bus.JetStream().PublishMsgAsync(m)
	if err != nil {
		if _, err := w.s.publishMsg(ctx, m); err != nil {
			return err
		}
		w.stored()
		return nil
	}
	w.pending = append(w.pending, f)
	return nil
}

// wait returns when f's message is stored: acknowledged, or, after an
// error or no word for pubAckWait, stored again the waiting way.
func (w *pubWindow) wait(ctx context.Context, f jetstream.PubAckFuture) error {
	t := time.NewTimer(pubAckWait)
	defer t.Stop()
	select {
	case <-f.Ok():
		w.stored()
		return nil
	case <-f.Err():
	case <-t.C:
	case <-ctx.Done():
		return ctx.Err()
	}
	if _, err := w.s.publishMsg(ctx, f.Msg()); err != nil {
		return err
	}
	w.stored()
	return nil
}

func (w *pubWindow) flush(ctx context.Context) error {
	for len(w.pending) > 0 {
		if err := w.wait(ctx, w.pending[0]); err != nil {
			return err
		}
		w.pending = w.pending[1:]
	}
	return nil
}

// purgeDeliveries drops the deliveries waiting for a subscription.
func (s *Service) purgeDeliveries(ctx context.Context, subID int64) error {
	st, err := s.Bus.JetStream().Stream(ctx, streamOut)
	if err != nil {
		return err
	}
	return st.Purge(ctx, jetstream.WithPurgeSubject(subjectOut(subID)))
}

// nudge tells long-polling nodes their commands changed.
func (s *Service) nudge(nodeID int64) {
	_ = s.Bus.Conn().Publish(subjectWake(nodeID), nil)
}

// kick wakes the fan-out.
func (s *Service) kick() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}
