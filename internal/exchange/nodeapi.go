package exchange

import (
	"context"
	"encoding/json"
	"errors"
	"hash/fnv"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"govshare/internal/apperr"
	"govshare/internal/exchange/wire"
	"govshare/internal/pki"
	"govshare/internal/resource"
	"govshare/internal/store"
)

// NodeHandler serves the node endpoint. It must sit behind a TLS listener
// configured with pki.ServerTLS: every request is checked against the
// node's certificate (and its revocation) before anything else.
func (s *Service) NodeHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+wire.PathCommands, s.nodeCall(s.serveCommands))
	mux.HandleFunc("POST "+wire.PathStatus, s.nodeCall(s.serveStatus))
	mux.HandleFunc("POST "+wire.PathBatches, s.nodeCall(s.serveBatch))
	mux.HandleFunc("GET "+wire.PathDeliveries, s.nodeCall(s.serveDeliveries))
	mux.HandleFunc("POST "+wire.PathAcks, s.nodeCall(s.serveAcks))
	mux.HandleFunc("POST "+wire.PathChecksums, s.nodeCall(s.serveChecksums))
	mux.HandleFunc("POST "+wire.PathChecks, s.nodeCall(s.serveCheckReport))
	return mux
}

type nodeCtx struct {
	id, dept int64
}

// nodeCall authenticates the node and turns errors into JSON answers.
func (s *Service) nodeCall(fn func(w http.ResponseWriter, r *http.Request, n nodeCtx) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil {
			writeErr(w, apperr.New(http.StatusUnauthorized, "node.tls_required", "前置机须以证书双向认证连接", "nodes connect with mutual TLS"))
			return
		}
		id, dept, err := s.PKI.NodeIdentity(r.Context(), *r.TLS)
		if err != nil {
			writeErr(w, err)
			return
		}
		if err := fn(w, r, nodeCtx{id: id, dept: dept}); err != nil {
			writeErr(w, err)
		}
	}
}

func writeErr(w http.ResponseWriter, err error) {
	var ae *apperr.Error
	if !errors.As(err, &ae) {
		ae = apperr.New(http.StatusInternalServerError, "internal", "服务器内部错误，请稍后重试", "internal error; try again later")
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(ae.Status)
	_ = json.NewEncoder(w).Encode(map[string]any{"code": ae.Code, "message_zh": ae.ZH, "message_en": ae.EN, "field": ae.Field})
}

func writeJSON(w http.ResponseWriter, v any) error {
	w.Header().Set("Content-Type", "application/json")
	return json.NewEncoder(w).Encode(v)
}

func queryInt(r *http.Request, name string, def int64) int64 {
	if v, err := strconv.ParseInt(r.URL.Query().Get(name), 10, 64); err == nil {
		return v
	}
	return def
}

// watch listens for messages on subject until stop is called. A long
// poll starts watching before it looks, so that a message published
// between its look and its wait wakes it rather than leaving it asleep
// for the rest of the wait.
func (s *Service) watch(subject string) (wake <-chan struct{}, stop func()) {
	ch := make(chan struct{}, 1)
	sub, err := s.Bus.Conn().Subscribe(subject, func(*nats.Msg) {
		select {
		case ch <- struct{}{}:
		default:
		}
	})
	if err != nil {
		return ch, func() {}
	}
	return ch, func() { _ = sub.Unsubscribe() }
}

// waitOn waits up to d for wake or the request's end.
func waitOn(ctx context.Context, wake <-chan struct{}, d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-wake:
	case <-t.C:
	case <-ctx.Done():
	}
}

func clampWait(r *http.Request) time.Duration {
	w := queryInt(r, "wait", 0)
	if w > 30 {
		w = 30
	}
	return time.Duration(w) * time.Second
}

