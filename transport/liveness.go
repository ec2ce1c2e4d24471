package transport

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/agentwire/agentwire"
)

// A hung agent keeps its socket open while its calls wait for their
// deadlines. The reader counts frames (one atomic add); a goroutine checks
// the count every half liveness interval, pings an agent silent for the
// whole interval with calls outstanding, and fails the session with
// ErrUnresponsive if nothing at all arrives within the liveness timeout.

// livenessTicks is how many ticks make a liveness interval.
const livenessTicks = 2

// Receiver is implemented by every Conn of this package. A pool uses it to
// tell a call that gave up on a silent agent (Received did not move) from
// one that gave up on a busy one.
type Receiver interface {
	// Received counts the messages of any kind received from the agent
	// so far; it costs an atomic load or two.
	Received() uint64
}

var _ Receiver = (*session)(nil)

// frameCount is a counter on a cache line of its own, so the reader's
// adds do not invalidate the line of the counters every Send writes.
type frameCount struct {
	_ [64]byte
	n atomic.Uint64
	_ [56]byte
}

// Received implements Receiver; frames of unknown types count too.
func (s *session) Received() uint64 { return s.recvd.n.Load() + s.unknownFrames.Load() }

// inFlight returns the number of calls waiting for a decision.
func (s *session) inFlight() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pending.len()
}

// startLiveness starts the liveness watch, unless disabled; Close waits
// for it.
func (s *session) startLiveness() {
	if s.cfg.livenessInterval <= 0 || s.cfg.livenessTimeout <= 0 {
		return
	}
	s.wg.Add(1)
	go s.watchLiveness()
}

func (s *session) watchLiveness() {
	defer s.wg.Done()
	t := time.NewTicker(max(s.cfg.livenessInterval/livenessTicks, time.Millisecond))
	defer t.Stop()
	seen := s.Received()
	// since: the tick that last saw a frame or no call; quiet: ticks since.
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
// fails the session unless a frame past seen comes within the liveness
// timeout. It reports whether the session lives on.
func (s *session) probe(seen uint64, since time.Time) bool {
	calls := s.inFlight()
	ctx, cancel := context.WithTimeout(s.bg, s.cfg.livenessTimeout)
	defer cancel()
	if _, err := s.Ping(ctx); err != nil && ctx.Err() == nil && s.bg.Err() == nil {
		// The ping could not go out: the agent still gets the timeout.
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
	s.log(slog.LevelWarn, "agent unresponsive; closing the connection",
		slog.Duration("silence", silence), slog.Int("calls", calls))
	s.fail(err)
	return false
}
