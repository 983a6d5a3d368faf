package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"govshare/internal/agent/source"
	"govshare/internal/exchange/wire"
)

// The full check (全量核对) as the node runs it: its own side — a job's
// source table, or a subscription's target table opened as a source — is
// read row by row as wire.CheckRows reads it and cut into chunk checksums;
// the center's side of the same chunks comes from PathChecksums. The key
// ranges whose chunks differ are then compared key by key
// (source.DiffKeys), the center's per-key hashes fetched for those ranges
// only, one range of at most a chunk of either side at a time. Nothing is
// held in memory beyond the chunk lists, one range's keys and the first
// keys that differ.

// checkRunner keeps the checks the node started, so that one listed again
// by commands fetched before its report is not run twice.
type checkRunner struct {
	mu      sync.Mutex
	started map[int64]bool                    // id → still running
	stop    map[int64]context.CancelCauseFunc // of the checks still running
	wg      sync.WaitGroup
}

// errCheckUnlisted stops a check the center no longer lists.
var errCheckUnlisted = errors.New("the center no longer lists the check (cancelled or over)")

// runChecks starts the checks of the commands not started yet, and stops
// those running that the commands no longer list. The center lists a
// check until it is over, and these commands are newer than those that
// started it: one no longer listed was cancelled, or the center has just
// heard its end.
func (a *Agent) runChecks(ctx context.Context, reqs []wire.CheckRequest) {
	c := &a.checks
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.started == nil {
		c.started, c.stop = map[int64]bool{}, map[int64]context.CancelCauseFunc{}
	}
	listed := map[int64]bool{}
	for _, req := range reqs {
		listed[req.ID] = true
		if _, ok := c.started[req.ID]; ok {
			continue
		}
		c.started[req.ID] = true
		checkCtx, stop := context.WithCancelCause(ctx)
		c.stop[req.ID] = stop
		c.wg.Go(func() {
			defer stop(nil)
			over := a.runCheck(checkCtx, req)
			c.mu.Lock()
			delete(c.stop, req.ID)
			if over {
				c.started[req.ID] = false
			} else {
				delete(c.started, req.ID) // the next commands start it again
			}
			c.mu.Unlock()
		})
	}
	for id, running := range c.started {
		switch {
		case listed[id]:
		case running:
			c.stop[id](errCheckUnlisted)
		default:
			delete(c.started, id)
		}
	}
}

// runCheck runs one check and reports its result. It returns false when
// the center did not hear the end of it, so that it runs again.
func (a *Agent) runCheck(ctx context.Context, req wire.CheckRequest) (over bool) {
	log := a.log.With("check", req.ID, "kind", req.Kind)
	var refused *refusedError
	if err := a.checkCall(ctx, wire.PathChecks, wire.CheckReport{ID: req.ID, State: wire.CheckRunning}, nil); err != nil {
		log.Warn("full check not started", "err", err)
		return errors.As(err, &refused) // refused: the center no longer wants it
	}
	started := time.Now()
	rep, err := a.fullCheck(ctx, req)
	if errors.Is(context.Cause(ctx), errCheckUnlisted) || checkOver(err) {
		// Cancelled at the center: nothing to report.
		log.Info("full check stopped: the center ended it", "why", stopReason(ctx, err))
		return true
	}
	if ctx.Err() != nil {
		return false // the node stops: the check stays pending and runs again at the next start
	}
	if err != nil {
		log.Error("full check failed", "err", err)
		rep = wire.CheckReport{ID: req.ID, State: wire.CheckFailed, Error: reason(err)}
	} else {
		log.Info("full check done", "rows", rep.Rows, "chunks", rep.Chunks, "differ", rep.Differ, "took", time.Since(started).Round(time.Millisecond))
	}
	if err := a.checkCall(ctx, wire.PathChecks, rep, nil); err != nil {
		if checkOver(err) || errors.Is(context.Cause(ctx), errCheckUnlisted) {
			// Cancelled meanwhile, or the center heard the result and
			// the answer was cut short: the check is over either way.
			log.Info("full check result not taken: the center ended the check", "why", stopReason(ctx, err))
			return true
		}
		log.Error("full check result not delivered", "err", err)
		return errors.As(err, &refused)
	}
	return true
}

