package refenc

import (
	"fmt"

	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
)

// proxyPayload maps a proxy's envelope to its reference message.
func proxyPayload(m *agentv2.ProxyToAgent) (payload, error) {
	switch x := m.GetMessage().(type) {
	case *agentv2.ProxyToAgent_Handshake:
		return payload{t: 0x01, v: handshakeRequestOut(x.Handshake), json: true}, nil
	case *agentv2.ProxyToAgent_RequestHeaders:
		return payload{t: 0x10, v: requestHeadersOut(x.RequestHeaders), sorted: true}, nil
	case *agentv2.ProxyToAgent_RequestBodyChunk:
		return payload{t: 0x11, v: bodyChunkOut(x.RequestBodyChunk, "bytes_received"), sorted: true}, nil
	case *agentv2.ProxyToAgent_ResponseHeaders:
		return payload{t: 0x12, v: responseHeadersOut(x.ResponseHeaders), sorted: true}, nil
	case *agentv2.ProxyToAgent_ResponseBodyChunk:
		return payload{t: 0x13, v: bodyChunkOut(x.ResponseBodyChunk, "bytes_sent"), sorted: true}, nil
	case *agentv2.ProxyToAgent_RequestComplete:
		return payload{t: 0x14, v: requestCompleteOut(x.RequestComplete), sorted: true}, nil
	case *agentv2.ProxyToAgent_WebsocketFrame:
		return payload{t: 0x15, v: websocketOut(x.WebsocketFrame), sorted: true}, nil
	case *agentv2.ProxyToAgent_Guardrail:
		return payload{t: 0x16, v: guardrailOut(x.Guardrail), sorted: true}, nil
	case *agentv2.ProxyToAgent_Configure:
		return payload{t: 0x17, v: configureOut(x.Configure), sorted: true}, nil
	case *agentv2.ProxyToAgent_Cancel:
		return payload{t: 0x40, v: cancelOut(x.Cancel), sorted: true, json: true}, nil
	case *agentv2.ProxyToAgent_Ping:
		return payload{t: 0x41, v: pingOut(x.Ping.GetSequence(), x.Ping.GetTimestampMs()), sorted: true, json: true}, nil
	case *agentv2.ProxyToAgent_Pong:
		return payload{t: 0x42, v: pingOut(x.Pong.GetSequence(), x.Pong.GetPingTimestampMs()), sorted: true, json: true}, nil
	}
	return payload{}, unknown("the reference has no %T", m.GetMessage())
}

// agentPayload maps an agent's envelope to its reference message.
func agentPayload(m *agentv2.AgentToProxy) (payload, error) {
	switch x := m.GetMessage().(type) {
	case *agentv2.AgentToProxy_Handshake:
		return payload{t: 0x02, v: handshakeResponseOut(x.Handshake), json: true}, nil
	case *agentv2.AgentToProxy_Response:
		return payload{t: 0x20, v: responseOut(x.Response)}, nil
	case *agentv2.AgentToProxy_Health:
		return payload{t: 0x30, v: healthOut(x.Health)}, nil
	case *agentv2.AgentToProxy_Metrics:
		return payload{t: 0x31, v: metricsOut(x.Metrics)}, nil
	case *agentv2.AgentToProxy_ConfigUpdate:
		v, err := configUpdateOut(x.ConfigUpdate)
		return payload{t: 0x32, v: v}, err
	case *agentv2.AgentToProxy_FlowControl:
		return payload{t: 0x33, v: flowOut(x.FlowControl)}, nil
	case *agentv2.AgentToProxy_Ping:
		return payload{t: 0x41, v: pingOut(x.Ping.GetSequence(), x.Ping.GetTimestampMs()), sorted: true, json: true}, nil
	case *agentv2.AgentToProxy_Pong:
		return payload{t: 0x42, v: pingOut(x.Pong.GetSequence(), x.Pong.GetPingTimestampMs()), sorted: true, json: true}, nil
	}
	return payload{}, unknown("the reference has no %T", m.GetMessage())
}

func decodeProxy(t agentv2.FrameType, v any, m *agentv2.ProxyToAgent) error {
	r := &rd{}
	switch t {
	case 0x01:
		m.Message = &agentv2.ProxyToAgent_Handshake{Handshake: handshakeRequestIn(r, v)}
	case 0x10:
		m.Message = &agentv2.ProxyToAgent_RequestHeaders{RequestHeaders: requestHeadersIn(r, v)}
	case 0x11:
		m.Message = &agentv2.ProxyToAgent_RequestBodyChunk{RequestBodyChunk: bodyChunkIn(r, v, "bytes_received")}
	case 0x12:
		m.Message = &agentv2.ProxyToAgent_ResponseHeaders{ResponseHeaders: responseHeadersIn(r, v)}
	case 0x13:
		m.Message = &agentv2.ProxyToAgent_ResponseBodyChunk{ResponseBodyChunk: bodyChunkIn(r, v, "bytes_sent")}
	case 0x14:
		m.Message = &agentv2.ProxyToAgent_RequestComplete{RequestComplete: requestCompleteIn(r, v)}
	case 0x15:
		m.Message = &agentv2.ProxyToAgent_WebsocketFrame{WebsocketFrame: websocketIn(r, v)}
	case 0x16:
		m.Message = &agentv2.ProxyToAgent_Guardrail{Guardrail: guardrailIn(r, v)}
	case 0x17:
		m.Message = &agentv2.ProxyToAgent_Configure{Configure: configureIn(r, v)}
	case 0x40:
		m.Message = &agentv2.ProxyToAgent_Cancel{Cancel: cancelIn(r, v)}
	case 0x41:
		seq, ts := pingIn(r, v)
		m.Message = &agentv2.ProxyToAgent_Ping{Ping: &agentv2.Ping{Sequence: seq, TimestampMs: ts}}
	case 0x42:
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
	case 0x02:
		m.Message = &agentv2.AgentToProxy_Handshake{Handshake: handshakeResponseIn(r, v)}
	case 0x20:
		m.Message = &agentv2.AgentToProxy_Response{Response: responseIn(r, v)}
	case 0x30:
		m.Message = &agentv2.AgentToProxy_Health{Health: healthIn(r, v)}
	case 0x31:
		m.Message = &agentv2.AgentToProxy_Metrics{Metrics: metricsIn(r, v)}
	case 0x32:
		m.Message = &agentv2.AgentToProxy_ConfigUpdate{ConfigUpdate: configUpdateIn(r, v)}
	case 0x33:
		m.Message = &agentv2.AgentToProxy_FlowControl{FlowControl: flowIn(r, v)}
	case 0x41:
		seq, ts := pingIn(r, v)
		m.Message = &agentv2.AgentToProxy_Ping{Ping: &agentv2.Ping{Sequence: seq, TimestampMs: ts}}
	case 0x42:
		seq, ts := pingIn(r, v)
		m.Message = &agentv2.AgentToProxy_Pong{Pong: &agentv2.Pong{Sequence: seq, PingTimestampMs: ts}}
	default:
		return unknown("frame 0x%02x from an agent", byte(t))
	}
	return done(r, fmt.Sprintf("frame 0x%02x", byte(t)))
}
