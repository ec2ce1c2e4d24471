package transport

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/agentwire/agentwire"
)

// closeFlushTimeout bounds how long Close waits for queued frames.
const closeFlushTimeout = time.Second

// fail ends the session once: every waiter gets err at once, the wire is
// closed, and background goroutines are told to stop.
func (s *session) fail(err error) {
	s.mu.Lock()
	if s.err != nil {
		s.mu.Unlock()
		return
	}
	s.err = err
	// Done closes before the pending calls hear of err: a caller whose call
	// failed finds the connection done, and a pool routes elsewhere.
	close(s.done)
	victims := s.pending.clear()
	s.dropWatchesLocked()
	if s.sweepArmed && s.sweepTimer.Stop() {
		// A sweep that has started finds s.err set and does not re-arm.
		s.sweepArmed = false
		s.wg.Done()
	}
	if s.window != nil && s.window.Stop() {
		s.wg.Done()
	}
	clear(s.byCorr)
	s.placeholders = 0
	for seq, ch := range s.pings {
		close(ch)
		delete(s.pings, seq)
	}
	s.pauses.Lift("")
	s.pausesChangedLocked()
	close(s.resume)
	s.resume = make(chan struct{})
	s.state = StateClosed
	s.mu.Unlock()

	for _, c := range victims {
		s.deliver(c, result{err: err})
	}
	s.stop()
	// Closing the wire ends the reader, which tells the status listener.
	_ = s.w.close()
}

// Close implements Conn.
func (s *session) Close(ctx context.Context) error {
	s.endWindow()
	if s.Err() == nil {
		// Let notices queued just before (drain, shutdown) reach the agent.
		fctx, cancel := context.WithTimeout(ctx, closeFlushTimeout)
		if err := s.w.flush(fctx); errors.Is(err, errCannotFlush) && s.notified.Load() {
			// The RPC library cannot tell when bytes have left, and its
			// teardown may drop them: the agent answers a ping only after
			// reading everything sent before it.
			_, _ = s.Ping(fctx)
		}
		cancel()
	}
	s.fail(agentwire.NewError(agentwire.CodeUnavailable, ErrClosed))
	return waitCtx(ctx, &s.wg)
}

// waitCtx waits for the groups, one after the other, honouring ctx.
func waitCtx(ctx context.Context, groups ...*sync.WaitGroup) error {
	waited := make(chan struct{})
	go func() {
		for _, g := range groups {
			g.Wait()
		}
		close(waited)
	}()
	select {
	case <-waited:
		return nil
	case <-ctx.Done():
		return agentwire.WrapContextError(ctx.Err())
	}
}
