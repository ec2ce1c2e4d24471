package pool

import (
	"context"
	"errors"
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// limiter bounds the events in flight on one connection
// ([WithConcurrencyLimit]). Taking and returning a slot is one atomic
// operation while nobody waits; once someone waits, freed slots are handed
// to the waiters in arrival order, and newcomers queue behind them. It is
// safe for concurrent use.
type limiter struct {
	max int64
	// word is the number of slots taken plus waiterUnit times the number
	// of waiters queued. The waiter count changes only under mu.
	word atomic.Int64

	mu sync.Mutex // mu guards the following
	// queue[head:] are the waiters, oldest first.
	queue []*waiter
	head  int
}

// waiterUnit is one queued waiter in limiter.word; the slots taken are
// below it.
const waiterUnit = 1 << 32

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

// Why limiter.acquire gave up, besides its context ending: the caller turns
// them into its own errors.
var (
	// errLimitWait: no slot came within the wait (ErrConcurrencyLimit).
	errLimitWait = errors.New("pool: no concurrency slot within the queue wait")
	// errConnGone: the connection ended while waiting (its own error).
	errConnGone = errors.New("pool: connection ended while waiting for a slot")
)

func newLimiter(n int) *limiter {
	l := new(limiter)
	l.init(n)
	return l
}

// init sets the number of slots of a new limiter.
func (l *limiter) init(n int) { l.max = int64(min(n, math.MaxInt32)) }

// tryAcquire takes a free slot if there is one. There is none while
// anybody waits: release hands freed slots to the waiters, so the slots
// stay all taken until the queue is empty (and word >= max).
func (l *limiter) tryAcquire() bool {
	for {
		v := l.word.Load()
		if v >= l.max {
			return false
		}
		if l.word.CompareAndSwap(v, v+1) {
			return true
		}
	}
}

// acquire takes a slot, waiting up to wait behind the events that queued
// first. It fails with errLimitWait after wait, and with the reason when ctx
// or gone ends first; a slot handed over meanwhile is passed on.
func (l *limiter) acquire(ctx context.Context, gone <-chan struct{}, wait time.Duration) (waited bool, err error) {
	if l.tryAcquire() {
		return false, nil
	}
	if wait <= 0 {
		return false, errLimitWait
	}
	l.mu.Lock()
	for {
		// A slot may have been freed since tryAcquire; with nobody queued
		// it is ours.
		v := l.word.Load()
		if v < l.max {
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
		err = errConnGone
	case <-w.t.C:
		err = errLimitWait
	}
	w.t.Stop()
	l.mu.Lock()
	queued := l.unqueueLocked(w)
	if queued {
		l.word.Add(-waiterUnit)
	}
	l.mu.Unlock()
	if !queued {
		// A release handed us a slot as we gave up: pass it on.
		<-w.ch
		l.release()
	}
	waiterPool.Put(w)
	return true, err
}

// unqueueLocked removes w from the queue and reports whether it was there.
func (l *limiter) unqueueLocked(w *waiter) bool {
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
func (l *limiter) compactLocked() {
	if l.head == len(l.queue) {
		l.queue, l.head = l.queue[:0], 0
	}
}

// release returns a slot: to the oldest waiter if there is one.
func (l *limiter) release() {
	for {
		v := l.word.Load()
		if v >= waiterUnit {
			break
		}
		if l.word.CompareAndSwap(v, v-1) {
			return
		}
	}
	l.mu.Lock()
	if l.head == len(l.queue) {
		// The waiters gave up meanwhile.
		l.word.Add(-1)
		l.mu.Unlock()
		return
	}
	w := l.queue[l.head]
	l.queue[l.head] = nil
	l.head++
	l.compactLocked()
	// The slot stays taken: it passes to w.
	l.word.Add(-waiterUnit)
	w.ch <- struct{}{}
	l.mu.Unlock()
}

// limit is the number of slots.
func (l *limiter) limit() int { return int(l.max) }
