package transport

import (
	"context"

	"github.com/agentwire/agentwire"
)

// Many Sends sharing one context would all select on its Done channel,
// whose lock then bounces between processors. Instead they share a
// ctxWatch: one context.AfterFunc fails all their calls when the context
// ends, and each Send waits with a plain receive. A watch is adopted once
// two pending calls share a Done channel, so one event per context costs
// no registration. The session keeps one idle watch (for contexts whose
// calls come in waves) and unregisters any other once its calls are gone.

// ctxWatch fails the pending calls whose context's Done channel is done
// when it closes. Its fields are guarded by session.mu.
type ctxWatch struct {
	done <-chan struct{}
	n    int         // pending calls relying on the watch
	stop func() bool // unregisters the callback
	// dropped: out of session.watches; a late callback does nothing.
	dropped bool
}

// watchLocked makes c, just made pending with a non-nil c.done, rely on a
// watch if c.done has one, the previous call shares it or force is set,
// and reports whether it does; s.mu is held and s.err is nil.
func (s *session) watchLocked(c *call, ctx context.Context, force bool) bool {
	done := c.done
	w := s.watches[done]
	if w != nil && w == s.idleWatch {
		s.idleWatch = nil
	}
	if w == nil {
		if p := c.prev; !force && (p == nil || p.done != done) {
			return false
		}
		w = &ctxWatch{done: done}
		// Close waits for the callback unless stop takes it back first.
		s.wg.Add(1)
		w.stop = context.AfterFunc(ctx, func() { s.watchFired(w) })
		if s.watches == nil {
			s.watches = make(map[<-chan struct{}]*ctxWatch)
		}
		s.watches[done] = w
	}
	w.n++
	c.watch = w
	c.ctx = ctx
	return true
}

// unwatchLocked releases c's watch, if any, as c stops pending; s.mu is
// held.
func (s *session) unwatchLocked(c *call) {
	w := c.watch
	if w == nil {
		return
	}
	c.watch = nil
	if w.n--; w.n > 0 {
		return
	}
	select {
	case <-w.done:
		s.dropWatchLocked(w)
		return
	default:
	}
	if old := s.idleWatch; old != nil {
		s.dropWatchLocked(old)
	}
	s.idleWatch = w
}

// dropWatchLocked forgets w and unregisters its callback; s.mu is held.
func (s *session) dropWatchLocked(w *ctxWatch) {
	if w.dropped {
		return
	}
	w.dropped = true
	delete(s.watches, w.done)
	if s.idleWatch == w {
		s.idleWatch = nil
	}
	if w.stop() {
		s.wg.Done() // the callback will not run
	}
}

// dropWatchesLocked drops every watch of a failing session; s.mu is held.
func (s *session) dropWatchesLocked() {
	for _, w := range s.watches {
		s.dropWatchLocked(w)
	}
}

// watchFired fails the calls relying on w with their context's error, as
// their select would have.
func (s *session) watchFired(w *ctxWatch) {
	defer s.wg.Done()
	var (
		victims []*call
		overrun error
	)
	s.mu.Lock()
	if !w.dropped {
		for c := s.pending.oldest; c != nil; {
			next := c.next
			if c.watch == w {
				victims = append(victims, c)
				if err := s.abandonLocked(c); err != nil {
					overrun = err
				}
			}
			c = next
		}
		s.dropWatchLocked(w) // if it was idle
	}
	s.mu.Unlock()
	if overrun != nil {
		s.fail(overrun)
	}
	for _, c := range victims {
		// c.ctx stays set until its Send has the result.
		s.deliver(c, result{err: agentwire.WrapContextError(c.ctx.Err())})
	}
}
