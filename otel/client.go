package otel

import (
	"context"
	"math"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/agentwire/agentwire"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
	"github.com/agentwire/agentwire/pool"
)

// WrapSend implements pool.Interceptor: each event gets a client span,
// named "<service>/<Method>" (for example
// "sentinel.agent.v2.AgentServiceV2/RequestHeaders"), child of the span in
// the caller's context; its W3C trace context goes into the
// request_headers event's RequestMetadata so that the agent's span becomes
// its child. With tracing off the caller's trace context is still written.
// When the caller's context has no span but the event already carries a
// traceparent (the proxy copied the client's), the span continues that
// trace. A later event of the request sent without a span (a
// request_complete sent in the background, say) joins the trace of its
// headers: as a sibling of their span, or as its child when that span was
// the first of the trace (see [WithTraceContextCache]).
func (i *Interceptor) WrapSend(next pool.SendFunc) pool.SendFunc {
	return func(ctx context.Context, c *pool.Call) (*agentv2.AgentResponse, error) {
		var st *agentState
		if i.ins != nil {
			st = i.agent(c.AgentID)
			st.inFlight.Add(1)
		}
		ctx, span := i.startSpan(ctx, c)
		var began time.Time // when a recording span began: its events' clock
		if span != nil && span.IsRecording() {
			began = i.cfg.now()
		}
		resp, err := next(ctx, c)
		outcome := ""
		if span != nil {
			if span.IsRecording() {
				outcome = outcomeOf(resp, err, c.FailOpen)
				i.finishSpan(span, began, c, resp, err)
			}
			span.End()
			if i.reqs != nil && c.CorrelationID != "" {
				i.reqs.finish(cacheKey{scope: c.AgentID, cid: c.CorrelationID}, c.Type, resp, err, i.cfg.now().UnixNano())
			}
		}
		if st != nil {
			st.inFlight.Add(-1)
			if !i.meters.idle() { // the placeholder would drop them
				i.record(ctx, st, c, outcome, resp, err)
			}
		}
		return resp, err
	}
}

// startSpan starts the event's span, nil when there is none to start, and
// writes the trace context into a request_headers event.
func (i *Interceptor) startSpan(ctx context.Context, c *pool.Call) (context.Context, trace.Span) {
	md := requestMetadata(c.Event)
	if i.tracer == nil || i.spans.idle() && !trace.SpanFromContext(ctx).IsRecording() {
		// No span: tracing is off, or the global placeholder would start
		// one that records nothing.
		if md != nil && trace.SpanContextFromContext(ctx).IsValid() {
			injectMetadata(ctx, i.prop, md)
		}
		return ctx, nil
	}
	key := cacheKey{scope: c.AgentID, cid: c.CorrelationID}
	if !trace.SpanContextFromContext(ctx).IsValid() {
		if md != nil && md.Traceparent != nil {
			ctx = i.prop.Extract(ctx, metadataCarrier{md})
		} else if md == nil && i.reqs != nil && key.cid != "" {
			if sc, ok := i.reqs.get(key, i.cfg.now().UnixNano()); ok {
				ctx = trace.ContextWithSpanContext(ctx, sc)
			}
		}
	}
	parent := trace.SpanContextFromContext(ctx)
	ctx, span := i.tracer.Start(ctx, i.names[kindIndex(c.Type)], clientKind...)
	if md != nil && i.reqs != nil && key.cid != "" {
		// The request's later events join the caller's span, or this one
		// when it starts the trace.
		if !parent.IsValid() {
			parent = span.SpanContext()
		}
		i.reqs.put(key, parent, i.cfg.now().UnixNano())
	}
	if span.IsRecording() {
		k := kindOf(c.Type)
		span.SetAttributes(
			rpcSystem,
			RPCServiceKey.String(i.cfg.serviceName),
			k.attrs[0], k.attrs[1],
			AgentIDKey.String(c.AgentID),
		)
		if c.CorrelationID != "" {
			span.SetAttributes(CorrelationIDKey.String(c.CorrelationID))
		}
	}
	if md != nil {
		injectMetadata(ctx, i.prop, md)
	}
	return ctx, span
}

