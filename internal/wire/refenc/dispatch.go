package refenc

import (
	"fmt"

	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
)

// The reference numbers its frames as our frame table does (agentv2
// FrameType constants); only the payloads differ. The encoders go through
// the generated visitors: an event kind the schema gains has no reference
// form and fails with ErrUnknownType; a new control message fails the
// build until it is mapped here.

// proxyPayload maps a proxy's envelope to its reference message.
func proxyPayload(m *agentv2.ProxyToAgent) (payload, error) {
	if p, ok := agentv2.VisitEvent[payload](eventOut{}, m); ok {
		if p.v == nil {
			return payload{}, unknown("the reference has no %T", m.GetMessage())
		}
		p.t, p.sorted = m.FrameType(), true
		return p, nil
	}
	var c proxyControlOut
	known, err := agentv2.VisitProxyToAgentControl(&c, m)
	if !known {
		return payload{}, unknown("the reference has no %T", m.GetMessage())
	}
	c.p.t = m.FrameType()
	return c.p, err
}

// eventOut maps each event to its reference struct; events are JSON
// objects with sorted keys (the reference builds them as serde_json::Value).
type eventOut struct {
	agentv2.UnimplementedEventVisitor[payload]
}

func (eventOut) VisitRequestHeaders(_ *agentv2.ProxyToAgent, m *agentv2.RequestHeadersEvent) payload {
	return payload{v: requestHeadersOut(m)}
}

func (eventOut) VisitRequestBodyChunk(_ *agentv2.ProxyToAgent, m *agentv2.BodyChunkEvent) payload {
	return payload{v: bodyChunkOut(m, "bytes_received")}
}

func (eventOut) VisitResponseHeaders(_ *agentv2.ProxyToAgent, m *agentv2.ResponseHeadersEvent) payload {
	return payload{v: responseHeadersOut(m)}
}

func (eventOut) VisitResponseBodyChunk(_ *agentv2.ProxyToAgent, m *agentv2.BodyChunkEvent) payload {
	return payload{v: bodyChunkOut(m, "bytes_sent")}
}

func (eventOut) VisitWebsocketFrame(_ *agentv2.ProxyToAgent, m *agentv2.WebSocketFrameEvent) payload {
	return payload{v: websocketOut(m)}
}

func (eventOut) VisitGuardrail(_ *agentv2.ProxyToAgent, m *agentv2.GuardrailInspectEvent) payload {
	return payload{v: guardrailOut(m)}
}

func (eventOut) VisitRequestComplete(_ *agentv2.ProxyToAgent, m *agentv2.RequestCompleteEvent) payload {
	return payload{v: requestCompleteOut(m)}
}

func (eventOut) VisitConfigure(_ *agentv2.ProxyToAgent, m *agentv2.ConfigureEvent) payload {
	return payload{v: configureOut(m)}
}

// proxyControlOut maps the proxy's control messages; the handshake,
// cancels and pings are JSON on every connection.
type proxyControlOut struct{ p payload }

func (c *proxyControlOut) VisitHandshake(_ *agentv2.ProxyToAgent, m *agentv2.HandshakeRequest) error {
	c.p = payload{v: handshakeRequestOut(m), json: true}
	return nil
}

func (c *proxyControlOut) VisitCancel(_ *agentv2.ProxyToAgent, m *agentv2.CancelRequest) error {
	c.p = payload{v: cancelOut(m), sorted: true, json: true}
	return nil
}

func (c *proxyControlOut) VisitPing(_ *agentv2.ProxyToAgent, m *agentv2.Ping) error {
	c.p = payload{v: pingOut(m.GetSequence(), m.GetTimestampMs()), sorted: true, json: true}
	return nil
}

func (c *proxyControlOut) VisitPong(_ *agentv2.ProxyToAgent, m *agentv2.Pong) error {
	c.p = payload{v: pingOut(m.GetSequence(), m.GetPingTimestampMs()), sorted: true, json: true}
	return nil
}

