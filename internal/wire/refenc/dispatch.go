package refenc

import (
	"fmt"

	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
)

// The reference numbers its frames as our frame table does (agentv2
// FrameType constants); only the payloads differ.

// proxyPayload maps a proxy's envelope to its reference message.
func proxyPayload(m *agentv2.ProxyToAgent) (payload, error) {
	switch x := m.GetMessage().(type) {
	case *agentv2.ProxyToAgent_Handshake:
		return payload{t: agentv2.ProxyToAgentFrameHandshake, v: handshakeRequestOut(x.Handshake), json: true}, nil
	case *agentv2.ProxyToAgent_RequestHeaders:
		return payload{t: agentv2.ProxyToAgentFrameRequestHeaders, v: requestHeadersOut(x.RequestHeaders), sorted: true}, nil
	case *agentv2.ProxyToAgent_RequestBodyChunk:
		return payload{t: agentv2.ProxyToAgentFrameRequestBodyChunk, v: bodyChunkOut(x.RequestBodyChunk, "bytes_received"), sorted: true}, nil
	case *agentv2.ProxyToAgent_ResponseHeaders:
		return payload{t: agentv2.ProxyToAgentFrameResponseHeaders, v: responseHeadersOut(x.ResponseHeaders), sorted: true}, nil
	case *agentv2.ProxyToAgent_ResponseBodyChunk:
		return payload{t: agentv2.ProxyToAgentFrameResponseBodyChunk, v: bodyChunkOut(x.ResponseBodyChunk, "bytes_sent"), sorted: true}, nil
	case *agentv2.ProxyToAgent_RequestComplete:
		return payload{t: agentv2.ProxyToAgentFrameRequestComplete, v: requestCompleteOut(x.RequestComplete), sorted: true}, nil
	case *agentv2.ProxyToAgent_WebsocketFrame:
		return payload{t: agentv2.ProxyToAgentFrameWebsocketFrame, v: websocketOut(x.WebsocketFrame), sorted: true}, nil
	case *agentv2.ProxyToAgent_Guardrail:
		return payload{t: agentv2.ProxyToAgentFrameGuardrail, v: guardrailOut(x.Guardrail), sorted: true}, nil
	case *agentv2.ProxyToAgent_Configure:
		return payload{t: agentv2.ProxyToAgentFrameConfigure, v: configureOut(x.Configure), sorted: true}, nil
	case *agentv2.ProxyToAgent_Cancel:
		return payload{t: agentv2.ProxyToAgentFrameCancel, v: cancelOut(x.Cancel), sorted: true, json: true}, nil
	case *agentv2.ProxyToAgent_Ping:
		return payload{t: agentv2.ProxyToAgentFramePing, v: pingOut(x.Ping.GetSequence(), x.Ping.GetTimestampMs()), sorted: true, json: true}, nil
	case *agentv2.ProxyToAgent_Pong:
		return payload{t: agentv2.ProxyToAgentFramePong, v: pingOut(x.Pong.GetSequence(), x.Pong.GetPingTimestampMs()), sorted: true, json: true}, nil
	}
	return payload{}, unknown("the reference has no %T", m.GetMessage())
}

// agentPayload maps an agent's envelope to its reference message.
func agentPayload(m *agentv2.AgentToProxy) (payload, error) {
	switch x := m.GetMessage().(type) {
	case *agentv2.AgentToProxy_Handshake:
		return payload{t: agentv2.AgentToProxyFrameHandshake, v: handshakeResponseOut(x.Handshake), json: true}, nil
	case *agentv2.AgentToProxy_Response:
		return payload{t: agentv2.AgentToProxyFrameResponse, v: responseOut(x.Response)}, nil
	case *agentv2.AgentToProxy_Health:
		return payload{t: agentv2.AgentToProxyFrameHealth, v: healthOut(x.Health)}, nil
	case *agentv2.AgentToProxy_Metrics:
		return payload{t: agentv2.AgentToProxyFrameMetrics, v: metricsOut(x.Metrics)}, nil
	case *agentv2.AgentToProxy_ConfigUpdate:
		v, err := configUpdateOut(x.ConfigUpdate)
		return payload{t: agentv2.AgentToProxyFrameConfigUpdate, v: v}, err
	case *agentv2.AgentToProxy_FlowControl:
		return payload{t: agentv2.AgentToProxyFrameFlowControl, v: flowOut(x.FlowControl)}, nil
	case *agentv2.AgentToProxy_Ping:
		return payload{t: agentv2.AgentToProxyFramePing, v: pingOut(x.Ping.GetSequence(), x.Ping.GetTimestampMs()), sorted: true, json: true}, nil
	case *agentv2.AgentToProxy_Pong:
		return payload{t: agentv2.AgentToProxyFramePong, v: pingOut(x.Pong.GetSequence(), x.Pong.GetPingTimestampMs()), sorted: true, json: true}, nil
	}
	return payload{}, unknown("the reference has no %T", m.GetMessage())
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
