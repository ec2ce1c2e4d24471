package refenc

import (
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
)

// Handshakes and registrations are JSON in declaration order (serde_json
// on the structs themselves).

func handshakeRequestOut(h *agentv2.HandshakeRequest) *obj {
	vers := make([]any, len(h.GetSupportedVersions()))
	for i, v := range h.GetSupportedVersions() {
		vers[i] = uint64(v)
	}
	o := strct(5).
		add("supported_versions", vers).
		add("proxy_id", h.GetProxyId()).
		add("proxy_version", h.GetProxyVersion()).
		add("config", jsonValue(h.GetConfigJson()))
	if encs := refEncodings(h.GetSupportedEncodings()); len(encs) > 0 {
		o.add("supported_encodings", encs) // skip_serializing_if = "Vec::is_empty"
	}
	return o
}

// refEncodings keeps the encodings the reference knows, in order.
func refEncodings(encs []string) []string {
	var out []string
	for _, e := range encs {
		if e == NameJSON || e == NameMsgPack {
			out = append(out, e)
		}
	}
	return out
}

func handshakeRequestIn(r *rd, v any) *agentv2.HandshakeRequest {
	x := r.rec(v, "handshake request")
	h := &agentv2.HandshakeRequest{
		ProxyId:            r.str(x.get(1, "proxy_id"), "proxy_id"),
		ProxyVersion:       r.str(x.get(2, "proxy_version"), "proxy_version"),
		ConfigJson:         jsonText(x.get(3, "config")),
		SupportedEncodings: r.strs(x.get(4, "supported_encodings"), "supported_encodings"),
	}
	for _, e := range r.list(x.get(0, "supported_versions"), "supported_versions") {
		h.SupportedVersions = append(h.SupportedVersions, r.u32(e, "supported_versions"))
	}
	return h
}

func handshakeResponseOut(h *agentv2.HandshakeResponse) *obj {
	enc := h.GetEncoding()
	if enc != NameMsgPack {
		enc = NameJSON
	}
	return strct(5).
		add("protocol_version", uint64(h.GetProtocolVersion())).
		add("capabilities", capabilitiesOut(h.GetCapabilities())).
		add("success", h.GetSuccess()).
		add("error", optStr(h.Error)).
		add("encoding", enc)
}

func handshakeResponseIn(r *rd, v any) *agentv2.HandshakeResponse {
	x := r.rec(v, "handshake response")
	if _, ok := x.m["accepted"]; ok && x.m["success"] == nil {
		// The dialect of the reference's docs and Go SDK (request_id,
		// client_name, 0xF0 pings), which its proxy does not speak either.
		r.fail("the agent speaks the zentinel-agent-go-sdk v2 dialect (accepted, agent_name), not uds.rs's")
	}
	h := &agentv2.HandshakeResponse{
		ProtocolVersion: r.u32(x.get(0, "protocol_version"), "protocol_version"),
		Success:         r.boolean(x.get(2, "success"), "success"),
		Error:           r.optStr(x.get(3, "error"), "error"),
		Encoding:        r.str(x.get(4, "encoding"), "encoding"),
	}
	if h.Encoding == "" {
		h.Encoding = NameJSON // #[serde(default)]
	}
	h.Capabilities = capabilitiesIn(r, x.get(1, "capabilities"))
	h.Capabilities.ProtocolVersion = h.ProtocolVersion
	return h
}

func capabilitiesOut(c *agentv2.AgentCapabilities) *obj {
	evs := make([]any, 0, len(c.GetSupportedEvents()))
	for _, t := range c.GetSupportedEvents() {
		evs = append(evs, int64(t))
	}
	f, l := c.GetFeatures(), c.GetLimits()
	return strct(6).
		add("agent_id", c.GetAgentId()).
		add("name", c.GetName()).
		add("version", c.GetVersion()).
		add("supported_events", evs).
		add("features", strct(9).
			add("streaming_body", f.GetStreamingBody()).
			add("websocket", f.GetWebsocket()).
			add("guardrails", f.GetGuardrails()).
			add("config_push", f.GetConfigPush()).
			add("metrics_export", f.GetMetricsExport()).
			add("concurrent_requests", uint64(f.GetConcurrentRequests())).
			add("cancellation", f.GetCancellation()).
			add("flow_control", f.GetFlowControl()).
			add("health_reporting", f.GetHealthReporting())).
		add("limits", strct(3).
			add("max_body_size", l.GetMaxBodySize()).
			add("max_concurrency", uint64(l.GetMaxConcurrency())).
			add("preferred_chunk_size", l.GetPreferredChunkSize()))
}

