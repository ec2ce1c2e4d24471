// Package breaker is the circuit breaker the pool keeps per agent: it
// counts the agent's transport failures, opens after too many within a
// window, fails requests fast for a cool-down, then lets one probe request
// through (half-open) whose outcome closes or reopens it.
//
// Time is the caller's: every method takes now, in nanoseconds from any
// origin, so that one clock reading serves a whole event.
package breaker

import (
	"sync"
	"sync/atomic"
	"time"
)

// State is the state of a breaker.
type State int32

const (
	// Closed: requests flow.
	Closed State = iota
	// Open: new requests fail fast.
	Open
	// HalfOpen: one probe request is in flight; its outcome closes or
	// reopens the breaker.
	HalfOpen
)

func (s State) String() string {
	switch s {
	case Closed:
		return "closed"
	case Open:
		return "open"
	case HalfOpen:
		return "half_open"
	}
	return "unknown"
}

// Config configures a breaker.
type Config struct {
	// Failures within Window open the breaker; <= 0 disables it.
	Failures int
	Window   time.Duration
	// Cooldown is how long it stays open before a probe is let through.
	Cooldown time.Duration
}

// Outcome is how a request ended, for the breaker.
type Outcome int

const (
	// Neutral says nothing about the agent (the caller cancelled, its
	// deadline passed, the request was refused before it was sent).
	Neutral Outcome = iota
	// Success: the agent answered (a decision or its own error).
	Success
	// Failure: the transport failed (connection lost, no answer, protocol
	// violation).
	Failure
)

// Breaker is one agent's circuit breaker; a nil *Breaker is disabled and
// allows everything. It is safe for concurrent use: the closed path of
// Allow is one atomic load, everything else takes a lock.
type Breaker struct {
	cfg   Config
	state atomic.Int32

	mu sync.Mutex // mu guards the following
	// fails is a ring of the last cfg.Failures failure times.
	fails     []int64
	head, n   int
	openUntil int64
	probing   bool
	opened    uint64
}

// New returns a breaker, or nil (disabled) when cfg.Failures <= 0.
func New(cfg Config) *Breaker {
	if cfg.Failures <= 0 {
		return nil
	}
	return &Breaker{cfg: cfg, fails: make([]int64, cfg.Failures)}
}

// Allow reports whether a new request may go, and whether it is the
// half-open probe, whose outcome [Breaker.Done] must hear with probe set.
func (b *Breaker) Allow(now int64) (ok, probe bool) {
	if b == nil || State(b.state.Load()) == Closed {
		return true, false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	switch State(b.state.Load()) {
	case Closed:
		return true, false
	case Open:
		if now >= b.openUntil && !b.probing {
			b.state.Store(int32(HalfOpen))
			b.probing = true
			return true, true
		}
	}
	return false, false
}

// Done records a request's outcome; probe says whether it was the probe.
// Only failures and the probe's outcome change anything.
func (b *Breaker) Done(now int64, probe bool, o Outcome) {
	if b == nil || !probe && (o != Failure || State(b.state.Load()) != Closed) {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if probe {
		b.probing = false
		switch o {
		case Success:
			b.state.Store(int32(Closed))
			b.n, b.head = 0, 0
		case Failure:
			b.openLocked(now)
		default:
			// Nothing learnt: let the next request probe.
			b.state.Store(int32(Open))
			b.openUntil = now
		}
		return
	}
	if State(b.state.Load()) != Closed {
		return
	}
	b.fails[b.head] = now
	b.head = (b.head + 1) % len(b.fails)
	b.n = min(b.n+1, len(b.fails))
	// Once the ring is full, the oldest of the last Failures is at head.
	if b.n == len(b.fails) && now-b.fails[b.head] <= int64(b.cfg.Window) {
		b.openLocked(now)
	}
}

func (b *Breaker) openLocked(now int64) {
	b.state.Store(int32(Open))
	b.openUntil = now + int64(b.cfg.Cooldown)
	b.n, b.head = 0, 0
	b.opened++
}

// Refuses reports whether Allow would refuse a request now, without
// taking the probe: open and cooling down, or its probe out. It reads the
// clock, now, only when the breaker is not closed.
func (b *Breaker) Refuses(now func() int64) bool {
	if b == nil || State(b.state.Load()) == Closed {
		return false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return State(b.state.Load()) != Closed && (b.probing || now() < b.openUntil)
}

// Closed reports, without a lock, whether the breaker is closed: Allow
// then lets every request through whatever the time.
func (b *Breaker) Closed() bool { return b == nil || State(b.state.Load()) == Closed }

// State returns the breaker's state and how many times it opened.
func (b *Breaker) State() (State, uint64) {
	if b == nil {
		return Closed, 0
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return State(b.state.Load()), b.opened
}
