package agent

import (
	"context"
	"sync"
)

// runner is the life of a job's or a subscription's goroutine: started
// with its spec, handed newer ones, stopped and waited for; it keeps the
// state the node reports of it. mu also guards what the embedding runner
// keeps beside.
type runner[S any] struct {
	cancel context.CancelFunc
	done   chan struct{}
	specCh chan S

	mu    sync.Mutex
	spec  S
	state string
	err   string
}

// init readies the runner for spec in its first state.
func (r *runner[S]) init(spec S, state string) {
	r.cancel, r.done, r.specCh, r.spec, r.state = func() {}, make(chan struct{}), make(chan S, 1), spec, state
}

// start runs loop until stop.
func (r *runner[S]) start(ctx context.Context, loop func(context.Context)) {
	ctx, r.cancel = context.WithCancel(ctx)
	go func() {
		defer close(r.done)
		loop(ctx)
	}()
}

// update hands the loop a newer spec; one not taken yet is replaced.
func (r *runner[S]) update(spec S) {
	select {
	case <-r.specCh:
	default:
	}
	r.specCh <- spec
}

func (r *runner[S]) stop() { r.cancel() }
func (r *runner[S]) wait() { <-r.done }

func (r *runner[S]) set(state, err string) {
	r.mu.Lock()
	r.state, r.err = state, err
	r.mu.Unlock()
}
