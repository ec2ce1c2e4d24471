package transport

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/codec"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
	iwire "github.com/agentwire/agentwire/internal/wire"
)

// call is one Send waiting for its decision. Calls are pooled.
type call struct {
	id   uint64
	corr string
	ch   chan result // capacity 1; exactly one result per call
	// deadline is when the session's call timeout fails the call, on the
	// session's monotonic clock (see session.base); 0 without a timeout.
	deadline time.Duration
	// prev and next link the pending calls in the order they were sent
	// (see pendingTable), under session.mu.
	prev, next *call
	// done is the Done channel of the Send's context (nil if it has
	// none). While the call is pending, watch (under session.mu) is the
	// ctxWatch its Send relies on instead of selecting on done, if any,
	// and ctx the Send's context, for the error the watch reports.
	done  <-chan struct{}
	watch *ctxWatch
	ctx   context.Context
	// placeholder marks a stand-in for a call that gave up, kept in its
	// request's queue until the agent's late answer arrives (see
	// matching.go). Placeholders are never pooled or sent to.
	placeholder bool
}

type result struct {
	resp *agentv2.AgentResponse
	err  error
	// held: the reader took a wire hold for this result's Send, which
	// releases it once it has the result (see wire.holdBatch).
	held bool
}

var callPool = sync.Pool{New: func() any { return &call{ch: make(chan result, 1)} }}

// putCall returns c, which no table holds any more, to the pool, without
// the references that would keep its Send's context alive.
func putCall(c *call) {
	c.done, c.watch, c.ctx = nil, nil, nil
	callPool.Put(c)
}

// session is the transport-independent connection core behind every Conn.
type session struct {
	cfg  *config
	w    wire
	caps *agentv2.AgentCapabilities
	// echo is true when the agent declared it copies event ids.
	echo bool

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
	// anyPause: the connection or some request is paused. Paused reads
	// it without taking mu, which every event would otherwise take once
	// more.
	anyPause atomic.Bool

	// recvd counts the frames the reader received (see liveness.go).
	recvd frameCount

	// orderMu makes "queue by correlation id" and "hand to the wire" one
	// step for agents that do not echo event ids, so the queue order is the
	// wire order. Unused for echoing agents.
	orderMu sync.Mutex

	stop context.CancelFunc // ends background goroutines
	bg   context.Context
	wg   sync.WaitGroup
	done chan struct{}

	// base starts the monotonic clock of call deadlines: a deadline is
	// the time since base when the call fails.
	base time.Time

	mu sync.Mutex // mu guards the following
	// pending holds the waiting calls.
	pending pendingTable
	// sweepTimer runs sweep at the oldest pending call's deadline; it is
	// armed (sweepArmed) while calls are pending.
	sweepTimer *time.Timer
	sweepArmed bool
	// byCorr queues calls per correlation id, oldest first, for agents that
	// do not echo event ids; placeholders stand in for calls that gave up.
	byCorr       map[string][]*call
	placeholders int
	// abandoned remembers the ids of calls that gave up (echo mode), to
	// tell their late answers from duplicates; unmatchable lists the
	// requests whose answers are out of step (no-echo mode).
	abandoned   recentSet[uint64]
	unmatchable recentSet[string]
	// watches maps Done channels shared by pending calls to the watch
	// that fails those calls when the channel closes (see ctxWatch);
	// idleWatch is the one of them kept without calls, if any.
	watches   map[<-chan struct{}]*ctxWatch
	idleWatch *ctxWatch
	// pings maps ping sequence numbers to their waiters.
	pings map[uint64]chan struct{}
	err   error
	// pauses is what the agent paused; whenever it changes, anyPause is
	// set to whether anything is paused.
	pauses iwire.PauseSet
	// resume is closed (and replaced) when any pause is lifted or the
	// connection ends.
	resume   chan struct{}
	health   agentv2.HealthState
	load     *agentv2.LoadMetrics
	healthAt time.Time
	rtt      time.Duration
	state    State
	// background counts goroutines started by goBackground still running.
	background int
}

var _ Conn = (*session)(nil)

