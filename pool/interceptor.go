package pool

import (
	"context"
	"sync"
	"time"

	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
	"github.com/agentwire/agentwire/transport"
)

// Call is one event on its way through the pool: what [Pool.Send] and
// [Pool.SendSession] were given, and what the pipeline did with it. An
// interceptor may change Event (a trace context, say) before it calls the
// next function, and reads the pipeline's fields once next returns. Each
// pass through the pipeline sets them anew: an interceptor that calls next
// concurrently gives each call a copy of the Call. The pool reuses a Call
// once Send returns (an allocation per event would cost more than the
// pipeline): an interceptor must not keep it, nor leave it to a goroutine
// that outlives its own return (give that goroutine a copy).
type Call struct {
	// AgentID is the agent the event goes to.
	AgentID string
	// Session is the sticky session id ("" for [Pool.Send]).
	Session string
	// CorrelationID and Type describe Event.
	CorrelationID string
	Type          agentv2.EventType
	Event         *agentv2.ProxyToAgent
	// Reroute, set by an interceptor before it calls next, moves the
	// event off its request's pin (see [Reroute]); nil routes as usual.
	Reroute *Reroute

	// ConnID is the connection the pipeline routed the event to, and
	// Endpoint that connection's instance endpoint ("unix:///...",
	// "grpc://...", "reverse" for adopted connections); both empty if none.
	ConnID, Endpoint string
	// FailOpen is true when the pool answered allow without the agent.
	FailOpen bool
	// AffinityMiss is true when an event of a request found no connection
	// pinned for it and was balanced instead; never for request_complete,
	// which finds none after a terminal decision by design.
	AffinityMiss bool
	// Pause is what flow control did, nil unless the event met a
	// connection the agent had paused.
	Pause *Pause
	// Duration is the time the event spent in the pipeline; zero when
	// every interceptor of the pool is an [UntimedInterceptor].
	Duration time.Duration
}

// Pause is what flow control did with an event whose connection the agent
// had paused.
type Pause struct {
	Mode FlowControlMode
	// Waited is how long the event waited for the agent to resume.
	Waited time.Duration
	// Err is nil when the event went on: after waiting, or answered with
	// fail-open.
	Err error
}

// SendFunc sends one event through the rest of the pipeline and returns
// its decision.
type SendFunc func(ctx context.Context, c *Call) (*agentv2.AgentResponse, error)

// Interceptor wraps the pool's send of one event, as connect-go's
// interceptors wrap a call: it sees the event and its answer, may answer
// without calling next (a cache), or call next more than once (hedging,
// failover to another agent). Each call of next goes through the whole
// pipeline again: routing, flow control, concurrency limit, send.
// WrapSend runs once, when the pool is built; the function it returns runs
// concurrently for many events and must be safe for that.
//
// An Interceptor may also implement [DialInterceptor], [ConnInterceptor]
// and [Watcher]: [New] finds them. Events the pool sends on its own
// (configuration pushes and their replay to new connections) do not pass
// through interceptors.
type Interceptor interface {
	WrapSend(next SendFunc) SendFunc
}

// DialInterceptor is an [Interceptor] that also wraps the pool's [Dialer]
// (a span per dial, say).
type DialInterceptor interface {
	WrapDial(next Dialer) Dialer
}

// ConnInterceptor is an [Interceptor] that also sees every connection of
// the pool: those it dials and those it adopts ([Pool.ConnOptions],
// [Pool.ReverseOptions]). ConnStateChange is called, without blocking, for
// each change of a connection's state.
type ConnInterceptor interface {
	// TransportOptions are added to the options of agentID's connections,
	// after [WithTransportOptions].
	TransportOptions(agentID string) []transport.Option
	ConnStateChange(agentID, connID string, from, to ConnState)
}

// Watcher is an [Interceptor] that also watches the pool as a whole (gauges
// read from [Pool.Stats], say). Watch is called once the pool is built,
// and stop when it shuts down.
type Watcher interface {
	Watch(p *Pool) (stop func())
}

// UntimedInterceptor is an [Interceptor] that never reads [Call.Duration].
// When every interceptor of a pool is one, the pipeline does not time its
// events (two or three clock readings per event, more than the rest of
// the pipeline costs) and Duration stays zero.
type UntimedInterceptor interface {
	Interceptor
	Untimed()
}

// InterceptorFunc makes a function an [Interceptor].
type InterceptorFunc func(next SendFunc) SendFunc

// WrapSend implements [Interceptor].
func (f InterceptorFunc) WrapSend(next SendFunc) SendFunc { return f(next) }

// WithInterceptors adds interceptors around every event the pool sends.
// The first is outermost: it sees the event first and the answer last.
// Options given more than once add up, in order.
func WithInterceptors(interceptors ...Interceptor) Option {
	return poolOption(func(c *config) { c.interceptors = append(c.interceptors, interceptors...) })
}

// useInterceptors builds the chain around the pipeline (left nil without
// interceptors, so that Send calls the pipeline directly), wraps the
// dialer and starts the watchers, once, in New.
func (p *Pool) useInterceptors() {
	ics := p.cfg.interceptors
	if len(ics) == 0 {
		return
	}
	next := SendFunc(p.sendCall)
	for i := len(ics) - 1; i >= 0; i-- {
		if _, ok := ics[i].(UntimedInterceptor); !ok {
			p.timed = true
		}
		next = ics[i].WrapSend(next)
		if d, ok := ics[i].(DialInterceptor); ok {
			p.cfg.dialer = d.WrapDial(p.cfg.dialer)
		}
	}
	p.send = next
	for _, ic := range ics {
		if w, ok := ic.(Watcher); ok {
			stop := w.Watch(p)
			p.wg.Go(func() {
				<-p.bg.Done()
				stop()
			})
		}
	}
}

// sendCall is the pipeline under the interceptors.
func (p *Pool) sendCall(ctx context.Context, c *Call) (*agentv2.AgentResponse, error) {
	a, err := p.agentFor(c.AgentID)
	if err != nil {
		return nil, err
	}
	return a.send(ctx, route{session: c.Session, call: c}, c.Event)
}

// calls recycles Calls (see Call).
var calls = sync.Pool{New: func() any { return new(Call) }}

// intercept sends ev through the interceptors.
func (p *Pool) intercept(ctx context.Context, agentID, session string, ev *agentv2.ProxyToAgent) (*agentv2.AgentResponse, error) {
	corr, _ := ev.EventCorrelationID()
	c := calls.Get().(*Call)
	*c = Call{AgentID: agentID, Session: session, CorrelationID: corr, Type: ev.EventType(), Event: ev}
	resp, err := p.send(ctx, c)
	*c = Call{}
	calls.Put(c)
	return resp, err
}

// interceptorOptions are the transport options interceptors add to
// agentID's connections.
func (p *Pool) interceptorOptions(agentID string) []transport.Option {
	var opts []transport.Option
	for _, ic := range p.cfg.interceptors {
		if c, ok := ic.(ConnInterceptor); ok {
			opts = append(opts, c.TransportOptions(agentID)...)
		}
	}
	return opts
}

// connStateChange tells the interceptors of a connection's new state.
func (p *Pool) connStateChange(agentID, connID string, from, to ConnState) {
	for _, ic := range p.cfg.interceptors {
		if c, ok := ic.(ConnInterceptor); ok {
			c.ConnStateChange(agentID, connID, from, to)
		}
	}
}
