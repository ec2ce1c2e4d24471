package reftest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"

	"github.com/vmihailenco/msgpack/v5"
)

// Unmarshal decodes a payload into a generic tree: map[string]any, []any,
// string, bool, nil, []byte (MessagePack bin), and numbers (json.Number or
// Go integer and float types). A MessagePack session's JSON payload
// (cancel, ping, pong) is recognised by its leading '{'.
func Unmarshal(enc Encoding, p []byte) (any, error) {
	if enc == JSON || (len(p) > 0 && p[0] == '{') {
		d := json.NewDecoder(bytes.NewReader(p))
		d.UseNumber()
		var v any
		if err := d.Decode(&v); err != nil {
			return nil, fmt.Errorf("reftest: json: %w", err)
		}
		return v, nil
	}
	v, err := msgpack.NewDecoder(bytes.NewReader(p)).DecodeInterface()
	if err != nil {
		return nil, fmt.Errorf("reftest: msgpack: %w", err)
	}
	return v, nil
}

// record reads a serde struct the way serde does: from a map by name, or
// from a positional array (MessagePack) by the declared field order.
type record struct {
	m     map[string]any
	a     []any
	names []string
	err   error
}

func asRecord(v any, names ...string) record {
	switch v := v.(type) {
	case map[string]any:
		return record{m: v, names: names}
	case []any:
		return record{a: v, names: names}
	}
	return record{err: fmt.Errorf("reftest: want a struct, got %T", v)}
}

func (r *record) get(name string) any {
	if r.m != nil {
		return r.m[name]
	}
	for i, n := range r.names {
		if n == name {
			if i < len(r.a) {
				return r.a[i]
			}
			return nil
		}
	}
	return nil
}

func (r *record) str(name string) string {
	s, _ := r.get(name).(string)
	return s
}

func (r *record) optStr(name string) *string {
	if s, ok := r.get(name).(string); ok {
		return &s
	}
	return nil
}

func (r *record) bool(name string) bool {
	b, _ := r.get(name).(bool)
	return b
}

func (r *record) uint(name string) uint64 {
	n, _ := Uint(r.get(name))
	return n
}

func (r *record) strs(name string) []string {
	list, _ := r.get(name).([]any)
	out := make([]string, 0, len(list))
	for _, x := range list {
		s, _ := x.(string)
		out = append(out, s)
	}
	return out
}

func (r *record) strMap(name string) map[string]string {
	m, _ := r.get(name).(map[string]any)
	if m == nil {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k], _ = v.(string)
	}
	return out
}

// Uint reads any non-negative integer the two decoders produce.
func Uint(v any) (uint64, bool) {
	switch n := v.(type) {
	case json.Number:
		u, err := n.Int64()
		return uint64(u), err == nil && u >= 0
	case uint8, uint16, uint32, uint64:
		return msgpackUint(n), true
	case int8, int16, int32, int64:
		i := msgpackInt(n)
		return uint64(i), i >= 0
	case float64:
		return uint64(n), n >= 0 && n == math.Trunc(n)
	}
	return 0, false
}

func msgpackUint(v any) uint64 {
	switch n := v.(type) {
	case uint8:
		return uint64(n)
	case uint16:
		return uint64(n)
	case uint32:
		return uint64(n)
	}
	return v.(uint64)
}

func msgpackInt(v any) int64 {
	switch n := v.(type) {
	case int8:
		return int64(n)
	case int16:
		return int64(n)
	case int32:
		return int64(n)
	}
	return v.(int64)
}

func toFloat(v any) (float64, bool) {
	switch n := v.(type) {
	case json.Number:
		f, err := n.Float64()
		return f, err == nil
	case float32:
		return float64(n), true
	case float64:
		return n, true
	}
	u, ok := Uint(v)
	return float64(u), ok
}

