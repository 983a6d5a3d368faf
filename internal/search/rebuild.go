package search

import (
	"context"
	"fmt"
)

// RebuildBatch is how many documents Rebuild hands to the index at once:
// large enough to amortise a batch, small enough to keep memory flat.
const RebuildBatch = 1000

// builder is an index that can be finished after a rebuild.
type builder interface {
	compact(ctx context.Context) error
	markBuilt() error
}

// Rebuild fills idx with the documents next yields, RebuildBatch at a time,
// calling progress (if not nil) with the running count after each batch.
// next typically walks the catalog table with a cursor and calls yield per
// row; an error from yield (the index failed, or ctx ended) must stop it and
// be returned. Once every document is in, Rebuild compacts an embedded
// index and only then marks it complete, so a rebuild cut short leaves it
// Fresh and the next start tries again.
//
// Rebuild adds and replaces; it does not remove documents next no longer
// yields. Run it on the empty index OpenBleve reports Fresh.
func Rebuild(ctx context.Context, idx Index, next func(yield func(Document) error) error, progress func(n int)) (int, error) {
	n, err := fill(ctx, idx, next, progress)
	if err != nil {
		return n, err
	}
	if b, ok := idx.(builder); ok {
		if err := b.markBuilt(); err != nil {
			return n, err
		}
	}
	return n, nil
}

// fill is Rebuild without marking the index complete: the bench fills a
// scratch index with made-up entries that must never pass for a catalog.
func fill(ctx context.Context, idx Index, next func(yield func(Document) error) error, progress func(n int)) (int, error) {
	batch := make([]Document, 0, RebuildBatch)
	n := 0
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		if err := idx.Put(ctx, batch...); err != nil {
			return err
		}
		n += len(batch)
		clear(batch) // let the texts go before the next batch fills
		batch = batch[:0]
		if progress != nil {
			progress(n)
		}
		return nil
	}
	err := next(func(d Document) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		batch = append(batch, d)
		if len(batch) == RebuildBatch {
			return flush()
		}
		return nil
	})
	if err == nil {
		err = flush()
	}
	if err != nil {
		return n, fmt.Errorf("rebuild search index after %d documents: %w", n, err)
	}
	if b, ok := idx.(builder); ok {
		if err := b.compact(ctx); err != nil {
			return n, err
		}
	}
	return n, nil
}
