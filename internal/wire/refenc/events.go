package refenc

import (
	"encoding/base64"
	"slices"
	"time"

	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
)

// Events go out as the reference proxy sends them: JSON through
// serde_json::Value (sorted keys), MessagePack as a map (serde flatten)
// with correlation_id first and nested structs positional.

// event starts an event's top-level map.
func event(corr string, n int) *obj { return mp(n+1).add("correlation_id", corr) }

func requestHeadersOut(e *agentv2.RequestHeadersEvent) *obj {
	md := e.GetMetadata()
	meta := strct(12).
		add("correlation_id", md.GetCorrelationId()).
		add("request_id", md.GetRequestId()).
		add("client_ip", md.GetClientIp()).
		add("client_port", uint64(md.GetClientPort())).
		add("server_name", optStr(md.ServerName)).
		add("protocol", md.GetProtocol()).
		add("tls_version", optStr(md.TlsVersion)).
		add("tls_cipher", nil).
		add("route_id", optStr(md.RouteId)).
		add("upstream_id", optStr(md.UpstreamId)).
		add("timestamp", rfc3339(md.GetTimestampMs()))
	if md.Traceparent != nil { // skip_serializing_if = "Option::is_none"
		meta.add("traceparent", *md.Traceparent)
	}
	return event(md.GetCorrelationId(), 4).
		add("metadata", meta).
		add("method", e.GetMethod()).
		add("uri", e.GetUri()).
		add("headers", headersOut(e.GetHeaders()))
}

func requestHeadersIn(r *rd, v any) *agentv2.RequestHeadersEvent {
	top := r.rec(v, "request headers")
	x := r.rec(top.get(0, "metadata"), "metadata")
	md := &agentv2.RequestMetadata{
		CorrelationId: r.str(x.get(0, "correlation_id"), "correlation_id"),
		RequestId:     r.str(x.get(1, "request_id"), "request_id"),
		ClientIp:      r.str(x.get(2, "client_ip"), "client_ip"),
		ClientPort:    r.u32(x.get(3, "client_port"), "client_port"),
		ServerName:    r.optStr(x.get(4, "server_name"), "server_name"),
		Protocol:      r.str(x.get(5, "protocol"), "protocol"),
		TlsVersion:    r.optStr(x.get(6, "tls_version"), "tls_version"),
		RouteId:       r.optStr(x.get(8, "route_id"), "route_id"),
		UpstreamId:    r.optStr(x.get(9, "upstream_id"), "upstream_id"),
		TimestampMs:   unixMillis(r.str(x.get(10, "timestamp"), "timestamp")),
		Traceparent:   r.optStr(x.get(11, "traceparent"), "traceparent"),
	}
	return &agentv2.RequestHeadersEvent{
		Metadata: md,
		Method:   r.str(top.get(1, "method"), "method"),
		Uri:      r.str(top.get(2, "uri"), "uri"),
		Headers:  r.headersIn(top.get(3, "headers")),
	}
}

// headersOut groups headers into HashMap<String, Vec<String>>: names in
// first-seen order, values in wire order.
func headersOut(hs []*agentv2.Header) *obj {
	o := mp(len(hs))
	for _, h := range hs {
		i := slices.Index(o.keys, h.GetName())
		if i < 0 {
			o.add(h.GetName(), []string{h.GetValue()})
			continue
		}
		o.vals[i] = append(o.vals[i].([]string), h.GetValue())
	}
	return o
}

// headersIn reads a header map, names sorted (a HashMap has no order).
func (r *rd) headersIn(v any) []*agentv2.Header {
	m := r.dict(v, "headers")
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	slices.Sort(names)
	var hs []*agentv2.Header
	for _, k := range names {
		for _, val := range r.strs(m[k], "headers") {
			hs = append(hs, &agentv2.Header{Name: k, Value: val})
		}
	}
	return hs
}