func (*proxyControlOut) VisitDrain(*agentv2.ProxyToAgent, *agentv2.DrainRequest) error {
	return unknown("the reference has no drain")
}

func (*proxyControlOut) VisitShutdown(*agentv2.ProxyToAgent, *agentv2.ShutdownRequest) error {
	return unknown("the reference has no shutdown")
}

func (*proxyControlOut) VisitConfigResponse(*agentv2.ProxyToAgent, *agentv2.ConfigUpdateResponse) error {
	return unknown("the reference has no config response")
}

func (*proxyControlOut) VisitRegistrationResponse(*agentv2.ProxyToAgent, *agentv2.RegistrationResponse) error {
	return unknown("a registration response is not a frame of a dialled connection")
}

// agentPayload maps an agent's envelope to its reference message.
func agentPayload(m *agentv2.AgentToProxy) (payload, error) {
	var c agentOut
	known, err := agentv2.VisitAgentToProxy(&c, m)
	if !known {
		return payload{}, unknown("the reference has no %T", m.GetMessage())
	}
	c.p.t = m.FrameType()
	return c.p, err
}

// agentOut maps the agent's messages.
type agentOut struct{ p payload }

func (c *agentOut) VisitHandshake(_ *agentv2.AgentToProxy, m *agentv2.HandshakeResponse) error {
	c.p = payload{v: handshakeResponseOut(m), json: true}
	return nil
}

func (c *agentOut) VisitResponse(_ *agentv2.AgentToProxy, m *agentv2.AgentResponse) error {
	c.p = payload{v: responseOut(m)}
	return nil
}

func (c *agentOut) VisitHealth(_ *agentv2.AgentToProxy, m *agentv2.HealthStatus) error {
	c.p = payload{v: healthOut(m)}
	return nil
}

func (c *agentOut) VisitMetrics(_ *agentv2.AgentToProxy, m *agentv2.MetricsReport) error {
	c.p = payload{v: metricsOut(m)}
	return nil
}

func (c *agentOut) VisitConfigUpdate(_ *agentv2.AgentToProxy, m *agentv2.ConfigUpdateRequest) error {
	v, err := configUpdateOut(m)
	c.p = payload{v: v}
	return err
}

func (c *agentOut) VisitFlowControl(_ *agentv2.AgentToProxy, m *agentv2.FlowControlSignal) error {
	c.p = payload{v: flowOut(m)}
	return nil
}

func (c *agentOut) VisitPing(_ *agentv2.AgentToProxy, m *agentv2.Ping) error {
	c.p = payload{v: pingOut(m.GetSequence(), m.GetTimestampMs()), sorted: true, json: true}
	return nil
}

func (c *agentOut) VisitPong(_ *agentv2.AgentToProxy, m *agentv2.Pong) error {
	c.p = payload{v: pingOut(m.GetSequence(), m.GetPingTimestampMs()), sorted: true, json: true}
	return nil
}

func (*agentOut) VisitLog(*agentv2.AgentToProxy, *agentv2.LogMessage) error {
	return unknown("the reference has no log message")
}

func (*agentOut) VisitRegistration(*agentv2.AgentToProxy, *agentv2.RegistrationRequest) error {
	return unknown("a registration is not a frame of a dialled connection (AppendRegistration)")
}

