package pool

import (
	"context"

	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
	"github.com/agentwire/agentwire/transport"
)

// Call is one event on its way through the pool: what [Pool.Send] and
// [Pool.SendSession] were given. An interceptor may change Event (a trace
// context, say) before it calls the next function.
type Call struct {
	// AgentID is the agent the event goes to.
	AgentID string
	// Session is the sticky session id ("" for [Pool.Send]).
	Session string
	// CorrelationID and Type describe Event.
	CorrelationID string
	Type          agentv2.EventType
	Event         *agentv2.ProxyToAgent
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
// Events the pool sends on its own (configuration pushes and their replay
// to new connections) do not pass through interceptors.
type Interceptor interface {
	WrapSend(next SendFunc) SendFunc
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

// chain builds the pipeline the interceptors wrap, once; nil without
// interceptors, so that Send calls the pipeline directly.
func (p *Pool) chain() SendFunc {
	if len(p.cfg.interceptors) == 0 {
		return nil
	}
	next := SendFunc(p.sendCall)
	for i := len(p.cfg.interceptors) - 1; i >= 0; i-- {
		next = p.cfg.interceptors[i].WrapSend(next)
	}
	return next
}

// sendCall is the pipeline under the interceptors.
func (p *Pool) sendCall(ctx context.Context, c *Call) (*agentv2.AgentResponse, error) {
	a, err := p.agentFor(c.AgentID)
	if err != nil {
		return nil, err
	}
	return a.send(ctx, route{session: c.Session}, c.Event)
}

// intercept sends ev through the interceptors.
func (p *Pool) intercept(ctx context.Context, agentID, session string, ev *agentv2.ProxyToAgent) (*agentv2.AgentResponse, error) {
	corr, _ := transport.CorrelationID(ev)
	return p.send(ctx, &Call{AgentID: agentID, Session: session, CorrelationID: corr, Type: transport.EventType(ev), Event: ev})
}