// Commands builds what a node is to run.
func (s *Service) Commands(ctx context.Context, nodeID int64) (wire.Commands, error) {
	c := wire.Commands{NodeID: nodeID, Jobs: []wire.JobSpec{}, Subscriptions: []wire.SubscriptionSpec{}}
	if err := s.DB.QueryRow(ctx, "SELECT name FROM nodes WHERE id = ?", nodeID).Scan(&c.NodeName); err != nil {
		return c, err
	}
	jobs, err := store.All(ctx, s.DB, scanJob, "SELECT "+jobCols+jobFrom+" WHERE j.deleted_at IS NULL AND j.node_id = ? ORDER BY j.id", nodeID)
	if err != nil {
		return c, err
	}
	for _, j := range jobs {
		r, err := s.Resources.ByCode(ctx, j.Resource)
		if err != nil {
			return c, err
		}
		j.KeyItems = nil
		for _, k := range r.Keys() {
			j.KeyItems = append(j.KeyItems, k.MachineName)
		}
		c.Jobs = append(c.Jobs, j.JobSpec)
	}
	subs, err := store.All(ctx, s.DB, scanSub, "SELECT "+subCols+subFrom+" WHERE s.state <> 'deleted' AND s.node_id = ? ORDER BY s.id", nodeID)
	if err != nil {
		return c, err
	}
	for _, x := range subs {
		r, err := s.Resources.ByCode(ctx, x.Resource)
		if err != nil {
			return c, err
		}
		c.Subscriptions = append(c.Subscriptions, wire.SubscriptionSpec{ID: x.ID, Version: x.Version, Resource: x.Resource, Target: x.Target,
			Table: x.Table, Create: x.Create, Columns: deliveredColumns(r, x.Items), Active: x.State == "active", Realtime: x.Realtime,
			IntervalSeconds: x.Interval, Epoch: x.Epoch})
	}
	// A check requested or finished changes the revision, so a node
	// waiting for its commands hears of it at once.
	if c.Checks, err = s.pendingChecks(ctx, nodeID); err != nil {
		return c, err
	}
	b, _ := json.Marshal(c)
	h := fnv.New64a()
	h.Write(b)
	c.Revision = int64(h.Sum64() >> 1)
	return c, nil
}

// deliveredColumns are the resource's visible columns among items, in
// table order.
func deliveredColumns(r resource.Resource, items []string) []wire.DeliveredColumn {
	var out []wire.DeliveredColumn
	for _, c := range r.Visible() {
		for _, it := range items {
			if it == c.MachineName {
				out = append(out, wire.DeliveredColumn{Name: c.MachineName, DataType: c.DataType, Length: c.Length, Key: c.Key})
			}
		}
	}
	return out
}

func (s *Service) serveCommands(w http.ResponseWriter, r *http.Request, n nodeCtx) error {
	after := queryInt(r, "after", -1)
	deadline := time.Now().Add(clampWait(r))
	wake, stop := s.watch(subjectWake(n.id))
	defer stop()
	for {
		c, err := s.Commands(r.Context(), n.id)
		if err != nil {
			return err
		}
		left := time.Until(deadline)
		if c.Revision != after || left <= 0 || r.Context().Err() != nil {
			return writeJSON(w, c)
		}
		waitOn(r.Context(), wake, min(left, 5*time.Second))
	}
}

func (s *Service) serveStatus(w http.ResponseWriter, r *http.Request, n nodeCtx) error {
	var st wire.Status
	if err := json.NewDecoder(io.LimitReader(r.Body, 16<<20)).Decode(&st); err != nil {
		return apperr.Invalid("node.status_invalid", "body", "状态报文格式错误", "the status report is not valid JSON")
	}
	if err := s.report(r.Context(), n, st); err != nil {
		return err
	}
	c, err := s.Commands(r.Context(), n.id)
	if err != nil {
		return err
	}
	runs, err := s.recentRuns(r.Context(), n.id)
	if err != nil {
		return err
	}
	return writeJSON(w, wire.StatusReply{Revision: c.Revision, Runs: runs})
}

// ErrBatchInvalid refuses a batch the node may not send.
var ErrBatchInvalid = apperr.New(http.StatusBadRequest, "node.batch_invalid", "批次不属于本前置机的任务或格式错误", "the batch is malformed or not of one of this node's jobs")

func (s *Service) serveBatch(w http.ResponseWriter, r *http.Request, n nodeCtx) error {
	body, err := io.ReadAll(io.LimitReader(r.Body, wire.MaxMessage+1))
	if err != nil {
		return err
	}
	if len(body) > wire.MaxMessage {
		return apperr.New(http.StatusRequestEntityTooLarge, "node.batch_too_large", "批次过大，请减少每批行数", "the batch is too large; send fewer rows per batch")
	}
	// Only the batch's identity is read here, its rows only checked;
	// they are read once, by the intake (decoding them twice cost the
	// center a tenth of its CPU, and encoding/json's check of them
	// another tenth).
	b, err := wire.DecodeBatchHead(body)
	if err != nil {
		return ErrBatchInvalid
	}
	var owner int64
	if err := s.DB.QueryRow(r.Context(), "SELECT node_id FROM exchange_jobs WHERE id = ?", b.JobID).Scan(&owner); err != nil || owner != n.id {
		return ErrBatchInvalid
	}
	if b.ID != BatchID(n.id, b.JobID, b.Run, b.Seq) {
		return ErrBatchInvalid
	}
	ack, err := s.publish(r.Context(), subjectIn(n.id, b.JobID), b.ID, body)
	if err != nil {
		return apperr.New(http.StatusServiceUnavailable, "node.bus_unavailable", "交换总线暂不可用，请稍后重发", "the bus is unavailable; send again later")
	}
	return writeJSON(w, map[string]any{"stored": true, "duplicate": ack.Duplicate})
}