// checkOver says whether the center refused a call about a check because
// the check is over: cancelled, or ended otherwise.
func checkOver(err error) bool {
	var refused *refusedError
	if !errors.As(err, &refused) {
		return false
	}
	var body struct {
		Code string `json:"code"`
	}
	return json.Unmarshal([]byte(refused.body), &body) == nil && body.Code == "exchange.check_over"
}

// stopReason says why a check stopped before its end.
func stopReason(ctx context.Context, err error) string {
	if checkOver(err) {
		return reason(err)
	}
	return context.Cause(ctx).Error()
}

// fullCheck compares the two sides of a check. The provider's side — the
// node's source for a job, the center's view for a subscription — is the
// one DiffKeys reads as the source.
func (a *Agent) fullCheck(ctx context.Context, req wire.CheckRequest) (wire.CheckReport, error) {
	rep := wire.CheckReport{ID: req.ID, State: wire.CheckDone}
	local, err := a.localSide(ctx, req)
	if err != nil {
		return rep, err
	}
	defer local.close()
	remote := &remoteSide{a: a, id: req.ID}
	mine, err := local.sums(ctx, req.ChunkSize)
	if err != nil {
		return rep, err
	}
	theirs, err := remote.sums(ctx)
	if err != nil {
		return rep, err
	}
	src, dst := mine, theirs
	var srcH, dstH source.Hasher = local, remote
	if req.Kind == wire.CheckSubscription {
		src, dst, srcH, dstH = theirs, mine, remote, local
	}
	rep.Chunks = max(len(src), len(dst))
	for _, c := range src {
		rep.Rows += int64(c.Count)
	}
	for _, r := range splitRanges(source.DiffChunks(src, dst), src, dst, local.order) {
		// One range at a time: each holds at most a chunk of either side,
		// so the differences held stay bounded whatever the tables hold.
		diffs, err := source.DiffKeys(ctx, local.order, srcH, source.Query{}, dstH, source.Query{}, []source.KeyRange{r})
		if err != nil {
			return rep, err
		}
		for _, d := range diffs {
			rep.Differ++
			kind := wire.DiffChanged
			switch d.Kind {
			case source.Added:
				kind = wire.DiffMissing
			case source.Deleted:
				kind = wire.DiffExtra
				rep.Rows++
			}
			if len(rep.Keys) < wire.MaxCheckKeys {
				rep.Keys = append(rep.Keys, wire.CheckKey{Key: d.Key.String(), Kind: kind})
			}
		}
	}
	return rep, nil
}

// splitRanges cuts each range at the chunk ends of either side inside it.
func splitRanges(ranges []source.KeyRange, a, b []source.ChunkSum, order source.KeyOrder) []source.KeyRange {
	var out []source.KeyRange
	for _, r := range ranges {
		inside := func(k source.Key) bool {
			return (r.After == nil || order.Compare(k, r.After) > 0) && (r.Through == nil || order.Compare(k, r.Through) < 0)
		}
		var cuts []source.Key
		for _, list := range [][]source.ChunkSum{a, b} {
			for _, c := range list {
				if inside(c.Last) {
					cuts = append(cuts, c.Last)
				}
			}
		}
		slices.SortFunc(cuts, order.Compare)
		cuts = slices.CompactFunc(cuts, func(x, y source.Key) bool { return order.Compare(x, y) == 0 })
		after := r.After
		for _, c := range cuts {
			out = append(out, source.KeyRange{After: after, Through: c})
			after = c
		}
		out = append(out, source.KeyRange{After: after, Through: r.Through})
	}
	return out
}

// localSide is the node's side of a check: a table of one of its
// databases read in key order, each row as the check reads it. As a
// source.Hasher it serves ranges in increasing order from one pass over
// the table.
type localSide struct {
	src   source.Source
	owned bool // opened for the check: closed after it
	q     source.Query
	cols  []wire.CheckColumn
	order source.KeyOrder

	next func() (checkedRow, bool)
	stop func()
	err  error
	peek *checkedRow
}

