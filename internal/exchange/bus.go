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
	m := &nats.Msg{Subject: subject, Data: body, Header: nats.Header{}}
	m.Header.Set(jetstream.MsgIDHeader, msgID)
	for i := 0; i+1 < len(headers); i += 2 {
		m.Header.Set(headers[i], headers[i+1])
	}
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