// closeFlushTimeout bounds how long Close waits for queued frames.
const closeFlushTimeout = time.Second

func newSession(cfg *config, w wire) *session {
	bg, stop := context.WithCancel(context.Background())
	return &session{
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
	// The listener hears the first status before the dial returns, and
	// every later one from the reader, which pushes the last (closed)
	// status when it exits: one goroutine at a time, in order.
	s.pushStatus()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.readLoop()
		s.pushStatus()
	}()
	s.startLiveness()
	return nil
}

// pushStatus tells the status listener the current status.
func (s *session) pushStatus() {
	if f := s.cfg.onStatus; f != nil {
		f(s.Status())
	}
}

func (s *session) handshake(ctx context.Context) error {
	// If ctx ends while we wait, closing the wire unblocks recv.
	expired := context.AfterFunc(ctx, func() { _ = s.w.close() })
	defer expired()
	req := &agentv2.ProxyToAgent{Message: &agentv2.ProxyToAgent_Handshake{Handshake: &agentv2.HandshakeRequest{
		SupportedVersions:      s.cfg.versions,
		ProxyId:                s.cfg.proxyID,
		ProxyVersion:           s.cfg.proxyVersion,
		ConfigJson:             s.cfg.configJSON,
		SupportedEncodings:     []string{"protobuf"},
		HealthReportIntervalMs: uint32(s.cfg.healthInterval / time.Millisecond),
	}}}
	if err := s.w.send(ctx, req); err != nil {
		return handshakeErr(ctx, err)
	}
	var msg agentv2.AgentToProxy
	for {
		if err := s.w.recv(&msg); err != nil {
			if errors.Is(err, codec.ErrUnknownFrameType) {
				s.unknownFrames.Add(1)
				continue
			}
			return handshakeErr(ctx, err)
		}
		break
	}
	hs := msg.GetHandshake()
	if hs == nil {
		return agentwire.Errorf(agentwire.CodeInternal, "%w: expected a handshake response, got %v", ErrProtocol, msg.FrameType())
	}
	if !hs.GetSuccess() {
		return agentwire.Errorf(agentwire.CodeFailedPrecondition, "%w: %s", ErrHandshakeRejected, hs.GetError())
	}
	if !slices.Contains(s.cfg.versions, hs.GetProtocolVersion()) {
		return agentwire.Errorf(agentwire.CodeFailedPrecondition, "%w: agent chose version %d, offered %v",
			ErrIncompatibleVersion, hs.GetProtocolVersion(), s.cfg.versions)
	}
	if enc := hs.GetEncoding(); enc != "" && enc != "protobuf" {
		return agentwire.Errorf(agentwire.CodeFailedPrecondition, "%w: agent chose encoding %q", ErrIncompatibleVersion, enc)
	}
	s.caps = hs.GetCapabilities()
	if s.caps == nil {
		s.caps = &agentv2.AgentCapabilities{ProtocolVersion: hs.GetProtocolVersion()}
	}
	s.echo = s.caps.GetFeatures().GetEchoesEventId()
	if !s.echo {
		s.byCorr = make(map[string][]*call)
	}
	return nil
}

func handshakeErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return agentwire.NewError(agentwire.CodeDeadlineExceeded, fmt.Errorf("handshake: %w", ctx.Err()))
	}
	return agentwire.NewError(agentwire.CodeUnavailable, fmt.Errorf("handshake: %w", err))
}

