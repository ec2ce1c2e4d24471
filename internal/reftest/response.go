package reftest

// HeaderOp is protocol.rs HeaderOp: Op is "set", "add" or "remove".
type HeaderOp struct {
	Op, Name, Value string
}

func (h HeaderOp) value() Map {
	s := Struct{{"name", h.Name}}
	if h.Op != "remove" {
		s = append(s, Field{"value", h.Value})
	}
	return Variant(h.Op, s)
}

// Audit is AuditMetadata; the agent side adds correlation_id to Custom.
type Audit struct {
	Tags, RuleIDs, ReasonCodes []string
	Confidence                 *float32
	Custom                     Map
}

func (a Audit) value() Struct {
	var conf any
	if a.Confidence != nil {
		conf = F32(*a.Confidence)
	}
	custom := a.Custom
	if custom == nil {
		custom = Map{}
	}
	return Struct{{"tags", strList(a.Tags)}, {"rule_ids", strList(a.RuleIDs)},
		{"confidence", conf}, {"reason_codes", strList(a.ReasonCodes)},
		{"custom", custom}}
}

// Decision is protocol.rs Decision; Kind is "allow", "block", "redirect" or
// "challenge", and the other fields belong to the kind.
type Decision struct {
	Kind          string
	Status        int
	Body          *string
	Headers       map[string]string // block; nil is None
	URL           string
	ChallengeType string
	Params        map[string]string
}

func (d Decision) value() any {
	switch d.Kind {
	case "block":
		var hdrs any
		if d.Headers != nil {
			hdrs = stringMap(d.Headers)
		}
		return Variant("block", Struct{{"status", d.Status}, {"body", opt(d.Body)},
			{"headers", hdrs}})
	case "redirect":
		return Variant("redirect", Struct{{"url", d.URL}, {"status", d.Status}})
	case "challenge":
		return Variant("challenge", Struct{{"challenge_type", d.ChallengeType},
			{"params", stringMap(d.Params)}})
	}
	return Unit("allow")
}

// BodyMutation is protocol.rs BodyMutation (data base64 in a string).
type BodyMutation struct {
	Data       *string
	ChunkIndex uint32
}

// WebSocketDecision is protocol.rs WebSocketDecision: "allow", "drop" or
// "close" (with Code and Reason).
type WebSocketDecision struct {
	Kind   string
	Code   int
	Reason string
}

// Response is protocol.rs AgentResponse (frame 0x20).
type Response struct {
	Version         uint64
	Decision        Decision
	RequestHeaders  []HeaderOp
	ResponseHeaders []HeaderOp
	RoutingMetadata map[string]string
	Audit           Audit
	NeedsMore       bool
	RequestBodyMut  *BodyMutation
	ResponseBodyMut *BodyMutation
	WebSocket       *WebSocketDecision
}

// Value is the serde tree of r: ten fields, positional in MessagePack.
func (r Response) Value() Struct {
	ops := func(hs []HeaderOp) []any {
		out := make([]any, len(hs))
		for i, h := range hs {
			out[i] = h.value()
		}
		return out
	}
	mut := func(m *BodyMutation) any {
		if m == nil {
			return nil
		}
		return Struct{{"data", opt(m.Data)}, {"chunk_index", uint64(m.ChunkIndex)}}
	}
	var ws any
	if r.WebSocket != nil {
		ws = Unit(r.WebSocket.Kind)
		if r.WebSocket.Kind == "close" {
			ws = Variant("close", Struct{{"code", r.WebSocket.Code},
				{"reason", r.WebSocket.Reason}})
		}
	}
	return Struct{{"version", r.Version}, {"decision", r.Decision.value()},
		{"request_headers", ops(r.RequestHeaders)},
		{"response_headers", ops(r.ResponseHeaders)},
		{"routing_metadata", stringMap(r.RoutingMetadata)},
		{"audit", r.Audit.value()}, {"needs_more", r.NeedsMore},
		{"request_body_mutation", mut(r.RequestBodyMut)},
		{"response_body_mutation", mut(r.ResponseBodyMut)},
		{"websocket_decision", ws}}
}

// WithCorrelation returns r with audit.custom.correlation_id set, as
// uds_server.rs write_response does before sending.
func (r Response) WithCorrelation(id string) Response {
	custom := Map{}
	for _, f := range r.Audit.Custom {
		if f.Name != "correlation_id" {
			custom = append(custom, f)
		}
	}
	r.Audit.Custom = append(custom, Field{"correlation_id", id})
	return r
}

// Capabilities is UdsCapabilities (uds.rs); events use event_type_to_i32.
type Capabilities struct {
	AgentID, Name, Version string
	SupportedEvents        []int
	Features               map[string]any // missing features are false / 0
	MaxBodySize            uint64
	MaxConcurrency         uint64
	PreferredChunkSize     uint64
}

var featureNames = []string{"streaming_body", "websocket", "guardrails",
	"config_push", "metrics_export", "concurrent_requests", "cancellation",
	"flow_control", "health_reporting"}

func (c Capabilities) value() Struct {
	feats := Struct{}
	for _, n := range featureNames {
		v, ok := c.Features[n]
		if !ok {
			v = false
			if n == "concurrent_requests" {
				v = uint64(0)
			}
		}
		feats = append(feats, Field{n, v})
	}
	events := make([]any, len(c.SupportedEvents))
	for i, e := range c.SupportedEvents {
		events[i] = e
	}
	return Struct{{"agent_id", c.AgentID}, {"name", c.Name}, {"version", c.Version},
		{"supported_events", events}, {"features", feats},
		{"limits", Struct{{"max_body_size", c.MaxBodySize},
			{"max_concurrency", c.MaxConcurrency},
			{"preferred_chunk_size", c.PreferredChunkSize}}}}
}

// HandshakeRequest is UdsHandshakeRequest: always JSON.
func HandshakeRequest(proxyID, proxyVersion string, encs ...Encoding) Struct {
	s := Struct{{"supported_versions", []any{uint64(2)}}, {"proxy_id", proxyID},
		{"proxy_version", proxyVersion}, {"config", nil}}
	if len(encs) > 0 { // skip_serializing_if Vec::is_empty
		list := make([]any, len(encs))
		for i, e := range encs {
			list[i] = string(e)
		}
		s = append(s, Field{"supported_encodings", list})
	}
	return s
}

// HandshakeResponse is UdsHandshakeResponse: always JSON.
func HandshakeResponse(c Capabilities, errMsg *string, enc Encoding) Struct {
	return Struct{{"protocol_version", uint64(2)}, {"capabilities", c.value()},
		{"success", errMsg == nil}, {"error", opt(errMsg)}, {"encoding", string(enc)}}
}

// RegistrationRequest is reverse.rs RegistrationRequest: always JSON.
func RegistrationRequest(c Capabilities, token *string) Struct {
	return Struct{{"protocol_version", uint64(2)}, {"agent_id", c.AgentID},
		{"capabilities", c.value()}, {"auth_token", opt(token)}, {"metadata", nil}}
}

// RegistrationResponse is reverse.rs RegistrationResponse: always JSON.
func RegistrationResponse(errMsg *string, connectionID string) Struct {
	return Struct{{"success", errMsg == nil}, {"error", opt(errMsg)},
		{"proxy_id", "zentinel-proxy"}, {"proxy_version", "0.6.20"},
		{"connection_id", connectionID}}
}
