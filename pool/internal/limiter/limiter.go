// Package limiter is the pool's one count of a connection's events: a
// FIFO concurrency limit that also retires the connection once its events
// are over.
package limiter

import (
	"context"
	"errors"
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// Limiter bounds the events in flight on one connection and retires the
// connection once they are over. Taking and returning a slot is one atomic operation while
// nobody waits; once someone waits, freed slots are handed to the waiters
// in arrival order, and newcomers queue behind them. Retirement is in the
// same word, so that a slot and retiring agree on who saw what: a retired
// connection is never closed under an event that got a slot. It is safe
// for concurrent use.
//
// BenchmarkLimiters, take+read+return, median of 5 (3) on a loaded 2-core
// VM: below the limit, as every event runs, this 53 ns, x/sync/semaphore
// with an atomic in-flight count 107, a channel 217; saturated (16
// goroutines per core on 4 slots) this 1785, semaphore 310, channel 165:
// it wins where every event pays and loses only where events queue.
type Limiter struct {
	// word is the slots taken, plus waiterUnit times the waiters queued,
	// plus the retired and closing bits. The waiter count changes only
	// under mu.
	word atomic.Int64
	max  int64
	// idle is closed once the connection is retired with nothing in
	// flight or waiting (closing set).
	idle chan struct{}

	mu sync.Mutex // mu guards the following
	// queue[head:] are the waiters, oldest first.
	queue []*waiter
	head  int
}

const (
	// waiterUnit is one queued waiter in limiter.word; the slots taken are
	// below it.
	waiterUnit = 1 << 32
	// slotsRetired: out of service; only events of requests already
	// pinned to the connection may still take a slot.
	slotsRetired int64 = 1 << 62
	// slotsClosing: retired with nothing in flight; it is being closed and
	// takes no event at all.
	slotsClosing int64 = 1 << 61
	slotsBusy          = slotsClosing - 1 // slots and waiters
	slotsTaken         = waiterUnit - 1
)

// waiter is one event queued for a slot. ch receives the slot; t bounds
// the wait. Waiters are pooled: both are idle when one goes back.
type waiter struct {
	ch chan struct{}
	t  *time.Timer
}

var waiterPool = sync.Pool{New: func() any {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return &waiter{ch: make(chan struct{}, 1), t: t}
}}

// Why Acquire gave up, besides its context ending: the caller turns
// them into its own errors.
var (
	// ErrWait: no slot came within the wait.
	ErrWait = errors.New("pool: no concurrency slot within the queue wait")
	// ErrGone: the connection ended while waiting (its own error).
	ErrGone = errors.New("pool: connection ended while waiting for a slot")
	// ErrRetired: the connection is retired and the event not pinned to
	// it (an event of a request the connection already holds), or it is
	// closing: route the event elsewhere.
	ErrRetired = errors.New("pool: connection retired")
)

// New returns a limiter of n slots.
func New(n int) *Limiter {
	l := &Limiter{}
	l.Init(n)
	return l
}

// Init makes l, a zero Limiter, one of n slots; nothing may use l before.
func (l *Limiter) Init(n int) {
	l.max = int64(min(n, math.MaxInt32))
	l.idle = make(chan struct{})
}

// InFlight is the number of events holding or waiting for a slot.
func (l *Limiter) InFlight() int64 {
	v := l.word.Load() & slotsBusy
	return v&slotsTaken + v/waiterUnit
}

// Retired reports whether [Limiter.Retire] was called.
func (l *Limiter) Retired() bool { return l.word.Load()&slotsRetired != 0 }

// TryAcquire takes a free slot if there is one. There is none while
// anybody waits: release hands freed slots to the waiters, so the slots
// stay all taken until the queue is empty. It fails with ErrRetired when
// the connection takes no such event. One atomic add, undone on failure:
// unlike a compare-and-swap it never retries when both cores race.
func (l *Limiter) TryAcquire(pinned bool) (bool, error) {
	v := l.word.Add(1)
	if v&slotsClosing == 0 && (pinned || v&slotsRetired == 0) && v&slotsBusy <= l.max {
		return true, nil
	}
	v2 := l.word.Add(-1)
	if v2&slotsBusy >= waiterUnit && v2&slotsTaken < l.max {
		// The increment undone may have kept a Release from handing its
		// slot to a waiter: hand it now.
		l.mu.Lock()
		l.handoffLocked()
		l.mu.Unlock()
	}
	l.ended(v2)
	if v&slotsClosing != 0 || (!pinned && v&slotsRetired != 0) {
		return false, ErrRetired
	}
	return false, nil
}

// Acquire takes a slot, waiting up to wait behind the events that queued
// first. It fails with ErrWait after wait, and with the reason when ctx
// or gone ends first; a slot handed over meanwhile is passed on.
func (l *Limiter) Acquire(ctx context.Context, pinned bool, gone <-chan struct{}, wait time.Duration) (waited bool, err error) {
	if ok, err := l.TryAcquire(pinned); ok || err != nil {
		return false, err
	}
	if wait <= 0 {
		return false, ErrWait
	}
	l.mu.Lock()
	for {
		// A slot may have been freed since tryAcquire; with nobody queued
		// it is ours.
		v := l.word.Load()
		if v&slotsClosing != 0 || (!pinned && v&slotsRetired != 0) {
			l.mu.Unlock()
			return false, ErrRetired
		}
		if v&slotsBusy < l.max {
			if l.word.CompareAndSwap(v, v+1) {
				l.mu.Unlock()
				return false, nil
			}
			continue
		}
		if l.word.CompareAndSwap(v, v+waiterUnit) {
			break
		}
	}
	w := waiterPool.Get().(*waiter)
	l.queue = append(l.queue, w)
	l.mu.Unlock()

	w.t.Reset(wait)
	select {
	case <-w.ch:
		w.t.Stop()
		waiterPool.Put(w)
		return true, nil
	case <-ctx.Done():
		err = ctx.Err()
	case <-gone:
		err = ErrGone
	case <-w.t.C:
		err = ErrWait
	}
	w.t.Stop()
	l.mu.Lock()
	queued := l.unqueueLocked(w)
	if queued {
		l.ended(l.word.Add(-waiterUnit))
	}
	l.mu.Unlock()
	if !queued {
		// A release handed us a slot as we gave up: pass it on.
		<-w.ch
		l.Release()
	}
	waiterPool.Put(w)
	return true, err
}

// unqueueLocked removes w from the queue and reports whether it was there.
func (l *Limiter) unqueueLocked(w *waiter) bool {
	for i := l.head; i < len(l.queue); i++ {
		if l.queue[i] == w {
			copy(l.queue[i:], l.queue[i+1:])
			l.queue[len(l.queue)-1] = nil
			l.queue = l.queue[:len(l.queue)-1]
			l.compactLocked()
			return true
		}
	}
	return false
}

// compactLocked reuses the queue's storage once it is empty.
func (l *Limiter) compactLocked() {
	if l.head == len(l.queue) {
		l.queue, l.head = l.queue[:0], 0
	}
}

// Release returns a slot: to the oldest waiter if there is one.
func (l *Limiter) Release() {
	v := l.word.Add(-1)
	if v&slotsBusy < waiterUnit {
		l.ended(v)
		return
	}
	l.mu.Lock()
	l.handoffLocked()
	if l.head == len(l.queue) {
		l.ended(l.word.Load())
	}
	l.mu.Unlock()
}

// handoffLocked gives free slots to queued waiters, oldest first. It
// rechecks the count under mu: between a Release's decrement and its lock,
// another caller may have taken the freed slot (handing it on then would
// exceed the limit). A failing TryAcquire's passing increment can make it
// stop early; that TryAcquire calls it again once it has undone it.
func (l *Limiter) handoffLocked() {
	for l.head < len(l.queue) {
		v := l.word.Load()
		if v&slotsTaken >= l.max {
			return
		}
		if !l.word.CompareAndSwap(v, v+1-waiterUnit) {
			continue
		}
		w := l.queue[l.head]
		l.queue[l.head] = nil
		l.head++
		l.compactLocked()
		w.ch <- struct{}{}
	}
}

// Retire marks the connection out of service; idle is closed once it has
// nothing in flight.
func (l *Limiter) Retire() {
	if v := l.word.Or(slotsRetired); v&slotsRetired == 0 {
		l.ended(v | slotsRetired)
	}
}

// ended closes idle if v, the word after a change, is retired and idle;
// of all who see that value, the one whose CAS wins closes it.
func (l *Limiter) ended(v int64) {
	if v == slotsRetired && l.word.CompareAndSwap(v, v|slotsClosing) {
		close(l.idle)
	}
}

// Idle is closed once the limiter is retired with nothing in flight.
func (l *Limiter) Idle() <-chan struct{} { return l.idle }

// Limit is the number of slots.
func (l *Limiter) Limit() int { return int(l.max) }