// Send implements Conn.
func (s *session) Send(ctx context.Context, event *agentv2.ProxyToAgent) (*agentv2.AgentResponse, error) {
	corr, ok := CorrelationID(event)
	if !ok {
		return nil, agentwire.Errorf(agentwire.CodeInvalidArgument, "%w: %v", ErrNotEvent, event.FrameType())
	}
	c := callPool.Get().(*call)
	c.id = s.nextID.Add(1)
	c.corr = corr
	c.deadline = 0
	if d := s.cfg.callTimeout; d > 0 {
		// sweep enforces it; a context deadline that comes sooner ends
		// the call first.
		c.deadline = time.Since(s.base) + d
	}
	done := ctx.Done()
	event.EventId = c.id

	ordered := s.byCorr != nil
	if ordered {
		s.orderMu.Lock()
	}
	s.mu.Lock()
	if s.err != nil {
		err := s.err
		s.mu.Unlock()
		if ordered {
			s.orderMu.Unlock()
		}
		putCall(c)
		return nil, err
	}
	if ordered && s.unmatchable.has(corr) {
		s.mu.Unlock()
		s.orderMu.Unlock()
		putCall(c)
		return nil, unmatchableErr(corr)
	}
	s.pending.put(c)
	watched := done != nil && s.watchLocked(c, ctx, done)
	if ordered {
		s.byCorr[corr] = append(s.byCorr[corr], c)
	}
	if c.deadline != 0 && !s.sweepArmed {
		s.armSweepLocked(s.cfg.callTimeout)
	}
	// Alone in flight, the event goes out at once; with others in flight,
	// it shares the writer's next system call with them. Either way it
	// waits while the senders woken by a batch of responses are still
	// coming (see wire.holdBatch), to leave with their events.
	busy := s.pending.len() > 1
	s.mu.Unlock()

	var err error
	if busy {
		err = s.w.sendBatched(ctx, event)
	} else {
		err = s.w.send(ctx, event)
	}
	if ordered {
		s.orderMu.Unlock()
	}
	if err != nil {
		if !s.forget(c, false) {
			// The connection failed, or a response for the correlation
			// id matched c, concurrently.
			s.received(<-c.ch)
		}
		putCall(c)
		return nil, s.sendErr(err)
	}

	var res result
	if done == nil || watched {
		res = <-c.ch
	} else {
		select {
		case res = <-c.ch:
		case <-done:
			res = s.abandon(c, agentwire.WrapContextError(ctx.Err()))
		}
	}
	putCall(c)
	s.received(res)
	return res.resp, res.err
}

// received is called by a Send with each result it takes from its call:
// it releases the wire hold the reader took for it, if any.
func (s *session) received(res result) {
	if res.held {
		s.w.releaseBatch()
	}
}

// The call timeout is enforced by one timer per session, not one per
// call: pending calls are listed in send order, which is the order of
// their deadlines, so the timer only ever waits for the oldest. It is
// armed while calls are pending, and runs sweep on a goroutine of its own
// that the session waits for in Close.

// armSweepLocked arms the sweep timer to fire in d; s.mu is held and no
// sweep is armed.
func (s *session) armSweepLocked(d time.Duration) {
	s.sweepArmed = true
	s.wg.Add(1)
	if s.sweepTimer == nil {
		s.sweepTimer = time.AfterFunc(d, s.sweep)
	} else {
		s.sweepTimer.Reset(d)
	}
}

// sweep fails the calls whose deadline passed and re-arms the timer for
// the oldest one left.
func (s *session) sweep() {
	defer s.wg.Done()
	var (
		expired []*call
		overrun error
	)
	now := time.Since(s.base)
	s.mu.Lock()
	s.sweepArmed = false
	for c := s.pending.oldest; c != nil && c.deadline <= now; c = s.pending.oldest {
		if err := s.abandonLocked(c); err != nil {
			overrun = err
		}
		expired = append(expired, c)
	}
	if c := s.pending.oldest; c != nil && s.err == nil {
		s.armSweepLocked(c.deadline - now)
	}
	s.mu.Unlock()
	if overrun != nil {
		s.fail(overrun)
	}
	if len(expired) > 0 {
		err := agentwire.Errorf(agentwire.CodeDeadlineExceeded, "no decision within %v", s.cfg.callTimeout)
		for _, c := range expired {
			c.ch <- result{err: err}
		}
	}
}

// removeLocked takes c, answered or never sent, out of every table of
// pending calls; s.mu is held. A call whose caller gives up goes through
// abandonLocked instead.
func (s *session) removeLocked(c *call) {
	s.pending.remove(c)
	s.unqueueLocked(c)
	s.unwatchLocked(c)
}

// abandon gives up on c unless its result raced in.
func (s *session) abandon(c *call, err error) result {
	if s.forget(c, true) {
		return result{err: err}
	}
	return <-c.ch // Send releases its hold
}

