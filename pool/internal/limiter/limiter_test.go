package limiter

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// queued waits until l has n waiters.
func queued(t *testing.T, l *Limiter, n int64) {
	t.Helper()
	require.Eventually(t, func() bool { return l.word.Load()/waiterUnit == n }, 5*time.Second, time.Millisecond)
}

// try is tryAcquire for an event not pinned to a live connection.
func try(t *testing.T, l *Limiter) bool {
	t.Helper()
	ok, err := l.TryAcquire(false)
	require.NoError(t, err)
	return ok
}

func TestLimiterSlots(t *testing.T) {
	t.Parallel()
	l := New(2)
	assert.Equal(t, 2, l.Limit())
	assert.True(t, try(t, l))
	assert.True(t, try(t, l))
	assert.False(t, try(t, l))
	l.Release()
	assert.True(t, try(t, l))

	// Without a queue wait a full limiter refuses at once.
	waited, err := l.Acquire(context.Background(), false, nil, 0)
	assert.ErrorIs(t, err, ErrWait)
	assert.False(t, waited)

	start := time.Now()
	waited, err = l.Acquire(context.Background(), false, nil, 20*time.Millisecond)
	assert.ErrorIs(t, err, ErrWait)
	assert.True(t, waited)
	assert.GreaterOrEqual(t, time.Since(start), 20*time.Millisecond)
	assert.Equal(t, int64(2), l.word.Load(), "two slots taken, nobody queued")
}

// TestLimiterOrder: freed slots go to the waiters in arrival order, and a
// newcomer does not take one ahead of them.
func TestLimiterOrder(t *testing.T) {
	t.Parallel()
	l := New(1)
	require.True(t, try(t, l))
	got := make(chan string, 2)
	for i, name := range []string{"first", "second"} {
		go func() {
			_, err := l.Acquire(context.Background(), false, nil, time.Minute)
			assert.NoError(t, err)
			got <- name
		}()
		queued(t, l, int64(i+1))
	}
	assert.False(t, try(t, l), "a newcomer queues behind the waiters")
	l.Release()
	assert.Equal(t, "first", <-got)
	assert.Equal(t, int64(waiterUnit+1), l.word.Load())
	l.Release()
	assert.Equal(t, "second", <-got)
	l.Release()
	assert.Zero(t, l.word.Load())
}

func TestLimiterGiveUp(t *testing.T) {
	t.Parallel()
	l := New(1)
	require.True(t, try(t, l))

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := l.Acquire(ctx, false, nil, time.Minute)
		done <- err
	}()
	queued(t, l, 1)
	cancel()
	assert.ErrorIs(t, <-done, context.Canceled)

	gone := make(chan struct{})
	go func() {
		_, err := l.Acquire(context.Background(), false, gone, time.Minute)
		done <- err
	}()
	queued(t, l, 1)
	close(gone)
	assert.ErrorIs(t, <-done, ErrGone)
	assert.Equal(t, int64(1), l.word.Load(), "the waiters left the queue")
	l.Release()
	assert.Zero(t, l.word.Load())
}

// TestLimiterStress: goroutines taking, holding and returning slots, some
// giving up, never hold more than the limit, and every slot comes back.
func TestLimiterStress(t *testing.T) {
	t.Parallel()
	const max = 3
	l := New(max)
	var holders, most atomic.Int64
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Go(func() {
			for i := range 300 {
				ctx, cancel := context.Background(), context.CancelFunc(func() {})
				if (g+i)%7 == 0 {
					ctx, cancel = context.WithTimeout(ctx, time.Duration(i%3)*time.Microsecond)
				}
				_, err := l.Acquire(ctx, false, nil, time.Duration(1+i%5)*time.Millisecond)
				cancel()
				if err != nil {
					continue
				}
				n := holders.Add(1)
				for {
					m := most.Load()
					if n <= m || most.CompareAndSwap(m, n) {
						break
					}
				}
				if i%4 == 0 {
					time.Sleep(50 * time.Microsecond)
				}
				holders.Add(-1)
				l.Release()
			}
		})
	}
	wg.Wait()
	assert.LessOrEqual(t, most.Load(), int64(max))
	assert.Zero(t, l.word.Load())
	l.mu.Lock()
	assert.Equal(t, l.head, len(l.queue))
	l.mu.Unlock()
}

// TestLimiterRetire: a retired connection takes only pinned events, and is
// idle (closing) once its last slot and waiter are gone; then it takes
// nothing.
func TestLimiterRetire(t *testing.T) {
	t.Parallel()
	l := New(1)
	require.True(t, try(t, l))
	waiter := make(chan error, 1)
	go func() {
		_, err := l.Acquire(context.Background(), true, nil, time.Minute)
		waiter <- err
	}()
	queued(t, l, 1)
	l.Retire()
	assert.Equal(t, int64(2), l.InFlight())
	_, err := l.TryAcquire(false)
	assert.ErrorIs(t, err, ErrRetired, "not pinned")
	ok, err := l.TryAcquire(true)
	assert.False(t, ok, "pinned, but full")
	assert.NoError(t, err)
	l.Release()
	require.NoError(t, <-waiter, "the pinned waiter got the slot")
	select {
	case <-l.idle:
		t.Fatal("idle with a slot taken")
	default:
	}
	l.Release()
	<-l.idle
	_, err = l.TryAcquire(true)
	assert.ErrorIs(t, err, ErrRetired, "closing")
	assert.Zero(t, l.InFlight())

	// Retired while idle: closing at once.
	l = New(1)
	l.Retire()
	<-l.idle
}
