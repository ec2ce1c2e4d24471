package failover

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"github.com/agentwire/agentwire"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
	"github.com/agentwire/agentwire/pool"
	"github.com/agentwire/agentwire/transport"
)

// Interceptor fails requests over to another connection of their agent,
// or to a fallback agent, when the connection holding them dies (see the
// package doc). It is safe for concurrent use.
type Interceptor struct {
	cfg    config
	tables map[string]*table // by agent; read-only after New
	budget *budget
	counts *counts
	pool   atomic.Pointer[pool.Pool]
}

var (
	_ pool.Interceptor        = (*Interceptor)(nil)
	_ pool.UntimedInterceptor = (*Interceptor)(nil)
	_ pool.Watcher            = (*Interceptor)(nil)
)

// New returns an Interceptor for the agents named by [WithAgents] and
// [WithFallback]; give it to pool.WithInterceptors, outside a [Hedger].
func New(opts ...Option) (*Interceptor, error) {
	cfg := config{
		shared:     shared{now: time.Now},
		fallback:   map[string]string{},
		perRequest: 64 << 10, total: 64 << 20,
		budgetMax: 10, ratio: 0.1,
		ttl: 2 * time.Minute,
	}
	for _, o := range opts {
		o.applyFailover(&cfg)
	}
	switch {
	case len(cfg.fallback) == 0:
		return nil, errors.New("failover: no agent given")
	case cfg.perRequest <= 0 || cfg.total <= 0 || cfg.ttl <= 0:
		return nil, errors.New("failover: buffers and idle timeout must be positive")
	case cfg.budgetMax < 0 || cfg.ratio < 0:
		return nil, errors.New("failover: the retry budget must not be negative")
	}
	for id, fb := range cfg.fallback {
		if id == "" || id == fb {
			return nil, errors.New("failover: an agent cannot be its own fallback")
		}
	}
	c, err := newCounts(cfg.meterProvider, "agentwire.failover.requests",
		"requests whose connection failed, by what failover did", "agentwire.failover.outcome",
		Attempted, Succeeded, Failed, Overflow, UnsafeEvent, NoBudget, Expired, Inconsistent)
	if err != nil {
		return nil, err
	}
	ic := &Interceptor{cfg: cfg, tables: map[string]*table{}, budget: newBudget(cfg.budgetMax, cfg.ratio), counts: c}
	b := newBound(cfg.total)
	for id := range cfg.fallback {
		ic.tables[id] = newTable(cfg, id, b)
	}
	return ic, nil
}

// Watch implements pool.Watcher: the interceptor cancels requests on the
// pool it wraps.
func (ic *Interceptor) Watch(p *pool.Pool) (stop func()) {
	ic.pool.Store(p)
	return func() {}
}

// Stats returns how many failovers ended in each outcome.
func (ic *Interceptor) Stats() map[Outcome]uint64 { return ic.counts.stats() }

// Untimed implements pool.UntimedInterceptor: it never reads Call.Duration.
func (*Interceptor) Untimed() {}

// WrapSend implements pool.Interceptor.
func (ic *Interceptor) WrapSend(next pool.SendFunc) pool.SendFunc {
	return func(ctx context.Context, c *pool.Call) (*agentv2.AgentResponse, error) {
		t, ok := ic.tables[c.AgentID]
		if !ok || c.CorrelationID == "" || c.Reroute != nil {
			return next(ctx, c)
		}
		switch c.Type {
		case agentv2.EventType_EVENT_TYPE_REQUEST_HEADERS:
			return ic.headers(ctx, next, c, t)
		case agentv2.EventType_EVENT_TYPE_REQUEST_COMPLETE:
			if r := t.take(c.CorrelationID); r != nil {
				return ic.complete(ctx, next, c, t, r)
			}
			return next(ctx, c)
		}
		if r := t.get(c.CorrelationID); r != nil {
			return ic.follow(ctx, next, c, t, r)
		}
		return next(ctx, c)
	}
}

// headers sends a request's headers and keeps them, with their answer.
func (ic *Interceptor) headers(ctx context.Context, next pool.SendFunc, c *pool.Call, t *table) (*agentv2.AgentResponse, error) {
	ic.budget.earn()
	r := &request{agentID: c.AgentID}
	resp, err := next(ctx, c)
	if err != nil && failsOver(ctx, err) {
		r.connID = c.ConnID
		resp, err = ic.failover(ctx, next, c, t, r, 0, err)
	}
	if err != nil || terminal(resp) {
		return resp, err
	}
	r.connID = c.ConnID
	t.keep(r, c.Type, c.Event, resp)
	t.start(c.CorrelationID, r)
	return resp, nil
}

// follow sends a later event of a kept request where the request is now.
func (ic *Interceptor) follow(ctx context.Context, next pool.SendFunc, c *pool.Call, t *table, r *request) (*agentv2.AgentResponse, error) {
	r.mu.Lock()
	agentID, gen, dead := r.agentID, r.gen, r.dead
	r.mu.Unlock()
	if dead {
		return nil, lost(c.CorrelationID)
	}
	c.AgentID = agentID
	resp, err := next(ctx, c)
	if err != nil && failsOver(ctx, err) {
		resp, err = ic.failover(ctx, next, c, t, r, gen, err)
	}
	switch {
	case err == nil && terminal(resp):
		t.drop(c.CorrelationID, r)
	case err == nil:
		r.mu.Lock()
		t.keep(r, c.Type, c.Event, resp)
		r.mu.Unlock()
	}
	return resp, err
}

// complete sends request_complete where the request is now, the table
// having forgotten the request: nothing is left to decide, so it is not
// worth a failover.
func (ic *Interceptor) complete(ctx context.Context, next pool.SendFunc, c *pool.Call, t *table, r *request) (*agentv2.AgentResponse, error) {
	r.mu.Lock()
	agentID, dead := r.agentID, r.dead
	r.mu.Unlock()
	t.release(r)
	if dead {
		return nil, lost(c.CorrelationID)
	}
	c.AgentID = agentID
	return next(ctx, c)
}

// failsOver reports whether err says the connection (or the agent) failed
// the event, rather than the agent answering, the caller giving up or the
// pool closing: the connection is gone, unavailable or broke the protocol.
func failsOver(ctx context.Context, err error) bool {
	if ctx.Err() != nil || agentwire.IsWireError(err) || errors.Is(err, pool.ErrClosed) {
		return false
	}
	return agentwire.CodeOf(err) == agentwire.CodeUnavailable || errors.Is(err, pool.ErrAffinityLost) ||
		errors.Is(err, transport.ErrProtocol)
}

// terminal reports whether an answer ends the request.
func terminal(resp *agentv2.AgentResponse) bool {
	return resp.GetDecision() != nil && resp.GetAllow() == nil
}

// lost is the error of the events of a request that could not fail over.
func lost(corr string) error {
	return agentwire.Errorf(agentwire.CodeFailedPrecondition, "%w: request %q could not fail over", pool.ErrAffinityLost, corr)
}
