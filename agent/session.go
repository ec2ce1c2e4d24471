package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/agentwire/agentwire"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
	"github.com/agentwire/agentwire/internal/wire"
)

// session is one handshaken connection: it reads messages, runs events
// inline or on workers (read.go, workers.go), answers them (reply.go), acts
// on control messages (dispatch.go) and reports health (health.go). Its
// methods are safe for concurrent use.
type session struct {
	srv      *Server
	st       stream
	hs       *agentv2.HandshakeRequest
	log      *slog.Logger
	peer     *Peer
	interval time.Duration
	// ctx carries the peer; it is cancelled, with a cause, when the session ends.
	ctx    context.Context
	cancel context.CancelCauseFunc
	// laneParent is ctx without its cancellation, so lanes never touch ctx's
	// list of children; end cancels them itself.
	laneParent context.Context
	// limit is the concurrency limit; refuse beyond maxPending.
	limit, maxPending int
	// flow pauses the connection by events pending, laneFlow one request by
	// its queued events.
	flow, laneFlow wire.Hysteresis
	// maxIdle bounds parked workers; more exit instead of waiting.
	maxIdle int
	// budget is how long a handler may run on the reader (0: always use workers).
	budget time.Duration
	// inlineSeq is odd while the reader runs an event itself and grows by two
	// per such event; written under mu, read by the watch without it.
	inlineSeq atomic.Uint64
	// watchSeen is inlineSeq at the watch's last look (the watch's own).
	watchSeen uint64
	// readDone carries the final read error to run after a takeover.
	readDone chan error
	// lender is the stream when events borrow its read buffer, else nil.
	lender lendingStream
	stats  stats
	// wg counts the session's goroutines: workers, health loop, hooks.
	wg sync.WaitGroup
	// kick asks the health loop for a report now (capacity 1).
	kick chan struct{}

	mu sync.Mutex // mu guards the following
	// work wakes parked workers; its L is &mu.
	work sync.Cond
	// lanes holds one lane per correlation id with events pending, except
	// inlineLane (the one the reader runs itself) until a takeover.
	lanes      map[string]*lane
	inlineLane *lane
	// ready holds the lanes with events and no worker.
	ready fifo[*lane]
	// readerID names the reading goroutine; a takeover increments it.
	readerID uint64
	// cooldown counts events still to hand to workers after slow inline
	// handlers; backoff is the next cooldown (see slowLocked).
	cooldown, backoff int
	// strikes counts inline events in a row that outlived the budget.
	strikes int
	// takeovers and inlined count for tests and profiles.
	takeovers, inlined int
	// pending counts events accepted and not yet accounted for, running
	// those inside a handler call, answering those of pending whose answer
	// is on its way (see replying).
	pending, running, answering int
	// workers counts worker goroutines, idle those parked and not yet woken.
	workers, idle int
	wantPause     bool
	draining      bool
	ended         bool
	idleWaiters   []chan struct{}
	configWaiters map[string]chan *agentv2.ConfigUpdateResponse
	configSeq     uint64

	flowMu    sync.Mutex // flowMu serialises flow-control sends and guards sentPause
	sentPause bool       // the last flow-control state sent
}

type peerKey struct{}

func newSession(ctx context.Context, srv *Server, st stream, hs *agentv2.HandshakeRequest, interval time.Duration) *session {
	cfg := &srv.cfg
	s := &session{
		srv:           srv,
		st:            st,
		hs:            hs,
		interval:      interval,
		limit:         cfg.maxConcurrency,
		flow:          wire.ConnectionHysteresis(cfg.maxConcurrency),
		maxPending:    cfg.maxConcurrency + cfg.maxQueue,
		laneFlow:      wire.RequestHysteresis(cfg.maxQueuedPerRequest),
		maxIdle:       min(cfg.maxConcurrency, 32),
		lanes:         make(map[string]*lane),
		configWaiters: make(map[string]chan *agentv2.ConfigUpdateResponse),
		kick:          make(chan struct{}, 1),
		budget:        cfg.inlineBudget,
		readDone:      make(chan error, 1),
	}
	s.work.L = &s.mu
	if ls, ok := st.(lendingStream); ok && cfg.borrowEvents {
		ls.lend()
		s.lender = ls
	}
	s.peer = &Peer{s: s}
	s.log = cfg.logger.With("proxy_id", hs.GetProxyId(), "session", srv.nextID.Add(1))
	s.ctx, s.cancel = context.WithCancelCause(context.WithValue(ctx, peerKey{}, s.peer))
	s.laneParent = context.WithoutCancel(s.ctx)
	return s
}

// run serves the session until the connection ends and all its goroutines
// have exited.
func (s *session) run() error {
	s.wg.Add(1)
	go s.healthLoop()
	err, over := s.readLoop(0)
	if over {
		err = <-s.readDone
	} else {
		err = s.stopReading(err)
	}
	s.wg.Wait()
	if err != nil {
		err = fmt.Errorf("proxy %q: %w", s.hs.GetProxyId(), err)
	}
	return err
}

// stopReading ends the session after its read loop failed with err, first
// answering what is pending if the proxy only half-closed. The last reader
// calls it; it returns the error worth reporting (nil for a normal end).
func (s *session) stopReading(err error) error {
	if errors.Is(err, errHalfClosed) {
		_ = s.waitIdle(s.ctx)
		err = nil
	}
	if err != nil && endedNormally(err) {
		err = nil
	}
	cause := err
	if cause == nil {
		cause = agentwire.Errorf(agentwire.CodeUnavailable, "agent: connection closed")
	}
	s.end(cause)
	return err
}

// end stops the session: workers exit, handler contexts are cancelled.
func (s *session) end(cause error) {
	s.mu.Lock()
	s.ended = true
	for _, l := range s.lanes {
		l.cancel(cause)
	}
	if s.inlineLane != nil {
		s.inlineLane.cancel(cause)
	}
	s.work.Broadcast()
	s.wakeIdleLocked()
	s.mu.Unlock()
	s.cancel(cause)
}

// waitIdle returns when no event is pending or ctx ends.
func (s *session) waitIdle(ctx context.Context) error {
	s.mu.Lock()
	if s.pending == 0 || s.ended {
		s.mu.Unlock()
		return nil
	}
	ch := make(chan struct{})
	s.idleWaiters = append(s.idleWaiters, ch)
	s.mu.Unlock()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return agentwire.WrapContextError(ctx.Err())
	}
}

// wakeIdleLocked releases the waitIdle callers.
func (s *session) wakeIdleLocked() {
	for _, ch := range s.idleWaiters {
		close(ch)
	}
	s.idleWaiters = nil
}

// send sends m, giving up when the session ends.
func (s *session) send(m *agentv2.AgentToProxy) error {
	return s.st.Send(s.ctx, m)
}