// DecodeResponse reads an agent response (0x20) and the correlation id it
// carries in audit.custom, as uds.rs does.
func DecodeResponse(enc Encoding, p []byte) (Response, string, error) {
	v, err := Unmarshal(enc, p)
	if err != nil {
		return Response{}, "", err
	}
	r := asRecord(v, "version", "decision", "request_headers", "response_headers",
		"routing_metadata", "audit", "needs_more", "request_body_mutation",
		"response_body_mutation", "websocket_decision")
	if r.err != nil {
		return Response{}, "", r.err
	}
	out := Response{Version: r.uint("version"), NeedsMore: r.bool("needs_more"),
		RoutingMetadata: r.strMap("routing_metadata")}
	if out.Decision, err = decodeDecision(r.get("decision")); err != nil {
		return Response{}, "", err
	}
	out.RequestHeaders = decodeOps(r.get("request_headers"))
	out.ResponseHeaders = decodeOps(r.get("response_headers"))
	out.RequestBodyMut = decodeMutation(r.get("request_body_mutation"))
	out.ResponseBodyMut = decodeMutation(r.get("response_body_mutation"))
	out.WebSocket = decodeWebSocket(r.get("websocket_decision"))
	a := asRecord(r.get("audit"), "tags", "rule_ids", "confidence", "reason_codes", "custom")
	var id string
	if a.err == nil {
		out.Audit = Audit{Tags: a.strs("tags"), RuleIDs: a.strs("rule_ids"),
			ReasonCodes: a.strs("reason_codes")}
		if f, ok := toFloat(a.get("confidence")); ok {
			c := float32(f)
			out.Audit.Confidence = &c
		}
		custom, _ := a.get("custom").(map[string]any)
		for _, k := range sortedKeys(custom) {
			out.Audit.Custom = append(out.Audit.Custom, Field{k, custom[k]})
		}
		id, _ = custom["correlation_id"].(string)
	}
	return out, id, nil
}

// variant splits an externally tagged enum value into its name and data.
func variant(v any) (string, any, error) {
	switch v := v.(type) {
	case string:
		return v, nil, nil
	case map[string]any:
		if len(v) == 1 {
			for k, data := range v {
				return k, data, nil
			}
		}
	}
	return "", nil, fmt.Errorf("reftest: not an enum variant: %v", v)
}

func decodeDecision(v any) (Decision, error) {
	kind, data, err := variant(v)
	if err != nil {
		return Decision{}, err
	}
	d := Decision{Kind: kind}
	switch kind {
	case "allow":
	case "block":
		r := asRecord(data, "status", "body", "headers")
		d.Status, d.Body, d.Headers = int(r.uint("status")), r.optStr("body"), r.strMap("headers")
	case "redirect":
		r := asRecord(data, "url", "status")
		d.URL, d.Status = r.str("url"), int(r.uint("status"))
	case "challenge":
		r := asRecord(data, "challenge_type", "params")
		d.ChallengeType, d.Params = r.str("challenge_type"), r.strMap("params")
	default:
		return Decision{}, fmt.Errorf("reftest: unknown decision %q", kind)
	}
	return d, nil
}

func decodeOps(v any) []HeaderOp {
	list, _ := v.([]any)
	var out []HeaderOp
	for _, x := range list {
		op, data, err := variant(x)
		if err != nil {
			continue
		}
		r := asRecord(data, "name", "value")
		out = append(out, HeaderOp{op, r.str("name"), r.str("value")})
	}
	return out
}

func decodeMutation(v any) *BodyMutation {
	if v == nil {
		return nil
	}
	r := asRecord(v, "data", "chunk_index")
	return &BodyMutation{Data: r.optStr("data"), ChunkIndex: uint32(r.uint("chunk_index"))}
}

func decodeWebSocket(v any) *WebSocketDecision {
	kind, data, err := variant(v)
	if v == nil || err != nil {
		return nil
	}
	r := asRecord(data, "code", "reason")
	return &WebSocketDecision{Kind: kind, Code: int(r.uint("code")), Reason: r.str("reason")}
}
