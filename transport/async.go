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
	// returns once the event is written or queued; done then receives the
	// answer, exactly once, on the goroutine that ends the call (the
	// connection's reader, or the one failing it), possibly before Go
	// returns. Go never waits for room: with the connection's write queue
	// full it fails with ResourceExhausted ([ErrBusy]). ctx must be
	// cancellable: it bounds the call, and done gets its error if it ends
	// first. done must not block. When Go returns an error the event was
	// not sent and done is not called.
	Go(ctx context.Context, event *agentv2.ProxyToAgent, done func(*agentv2.AgentResponse, error)) error
}

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
	c := callPool.Get().(*call)
	c.id, c.corr, c.done, c.deadline = s.nextID.Add(1), corr, ctx.Done(), 0
	c.async, c.kind, c.chunk = done, event.EventType(), chunkIndex(event)
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
		if busy {
			err = s.w.sendBatched(nowait, event)
		} else {
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
	if err != nil {
		putCall(c)
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
	kind, chunk := c.kind, c.chunk
	putCall(c)
	s.received(res)
	if res.err == nil {
		if err := editsFit(kind, chunk, res.resp); err != nil {
			res.resp, res.err = nil, err
		}
	}
	done(res.resp, res.err)
}
