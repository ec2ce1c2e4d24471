package transport

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/agentwire/agentwire"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
	iwire "github.com/agentwire/agentwire/internal/wire"
)

// session is the transport-independent connection core behind every Conn;
// each concern has a file (handshake, send, matching, dispatch, cancel,
// flow, ping, liveness, ctxwatch, agentlog, close).
type session struct {
	cfg  *config
	w    wire
	caps *agentv2.AgentCapabilities

	nextID  atomic.Uint64
	pingSeq atomic.Uint64
	// notified: a notice was sent, which Close makes sure the agent read.
	notified atomic.Bool

	lateResponses      atomic.Uint64
	duplicateResponses atomic.Uint64
	unknownFrames      atomic.Uint64
	// logs limits the agent's log lines; only the reader uses it.
	logs logLimiter
	// floodLogged: the drop of a background task was logged (once).
	floodLogged atomic.Bool
	// anyPause mirrors pauses.Any(), so Paused need not take mu per event.
	anyPause atomic.Bool

	// recvd counts the frames the reader received (see liveness.go).
	recvd frameCount

	// orderMu makes "queue by correlation id" and "hand to the wire" one
	// step for agents that do not echo ids, so queue order is wire order.
	orderMu sync.Mutex

	stop context.CancelFunc // ends background goroutines
	bg   context.Context
	wg   sync.WaitGroup
	done chan struct{}

	// base starts the monotonic clock of call deadlines.
	base time.Time

	mu      sync.Mutex // mu guards the following
	pending pendingTable
	// sweepTimer enforces the call timeout (see armSweepLocked).
	sweepTimer *time.Timer
	sweepArmed bool
	// byCorr queues calls per correlation id, oldest first, for agents that
	// do not echo ids; placeholders stand in for calls that gave up.
	byCorr       map[string][]*call
	placeholders int
	// abandoned: ids of calls that gave up (echo mode); unmatchable:
	// requests whose answers are out of step (no-echo mode).
	abandoned   recentSet[uint64]
	unmatchable recentSet[string]
	// watches maps Done channels shared by pending calls to their watch;
	// idleWatch is the one kept without calls, if any (see ctxwatch.go).
	watches   map[<-chan struct{}]*ctxWatch
	idleWatch *ctxWatch
	// pings maps ping sequence numbers to their waiters.
	pings map[uint64]chan struct{}
	err   error
	// pauses is what the agent paused; anyPause follows it.
	pauses iwire.PauseSet
	// resume is closed and replaced when a pause lifts or the session ends.
	resume   chan struct{}
	health   agentv2.HealthState
	load     *agentv2.LoadMetrics
	healthAt time.Time
	rtt      time.Duration
	// state is the State last told to the status listener.
	state State
	// background counts goroutines started by goBackground still running.
	background int
	// window ends the hold of Go's events (see async.go); windowHeld says
	// a window is open.
	window     *time.Timer
	windowHeld atomic.Bool
	// lazy is w's inner wire when windows are on: Go writes through it
	// without ending the window.
	lazy wire
}

var _ Conn = (*session)(nil)

func newSession(cfg *config, w wire) *session {
	bg, stop := context.WithCancel(context.Background())
	s := &session{
		cfg:    cfg,
		w:      w,
		bg:     bg,
		stop:   stop,
		done:   make(chan struct{}),
		pings:  make(map[uint64]chan struct{}),
		resume: make(chan struct{}),
		state:  StateReady,
		base:   time.Now(),
	}
	// Only framed wires hold writes; gRPC's and Connect's batch anyway.
	if _, framed := w.(*framedWire); framed && cfg.asyncWindow > 0 {
		s.lazy, s.w = w, &windowedWire{wire: w, s: s}
	}
	return s
}

// start runs the writer, performs the handshake, then starts the reader.
// On error the wire is closed and nothing keeps running.
func (s *session) start(ctx context.Context) error {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := s.w.run(s.bg); err != nil {
			s.fail(agentwire.NewError(agentwire.CodeUnavailable, fmt.Errorf("%w: %w", ErrPeerGone, err)))
		}
	}()
	if err := s.handshake(ctx); err != nil {
		s.stop()
		_ = s.w.close()
		s.wg.Wait()
		return err
	}
	// The first status goes out before the dial returns, the rest from the
	// reader, the last (closed) as it exits.
	s.pushStatus(s.Status())
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.readLoop()
		s.pushStatus(s.Status())
	}()
	s.startLiveness()
	return nil
}

// pushStatus tells the status listener st.
func (s *session) pushStatus(st Status) {
	if f := s.cfg.onStatus; f != nil {
		f(st)
	}
}

// Capabilities implements Conn.
func (s *session) Capabilities() *agentv2.AgentCapabilities { return s.caps }

// Status implements Conn.
func (s *session) Status() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.statusLocked()
}

// statusLocked derives the status; s.mu is held.
func (s *session) statusLocked() Status {
	st := Status{
		Health:             s.health,
		Load:               s.load,
		HealthAt:           s.healthAt,
		InFlight:           s.pending.len(),
		RTT:                s.rtt,
		LateResponses:      s.lateResponses.Load(),
		DuplicateResponses: s.duplicateResponses.Load(),
		LogsDropped:        s.logs.dropped.Load(),
		UnknownFrames:      s.unknownFrames.Load(),
	}
	st.UnknownResponses = st.LateResponses + st.DuplicateResponses
	switch {
	case s.err != nil:
		st.State = StateClosed
	case s.health == agentv2.HealthState_HEALTH_STATE_UNHEALTHY:
		st.State = StateUnhealthy
	case s.health == agentv2.HealthState_HEALTH_STATE_DRAINING:
		st.State = StateDraining
	case s.pauses.Connection():
		st.State = StatePaused
	default:
		st.State = StateReady
	}
	return st
}

// stateChangedLocked records the current status and reports whether its
// State changed; s.mu is held.
func (s *session) stateChangedLocked() (bool, Status) {
	st := s.statusLocked()
	changed := st.State != s.state
	s.state = st.State
	return changed, st
}

// Done implements Conn.
func (s *session) Done() <-chan struct{} { return s.done }

// Err implements Conn.
func (s *session) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}