// rfc3339 renders a timestamp as chrono's to_rfc3339 does ("" for none).
func rfc3339(ms uint64) string {
	if ms == 0 {
		return ""
	}
	return time.UnixMilli(int64(ms)).UTC().Format("2006-01-02T15:04:05.000-07:00")
}

// unixMillis reads an RFC 3339 timestamp; anything else (the reference's
// own tests send "0") reads as no timestamp.
func unixMillis(s string) uint64 {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil || t.UnixMilli() < 0 {
		return 0
	}
	return uint64(t.UnixMilli())
}

// bodyChunkOut is RequestBodyChunkEvent (sizeKey "bytes_received") or
// ResponseBodyChunkEvent ("bytes_sent"); data is base64 in both encodings.
func bodyChunkOut(e *agentv2.BodyChunkEvent, sizeKey string) *obj {
	return event(e.GetCorrelationId(), 5).
		add("data", base64.StdEncoding.EncodeToString(e.GetData())).
		add("is_last", e.GetIsLast()).
		add("total_size", optU64(e.TotalSize)).
		add("chunk_index", uint64(e.GetChunkIndex())).
		add(sizeKey, e.GetBytesTransferred())
}

func bodyChunkIn(r *rd, v any, sizeKey string) *agentv2.BodyChunkEvent {
	x := r.rec(v, "body chunk")
	return &agentv2.BodyChunkEvent{
		CorrelationId:    r.str(x.get(0, "correlation_id"), "correlation_id"),
		Data:             r.body(x.get(1, "data"), "data"),
		IsLast:           r.boolean(x.get(2, "is_last"), "is_last"),
		TotalSize:        r.optU64(x.get(3, "total_size"), "total_size"),
		ChunkIndex:       r.u32(x.get(4, "chunk_index"), "chunk_index"),
		BytesTransferred: r.u64(x.get(5, sizeKey), sizeKey),
	}
}

func responseHeadersOut(e *agentv2.ResponseHeadersEvent) *obj {
	return event(e.GetCorrelationId(), 2).
		add("status", uint64(e.GetStatusCode())).
		add("headers", headersOut(e.GetHeaders()))
}

func responseHeadersIn(r *rd, v any) *agentv2.ResponseHeadersEvent {
	x := r.rec(v, "response headers")
	return &agentv2.ResponseHeadersEvent{
		CorrelationId: r.str(x.get(0, "correlation_id"), "correlation_id"),
		StatusCode:    r.u32(x.get(1, "status"), "status"),
		Headers:       r.headersIn(x.get(2, "headers")),
	}
}

func requestCompleteOut(e *agentv2.RequestCompleteEvent) *obj {
	return event(e.GetCorrelationId(), 6).
		add("status", uint64(e.GetStatusCode())).
		add("duration_ms", e.GetDurationMs()).
		add("request_body_size", e.GetBytesReceived()).
		add("response_body_size", e.GetBytesSent()).
		add("upstream_attempts", uint64(0)).
		add("error", optStr(e.Error))
}

func requestCompleteIn(r *rd, v any) *agentv2.RequestCompleteEvent {
	x := r.rec(v, "request complete")
	return &agentv2.RequestCompleteEvent{
		CorrelationId: r.str(x.get(0, "correlation_id"), "correlation_id"),
		StatusCode:    r.u32(x.get(1, "status"), "status"),
		DurationMs:    r.u64(x.get(2, "duration_ms"), "duration_ms"),
		BytesReceived: r.u64(x.get(3, "request_body_size"), "request_body_size"),
		BytesSent:     r.u64(x.get(4, "response_body_size"), "response_body_size"),
		Error:         r.optStr(x.get(6, "error"), "error"),
	}
}