// finishSpan sets the span's attributes, events and status from what the
// pipeline did and its answer. The events are dated when they happened:
// routing (an affinity miss) at began, flow control once it waited.
func (i *Interceptor) finishSpan(span trace.Span, began time.Time, c *pool.Call, resp *agentv2.AgentResponse, err error) {
	attrs := make([]attribute.KeyValue, 0, 6)
	if c.ConnID != "" {
		attrs = append(attrs, ConnIDKey.String(c.ConnID), TransportKey.String(transportOf(c.Endpoint)))
	}
	if id := c.Event.GetEventId(); id != 0 {
		attrs = append(attrs, EventIDKey.Int64(int64(min(id, math.MaxInt64))))
	}
	code := 0
	if err != nil {
		code = int(agentwire.CodeOf(err))
	} else if d := decisionOf(resp); d != "" {
		attrs = append(attrs, DecisionKey.String(d))
		if b := resp.GetBlock(); b != nil {
			attrs = append(attrs, BlockStatusKey.Int(int(b.GetStatus())))
		}
	}
	attrs = append(attrs, RPCStatusCodeKey.Int(code))
	span.SetAttributes(attrs...)
	if c.AffinityMiss {
		span.AddEvent(EventAffinityMiss, trace.WithTimestamp(began))
	}
	if p := c.Pause; p != nil {
		span.AddEvent(EventFlowControl, trace.WithTimestamp(began.Add(p.Waited)), trace.WithAttributes(
			FlowModeKey.String(p.Mode.String()),
			FlowResultKey.String(pauseResult(p)),
			FlowWaitedKey.Float64(float64(p.Waited)/float64(time.Millisecond)),
		))
	}
	if c.FailOpen {
		span.AddEvent(EventFailOpen)
	}
	if code, msg := spanStatus(false, i.cfg.blockIsError, resp, err); code != codes.Unset {
		span.SetStatus(code, msg)
	}
}

// pauseResult is the agentwire.flow_control.result of a pause.
func pauseResult(p *pool.Pause) string {
	switch {
	case p.Err != nil && agentwire.CodeOf(p.Err) == agentwire.CodeResourceExhausted:
		return "rejected"
	case p.Err != nil:
		return agentwire.CodeOf(p.Err).String()
	case p.Mode == pool.FailOpen:
		return OutcomeFailOpen
	}
	return "resumed"
}

// record records the event's metrics; outcome is "" when not known yet.
func (i *Interceptor) record(ctx context.Context, st *agentState, c *pool.Call, outcome string,
	resp *agentv2.AgentResponse, err error,
) {
	if outcome == "" {
		outcome = outcomeOf(resp, err, c.FailOpen)
	}
	if c.AffinityMiss {
		i.ins.affinityMiss.Add(ctx, 1, st.attrs.add...)
	}
	if p := c.Pause; p != nil {
		mode, result := p.Mode.String(), pauseResult(p)
		set := i.flowAttrs.get([3]string{c.AgentID, mode, result}, func() []attribute.KeyValue {
			return []attribute.KeyValue{AgentIDKey.String(c.AgentID), FlowModeKey.String(mode), FlowResultKey.String(result)}
		})
		i.ins.flow.Add(ctx, 1, set.add...)
		if p.Mode == pool.WaitAndRetry {
			i.ins.flowWait.Record(ctx, p.Waited.Seconds(), set.rec...)
		}
	}
	if c.FailOpen {
		i.ins.failOpen.Add(ctx, 1, st.attrs.add...)
	}
	key := eventKey{agent: c.AgentID, transport: transportOf(c.Endpoint), kind: c.Type, outcome: outcome}
	set := i.eventAttrs.get(key, func() []attribute.KeyValue {
		k := kindOf(key.kind)
		return []attribute.KeyValue{
			rpcSystem, RPCServiceKey.String(i.cfg.serviceName), k.attrs[0], k.attrs[1],
			AgentIDKey.String(key.agent), TransportKey.String(key.transport), OutcomeKey.String(key.outcome),
		}
	})
	i.ins.duration.Record(ctx, c.Duration.Seconds(), set.rec...)
	i.ins.events.Add(ctx, 1, set.add...)
}
