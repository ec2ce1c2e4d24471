package otel

import (
	"context"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/agentwire/agentwire"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
	"github.com/agentwire/agentwire/pool"
	"github.com/agentwire/agentwire/transport"
)

// Observer traces and measures the events a [pool.Pool] sends: give it to
// [pool.WithObserver]. Each event gets a client span, named
// "<service>/<Method>" (for example
// "sentinel.agent.v2.AgentServiceV2/RequestHeaders"), child of the span in
// the caller's context; its W3C trace context goes into the
// request_headers event's RequestMetadata so that the agent's span becomes
// its child. An Observer is safe for concurrent use.
type Observer struct {
	pool.NopObserver

	cfg    config
	tracer trace.Tracer // nil when tracing is off
	spans  placeholder  // the tracer provider's
	meters placeholder  // the meter provider's
	prop   propagation.TextMapPropagator
	names  []string           // span names by kind index
	ins    *clientInstruments // nil when metrics are off
	bridge *reportBridge      // nil when metrics are off

	agentAttrs attrCache[string]
	eventAttrs attrCache[eventKey]
	connAttrs  attrCache[[2]string]
	conns      sync.Map // [2]string{agent id, state} -> *connCount
	flowAttrs  attrCache[[3]string]
	agents     sync.Map // agent id -> *agentState
}

var _ pool.Observer = (*Observer)(nil)

// agentState is what the Observer tracks per agent.
type agentState struct {
	attrs *measureOpts // the agent id
	// lost counts connections that closed and have not been replaced yet.
	lost atomic.Int64
	// inFlight counts the agent's events between EventStart and EventEnd;
	// every event writes it, from every core, so it has a cache line of
	// its own.
	_        [64]byte
	inFlight atomic.Int64
	_        [56]byte
}

// NewObserver returns an Observer. Tracer provider, meter provider and
// propagator default to the OpenTelemetry globals; see [WithoutTracing]
// and [WithoutMetrics] to turn either off.
func NewObserver(opts ...Option) (*Observer, error) {
	cfg, err := newConfig(opts)
	if err != nil {
		return nil, err
	}
	o := &Observer{cfg: cfg, prop: cfg.propagator, names: spanNames(cfg.serviceName)}
	if !cfg.tracingOff() {
		o.tracer = cfg.tracerProvider.Tracer(instrumentationName)
		o.spans = tracerPlaceholder(cfg.tracerProvider)
	}
	if !cfg.metricsOff() {
		m := cfg.meterProvider.Meter(instrumentationName)
		o.meters = meterPlaceholder(cfg.meterProvider)
		if o.ins, err = newClientInstruments(m); err != nil {
			return nil, agentwire.Errorf(agentwire.CodeInternal, "otel: creating instruments: %w", err)
		}
		o.bridge = newReportBridge(m, &cfg, o.ins.reportDrop)
		if _, err := m.RegisterCallback(o.observeCounts, o.ins.inFlight, o.ins.connections); err != nil {
			return nil, agentwire.Errorf(agentwire.CodeInternal, "otel: registering the count callback: %w", err)
		}
	}
	return o, nil
}

// agent returns the state of agent id, created on first use.
func (o *Observer) agent(id string) *agentState {
	if v, ok := o.agents.Load(id); ok {
		return v.(*agentState)
	}
	v, _ := o.agents.LoadOrStore(id, &agentState{attrs: o.agentSet(id)})
	return v.(*agentState)
}

// observeCounts reports every agent's events in flight and connections
// by state.
func (o *Observer) observeCounts(_ context.Context, obs metric.Observer) error {
	o.agents.Range(func(_, v any) bool {
		st := v.(*agentState)
		obs.ObserveInt64(o.ins.inFlight, st.inFlight.Load(), st.attrs.obs...)
		return true
	})
	o.conns.Range(func(_, v any) bool {
		c := v.(*connCount)
		obs.ObserveInt64(o.ins.connections, c.n.Load(), c.attrs.obs...)
		return true
	})
	return nil
}

// connCount counts an agent's connections in one state.
type connCount struct {
	attrs *measureOpts // agent id and state
	n     atomic.Int64
}

func (o *Observer) connCount(agentID string, s pool.ConnState) *connCount {
	k := [2]string{agentID, s.String()}
	if v, ok := o.conns.Load(k); ok {
		return v.(*connCount)
	}
	v, _ := o.conns.LoadOrStore(k, &connCount{attrs: o.connSet(agentID, s)})
	return v.(*connCount)
}

func (o *Observer) agentSet(id string) *measureOpts {
	return o.agentAttrs.get(id, func() []attribute.KeyValue { return []attribute.KeyValue{AgentIDKey.String(id)} })
}

