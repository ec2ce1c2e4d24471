package pool

import (
	"context"
	"errors"
	"time"

	"github.com/agentwire/agentwire"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
	"github.com/agentwire/agentwire/pool/balancer"
	"github.com/agentwire/agentwire/pool/breaker"
	"github.com/agentwire/agentwire/pool/internal/affinity"
	"github.com/agentwire/agentwire/transport"
)

// FlowControlMode says what the pool does with an event whose connection
// the agent has paused.
type FlowControlMode int

const (
	// FailClosed fails the event with ResourceExhausted ([ErrPaused]).
	FailClosed FlowControlMode = iota
	// FailOpen answers allow without asking the agent, and counts it. When
	// it happens to a request's headers, the rest of that request skips the
	// agent too.
	FailOpen
	// WaitAndRetry waits for the agent's resume signal up to the
	// flow-control wait, then fails like FailClosed.
	WaitAndRetry
)

func (m FlowControlMode) String() string {
	switch m {
	case FailClosed:
		return "fail_closed"
	case FailOpen:
		return "fail_open"
	case WaitAndRetry:
		return "wait_and_retry"
	}
	return "unknown"
}

// Send sends one event to agent agentID and returns its decision. Every
// event kind goes through the same pipeline:
//
//  1. route: request headers are balanced over the agent's ready
//     connections (behind its circuit breaker) and pin their connection for
//     the request's correlation id; the request's other events follow the
//     pin. Events with no pin are balanced. If the pinned connection is gone
//     the event fails with FailedPrecondition ([ErrAffinityLost]).
//  2. flow control, if the agent paused the connection ([FlowControlMode]);
//  3. the connection's concurrency limit ([WithMaxConcurrency]), taken
//     with the route unless the connection is paused;
//  4. send, and wait for the decision;
//  5. accounting: counters, latency, health and breaker, exactly once.
//
// The pin ends with request_complete (as it is routed: a Cancel then finds
// no open request), a block, redirect or challenge, an
// answer without a decision ([transport.ErrNoDecision]), [Pool.Cancel], or
// its idle TTL. An event that reached a connection is never sent again;
// only a pick whose connection went away before sending is picked again
// (interceptors may send it again elsewhere: see [Reroute]).
// Errors are *agentwire.Error; the agent's own satisfy
// agentwire.IsWireError.
func (p *Pool) Send(ctx context.Context, agentID string, event *agentv2.ProxyToAgent) (*agentv2.AgentResponse, error) {
	return p.sendTo(ctx, agentID, "", event)
}

// sendTo is Send and SendSession: through the interceptors, if any.
func (p *Pool) sendTo(ctx context.Context, agentID, session string, ev *agentv2.ProxyToAgent) (*agentv2.AgentResponse, error) {
	if p.send != nil {
		return p.intercept(ctx, agentID, session, ev)
	}
	a, err := p.agentFor(agentID)
	if err != nil {
		return nil, err
	}
	return a.send(ctx, route{session: session}, ev)
}

func (p *Pool) agentFor(id string) (*agent, error) {
	if p.state.Load() == poolClosed {
		return nil, p.closedErr()
	}
	a := p.lookup(id)
	if a == nil {
		return nil, unknownAgent(id)
	}
	return a, nil
}

// SendSession is [Pool.Send] within a sticky session (a websocket, an SSE
// stream, a long poll): events that need a new connection go to the one
// bound to sessionID while it can take requests, and bind it otherwise.
// Sessions expire when idle ([WithStickySessions]); end one with
// [Pool.EndSession].
func (p *Pool) SendSession(ctx context.Context, agentID, sessionID string, event *agentv2.ProxyToAgent) (*agentv2.AgentResponse, error) {
	return p.sendTo(ctx, agentID, sessionID, event)
}

// EndSession forgets a sticky session; it reports whether it existed.
func (p *Pool) EndSession(agentID, sessionID string) bool {
	a := p.lookup(agentID)
	if a == nil {
		return false
	}
	_, ok := a.sticky.Del(a.sticky.Key(sessionID))
	return ok
}

// Cancel tells the connection holding request req.CorrelationId of agent
// agentID to abandon it (see [transport.Conn.Cancel]), fails the calls
// waiting on it with Canceled, and ends its pin. It fails with NotFound
// ([ErrUnknownRequest]) if the agent has no such open request.
func (p *Pool) Cancel(ctx context.Context, agentID string, req *agentv2.CancelRequest) error {
	a := p.lookup(agentID)
	if a == nil {
		return unknownAgent(agentID)
	}
	corr := req.GetCorrelationId()
	if corr == "" {
		return agentwire.Errorf(agentwire.CodeInvalidArgument, "pool: Cancel needs a correlation id (CancelAll cancels every request)")
	}
	e, ok := a.aff.Del(a.aff.Key(corr))
	if !ok {
		return agentwire.Errorf(agentwire.CodeNotFound, "%w: %q on agent %q", ErrUnknownRequest, corr, a.id)
	}
	if e.Skip || e.Lost || e.Conn.gone() {
		return nil
	}
	return e.Conn.conn.Cancel(ctx, req)
}