func decodeProxy(t agentv2.FrameType, v any, m *agentv2.ProxyToAgent) error {
	r := &rd{}
	switch t {
	case agentv2.ProxyToAgentFrameHandshake:
		m.Message = &agentv2.ProxyToAgent_Handshake{Handshake: handshakeRequestIn(r, v)}
	case agentv2.ProxyToAgentFrameRequestHeaders:
		m.Message = &agentv2.ProxyToAgent_RequestHeaders{RequestHeaders: requestHeadersIn(r, v)}
	case agentv2.ProxyToAgentFrameRequestBodyChunk:
		m.Message = &agentv2.ProxyToAgent_RequestBodyChunk{RequestBodyChunk: bodyChunkIn(r, v, "bytes_received")}
	case agentv2.ProxyToAgentFrameResponseHeaders:
		m.Message = &agentv2.ProxyToAgent_ResponseHeaders{ResponseHeaders: responseHeadersIn(r, v)}
	case agentv2.ProxyToAgentFrameResponseBodyChunk:
		m.Message = &agentv2.ProxyToAgent_ResponseBodyChunk{ResponseBodyChunk: bodyChunkIn(r, v, "bytes_sent")}
	case agentv2.ProxyToAgentFrameRequestComplete:
		m.Message = &agentv2.ProxyToAgent_RequestComplete{RequestComplete: requestCompleteIn(r, v)}
	case agentv2.ProxyToAgentFrameWebsocketFrame:
		m.Message = &agentv2.ProxyToAgent_WebsocketFrame{WebsocketFrame: websocketIn(r, v)}
	case agentv2.ProxyToAgentFrameGuardrail:
		m.Message = &agentv2.ProxyToAgent_Guardrail{Guardrail: guardrailIn(r, v)}
	case agentv2.ProxyToAgentFrameConfigure:
		m.Message = &agentv2.ProxyToAgent_Configure{Configure: configureIn(r, v)}
	case agentv2.ProxyToAgentFrameCancel:
		m.Message = &agentv2.ProxyToAgent_Cancel{Cancel: cancelIn(r, v)}
	case agentv2.ProxyToAgentFramePing:
		seq, ts := pingIn(r, v)
		m.Message = &agentv2.ProxyToAgent_Ping{Ping: &agentv2.Ping{Sequence: seq, TimestampMs: ts}}
	case agentv2.ProxyToAgentFramePong:
		seq, ts := pingIn(r, v)
		m.Message = &agentv2.ProxyToAgent_Pong{Pong: &agentv2.Pong{Sequence: seq, PingTimestampMs: ts}}
	default:
		return unknown("frame 0x%02x from a proxy", byte(t))
	}
	return done(r, fmt.Sprintf("frame 0x%02x", byte(t)))
}

func decodeAgent(t agentv2.FrameType, v any, m *agentv2.AgentToProxy) error {
	r := &rd{}
	switch t {
	case agentv2.AgentToProxyFrameHandshake:
		m.Message = &agentv2.AgentToProxy_Handshake{Handshake: handshakeResponseIn(r, v)}
	case agentv2.AgentToProxyFrameResponse:
		m.Message = &agentv2.AgentToProxy_Response{Response: responseIn(r, v)}
	case agentv2.AgentToProxyFrameHealth:
		m.Message = &agentv2.AgentToProxy_Health{Health: healthIn(r, v)}
	case agentv2.AgentToProxyFrameMetrics:
		m.Message = &agentv2.AgentToProxy_Metrics{Metrics: metricsIn(r, v)}
	case agentv2.AgentToProxyFrameConfigUpdate:
		m.Message = &agentv2.AgentToProxy_ConfigUpdate{ConfigUpdate: configUpdateIn(r, v)}
	case agentv2.AgentToProxyFrameFlowControl:
		m.Message = &agentv2.AgentToProxy_FlowControl{FlowControl: flowIn(r, v)}
	case agentv2.AgentToProxyFramePing:
		seq, ts := pingIn(r, v)
		m.Message = &agentv2.AgentToProxy_Ping{Ping: &agentv2.Ping{Sequence: seq, TimestampMs: ts}}
	case agentv2.AgentToProxyFramePong:
		seq, ts := pingIn(r, v)
		m.Message = &agentv2.AgentToProxy_Pong{Pong: &agentv2.Pong{Sequence: seq, PingTimestampMs: ts}}
	default:
		return unknown("frame 0x%02x from an agent", byte(t))
	}
	return done(r, fmt.Sprintf("frame 0x%02x", byte(t)))
}
