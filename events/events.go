package events

import (
	"crypto/tls"
	"net"
	"net/http"
	"slices"
	"strconv"
	"time"

	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
)

// RequestHeaders returns the request_headers event of r: method, URI as
// received, protocol, every header (Host included, names in sorted order,
// values in order), and metadata from the connection (client address, TLS,
// server name).
func RequestHeaders(r *http.Request, correlationID string, opts ...Option) *agentv2.ProxyToAgent {
	c := newConfig(opts)
	md := &agentv2.RequestMetadata{
		CorrelationId: correlationID,
		RequestId:     c.requestID,
		Protocol:      r.Proto,
		TimestampMs:   uint64(c.now().UnixMilli()),
	}
	if md.RequestId == "" {
		md.RequestId = r.Header.Get("X-Request-Id")
	}
	if md.RequestId == "" {
		md.RequestId = correlationID
	}
	if host, port, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		md.ClientIp = host
		if p, err := strconv.ParseUint(port, 10, 16); err == nil {
			md.ClientPort = uint32(p)
		}
	} else {
		md.ClientIp = r.RemoteAddr
	}
	if r.TLS != nil {
		name := tls.VersionName(r.TLS.Version)
		md.TlsVersion = &name
		if r.TLS.ServerName != "" {
			md.ServerName = &r.TLS.ServerName
		}
	}
	if md.ServerName == nil && r.Host != "" {
		host := r.Host
		md.ServerName = &host
	}
	if c.routeID != "" {
		md.RouteId = &c.routeID
	}
	if c.upstream != "" {
		md.UpstreamId = &c.upstream
	}
	uri := r.RequestURI
	if uri == "" && r.URL != nil {
		uri = r.URL.RequestURI()
	}
	hs := headers(r.Header)
	if r.Host != "" && r.Header.Get("Host") == "" {
		hs = append([]*agentv2.Header{{Name: "Host", Value: r.Host}}, hs...)
	}
	return &agentv2.ProxyToAgent{Message: &agentv2.ProxyToAgent_RequestHeaders{RequestHeaders: &agentv2.RequestHeadersEvent{
		Metadata: md, Method: r.Method, Uri: uri, HttpVersion: r.Proto, Headers: hs,
	}}}
}

// ResponseHeaders returns the response_headers event of a response with
// status and header.
func ResponseHeaders(correlationID string, status int, header http.Header) *agentv2.ProxyToAgent {
	return &agentv2.ProxyToAgent{Message: &agentv2.ProxyToAgent_ResponseHeaders{ResponseHeaders: &agentv2.ResponseHeadersEvent{
		CorrelationId: correlationID, StatusCode: uint32(status), Headers: headers(header),
	}}}
}

// Chunk describes one body chunk: its index in the body, whether it is
// the last, the bytes of the body sent before it, and the body's size if
// known (negative if not, as http.Request.ContentLength).
type Chunk struct {
	Index  uint32
	Last   bool
	Offset uint64
	Total  int64
}

// RequestBodyChunk returns a request_body_chunk event carrying data (not
// copied: do not change it until the event is sent).
func RequestBodyChunk(correlationID string, data []byte, ch Chunk, opts ...Option) *agentv2.ProxyToAgent {
	return &agentv2.ProxyToAgent{Message: &agentv2.ProxyToAgent_RequestBodyChunk{RequestBodyChunk: bodyChunk(correlationID, data, ch, opts)}}
}

// ResponseBodyChunk returns a response_body_chunk event carrying data (not
// copied: do not change it until the event is sent).
func ResponseBodyChunk(correlationID string, data []byte, ch Chunk, opts ...Option) *agentv2.ProxyToAgent {
	return &agentv2.ProxyToAgent{Message: &agentv2.ProxyToAgent_ResponseBodyChunk{ResponseBodyChunk: bodyChunk(correlationID, data, ch, opts)}}
}

func bodyChunk(correlationID string, data []byte, ch Chunk, opts []Option) *agentv2.BodyChunkEvent {
	c := newConfig(opts)
	ev := &agentv2.BodyChunkEvent{
		CorrelationId: correlationID, ChunkIndex: ch.Index, Data: data, IsLast: ch.Last,
		BytesTransferred: ch.Offset + uint64(len(data)), TimestampMs: uint64(c.now().UnixMilli()),
	}
	if ch.Total >= 0 {
		total := uint64(ch.Total)
		ev.TotalSize = &total
	}
	return ev
}

// Completion is how a request ended, for RequestComplete.
type Completion struct {
	Status        int
	Duration      time.Duration
	BytesReceived uint64
	BytesSent     uint64
	Upstream      string // empty: absent
	FromCache     bool
	Err           error // nil: the request did not fail
}

// RequestComplete returns the request_complete event that ends a request.
func RequestComplete(correlationID string, done Completion) *agentv2.ProxyToAgent {
	ev := &agentv2.RequestCompleteEvent{
		CorrelationId: correlationID, StatusCode: uint32(done.Status), DurationMs: uint64(done.Duration.Milliseconds()),
		BytesReceived: done.BytesReceived, BytesSent: done.BytesSent, FromCache: done.FromCache,
	}
	if done.Upstream != "" {
		ev.Upstream = &done.Upstream
	}
	if done.Err != nil {
		msg := done.Err.Error()
		ev.Error = &msg
	}
	return &agentv2.ProxyToAgent{Message: &agentv2.ProxyToAgent_RequestComplete{RequestComplete: ev}}
}

// WebSocketFrame returns a websocket_frame event for one frame of the
// given kind (payload not copied).
func WebSocketFrame(correlationID string, clientToServer bool, kind agentv2.WebSocketFrameEvent_FrameType, payload []byte) *agentv2.ProxyToAgent {
	return &agentv2.ProxyToAgent{Message: &agentv2.ProxyToAgent_WebsocketFrame{WebsocketFrame: &agentv2.WebSocketFrameEvent{
		CorrelationId: correlationID, ClientToServer: clientToServer, FrameType: kind, Payload: payload,
	}}}
}

// Guardrail returns a guardrail event asking agents to inspect content;
// model empty: absent.
func Guardrail(correlationID string, kind agentv2.GuardrailContentType, content, model string) *agentv2.ProxyToAgent {
	ev := &agentv2.GuardrailInspectEvent{CorrelationId: correlationID, Content: content, ContentType: kind}
	if model != "" {
		ev.Model = &model
	}
	return &agentv2.ProxyToAgent{Message: &agentv2.ProxyToAgent_Guardrail{Guardrail: ev}}
}

// Configure returns a configure event pushing configJSON; version empty:
// absent.
func Configure(configJSON, version string, opts ...Option) *agentv2.ProxyToAgent {
	c := newConfig(opts)
	ev := &agentv2.ConfigureEvent{ConfigJson: configJSON, TimestampMs: uint64(c.now().UnixMilli())}
	if version != "" {
		ev.ConfigVersion = &version
	}
	return &agentv2.ProxyToAgent{Message: &agentv2.ProxyToAgent_Configure{Configure: ev}}
}

// headers flattens h: names in sorted order, each name's values in order.
func headers(h http.Header) []*agentv2.Header {
	names := make([]string, 0, len(h))
	n := 0
	for name, vs := range h {
		names = append(names, name)
		n += len(vs)
	}
	slices.Sort(names)
	out := make([]*agentv2.Header, 0, n)
	for _, name := range names {
		for _, v := range h[name] {
			out = append(out, &agentv2.Header{Name: name, Value: v})
		}
	}
	return out
}