// route says where an event must go beyond the default.
type route struct {
	session string   // sticky session id
	conn    *SubConn // a fixed connection (config push)
	call    *Call    // the interceptors' view, filled in at the end
}

// send is the request pipeline.
func (a *agent) send(ctx context.Context, rt route, ev *agentv2.ProxyToAgent) (*agentv2.AgentResponse, error) {
	corr, ok := ev.EventCorrelationID()
	if !ok {
		return nil, agentwire.Errorf(agentwire.CodeInvalidArgument, "%w: %v", transport.ErrNotEvent, ev.FrameType())
	}
	kind := ev.EventType()
	x := exchange{a: a, ctx: ctx, kind: kind, call: rt.call}
	if corr != "" {
		x.key = a.aff.Key(corr)
	}
	if c := rt.call; c != nil {
		c.AffinityMiss, c.Pause = false, nil
		x.timed, x.reroute = a.p.timed, c.Reroute
	}
	// At most one clock reading per event, and none for most: reading the
	// clock costs more than the pipeline. A request's later events mark
	// its pin used without one (affinity.Table.Use); pins, sticky
	// sessions, an open breaker, flow control and timed calls take it
	// when they need it (exchange.now).
	if x.timed {
		x.now()
	}
	a.events.started.Add(1)

	var (
		resp *agentv2.AgentResponse
		err  error
	)
	if err = x.route(rt); err == nil {
		if x.skip {
			resp, x.failOpen = allowResponse(corr), true
			a.failOpen.Add(1)
		} else {
			resp, err = x.deliver(ev)
		}
	}
	x.finish(resp, err)
	if c := x.call; c != nil {
		c.ConnID, c.Endpoint = "", ""
		if x.sc != nil {
			c.ConnID, c.Endpoint = x.sc.id, x.sc.endpoint
		}
		c.FailOpen = x.failOpen
		// The decision came at sendAt+latency: no need to read the clock again.
		switch {
		case !x.timed:
			c.Duration = 0
		case x.sent:
			c.Duration = time.Duration(x.sendAt-x.start) + x.latency
		default:
			c.Duration = time.Duration(a.p.cfg.nanos() - x.start)
		}
	}
	return resp, err
}

// exchange is the state of one event in the pipeline; it lives on the
// stack of agent.send.
type exchange struct {
	a   *agent
	ctx context.Context
	// key is the correlation id, hashed for the affinity table (zero
	// without one).
	key  affinity.Key
	kind agentv2.EventType
	// start is the event's clock reading (pool clock, see config.nanos),
	// taken when first needed (see now); sendAt is when it was sent, read
	// only if the call is timed, or after a wait (flow control, a
	// concurrency slot); 0 if not read.
	start, sendAt int64
	clocked       bool     // start is read
	call          *Call    // nil without interceptors
	reroute       *Reroute // the call's, if an interceptor moves the event

	sc       *SubConn                // the connection, once routed
	slotted  bool                    // the event holds one of sc's slots
	pinned   bool                    // sc holds the event's request
	unpinned bool                    // route ended the request's pin (request_complete)
	paused   bool                    // sc was paused when routed: flow control, then a slot
	done     func(balancer.DoneInfo) // the picker's callback
	timed    bool                    // the end of the call is timed (interceptors want its duration)
	probe    bool                    // the breaker's half-open probe
	skip     bool                    // the request skips the agent (fail-open on its headers)
	failOpen bool                    // answered without the agent
	sent     bool                    // reached the transport
	silent   bool                    // given up by its caller on a silent agent (see heardNothing)
	latency  time.Duration           // of the transport call, if timed (see latencySample)
	budget   time.Duration           // the caller's time left at the send, if it has a deadline (see heardNothing)
	outcome  breaker.Outcome
	async    bool // sent by Pool.Go: nothing waits (see slot, flowControl)
	// Set by arm for settle: the receive count at the send and whether the
	// call's end is judged by it (see markSilence), and whether the send
	// is one of the latency samples.
	mark            uint64
	watched, sample bool
}

