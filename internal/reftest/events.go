package reftest

import (
	"encoding/base64"
	"sort"
)

// Event is a proxy→agent event in the reference's shape (protocol.rs).
type Event interface {
	// Type is the event's frame type.
	Type() byte
	// Correlation is the id uds.rs sends the event under.
	Correlation() string
	// fields lists the serde struct's fields in declaration order, with
	// Option fields marked skip_serializing_if left out when absent.
	fields(enc Encoding) []Field
}

// EventPayload encodes ev the way uds.rs send_event does. JSON:
// serde_json::to_value, then correlation_id inserted, keys sorted.
// MessagePack: a #[serde(flatten)] wrapper, so a map whose first key is the
// wrapper's correlation_id followed by the event's fields (nested structs stay
// positional arrays). An event with its own correlation_id field then carries
// the key twice (dup=true, byte-exact with uds.rs); dup=false writes it once.
func EventPayload(enc Encoding, ev Event, dup bool) ([]byte, error) {
	fs := ev.fields(enc)
	out := Map{{"correlation_id", ev.Correlation()}}
	for _, f := range fs {
		if f.Name == "correlation_id" && (enc == JSON || !dup) {
			continue
		}
		out = append(out, f)
	}
	return Marshal(enc, out, true)
}

// Metadata is RequestMetadata (protocol.rs).
type Metadata struct {
	CorrelationID, RequestID, ClientIP string
	ClientPort                         int
	ServerName                         *string
	Protocol                           string
	TLSVersion, TLSCipher              *string
	RouteID, UpstreamID                *string
	Timestamp                          string
	Traceparent                        *string // skip_serializing_if none
}

func (m Metadata) value() Struct {
	s := Struct{
		{"correlation_id", m.CorrelationID}, {"request_id", m.RequestID},
		{"client_ip", m.ClientIP}, {"client_port", m.ClientPort},
		{"server_name", opt(m.ServerName)}, {"protocol", m.Protocol},
		{"tls_version", opt(m.TLSVersion)}, {"tls_cipher", opt(m.TLSCipher)},
		{"route_id", opt(m.RouteID)}, {"upstream_id", opt(m.UpstreamID)},
		{"timestamp", m.Timestamp},
	}
	if m.Traceparent != nil {
		s = append(s, Field{"traceparent", *m.Traceparent})
	}
	return s
}

// RequestHeaders is RequestHeadersEvent (0x10).
type RequestHeaders struct {
	Metadata Metadata
	Method   string
	URI      string
	Headers  map[string][]string
}

func (e RequestHeaders) Type() byte          { return TypeRequestHeaders }
func (e RequestHeaders) Correlation() string { return e.Metadata.CorrelationID }
func (e RequestHeaders) fields(Encoding) []Field {
	return []Field{{"metadata", e.Metadata.value()}, {"method", e.Method},
		{"uri", e.URI}, {"headers", headerMap(e.Headers)}}
}

// BodyChunk is RequestBodyChunkEvent (0x11) or, with Response set,
// ResponseBodyChunkEvent (0x13); Data travels base64 in a string.
type BodyChunk struct {
	Response      bool
	CorrelationID string
	Data          []byte
	IsLast        bool
	TotalSize     *uint64
	ChunkIndex    uint32
	Bytes         uint64 // bytes_received, or bytes_sent for responses
}

func (e BodyChunk) Type() byte {
	if e.Response {
		return TypeResponseBodyChunk
	}
	return TypeRequestBodyChunk
}
func (e BodyChunk) Correlation() string { return e.CorrelationID }
func (e BodyChunk) fields(Encoding) []Field {
	counter := "bytes_received"
	if e.Response {
		counter = "bytes_sent"
	}
	return []Field{{"correlation_id", e.CorrelationID},
		{"data", base64.StdEncoding.EncodeToString(e.Data)}, {"is_last", e.IsLast},
		{"total_size", optU(e.TotalSize)}, {"chunk_index", uint64(e.ChunkIndex)},
		{counter, e.Bytes}}
}

// ResponseHeaders is ResponseHeadersEvent (0x12).
type ResponseHeaders struct {
	CorrelationID string
	Status        int
	Headers       map[string][]string
}

func (e ResponseHeaders) Type() byte          { return TypeResponseHeaders }
func (e ResponseHeaders) Correlation() string { return e.CorrelationID }
func (e ResponseHeaders) fields(Encoding) []Field {
	return []Field{{"correlation_id", e.CorrelationID}, {"status", e.Status},
		{"headers", headerMap(e.Headers)}}
}

