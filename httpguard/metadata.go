package httpguard

import (
	"net"
	"net/http"
	"net/netip"
	"strings"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/agentwire/agentwire/events"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
)

// requestHeaders returns the request_headers event of r: the events
// builder's, with the route, the client behind trusted proxies and the
// trace context of r's context.
func (x *exchange) requestHeaders(r *http.Request) *agentv2.ProxyToAgent {
	g := x.g
	ev := events.RequestHeaders(r, x.corr, x.rt.eventOpts...)
	md := ev.GetRequestHeaders().GetMetadata()
	if !setClientIP(r, md) && len(g.cfg.trusted) > 0 {
		if ip, ok := clientBehind(r, g.cfg.trusted); ok {
			md.ClientIp, md.ClientPort = ip, 0
		}
	}
	if sc := trace.SpanContextFromContext(r.Context()); sc.IsValid() {
		carrier := propagation.MapCarrier{}
		g.cfg.propagator.Inject(r.Context(), carrier)
		if tp := carrier.Get("traceparent"); tp != "" {
			md.Traceparent = &tp
		}
		if ts := carrier.Get("tracestate"); ts != "" {
			md.Tracestate = &ts
		}
	}
	return ev
}

// clientBehind returns the client address of r when its connection comes
// from a trusted proxy: the rightmost X-Forwarded-For address that is not
// itself trusted (the port is unknown). An unparsable entry ends the walk
// at the hop before it.
func clientBehind(r *http.Request, trusted []netip.Prefix) (string, bool) {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	peer, err := netip.ParseAddr(host)
	if err != nil || !isTrusted(peer.Unmap(), trusted) {
		return "", false
	}
	hops := r.Header.Values("X-Forwarded-For")
	client := peer
	for h := len(hops) - 1; h >= 0; h-- {
		list := strings.Split(hops[h], ",")
		for j := len(list) - 1; j >= 0; j-- {
			addr, err := netip.ParseAddr(strings.TrimSpace(list[j]))
			if err != nil {
				return client.String(), true
			}
			client = addr.Unmap()
			if !isTrusted(client, trusted) {
				return client.String(), true
			}
		}
	}
	return client.String(), true
}

func isTrusted(a netip.Addr, trusted []netip.Prefix) bool {
	for _, p := range trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// copyRequestHeaders returns ev with its own envelope, event and metadata
// (sharing the header list), for agents asked in parallel: the connection
// writes the event id, and an interceptor may write trace context.
func copyRequestHeaders(ev *agentv2.ProxyToAgent) *agentv2.ProxyToAgent {
	rh := ev.GetRequestHeaders()
	md := rh.GetMetadata()
	cp := &agentv2.RequestMetadata{
		CorrelationId: md.GetCorrelationId(), RequestId: md.GetRequestId(), ClientIp: md.GetClientIp(),
		ClientPort: md.GetClientPort(), ServerName: md.ServerName, Protocol: md.GetProtocol(),
		TlsVersion: md.TlsVersion, RouteId: md.RouteId, UpstreamId: md.UpstreamId,
		TimestampMs: md.GetTimestampMs(), Traceparent: md.Traceparent, Tracestate: md.Tracestate,
	}
	return &agentv2.ProxyToAgent{Message: &agentv2.ProxyToAgent_RequestHeaders{RequestHeaders: &agentv2.RequestHeadersEvent{
		Metadata: cp, Method: rh.GetMethod(), Uri: rh.GetUri(), HttpVersion: rh.GetHttpVersion(), Headers: rh.GetHeaders(),
	}}}
}