// deliver applies flow control, pins a new request, and sends.
func (x *exchange) deliver(ev *agentv2.ProxyToAgent) (*agentv2.AgentResponse, error) {
	if resp, err, ok := x.admit(); !ok {
		return resp, err
	}
	x.arm()
	resp, err := x.sc.conn.Send(x.ctx, ev)
	x.settle(err)
	return resp, err
}

// admit applies flow control on a paused connection, pins a new request
// and tells the reroute hook; ok false means the event is answered with
// resp or err without being sent.
func (x *exchange) admit() (resp *agentv2.AgentResponse, err error, ok bool) {
	a, sc := x.a, x.sc
	headers := x.kind == agentv2.EventType_EVENT_TYPE_REQUEST_HEADERS && x.key.String() != ""
	pins := x.key.String() != "" && x.reroute.pins(x.kind)
	if x.paused {
		if err := x.flowControl(); err != nil || x.failOpen {
			if x.failOpen && (headers || pins) {
				a.aff.Put(x.key, affinity.Entry[*SubConn]{Conn: sc, Touched: x.now(), Skip: true})
			}
			if x.failOpen {
				return allowResponse(x.key.String()), nil, false
			}
			return nil, err, false
		}
		if ok, err := x.slot(sc, x.pinned); !ok {
			if err == nil {
				// Retired or closed while paused.
				err = agentwire.Errorf(agentwire.CodeUnavailable, "%w: %s closed", ErrNoConnAvailable, sc.id)
				if x.pinned {
					err = agentwire.Errorf(agentwire.CodeFailedPrecondition, "%w: request %q was on %s", ErrAffinityLost, x.key.String(), sc.id)
				}
			}
			return nil, err, false
		}
	}
	if pins && !a.aff.Put(x.key, affinity.Entry[*SubConn]{Conn: sc, Touched: x.now()}) {
		return nil, agentwire.Errorf(agentwire.CodeResourceExhausted, "%w: agent %q has %d", ErrAffinityFull, a.id, a.cfg.maxAffinities), false
	}
	if x.reroute != nil && x.reroute.Routed != nil {
		x.reroute.Routed(sc.id)
	}
	return nil, nil, true
}

// arm prepares the accounting of the send: the silence watch, and the
// send time if the end is timed: for one event in latencySample, and for
// whoever needs this one's (interceptors, a picker's Done, a caller who
// gave up).
func (x *exchange) arm() {
	x.mark, x.watched = x.markSilence()
	x.sample = x.sc.requests.Add(1)%latencySample == 1
	if (x.sample || x.timed || x.done != nil || x.watched) && x.sendAt == 0 {
		x.sendAt = x.now()
	}
}

// settle accounts for the send's end with err: its outcome, latency and
// silence.
func (x *exchange) settle(err error) {
	sc := x.sc
	x.sent = true
	x.outcome = classify(x.ctx, err)
	if x.sample || x.timed || x.done != nil || x.watched && err != nil && x.outcome == breaker.Neutral {
		x.latency = time.Duration(x.a.p.cfg.nanos() - x.sendAt)
		if x.sample {
			sc.latencyNs.Add(uint64(x.latency))
			sc.sampled.Add(1)
		}
	}
	if x.watched && x.heardNothing(err, x.mark) {
		x.outcome, x.silent = breaker.Failure, true
	}
}

// flowControl handles a paused connection; nil with x.failOpen unset means
// go on.
func (x *exchange) flowControl() error {
	a, sc := x.a, x.sc
	var (
		err    error
		waited time.Duration
	)
	mode := a.cfg.flowMode
	if x.async && mode != FailClosed {
		// Nothing waits for the answer, and an allow nobody asked the
		// agent for is nobody's answer: fail as FailClosed does.
		mode = FailClosed
	}
	switch mode {
	case FailOpen:
		x.failOpen = true
		a.failOpen.Add(1)
	case WaitAndRetry:
		x.now()
		wctx, cancel := context.WithTimeout(x.ctx, a.cfg.flowWait)
		werr := sc.conn.WaitResume(wctx, x.key.String())
		cancel()
		x.sendAt = a.p.cfg.nanos()
		waited = time.Duration(x.sendAt - x.start)
		switch {
		case werr == nil:
		case x.ctx.Err() != nil:
			err = agentwire.WrapContextError(x.ctx.Err())
		case sc.gone():
			err = werr
		default:
			a.flowRejected.Add(1)
			err = agentwire.Errorf(agentwire.CodeResourceExhausted, "%w: agent %q, still paused after %v", ErrPaused, a.id, a.cfg.flowWait)
		}
	default:
		a.flowRejected.Add(1)
		err = agentwire.Errorf(agentwire.CodeResourceExhausted, "%w: agent %q", ErrPaused, a.id)
	}
	if c := x.call; c != nil {
		c.Pause = &Pause{Mode: a.cfg.flowMode, Waited: waited, Err: err}
	}
	return err
}

