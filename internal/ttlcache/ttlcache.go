// Package ttlcache keeps values read from the store for a short time, for
// the paths that would otherwise read them on every request: apps and
// their secrets, grants, mounted resources.
//
// One caller loads a key that is missing or older than the cache's ttl;
// the others asking for it meanwhile wait for that load rather than read
// the store too, so a busy server reads each key about once a ttl however
// many requests want it. Drop forgets everything at once (a grant or an
// app revoked on this server takes effect for the next request), and a
// load that began before a Drop does not put its value back.
package ttlcache

import (
	"context"
	"errors"
	"sync"
	"time"
)

// Cache maps keys to values loaded at most ttl ago.
type Cache[K comparable, V any] struct {
	ttl     time.Duration
	max     int
	mu      sync.Mutex
	gen     uint64 // counts Drops
	entries map[K]entry[V]
	loading map[K]*load[V]
}

type entry[V any] struct {
	v      V
	loaded time.Time // when its load began
}

// load is a load in progress; done is closed once v and err are set.
type load[V any] struct {
	done chan struct{}
	v    V
	err  error
}

// New returns a cache keeping values for ttl, and at most max of them
// (beyond that it starts afresh: the keys are few in practice).
func New[K comparable, V any](ttl time.Duration, max int) *Cache[K, V] {
	return &Cache[K, V]{ttl: ttl, max: max, entries: map[K]entry[V]{}, loading: map[K]*load[V]{}}
}

// Get returns k's value, calling fetch when the cache has none younger
// than ttl and no other caller is already fetching it. An error is
// returned to the callers waiting for that fetch and not kept. A waiter
// whose context ends stops waiting with the context's error.
func (c *Cache[K, V]) Get(ctx context.Context, k K, fetch func(context.Context) (V, error)) (V, error) {
	for {
		start := time.Now()
		c.mu.Lock()
		if e, ok := c.entries[k]; ok && start.Sub(e.loaded) < c.ttl {
			c.mu.Unlock()
			return e.v, nil
		}
		if l, ok := c.loading[k]; ok {
			c.mu.Unlock()
			select {
			case <-l.done:
			case <-ctx.Done():
				var zero V
				return zero, ctx.Err()
			}
			// The fetcher's request may have ended (its context
			// cancelled); this one has not, so it tries again.
			if ctx.Err() == nil && (errors.Is(l.err, context.Canceled) || errors.Is(l.err, context.DeadlineExceeded)) {
				continue
			}
			return l.v, l.err
		}
		l := &load[V]{done: make(chan struct{})}
		c.loading[k] = l
		gen := c.gen
		c.mu.Unlock()
		c.fetch(ctx, k, l, gen, start, fetch)
		return l.v, l.err
	}
}

func (c *Cache[K, V]) fetch(ctx context.Context, k K, l *load[V], gen uint64, start time.Time, fetch func(context.Context) (V, error)) {
	defer func() {
		c.mu.Lock()
		if c.loading[k] == l {
			delete(c.loading, k)
		}
		if l.err == nil && gen == c.gen {
			if len(c.entries) >= c.max {
				clear(c.entries)
			}
			c.entries[k] = entry[V]{v: l.v, loaded: start}
		}
		c.mu.Unlock()
		close(l.done)
	}()
	l.err = errPanicked // kept if fetch panics, for the waiters
	l.v, l.err = fetch(ctx)
}

// Drop forgets every value, and the values of loads in progress.
func (c *Cache[K, V]) Drop() {
	c.mu.Lock()
	c.gen++
	clear(c.entries)
	clear(c.loading)
	c.mu.Unlock()
}

type panicked struct{}

func (panicked) Error() string { return "ttlcache: the load panicked" }

var errPanicked error = panicked{}
