package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"reflect"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/codec"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
	"github.com/agentwire/agentwire/internal/wire"
)

// errHalfClosed: the proxy closed its sending side. The session answers the
// events it has and then ends.
var errHalfClosed = errors.New("agent: proxy closed its side of the stream")

// errConnClosed: the connection was closed, by the peer or the server.
var errConnClosed = errors.New("agent: connection closed")

// errProtocol marks errors caused by a peer breaking the protocol.
var errProtocol = errors.New("agent: protocol violation")

func protocolError(format string, args ...any) error {
	return agentwire.NewError(agentwire.CodeInternal, fmt.Errorf("%w: "+format, append([]any{errProtocol}, args...)...))
}

// serve runs one connection: handshake, then the session until the
// connection ends. It returns nil when the connection ended normally (the
// peer closed it, or the server did) and the reason otherwise, which it
// logs.
func (srv *Server) serve(ctx context.Context, st stream) (err error) {
	defer func() {
		if err != nil {
			srv.cfg.logger.Warn("agent: connection closed", "error", err)
		}
	}()
	return srv.serveStream(ctx, st)
}

func (srv *Server) serveStream(ctx context.Context, st stream) error {
	timer := time.AfterFunc(srv.cfg.handshakeTimeout, st.Abort)
	first, err := st.Recv()
	if !timer.Stop() {
		return agentwire.Errorf(agentwire.CodeDeadlineExceeded, "agent: no handshake within %v", srv.cfg.handshakeTimeout)
	}
	if err != nil {
		if endedNormally(err) {
			return nil
		}
		if errors.Is(err, codec.ErrUnknownFrameType) {
			return protocolError("first frame is not a handshake: %w", err)
		}
		return err
	}
	hs := first.GetHandshake()
	if hs == nil {
		return protocolError("first message is %T, not a handshake", first.GetMessage())
	}
	interval := srv.cfg.healthInterval
	if ms := hs.GetHealthReportIntervalMs(); ms > 0 {
		interval = time.Duration(ms) * time.Millisecond
	}
	resp, rejected := srv.handshakeResponse(hs, interval)
	if err := st.Send(ctx, &agentv2.AgentToProxy{Message: &agentv2.AgentToProxy_Handshake{Handshake: resp}}); err != nil {
		return err
	}
	if rejected != nil {
		return rejected
	}
	s := newSession(ctx, srv, st, hs, interval)
	if !srv.addSession(s) {
		s.end(agentwire.Errorf(agentwire.CodeUnavailable, "agent: server closed"))
		return nil
	}
	defer srv.removeSession(s)
	return s.run()
}

// endedNormally tells a connection that ended (closed by either side) from
// one that broke.
func endedNormally(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || errors.Is(err, errConnClosed) ||
		errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, context.Canceled) ||
		errors.Is(err, wire.ErrWriterClosed)
}

// Capabilities returns what the agent declares in its handshake (with the
// default health interval), for example for a RegistrationRequest. The
// result is the caller's.
func (srv *Server) Capabilities() *agentv2.AgentCapabilities {
	return srv.capabilities(srv.cfg.healthInterval)
}

func (srv *Server) capabilities(interval time.Duration) *agentv2.AgentCapabilities {
	cfg := &srv.cfg
	return &agentv2.AgentCapabilities{
		ProtocolVersion: ProtocolVersion,
		AgentId:         cfg.agentID,
		Name:            cfg.name,
		Version:         cfg.version,
		SupportedEvents: slices.Clone(cfg.events),
		Features: &agentv2.AgentFeatures{
			StreamingBody:      slices.Contains(cfg.events, agentv2.EventType_EVENT_TYPE_REQUEST_BODY_CHUNK) || slices.Contains(cfg.events, agentv2.EventType_EVENT_TYPE_RESPONSE_BODY_CHUNK),
			Websocket:          slices.Contains(cfg.events, agentv2.EventType_EVENT_TYPE_WEBSOCKET_FRAME),
			Guardrails:         slices.Contains(cfg.events, agentv2.EventType_EVENT_TYPE_GUARDRAIL_INSPECT),
			ConfigPush:         slices.Contains(cfg.events, agentv2.EventType_EVENT_TYPE_CONFIGURE),
			MetricsExport:      srv.metrics != nil,
			ConcurrentRequests: uint32(cfg.maxConcurrency),
			Cancellation:       true,
			FlowControl:        true,
			HealthReporting:    true,
			EchoesEventId:      true,
		},
		Limits: &agentv2.AgentLimits{
			MaxBodySize:    uint64(cfg.maxFrameSize),
			MaxConcurrency: uint32(cfg.maxConcurrency),
		},
		HealthConfig: &agentv2.HealthConfig{
			ReportIntervalMs:   uint32(interval.Milliseconds()),
			IncludeLoadMetrics: true,
		},
	}
}