// opcodes maps our frame types to the reference's opcode names.
var opcodes = map[agentv2.WebSocketFrameEvent_FrameType]string{
	agentv2.WebSocketFrameEvent_FRAME_TYPE_UNSPECIFIED: "continuation",
	agentv2.WebSocketFrameEvent_FRAME_TYPE_TEXT:        "text",
	agentv2.WebSocketFrameEvent_FRAME_TYPE_BINARY:      "binary",
	agentv2.WebSocketFrameEvent_FRAME_TYPE_PING:        "ping",
	agentv2.WebSocketFrameEvent_FRAME_TYPE_PONG:        "pong",
	agentv2.WebSocketFrameEvent_FRAME_TYPE_CLOSE:       "close",
}

func websocketOut(e *agentv2.WebSocketFrameEvent) *obj {
	return event(e.GetCorrelationId(), 7).
		add("opcode", opcodes[e.GetFrameType()]).
		add("data", base64.StdEncoding.EncodeToString(e.GetPayload())).
		add("client_to_server", e.GetClientToServer()).
		add("frame_index", uint64(0)).
		add("fin", true).
		add("route_id", nil).
		add("client_ip", "")
}

func websocketIn(r *rd, v any) *agentv2.WebSocketFrameEvent {
	x := r.rec(v, "websocket frame")
	op := r.str(x.get(1, "opcode"), "opcode")
	e := &agentv2.WebSocketFrameEvent{
		CorrelationId:  r.str(x.get(0, "correlation_id"), "correlation_id"),
		Payload:        r.body(x.get(2, "data"), "data"),
		ClientToServer: r.boolean(x.get(3, "client_to_server"), "client_to_server"),
	}
	for t, name := range opcodes {
		if name == op {
			e.FrameType = t
			return e
		}
	}
	r.fail("opcode %q", op)
	return e
}

// guardrailOut maps the reference's inspection_type, categories, route_id
// and metadata from our context_json (prompt_injection if it names none).
func guardrailOut(e *agentv2.GuardrailInspectEvent) *obj {
	ctx, _ := jsonValue(e.GetContextJson()).(map[string]any)
	kind, _ := ctx["inspection_type"].(string)
	if kind == "" {
		kind = "prompt_injection"
	}
	o := event(e.GetCorrelationId(), 6).
		add("inspection_type", kind).
		add("content", e.GetContent())
	if e.Model != nil {
		o.add("model", *e.Model)
	}
	cats, _ := ctx["categories"].([]any)
	o.add("categories", orEmpty(cats))
	if route, ok := ctx["route_id"].(string); ok {
		o.add("route_id", route)
	}
	md, _ := ctx["metadata"].(map[string]any)
	if md == nil {
		md = map[string]any{}
	}
	return o.add("metadata", md)
}

func orEmpty(a []any) []any {
	if a == nil {
		return []any{}
	}
	return a
}

func guardrailIn(r *rd, v any) *agentv2.GuardrailInspectEvent {
	x := r.rec(v, "guardrail inspect")
	ctx := mp(4).add("inspection_type", r.str(x.get(1, "inspection_type"), "inspection_type"))
	for i, k := range []string{"categories", "route_id", "metadata"} {
		if val := x.get(4+i, k); val != nil {
			ctx.add(k, val)
		}
	}
	return &agentv2.GuardrailInspectEvent{
		CorrelationId: r.str(x.get(0, "correlation_id"), "correlation_id"),
		Content:       r.str(x.get(2, "content"), "content"),
		Model:         r.optStr(x.get(3, "model"), "model"),
		ContextJson:   string(appendJSON(nil, ctx, true)),
	}
}

// configureOut is what uds_server reads: {correlation_id, config,
// config_version}; the config travels as a JSON value.
func configureOut(e *agentv2.ConfigureEvent) *obj {
	return event("", 2).
		add("config", jsonValue(e.GetConfigJson())).
		add("config_version", optStr(e.ConfigVersion))
}

func configureIn(r *rd, v any) *agentv2.ConfigureEvent {
	x := r.rec(v, "configure")
	return &agentv2.ConfigureEvent{
		ConfigJson:    jsonText(x.get(1, "config")),
		ConfigVersion: r.optStr(x.get(2, "config_version"), "config_version"),
	}
}