// forget removes c from the tables, as abandoned (sent; the agent may still
// answer) or as never sent; false means someone else already did and will
// deliver (or has delivered) c's result.
func (s *session) forget(c *call, sent bool) bool {
	s.mu.Lock()
	if !s.pending.has(c) {
		s.mu.Unlock()
		return false
	}
	var overrun error
	if sent {
		overrun = s.abandonLocked(c)
	} else {
		s.removeLocked(c)
	}
	s.mu.Unlock()
	if overrun != nil {
		s.fail(overrun)
	}
	return true
}

func (s *session) unqueueLocked(c *call) {
	if s.byCorr == nil {
		return
	}
	q := s.byCorr[c.corr]
	if i := slices.Index(q, c); i >= 0 {
		q = slices.Delete(q, i, i+1)
	}
	if len(q) == 0 {
		delete(s.byCorr, c.corr)
	} else {
		s.byCorr[c.corr] = q
	}
}

func (s *session) sendErr(err error) error {
	var e *agentwire.Error
	if errors.As(err, &e) && e.Code() == agentwire.CodeUnavailable {
		s.mu.Lock()
		connErr := s.err
		s.mu.Unlock()
		if connErr != nil {
			return connErr
		}
	}
	return agentwire.WrapContextError(err)
}

// readLoop receives until the wire fails, dispatching every message.
func (s *session) readLoop() {
	msg := &agentv2.AgentToProxy{}
	// While frames are buffered, the reader holds the wire: the senders it
	// wakes send again right after, and their events should leave together
	// once the batch is dispatched.
	held := false
	defer func() {
		if held {
			s.w.releaseBatch()
		}
	}()
	for {
		if held && !s.w.buffered() {
			s.w.releaseBatch()
			held = false
		}
		if err := s.w.recv(msg); err != nil {
			if errors.Is(err, codec.ErrUnknownFrameType) {
				s.unknownFrames.Add(1)
				continue
			}
			if errors.Is(err, codec.ErrMalformed) || errors.Is(err, codec.ErrZeroLength) || errors.Is(err, codec.ErrFrameTooLarge) {
				s.fail(agentwire.NewError(agentwire.CodeInternal, fmt.Errorf("%w: %w", ErrProtocol, err)))
				return
			}
			s.fail(agentwire.NewError(agentwire.CodeUnavailable, fmt.Errorf("%w: %w", ErrPeerGone, err)))
			return
		}
		s.recvd.n.Add(1)
		if !held {
			s.w.holdBatch()
			held = true
		}
		if err := s.dispatch(msg); err != nil {
			s.fail(err)
			return
		}
	}
}

// maxBackground bounds the goroutines answering an agent's pings and
// config-update requests at once. Each may wait for room on a connection
// the agent does not read: without a bound, an agent flooding pings would
// make the proxy start one blocked goroutine per ping.
const maxBackground = 64

// goBackground runs f on a goroutine the session owns and waits for in
// Close. It drops f (what names it in the log) once maxBackground run.
func (s *session) goBackground(what string, f func(ctx context.Context)) {
	s.mu.Lock()
	if s.err != nil {
		s.mu.Unlock()
		return
	}
	if s.background >= maxBackground {
		s.mu.Unlock()
		if s.floodLogged.CompareAndSwap(false, true) {
			s.cfg.logger.LogAttrs(context.Background(), slog.LevelWarn,
				"agent sends pings or config updates faster than it reads the answers; dropping some",
				slog.String("agent_id", s.caps.GetAgentId()), slog.String("transport", s.w.name()), slog.String("dropped", what))
		}
		return
	}
	s.background++
	s.wg.Add(1)
	s.mu.Unlock()
	go func() {
		defer s.wg.Done()
		f(s.bg)
		s.mu.Lock()
		s.background--
		s.mu.Unlock()
	}()
}