// now returns the event's clock reading, taken at the first need.
func (x *exchange) now() int64 {
	if !x.clocked {
		x.start, x.clocked = x.a.p.cfg.nanos(), true
	}
	return x.start
}

// finish does the accounting of the event, once, whatever happened.
func (x *exchange) finish(resp *agentv2.AgentResponse, err error) {
	a, sc := x.a, x.sc
	if sc != nil {
		if x.sent && err != nil {
			sc.errors.Add(1)
		}
		switch x.outcome {
		case breaker.Failure:
			if x.reroute.pins(x.kind) && sc.gone() {
				// The pin may postdate the sweep of the dead connection.
				a.aff.MarkKeyLost(x.key, sc)
			}
			if sc.consecutive.Add(1) >= int32(a.cfg.failureThreshold) && sc.setFlag(flagFailing, true) {
				a.p.cfg.logger.Warn("pool: connection taken out after consecutive failures", "agent", a.id, "conn", sc.id, "error", err)
				a.rebuild()
			}
		case breaker.Success:
			if sc.consecutive.Load() != 0 {
				sc.consecutive.Store(0)
			}
		}
		if x.slotted {
			sc.slots.Release()
		}
	}
	if x.done != nil {
		x.done(balancer.DoneInfo{Err: err, Latency: x.latency})
	}
	if x.probe || x.outcome == breaker.Failure && x.breakerCounts(err) {
		a.breaker.Done(a.p.cfg.nanos(), x.probe, x.outcome)
	}
	if err != nil {
		a.errors.Add(1)
	}
	if x.key.String() != "" && !x.unpinned && x.reroute.unpins() && (x.kind == agentv2.EventType_EVENT_TYPE_REQUEST_COMPLETE ||
		terminal(resp) || errors.Is(err, transport.ErrNoDecision)) {
		// An answer without a decision leaves the request's state at the
		// agent unknown: its pin ends with it.
		a.aff.Del(x.key)
	}
	// While the agent drains, the event that brings finished level with
	// started pokes: of several finishing at once, only the last one sees
	// it. (A drain sets draining before it reads the counters, so the last
	// event of a drain sees it set.) Otherwise started, which the other
	// core writes, is not read.
	if n := a.events.finished.Add(1); a.draining.Load() && n == a.events.started.Load() {
		a.pokeIdle()
	}
}

// breakerCounts reports whether a transport failure counts against the
// agent's breaker. A connection that ends fails every call it held at
// once: that is one failure of the agent, not one per call, or a single
// dropped connection with a few requests in flight would open the breaker
// of an agent whose other connections are fine. A connection gone silent
// counts once too, with its end.
func (x *exchange) breakerCounts(err error) bool {
	if x.sc == nil || !x.silent && !errors.Is(err, transport.ErrPeerGone) && !errors.Is(err, transport.ErrClosed) &&
		!errors.Is(err, transport.ErrProtocol) && !errors.Is(err, transport.ErrUnresponsive) {
		return true
	}
	return x.sc.lossCounted.CompareAndSwap(false, true)
}

// classify tells transport failures, which count against the connection
// and the breaker, from outcomes that say nothing about it.
func classify(ctx context.Context, err error) breaker.Outcome {
	if err == nil || agentwire.IsWireError(err) {
		return breaker.Success
	}
	if ctx.Err() != nil {
		// The caller cancelled, or its own deadline passed.
		return breaker.Neutral
	}
	switch agentwire.CodeOf(err) {
	case agentwire.CodeUnavailable, agentwire.CodeDeadlineExceeded, agentwire.CodeInternal,
		agentwire.CodeDataLoss, agentwire.CodeUnknown:
		return breaker.Failure
	}
	// Explicit cancels, invalid or oversize events.
	return breaker.Neutral
}

// terminal reports whether a decision ends the request.
func terminal(resp *agentv2.AgentResponse) bool {
	switch resp.GetDecision().(type) {
	case *agentv2.AgentResponse_Block, *agentv2.AgentResponse_Redirect, *agentv2.AgentResponse_Challenge:
		return true
	}
	return false
}

func allowResponse(corr string) *agentv2.AgentResponse {
	return &agentv2.AgentResponse{CorrelationId: corr, Decision: &agentv2.AgentResponse_Allow{Allow: &agentv2.AllowDecision{}}}
}