type checkedRow struct {
	key source.Key
	row source.Row
}

// localSide opens the node's side of a check and checks that its key
// sorts like the resource's.
func (a *Agent) localSide(ctx context.Context, req wire.CheckRequest) (*localSide, error) {
	l := &localSide{cols: req.Columns}
	var err error
	switch req.Kind {
	case wire.CheckJob:
		if l.src, err = a.source(req.Source); err != nil {
			return nil, err
		}
		l.q = source.Query{SQL: req.SQL}
		if req.Table != "" {
			l.q.Table = source.ParseTable(req.Table)
		}
	case wire.CheckSubscription:
		d, ok := a.cfg.target(req.Target)
		if !ok {
			return nil, fmt.Errorf("the node's configuration has no target named %q", req.Target)
		}
		if l.src, err = source.Open(d.Kind, d.DSN); err != nil {
			return nil, err
		}
		l.owned = true
		l.q = source.Query{Table: source.ParseTable(req.Table)}
	default:
		return nil, fmt.Errorf("unknown kind of check %q", req.Kind)
	}
	rows, err := wire.NewCheckRows(req.Columns)
	if err != nil {
		l.close()
		return nil, err
	}
	l.order = rows.Order()
	keys := make([]string, len(l.order))
	for _, c := range req.Columns {
		l.q.Columns = append(l.q.Columns, c.Column)
		if c.Key > 0 {
			keys[c.Key-1] = c.Column
		}
	}
	l.q.Key = keys
	described, err := l.src.Describe(ctx, l.q)
	if err != nil {
		l.close()
		return nil, err
	}
	if own := source.OrderOf(described); !own.SortsLike(l.order) {
		l.close()
		return nil, fmt.Errorf("%w: the key columns %s of %s sort as %s, the resource's key items as %s",
			wire.ErrCheckKey, strings.Join(keys, ", "), l.q, strings.Join(own, ""), strings.Join(l.order, ""))
	}
	return l, nil
}

func (l *localSide) close() {
	if l.stop != nil {
		l.stop()
	}
	if l.owned {
		_ = l.src.Close()
	}
}

// stream reads the whole table in key order.
func (l *localSide) stream(ctx context.Context, each func(checkedRow) error) error {
	rows, err := wire.NewCheckRows(l.cols)
	if err != nil {
		return err
	}
	var idx []int
	vals := make([]*string, len(l.cols))
	return l.src.Full(ctx, l.q, 2000, func(ch source.Chunk) error {
		if idx == nil {
			for _, c := range l.cols {
				i := slices.Index(ch.Columns, c.Column)
				if i < 0 {
					i = slices.IndexFunc(ch.Columns, func(n string) bool { return strings.EqualFold(n, c.Column) })
				}
				if i < 0 {
					return fmt.Errorf("%s returned no column %s", l.q, c.Column)
				}
				idx = append(idx, i)
			}
		}
		for _, r := range ch.Rows {
			for i, p := range idx {
				vals[i] = nil
				if !r[p].Null {
					t := r[p].Text
					vals[i] = &t
				}
			}
			row, k, err := rows.Row(vals)
			if err != nil {
				return fmt.Errorf("%s: %w", l.q, err)
			}
			if err := each(checkedRow{key: k, row: row}); err != nil {
				return err
			}
		}
		return nil
	})
}

// sums cuts the table into chunk checksums.
func (l *localSide) sums(ctx context.Context, chunkSize int) ([]source.ChunkSum, error) {
	sm := source.NewSummer(chunkSize)
	err := l.stream(ctx, func(r checkedRow) error {
		sm.Add(r.key, r.row)
		return nil
	})
	if err != nil {
		return nil, err
	}
	sm.Flush()
	return sm.Sums(), nil
}

var errCheckStopped = errors.New("check stopped")

