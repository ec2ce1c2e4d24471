package pool

import (
	"context"
	"sync"

	"github.com/agentwire/agentwire"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
	"github.com/agentwire/agentwire/transport"
)

// Go sends event to agent agentID through the pipeline of [Pool.Send],
// without waiting for the answer: done receives it exactly once, on the
// goroutine that ends the call (the connection's reader, or one failing
// it), or on this one before Go returns. Nothing in Go waits: where Send
// would (a connection at its concurrency limit, a paused one, a full write
// queue), the event fails with ResourceExhausted at once; it never fails
// open, whatever [WithFlowControl] says. ctx bounds the call and must be
// cancellable; done must not block. Go skips the interceptors: it is how
// they send events nobody waits for (a shadow's mirror). The caller may
// reuse event once Go returns. A connection whose transport is not a
// [transport.AsyncConn] fails the event with Unimplemented.
func (p *Pool) Go(ctx context.Context, agentID string, event *agentv2.ProxyToAgent, done func(*agentv2.AgentResponse, error)) {
	a, err := p.agentFor(agentID)
	if err == nil && ctx.Done() == nil {
		err = agentwire.Errorf(agentwire.CodeInvalidArgument, "pool: Go needs a cancellable context")
	}
	if err != nil {
		done(nil, err)
		return
	}
	a.goSend(ctx, event, done)
}

// asyncExchange is the exchange of an event sent by Go, which outlives
// the call. Pooled, with answered bound once.
type asyncExchange struct {
	exchange
	then     func(*agentv2.AgentResponse, error) // Go's done
	answered func(*agentv2.AgentResponse, error) // x.answer, for the transport
}

var asyncs sync.Pool

// goSend is the pipeline of send, split at the transport: the answer
// finishes it.
func (a *agent) goSend(ctx context.Context, ev *agentv2.ProxyToAgent, done func(*agentv2.AgentResponse, error)) {
	corr, ok := ev.EventCorrelationID()
	if !ok {
		done(nil, agentwire.Errorf(agentwire.CodeInvalidArgument, "%w: %v", transport.ErrNotEvent, ev.FrameType()))
		return
	}
	x, _ := asyncs.Get().(*asyncExchange)
	if x == nil {
		x = new(asyncExchange)
		x.answered = x.answer
	}
	x.exchange = exchange{a: a, ctx: ctx, kind: ev.EventType(), async: true}
	x.then = done
	if corr != "" {
		x.key = a.aff.Key(corr)
	}
	a.events.started.Add(1)
	if err := x.route(route{}); err != nil {
		x.end(nil, err)
		return
	}
	if x.skip {
		// The request's headers failed open: the agent never saw it.
		x.end(nil, agentwire.Errorf(agentwire.CodeResourceExhausted, "%w: request %q skips agent %q (it failed open)", ErrPaused, corr, a.id))
		return
	}
	if resp, err, ok := x.admit(); !ok {
		x.end(resp, err)
		return
	}
	ac, ok := x.sc.conn.(transport.AsyncConn)
	if !ok {
		x.end(nil, agentwire.Errorf(agentwire.CodeUnimplemented, "pool: connection %s cannot send without waiting", x.sc.id))
		return
	}
	x.arm()
	if err := ac.Go(ctx, ev, x.answered); err != nil {
		x.answer(nil, err)
	}
	// x may be recycled already: the answer can come before Go returns.
}

// answer is the end of the transport call.
func (x *asyncExchange) answer(resp *agentv2.AgentResponse, err error) {
	x.settle(err)
	x.end(resp, err)
}

// end does the event's accounting, recycles x and tells Go's caller.
func (x *asyncExchange) end(resp *agentv2.AgentResponse, err error) {
	x.finish(resp, err)
	done := x.then
	x.exchange, x.then = exchange{}, nil
	asyncs.Put(x)
	done(resp, err)
}
