package otel

import (
	"context"
	"math"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/metadata"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/agent"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
)

type serverKey struct {
	kind    agentv2.EventType
	outcome string
}

// WrapEvent implements agent.Interceptor: each event gets a server span
// named like the proxy's ("<service>/<Method>"), child of the proxy's span
// for the request. A request_headers event carries the proxy span's trace
// context in RequestMetadata.traceparent/tracestate; the request's later
// events (body chunks, response headers, request_complete, ...) carry
// none, so they become children of the span that sent the request's
// headers, which the Interceptor remembers per proxy id and correlation
// id (see [WithTraceContextCache]), with agentwire.parent.event.kind set
// to "request_headers"; a request_complete after a block joins too. Unary ProcessEvent calls take the trace context of
// their gRPC request headers when the event carries none. The handler's
// context carries the span, so agent code can start its own spans under
// it.
func (i *Interceptor) WrapEvent(next agent.EventFunc) agent.EventFunc {
	return func(ctx context.Context, ev *agentv2.ProxyToAgent) (*agentv2.AgentResponse, error) {
		t := ev.EventType()
		cid, _ := ev.EventCorrelationID()
		peer := agent.PeerFromContext(ctx)
		var start time.Time
		if i.duration != nil {
			start = i.cfg.now()
		}
		ctx, inherited := i.parent(ctx, ev, t, cid, peer)
		var span trace.Span
		if i.tracer != nil && !i.spans.idle() {
			ctx, span = i.tracer.Start(ctx, i.names[kindIndex(t)], serverKind...)
			if span.IsRecording() {
				k := kindOf(t)
				span.SetAttributes(rpcSystem, RPCServiceKey.String(i.cfg.serviceName), k.attrs[0], k.attrs[1])
				if cid != "" {
					// A copy: the event may borrow a read buffer, the span
					// outlives it.
					span.SetAttributes(CorrelationIDKey.String(strings.Clone(cid)))
				}
				if ev.EventId != 0 {
					span.SetAttributes(EventIDKey.Int64(int64(min(ev.EventId, math.MaxInt64))))
				}
				if peer != nil {
					span.SetAttributes(ProxyIDKey.String(peer.Handshake().GetProxyId()))
				}
				if inherited {
					span.SetAttributes(ParentEventKindKey.String("request_headers"))
				}
			}
		}
		resp, err := next(ctx, ev)
		if span != nil {
			if span.IsRecording() {
				finishServerSpan(span, i.cfg.blockIsError, resp, err)
			}
			span.End()
		}
		if i.cache != nil && peer != nil && cid != "" {
			i.cache.finish(cacheKey{scope: peer.Handshake().GetProxyId(), cid: cid}, t, resp, err, i.cfg.now().UnixNano())
		}
		if i.duration != nil {
			key := serverKey{kind: t, outcome: serverOutcome(resp, err)}
			set := i.serverAttrs.get(key, func() []attribute.KeyValue {
				k := kindOf(key.kind)
				return []attribute.KeyValue{rpcSystem, RPCServiceKey.String(i.cfg.serviceName), k.attrs[0], k.attrs[1],
					OutcomeKey.String(key.outcome)}
			})
			i.duration.Record(ctx, i.cfg.now().Sub(start).Seconds(), set.rec...)
		}
		return resp, err
	}
}

// parent returns ctx with the proxy's trace context for event ev, and
// whether it came from the request's headers rather than ev itself.
func (i *Interceptor) parent(ctx context.Context, ev *agentv2.ProxyToAgent, t agentv2.EventType, cid string,
	peer *agent.Peer,
) (context.Context, bool) {
	if t == agentv2.EventType_EVENT_TYPE_REQUEST_HEADERS {
		if md := ev.GetRequestHeaders().GetMetadata(); md.GetTraceparent() != "" {
			pctx := i.prop.Extract(ctx, metadataCarrier{md})
			if sc := trace.SpanContextFromContext(pctx); sc.IsValid() && i.cache != nil && peer != nil && cid != "" {
				// The handshake lives with the connection; the event may
				// borrow a read buffer.
				i.cache.put(cacheKey{scope: peer.Handshake().GetProxyId(), cid: strings.Clone(cid)}, sc, i.cfg.now().UnixNano())
			}
			return pctx, false
		}
	} else if i.cache != nil && peer != nil && cid != "" {
		if sc, ok := i.cache.get(cacheKey{scope: peer.Handshake().GetProxyId(), cid: cid}, i.cfg.now().UnixNano()); ok {
			return trace.ContextWithRemoteSpanContext(ctx, sc), true
		}
	}
	if peer == nil {
		// A unary ProcessEvent call: its own request headers.
		if md, ok := metadata.FromIncomingContext(ctx); ok {
			return i.prop.Extract(ctx, grpcCarrier(md)), false
		}
	}
	return ctx, false
}

func finishServerSpan(span trace.Span, blockIsError bool, resp *agentv2.AgentResponse, err error) {
	code := 0
	if err != nil {
		code = int(agentwire.CodeOf(err))
	} else if d := decisionOf(resp); d != "" {
		span.SetAttributes(DecisionKey.String(d))
		if b := resp.GetBlock(); b != nil {
			span.SetAttributes(BlockStatusKey.Int(int(b.GetStatus())))
		}
	} else {
		// A nil response is an allow.
		span.SetAttributes(DecisionKey.String(OutcomeAllow))
	}
	span.SetAttributes(RPCStatusCodeKey.Int(code))
	if c, msg := spanStatus(true, blockIsError, resp, err); c != codes.Unset {
		span.SetStatus(c, msg)
	}
	if err != nil {
		span.RecordError(err)
	}
}

// serverOutcome is outcomeOf for a handler's result, where nil means allow.
func serverOutcome(resp *agentv2.AgentResponse, err error) string {
	if resp == nil && err == nil {
		return OutcomeAllow
	}
	return outcomeOf(resp, err, false)
}