// handshakeResponse answers a handshake; rejected is non-nil when the agent
// cannot serve the proxy.
func (srv *Server) handshakeResponse(hs *agentv2.HandshakeRequest, interval time.Duration) (resp *agentv2.HandshakeResponse, rejected error) {
	caps := srv.capabilities(interval)
	resp = &agentv2.HandshakeResponse{ProtocolVersion: ProtocolVersion, Capabilities: caps, Success: true, Encoding: "protobuf"}
	var problem string
	switch {
	case !slices.Contains(hs.GetSupportedVersions(), ProtocolVersion):
		problem = fmt.Sprintf("unsupported protocol versions %v: this agent speaks version %d", hs.GetSupportedVersions(), ProtocolVersion)
	case len(hs.GetSupportedEncodings()) > 0 && !slices.Contains(hs.GetSupportedEncodings(), "protobuf"):
		problem = fmt.Sprintf("unsupported encodings %q: this agent speaks \"protobuf\"", hs.GetSupportedEncodings())
	default:
		return resp, nil
	}
	resp.Success = false
	resp.Error = &problem
	return resp, agentwire.Errorf(agentwire.CodeUnimplemented, "agent: handshake rejected: %s", problem)
}

// session is one handshaken connection: it reads messages, runs events on
// workers and sends what the agent has to say. Its methods are safe for
// concurrent use.
type session struct {
	srv      *Server
	st       stream
	hs       *agentv2.HandshakeRequest
	log      *slog.Logger
	peer     *Peer
	interval time.Duration
	// ctx carries the peer and is cancelled, with a cause, when the session
	// ends.
	ctx    context.Context
	cancel context.CancelCauseFunc
	// laneParent is ctx without its cancellation: lane contexts derive from
	// it, so creating and ending one never touches ctx's list of children.
	// end cancels the lanes itself.
	laneParent context.Context
	// limit is the concurrency limit; refuse beyond maxPending.
	limit, maxPending int
	// flow says when to pause the connection, by events pending, and
	// laneFlow when to pause one request, by its queued events.
	flow, laneFlow wire.Hysteresis
	// maxIdle bounds parked workers; more exit instead of waiting for work.
	maxIdle int
	// budget is how long a handler may run on the reading goroutine (0:
	// events always go to workers); the server's inlineWatch enforces it.
	budget time.Duration
	// inlineSeq is odd while the reader runs an event itself, and grows by
	// two per such event; written under mu, read by the watch without it.
	inlineSeq atomic.Uint64
	// watchSeen is inlineSeq at the watch's last look (the watch's own).
	watchSeen uint64
	// readDone carries the read loop's final error to run once reading has
	// moved to another goroutine.
	readDone chan error
	// lender is the stream when its events borrow its read buffer
	// (WithBorrowedEvents), else nil.
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
	// the one the reader runs itself (inlineLane) until a takeover.
	lanes map[string]*lane
	// ready[readyHead:] is the FIFO of lanes with events and no worker.
	ready     []*lane
	readyHead int
	// readerID names the goroutine reading the connection now; a takeover
	// moves reading to a new goroutine with the next id.
	readerID uint64
	// inlineLane is the lane the reader is running itself, if any.
	inlineLane *lane
	// cooldown counts events still to hand to workers after handlers were
	// too slow to run inline; backoff is the next cooldown, doubled each
	// time inline handling fails again and reset when it works.
	cooldown, backoff int
	// strikes counts inline events in a row that outlived the budget
	// without being taken over.
	strikes int
	// takeovers and inlined count for tests and profiles.
	takeovers, inlined int
	// pending counts events accepted and not yet answered; running those
	// inside a handler call.
	pending, running int
	// workers is the number of worker goroutines; idle the number parked
	// and not yet woken.
	workers, idle int
	wantPause     bool
	draining      bool
	ended         bool
	idleWaiters   []chan struct{}
	configWaiters map[string]chan *agentv2.ConfigUpdateResponse
	configSeq     uint64

	flowMu sync.Mutex // flowMu serialises flow-control sends and guards sentPause
	// sentPause is the last flow-control state sent.
	sentPause bool
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

// stopReading ends the session once its read loop failed with err, after
// answering what is pending if the proxy only half-closed. Whichever
// goroutine reads last calls it (a takeover may have left run's goroutine
// inside a handler that waits for the session's end). It returns the error
// worth reporting: nil for a normal end.
func (s *session) stopReading(err error) error {
	if errors.Is(err, errHalfClosed) {
		s.waitIdle(s.ctx)
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
	for _, ch := range s.idleWaiters {
		close(ch)
	}
	s.idleWaiters = nil
	s.mu.Unlock()
	s.cancel(cause)
}

// readLoop reads and acts on messages until the connection fails, which
// it returns, or a takeover (over) made another goroutine the reader.
// Events run on this goroutine while handlers are quick (see submit).
func (s *session) readLoop(id uint64) (err error, over bool) {
	bs, _ := s.st.(burstStream)
	held := false // answers wait for a ReleaseHeld
	for {
		if held && !bs.InputBuffered() {
			// The burst is over: send its answers before waiting.
			_ = bs.ReleaseHeld()
			held = false
		}
		m, err := s.st.Recv()
		if err != nil {
			if errors.Is(err, codec.ErrUnknownFrameType) {
				s.stats.unknown.Add(1)
				continue
			}
			if held {
				_ = bs.ReleaseHeld()
			}
			return err, false
		}
		cid, ok := m.EventCorrelationID()
		if !ok {
			if err := s.dispatch(m); err != nil {
				return err, false
			}
			continue
		}
		l := s.submit(cid, m)
		if l == nil {
			continue
		}
		if bs != nil {
			held = true
		}
		if !s.runInline(id, l, m, bs) {
			return nil, true
		}
	}
}

// runInline handles event m of lane l on the reading goroutine id, under
// the server's inline watch. It reports whether this goroutine is still
// the reader; if not, the event's lane is left to the workers and held
// answers are released.
func (s *session) runInline(id uint64, l *lane, m *agentv2.ProxyToAgent, bs burstStream) bool {
	d := s.handle(l, m, bs)
	s.mu.Lock()
	reader := s.readerID == id
	if reader {
		s.inlineLane = nil
		s.inlineSeq.Add(1)
	}
	switch {
	case !reader:
		// takeover started the cooldown.
	case d > s.budget:
		// Slow handlers would hold up the events behind them: use workers
		// for a while, and have the watch look closely. One slow event
		// alone may be the reading thread losing its processor on a busy
		// machine (then workers would only add hand-offs); a second in a
		// row is the handler.
		if s.strikes++; s.strikes >= slowStrikes {
			s.strikes = 0
			s.slowLocked()
			s.srv.watch.alert()
		}
	default:
		s.backoff, s.strikes = 0, 0
	}
	s.inlined++
	s.running--
	s.finishLocked(l)
	if !l.empty() && !s.ended {
		// Events of this request arrived through the new reader: the
		// lane goes to the workers.
		s.readyLaneLocked(l)
	} else if l.empty() {
		if !reader {
			delete(s.lanes, l.cid) // joined at the takeover
		}
		l.finish()
	}
	s.mu.Unlock()
	if !reader && bs != nil {
		_ = bs.ReleaseHeld()
	}
	return reader
}

// Inline cooldowns: after an inline handler was slow, events go to workers
// for minCooldown events, then twice as many after each further slow
// attempt, up to maxCooldown. A spurious takeover (the reading thread lost
// its processor for a while) costs little; a consistently slow handler
// tries inline once in maxCooldown events.
const (
	minCooldown = 64
	maxCooldown = 1 << 16
	// slowStrikes is how many inline events in a row must outlive the
	// budget to start a cooldown (a takeover starts one at once).
	slowStrikes = 2
)

// slowLocked starts a cooldown after a slow inline event.
func (s *session) slowLocked() {
	s.backoff = min(max(2*s.backoff, minCooldown), maxCooldown)
	s.cooldown = s.backoff
}

// takeover runs when the inline event seq outlived the budget: a new
// goroutine becomes the reader, so the connection's other events are not
// held up; the old one finishes its event and leaves.
func (s *session) takeover(seq uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended || s.inlineLane == nil || s.inlineSeq.Load() != seq {
		return
	}
	s.lanes[s.inlineLane.cid] = s.inlineLane // the new reader may get its events
	s.inlineLane = nil
	s.inlineSeq.Add(1)
	s.readerID++
	s.takeovers++
	s.slowLocked()
	s.srv.watch.alert()
	id := s.readerID
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if s.lender != nil {
			// The old reader's handler still reads its event from the
			// old buffers.
			s.lender.renew()
		}
		if err, over := s.readLoop(id); !over {
			s.readDone <- s.stopReading(err)
		}
	}()
}

// submit queues an event on its correlation id's lane and makes sure a
// worker will run it, or refuses it when too many events are pending. It
// returns the event's new lane instead when the reader is to run it itself:
// inline handling is on, handlers have been quick, no earlier event of the
// request is pending and no lane waits for a worker.
func (s *session) submit(cid string, m *agentv2.ProxyToAgent) *lane {
	s.mu.Lock()
	if s.pending >= s.maxPending {
		s.mu.Unlock()
		s.refuse(cid, m, agentwire.Errorf(agentwire.CodeResourceExhausted,
			"agent: %d events pending on this connection, the limit is %d", s.maxPending, s.maxPending))
		return nil
	}
	l := s.lanes[cid]
	quiet := s.budget > 0 && s.inlineLane == nil && s.readyHead == len(s.ready) && s.flow.Next(s.wantPause, s.pending+1) == s.wantPause
	inline := l == nil && quiet && s.cooldown == 0
	if !inline && s.lender != nil {
		// The reader reads on: a queued event must not borrow its buffer.
		owned, err := s.lender.own(m)
		if err != nil {
			s.mu.Unlock()
			s.refuse(cid, m, agentwire.Errorf(agentwire.CodeInternal, "agent: copying a queued event: %w", err))
			return nil
		}
		m = owned
	}
	s.pending++
	flip := s.flowLocked()
	if l == nil {
		l = newLane(s.laneParent, cid)
		if inline {
			// Only the reader could look the lane up, and it is busy with
			// it: the lane joins lanes only if a takeover makes another
			// goroutine the reader.
			s.inlineLane = l
			s.inlineSeq.Add(1)
			s.running++
			s.mu.Unlock()
			s.srv.watch.active()
			return l
		}
		s.lanes[l.cid] = l // cid may borrow the read buffer; l.cid does not
		if quiet {
			s.cooldown--
		}
		s.readyLaneLocked(l)
	}
	l.push(m)
	laneFlip := s.laneFlowLocked(l)
	s.mu.Unlock()
	if flip {
		s.updateFlow(nil)
	}
	if laneFlip {
		s.updateFlow(l)
	}
	return nil
}

// refuse answers event m with err instead of handling it.
func (s *session) refuse(cid string, m *agentv2.ProxyToAgent, err error) {
	s.stats.rejected.Add(1)
	s.reply(m.EventId, cid, nil, err, nil)
	s.st.Release(m)
}

// readyLaneLocked queues lane l for a worker and wakes or starts one.
func (s *session) readyLaneLocked(l *lane) {
	s.ready = append(s.ready, l)
	switch {
	case s.idle > 0:
		s.idle--
		s.work.Signal()
	case s.workers < s.limit:
		s.workers++
		s.wg.Add(1)
		go s.worker()
	}
}

// worker runs ready lanes until the session ends, parking when there is
// nothing to do (or exiting when enough workers are parked already).
func (s *session) worker() {
	defer s.wg.Done()
	s.mu.Lock()
	defer s.mu.Unlock()
	for {
		l := s.nextLaneLocked()
		if l == nil {
			s.workers--
			return
		}
		for !s.ended {
			m := l.pop()
			s.running++
			s.mu.Unlock()
			s.handle(l, m, nil)
			s.mu.Lock()
			s.running--
			s.finishLocked(l)
			if l.empty() {
				delete(s.lanes, l.cid)
				l.finish()
				break
			}
		}
	}
}

// finishLocked does the accounting of an answered event of lane l: the
// pending count, idle waiters, flow control. It may release s.mu for a
// while.
func (s *session) finishLocked(l *lane) {
	s.pending--
	if s.pending == 0 {
		for _, ch := range s.idleWaiters {
			close(ch)
		}
		s.idleWaiters = nil
	}
	flip, laneFlip := s.flowLocked(), s.laneFlowLocked(l)
	if flip || laneFlip {
		s.mu.Unlock()
		if laneFlip {
			s.updateFlow(l)
		}
		if flip {
			s.updateFlow(nil)
		}
		s.mu.Lock()
	}
}

func (s *session) nextLaneLocked() *lane {
	for !s.ended {
		if s.readyHead < len(s.ready) {
			l := s.ready[s.readyHead]
			s.ready[s.readyHead] = nil
			s.readyHead++
			if s.readyHead == len(s.ready) {
				s.ready, s.readyHead = s.ready[:0], 0
			}
			return l
		}
		if s.idle >= s.maxIdle {
			return nil
		}
		s.idle++
		s.work.Wait()
	}
	return nil
}

// flowLocked updates wantPause from pending and reports whether it changed.
func (s *session) flowLocked() bool {
	was := s.wantPause
	s.wantPause = s.flow.Next(was, s.pending)
	return was != s.wantPause
}

// laneFlowLocked updates a request's wantPause from its queued events and
// reports whether it changed.
func (s *session) laneFlowLocked(l *lane) bool {
	was := l.wantPause
	l.wantPause = s.laneFlow.Next(was, len(l.q)-l.head)
	return was != l.wantPause
}

// updateFlow sends PAUSE or RESUME, for the connection (l == nil) or one
// request, when the wanted state differs from the last one sent. Sends are
// serialised, so the proxy sees them in order and the last one matches the
// latest state.
func (s *session) updateFlow(l *lane) {
	s.flowMu.Lock()
	defer s.flowMu.Unlock()
	want, sent := &s.wantPause, &s.sentPause
	var cid *string
	if l != nil {
		want, sent, cid = &l.wantPause, &l.sentPause, &l.cid
	}
	s.mu.Lock()
	w := *want
	s.mu.Unlock()
	if w == *sent {
		return
	}
	*sent = w
	_ = s.send(wire.FlowSignal(cid, w, s.srv.nowMs()))
}

// handle runs one event and answers it. The answer is encoded before
// reply returns, and the handler contract forbids keeping the event, so the
// event's structs go back to the pool (its strings and bytes live in their
// own buffer, which the garbage collector frees once nothing uses it).
//
// A reader running the event itself passes its burst stream: the answer
// then waits for the reader's ReleaseHeld. handle returns how long the
// handler ran.
func (s *session) handle(l *lane, m *agentv2.ProxyToAgent, held burstStream) time.Duration {
	defer s.st.Release(m)
	if l.Err() != nil {
		// Cancelled while queued: the proxy no longer waits for it.
		err := context.Cause(l)
		if agentwire.CodeOf(err) == agentwire.CodeDeadlineExceeded {
			s.stats.timedOut.Add(1)
		}
		s.reply(m.EventId, l.cid, nil, err, held)
		return 0
	}
	start := time.Since(s.srv.epoch)
	resp, err := s.srv.call(l, m)
	d := time.Since(s.srv.epoch) - start
	s.stats.record(d)
	if err != nil && agentwire.CodeOf(err) == agentwire.CodeDeadlineExceeded {
		s.stats.timedOut.Add(1)
	}
	s.reply(m.EventId, l.cid, resp, err, held)
	return d
}

// reply sends the answer to event id: at once when it is the only event
// pending, batched with the answers right behind it otherwise.
func (s *session) reply(id uint64, cid string, resp *agentv2.AgentResponse, err error, held burstStream) {
	// Every stream encodes the answer before its send returns: the
	// envelope goes back to the pool right after.
	r := replyPool.Get().(*replyEnvelope)
	defer r.release()
	m := r.fill(id, cid, resp, err)
	if held != nil {
		_ = held.SendHeld(s.ctx, m)
		return
	}
	if bs, ok := s.st.(batchSender); ok {
		s.mu.Lock()
		busy := s.pending > 1
		s.mu.Unlock()
		if busy {
			_ = bs.SendBatched(s.ctx, m)
			return
		}
	}
	_ = s.send(m)
}

// replyEnvelope holds a response envelope, its oneof wrapper and the
// response (the handler's, copied, or the SDK's for nil responses and
// errors), in one allocation.
type replyEnvelope struct {
	env  agentv2.AgentToProxy
	wrap agentv2.AgentToProxy_Response
	resp agentv2.AgentResponse
}

var replyPool = sync.Pool{New: func() any { return new(replyEnvelope) }}

// release clears r (dropping the handler's response) and pools it.
func (r *replyEnvelope) release() {
	*r = replyEnvelope{}
	replyPool.Put(r)
}

// newReply builds the answer to an event in an envelope of its own.
func newReply(id uint64, cid string, resp *agentv2.AgentResponse, err error) *agentv2.AgentToProxy {
	return new(replyEnvelope).fill(id, cid, resp, err)
}

// fill builds the answer to an event, filling in what the SDK owns: the
// event id, the correlation id, allow for a nil response, the error status.
func (r *replyEnvelope) fill(id uint64, cid string, resp *agentv2.AgentResponse, err error) *agentv2.AgentToProxy {
	switch {
	case err != nil:
		r.resp.Error = statusOf(err)
	case resp == nil:
		r.resp.Decision = allowDecision
	default:
		// A shallow copy, so that the handler's answer is never written
		// to: a handler may answer many events with one constant answer.
		// (Assignment would copy the message's no-copy marker.)
		reflect.ValueOf(&r.resp).Elem().Set(reflect.ValueOf(resp).Elem())
	}
	r.resp.CorrelationId = cid
	r.wrap.Response = &r.resp
	r.env.EventId = id
	r.env.Message = &r.wrap
	return &r.env
}

// allowDecision is the decision of nil responses, shared: nothing changes it.
var allowDecision = &agentv2.AgentResponse_Allow{Allow: &agentv2.AllowDecision{}}

// statusOf converts a handler error into the Status sent to the proxy.
func statusOf(err error) *agentv2.Status {
	msg := err.Error()
	if e := (*agentwire.Error)(nil); errors.As(err, &e) && e.Message() != "" {
		msg = e.Message()
	}
	return &agentv2.Status{Code: uint32(agentwire.CodeOf(err)), Message: msg}
}

// call runs event m through the interceptors and the handler.
func (srv *Server) call(ctx context.Context, m *agentv2.ProxyToAgent) (*agentv2.AgentResponse, error) {
	return srv.invoke(ctx, m)
}

// callHandler runs the handler method for event m, turning a panic into an
// internal error.
func (srv *Server) callHandler(ctx context.Context, m *agentv2.ProxyToAgent) (resp *agentv2.AgentResponse, err error) {
	defer func() {
		if r := recover(); r != nil {
			srv.cfg.logger.Error("agent: handler panicked", "panic", r, "event_id", m.EventId)
			resp, err = nil, agentwire.Errorf(agentwire.CodeInternal, "agent: handler panicked: %v", r)
		}
	}()
	resp, ok, err := agentv2.DispatchEvent(ctx, srv.events, m)
	if ok {
		return resp, err
	}
	return nil, agentwire.Errorf(agentwire.CodeInvalidArgument, "agent: %T is not an event", m.Message)
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

// send sends m, giving up when the session ends.
func (s *session) send(m *agentv2.AgentToProxy) error {
	return s.st.Send(s.ctx, m)
}

// healthLoop sends a health report (and metrics) right away and then every
// interval until the session ends.
func (s *session) healthLoop() {
	defer s.wg.Done()
	t := time.NewTicker(s.interval)
	defer t.Stop()
	for {
		if s.sendHealth() != nil {
			return
		}
		if s.sendMetrics() != nil {
			return
		}
		select {
		case <-t.C:
		case <-s.kick:
		case <-s.ctx.Done():
			return
		}
	}
}

// reportNow makes the health loop send a report without waiting for the
// interval, for example after a drain.
func (s *session) reportNow() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

func (s *session) sendHealth() error {
	return s.send(&agentv2.AgentToProxy{Message: &agentv2.AgentToProxy_Health{Health: s.health()}})
}

// health builds the session's health report.
func (s *session) health() *agentv2.HealthStatus {
	state := agentv2.HealthState_HEALTH_STATE_HEALTHY
	if s.srv.healthReporter != nil {
		if st := s.srv.healthReporter.Health(s.ctx); st != agentv2.HealthState_HEALTH_STATE_UNSPECIFIED {
			state = st
		}
	}
	s.mu.Lock()
	draining := s.draining
	load := &agentv2.LoadMetrics{InFlight: uint32(s.running), QueueDepth: uint32(s.pending - s.running)}
	s.mu.Unlock()
	if draining || s.srv.draining() {
		state = agentv2.HealthState_HEALTH_STATE_DRAINING
	}
	s.stats.load(load)
	return &agentv2.HealthStatus{
		AgentId:     s.srv.cfg.agentID,
		State:       state,
		Load:        load,
		TimestampMs: s.srv.nowMs(),
	}
}

func (s *session) sendMetrics() error {
	if s.srv.metrics == nil {
		return nil
	}
	r := s.srv.metrics.Metrics(s.ctx)
	if r == nil {
		return nil
	}
	if r.AgentId == "" {
		r.AgentId = s.srv.cfg.agentID
	}
	if r.TimestampMs == 0 {
		r.TimestampMs = s.srv.nowMs()
	}
	if r.IntervalMs == 0 {
		r.IntervalMs = uint64(s.interval.Milliseconds())
	}
	return s.send(&agentv2.AgentToProxy{Message: &agentv2.AgentToProxy_Metrics{Metrics: r}})
}

// requestConfigUpdate sends req and waits for the proxy's answer.
func (s *session) requestConfigUpdate(ctx context.Context, req *agentv2.ConfigUpdateRequest) (*agentv2.ConfigUpdateResponse, error) {
	ch := make(chan *agentv2.ConfigUpdateResponse, 1)
	s.mu.Lock()
	if s.ended {
		s.mu.Unlock()
		return nil, agentwire.Errorf(agentwire.CodeUnavailable, "agent: connection closed")
	}
	if req.RequestId == "" {
		s.configSeq++
		req.RequestId = "agent-" + strconv.FormatUint(s.configSeq, 10)
	}
	id := req.RequestId
	if _, dup := s.configWaiters[id]; dup {
		s.mu.Unlock()
		return nil, agentwire.Errorf(agentwire.CodeAlreadyExists, "agent: config update %q is already waiting", id)
	}
	s.configWaiters[id] = ch
	s.mu.Unlock()
	forget := func() {
		s.mu.Lock()
		if s.configWaiters[id] == ch {
			delete(s.configWaiters, id)
		}
		s.mu.Unlock()
	}
	if req.TimestampMs == 0 {
		req.TimestampMs = s.srv.nowMs()
	}
	if err := s.st.Send(ctx, &agentv2.AgentToProxy{Message: &agentv2.AgentToProxy_ConfigUpdate{ConfigUpdate: req}}); err != nil {
		forget()
		return nil, err
	}
	select {
	case resp := <-ch:
		return resp, nil
	case <-ctx.Done():
		forget()
		return nil, agentwire.WrapContextError(ctx.Err())
	case <-s.ctx.Done():
		forget()
		return nil, agentwire.Errorf(agentwire.CodeUnavailable, "agent: connection closed before the proxy answered")
	}
}
