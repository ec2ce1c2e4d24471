package otel

import (
	"context"
	"math"
	"sync/atomic"

	otelapi "go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/agentwire/agentwire"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
	"github.com/agentwire/agentwire/pool"
	"github.com/agentwire/agentwire/transport"
)

// The proxy side beyond events: connections, dials, agents' metrics
// reports and the pool's gauges.

// agentState is what the Interceptor tracks per agent of a pool.
type agentState struct {
	attrs *measureOpts // the agent id
	// lost counts connections that closed and have not been replaced yet.
	lost atomic.Int64
	// inFlight counts the agent's events inside WrapSend; every event
	// writes it, from every core, so it has a cache line of its own.
	_        [64]byte
	inFlight atomic.Int64
	_        [56]byte
}

// agent returns the state of agent id, created on first use.
func (i *Interceptor) agent(id string) *agentState {
	if v, ok := i.agents.Load(id); ok {
		return v.(*agentState)
	}
	v, loaded := i.agents.LoadOrStore(id, &agentState{attrs: i.agentSet(id)})
	st := v.(*agentState)
	if !loaded {
		// The agent's counters start at zero, so that rates and alerts
		// on them work before their first increment.
		ctx := context.Background()
		for _, c := range []metric.Int64Counter{i.ins.failOpen, i.ins.affinityMiss, i.ins.reconnects} {
			c.Add(ctx, 0, st.attrs.add...)
		}
	}
	return st
}

func (i *Interceptor) agentSet(id string) *measureOpts {
	return i.agentAttrs.get(id, func() []attribute.KeyValue { return []attribute.KeyValue{AgentIDKey.String(id)} })
}

// observeCounts reports every agent's events in flight and connections
// by state.
func (i *Interceptor) observeCounts(_ context.Context, obs metric.Observer) error {
	i.agents.Range(func(_, v any) bool {
		st := v.(*agentState)
		obs.ObserveInt64(i.ins.inFlight, st.inFlight.Load(), st.attrs.obs...)
		return true
	})
	i.conns.Range(func(_, v any) bool {
		c := v.(*connCount)
		obs.ObserveInt64(i.ins.connections, c.n.Load(), c.attrs.obs...)
		return true
	})
	return nil
}

// connCount counts an agent's connections in one state.
type connCount struct {
	attrs *measureOpts // agent id and state
	n     atomic.Int64
}

func (i *Interceptor) connCount(agentID string, s pool.ConnState) *connCount {
	k := [2]string{agentID, s.String()}
	if v, ok := i.conns.Load(k); ok {
		return v.(*connCount)
	}
	v, _ := i.conns.LoadOrStore(k, &connCount{attrs: i.connSet(agentID, s)})
	return v.(*connCount)
}

func (i *Interceptor) connSet(agentID string, s pool.ConnState) *measureOpts {
	name := s.String()
	return i.connAttrs.get([2]string{agentID, name}, func() []attribute.KeyValue {
		return []attribute.KeyValue{AgentIDKey.String(agentID), ConnStateKey.String(name)}
	})
}

// ConnStateChange implements pool.ConnInterceptor: it keeps the
// connection gauge and counts reconnections (a connection opened while
// the agent has one lost and not replaced).
func (i *Interceptor) ConnStateChange(agentID, _ string, from, to pool.ConnState) {
	if i.ins == nil {
		return
	}
	if from != 0 {
		i.connCount(agentID, from).n.Add(-1)
	}
	if to != pool.ConnClosed {
		i.connCount(agentID, to).n.Add(1)
	}
	st := i.agent(agentID)
	switch {
	case to == pool.ConnClosed && from != pool.ConnRetired && from != 0:
		st.lost.Add(1)
	case from == 0:
		for {
			n := st.lost.Load()
			if n <= 0 {
				break
			}
			if st.lost.CompareAndSwap(n, n-1) {
				i.ins.reconnects.Add(context.Background(), 1, st.attrs.add...)
				break
			}
		}
	}
}

// TransportOptions implements pool.ConnInterceptor: the gRPC and Connect
// transports carry the dial's trace context in their stream headers
// ([StreamHeaders]), and agents' metrics reports are bridged into
// OpenTelemetry instruments labelled agentID (the report's own agent_id
// when agentID is empty). They replace a transport.WithMetricsHandler
// given to pool.WithTransportOptions.
func (i *Interceptor) TransportOptions(agentID string) []transport.Option {
	opts := []transport.Option{StreamHeaders(i.prop)}
	if b := i.bridge; b != nil {
		opts = append(opts, transport.WithMetricsHandler(func(r *agentv2.MetricsReport) { b.record(agentID, r) }))
	}
	return opts
}

// WrapDial implements pool.DialInterceptor: with [WithDialSpans], each
// dial gets a client span, "agentwire.Dial", whose trace context the
// stream headers carry.
func (i *Interceptor) WrapDial(next pool.Dialer) pool.Dialer {
	if i.tracer == nil || !i.cfg.dialSpans {
		return next
	}
	return func(ctx context.Context, endpoint string, opts ...transport.Option) (transport.Conn, error) {
		ctx, span := i.tracer.Start(ctx, "agentwire.Dial", trace.WithSpanKind(trace.SpanKindClient),
			trace.WithAttributes(rpcSystem, RPCServiceKey.String(i.cfg.serviceName),
				TransportKey.String(transportOf(endpoint)), attribute.String("server.address", endpoint)))
		defer span.End()
		c, err := next(ctx, endpoint, opts...)
		if err != nil {
			span.SetStatus(codes.Error, errorMessage(err))
			span.SetAttributes(RPCStatusCodeKey.Int(int(agentwire.CodeOf(err))))
		}
		return c, err
	}
}

// breakerStates are the states the breaker gauge reports, 1 for the
// current one.
var breakerStates = []pool.BreakerState{pool.BreakerClosed, pool.BreakerOpen, pool.BreakerHalfOpen}

// Watch implements pool.Watcher: on every collection it reports p's open
// requests (affinity table size), sticky sessions and circuit breaker
// state per agent, until stop.
func (i *Interceptor) Watch(p *pool.Pool) (stop func()) {
	if i.ins == nil {
		return func() {}
	}
	ins := i.ins
	reg, err := i.cfg.meterProvider.Meter(instrumentationName).RegisterCallback(func(_ context.Context, obs metric.Observer) error {
		for _, a := range p.Stats() {
			agent := i.agentSet(a.ID)
			obs.ObserveInt64(ins.affinitySize, int64(a.OpenRequests), agent.obs...)
			obs.ObserveInt64(ins.sessions, int64(a.Sessions), agent.obs...)
			obs.ObserveInt64(ins.breakerOpened, int64(min(a.BreakerOpened, math.MaxInt64)), agent.obs...)
			for _, s := range breakerStates {
				v := int64(0)
				if a.Breaker == s {
					v = 1
				}
				obs.ObserveInt64(ins.breaker, v, metric.WithAttributes(AgentIDKey.String(a.ID), BreakerStateKey.String(s.String())))
			}
		}
		return nil
	}, ins.affinitySize, ins.sessions, ins.breaker, ins.breakerOpened)
	if err != nil {
		// Registration fails only for instruments of another provider.
		otelapi.Handle(agentwire.Errorf(agentwire.CodeInternal, "otel: registering the pool callback: %w", err))
		return func() {}
	}
	return func() { _ = reg.Unregister() }
}