// deliver hands a response to the call it answers (see matching.go), and
// fails the connection if the agent broke the matching rules.
func (s *session) deliver(id uint64, resp *agentv2.AgentResponse) {
	s.mu.Lock()
	c, v, err := s.matchLocked(id, resp.GetCorrelationId())
	s.mu.Unlock()
	switch v {
	case late:
		s.lateResponses.Add(1)
		return
	case duplicate:
		s.duplicateResponses.Add(1)
		return
	case violation:
		s.fail(err)
		return
	}
	// Hold the wire until the woken Send has its result: the callers a
	// batch of responses wakes often send again at once, and their events
	// then leave in one write.
	s.w.holdBatch()
	switch st := resp.GetError(); {
	case st != nil:
		c.ch <- result{err: agentwire.NewWireError(agentwire.Code(st.GetCode()), st.GetMessage()), held: true}
	case !decided(resp):
		c.ch <- result{err: noDecisionErr(c.id, c.corr), held: true}
	default:
		c.ch <- result{resp: resp, held: true}
	}
}

// statusLocked derives the state; s.mu must be held.
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

func (s *session) stateChangedLocked() (bool, Status) {
	st := s.statusLocked()
	changed := st.State != s.state
	s.state = st.State
	return changed, st
}

// Cancel implements Conn.
func (s *session) Cancel(ctx context.Context, correlationID string, reason agentv2.CancelReason) error {
	msg := &agentv2.ProxyToAgent{Message: &agentv2.ProxyToAgent_Cancel{Cancel: &agentv2.CancelRequest{
		CorrelationId: correlationID,
		Reason:        reason,
		TimestampMs:   uint64(s.cfg.now().UnixMilli()),
	}}}
	cerr := agentwire.Errorf(agentwire.CodeCanceled, "request cancelled: %s", reason)
	if s.byCorr != nil {
		return s.cancelOrdered(ctx, msg, correlationID, cerr)
	}
	// Fail the local waiters first: once the notice is out, the agent's
	// own (error) answers may race in, and the caller must see the cancel.
	s.failCancelled(correlationID, math.MaxUint64, cerr, true)
	err := s.w.send(ctx, msg)
	// A Send of the request that registered after that scan but was given
	// its event id before the notice was queued may have its event ahead
	// of the notice on the wire; the agent may drop it unanswered with the
	// request. Fail those too. Events with later ids follow the notice: the
	// agent takes them as new.
	s.failCancelled(correlationID, s.nextID.Load(), cerr, false)
	if err != nil {
		return s.sendErr(err)
	}
	return nil
}

// cancelOrdered is Cancel for agents that do not echo event ids: under
// orderMu the queue and the wire agree, so the events the notice cancels
// are exactly those queued now. Their answers may or may not come, so a
// request cancelled with answers outstanding is unmatchable from now on.
func (s *session) cancelOrdered(ctx context.Context, msg *agentv2.ProxyToAgent, corr string, cerr error) error {
	s.orderMu.Lock()
	s.mu.Lock()
	victims := s.cancelQueueLocked(corr)
	s.unpauseLocked(corr)
	s.mu.Unlock()
	for _, c := range victims {
		c.ch <- result{err: cerr}
	}
	err := s.w.send(ctx, msg)
	s.orderMu.Unlock()
	if err != nil {
		return s.sendErr(err)
	}
	return nil
}

// failCancelled fails, with err, the pending calls of correlationID (all
// calls for "") whose event id is at most maxID, and with unpause lifts the
// request's pauses. The agent may still answer them: their answers are
// counted as late.
func (s *session) failCancelled(correlationID string, maxID uint64, err error, unpause bool) {
	var victims []*call
	s.mu.Lock()
	for c := s.pending.oldest; c != nil; {
		next := c.next
		if (correlationID == "" || c.corr == correlationID) && c.id <= maxID {
			victims = append(victims, c)
			s.removeLocked(c)
			s.abandoned.add(c.id)
		}
		c = next
	}
	if unpause {
		s.unpauseLocked(correlationID)
	}
	s.mu.Unlock()
	for _, c := range victims {
		c.ch <- result{err: err}
	}
}

