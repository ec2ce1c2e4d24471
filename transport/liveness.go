package transport

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/agentwire/agentwire"
)

// A hung agent (a stopped process, a deadlocked reader) keeps its socket
// open: nothing fails, and its calls wait for their deadlines while the
// connection still looks ready. The session watches for that: the reader
// counts the frames it receives (one atomic add, no clock read), and a
// goroutine of the session compares the count between ticks of half the
// liveness interval. When it has not moved for the whole interval while
// calls were outstanding, the goroutine pings the agent; if the count has
// still not moved once the liveness timeout has passed, the session fails
// with ErrUnresponsive. Any frame counts, so an agent that answers events
// but not pings stays up as long as it answers.

// livenessTicks is how many ticks make a liveness interval: the silence
// is measured to within interval/livenessTicks.
const livenessTicks = 2

// Receiver is implemented by every Conn of this package. A pool uses it to
// tell a caller that gave up on a silent agent from one that gave up on a
// busy one: a call whose context ended while Received did not move heard
// nothing at all from the agent.
type Receiver interface {
	// Received counts the messages received from the agent so far, of
	// any kind. Reading it costs an atomic load or two.
	Received() uint64
}

var _ Receiver = (*session)(nil)

// frameCount is a counter on a cache line of its own: the reader bumps it
// for every frame, and must not invalidate the line of the counters every
// Send writes.
type frameCount struct {
	_ [64]byte
	n atomic.Uint64
	_ [56]byte
}

// Received implements Receiver. Frames of unknown types are counted apart
// by the reader, and count too.
func (s *session) Received() uint64 { return s.recvd.n.Load() + s.unknownFrames.Load() }

// inFlight returns the number of calls waiting for a decision.
func (s *session) inFlight() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pending.len()
}

// startLiveness starts the liveness watch, unless it is disabled. It runs
// until the session ends; Close waits for it.
func (s *session) startLiveness() {
	if s.cfg.livenessInterval <= 0 || s.cfg.livenessTimeout <= 0 {
		return
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.watchLiveness()
	}()
}

// watchLiveness pings an agent that has sent nothing for the liveness
// interval with calls outstanding, and fails the session if nothing comes
// within the timeout after.
func (s *session) watchLiveness() {
	t := time.NewTicker(max(s.cfg.livenessInterval/livenessTicks, time.Millisecond))
	defer t.Stop()
	seen := s.Received()
	// since is the tick that last saw a frame or no call outstanding;
	// quiet counts the ticks after it.
	since, quiet := time.Now(), 0
	for {
		var now time.Time
		select {
		case <-s.bg.Done():
			return
		case now = <-t.C:
		}
		if n := s.Received(); n != seen || s.inFlight() == 0 {
			seen, since, quiet = n, now, 0
			continue
		}
		if quiet++; quiet < livenessTicks {
			continue
		}
		if !s.probe(seen, since) {
			return
		}
		seen, since, quiet = s.Received(), time.Now(), 0
	}
}

// probe pings the agent, silent since then with calls outstanding, and
// waits up to the liveness timeout for any frame past seen. It fails the
// session if none comes, and reports whether the session lives on.
func (s *session) probe(seen uint64, since time.Time) bool {
	calls := s.inFlight()
	ctx, cancel := context.WithTimeout(s.bg, s.cfg.livenessTimeout)
	defer cancel()
	if _, err := s.Ping(ctx); err != nil && ctx.Err() == nil && s.bg.Err() == nil {
		// The ping could not go out (no room on the wire): the agent
		// still gets the whole timeout to send anything.
		<-ctx.Done()
	}
	if s.bg.Err() != nil {
		return false
	}
	if s.Received() != seen {
		return true
	}
	if n := s.inFlight(); n > 0 {
		calls = n
	}
	silence := time.Since(since).Round(10 * time.Millisecond)
	err := agentwire.NewError(agentwire.CodeUnavailable, fmt.Errorf("%w: agent sent nothing for %v with %d calls outstanding, not even a pong within %v",
		ErrUnresponsive, silence, calls, s.cfg.livenessTimeout))
	s.cfg.logger.LogAttrs(context.Background(), slog.LevelWarn, "agent unresponsive; closing the connection",
		slog.String("agent_id", s.caps.GetAgentId()), slog.String("transport", s.w.name()),
		slog.Duration("silence", silence), slog.Int("calls", calls))
	s.fail(err)
	return false
}