// KeyHashes serves the keys of r from a pass over the table that goes on
// where the last call stopped: DiffKeys asks for ranges in key order.
func (l *localSide) KeyHashes(ctx context.Context, _ source.Query, r source.KeyRange, chunk int, fn func([]source.KeyHash) error) error {
	if l.next == nil {
		seq := func(yield func(checkedRow) bool) {
			err := l.stream(ctx, func(r checkedRow) error {
				if !yield(r) {
					return errCheckStopped
				}
				return nil
			})
			if !errors.Is(err, errCheckStopped) {
				l.err = err
			}
		}
		l.next, l.stop = iter.Pull(iter.Seq[checkedRow](seq))
	}
	var out []source.KeyHash
	for {
		if l.peek == nil {
			row, ok := l.next()
			if !ok {
				break
			}
			l.peek = &row
		}
		k := l.peek.key
		if r.Through != nil && l.order.Compare(k, r.Through) > 0 {
			break
		}
		if r.After == nil || l.order.Compare(k, r.After) > 0 {
			out = append(out, source.KeyHash{Key: k, Hash: source.RowHash(l.peek.row)})
		}
		l.peek = nil
		if len(out) >= max(chunk, 1) {
			if err := fn(out); err != nil {
				return err
			}
			out = nil
		}
	}
	if len(out) > 0 {
		if err := fn(out); err != nil {
			return err
		}
	}
	return l.err
}

// remoteSide is the center's side of a check, fetched a page at a time.
type remoteSide struct {
	a  *Agent
	id int64
}

func (r *remoteSide) sums(ctx context.Context) ([]source.ChunkSum, error) {
	var out []source.ChunkSum
	var after source.Key
	for {
		var page wire.Checksums
		if err := r.a.checkCall(ctx, wire.PathChecksums, wire.ChecksumQuery{Check: r.id, After: after, Max: 1000}, &page); err != nil {
			return nil, fmt.Errorf("the center's checksums: %w", err)
		}
		out = append(out, page.Chunks...)
		if !page.More {
			return out, nil
		}
		if len(page.Chunks) == 0 {
			return nil, errors.New("the center's checksums: an empty page with more to come")
		}
		after = page.Chunks[len(page.Chunks)-1].Last
	}
}

func (r *remoteSide) KeyHashes(ctx context.Context, _ source.Query, kr source.KeyRange, chunk int, fn func([]source.KeyHash) error) error {
	after := kr.After
	for {
		var page wire.Checksums
		q := wire.ChecksumQuery{Check: r.id, Keys: true, After: after, Through: kr.Through, Max: max(chunk, 5000)}
		if err := r.a.checkCall(ctx, wire.PathChecksums, q, &page); err != nil {
			return fmt.Errorf("the center's key hashes: %w", err)
		}
		if len(page.Hashes) > 0 {
			if err := fn(page.Hashes); err != nil {
				return err
			}
		}
		if !page.More {
			return nil
		}
		if len(page.Hashes) == 0 {
			return errors.New("the center's key hashes: an empty page with more to come")
		}
		after = page.Hashes[len(page.Hashes)-1].Key
	}
}

// checkCall posts to the center, trying again for a minute while the link
// is down; a refusal ends it.
func (a *Agent) checkCall(ctx context.Context, path string, body, out any) error {
	b, err := json.Marshal(body)
	if err != nil {
		return err
	}
	backoff := 500 * time.Millisecond
	deadline := time.Now().Add(time.Minute)
	for {
		err := a.call(ctx, http.MethodPost, path, nil, b, "application/json", out)
		var link *linkError
		if err == nil || !errors.As(err, &link) || time.Now().After(deadline) || ctx.Err() != nil {
			return err
		}
		sleep(ctx, backoff)
		backoff = min(backoff*2, 10*time.Second)
	}
}

// reason says why a check failed: the center's own words when it refused.
func reason(err error) string {
	var refused *refusedError
	if errors.As(err, &refused) {
		var body struct {
			ZH string `json:"message_zh"`
			EN string `json:"message_en"`
		}
		if json.Unmarshal([]byte(refused.body), &body) == nil && body.EN != "" {
			return body.ZH + " / " + body.EN
		}
	}
	return err.Error()
}