// unpauseLocked lifts the pauses of a cancelled request (all of them for
// ""); s.mu is held.
func (s *session) unpauseLocked(correlationID string) {
	s.pauses.Lift(correlationID)
	s.pausesChangedLocked()
}

// Notify implements Conn.
func (s *session) Notify(ctx context.Context, msg *agentv2.ProxyToAgent) error {
	if err := s.Err(); err != nil {
		return err
	}
	s.notified.Store(true)
	if err := s.w.send(ctx, msg); err != nil {
		return s.sendErr(err)
	}
	return nil
}

// Ping implements Conn.
func (s *session) Ping(ctx context.Context) (time.Duration, error) {
	seq := s.pingSeq.Add(1)
	ch := make(chan struct{})
	s.mu.Lock()
	if s.err != nil {
		err := s.err
		s.mu.Unlock()
		return 0, err
	}
	s.pings[seq] = ch
	s.mu.Unlock()
	start := time.Now()
	msg := &agentv2.ProxyToAgent{Message: &agentv2.ProxyToAgent_Ping{Ping: &agentv2.Ping{
		Sequence: seq, TimestampMs: uint64(s.cfg.now().UnixMilli()),
	}}}
	forget := func() {
		s.mu.Lock()
		delete(s.pings, seq)
		s.mu.Unlock()
	}
	if err := s.w.send(ctx, msg); err != nil {
		forget()
		return 0, s.sendErr(err)
	}
	select {
	case <-ch:
		rtt := time.Since(start)
		s.mu.Lock()
		err := s.err
		if err == nil {
			s.rtt = rtt
		}
		s.mu.Unlock()
		if err != nil {
			return 0, err
		}
		return rtt, nil
	case <-ctx.Done():
		forget()
		return 0, agentwire.WrapContextError(ctx.Err())
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

// Gathering reports whether the connection is gathering a batch of writes:
// it is delivering answers whose callers are about to send again, and an
// event sent now shares their system call (always false on gRPC and
// Connect). Not part of [Conn]: a balancer that prefers such connections
// asserts it once per connection.
func (s *session) Gathering() bool { return s.w.gathering() }

// Paused implements Conn.
func (s *session) Paused(correlationID string) bool {
	if !s.anyPause.Load() {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pauses.Paused(correlationID)
}

// pausesChangedLocked updates anyPause; s.mu is held.
func (s *session) pausesChangedLocked() {
	s.anyPause.Store(s.pauses.Any())
}

// WaitResume implements Conn.
func (s *session) WaitResume(ctx context.Context, correlationID string) error {
	for {
		s.mu.Lock()
		if s.err != nil {
			err := s.err
			s.mu.Unlock()
			return err
		}
		if !s.pauses.Paused(correlationID) {
			s.mu.Unlock()
			return nil
		}
		ch := s.resume
		s.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return agentwire.WrapContextError(ctx.Err())
		}
	}
}

// Done implements Conn.
func (s *session) Done() <-chan struct{} { return s.done }

// Err implements Conn.
func (s *session) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// fail ends the session once: every waiter gets err at once, the wire is
// closed, and background goroutines are told to stop.
func (s *session) fail(err error) {
	s.mu.Lock()
	if s.err != nil {
		s.mu.Unlock()
		return
	}
	s.err = err
	// Done closes with err set, before the pending calls hear of it: a
	// caller whose call failed finds the connection done, and a pool does
	// not route its next event here.
	close(s.done)
	victims := s.pending.clear()
	s.dropWatchesLocked()
	if s.sweepArmed && s.sweepTimer.Stop() {
		// A sweep that has started finds s.err set and does not re-arm.
		s.sweepArmed = false
		s.wg.Done()
	}
	if s.byCorr != nil {
		clear(s.byCorr)
		s.placeholders = 0
	}
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
		c.ch <- result{err: err}
	}
	s.stop()
	// Closing the wire ends the reader, which tells the status listener.
	_ = s.w.close()
}

// Close implements Conn.
func (s *session) Close(ctx context.Context) error {
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
	waited := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(waited)
	}()
	select {
	case <-waited:
		return nil
	case <-ctx.Done():
		return agentwire.WrapContextError(ctx.Err())
	}
}
