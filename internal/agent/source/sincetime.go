package source

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// Incremental windows by update time.
//
// SinceTime reads the rows whose update-time column lies in (from, upper]
// and returns upper, which the job stores and passes as the next from, so
// consecutive windows touch end to end: no instant belongs to two windows
// and none falls between them. upper is the source database's own clock
// (Now) minus the lag, cut to the precision the database compares at, so
// a skewed node clock cannot move it. The lag covers transactions that
// stamped a row before upper but commit after the window was read: such a
// row is invisible when the window is read and its time is already behind
// the next window. Choose the lag longer than the longest transaction
// that writes the table (a few minutes is usual). A row with a NULL update
// time is never read; the full check finds it.
//
// Windows overlap anyway whenever a job re-reads one: a run that failed
// after delivering some chunks, or an operator who moves from back to
// re-send a period. The same row then arrives twice, and a row updated
// twice arrives once per window with its newer values. The consumer
// applies rows as upserts by key, in window order and, inside a window, in
// update-time order (rows are sorted by the time column, then by key):
// re-applying a row leaves the target as it was, and the last version
// read wins. Deletes are not rows any window can see: they are found by
// comparing keys (Keys) or by the full check (FullCheck).
func (s *source) SinceTime(ctx context.Context, q Query, timeColumn string, from time.Time, lag time.Duration, chunk int, fn ChunkFunc) (time.Time, error) {
	p, err := s.plan(ctx, q, nil, false, timeColumn)
	if err != nil {
		return from, err
	}
	tc := -1
	for i, c := range p.cols {
		if c.Name == timeColumn || tc < 0 && strings.EqualFold(c.Name, timeColumn) {
			tc = i
		}
	}
	if k := p.cols[tc].kind; k != kDateTime && k != kDateTimeTZ {
		return from, fmt.Errorf("%w: update-time column %s is %s, not a date-time", ErrBadQuery, timeColumn, p.cols[tc].DatabaseType)
	}
	if lag < 0 {
		return from, fmt.Errorf("%w: negative lag %s", ErrBadQuery, lag)
	}
	now, err := s.e.now(ctx)
	if err != nil {
		return from, err
	}
	upper := now.Add(-lag).Truncate(s.e.precision()).UTC()
	if !upper.After(from) {
		return from, nil // nothing can be safely read yet
	}
	c := newChunker(p.names, chunk, fn)
	if err := s.e.window(ctx, p, tc, from, upper, c.add); err != nil {
		return from, err
	}
	if err := c.flush(); err != nil {
		return from, err
	}
	return upper, nil
}
