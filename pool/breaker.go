package pool

import (
	"sync"
	"sync/atomic"
	"time"
)

// BreakerState is the state of an agent's circuit breaker.
type BreakerState int32

const (
	// BreakerClosed: requests flow.
	BreakerClosed BreakerState = iota
	// BreakerOpen: new requests fail fast with [ErrCircuitOpen].
	BreakerOpen
	// BreakerHalfOpen: one probe request is in flight; its outcome closes
	// or reopens the breaker.
	BreakerHalfOpen
)

func (s BreakerState) String() string {
	switch s {
	case BreakerClosed:
		return "closed"
	case BreakerOpen:
		return "open"
	case BreakerHalfOpen:
		return "half_open"
	}
	return "unknown"
}

// BreakerConfig configures a circuit breaker; Failures <= 0 disables it.
type BreakerConfig struct {
	// Failures within Window open the breaker.
	Failures int
	Window   time.Duration
	// Cooldown is how long it stays open before a probe is let through.
	Cooldown time.Duration
}

// outcome classifies an event's end for health accounting.
type outcome int

const (
	// outcomeNeutral: says nothing about the agent (the caller cancelled,
	// its deadline passed, the pool refused the event before sending).
	outcomeNeutral outcome = iota
	// outcomeSuccess: the agent answered (a decision or its own error).
	outcomeSuccess
	// outcomeFailure: the transport failed (connection lost, no answer
	// within the call timeout, protocol violation).
	outcomeFailure
)

// breaker counts transport failures of one agent. The closed, successful
// path is one atomic load; everything else takes mu.
type breaker struct {
	cfg   BreakerConfig
	state atomic.Int32

	mu sync.Mutex // mu guards the following
	// fails is a ring of the last cfg.Failures failure times (unix ns).
	fails     []int64
	head, n   int
	openUntil int64
	probing   bool
	opened    uint64
}

func newBreaker(cfg BreakerConfig) *breaker {
	b := &breaker{cfg: cfg}
	if cfg.Failures > 0 {
		b.fails = make([]int64, cfg.Failures)
	}
	return b
}

// allow reports whether a new request may go, and whether it is the
// half-open probe whose outcome must be reported with probe=true.
func (b *breaker) allow(now int64) (ok, probe bool) {
	if b.fails == nil || BreakerState(b.state.Load()) == BreakerClosed {
		return true, false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	switch BreakerState(b.state.Load()) {
	case BreakerClosed:
		return true, false
	case BreakerOpen:
		if now >= b.openUntil && !b.probing {
			b.state.Store(int32(BreakerHalfOpen))
			b.probing = true
			return true, true
		}
	}
	return false, false
}

// done records an event's outcome; probe says whether it was the probe.
func (b *breaker) done(now int64, probe bool, o outcome) {
	if b.fails == nil {
		return
	}
	if !probe && (o != outcomeFailure || BreakerState(b.state.Load()) != BreakerClosed) {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if probe {
		b.probing = false
		switch o {
		case outcomeSuccess:
			b.state.Store(int32(BreakerClosed))
			b.n, b.head = 0, 0
		case outcomeFailure:
			b.openLocked(now)
		default:
			// Nothing learnt: let the next request probe.
			b.state.Store(int32(BreakerOpen))
			b.openUntil = now
		}
		return
	}
	if BreakerState(b.state.Load()) != BreakerClosed {
		return
	}
	b.fails[b.head] = now
	b.head = (b.head + 1) % len(b.fails)
	if b.n < len(b.fails) {
		b.n++
	}
	// The oldest of the last Failures failures is at head once the ring is full.
	if b.n == len(b.fails) && now-b.fails[b.head] <= int64(b.cfg.Window) {
		b.openLocked(now)
	}
}

func (b *breaker) openLocked(now int64) {
	b.state.Store(int32(BreakerOpen))
	b.openUntil = now + int64(b.cfg.Cooldown)
	b.n, b.head = 0, 0
	b.opened++
}

func (b *breaker) snapshot() (BreakerState, uint64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return BreakerState(b.state.Load()), b.opened
}