// EventStart starts the event's span and writes its trace context into a
// request_headers event. With tracing off it still writes the caller's
// trace context, if any. When the caller's context has no span but the
// event already carries a traceparent (the proxy copied the client's), the
// span continues that trace.
func (o *Observer) EventStart(ctx context.Context, info pool.EventInfo) context.Context {
	if o.ins != nil {
		o.agent(info.AgentID).inFlight.Add(1)
	}
	md := requestMetadata(info.Event)
	if o.tracer == nil || o.spans.idle() && !trace.SpanFromContext(ctx).IsRecording() {
		// No span: tracing is off, or the global placeholder would start
		// one that records nothing. (EventEnd ends the span in ctx: the
		// caller's, which records nothing, so ending it changes nothing.)
		if md != nil && trace.SpanContextFromContext(ctx).IsValid() {
			injectMetadata(ctx, o.prop, md)
		}
		return ctx
	}
	if md != nil && md.Traceparent != nil && !trace.SpanContextFromContext(ctx).IsValid() {
		ctx = o.prop.Extract(ctx, metadataCarrier{md})
	}
	ctx, span := o.tracer.Start(ctx, o.names[kindIndex(info.Type)], clientKind...)
	if span.IsRecording() {
		k := kindOf(info.Type)
		span.SetAttributes(
			rpcSystem,
			RPCServiceKey.String(o.cfg.serviceName),
			k.attrs[0], k.attrs[1],
			AgentIDKey.String(info.AgentID),
		)
		if info.CorrelationID != "" {
			span.SetAttributes(CorrelationIDKey.String(info.CorrelationID))
		}
	}
	if md != nil {
		injectMetadata(ctx, o.prop, md)
	}
	return ctx
}

var (
	clientKind = []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindClient)}
	serverKind = []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindServer)}
)

// EventEnd ends the event's span with the decision and status, and
// records the event's metrics.
func (o *Observer) EventEnd(ctx context.Context, info pool.EventInfo, res pool.EventResult) {
	outcome := ""
	if o.tracer != nil {
		span := trace.SpanFromContext(ctx)
		if span.IsRecording() {
			outcome = outcomeOf(res.Response, res.Err, res.FailOpen)
			o.finishSpan(span, info, res)
		}
		span.End()
	}
	if o.ins == nil {
		return
	}
	st := o.agent(info.AgentID)
	st.inFlight.Add(-1)
	if o.meters.idle() {
		return // the placeholder would drop them
	}
	if outcome == "" {
		outcome = outcomeOf(res.Response, res.Err, res.FailOpen)
	}
	if res.FailOpen {
		o.ins.failOpen.Add(ctx, 1, st.attrs.add...)
	}
	key := eventKey{agent: info.AgentID, transport: transportOf(res.Endpoint), kind: info.Type, outcome: outcome}
	set := o.eventAttrs.get(key, func() []attribute.KeyValue {
		k := kindOf(key.kind)
		return []attribute.KeyValue{
			rpcSystem, AgentIDKey.String(key.agent), TransportKey.String(key.transport),
			k.attrs[1], OutcomeKey.String(key.outcome),
		}
	})
	o.ins.duration.Record(ctx, res.Duration.Seconds(), set.rec...)
	o.ins.events.Add(ctx, 1, set.add...)
}

func (o *Observer) finishSpan(span trace.Span, info pool.EventInfo, res pool.EventResult) {
	attrs := make([]attribute.KeyValue, 0, 6)
	if res.ConnID != "" {
		attrs = append(attrs, ConnIDKey.String(res.ConnID), TransportKey.String(transportOf(res.Endpoint)))
	}
	if id := info.Event.GetEventId(); id != 0 {
		attrs = append(attrs, EventIDKey.Int64(int64(min(id, math.MaxInt64))))
	}
	code := 0
	if res.Err != nil {
		code = int(agentwire.CodeOf(res.Err))
	} else if d := decisionOf(res.Response); d != "" {
		attrs = append(attrs, DecisionKey.String(d))
		if b := res.Response.GetBlock(); b != nil {
			attrs = append(attrs, BlockStatusKey.Int(int(b.GetStatus())))
		}
	}
	attrs = append(attrs, RPCStatusCodeKey.Int(code))
	span.SetAttributes(attrs...)
	if res.FailOpen {
		span.AddEvent(EventFailOpen)
	}
	if c, msg := spanStatus(false, o.cfg.blockIsError, res.Response, res.Err); c != codes.Unset {
		span.SetStatus(c, msg)
	}
}

// FlowControl adds a span event and counts the pause.
func (o *Observer) FlowControl(ctx context.Context, info pool.EventInfo, mode pool.FlowControlMode, waited time.Duration, err error) {
	result := "resumed"
	switch {
	case err != nil && agentwire.CodeOf(err) == agentwire.CodeResourceExhausted:
		result = "rejected"
	case err != nil:
		result = agentwire.CodeOf(err).String()
	case mode == pool.FailOpen:
		result = OutcomeFailOpen
	}
	if o.tracer != nil {
		if span := trace.SpanFromContext(ctx); span.IsRecording() {
			span.AddEvent(EventFlowControl, trace.WithAttributes(
				FlowModeKey.String(mode.String()),
				FlowResultKey.String(result),
				FlowWaitedKey.Float64(float64(waited)/float64(time.Millisecond)),
			))
		}
	}
	if o.ins == nil {
		return
	}
	set := o.flowAttrs.get([3]string{info.AgentID, mode.String(), result}, func() []attribute.KeyValue {
		return []attribute.KeyValue{AgentIDKey.String(info.AgentID), FlowModeKey.String(mode.String()), FlowResultKey.String(result)}
	})
	o.ins.flow.Add(ctx, 1, set.add...)
	if mode == pool.WaitAndRetry {
		o.ins.flowWait.Record(ctx, waited.Seconds(), set.rec...)
	}
}