// BatchID is the id of a job's batch: the same batch always gets the same
// id, so sending it again is recognised.
func BatchID(nodeID, jobID, run, seq int64) string {
	return "n" + itoa(nodeID) + "-j" + itoa(jobID) + "-r" + itoa(run) + "-" + itoa(seq)
}

// deliveries is wire.Deliveries as the endpoint writes it: the rows and
// deletes of each stored delivery go out as they were stored, never
// decoded and encoded again here (that cost the center a fifth of its
// CPU in a bulk exchange).
type deliveries struct {
	Items  []storedDelivery `json:"items"`
	Active bool             `json:"active"`
}

// storedDelivery is a wire.Delivery whose rows and deletes stay JSON: the
// outer fields hide the embedded ones of the same name.
type storedDelivery struct {
	wire.Delivery
	Rows    json.RawMessage `json:"rows,omitempty"`
	Deletes json.RawMessage `json:"deletes,omitempty"`
}

func (s *Service) serveDeliveries(w http.ResponseWriter, r *http.Request, n nodeCtx) error {
	ctx := r.Context()
	subID := queryInt(r, "subscription", 0)
	after := uint64(max(queryInt(r, "after", 0), 0))
	maxN := int(min(max(queryInt(r, "max", 10), 1), 100))
	x, err := s.sub(ctx, subID)
	if err != nil || x.NodeID != n.id {
		return apperr.ErrNotFound
	}
	out := deliveries{Items: []storedDelivery{}, Active: x.State == "active"}
	if !out.Active {
		return writeJSON(w, out)
	}
	if !s.permitted(ctx, x) {
		out.Active = false
		return writeJSON(w, out)
	}
	st, err := s.Bus.JetStream().Stream(ctx, streamOut)
	if err != nil {
		return err
	}
	// A node that asks for them gets the deliveries as stored; the
	// others JSON, which costs the center a decoding and an encoding of
	// every row.
	stored := r.Header.Get("Accept") == wire.ContentTypeDeliveries
	var frames []byte
	deadline := time.Now().Add(clampWait(r))
	wake, stop := s.watch(subjectStored(subID))
	defer stop()
	for {
		size, count := 0, 0
		seq := after + 1
		for count < maxN && size < 8*wire.MaxMessage {
			m, err := st.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(subjectOut(subID)))
			if errors.Is(err, jetstream.ErrMsgNotFound) {
				break
			} else if err != nil {
				return err
			}
			seq = m.Sequence + 1
			epoch, err := strconv.ParseInt(m.Header.Get(wire.HeaderEpoch), 10, 64)
			if stored && err == nil {
				if epoch == x.Epoch {
					frames = wire.AppendDelivery(frames, m.Sequence, m.Data)
					count, size = count+1, size+len(m.Data)
				}
				continue
			}
			// Stored before deliveries carried their epoch on the bus, or
			// for a node that wants JSON.
			var d storedDelivery
			if err := wire.Decode(m.Data, &d); err != nil {
				return err
			}
			if d.Epoch != x.Epoch {
				continue
			}
			d.Seq = m.Sequence
			if stored {
				// Rows and Deletes are JSON already: Marshal compacts them
				// as they are.
				enc, err := wire.Encode(d)
				if err != nil {
					return err
				}
				frames = wire.AppendDelivery(frames, m.Sequence, enc)
			} else {
				out.Items = append(out.Items, d)
			}
			count, size = count+1, size+len(m.Data)
		}
		left := time.Until(deadline)
		if count > 0 || left <= 0 || ctx.Err() != nil {
			break
		}
		waitOn(ctx, wake, min(left, 5*time.Second))
	}
	// The node may have been revoked while it waited: what came meanwhile
	// is not for it.
	if _, _, err := s.node(ctx, n.id); err != nil {
		return pki.ErrNodeRefused
	}
	if stored {
		w.Header().Set("Content-Type", wire.ContentTypeDeliveries)
		w.Header().Set(wire.HeaderActive, "true")
		_, err := w.Write(frames)
		return err
	}
	return writeJSON(w, out)
}

func (s *Service) serveAcks(w http.ResponseWriter, r *http.Request, n nodeCtx) error {
	var acks []wire.Ack
	if err := json.NewDecoder(io.LimitReader(r.Body, 4<<20)).Decode(&acks); err != nil {
		return apperr.Invalid("node.ack_invalid", "body", "确认报文格式错误", "the acknowledgement is not valid JSON")
	}
	for _, a := range acks {
		x, err := s.sub(r.Context(), a.Subscription)
		if err != nil || x.NodeID != n.id {
			return apperr.ErrNotFound
		}
		if err := s.acknowledge(r.Context(), x, a); err != nil {
			return err
		}
	}
	return writeJSON(w, map[string]any{"acknowledged": len(acks)})
}
