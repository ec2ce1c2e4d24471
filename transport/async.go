package transport

import (
	"context"
	"errors"
	"time"

	"github.com/agentwire/agentwire"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
)

// AsyncConn is a [Conn] that can also send an event without waiting for
// its answer. The connections this package makes implement it.
type AsyncConn interface {
	Conn
	// Go sends event as Send does, with the same matching and errors, but
	// returns once the event is queued (for up to the connection's async
	// window, [WithAsyncWindow], to share a write); done then receives the
	// answer, exactly once, on the goroutine that ends the call (the
	// connection's reader, or the one failing it), possibly before Go
	// returns. Go never waits for room: with the connection's write queue
	// full it fails with ResourceExhausted ([ErrBusy]). ctx must be
	// cancellable: it bounds the call, and done gets its error if it ends
	// first. done must not block. When Go returns an error the event was
	// not sent and done is not called.
	Go(ctx context.Context, event *agentv2.ProxyToAgent, done func(*agentv2.AgentResponse, error)) error
}

// DefaultAsyncWindow is how long [AsyncConn.Go] holds events back by
// default so that they share a write (see [WithAsyncWindow]).
const DefaultAsyncWindow = 2 * time.Millisecond

// ErrBusy: [AsyncConn.Go] found the connection's write queue full.
var ErrBusy = errors.New("transport: write queue full")

var _ AsyncConn = (*session)(nil)

// nowait makes a write fail at once rather than wait for room.
var nowait = func() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}()

// Go implements AsyncConn.
func (s *session) Go(ctx context.Context, event *agentv2.ProxyToAgent, done func(*agentv2.AgentResponse, error)) error {
	corr, ok := event.EventCorrelationID()
	switch {
	case !ok:
		return agentwire.Errorf(agentwire.CodeInvalidArgument, "%w: %v", ErrNotEvent, event.FrameType())
	case ctx.Done() == nil || done == nil:
		return agentwire.Errorf(agentwire.CodeInvalidArgument, "transport: Go needs a cancellable context and a done function")
	case ctx.Err() != nil:
		return agentwire.WrapContextError(ctx.Err())
	}
	// Not pooled: whoever ends the call (the watch, a failure) may do so
	// while Go still holds it, and must not recycle it under Go's feet.
	c := &call{id: s.nextID.Add(1), corr: corr, done: ctx.Done(), async: done, kind: event.EventType(), chunk: chunkIndex(event)}
	if d := s.cfg.callTimeout; d > 0 {
		c.deadline = time.Since(s.base) + d
	}
	event.EventId = c.id

	ordered := s.byCorr != nil
	if ordered {
		s.orderMu.Lock()
	}
	// Always watched: nobody waits on the call, so only the watch ends it
	// with its context.
	busy, _, err := s.addCall(ctx, c, true)
	if err == nil {
		switch {
		case s.lazy != nil:
			s.openWindow()
			err = s.lazy.sendBatched(nowait, event)
		case busy:
			err = s.w.sendBatched(nowait, event)
		default:
			err = s.w.send(nowait, event)
		}
		if err != nil && !s.forget(c, false) {
			// The connection failed meanwhile: done has its error.
			err = nil
		} else if err != nil {
			err = s.goErr(err)
		}
	}
	if ordered {
		s.orderMu.Unlock()
	}
	return err
}

// goErr is the error of a write that Go did not let wait.
func (s *session) goErr(err error) error {
	if errors.Is(err, context.Canceled) {
		return agentwire.Errorf(agentwire.CodeResourceExhausted, "%w", ErrBusy)
	}
	return s.sendErr(err)
}

// deliver hands res to c's caller: through its channel to a Send, or to
// the done function of a Go, after checking the answer's edits as Send
// does and releasing the reader's hold. s.mu is not held.
func (s *session) deliver(c *call, res result) {
	done := c.async
	if done == nil {
		c.ch <- res
		return
	}
	s.received(res)
	if res.err == nil {
		if err := editsFit(c.kind, c.chunk, res.resp); err != nil {
			res.resp, res.err = nil, err
		}
	}
	done(res.resp, res.err)
}

// Go's writes wait for company: the first of a window holds the wire for
// the connection's async window, and the events Go sends meanwhile leave
// in one write when it ends, on its timer or at the first other write.
// Mirrored events, which nobody waits for, then cost the agent one read
// per window rather than one per event.

// windowedWire ends the window before every write but Go's.
type windowedWire struct {
	wire
	s *session
}

func (w *windowedWire) send(ctx context.Context, m *agentv2.ProxyToAgent) error {
	w.s.endWindow()
	return w.wire.send(ctx, m)
}

func (w *windowedWire) sendBatched(ctx context.Context, m *agentv2.ProxyToAgent) error {
	w.s.endWindow()
	return w.wire.sendBatched(ctx, m)
}

// openWindow holds the wire for the async window unless a window is open.
func (s *session) openWindow() {
	if s.windowHeld.Load() || !s.windowHeld.CompareAndSwap(false, true) {
		return
	}
	s.lazy.holdBatch()
	s.mu.Lock()
	if s.err != nil {
		s.mu.Unlock()
		s.endWindow()
		return
	}
	// Close waits for the timer's function, unless fail stops it first.
	s.wg.Add(1)
	s.window = time.AfterFunc(s.cfg.asyncWindow, func() {
		defer s.wg.Done()
		s.endWindow()
	})
	s.mu.Unlock()
}

// endWindow lets the events held by an open window go out, and stops its
// timer if it has not fired. s.mu is not held.
func (s *session) endWindow() {
	if !s.windowHeld.Load() || !s.windowHeld.CompareAndSwap(true, false) {
		return
	}
	s.mu.Lock()
	if s.window != nil && s.window.Stop() {
		s.wg.Done()
	}
	s.window = nil
	s.mu.Unlock()
	s.lazy.releaseBatch()
}
