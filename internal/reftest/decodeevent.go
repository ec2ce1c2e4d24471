package reftest

import (
	"encoding/base64"
	"fmt"
)

var metadataNames = []string{"correlation_id", "request_id", "client_ip", "client_port",
	"server_name", "protocol", "tls_version", "tls_cipher", "route_id", "upstream_id",
	"timestamp", "traceparent"}

// DecodeEvent reads an event frame (0x10–0x17) the way uds_server.rs does.
func DecodeEvent(enc Encoding, typ byte, p []byte) (Event, error) {
	v, err := Unmarshal(enc, p)
	if err != nil {
		return nil, err
	}
	r := asRecord(v)
	if r.m == nil {
		return nil, fmt.Errorf("reftest: event 0x%02x: want a map, got %T", typ, v)
	}
	b64 := func(name string) ([]byte, error) {
		data, err := base64.StdEncoding.DecodeString(r.str(name))
		if err != nil {
			return nil, fmt.Errorf("reftest: event 0x%02x: %s: %w", typ, name, err)
		}
		return data, nil
	}
	id := r.str("correlation_id")
	switch typ {
	case TypeRequestHeaders:
		m := asRecord(r.get("metadata"), metadataNames...)
		if m.err != nil {
			return nil, m.err
		}
		return RequestHeaders{Metadata: Metadata{CorrelationID: m.str("correlation_id"),
			RequestID: m.str("request_id"), ClientIP: m.str("client_ip"),
			ClientPort: int(m.uint("client_port")), ServerName: m.optStr("server_name"),
			Protocol: m.str("protocol"), TLSVersion: m.optStr("tls_version"),
			TLSCipher: m.optStr("tls_cipher"), RouteID: m.optStr("route_id"),
			UpstreamID: m.optStr("upstream_id"), Timestamp: m.str("timestamp"),
			Traceparent: m.optStr("traceparent")},
			Method: r.str("method"), URI: r.str("uri"), Headers: headerLists(r.get("headers"))}, nil
	case TypeRequestBodyChunk, TypeResponseBodyChunk:
		data, err := b64("data")
		if err != nil {
			return nil, err
		}
		ev := BodyChunk{Response: typ == TypeResponseBodyChunk, CorrelationID: id, Data: data,
			IsLast: r.bool("is_last"), ChunkIndex: uint32(r.uint("chunk_index")),
			Bytes: r.uint("bytes_received") + r.uint("bytes_sent")}
		if n, ok := Uint(r.get("total_size")); ok {
			ev.TotalSize = &n
		}
		return ev, nil
	case TypeResponseHeaders:
		return ResponseHeaders{CorrelationID: id, Status: int(r.uint("status")),
			Headers: headerLists(r.get("headers"))}, nil
	case TypeRequestComplete:
		return RequestComplete{CorrelationID: id, Status: int(r.uint("status")),
			DurationMS: r.uint("duration_ms"), RequestBodySize: r.uint("request_body_size"),
			ResponseBodySize: r.uint("response_body_size"),
			UpstreamAttempts: r.uint("upstream_attempts"), Error: r.optStr("error")}, nil
	case TypeWebSocketFrame:
		data, err := b64("data")
		if err != nil {
			return nil, err
		}
		return WebSocketFrame{CorrelationID: id, Opcode: r.str("opcode"), Data: data,
			ClientToServer: r.bool("client_to_server"), FrameIndex: r.uint("frame_index"),
			Fin: r.bool("fin"), RouteID: r.optStr("route_id"), ClientIP: r.str("client_ip")}, nil
	case TypeGuardrailInspect:
		return GuardrailInspect{CorrelationID: id, InspectionType: r.str("inspection_type"),
			Content: r.str("content"), Model: r.optStr("model"), Categories: r.strs("categories"),
			RouteID: r.optStr("route_id"), Metadata: r.strMap("metadata")}, nil
	case TypeConfigure:
		cfg, _ := r.get("config").(map[string]any)
		ev := Configure{CorrelationID: id, ConfigVersion: r.optStr("config_version")}
		for _, k := range sortedKeys(cfg) {
			ev.Config = append(ev.Config, Field{k, cfg[k]})
		}
		return ev, nil
	}
	return nil, fmt.Errorf("reftest: 0x%02x is not an event", typ)
}

func headerLists(v any) map[string][]string {
	m, _ := v.(map[string]any)
	out := make(map[string][]string, len(m))
	for k, x := range m {
		r := record{m: map[string]any{"v": x}}
		out[k] = r.strs("v")
	}
	return out
}
