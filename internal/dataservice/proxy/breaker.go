package proxy

import (
	"sync"
	"time"
)

// outcome is what a forwarded call says about its provider's health.
type outcome int

const (
	neutral outcome = iota // says nothing: the consumer went away
	healthy                // the provider answered
	broken                 // unreachable, timed out, or answered 5xx
)

// breaker is a service's circuit breaker on this server: after threshold
// broken calls in a row it opens and refuses calls for openFor; then it
// lets one probe through (half-open), which closes it again or reopens it.
// Each server keeps its own: a provider that fails for one fails for all
// soon enough.
type breaker struct {
	mu        sync.Mutex
	threshold int
	openFor   time.Duration
	failures  int
	openUntil time.Time // zero while closed
	probing   bool
}

// Circuit states.
const (
	CircuitClosed   = "closed"
	CircuitOpen     = "open"
	CircuitHalfOpen = "half_open"
)

// allow says whether a call may go to the provider now, and if not, how
// long until it may be tried again.
func (b *breaker) allow(now time.Time) (bool, time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case b.openUntil.IsZero():
		return true, 0
	case now.Before(b.openUntil):
		return false, b.openUntil.Sub(now)
	case b.probing:
		return false, time.Second // one probe at a time
	}
	b.probing = true
	return true, 0
}

// done takes the outcome of a call allow let through, and reports
// whether it opened the circuit.
func (b *breaker) done(o outcome, now time.Time) (opened bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch o {
	case healthy:
		b.failures, b.openUntil = 0, time.Time{}
	case broken:
		b.failures++
		if b.probing || b.failures >= b.threshold {
			b.openUntil, b.failures, opened = now.Add(b.openFor), 0, true
		}
	}
	b.probing = false
	return opened
}

func (b *breaker) state(now time.Time) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case b.openUntil.IsZero():
		return CircuitClosed
	case now.Before(b.openUntil):
		return CircuitOpen
	}
	return CircuitHalfOpen
}

// breaker is the service's circuit breaker, made on first use.
func (p *Proxy) breaker(id int64) *breaker {
	p.mu.Lock()
	defer p.mu.Unlock()
	b := p.breakers[id]
	if b == nil {
		b = &breaker{threshold: p.cfg.FailureThreshold, openFor: p.cfg.OpenFor}
		p.breakers[id] = b
	}
	return b
}

// circuit is the state of a service's circuit on this server.
func (p *Proxy) circuit(id int64) string {
	p.mu.Lock()
	b := p.breakers[id]
	p.mu.Unlock()
	if b == nil {
		return CircuitClosed
	}
	return b.state(time.Now())
}