// AffinityMiss adds a span event and counts the miss.
func (o *Observer) AffinityMiss(ctx context.Context, info pool.EventInfo) {
	if o.tracer != nil {
		if span := trace.SpanFromContext(ctx); span.IsRecording() {
			span.AddEvent(EventAffinityMiss)
		}
	}
	if o.ins != nil {
		o.ins.affinityMiss.Add(ctx, 1, o.agentSet(info.AgentID).add...)
	}
}

// ConnStateChange keeps the connection gauge and counts reconnections: a
// connection opened while the agent has one lost and not replaced.
func (o *Observer) ConnStateChange(agentID, _ string, from, to pool.ConnState) {
	if o.ins == nil {
		return
	}
	ctx := context.Background()
	if from != 0 {
		o.connCount(agentID, from).n.Add(-1)
	}
	if to != pool.ConnClosed {
		o.connCount(agentID, to).n.Add(1)
	}
	st := o.agent(agentID)
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
				o.ins.reconnects.Add(ctx, 1, o.agentSet(agentID).add...)
				break
			}
		}
	}
}

func (o *Observer) connSet(agentID string, s pool.ConnState) *measureOpts {
	name := s.String()
	return o.connAttrs.get([2]string{agentID, name}, func() []attribute.KeyValue {
		return []attribute.KeyValue{AgentIDKey.String(agentID), ConnStateKey.String(name)}
	})
}

// ObservePool reports p's gauges on every collection: open requests
// (affinity table size), sticky sessions and circuit breaker state per
// agent. Unregister the returned registration before shutting p down if
// the meter provider outlives it.
func (o *Observer) ObservePool(p *pool.Pool) (metric.Registration, error) {
	if o.ins == nil {
		return noRegistration{}, nil
	}
	ins := o.ins
	states := []pool.BreakerState{pool.BreakerClosed, pool.BreakerOpen, pool.BreakerHalfOpen}
	reg, err := o.cfg.meterProvider.Meter(instrumentationName).RegisterCallback(func(_ context.Context, obs metric.Observer) error {
		for _, a := range p.Stats() {
			agent := o.agentSet(a.ID)
			obs.ObserveInt64(ins.affinitySize, int64(a.OpenRequests), agent.obs...)
			obs.ObserveInt64(ins.sessions, int64(a.Sessions), agent.obs...)
			obs.ObserveInt64(ins.breakerOpened, int64(min(a.BreakerOpened, math.MaxInt64)), agent.obs...)
			for _, s := range states {
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
		return nil, agentwire.Errorf(agentwire.CodeInternal, "otel: registering pool callback: %w", err)
	}
	return reg, nil
}

type noRegistration struct{ metric.Registration }

func (noRegistration) Unregister() error { return nil }

// TransportOptions returns the transport options that complete the
// Observer for one agent's connections: its metrics reports are bridged
// into OpenTelemetry instruments labelled agentID (the report's own
// agent_id when agentID is empty), and the gRPC and Connect transports
// carry the dial's trace context in their stream headers. Give them to
// [pool.WithTransportOptions] (with AddAgent for a per-agent id) or append
// them to [pool.Pool.ConnOptions] for reverse connections. They replace
// any transport.WithMetricsHandler given before them.
func (o *Observer) TransportOptions(agentID string) []transport.Option {
	opts := []transport.Option{StreamHeaders(o.prop)}
	if o.bridge != nil {
		b := o.bridge
		opts = append(opts, transport.WithMetricsHandler(func(r *agentv2.MetricsReport) { b.record(agentID, r) }))
	}
	return opts
}

// Dialer wraps a pool dialer ([transport.Dial] when next is nil) with a
// client span per dial, "agentwire.Dial", whose trace context the stream
// headers carry (see [Observer.TransportOptions]). Give it to
// [pool.WithDialer].
func (o *Observer) Dialer(next pool.Dialer) pool.Dialer {
	if next == nil {
		next = transport.Dial
	}
	if o.tracer == nil {
		return next
	}
	return func(ctx context.Context, endpoint string, opts ...transport.Option) (transport.Conn, error) {
		ctx, span := o.tracer.Start(ctx, "agentwire.Dial", trace.WithSpanKind(trace.SpanKindClient),
			trace.WithAttributes(rpcSystem, RPCServiceKey.String(o.cfg.serviceName),
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