// capabilitiesIn reads UdsCapabilities. Configure is 8 as agents write it
// (server.rs event_type_to_i32) or 0 as uds.rs's event_type_from_i32
// reads it; numbers neither defines are dropped, as uds.rs drops them.
func capabilitiesIn(r *rd, v any) *agentv2.AgentCapabilities {
	x := r.rec(v, "capabilities")
	f := r.rec(x.get(4, "features"), "features")
	l := r.rec(x.get(5, "limits"), "limits")
	c := &agentv2.AgentCapabilities{
		AgentId: r.str(x.get(0, "agent_id"), "agent_id"),
		Name:    r.str(x.get(1, "name"), "name"),
		Version: r.str(x.get(2, "version"), "version"),
		Features: &agentv2.AgentFeatures{
			StreamingBody:      r.boolean(f.get(0, "streaming_body"), "streaming_body"),
			Websocket:          r.boolean(f.get(1, "websocket"), "websocket"),
			Guardrails:         r.boolean(f.get(2, "guardrails"), "guardrails"),
			ConfigPush:         r.boolean(f.get(3, "config_push"), "config_push"),
			MetricsExport:      r.boolean(f.get(4, "metrics_export"), "metrics_export"),
			ConcurrentRequests: r.u32(f.get(5, "concurrent_requests"), "concurrent_requests"),
			Cancellation:       r.boolean(f.get(6, "cancellation"), "cancellation"),
			FlowControl:        r.boolean(f.get(7, "flow_control"), "flow_control"),
			HealthReporting:    r.boolean(f.get(8, "health_reporting"), "health_reporting"),
		},
		Limits: &agentv2.AgentLimits{
			MaxBodySize:        r.u64(l.get(0, "max_body_size"), "max_body_size"),
			MaxConcurrency:     r.u32(l.get(1, "max_concurrency"), "max_concurrency"),
			PreferredChunkSize: r.u64(l.get(2, "preferred_chunk_size"), "preferred_chunk_size"),
		},
	}
	for _, e := range r.list(x.get(3, "supported_events"), "supported_events") {
		switch n := r.i64(e, "supported_events"); {
		case n == 0:
			c.SupportedEvents = append(c.SupportedEvents, agentv2.EventType_EVENT_TYPE_CONFIGURE)
		case n >= 1 && n <= 8:
			c.SupportedEvents = append(c.SupportedEvents, agentv2.EventType(n))
		}
	}
	return c
}

// RegistrationIn decodes a reference agent's registration (reverse.rs
// RegistrationRequest, frame 0x01, JSON).
func RegistrationIn(p []byte) (*agentv2.RegistrationRequest, error) {
	v, err := parse(JSON, p)
	if err != nil {
		return nil, malformed("registration", err)
	}
	r := &rd{}
	x := r.rec(v, "registration")
	reg := &agentv2.RegistrationRequest{
		ProtocolVersion: r.u32(x.get(0, "protocol_version"), "protocol_version"),
		AgentId:         r.str(x.get(1, "agent_id"), "agent_id"),
		Capabilities:    capabilitiesIn(r, x.get(2, "capabilities")),
		AuthToken:       r.str(x.get(3, "auth_token"), "auth_token"),
	}
	reg.Capabilities.ProtocolVersion = reg.ProtocolVersion
	for k, val := range r.dict(x.get(4, "metadata"), "metadata") {
		if reg.Metadata == nil {
			reg.Metadata = make(map[string]string)
		}
		if s, ok := val.(string); ok {
			reg.Metadata[k] = s
		} else {
			reg.Metadata[k] = jsonText(val)
		}
	}
	return reg, done(r, "registration")
}

// AppendRegistration appends a reference registration frame (0x01, JSON).
func AppendRegistration(dst []byte, reg *agentv2.RegistrationRequest) ([]byte, error) {
	var md any
	if len(reg.GetMetadata()) > 0 {
		m := mp(len(reg.GetMetadata()))
		for _, k := range sortedKeys(reg.GetMetadata()) {
			m.add(k, reg.GetMetadata()[k])
		}
		md = m
	}
	var tok any
	if reg.GetAuthToken() != "" {
		tok = reg.GetAuthToken()
	}
	v := strct(5).
		add("protocol_version", uint64(reg.GetProtocolVersion())).
		add("agent_id", reg.GetAgentId()).
		add("capabilities", capabilitiesOut(reg.GetCapabilities())).
		add("auth_token", tok).
		add("metadata", md)
	return appendFrame(dst, JSON, payload{t: agentv2.ProxyToAgentFrameHandshake, v: v}, 0)
}

// AppendRegistrationResponse appends the proxy's answer to a reference
// registration (reverse.rs RegistrationResponse, frame 0x02, JSON).
func AppendRegistrationResponse(dst []byte, resp *agentv2.RegistrationResponse) ([]byte, error) {
	v := strct(5).
		add("success", resp.GetAccepted()).
		add("error", optStr(resp.Error)).
		add("proxy_id", resp.GetProxyId()).
		add("proxy_version", resp.GetProxyVersion()).
		add("connection_id", resp.GetConnectionId())
	return appendFrame(dst, JSON, payload{t: agentv2.AgentToProxyFrameHandshake, v: v}, 0)
}

// RegistrationResponseIn decodes the proxy's answer to a registration.
func RegistrationResponseIn(p []byte) (*agentv2.RegistrationResponse, error) {
	v, err := parse(JSON, p)
	if err != nil {
		return nil, malformed("registration response", err)
	}
	r := &rd{}
	x := r.rec(v, "registration response")
	resp := &agentv2.RegistrationResponse{
		Accepted:     r.boolean(x.get(0, "success"), "success"),
		Error:        r.optStr(x.get(1, "error"), "error"),
		ProxyId:      r.str(x.get(2, "proxy_id"), "proxy_id"),
		ProxyVersion: r.str(x.get(3, "proxy_version"), "proxy_version"),
		ConnectionId: r.str(x.get(4, "connection_id"), "connection_id"),
	}
	return resp, done(r, "registration response")
}
