package limiter

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sync/semaphore"
)

// BenchmarkLimiters measures the connection limiter against standard
// semaphores on one event's slot work: take a slot (waiting up to the
// queue wait when full), read the in-flight count as a picker does,
// return it. The standard ones keep an atomic in-flight count beside
// them: the picker reads it, and neither exposes its own.

// slotOps is one event's slot work.
type slotOps interface {
	take(ctx context.Context) bool
	inFlight() int64
	give()
}

type limiterOps struct{ l *Limiter }

func (o limiterOps) take(ctx context.Context) bool {
	ok, err := o.l.TryAcquire(false)
	if !ok && err == nil {
		_, err = o.l.Acquire(ctx, false, nil, time.Second)
		ok = err == nil
	}
	return ok
}
func (o limiterOps) inFlight() int64 { return o.l.InFlight() }
func (o limiterOps) give()           { o.l.Release() }

// chanOps is a buffered channel used as a semaphore.
type chanOps struct {
	ch chan struct{}
	n  *atomic.Int64
}

func (o chanOps) take(ctx context.Context) bool {
	o.n.Add(1)
	select {
	case o.ch <- struct{}{}:
		return true
	default:
	}
	t := time.NewTimer(time.Second)
	defer t.Stop()
	select {
	case o.ch <- struct{}{}:
		return true
	case <-ctx.Done():
	case <-t.C:
	}
	o.n.Add(-1)
	return false
}
func (o chanOps) inFlight() int64 { return o.n.Load() }
func (o chanOps) give()           { <-o.ch; o.n.Add(-1) }

// semOps is golang.org/x/sync/semaphore (FIFO, like the limiter).
type semOps struct {
	s *semaphore.Weighted
	n *atomic.Int64
}

func (o semOps) take(ctx context.Context) bool {
	o.n.Add(1)
	if o.s.TryAcquire(1) {
		return true
	}
	wctx, cancel := context.WithTimeout(ctx, time.Second)
	err := o.s.Acquire(wctx, 1)
	cancel()
	if err != nil {
		o.n.Add(-1)
	}
	return err == nil
}
func (o semOps) inFlight() int64 { return o.n.Load() }
func (o semOps) give()           { o.s.Release(1); o.n.Add(-1) }

func BenchmarkLimiters(b *testing.B) {
	impls := []struct {
		name string
		new  func(n int) slotOps
	}{
		{"limiter", func(n int) slotOps { return limiterOps{New(n)} }},
		{"chan", func(n int) slotOps { return chanOps{make(chan struct{}, n), new(atomic.Int64)} }},
		{"x_semaphore", func(n int) slotOps { return semOps{semaphore.NewWeighted(int64(n)), new(atomic.Int64)} }},
	}
	// free: the default limit, never reached; full: 16 goroutines per core
	// on 4 slots, so that most events wait.
	for _, load := range []struct {
		name       string
		slots, par int
	}{{"free", 100, 1}, {"full", 4, 16}} {
		for _, impl := range impls {
			b.Run(load.name+"/"+impl.name, func(b *testing.B) {
				o := impl.new(load.slots)
				ctx := context.Background()
				b.ReportAllocs()
				b.SetParallelism(load.par)
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						if !o.take(ctx) {
							b.Error("no slot")
							return
						}
						_ = o.inFlight()
						o.give()
					}
				})
			})
		}
	}
}