// RequestComplete is RequestCompleteEvent (0x14).
type RequestComplete struct {
	CorrelationID                     string
	Status                            int
	DurationMS                        uint64
	RequestBodySize, ResponseBodySize uint64
	UpstreamAttempts                  uint64
	Error                             *string
}

func (e RequestComplete) Type() byte          { return TypeRequestComplete }
func (e RequestComplete) Correlation() string { return e.CorrelationID }
func (e RequestComplete) fields(Encoding) []Field {
	return []Field{{"correlation_id", e.CorrelationID}, {"status", e.Status},
		{"duration_ms", e.DurationMS}, {"request_body_size", e.RequestBodySize},
		{"response_body_size", e.ResponseBodySize},
		{"upstream_attempts", e.UpstreamAttempts}, {"error", opt(e.Error)}}
}

// WebSocketFrame is WebSocketFrameEvent (0x15); Data travels base64.
type WebSocketFrame struct {
	CorrelationID  string
	Opcode         string
	Data           []byte
	ClientToServer bool
	FrameIndex     uint64
	Fin            bool
	RouteID        *string
	ClientIP       string
}

func (e WebSocketFrame) Type() byte          { return TypeWebSocketFrame }
func (e WebSocketFrame) Correlation() string { return e.CorrelationID }
func (e WebSocketFrame) fields(Encoding) []Field {
	return []Field{{"correlation_id", e.CorrelationID}, {"opcode", e.Opcode},
		{"data", base64.StdEncoding.EncodeToString(e.Data)},
		{"client_to_server", e.ClientToServer}, {"frame_index", e.FrameIndex},
		{"fin", e.Fin}, {"route_id", opt(e.RouteID)}, {"client_ip", e.ClientIP}}
}

// GuardrailInspect is GuardrailInspectEvent (0x16).
type GuardrailInspect struct {
	CorrelationID  string
	InspectionType string // "prompt_injection" or "pii_detection"
	Content        string
	Model          *string // skip_serializing_if none
	Categories     []string
	RouteID        *string // skip_serializing_if none
	Metadata       map[string]string
}

func (e GuardrailInspect) Type() byte          { return TypeGuardrailInspect }
func (e GuardrailInspect) Correlation() string { return e.CorrelationID }
func (e GuardrailInspect) fields(Encoding) []Field {
	fs := []Field{{"correlation_id", e.CorrelationID},
		{"inspection_type", Unit(e.InspectionType)}, {"content", e.Content}}
	if e.Model != nil {
		fs = append(fs, Field{"model", *e.Model})
	}
	fs = append(fs, Field{"categories", strList(e.Categories)})
	if e.RouteID != nil {
		fs = append(fs, Field{"route_id", *e.RouteID})
	}
	return append(fs, Field{"metadata", stringMap(e.Metadata)})
}

// Configure is the configure event (0x17): uds.rs sends a serde_json::Value
// flattened beside correlation_id; uds_server.rs reads config and
// config_version from it.
type Configure struct {
	CorrelationID string
	Config        Map
	ConfigVersion *string
}

func (e Configure) Type() byte          { return TypeConfigure }
func (e Configure) Correlation() string { return e.CorrelationID }
func (e Configure) fields(Encoding) []Field {
	// A serde_json::Value object is a BTreeMap: sorted in both encodings.
	fs := []Field{{"config", sortedMap(e.Config)}}
	if e.ConfigVersion != nil {
		fs = append(fs, Field{"config_version", *e.ConfigVersion})
	}
	return fs
}

func opt(s *string) any {
	if s == nil {
		return nil
	}
	return *s
}

func optU(u *uint64) any {
	if u == nil {
		return nil
	}
	return *u
}

func strList(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

// headerMap is a HashMap<String, Vec<String>>; keys sorted here so frames
// are reproducible (the reference's order is unspecified).
func headerMap(h map[string][]string) Map {
	m := Map{}
	for _, k := range sortedKeys(h) {
		m = append(m, Field{k, strList(h[k])})
	}
	return m
}

func stringMap(h map[string]string) Map {
	m := Map{}
	for _, k := range sortedKeys(h) {
		m = append(m, Field{k, h[k]})
	}
	return m
}

func sortedMap(m Map) Map {
	out := append(Map(nil), m...)
	sort.SliceStable(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
