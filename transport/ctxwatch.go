package transport

import (
	"context"

	"github.com/agentwire/agentwire"
)

// A Send normally waits for its decision in a select on its call's channel
// and its context's Done channel. When many goroutines send with one
// context (a server-wide or per-client context rather than one per
// event), every one of those selects locks and queues on that one Done
// channel, and the channel's lock bounces between processors. Such
// callers share a ctxWatch instead: one context.AfterFunc fails all their
// calls when the context ends, and each Send waits with a plain receive.
//
// A watch is adopted for a Done channel once two calls on it are pending
// at the same time (the call sent just before has the same one), so a
// context that carries one event at a time costs no registration. When
// its last call leaves the pending table it goes idle; the session keeps
// one idle watch, so a context whose calls come in waves (all answered,
// then all sent again) does not register anew for every wave. Any other
// is dropped and its callback unregistered: the one registration the
// session may hold on a context none of its calls use ends when that
// context ends, when another watch goes idle, or when the session closes.

// ctxWatch fails the pending calls whose context has Done channel done
// when that channel closes. Its fields are guarded by session.mu.
type ctxWatch struct {
	done <-chan struct{}
	// n counts the pending calls that rely on this watch.
	n int
	// stop unregisters the callback (what context.AfterFunc returned).
	stop func() bool
	// dropped: the watch was taken out of session.watches; a callback
	// that runs late does nothing.
	dropped bool
}

// watchLocked makes the wait of c, just put in the pending table with a
// context whose Done channel is done (not nil), rely on a watch if done
// has one or another pending call shares it. It reports whether c is
// watched; s.mu is held and s.err is nil.
func (s *session) watchLocked(c *call, ctx context.Context) bool {
	done := c.done
	w := s.watches[done]
	if w != nil && w == s.idleWatch {
		s.idleWatch = nil
	}
	if w == nil {
		if p := c.prev; p == nil || p.done != done {
			return false
		}
		w = &ctxWatch{done: done}
		// The callback's goroutine is the session's: Close waits for it
		// unless stop takes the registration back first.
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

// unwatchLocked releases c's watch, if any, as c leaves the pending
// table; s.mu is held.
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
		// Its callback is due: nothing to keep it for.
		s.dropWatchLocked(w)
		return
	default:
	}
	if old := s.idleWatch; old != nil {
		s.dropWatchLocked(old)
	}
	s.idleWatch = w
}

// dropWatchLocked forgets w, unless it did already, and unregisters its
// callback; s.mu is held.
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

// dropWatchesLocked drops every watch, for a session that fails; s.mu
// is held. Calls still pointing at them are answered by the failure.
func (s *session) dropWatchesLocked() {
	for _, w := range s.watches {
		s.dropWatchLocked(w)
	}
}

// watchFired runs when a watched context ends: it fails the calls that
// rely on w with the context's error, as their select would have.
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
		c.ch <- result{err: agentwire.WrapContextError(c.ctx.Err())}
	}
}
